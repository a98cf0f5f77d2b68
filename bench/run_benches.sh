#!/usr/bin/env bash
# bench/run_benches.sh: every figure of docs/performance.md: each `peerbus bench` configuration and
# the idle cost (bench/idle_bus.sh), each run R times, then the median and the spread (min..max).
#
# usage: bench/run_benches.sh [-r REPEATS] [-b PEERBUS_BIN] [-o DIR] [-q] [-I]
#   -r  runs of each configuration (default 3)
#   -b  the peerbus binary (default build/bin/peerbus; docs/performance.md used build-bench/)
#   -o  where the raw JSON lines go (default: a new directory under /tmp)
#   -q  quick: smaller counts, for trying the script out (figures not comparable)
#   -I  skip the idle measurements (they take 2 x 30 s per repeat)
#
# Each configuration's runs are interleaved with the others' (round-robin), so a burst of load
# from something else on the machine spreads over all of them instead of spoiling one. Prints the
# machine, the load average before and after, and one table per bench.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repeats=3 bin=$here/../build/bin/peerbus out="" quick=0 idle=1
while getopts "r:b:o:qIh" opt; do
  case $opt in
    r) repeats=$OPTARG ;;
    b) bin=$OPTARG ;;
    o) out=$OPTARG ;;
    q) quick=1 ;;
    I) idle=0 ;;
    *) sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
  esac
done
[[ -x $bin ]] || { echo "run_benches: $bin is not an executable (build first)" >&2; exit 2; }
[[ -n $out ]] || out=$(mktemp -d /tmp/peerbus-bench.XXXXXX)
mkdir -p "$out"

lat_count=20000 thr_count=200000
((quick)) && lat_count=2000 thr_count=20000

# name|arguments (one JSON object per run goes to $out/name.jsonl)
configs=(
  "latency|bench latency --count $lat_count --raw --json"
  "latency-same-cpu|bench latency --count $lat_count --raw --pin same --json"
  "latency-split-cpu|bench latency --count $lat_count --raw --pin split --json"
  "throughput-1|bench throughput --count $thr_count --subscribers 1 --raw --json"
  "throughput-4|bench throughput --count $thr_count --subscribers 4 --raw --json"
  "throughput-1-paced|bench throughput --count $thr_count --subscribers 1 --rate 100000 --json"
  "throughput-4-paced|bench throughput --count $thr_count --subscribers 4 --rate 60000 --json"
)

