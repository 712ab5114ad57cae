#!/usr/bin/env bash
# Builds testbed/argocd-lua (Argo CD's way of running a resource health script: see main.go and
# testbed/README.md) into $PAPI_CACHE/bin/argocd-lua, with github.com/yuin/gopher-lua and the
# other modules pinned in go.mod / go.sum, fetched from the Go module proxy.
#
# Idempotent: the stamp names a hash of go.mod, go.sum and the Go sources plus the Go version and
# a recipe number; when it matches and the binary is there, it returns at once.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=../lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"

RECIPE=1 # bump when the build below changes
SRC=$PAPI_TESTBED_ROOT/argocd-lua
BIN=$PAPI_CACHE/bin/argocd-lua

command -v go >/dev/null || papi_die "go is needed to build argocd-lua"
sources=$(cd "$SRC" && sha256sum go.mod go.sum ./*.go | sha256sum | cut -d' ' -f1)
stamp="argocd-lua sources=$sources $(go env GOVERSION) recipe=$RECIPE"
if papi_stamp_ok argocd-lua "$stamp" && [[ -x $BIN ]]; then
    exit 0
fi

papi_log "building argocd-lua (gopher-lua $(sed -n 's/^\tgithub.com\/yuin\/gopher-lua //p' "$SRC/go.mod"))"
t0=$(papi_now)
mkdir -p "$PAPI_CACHE/bin"
tmp=$(mktemp -d "$PAPI_CACHE/.argocd-lua-build.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
# -mod=readonly: go.sum must already hold every module (nothing in the repo is rewritten).
(cd "$SRC" && env CGO_ENABLED=0 GOTOOLCHAIN=local GOWORK=off GOFLAGS="-mod=readonly -buildvcs=false" \
    go build -trimpath -ldflags="-s -w" -o "$tmp/argocd-lua" .)
echo '{"kind": "Probe"}' | "$tmp/argocd-lua" /dev/null - >/dev/null ||
    papi_die "the built argocd-lua does not run"
mv -f "$tmp/argocd-lua" "$BIN"
papi_stamp_write argocd-lua "$stamp"
papi_log "argocd-lua built in $(papi_elapsed "$t0")s"
