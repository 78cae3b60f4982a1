#!/usr/bin/env bash
# WebSocket against WebRTC-direct to the relay, our page only: two pages
# connecting at once (bench/browser-pair.mjs, simultaneous), `runs` runs
# over the relay's /ws address, then `runs` over its /webrtc-direct one,
# against one relay on loopback with the per-IP limits raised (as
# scripts/bench does for its page pairs). Prints each run's marks
# (relay connection, reservation, peer listed, direct, first chat), the
# medians, and how many page connections to the relay took over 1 s
# (the "late connections" of issue #20).
#
# Usage: bench/relay-transports.sh <relay binary> [runs] [extra relay flags...]
#   e.g. bench/relay-transports.sh target/release/relay 6
#        bench/relay-transports.sh target/debug/relay 6 --webrtc-direct-listener=libp2p
# The page is served from dist/ ($PAGE_DIR overrides: scripts/build-page).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
relay_bin=${1:?usage: bench/relay-transports.sh <relay binary> [runs] [extra relay flags...]}
runs=${2:-6}
shift $(($# >= 2 ? 2 : 1))
state=$(mktemp -d)
out=$state/relay.out
"$relay_bin" --listen-ip=127.0.0.1 --port=0 --quic-port=0 --websocket-port=0 --webrtc-port=0 \
  --stun-port=0 --http-port=0 --state-dir="$state/state" --page-dir="${PAGE_DIR:-dist}" \
  --reservation-rate-per-ip=100000 --max-reservations-per-ip=100000 \
  --circuit-rate-per-ip=100000 --max-connections-per-ip=100000 "$@" >"$out" 2>"$state/relay.log" &
relay=$!
trap 'kill $relay 2>/dev/null; rm -rf "$state"' EXIT
page=
for _ in $(seq 100); do
  page=$(sed -n 's/^Page: //p' "$out" | head -n1)
  [ -n "$page" ] && break
  sleep 0.1
done
[ -n "$page" ] || { echo "the relay did not start:" >&2; cat "$state/relay.log" >&2; exit 1; }
ws=$(grep -m1 '/ws/p2p/' "$out")
webrtc_direct=$(grep -m1 '/webrtc-direct/certhash/' "$out")
stun=$(sed -n 's/^STUN: //p' "$out" | head -n1)
for relay_addr in "$ws" "$webrtc_direct"; do
  BENCH_PAIR_ONLY=ours BENCH_PAIR_MODES=simultaneous node bench/browser-pair.mjs \
    "$page" e2e/js-peer/chat.html "$relay_addr" "$stun" "$runs" 1 0 2>&1 >/dev/null |
    { grep -E ' run [0-9]+/[0-9]+ ours( failed)?: ' || true; } | tee "$state/runs.txt"
  # Each run: "relay A/B ms, reserved A/B ms, listed A/B ms, direct A/B
  # ms, chat C ms" (A and B the two pages).
  TRANSPORT=$([ "$relay_addr" = "$ws" ] && echo WebSocket || echo WebRTC-direct) python3 -c '
import os, re, statistics, sys
marks = {}
failed = 0
for line in open(sys.argv[1]):
    if " ours failed: " in line:
        failed += 1
        continue
    for name, values in re.findall(r"(relay|reserved|listed|direct|chat) ([0-9/]+) ms", line):
        marks.setdefault(name, []).extend(int(v) for v in values.split("/"))
relay = marks.get("relay", [])
print(os.environ["TRANSPORT"] + ": medians (ms) " + ", ".join(
    f"{name} {statistics.median(values):.0f}" for name, values in marks.items()))
print(f"  {len(relay)} page connections, {sum(v > 1000 for v in relay)} took over 1 s to the relay; {failed} runs failed")
' "$state/runs.txt"
done
