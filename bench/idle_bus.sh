#!/usr/bin/env bash
# bench/idle_bus.sh: what an idle bus costs: CPU and resident memory of N idle `peerbus sub`
# processes that only heartbeat and listen, measured from /proc over a fixed window.
#
# usage: bench/idle_bus.sh [-n PROCESSES] [-s SECONDS] [-b PEERBUS_BIN]   (defaults 20, 30, build/bin/peerbus)
#
# Runs on a private bus (random group in 239.255.0.0/16, a free port, loopback, TTL 0), waits
# until a listener sees all of them (peers --json), then samples scheduler CPU time and VmRSS of
# each process at the start and end of the window. Prints one summary line and a JSON line.
# Ends only the processes it started, by pid.
set -euo pipefail

n=20 seconds=30
bin=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/build/bin/peerbus
while getopts "n:s:b:h" opt; do
  case $opt in
    n) n=$OPTARG ;;
    s) seconds=$OPTARG ;;
    b) bin=$OPTARG ;;
    *) sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
  esac
done
[[ -x $bin ]] || { echo "idle_bus: $bin is not an executable (build first: make build)" >&2; exit 2; }

port=$(python3 -c 'import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
url="udpm://239.255.$((RANDOM % 250 + 1)).$((RANDOM % 250 + 1)):$port?ttl=0&iface=127.0.0.1"
pids=()
cleanup() { for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT INT TERM

for ((i = 0; i < n; i++)); do
  "$bin" --url "$url" --name "idle-$i" sub "idle.nothing.$i" >/dev/null 2>&1 &
  pids+=($!)
done

# Wait (bounded) until a listener sees all n of them.
seen=0
for ((try = 0; try < 50; try++)); do
  seen=$("$bin" --url "$url" peers --json --wait 0.3 2>/dev/null | grep -c '"name":"idle-' || true)
  ((seen >= n)) && break
done
((seen >= n)) || { echo "idle_bus: only $seen of $n processes visible after the wait" >&2; exit 1; }

# CPU time in ns from the scheduler's own accounting, summed over every thread: utime/stime in
# /proc/PID/stat are charged in whole ticks and miss short wake-ups altogether.
cpu_ns() { cat /proc/"$1"/task/*/schedstat | awk '{s += $1} END {printf "%d\n", s}'; }
rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }
declare -A t0
for p in "${pids[@]}"; do t0[$p]=$(cpu_ns "$p"); done
start=$(date +%s.%N)
sleep "$seconds"  # the measurement window itself: nothing to wait for, the bus is idle
end=$(date +%s.%N)
total=0 max_rss=0 sum_rss=0
for p in "${pids[@]}"; do
  d=$(($(cpu_ns "$p") - ${t0[$p]}))
  total=$((total + d))
  r=$(rss_kib "$p")
  sum_rss=$((sum_rss + r))
  ((r > max_rss)) && max_rss=$r
done
python3 - "$n" "$total" "$start" "$end" "$sum_rss" "$max_rss" <<'PY'
import json, sys
n, cpu_ns, start, end, sum_rss, max_rss = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6])
wall = end - start
cpu = cpu_ns / 1e9
pct_total = 100.0 * cpu / wall
print(f"idle bus: {n} processes for {wall:.1f} s: {pct_total:.3f}% of one core in total "
      f"({pct_total / n:.4f}% each); resident {sum_rss / n / 1024:.1f} MiB mean, {max_rss / 1024:.1f} MiB max")
print(json.dumps({"processes": n, "seconds": round(wall, 2), "cpu_percent_total": round(pct_total, 4),
                  "cpu_percent_each": round(pct_total / n, 5), "rss_kib_mean": sum_rss // n, "rss_kib_max": max_rss}))
PY
