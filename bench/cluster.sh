#!/usr/bin/env bash
# Presses/s with 1, 2 and 3 flowd nodes on one PostgreSQL schema and one NATS JetStream cluster
# (issue 8), beside the single-node baselines: the in-process queue on SQLite and on PostgreSQL.
# Every configuration gets the same CPU: all flowd nodes on core SERVER_CPU (0), wrk on LOAD_CPU
# (1); PostgreSQL and NATS run where the OS puts them (on this 2-core machine they share both
# cores with everything else — see BENCHMARKS.md for what that means).
#
# The flow is the press benchmark's (trigger → Mutate → StoreValue set → incr → Debug), FLOWS
# copies of it (each press picks one at random; with one flow every run writes the same
# storage, which a shared store serializes). One wrk per node, the connections split between
# them. Completed runs are read from the flows' stats once they stop moving (every acknowledged
# press must be counted exactly once: the check fails otherwise), and the incr counters must add
# up to them.
#
#   bench/cluster.sh                          # 10 s per configuration, 64 connections, 1 flow
#   FLOWS=64 bench/cluster.sh                 # presses spread over 64 flows
#   DURATION=5 CONNECTIONS=32 bench/cluster.sh
#   CONFIGS="pg-nats:1 pg-nats:3" bench/cluster.sh
#
# Needs PostgreSQL (FLOWD_BENCH_POSTGRES, default postgres://postgres@127.0.0.1:5432/test) and
# NATS with JetStream (FLOWD_BENCH_NATS, default nats://127.0.0.1:4222). Builds flowd in release
# mode; installs wrk into bench/.tools like run-all.sh. Results: printed, and written to
# bench/results/<UTC time>-cluster/ (summary.md, results.tsv, raw wrk output, logs).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH=$ROOT/bench
cd "$ROOT"

