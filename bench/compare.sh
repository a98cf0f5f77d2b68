#!/usr/bin/env bash
# bench/compare.sh: two peerbus builds side by side, interleaved run by run so outside load
# spreads over both: throughput 1 -> 1 and 1 -> 4 (200,000 messages of 64 bytes, with the plain
# UDP floor) and round-trip latency on one CPU (20,000 round trips), then medians and ranges.
#
# usage: bench/compare.sh OLD_PEERBUS NEW_PEERBUS [ROUNDS]   (default 3 rounds, about 10 s each)
set -euo pipefail
old=${1:?usage: bench/compare.sh OLD_PEERBUS NEW_PEERBUS [ROUNDS]}
new=${2:?usage: bench/compare.sh OLD_PEERBUS NEW_PEERBUS [ROUNDS]}
rounds=${3:-3}
out=$(mktemp -t peerbus-compare.XXXXXX.jsonl)
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg); raw results in $out"
for ((r = 1; r <= rounds; ++r)); do
  for which in old new; do
    bin=$old
    [[ $which == new ]] && bin=$new
    for n in 1 4; do
      j=$("$bin" bench throughput --count 200000 --subscribers "$n" --raw --json | tail -n1)
      echo "{\"bin\":\"$which\",\"kind\":\"thr$n\",\"r\":$j}" >>"$out"
    done
    j=$("$bin" bench latency --count 20000 --raw --pin same --json | tail -n1)
    echo "{\"bin\":\"$which\",\"kind\":\"lat_same\",\"r\":$j}" >>"$out"
  done
done
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
python3 - "$out" <<'PY'
import json, statistics as st, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
med = lambda xs: st.median(xs) if xs else float("nan")
rng = lambda xs: f"[{min(xs):.2f}-{max(xs):.2f}]" if xs else ""
for kind in ("thr1", "thr4", "lat_same"):
    for b in ("old", "new"):
        rs = [x["r"] for x in rows if x["bin"] == b and x["kind"] == kind]
        if kind.startswith("thr"):
            bus = [r["bus"]["msgs_per_s_mean"] / 1e3 for r in rs]
            ratio = [r["ratio"]["msgs_per_s_mean"] for r in rs]
            lost = [r["bus"]["lost_total"] for r in rs]
            cpu = [r["bus"]["cpu_us_per_msg"] for r in rs]
            sub = [st.mean(s["cpu_us_per_msg"] for s in r["bus"]["subscribers"]) for r in rs]
            print(f"{kind} {b}: {med(bus):.0f}k msg/s per subscriber {rng(bus)}, ratio to UDP "
                  f"{med(ratio):.2f} {rng(ratio)}, lost {lost}, CPU us/msg pub {med(cpu):.2f} sub {med(sub):.2f}")
        else:
            p50 = [r["bus"]["p50_us"] / r["raw"]["p50_us"] for r in rs]
            p99 = [r["bus"]["p99_us"] / r["raw"]["p99_us"] for r in rs]
            print(f"{kind} {b}: p50 {med([r['bus']['p50_us'] for r in rs]):.2f} us (ratio {med(p50):.2f} {rng(p50)}), "
                  f"p99 {med([r['bus']['p99_us'] for r in rs]):.2f} us (ratio {med(p99):.2f} {rng(p99)})")
PY
