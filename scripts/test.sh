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
# tests. The end-to-end tests mostly wait for the operator and the fakes, so they run four at a
# time (PAPI_E2E_THREADS) on one test bed; the others keep cargo's default (one per core).
status=0
cargo test --workspace --no-fail-fast --lib --bins --test checks --test parts --test handler 2>&1 ||
    status=$?
cargo test --workspace --no-fail-fast --test e2e -- --test-threads="${PAPI_E2E_THREADS:-4}" 2>&1 ||
    status=$?
exit "$status"
