#!/usr/bin/env bash
# Builds the AWS Lambda Runtime Interface Emulator (RIE) from the Go module proxy into
# $PAPI_CACHE/bin/aws-lambda-rie (see testbed/CONTRACT.md), and installs the Node.js runtime
# interface client (install-node-ric.sh).
#
# Idempotent: when the stamp file names the pinned version and the binary is there, it returns at once.
#
# Version: upstream tags its releases `v1.NN`, which are not semantic versions (no patch number), so the
# module proxy cannot serve them as module versions: the newest thing it serves is a pseudo-version of the
# upstream default branch. We pin that pseudo-version (check with
# `go list -m -json github.com/aws/aws-lambda-runtime-interface-emulator@latest`).
set -euo pipefail

RIE_MODULE=github.com/aws/aws-lambda-runtime-interface-emulator
RIE_VERSION=v0.0.0-20261030222936-bef5c4ba774d
RIE_RECIPE=1 # bump when the build below changes

PAPI_CACHE=${PAPI_CACHE:-$HOME/.cache/privateapi-operator}
bin=$PAPI_CACHE/bin/aws-lambda-rie
stamp=$PAPI_CACHE/stamps/aws-lambda-rie

# The runtime interface client of the nodejs* runtimes, beside the emulator.
bash "$(dirname "${BASH_SOURCE[0]}")/install-node-ric.sh"

if [[ -x $bin && -f $stamp && "$(cat "$stamp")" == "$RIE_MODULE@$RIE_VERSION recipe $RIE_RECIPE" ]]; then
    exit 0
fi

command -v go >/dev/null || { echo "testbed/rie/install.sh: go is not installed" >&2; exit 1; }

mkdir -p "$PAPI_CACHE/bin" "$PAPI_CACHE/stamps"
tmp=$(mktemp -d "$PAPI_CACHE/.rie-build.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

echo "testbed/rie/install.sh: building $RIE_MODULE@$RIE_VERSION" >&2
# GOTOOLCHAIN=local: never try to download another Go toolchain; GOFLAGS cleared so a user's -mod=vendor
# or similar does not leak in. -trimpath and -s -w as upstream's release build (smaller, reproducible).
env CGO_ENABLED=0 GOTOOLCHAIN=local GOFLAGS= GOBIN="$tmp" \
    go install -trimpath -ldflags "-s -w" "$RIE_MODULE/cmd/aws-lambda-rie@$RIE_VERSION"

mv -f "$tmp/aws-lambda-rie" "$bin"
printf '%s\n' "$RIE_MODULE@$RIE_VERSION recipe $RIE_RECIPE" > "$stamp.tmp"
mv -f "$stamp.tmp" "$stamp"
echo "testbed/rie/install.sh: installed $bin" >&2
