#!/usr/bin/env bash
# examples/demo.sh: three example tools (pb-editor, pb-builder, pb-notifier) on a private bus,
# with the traffic shown as it flows.
#
# usage: examples/demo.sh            (make demo runs it with PEERBUS_BIN set)
#
# In a terminal (standard output is one and $CI is unset) it shows `peerbus monitor` full screen
# (or, where that cannot run, `peerbus sub '>'`) until q or Ctrl-C, then a summary. Otherwise (CI,
# a pipe) it runs $DEMO_SECONDS seconds printing what the examples say, then a summary, and exits
# 0 only if every example's traffic was seen on the bus.
#
# Environment:
#   PEERBUS_BIN           the peerbus CLI (default: build/bin/peerbus, else `peerbus` on $PATH)
#   PEERBUS_EXAMPLES_DIR  where pb-editor, pb-builder, pb-notifier are (default: PEERBUS_BIN's dir)
#   DEMO_SECONDS          how long to run without a terminal (default 5); in a terminal, if set,
#                         the live view stops by itself after that long
#   CI                    set (not "false"/"0"): never the interactive view
#
# The bus is private: a random group in 239.255.0.0/16 (never the default 239.255.80.66) on a free
# port, loopback only (iface=127.0.0.1, ttl=0). Everything it starts it stops, by pid, however it
# exits.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(dirname "$here")

die() {
  echo "demo: $*" >&2
  exit 1
}

# ---------------------------------------------------------------------------------------------
# What to run
# ---------------------------------------------------------------------------------------------
if [[ -n ${PEERBUS_BIN:-} ]]; then
  peerbus=$PEERBUS_BIN
elif [[ -x $root/build/bin/peerbus ]]; then
  peerbus=$root/build/bin/peerbus
else
  peerbus=$(command -v peerbus || true)
fi
[[ -n $peerbus && -x $peerbus ]] ||
  die "the peerbus CLI was not found (${peerbus:-none}); run 'make demo', or set PEERBUS_BIN"
examples_dir=${PEERBUS_EXAMPLES_DIR:-$(dirname "$peerbus")}
for prog in pb-editor pb-builder pb-notifier; do
  [[ -x $examples_dir/$prog ]] ||
    die "$examples_dir/$prog not found; build the examples (cmake -DPEERBUS_BUILD_EXAMPLES=ON)" \
      "or set PEERBUS_EXAMPLES_DIR"
done

case ${CI:-} in
  "" | false | 0) ci=0 ;;
  *) ci=1 ;;
esac
interactive=0
[[ -t 1 && $ci -eq 0 ]] && interactive=1

seconds_given=0
[[ -n ${DEMO_SECONDS:-} ]] && seconds_given=1
demo_seconds=${DEMO_SECONDS:-5}
[[ $demo_seconds =~ ^[0-9]+([.][0-9]+)?$ && ! $demo_seconds =~ ^0+([.]0+)?$ ]] ||
  die "DEMO_SECONDS must be a positive number of seconds, not '$demo_seconds'"

# The demo's own settings only: no inherited bus, no injected loss.
unset PEERBUS_URL PEERBUS_FAULTS

