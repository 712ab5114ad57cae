#!/usr/bin/env bash
# testbed/moto/start.sh DIR: starts the corrected moto server (server.py) on 127.0.0.1 on a free
# port, waits until it answers, seeds IAM/S3 (seed.py) and writes DIR/moto.env.
# Log: DIR/moto.log, pid: DIR/moto.pid. Stop with testbed/moto/stop.sh DIR.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
dir="${1:?usage: $0 STATE_DIR}"
PAPI_CACHE="${PAPI_CACHE:-$HOME/.cache/privateapi-operator}"
export PAPI_CACHE
venv="$PAPI_CACHE/moto-venv"
timeout="${PAPI_MOTO_START_TIMEOUT:-60}"

"$here/install.sh"
mkdir -p "$dir"
dir="$(cd "$dir" && pwd)"
if [[ -f "$dir/moto.pid" ]] && kill -0 "$(cat "$dir/moto.pid")" 2>/dev/null; then
  echo "testbed/moto/start.sh: already running (pid $(cat "$dir/moto.pid")) for $dir" >&2
  exit 1
fi
rm -f "$dir/moto.port" "$dir/moto.env"

# The bed's networks (testbed/netns, made by with-testbed.sh): the server also answers its DNS
# and serves the execute-api data plane on the endpoint addresses (dataplane.py).
dataplane=()
if [[ -f "$dir/netns.env" ]]; then
  dataplane=(--dataplane "$dir")
fi
# --port 0: the server binds a port the kernel picks (no race) and writes it to moto.port.
PAPI_RIE="${PAPI_RIE:-$PAPI_CACHE/bin/aws-lambda-rie}" \
"$venv/bin/python" "$here/server.py" --host 127.0.0.1 --port "${PAPI_MOTO_PORT:-0}" \
  --port-file "$dir/moto.port" "${dataplane[@]}" </dev/null >"$dir/moto.log" 2>&1 &
pid=$!
echo "$pid" >"$dir/moto.pid"

fail() {
  echo "testbed/moto/start.sh: $*" >&2
  echo "---- last lines of $dir/moto.log ----" >&2
  tail -n 30 "$dir/moto.log" >&2 || true
  kill "$pid" 2>/dev/null || true
  rm -f "$dir/moto.pid"
  exit 1
}

for ((i = 0; i < timeout * 10; i++)); do
  [[ -s "$dir/moto.port" ]] && break
  kill -0 "$pid" 2>/dev/null || fail "server exited during start-up"
  sleep 0.1
done
[[ -s "$dir/moto.port" ]] || fail "server did not listen within ${timeout}s"
port="$(cat "$dir/moto.port")"

export AWS_ENDPOINT_URL="http://127.0.0.1:$port" AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing \
  AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1
"$venv/bin/python" "$here/seed.py" "$timeout" "$pid" >>"$dir/moto.log" 2>&1 || fail "seeding failed"

cat >"$dir/moto.env" <<ENV
export AWS_ENDPOINT_URL=http://127.0.0.1:$port AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1 PAPI_LAMBDA_ROLE_ARN=arn:aws:iam::123456789012:role/papi-backend
export AWS_EC2_METADATA_DISABLED=true PAPI_MOTO_PID=$pid PAPI_TEST_CODE_BUCKET=papi-testbed-code PAPI_TEST_CODE_KEY=handler.zip
ENV
echo "testbed/moto/start.sh: moto on http://127.0.0.1:$port (pid $pid)" >&2
