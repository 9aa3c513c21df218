#!/usr/bin/env bash
# Soak: mixed load on one flowd for a bounded time, sampling the server every 10 s.
#
#   bench/soak.sh                 # 10 minutes (SOAK_SECS=600), retention 2 minutes
#   SOAK_SECS=60 bench/soak.sh    # a short look
#
# The load, all at once on LOAD_CPU while flowd runs on SERVER_CPU:
#   - paced presses of the press flow (Mutate → StoreValue set → incr → Debug),
#   - paced presses of a flow whose run always fails (run errors pile up, then retention
#     deletes them),
#   - paced presses of a Function node flow (QuickJS),
#   - a REST loop: storage PATCH and GET, GET errors, GET stats, flow PATCH, version create
#     (every call must succeed).
# Every SAMPLE_SECS: RSS, open file descriptors, threads, database file + WAL size, rows of run
# history. At the end the checks: RSS, fds and the database must be flat over the second half
# (the last sample at most GROWTH_PCT above the half-way sample, fds at most +8), and the incr
# counter must equal the completed press runs. Prints a Markdown table (for RELIABILITY.md) and
# leaves samples.tsv in bench/results/soak-<stamp>/. Exits non-zero when a check fails.
set -euo pipefail
BENCH=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$BENCH")
cd "$ROOT"

SOAK_SECS=${SOAK_SECS:-600}
SAMPLE_SECS=${SAMPLE_SECS:-10}
RETENTION_MIN=${RETENTION_MIN:-2}
PRESS_C=${PRESS_C:-8}
PRESS_DELAY_MS=${PRESS_DELAY_MS:-4}      # per connection: about PRESS_C * 1000 / delay presses/s
SIDE_DELAY_MS=${SIDE_DELAY_MS:-50}       # the failing and Function flows, 2 connections each
GROWTH_PCT=${GROWTH_PCT:-20}
SERVER_CPU=${SERVER_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}
START_TIMEOUT=${START_TIMEOUT:-60}
SETTLE=${SETTLE:-1}

TOOLS=$BENCH/.tools
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
RESULTS=${RESULTS:-$BENCH/results/soak-$STAMP}
mkdir -p "$RESULTS" "$TOOLS"
# shellcheck source=bench/lib.sh
source "$BENCH/lib.sh"
bench_session
trap cleanup EXIT
: >"$RESULTS/results.tsv"

for tool in curl jq bc taskset awk; do
    command -v $tool >/dev/null || { echo "soak: $tool is required" >&2; exit 2; }
done
ensure_wrk
log "building flowd (release)"
cargo build --release --bin flowd -q
FLOWD=${CARGO_TARGET_DIR:-$ROOT/target}/release/flowd

DATA=$WORK/data
mkdir -p "$DATA"
printf 'retention-minutes = %s\n' "$RETENTION_MIN" >"$WORK/flowd.toml"
flowd_start "$DATA" "$WORK/flowd.toml"
log "flowd pid $FLOWD_PID at $FLOWD_URL"

APP=$(new_app soak)
PRESS_FLOW=$(new_flow "$APP" "$(press_flow_json)")
FAIL_FLOW=$(new_flow "$APP" '{"name": "soak-fails",
  "triggers": [{"type": "virtualButton", "key": "press", "outputIds": [["boom"]]}],
  "nodes": [{"id": "boom", "type": "ThrowErrorNode", "outputIds": [],
             "config": {"messageTemplate": "soak failure {{data.count}}"}}]}')
FN_FLOW=$(new_flow "$APP" "$(function_flow_json 1)")
FLOWS=$FLOWD_URL/applications/$APP/flows

# The REST loop: runs until killed. A failed call is written to REST_FAILS (checked at the end).
REST_FAILS=$RESULTS/rest-failures.txt
: >"$REST_FAILS"
rest_call() { api "$@" >/dev/null 2>&1 || echo "$*" >>"$REST_FAILS"; }
rest_loop() {
    local i=0 pad
    pad=$(printf '%0200d' 0)
    while :; do
        i=$((i + 1))
        rest_call -X PATCH -d "{\"key\": \"k$((i % 500))\", \"value\": {\"i\": $i, \"pad\": \"$pad\"}}" \
            "$FLOWS/$PRESS_FLOW/storage"
        rest_call "$FLOWS/$PRESS_FLOW/storage"
        rest_call "$FLOWS/$FAIL_FLOW/errors?limit=1000"
        rest_call "$FLOWS/$PRESS_FLOW/stats?duration=3600000&resolution=60000"
        rest_call -X PATCH -d "{\"description\": \"soak $i\"}" "$FLOWS/$PRESS_FLOW"
        if [ $((i % 20)) = 0 ]; then
            rest_call -d "{\"version\": \"v$i\"}" "$FLOWS/$FN_FLOW/versions"
        fi
        sleep 0.1
    done
}

# sample SECONDS: one row of samples.tsv.
sample() {
    local pid=$FLOWD_PID db wal rows
    db=$(stat -c %s "$DATA/flowd.db" 2>/dev/null || echo 0)
    wal=$(stat -c %s "$DATA/flowd.db-wal" 2>/dev/null || echo 0)
    rows=$(api "$FLOWS/$FAIL_FLOW/errors?limit=10000&duration=86400000" | jq '.errors | length')
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$1" "$(rss_mb "$pid")" \
        "$(find "/proc/$pid/fd" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l)" \
        "$(awk '/^Threads/ {print $2}' "/proc/$pid/status")" \
        "$(calc "$db / 1048576" 2)" "$(calc "$wal / 1048576" 2)" "$rows"
}

