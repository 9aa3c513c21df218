#!/usr/bin/env bash
# User-space instructions per request, counted by valgrind's callgrind: a measure of flowd's own
# work that does not swing with the machine's other load, unlike requests/s (which on a shared
# instance vary by ±5 % between windows with nothing changed). Kernel time (TCP, the writev of
# each answer) is not counted, so a change's effect on req/s is smaller than its effect here.
#
#   bench/instructions.sh press              # the press flow of benchmark 1
#   bench/instructions.sh webhook            # the waiting webhook of benchmark 2
#   bench/instructions.sh empty|health       # the floors: a flow with no nodes, GET /health
#   FLOWD=/tmp/flowd-old SECS=20 bench/instructions.sh webhook   # another build, longer
#
# flowd runs under callgrind with instrumentation off while it starts and warms up (3 s of
# load); then 8 connections load it for SECS (10) seconds with instrumentation on, and the
# count is divided by the requests wrk completed. The callgrind output is kept in
# bench/results/instructions-<kind>-<UTC time>.out for callgrind_annotate. Needs valgrind
# (Debian: apt-get install valgrind). Background work (accounting and storage batches) is
# counted too and depends on how requests batch, so runs differ by about 1 %.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH=$ROOT/bench
TOOLS=$BENCH/.tools
KIND=${1:-}
case $KIND in
    press | webhook | empty | health) ;;
    *) sed -n '2,17p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 2 ;;
esac
for tool in valgrind callgrind_control curl jq taskset; do
    command -v $tool >/dev/null || { echo "bench: $tool is required" >&2; exit 2; }
done
SECS=${SECS:-10}
SERVER_CPU=${SERVER_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}
SETTLE=1
RESULTS=$BENCH/results
mkdir -p "$RESULTS"
# shellcheck source=bench/lib.sh
source "$BENCH/lib.sh"
bench_session
trap cleanup EXIT
ensure_wrk
if [ -z "${FLOWD:-}" ]; then
    cargo build --release --bin flowd -q
    FLOWD=${CARGO_TARGET_DIR:-$ROOT/target}/release/flowd
fi

OUT=$RESULTS/instructions-$KIND-$(date -u +%Y%m%dT%H%M%SZ).out
data=$WORK/data
mkdir -p "$data"
FLOWD_OWNER_TOKEN=$TOKEN FLOWD_LOG=warn taskset -c "$SERVER_CPU" valgrind --tool=callgrind \
    --instr-atstart=no --callgrind-out-file="$OUT" \
    "$FLOWD" serve --listen 127.0.0.1:0 --data-dir "$data" >"$WORK/flowd.log" 2>&1 &
FLOWD_PID=$!
PIDS+=("$FLOWD_PID")
deadline=$(($(now_ns) + 120 * 1000000000))
until [ -s "$data/listen-addr" ] && curl -sf -o /dev/null "http://$(cat "$data/listen-addr")/health"; do
    if ! kill -0 "$FLOWD_PID" 2>/dev/null || [ "$(now_ns)" -gt "$deadline" ]; then
        echo "bench: flowd did not start under valgrind (see $WORK/flowd.log)" >&2
        exit 2
    fi
    sleep 0.2
done
FLOWD_URL=http://$(cat "$data/listen-addr")

app=$(new_app instructions)
script=$BENCH/press.lua
case $KIND in
    press) url=$FLOWD_URL/applications/$app/flows/$(new_flow "$app" "$(press_flow_json)")/virtualButton ;;
    empty) url=$FLOWD_URL/applications/$app/flows/$(new_flow "$app" "$(empty_flow_json)")/virtualButton ;;
    health) url=$FLOWD_URL/health; export WRK_METHOD=GET ;;
    webhook)
        hook=$(api -d '{"name": "instructions", "waitForReply": true}' "$FLOWD_URL/applications/$app/webhooks")
        new_flow "$app" "$(reqreply_flow_json "$(jq -r .id <<<"$hook")")" >/dev/null
        url=$FLOWD_URL/webhooks/$(jq -r .token <<<"$hook")
        script=$BENCH/post.lua
        ;;
esac
wrk_run -t1 -c8 -d3s -s "$script" "$url" >/dev/null 2>&1 || true
callgrind_control -i on "$FLOWD_PID" >/dev/null 2>&1
requests=$(wrk_run -t1 -c8 -d"${SECS}s" -s "$script" "$url" 2>&1 | sed -n 's/^SUMMARY //p' | jq -r .requests)
sleep 1 # runs still queued (presses are answered before they run)
callgrind_control -i off "$FLOWD_PID" >/dev/null 2>&1
stop_pid "$FLOWD_PID" >/dev/null
total=$(sed -n 's/^totals: //p' "$OUT" | head -1)
[ -n "$total" ] && [ "${requests:-0}" -gt 0 ] || { echo "bench: no count (see $OUT)" >&2; exit 1; }
echo "$KIND: $requests requests, $total instructions, $((total / requests)) per request ($(basename "$OUT"))"
