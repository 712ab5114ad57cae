#!/usr/bin/env bash
# One benchmark run inside a fresh test bed; bench/run.sh calls it through testbed/with-testbed.sh
# with BENCH_HARNESS, BENCH_OPERATOR and BENCH_HANDLER_ZIP set.
#
#   bench/one-run.sh N LATENCY_MS OUT.json WORK_DIR [more `bench run` flags]
#
# With a latency (or BENCH_QUOTAS_FILE: AWS quotas the proxy enforces, the body of its
# PUT /__faults/quotas), the operator calls AWS through the fault proxy (testbed/faultproxy), which
# adds the latency to every call; without, it calls moto directly.
set -euo pipefail
cd "$(dirname "$0")/.."
: "${PAPI_TESTBED:?run through bench/run.sh (testbed/with-testbed.sh)}"
n=$1 latency=$2 out=$3 work=$4
shift 4
proxy=()
if ((latency > 0)) || [[ -n ${BENCH_QUOTAS_FILE:-} ]]; then
    if [[ ! -f testbed/faultproxy/start.sh ]]; then
        echo "one-run.sh: an injected latency or quotas need testbed/faultproxy, which this checkout does not have" >&2
        exit 1
    fi
    bash testbed/faultproxy/start.sh "$PAPI_TESTBED_DIR" >&2
    trap 'bash testbed/faultproxy/stop.sh "$PAPI_TESTBED_DIR" >&2' EXIT
    # shellcheck disable=SC1091
    source "$PAPI_TESTBED_DIR/faultproxy.env"
    proxy=(--faults-url "$PAPI_FAULTPROXY_URL" --operator-aws-endpoint "$PAPI_FAULTPROXY_URL")
    if [[ -n ${BENCH_QUOTAS_FILE:-} ]]; then
        proxy+=(--quotas-file "$BENCH_QUOTAS_FILE")
    fi
fi
"$BENCH_HARNESS" run --n "$n" --latency-ms "$latency" --operator "$BENCH_OPERATOR" \
    --handler-zip "$BENCH_HANDLER_ZIP" --out "$out" --work-dir "$work" "${proxy[@]}" "$@"
