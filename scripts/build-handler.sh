#!/usr/bin/env bash
# Builds the built-in handler (debug: tests only; moto does not run it) and packages it as the
# deployable zip the operator takes with --handler-zip-<arch>. Prints the zip's path.
set -euo pipefail
cd "$(dirname "$0")/.."
: "${PAPI_CACHE:=$HOME/.cache/privateapi-operator}"
: "${CARGO_TARGET_DIR:=$PAPI_CACHE/target}"
export CARGO_TARGET_DIR
out=$PAPI_CACHE/handler
mkdir -p "$out"
cargo build -q -p privateapi-handler --bin bootstrap --bin package-handler >&2
"$CARGO_TARGET_DIR/debug/package-handler" --binary "$CARGO_TARGET_DIR/debug/bootstrap" --out "$out" --max-glibc none >&2
ls "$out"/*.zip | head -n 1
