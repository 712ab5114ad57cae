#!/usr/bin/env bash
# The benchmark (`make bench`; method and figures in bench/README.md). Builds the operator and the
# handler package in release and the harness, then for each (N, latency) pair starts a fresh test
# bed and runs `bench run` in it (bench/one-run.sh), and finally writes
# bench/results/<date>-<commit>.json and .md and links them from bench/README.md.
#
#   bash bench/run.sh                                # N = 10 100 1000, latency 0 and 50 ms
#   N="10 100" LATENCY_MS="0" bash bench/run.sh      # the cross product of both lists
#   RUNS="10:0 1:50 100:50" bash bench/run.sh        # explicit N:latency pairs
#   BENCH_ARGS="--concurrency 16" bash bench/run.sh  # more `bench run` flags (see --help)
#
# moto's `pending` periods (a new endpoint, a new function) are 0 here unless
# PAPI_MOTO_ENDPOINT_PENDING_SECONDS / PAPI_MOTO_FUNCTION_PENDING_SECONDS say otherwise: they are
# the fake's stand-in for AWS's provisioning time, not the operator's, and would hide its own.
set -euo pipefail
cd "$(dirname "$0")/.."
: "${PAPI_CACHE:=$HOME/.cache/privateapi-operator}"
: "${CARGO_TARGET_DIR:=$PAPI_CACHE/target}"
export PAPI_CACHE CARGO_TARGET_DIR

runs=()
if [[ -n ${RUNS:-} ]]; then
    read -r -a runs <<<"$RUNS"
else
    for latency in ${LATENCY_MS:-0 50}; do
        for n in ${N:-10 100 1000}; do
            runs+=("$n:$latency")
        done
    done
fi
read -r -a bench_args <<<"${BENCH_ARGS:-}"

echo "== building the operator (release), the handler package (release) and the harness" >&2
cargo build --release --bin privateapi-operator
handler_target=$CARGO_TARGET_DIR/handler-release
CARGO_TARGET_DIR=$handler_target bash handler/package.sh release --out "$handler_target/lambda" >&2
cargo build --example bench
export BENCH_HARNESS=$CARGO_TARGET_DIR/debug/examples/bench
export BENCH_OPERATOR=$CARGO_TARGET_DIR/release/privateapi-operator
export BENCH_HANDLER_ZIP=$handler_target/lambda/privateapi-handler-x86_64.zip
export PAPI_MOTO_ENDPOINT_PENDING_SECONDS=${PAPI_MOTO_ENDPOINT_PENDING_SECONDS:-0}
export PAPI_MOTO_FUNCTION_PENDING_SECONDS=${PAPI_MOTO_FUNCTION_PENDING_SECONDS:-0}

stamp=$(date -u +%Y%m%dT%H%M%S)
work=$PAPI_CACHE/bench/$stamp
mkdir -p "$work"
echo "== runs: ${runs[*]} (logs: $work)" >&2
outputs=()
for run in "${runs[@]}"; do
    n=${run%%:*}
    latency=${run##*:}
    out=$work/run-$n-$latency.json
    echo "== N=$n, latency $latency ms" >&2
    bash testbed/with-testbed.sh bash bench/one-run.sh "$n" "$latency" "$out" "$work/$n-$latency" "${bench_args[@]}"
    outputs+=("$out")
done

commit=$(git rev-parse --short HEAD)
if ! git diff --quiet HEAD -- src Cargo.toml Cargo.lock bench/harness.rs; then
    commit+=-dirty
fi
date=$(date -u +%Y-%m-%d)
mapfile -t written < <("$BENCH_HARNESS" report --commit "$commit" --date "$date" --dir bench/results "${outputs[@]}")
md=${written[1]}
# bench/README.md links the newest results between its two markers.
name=$(basename "$md")
sed -i "/<!-- latest -->/,/<!-- \/latest -->/c\\<!-- latest -->\\nLatest results: [results/$name](results/$name) ([JSON](results/${name%.md}.json))\\n<!-- /latest -->" bench/README.md
echo "== results" >&2
cat "$md"
