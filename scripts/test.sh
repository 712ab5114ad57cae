#!/usr/bin/env bash
# The test suite; run it through `make test` (testbed/with-testbed.sh provides the test bed).
set -euo pipefail
cd "$(dirname "$0")/.."
: "${PAPI_TESTBED:?run through make test (testbed/with-testbed.sh)}"
cargo fmt --all -- --check
zip=$(bash scripts/build-handler.sh)
export PAPI_HANDLER_ZIP_X86_64=$zip
echo "handler package: $zip"
# Test binaries run one after the other; the tests inside each run in parallel.
cargo test --workspace --no-fail-fast 2>&1