log "soak for $SOAK_SECS s (retention $RETENTION_MIN min), sampling every $SAMPLE_SECS s"
printf 'secs\trss_mb\tfds\tthreads\tdb_mb\twal_mb\terrors_kept\n' >"$RESULTS/samples.tsv"
sample 0 | tee -a "$RESULTS/samples.tsv"
START_TICKS=$(cpu_ticks "$FLOWD_PID")
BEGAN=$(now_ns)
WRK_DELAY_MS=$PRESS_DELAY_MS wrk_run -t1 -c"$PRESS_C" -d"${SOAK_SECS}s" -s "$BENCH/press.lua" \
    "$FLOWS/$PRESS_FLOW/virtualButton" >"$RESULTS/wrk-press.txt" 2>&1 &
PIDS+=($!)
WRK_DELAY_MS=$SIDE_DELAY_MS wrk_run -t1 -c2 -d"${SOAK_SECS}s" -s "$BENCH/press.lua" \
    "$FLOWS/$FAIL_FLOW/virtualButton" >"$RESULTS/wrk-fail.txt" 2>&1 &
PIDS+=($!)
WRK_DELAY_MS=$SIDE_DELAY_MS wrk_run -t1 -c2 -d"${SOAK_SECS}s" -s "$BENCH/press.lua" \
    "$FLOWS/$FN_FLOW/virtualButton" >"$RESULTS/wrk-function.txt" 2>&1 &
PIDS+=($!)
taskset -c "$LOAD_CPU" bash -c "$(declare -f api rest_call rest_loop); $(declare -p AUTH FLOWS PRESS_FLOW FAIL_FLOW FN_FLOW REST_FAILS); rest_loop" &
REST_PID=$!
PIDS+=("$REST_PID")

for ((t = SAMPLE_SECS; t <= SOAK_SECS; t += SAMPLE_SECS)); do
    sleep $((BEGAN / 1000000000 + t - $(date +%s))) 2>/dev/null || true
    kill -0 "$FLOWD_PID" 2>/dev/null || { fail "flowd died at ${t} s"; break; }
    sample "$t" | tee -a "$RESULTS/samples.tsv"
done
CPU=$(cpu_pct "$START_TICKS" "$(cpu_ticks "$FLOWD_PID")" "$BEGAN")
kill "$REST_PID" 2>/dev/null || true
wait "${PIDS[@]:1}" 2>/dev/null || true

# Checks.
sleep "$SETTLE"
summary_of() { grep '^SUMMARY' "$1" | sed 's/^SUMMARY //'; }
accepted=$(summary_of "$RESULTS/wrk-press.txt" | jq '.requests - .non2xx')
counter=$(counter "$FLOWS/$PRESS_FLOW")
check_counted "soak: press flow incr counter" "$counter" "$accepted" "$PRESS_C"
rest_failed=$(wc -l <"$REST_FAILS")
[ "$rest_failed" = 0 ] || fail "$rest_failed REST calls failed (first: $(head -1 "$REST_FAILS"))"
half=$(awk -v h=$((SOAK_SECS / 2)) -F'\t' 'NR > 1 && $1 >= h {print; exit}' "$RESULTS/samples.tsv")
last=$(tail -1 "$RESULTS/samples.tsv")
col() { cut -f"$2" <<<"$1"; }
grown() { [ "$(calc "$2 > $1 * (100 + $GROWTH_PCT) / 100" 0)" = 1 ]; }
grown "$(col "$half" 2)" "$(col "$last" 2)" && fail "RSS grew in the second half: $(col "$half" 2) → $(col "$last" 2) MB"
[ "$(col "$last" 3)" -le $(($(col "$half" 3) + 8)) ] || fail "fds grew in the second half: $(col "$half" 3) → $(col "$last" 3)"
grown "$(col "$half" 5)" "$(col "$last" 5)" && fail "the database grew in the second half: $(col "$half" 5) → $(col "$last" 5) MB"

{
    echo "## Soak, $STAMP"
    echo
    echo "\`SOAK_SECS=$SOAK_SECS bench/soak.sh\` (flowd $(git rev-parse --short HEAD), retention $RETENTION_MIN min,"
    echo "presses c=$PRESS_C at ${PRESS_DELAY_MS} ms pauses + failing and Function flows c=2 at ${SIDE_DELAY_MS} ms + REST loop)."
    echo "Press flow: $accepted presses accepted, incr counter $counter; flowd CPU $CPU % of a core; REST calls failed: $rest_failed."
    for f in press fail function; do
        echo "wrk $f: $(summary_of "$RESULTS/wrk-$f.txt")"
    done
    echo
    echo "| s | RSS MB | fds | threads | db MB | WAL MB | errors kept |"
    echo "|---|---|---|---|---|---|---|"
    awk -F'\t' 'NR > 1 {printf "| %s | %s | %s | %s | %s | %s | %s |\n", $1, $2, $3, $4, $5, $6, $7}' \
        "$RESULTS/samples.tsv"
} | tee "$RESULTS/summary.md"
flowd_stop
if [ "$FAILED" -gt 0 ]; then
    echo "soak: $FAILED check(s) failed (see above)" >&2
    exit 1
fi
echo "soak: all checks held; results in $RESULTS"
