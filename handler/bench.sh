#!/usr/bin/env bash
# Measures the built-in Lambda backend: sizes, and init/invoke times under the Lambda Runtime
# Interface Emulator (RIE). A benchmark to run by hand, not a test.
#
#   handler/bench.sh [--runs N] [--warm M] [--skip-build]
#
# --runs N      cold starts to measure (default 10): each starts a fresh RIE, which execs bootstrap
#               on the first invocation.
# --warm M      warm invocations after each cold one (default 10).
# --skip-build  use the binaries already built (release via package.sh, debug via cargo build).
#
# Prints medians of:
#   init (rapid)     RIE's "INIT REPORT(durationMs)": from exec of bootstrap until it asks the
#                    Runtime API for its first event (process start, runtime set-up, response build).
#   init (REPORT)    the "Init Duration" of RIE's REPORT line. RIE only times its own Init call here
#                    (the runtime starts asynchronously), so it reads lower than the real init.
#   cold/warm invoke the REPORT "Duration" of the first / the following invocations (RIE's
#                    time from receiving the request to having the response; cold includes init).
#   INVOKE RTDONE    rapid's "INVOKE RTDONE(duration)" of warm invocations: from handing the
#                    event to the runtime to its response (the function's own share).
#   cold/warm client curl's total time for the HTTP invoke round trip (cold includes init).
#
# Needs curl and the emulator ($PAPI_RIE, else $PAPI_CACHE/bin/aws-lambda-rie: testbed/rie/install.sh).
# Uses only 127.0.0.1. CARGO_TARGET_DIR defaults to $PAPI_CACHE/handler-target.
set -euo pipefail

runs=10
warm=10
build=1
while (($#)); do
    case $1 in
        --runs) runs=${2:?}; shift ;;
        --warm) warm=${2:?}; shift ;;
        --skip-build) build=0 ;;
        -h | --help) sed -n '2,/^set -e/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) echo "bench.sh: unknown argument $1" >&2; exit 2 ;;
    esac
    shift
done

here=$(cd "$(dirname "$0")" && pwd)
PAPI_CACHE=${PAPI_CACHE:-$HOME/.cache/privateapi-operator}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$PAPI_CACHE/handler-target}
rie=${PAPI_RIE:-$PAPI_CACHE/bin/aws-lambda-rie}
[[ -x $rie ]] || { echo "bench.sh: no emulator at $rie: run testbed/rie/install.sh" >&2; exit 1; }
command -v curl >/dev/null || { echo "bench.sh: curl is needed" >&2; exit 1; }

if ((build)); then
    if ! log=$("$here/package.sh" release 2>&1 && cd "$here/.." &&
        cargo build -p privateapi-handler --bin bootstrap 2>&1); then
        echo "$log" >&2
        exit 1
    fi
fi
release_bin=$CARGO_TARGET_DIR/release/bootstrap
debug_bin=$CARGO_TARGET_DIR/debug/bootstrap
lambda_dir=$CARGO_TARGET_DIR/lambda
case $(uname -m) in aarch64 | arm64) arch=arm64 ;; *) arch=$(uname -m) ;; esac
zip=$lambda_dir/privateapi-handler-$arch.zip
[[ -f $release_bin && -f $debug_bin && -f $zip ]] || { echo "bench.sh: build first (drop --skip-build)" >&2; exit 1; }

