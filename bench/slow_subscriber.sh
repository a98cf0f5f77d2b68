#!/usr/bin/env bash
# bench/slow_subscriber.sh: a flat-out publisher against a subscriber far slower than it, to see
# flow control by the slowest receiver (docs/protocol.md 8.9) at work: the subscriber has a
# 256 KiB receive buffer and prints every message to a reader that takes at most LINES lines
# per 20 ms (default 300: 15,000 lines/s), so it falls more than the publisher's window behind.
# Prints what the subscriber got and lost and the publisher's counters.
#
# usage: bench/slow_subscriber.sh [PEERBUS] [COUNT] [LINES]   (defaults build/bin/peerbus 200000 300)
# Stops by itself: the subscriber gives up after 20 s without a message.
set -euo pipefail
bin=${1:-build/bin/peerbus}
count=${2:-200000}
lines=${3:-300}
port=$(python3 -c 'import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
url="udpm://239.255.$((RANDOM % 200 + 20)).$((RANDOM % 250 + 1)):$port?ttl=0&iface=127.0.0.1"
tmp=$(mktemp -d -t peerbus-slow.XXXXXX)
trap 'rm -rf "$tmp"' EXIT

"$bin" sub --url "$url&rcvbuf=262144" --name slow --count "$count" --data --stats --timeout 20 \
  flow.t 2>"$tmp/sub.err" |
  python3 -c '
import sys, time
every, n, t0 = int(sys.argv[1]), 0, time.time()
for line in sys.stdin:
    n += 1
    if n % every == 0: time.sleep(0.02)
print(f"reader: {n} lines in {time.time() - t0:.2f} s", file=sys.stderr)
' "$lines" &
reader=$!
start=$(date +%s.%N)
"$bin" pub --url "$url" --name blaster flow.t 1 --count "$count" --wait-subscribers 1 \
  --wait-timeout 10 --stats 2>"$tmp/pub.err" && pub_exit=0 || pub_exit=$?
end=$(date +%s.%N)
wait "$reader" || true  # the subscriber exits 3 when it timed out: reported below
python3 - "$tmp" "$start" "$end" "$pub_exit" <<'PY'
import json, sys
d, start, end, pub_exit = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
def last_stats(path):
    rows = [l for l in open(path) if l.startswith('{"batched_frames"')]
    return json.loads(rows[-1]) if rows else {}
lost = sum(json.loads(l)["lost"] for l in open(f"{d}/sub.err") if l.startswith('{"lost"'))
s, p = last_stats(f"{d}/sub.err"), last_stats(f"{d}/pub.err")
print(f"subscriber: delivered {s.get('delivered')}, lost {lost}, receive buffer overflows "
      f"{s.get('rx_overflows')}, recovered {s.get('recovered')}")
print(f"publisher: exit {pub_exit} after {end - start:.2f} s, rate cuts {p.get('rate_cuts')}, repairs "
      f"{p.get('repairs_sent')}, unavailable {p.get('repairs_unavailable')}, waits for a receiver "
      f"{p.get('flow_waits', 'n/a')}, stalled receivers {p.get('flow_stalls', 'n/a')}")
PY