echo "machine: $(nproc) CPU(s), $(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //'), kernel $(uname -r)"
echo "binary:  $bin"
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
for ((r = 1; r <= repeats; r++)); do
  for c in "${configs[@]}"; do
    name=${c%%|*} args=${c#*|}
    # shellcheck disable=SC2086  # the arguments are meant to split
    if ! "$bin" $args >>"$out/$name.jsonl" 2>>"$out/$name.err"; then
      echo "run_benches: $name run $r failed (exit $?); see $out/$name.err" >&2
    fi
  done
  if ((idle)); then
    for n in 1 20; do
      "$here/idle_bus.sh" -n "$n" -s 30 -b "$bin" | tail -n 1 >>"$out/idle-$n.jsonl" ||
        echo "run_benches: idle -n $n run $r failed" >&2
    done
  fi
  echo "round $r of $repeats done (load $(cut -d' ' -f1-3 /proc/loadavg))"
done
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "raw results: $out"

python3 - "$out" <<'PY'
import json, os, statistics, sys

out = sys.argv[1]

def load(name):
    path = os.path.join(out, name + ".jsonl")
    if not os.path.exists(path):
        return []
    rows = []
    for line in open(path):
        line = line.strip()
        if line.startswith("{"):
            rows.append(json.loads(line))
    return rows

def get(row, path):
    for k in path.split("."):
        if isinstance(row, list):
            row = row[int(k)]
        else:
            row = row.get(k) if isinstance(row, dict) else None
        if row is None:
            return None
    return row

def fmt(v):
    if abs(v) >= 1000:
        return f"{v / 1000:.1f}k"
    if isinstance(v, float) and v != 0 and abs(v) < 1:
        return f"{v:.3g}"
    if isinstance(v, float):
        return f"{v:.2f}"
    return str(v)

def table(title, name, metrics):
    rows = load(name)
    if not rows:
        return
    print(f"\n### {title} ({len(rows)} runs)\n")
    print("| figure | median | min | max |")
    print("|---|---|---|---|")
    for label, fn in metrics:
        vals = [v for v in (fn(r) for r in rows) if v is not None]
        if not vals:
            continue
        print(f"| {label} | {fmt(statistics.median(vals))} | {fmt(min(vals))} | {fmt(max(vals))} |")

def subs_mean(path):
    def f(r):
        vals = [get(s, path) for s in get(r, "bus.subscribers") or []]
        vals = [v for v in vals if v is not None]
        return sum(vals) / len(vals) if vals else None
    return f

lat = [
    ("peerbus p50 (us)", lambda r: get(r, "bus.p50_us")),
    ("peerbus p90 (us)", lambda r: get(r, "bus.p90_us")),
    ("peerbus p99 (us)", lambda r: get(r, "bus.p99_us")),
    ("peerbus max (us)", lambda r: get(r, "bus.max_us")),
    ("udp p50 (us)", lambda r: get(r, "raw.p50_us")),
    ("udp p90 (us)", lambda r: get(r, "raw.p90_us")),
    ("udp p99 (us)", lambda r: get(r, "raw.p99_us")),
    ("udp max (us)", lambda r: get(r, "raw.max_us")),
    ("ratio p50 (target <= 2)", lambda r: get(r, "ratio.p50")),
    ("ratio p99 (target <= 3)", lambda r: get(r, "ratio.p99")),
    ("peerbus CPU per round trip (us)", lambda r: get(r, "bus.cpu_us_per_round_trip")),
    ("udp CPU per round trip (us)", lambda r: get(r, "raw.cpu_us_per_round_trip")),
]
table("latency, scheduler's placement", "latency", lat)
table("latency, both processes on one CPU (--pin same)", "latency-same-cpu", lat)
table("latency, one CPU each (--pin split)", "latency-split-cpu", lat)

thr = [
    ("peerbus delivered msg/s per subscriber (mean)", lambda r: get(r, "bus.msgs_per_s_mean")),
    ("peerbus delivered msg/s, slowest subscriber", lambda r: get(r, "bus.msgs_per_s_min")),
    ("peerbus publish rate (msg/s)", lambda r: get(r, "bus.send_msgs_per_s")),
    ("peerbus messages lost (all subscribers)", lambda r: get(r, "bus.lost_total")),
    ("peerbus repairs sent", lambda r: get(r, "bus.repairs_sent")),
    ("peerbus NACKed but already gone", lambda r: get(r, "bus.repairs_unavailable")),
    ("peerbus publisher CPU per message (us)", lambda r: get(r, "bus.cpu_us_per_msg")),
    ("peerbus subscriber CPU per message (us)", subs_mean("cpu_us_per_msg")),
    ("udp delivered datagrams/s per receiver (mean)", lambda r: get(r, "raw.msgs_per_s_mean")),
    ("udp send rate (datagrams/s)", lambda r: get(r, "raw.send_msgs_per_s")),
    ("udp delivered fraction, worst receiver", lambda r: get(r, "raw.delivered_fraction_min")),
    ("udp sender CPU per datagram (us)", lambda r: get(r, "raw.cpu_us_per_msg")),
    ("ratio peerbus/udp per subscriber (target >= 4)", lambda r: get(r, "ratio.msgs_per_s_mean")),
]
table("throughput, 1 publisher -> 1 subscriber", "throughput-1", thr)
table("throughput, 1 publisher -> 4 subscribers", "throughput-4", thr)
paced = [m for m in thr if not m[0].startswith("udp") and not m[0].startswith("ratio")]
table("throughput, 1 -> 1, publisher paced to 100,000 msg/s", "throughput-1-paced", paced)
table("throughput, 1 -> 4, publisher paced to 60,000 msg/s", "throughput-4-paced", paced)

idle = [
    ("CPU per process (% of a core, target < 0.1)", lambda r: r.get("cpu_percent_each")),
    ("RSS mean (MiB, target < 4)", lambda r: r["rss_kib_mean"] / 1024),
    ("RSS max (MiB)", lambda r: r["rss_kib_max"] / 1024),
]
table("idle, 1 subscriber process", "idle-1", idle)
table("idle, 20 subscriber processes", "idle-20", idle)
PY