work=$(mktemp -d)
rie_pid=
cleanup() {
    if [[ -n $rie_pid ]] && kill -0 "$rie_pid" 2>/dev/null; then
        kill -TERM "$rie_pid" 2>/dev/null || true
        wait "$rie_pid" 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT

event=$here/tests/fixtures/proxy-path.json

port_in_use() { # port -> 0 if something listens on it (from /proc: no traffic)
    local hex
    hex=$(printf ':%04X ' "$1")
    grep -q "$hex" /proc/net/tcp /proc/net/tcp6 2>/dev/null
}
free_port() {
    local p
    while :; do
        p=$((20000 + RANDOM % 30000))
        port_in_use "$p" || { echo "$p"; return; }
    done
}

median() { sort -g | awk '{a[NR]=$1} END {if (NR==0) print "n/a"; else if (NR%2) print a[(NR+1)/2]; else printf "%.3f\n", (a[NR/2]+a[NR/2+1])/2}'; }

# One cold start + $warm warm invocations of binary $1; appends to $work/*.txt.
measure() {
    local bin=$1 tag=$2 port api log t
    port=$(free_port)
    api=$(free_port)
    log=$work/rie-$tag.log
    (cd "$work" && exec env -i PATH="$PATH" AWS_LAMBDA_FUNCTION_NAME=privateapi-handler \
        AWS_LAMBDA_FUNCTION_MEMORY_SIZE=128 AWS_REGION=us-east-1 \
        "$rie" --runtime-interface-emulator-address "127.0.0.1:$port" \
        --runtime-api-address "127.0.0.1:$api" "$bin" >"$log" 2>&1) &
    rie_pid=$!
    for _ in $(seq 200); do
        port_in_use "$port" && break
        sleep 0.02
    done
    local url=http://127.0.0.1:$port/2015-03-31/functions/function/invocations
    t=$(curl -sS -o "$work/out.json" -w '%{time_total}' -XPOST "$url" --data-binary "@$event")
    grep -q '"statusCode":200' "$work/out.json" || { echo "bench.sh: bad response: $(cat "$work/out.json")" >&2; cat "$log" >&2; exit 1; }
    awk -v t="$t" 'BEGIN {print t*1000}' >>"$work/$tag-cold-client.txt"
    for _ in $(seq "$warm"); do
        t=$(curl -sS -o /dev/null -w '%{time_total}' -XPOST "$url" --data-binary "@$event")
        awk -v t="$t" 'BEGIN {print t*1000}' >>"$work/$tag-warm-client.txt"
    done
    kill -TERM "$rie_pid" 2>/dev/null || true
    wait "$rie_pid" 2>/dev/null || true
    rie_pid=
    grep -o 'INIT REPORT(durationMs: [0-9.]*' "$log" | grep -o '[0-9.]*$' >>"$work/$tag-init-rapid.txt"
    grep -o 'Init Duration: [0-9.]*' "$log" | grep -o '[0-9.]*$' >>"$work/$tag-init-report.txt"
    grep 'Init Duration' "$log" | grep -o '	Duration: [0-9.]*' | grep -o '[0-9.]*$' >>"$work/$tag-cold-invoke.txt"
    grep '^REPORT' "$log" | grep -v 'Init Duration' | grep -o '	Duration: [0-9.]*' | grep -o '[0-9.]*$' >>"$work/$tag-warm-invoke.txt"
    grep -o 'INVOKE RTDONE(status: success, produced bytes: [0-9]*, duration: [0-9.]*' "$log" |
        grep -o '[0-9.]*$' | tail -n +2 >>"$work/$tag-warm-rtdone.txt"
}

for _ in $(seq "$runs"); do
    measure "$release_bin" release
    measure "$debug_bin" debug
done

size() { stat -c %s "$1"; }
echo "privateapi-handler bench ($(uname -m), $runs cold starts x $warm warm invocations, medians)"
printf '%-42s %s\n' "zip ($(basename "$zip"))" "$(size "$zip") bytes"
printf '%-42s %s\n' "bootstrap, release (stripped, LTO)" "$(size "$release_bin") bytes"
printf '%-42s %s\n' "bootstrap, debug" "$(size "$debug_bin") bytes"
for tag in release debug; do
    printf '%-42s %s ms\n' \
        "$tag: init (rapid INIT REPORT)" "$(median <"$work/$tag-init-rapid.txt")" \
        "$tag: init (REPORT Init Duration)" "$(median <"$work/$tag-init-report.txt")" \
        "$tag: cold invoke (REPORT)" "$(median <"$work/$tag-cold-invoke.txt")" \
        "$tag: warm invoke (REPORT)" "$(median <"$work/$tag-warm-invoke.txt")" \
        "$tag: warm invoke (rapid INVOKE RTDONE)" "$(median <"$work/$tag-warm-rtdone.txt")" \
        "$tag: cold round trip (client)" "$(median <"$work/$tag-cold-client.txt")" \
        "$tag: warm round trip (client)" "$(median <"$work/$tag-warm-client.txt")"
done
