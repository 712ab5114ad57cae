#!/usr/bin/env bash
# testbed/faultproxy/start.sh DIR [UPSTREAM_URL]: starts the fault-injecting proxy (faultproxy.py) on
# 127.0.0.1 on a free port in front of UPSTREAM_URL (default: $AWS_ENDPOINT_URL, the moto server of
# the test bed), waits until it listens and writes DIR/faultproxy.env
# (`export PAPI_FAULTPROXY_URL=http://127.0.0.1:PORT`). Port: DIR/faultproxy.port, pid:
# DIR/faultproxy.pid, log: DIR/faultproxy.log. Stop with testbed/faultproxy/stop.sh DIR.
# To route the operator through it: AWS_ENDPOINT_URL=$PAPI_FAULTPROXY_URL.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
dir="${1:?usage: $0 STATE_DIR [UPSTREAM_URL]}"
upstream="${2:-${AWS_ENDPOINT_URL:?no upstream: pass UPSTREAM_URL or set AWS_ENDPOINT_URL}}"
PAPI_CACHE="${PAPI_CACHE:-$HOME/.cache/privateapi-operator}"
python="$PAPI_CACHE/moto-venv/bin/python"
[[ -x $python ]] || python=python3
mkdir -p "$dir"
dir="$(cd "$dir" && pwd)"
if [[ -f "$dir/faultproxy.pid" ]] && kill -0 "$(cat "$dir/faultproxy.pid")" 2>/dev/null; then
  echo "testbed/faultproxy/start.sh: already running (pid $(cat "$dir/faultproxy.pid")) for $dir" >&2
  exit 1
fi
rm -f "$dir/faultproxy.port" "$dir/faultproxy.env"
"$python" "$here/faultproxy.py" --upstream "$upstream" --host 127.0.0.1 --port 0 \
  --port-file "$dir/faultproxy.port" --seed "${PAPI_FAULTPROXY_SEED:-1}" \
  </dev/null >"$dir/faultproxy.log" 2>&1 &
pid=$!
echo "$pid" >"$dir/faultproxy.pid"
for ((i = 0; i < 100; i++)); do
  [[ -s "$dir/faultproxy.port" ]] && break
  if ! kill -0 "$pid" 2>/dev/null; then
    echo "testbed/faultproxy/start.sh: the proxy exited during start-up:" >&2
    cat "$dir/faultproxy.log" >&2
    rm -f "$dir/faultproxy.pid"
    exit 1
  fi
  sleep 0.05
done
if [[ ! -s "$dir/faultproxy.port" ]]; then
  echo "testbed/faultproxy/start.sh: the proxy did not listen within 5 s" >&2
  kill "$pid" 2>/dev/null || true
  rm -f "$dir/faultproxy.pid"
  exit 1
fi
port="$(cat "$dir/faultproxy.port")"
echo "export PAPI_FAULTPROXY_URL=http://127.0.0.1:$port" >"$dir/faultproxy.env"
echo "testbed/faultproxy/start.sh: proxy on http://127.0.0.1:$port -> $upstream (pid $pid)" >&2
