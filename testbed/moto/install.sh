#!/usr/bin/env bash
# Installs the pinned moto server into $PAPI_CACHE/moto-venv (see testbed/CONTRACT.md).
# Idempotent: a stamp file holds the hash of requirements.txt + constraints.txt + the Python
# version; when it matches, this returns at once.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PAPI_CACHE="${PAPI_CACHE:-$HOME/.cache/privateapi-operator}"
venv="$PAPI_CACHE/moto-venv"
stamp="$venv/.papi-stamp"
python="${PAPI_PYTHON:-python3}"

want="$( { cat "$here/requirements.txt" "$here/constraints.txt"; "$python" -c 'import sys; print(sys.version)'; } \
  | sha256sum | cut -d' ' -f1)"
if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" && -x "$venv/bin/python" ]]; then
  exit 0
fi

echo "testbed/moto/install.sh: installing moto into $venv" >&2
rm -rf "$venv"
mkdir -p "$PAPI_CACHE"
"$python" -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-input \
  -r "$here/requirements.txt" -c "$here/constraints.txt"
"$venv/bin/python" -c 'import moto, moto.server, moto.apigateway, moto.ec2, moto.awslambda, moto.iam, moto.acm, moto.route53; print("moto", moto.__version__)' >&2
echo "$want" > "$stamp"
