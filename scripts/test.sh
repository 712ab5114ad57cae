#!/usr/bin/env bash
# The test suite; run it through `make test` (testbed/with-testbed.sh provides the test bed).
set -euo pipefail
cd "$(dirname "$0")/.."
: "${PAPI_TESTBED:?run through make test (testbed/with-testbed.sh)}"
cargo fmt --all -- --check
zip=$(bash scripts/build-handler.sh)
export PAPI_HANDLER_ZIP_X86_64=$zip
echo "handler package: $zip"
# Four test binaries (tests/checks, tests/parts, tests/e2e, handler/tests/handler) and the unit
# tests, built once. The end-to-end tests mostly wait for the operator and the fakes: their binary
# runs four tests at a time (PAPI_E2E_THREADS) on the test bed, side by side with the other
# binaries, which cargo runs one after the other (cargo holds the build directory while its tests
# run, so the end-to-end binary is started directly).
status=0
e2e_bin=$(cargo test --workspace --no-run --lib --bins --test checks --test parts --test handler \
    --test e2e --message-format=json-render-diagnostics |
    python3 -c '
import json, sys
for line in sys.stdin:
    try:
        message = json.loads(line)
    except ValueError:
        continue
    if (message.get("reason") == "compiler-artifact" and message.get("executable")
            and message["target"]["name"] == "e2e" and message["profile"]["test"]):
        print(message["executable"])
')
[[ -x $e2e_bin ]] || { echo "scripts/test.sh: no e2e test binary built" >&2; exit 1; }
e2e_log=$(mktemp "${TMPDIR:-/tmp}/papi-e2e.XXXXXX")
trap 'rm -f "$e2e_log"' EXIT
"$e2e_bin" --test-threads="${PAPI_E2E_THREADS:-4}" >"$e2e_log" 2>&1 &
e2e_pid=$!
cargo test --workspace --no-fail-fast --lib --bins --test checks --test parts --test handler 2>&1 ||
    status=$?
e2e_status=0
wait "$e2e_pid" || e2e_status=$?
echo "---- tests/e2e (run beside the others) ----"
cat "$e2e_log"
[[ $e2e_status -eq 0 ]] || status=$e2e_status
exit "$status"