# Milliseconds on a monotonic-enough clock (bash 5's EPOCHREALTIME, else date).
now_ms() {
  if [[ -n ${EPOCHREALTIME:-} ]]; then
    local t=${EPOCHREALTIME/[.,]/}
    echo $((10#$t / 1000))
  else
    date +%s%3N
  fi
}
to_ms() { awk -v s="$1" 'BEGIN { printf "%d\n", s * 1000 }'; }

# ---------------------------------------------------------------------------------------------
# A private bus: random group (not the default), a port no UDP socket on this machine uses
# ---------------------------------------------------------------------------------------------
while :; do
  g3=$((RANDOM % 256)) g4=$((RANDOM % 254 + 1))
  ((g3 == 80 && g4 == 66)) || break
done
port=
for _ in $(seq 1 50); do
  p=$((20000 + RANDOM % 12000)) # below the usual ephemeral range (32768-60999)
  if command -v ss >/dev/null 2>&1 && [[ -n $(ss -Huan "( sport = :$p )" 2>/dev/null) ]]; then
    continue
  fi
  port=$p
  break
done
[[ -n $port ]] || die "no free UDP port found between 20000 and 31999"
# A few messages a second need no 8 MiB receive buffer (the default): ask for no more than the
# kernel grants anyone (net.core.rmem_max, 1 MiB at most), so that none of it is capped.
rcvbuf=1048576
if [[ -r /proc/sys/net/core/rmem_max ]]; then
  rmem_max=$(</proc/sys/net/core/rmem_max)
  if ((rmem_max < rcvbuf)); then rcvbuf=$rmem_max; fi
  if ((rcvbuf < 4096)); then rcvbuf=4096; fi # the URL's minimum
fi
url="udpm://239.255.$g3.$g4:$port?ttl=0&iface=127.0.0.1&rcvbuf=$rcvbuf"

# ---------------------------------------------------------------------------------------------
# Processes and clean-up: every pid started is stopped, whatever the exit path
# ---------------------------------------------------------------------------------------------
tmp=$(mktemp -d "${TMPDIR:-/tmp}/peerbus-demo.XXXXXX")
traffic=$tmp/traffic.jsonl   # what `peerbus sub '>'` (the tap) saw, one JSON line per message
said=$tmp/examples.log       # what the three examples printed, lines never mixed (one write each)
errors=$tmp/examples.err     # their standard error (in a terminal; otherwise it goes to ours)
: >"$traffic"
: >"$said"
: >"$errors"

declare -A pid_of=() # name -> pid, for the programs still running
order=()             # names in start order
live_pid=

# True while `pid` runs: neither gone nor a zombie. (A pid is not handed out again until the
# kernel's counter wraps at pid_max, so for the seconds this runs it still names our child.)
running() {
  local stat
  stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
  stat=${stat##*) } # after "pid (comm) ": the state letter
  [[ ${stat:0:1} != Z ]]
}

# Stops the named programs (SIGTERM: they say goodbye on the bus), SIGKILL after 3 s.
stop() {
  local name pid waiting=() deadline
  for name in "$@"; do
    pid=${pid_of[$name]:-}
    [[ -n $pid ]] || continue
    kill -TERM "$pid" 2>/dev/null || true
    waiting+=("$name")
  done
  deadline=$(($(now_ms) + 3000))
  for name in "${waiting[@]}"; do
    pid=${pid_of[$name]}
    while running "$pid" && (($(now_ms) < deadline)); do sleep 0.05; done
    if running "$pid"; then
      echo "demo: $name (pid $pid) did not stop within 3 s; killing it" >&2
      kill -KILL "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || true
    unset "pid_of[$name]"
  done
}

stop_all() {
  local names=() i
  if [[ -n $live_pid ]]; then kill -TERM "$live_pid" 2>/dev/null || true; fi
  # Newest first: the editor stops saving before the builder and notifier go, the tap goes last.
  for ((i = ${#order[@]} - 1; i >= 0; i--)); do
    [[ -n ${pid_of[${order[i]}]:-} ]] && names+=("${order[i]}")
  done
  [[ -n $live_pid ]] && { wait "$live_pid" 2>/dev/null || true; live_pid=; }
  ((${#names[@]})) && stop "${names[@]}"
  return 0
}

cleanup() {
  local rc=$?
  trap - EXIT HUP INT TERM
  stop_all
  rm -rf "$tmp"
  exit "$rc"
}
trap cleanup EXIT

# Ctrl-C or SIGTERM during the live view ends the view (the summary follows); anywhere else, or
# SIGHUP (the terminal went away), it ends the demo (cleanup runs from the EXIT trap).
in_live_view=0
on_signal() {
  if ((in_live_view)) && [[ $1 != HUP ]]; then
    if [[ -n $live_pid ]]; then kill -"$1" "$live_pid" 2>/dev/null || true; fi
    return 0
  fi
  case $1 in
    HUP) exit 129 ;;
    INT) echo >&2 && echo "demo: interrupted" >&2 && exit 130 ;;
    *) echo "demo: terminated" >&2 && exit 143 ;;
  esac
}
trap 'on_signal HUP' HUP
trap 'on_signal INT' INT
trap 'on_signal TERM' TERM

# start NAME COMMAND...: runs COMMAND in the background and remembers its pid under NAME.
start() {
  local name=$1
  shift
  "$@" &
  pid_of[$name]=$!
  order+=("$name")
}

start_example() {
  local prog=$1
  if ((interactive)); then
    start "$prog" "$examples_dir/pb-$prog" --url "$url" >>"$said" 2>>"$errors"
  else
    start "$prog" "$examples_dir/pb-$prog" --url "$url" >>"$said"
  fi
}

# Prints the examples' lines not shown yet (complete lines only).
shown=0
show_new_lines() {
  local total
  total=$(wc -l <"$said")
  if ((total > shown)); then
    sed -n "$((shown + 1)),${total}p" "$said"
    shown=$total
  fi
}

# The names `peerbus peers` hears on the bus, one per line.
peer_names() {
  "$peerbus" peers --url "$url" --name demo-check --json --wait "${1:-0.3}" 2>/dev/null |
    sed -n 's/.*"name":"\([^"]*\)".*/\1/p' | sort -u
}

# wait_for_peers SECONDS NAME...: true once every NAME is on the bus.
wait_for_peers() {
  local deadline=$(($(now_ms) + $(to_ms "$1"))) names missing n
  shift
  while :; do
    names=$(peer_names 0.3)
    missing=()
    for n in "$@"; do grep -qx -- "$n" <<<"$names" || missing+=("$n"); done
    ((${#missing[@]} == 0)) && return 0
    if (($(now_ms) >= deadline)); then
      echo "demo: not on the bus after $1 s: ${missing[*]}" >&2
      return 1
    fi
  done
}

# "topic name count" for each (topic, sender) the tap saw, busiest first.
traffic_counts() {
  sed -n 's/^{"topic":"\([^"]*\)","name":"\([^"]*\)".*/\1 \2/p' "$traffic" | sort | uniq -c |
    sort -k1,1nr -k2 | awk '{ print $2, $3, $1 }'
}

# What is still missing for the demo to count as working; nothing printed when all is there.
missing_traffic() {
  local topic
  for topic in file.saved build.started build.finished; do
    grep -q "^{\"topic\":\"$topic\"" "$traffic" || echo "no $topic message on the bus"
  done
  grep -qE '^\[notifier\] \((i|v|x)\) Build' "$said" ||
    echo "pb-notifier printed no build notification (it subscribes to build.*)"
  grep -qE '^\[editor\] .* by builder' "$said" ||
    echo "pb-editor never heard a build.finished for a file it saved"
}

# ---------------------------------------------------------------------------------------------
# Start: the tap first (it sees everything from the first message), then the examples
# ---------------------------------------------------------------------------------------------
echo "demo: a private bus for this run: $url"
echo "demo: (loopback only, ttl=0: nothing leaves this machine, other buses never see it)"

start tap "$peerbus" sub --url "$url" --name demo-tap '>' >"$traffic"
start_example notifier
start_example builder
wait_for_peers 10 demo-tap notifier builder ||
  die "the examples did not join the bus; is multicast on loopback blocked (iptables)?"
start_example editor
for name in "${order[@]}"; do
  case $name in
    tap) what="peerbus sub '>' (every message, for the summary)" ;;
    *) what="pb-$name" ;;
  esac
  printf 'demo: started pid %-7s %s\n' "${pid_of[$name]}" "$what"
done

started_ms=$(now_ms)

# ---------------------------------------------------------------------------------------------
# The live view
# ---------------------------------------------------------------------------------------------
# live COMMAND...: runs COMMAND with the terminal as its standard input until it exits; a Ctrl-C
# or SIGTERM to the demo reaches it and ends it (see on_signal).
live() {
  local rc
  "$@" 0<&0 &
  live_pid=$!
  in_live_view=1
  while :; do
    rc=0
    wait "$live_pid" || rc=$?
    # Above 128 while it still exists: a trapped signal interrupted the wait, not its exit.
    if ((rc > 128)) && kill -0 "$live_pid" 2>/dev/null; then continue; fi
    break
  done
  in_live_view=0
  live_pid=
  return "$rc"
}

if ((interactive)); then
  echo
  echo "demo: pb-editor saves a file every 0.7 s (file.saved); pb-builder builds it (build.started,"
  echo "      build.finished); pb-notifier reports builds and peers; pb-editor hears its builds."
  if [[ -n ${TERM:-} && $TERM != dumb && -t 0 ]]; then
    echo "demo: watching with 'peerbus monitor' (keys: q quit, Tab peers/topics, s sort, / filter)"
    t0=$(now_ms)
    rc=0
    # Its standard error goes to a file: a warning written mid-screen would garble the view.
    if ((seconds_given)); then
      live "$peerbus" monitor --url "$url" --duration "$demo_seconds" 2>>"$errors" || rc=$?
    else
      live "$peerbus" monitor --url "$url" 2>>"$errors" || rc=$?
    fi
    # A monitor that gave up at once (no usable terminal) leaves the plain message stream.
    if ((rc != 0 && rc < 128 && $(now_ms) - t0 < 3000)); then
      echo "demo: peerbus monitor could not run here (exit $rc); showing the messages instead"
      sed -n 's/^peerbus monitor: /  /p' "$errors"
      monitor_failed=1
    else
      monitor_failed=0
    fi
  else
    monitor_failed=1
  fi
  if ((monitor_failed)); then
    echo "demo: every message on the bus, as 'peerbus sub \">\"' prints it (Ctrl-C to stop):"
    if ((seconds_given)); then
      live timeout --foreground -s INT "$demo_seconds" \
        "$peerbus" sub --url "$url" --name demo-view '>' || true
    else
      live "$peerbus" sub --url "$url" --name demo-view '>' || true
    fi
  fi
  echo
else
  echo "demo: running ${demo_seconds} s; what the examples print:"
  end_ms=$((started_ms + $(to_ms "$demo_seconds")))
  while (($(now_ms) < end_ms)); do
    show_new_lines
    sleep 0.2
  done
  # Slow machine: give the first round trip up to 10 s more before calling it a failure.
  grace_ms=$(($(now_ms) + 10000))
  while [[ -n $(missing_traffic) ]] && (($(now_ms) < grace_ms)); do
    show_new_lines
    sleep 0.2
  done
fi

# ---------------------------------------------------------------------------------------------
# Summary
# ---------------------------------------------------------------------------------------------
peers_table=$("$peerbus" peers --url "$url" --name demo-check --wait 0.5 2>/dev/null) ||
  peers_table="(peerbus peers failed)"
# One at a time, so that those still running say who left.
for name in editor builder notifier; do stop "$name"; done
stop_all
((interactive)) || show_new_lines # what they printed as the others left
elapsed_ms=$(($(now_ms) - started_ms))

if ((interactive)); then
  echo "demo: the last things the examples printed:"
  tail -n 8 "$said" | sed 's/^/  /'
  if [[ -s $errors ]]; then
    echo "demo: and on standard error:"
    tail -n 8 "$errors" | sed 's/^/  /'
  fi
  echo
fi

echo "demo: $(awk -v ms="$elapsed_ms" 'BEGIN { printf "%.1f", ms / 1000 }') s on $url"
echo "demo: messages the tap (peerbus sub '>') saw, by topic and sender:"
counts=$(traffic_counts)
if [[ -n $counts ]]; then
  awk '{ printf "  %-16s from %-10s %5d\n", $1, $2, $3 }' <<<"$counts"
else
  echo "  (none)"
fi
echo "  total: $(wc -l <"$traffic") messages"
echo "demo: peers on the bus before the end (peerbus peers):"
sed 's/^/  /' <<<"$peers_table"
echo "demo: pb-notifier printed $(grep -c '^\[notifier\]' "$said" || true) notifications;" \
  "pb-editor heard $(grep -cE '^\[editor\] .* by builder' "$said" || true) of its builds finish"

problems=$(
  missing_traffic
  for name in editor builder notifier; do
    grep -q "^$name " <<<"$peers_table" || echo "pb-$name was not on the bus at the end"
  done
)
if [[ -n $problems ]]; then
  echo "demo: FAILED: the examples' traffic did not flow:" >&2
  sed 's/^/  - /' <<<"$problems" >&2
  if [[ -s $errors ]]; then
    echo "demo: the examples' standard error:" >&2
    sed 's/^/  /' "$errors" >&2
  fi
  exit 1
fi
echo "demo: OK: file.saved, build.started and build.finished all flowed between the three examples"
