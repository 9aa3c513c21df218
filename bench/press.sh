#!/usr/bin/env bash
# Press throughput: virtual-button presses into a flow
#   trigger → Mutate → StoreValue (set) → StoreValue (incr) → Debug
# measured with wrk on loopback, the server pinned to core 0 and wrk to core 1.
#
# Reports accepted presses/s and press latency (wrk), and COMPLETED runs/s from the incr counter
# over the window, checking that the counter equals the number of completed runs (no lost
# updates). Bounded in time: warm-up + DURATION seconds per connection count.
#
#   bench/press.sh                       # c = 16 and 64, 10 s each
#   DURATION=15 CONNECTIONS="64" bench/press.sh
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

DURATION=${DURATION:-10}
WARMUP=${WARMUP:-3}
CONNECTIONS=${CONNECTIONS:-"16 64"}
PORT=${PORT:-18480}
TOKEN=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')
export FLOWD_BENCH_TOKEN=$TOKEN

command -v wrk >/dev/null || { echo "bench: wrk is required (apt-get install wrk)" >&2; exit 1; }
cargo build --release --bin flowd -q
DATA=$(mktemp -d)
trap 'kill $SERVER 2>/dev/null || true; wait $SERVER 2>/dev/null || true; rm -rf "$DATA"' EXIT
FLOWD_OWNER_TOKEN=$TOKEN FLOWD_LOG=warn taskset -c 0 target/release/flowd serve \
    --listen 127.0.0.1:$PORT --data-dir "$DATA" >/dev/null 2>&1 &
SERVER=$!
for _ in $(seq 1 100); do [ -f "$DATA/listen-addr" ] && break; sleep 0.1; done
U=http://127.0.0.1:$PORT
H="Authorization: Bearer $TOKEN"
api() { curl -sf -H "$H" -H 'Content-Type: application/json' "$@"; }

APP=$(api -d '{"name":"bench"}' $U/applications | jq -r .id)
FLOW=$(api -d @- $U/applications/$APP/flows <<'JSON' | jq -r .id
{"name": "press-bench",
 "triggers": [{"type": "virtualButton", "key": "press", "outputIds": [["mutate"]]}],
 "nodes": [
  {"id": "mutate", "type": "MutateNode", "outputIds": [["set"]],
   "config": {"rules": [{"type": "set", "valueTemplate": "{{data.count}}", "valueTemplateType": "json", "destination": "working.n"},
                        {"type": "set", "valueTemplate": "press", "destination": "working.tag"}]}},
  {"id": "set", "type": "StoreValueNode", "outputIds": [["incr"]],
   "config": {"keyName": "last", "valueType": "path", "valuePath": "working"}},
  {"id": "incr", "type": "StoreValueNode", "outputIds": [["debug"]],
   "config": {"keyName": "n", "valueType": "incr", "value": "1"}},
  {"id": "debug", "type": "DebugNode", "config": {"message": "pressed"}, "outputIds": [[]]}
 ]}
JSON
)
FLOW_URL=$U/applications/$APP/flows/$FLOW
counter() { api $FLOW_URL/storage | jq -r '.n // 0'; }
rss_mb() { awk '/VmRSS/ {printf "%.1f", $2/1024}' /proc/$SERVER/status; }

echo "flowd $(git rev-parse --short HEAD 2>/dev/null || echo '?'), $(nproc) cores, $(date -u +%FT%TZ)"
echo "idle RSS: $(rss_mb) MB"
taskset -c 1 wrk -t1 -c16 -d${WARMUP}s -s bench/press.lua $FLOW_URL/virtualButton >/dev/null
for C in $CONNECTIONS; do
    sleep 1
    BEFORE=$(counter)
    CPU_BEFORE=$(awk '{print $14+$15}' /proc/$SERVER/stat)
    START=$(date +%s.%N)
    OUT=$(taskset -c 1 wrk -t1 -c$C -d${DURATION}s --latency -s bench/press.lua $FLOW_URL/virtualButton)
    # Let queued runs finish, then read the counter.
    sleep 1
    END=$(date +%s.%N)
    AFTER=$(counter)
    CPU_AFTER=$(awk '{print $14+$15}' /proc/$SERVER/stat)
    SUMMARY=$(echo "$OUT" | grep '^SUMMARY' | sed 's/^SUMMARY //')
    ACCEPTED=$(echo "$SUMMARY" | jq -r '.requests - .non2xx')
    COMPLETED=$((AFTER - BEFORE))
    ELAPSED=$(echo "$END - $START" | bc)
    CPU=$(echo "scale=1; ($CPU_AFTER - $CPU_BEFORE) / $(getconf CLK_TCK) / $ELAPSED * 100" | bc)
    echo "c=$C $SUMMARY"
    echo "c=$C completed runs: $COMPLETED over the window, $(echo "scale=0; $COMPLETED / $DURATION" | bc)/s; accepted presses: $ACCEPTED; server CPU ${CPU}% of one core; RSS $(rss_mb) MB"
    # wrk stops counting with up to C requests in flight; the server may still accept and run
    # them. So the counter must lie in [accepted, accepted + C]: below means lost increments.
    if [ "$COMPLETED" -lt "$ACCEPTED" ] || [ "$COMPLETED" -gt $((ACCEPTED + C)) ]; then
        echo "c=$C MISMATCH: the incr counter moved by $COMPLETED for $ACCEPTED accepted presses (+ at most $C in flight)" >&2
        exit 1
    fi
done
