#!/usr/bin/env bash
# Builds the Lambda `bootstrap` and packages it as the deployable zip for its architecture.
#
#   handler/package.sh [debug|release] [--target TRIPLE] [--out DIR] [--locked]
#
# debug|release  build profile (default release; debug is for quick local tries only).
# --target       Rust target triple to build bootstrap for (default: this machine), e.g.
#                aarch64-unknown-linux-gnu or aarch64-unknown-linux-musl (see handler/README.md).
#                The architecture recorded in the zip name and manifest is read from the binary.
# --out          output directory (default: $CARGO_TARGET_DIR/lambda).
# --locked       pass --locked to cargo (use it for shipping builds, e.g. in the Dockerfile).
#
# Writes DIR/privateapi-handler-<x86_64|arm64>.zip and DIR/privateapi-handler-<arch>.json and
# prints their paths, the CodeSha256 and sizes.
#
# CARGO_TARGET_DIR defaults to $PAPI_CACHE/handler-target ($HOME/.cache/privateapi-operator/...),
# a target dir of its own so as not to wait on the workspace's.
#
# The release build is tuned for a small binary and a fast cold start; the settings are passed as
# CARGO_PROFILE_RELEASE_* variables so that the workspace's own release profile stays as it is.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
profile=release
target=
out=
locked=()
while (($#)); do
    case $1 in
        debug | release) profile=$1 ;;
        --target) target=${2:?--target needs a triple}; shift ;;
        --target=*) target=${1#*=} ;;
        --out) out=${2:?--out needs a directory}; shift ;;
        --out=*) out=${1#*=} ;;
        --locked) locked=(--locked) ;;
        -h | --help) sed -n '2,/^set -e/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) echo "package.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done

PAPI_CACHE=${PAPI_CACHE:-$HOME/.cache/privateapi-operator}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$PAPI_CACHE/handler-target}
out=${out:-$CARGO_TARGET_DIR/lambda}

profile_flags=()
if [[ $profile == release ]]; then
    profile_flags=(--release)
    # One codegen unit + fat LTO: smaller and faster code; strip: no symbol tables in the zip.
    # opt-level "s": measured 1.04 MB binary / 510 KB zip against 1.34 MB / 639 KB at 3, with the
    # same init and invoke times (the handler does next to nothing; PAPI_HANDLER_OPT_LEVEL overrides).
    # panic stays "unwind" so that lambda_runtime can turn a panic into an error response.
    export CARGO_PROFILE_RELEASE_LTO=fat
    export CARGO_PROFILE_RELEASE_CODEGEN_UNITS=1
    export CARGO_PROFILE_RELEASE_STRIP=symbols
    export CARGO_PROFILE_RELEASE_OPT_LEVEL=${PAPI_HANDLER_OPT_LEVEL:-s}
fi

cd "$here/.."
if [[ -z $target ]]; then
    cargo build "${locked[@]}" -p privateapi-handler --bin bootstrap --bin package-handler "${profile_flags[@]}"
    binary=$CARGO_TARGET_DIR/$profile/bootstrap
else
    cargo build "${locked[@]}" -p privateapi-handler --bin bootstrap "${profile_flags[@]}" --target "$target"
    # The packager runs here, so it is built for this machine.
    cargo build "${locked[@]}" -p privateapi-handler --bin package-handler "${profile_flags[@]}"
    binary=$CARGO_TARGET_DIR/$target/$profile/bootstrap
fi

"$CARGO_TARGET_DIR/$profile/package-handler" --binary "$binary" --out "$out"