DURATION=${DURATION:-10}
WARMUP=${WARMUP:-3}
CONNECTIONS=${CONNECTIONS:-64}
FLOWS=${FLOWS:-1}
CONFIGS=${CONFIGS:-"sqlite-local:1 pg-local:1 pg-nats:1 pg-nats:2 pg-nats:3"}
SETTLE=${SETTLE:-1}
DRAIN_TIMEOUT=${DRAIN_TIMEOUT:-60}
SERVER_CPU=${SERVER_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}
START_TIMEOUT=${START_TIMEOUT:-60}
POSTGRES=${FLOWD_BENCH_POSTGRES:-postgres://postgres@127.0.0.1:5432/test}
NATS=${FLOWD_BENCH_NATS:-nats://127.0.0.1:4222}

TOOLS=$BENCH/.tools
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
RESULTS=${RESULTS:-$BENCH/results/$STAMP-cluster}
mkdir -p "$RESULTS" "$TOOLS"
# shellcheck source=bench/lib.sh
source "$BENCH/lib.sh"
bench_session
SCHEMAS=()
finish() {
    cleanup
    local schema
    for schema in "${SCHEMAS[@]}"; do
        psql "$POSTGRES" -qc "DROP SCHEMA IF EXISTS $schema CASCADE" >/dev/null 2>&1 || true
    done
}
trap finish EXIT
: >"$RESULTS/results.tsv"

for tool in curl jq bc taskset awk psql; do
    command -v "$tool" >/dev/null || { echo "bench: $tool is needed" >&2; exit 2; }
done
ensure_wrk
log "building flowd (release)"
cargo build --release --bin flowd -q
FLOWD=${FLOWD:-$ROOT/target/release/flowd}

# runs_counted: runs in the stats of every flow in FLOW_URLS (a day of minutes), as the first
# node reports them.
runs_counted() {
    local url total=0
    for url in "${FLOW_URLS[@]}"; do
        total=$((total + $(api "$url/stats?resolution=60000" | jq '[.metrics[].runCount] | add // 0')))
    done
    echo "$total"
}
# counted_increments: the incr counters of every flow in FLOW_URLS, added up.
counted_increments() {
    local url total=0
    for url in "${FLOW_URLS[@]}"; do total=$((total + $(counter "$url"))); done
    echo "$total"
}

# start_nodes STORE QUEUE COUNT: starts COUNT nodes on SERVER_CPU; sets NODE_URLS and NODE_PIDS.
start_nodes() {
    local store=$1 queue=$2 count=$3 i
    NODE_URLS=()
    NODE_PIDS=()
    for i in $(seq 1 "$count"); do
        local dir=$WORK/node-$RANDOM-$i
        mkdir -p "$dir"
        printf 'store = "%s"\nqueue = "%s"\n' "$store" "$queue" >"$dir/flowd.toml"
        flowd_start "$dir" "$dir/flowd.toml"
        NODE_URLS+=("$FLOWD_URL")
        NODE_PIDS+=("$FLOWD_PID")
    done
    FLOWD_URL=${NODE_URLS[0]}
}

stop_nodes() {
    local pid
    for pid in "${NODE_PIDS[@]}"; do stop_pid "$pid" >/dev/null; done
}

section "presses/s by configuration (flowd on core $SERVER_CPU, wrk on core $LOAD_CPU, c=$CONNECTIONS, $FLOWS flow(s))"
printf '%-14s %5s %10s %10s %8s %8s %8s %s\n' config nodes accepted/s completed/s p50_ms p99_ms cpu% rss_mb
for config in $CONFIGS; do
    kind=${config%%:*}
    nodes=${config##*:}
    cluster="bench_$(date +%s)_$RANDOM"
    case $kind in
        sqlite-local) store=sqlite queue=local ;;
        pg-local | pg-nats)
            schema=$cluster
            SCHEMAS+=("$schema")
            store="$POSTGRES?options=-c%20search_path%3D$schema"
            queue=local
            [ "$kind" = pg-nats ] && queue="$NATS?cluster=$cluster"
            ;;
        *) echo "bench: unknown configuration $kind" >&2; exit 2 ;;
    esac
    start_nodes "$store" "$queue" "$nodes"
    app=$(new_app "cluster-$kind-$nodes")
    FLOW_URLS=()
    : >"$WORK/paths"
    for _ in $(seq 1 "$FLOWS"); do
        flow=$(new_flow "$app" "$(press_flow_json)")
        FLOW_URLS+=("$FLOWD_URL/applications/$app/flows/$flow")
        echo "/applications/$app/flows/$flow/virtualButton" >>"$WORK/paths"
    done
    export FLOW_PATHS=$WORK/paths
    targets=()
    for url in "${NODE_URLS[@]}"; do targets+=("$url/applications/$app/flows/$flow/virtualButton"); done
    per_node=$(((CONNECTIONS + nodes - 1) / nodes))
    # `wait` on the wrk processes only: the nodes are children of this shell too.
    loads=()
    for target in "${targets[@]}"; do
        wrk_run -t1 -c"$per_node" -d"${WARMUP}s" -s "$BENCH/press.lua" "$target" >/dev/null 2>&1 &
        loads+=($!)
    done
    wait "${loads[@]}"
    before=$(settled runs_counted)
    ticks_before=0
    for pid in "${NODE_PIDS[@]}"; do ticks_before=$((ticks_before + $(cpu_ticks "$pid"))); done
    began=$(now_ns)
    i=0
    loads=()
    for target in "${targets[@]}"; do
        i=$((i + 1))
        wrk_run -t1 -c"$per_node" -d"${DURATION}s" --latency -s "$BENCH/press.lua" "$target" \
            >"$RESULTS/wrk-$kind-$nodes-$i.txt" 2>&1 &
        loads+=($!)
    done
    wait "${loads[@]}"
    ticks_after=0
    for pid in "${NODE_PIDS[@]}"; do ticks_after=$((ticks_after + $(cpu_ticks "$pid"))); done
    cpu=$(cpu_pct "$ticks_before" "$ticks_after" "$began")
    after=$(settled runs_counted)
    accepted=0 p50=0 p99=0 secs=$DURATION
    for out in "$RESULTS"/wrk-"$kind"-"$nodes"-*.txt; do
        line=$(grep '^SUMMARY' "$out" | sed 's/^SUMMARY //' || echo '{}')
        ok=$(jq '(.requests // 0) - (.non2xx // 0)' <<<"$line")
        accepted=$((accepted + ok))
        secs=$(jq ".secs // $DURATION" <<<"$line")
        p50=$(jq -r --argjson m "$p50" '[.p50_ms // 0, $m] | max' <<<"$line")
        p99=$(jq -r --argjson m "$p99" '[.p99_ms // 0, $m] | max' <<<"$line")
    done
    completed=$((after - before))
    # wrk stops with presses in flight: those may be acknowledged after it stopped counting.
    if [ "$completed" -lt "$accepted" ] || [ "$completed" -gt $((accepted + CONNECTIONS)) ]; then
        fail "$kind x$nodes: $completed runs counted for $accepted acknowledged presses"
    fi
    counter=$(counted_increments)
    [ "$counter" = "$after" ] || fail "$kind x$nodes: incr counters $counter, stats $after"
    rss=0
    for pid in "${NODE_PIDS[@]}"; do rss=$(calc "$rss + $(rss_mb "$pid")"); done
    accepted_rate=$(calc "$accepted / $secs" 0)
    completed_rate=$(calc "$completed / $secs" 0)
    printf '%-14s %5s %10s %10s %8s %8s %8s %s\n' "$kind" "$nodes" "$accepted_rate" \
        "$completed_rate" "$p50" "$p99" "$cpu" "$rss"
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$kind" "$nodes" "$accepted_rate" \
        "$completed_rate" "$p50" "$p99" "$cpu" "$rss" >>"$RESULTS/results.tsv"
    stop_nodes
done
{
    echo "$FLOWS flow(s), c=$CONNECTIONS, $DURATION s per configuration"
    echo
    echo "| configuration | nodes | accepted/s | completed/s | p50 ms | p99 ms | flowd CPU % | flowd RSS MB |"
    echo "|---|---|---|---|---|---|---|---|"
    awk -F'\t' '{printf "| %s | %s | %s | %s | %s | %s | %s | %s |\n", $1, $2, $3, $4, $5, $6, $7, $8}' \
        "$RESULTS/results.tsv"
} >"$RESULTS/summary.md"
echo
echo "results: $RESULTS"
[ "${FAILED:-0}" = 0 ] || { echo "bench: some checks failed (above)" >&2; exit 1; }
