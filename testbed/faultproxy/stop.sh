#!/usr/bin/env bash
# testbed/faultproxy/stop.sh DIR: stops the proxy started by start.sh DIR (TERM, then KILL after
# 5 s). Quiet and successful when nothing is running.
set -uo pipefail
dir="${1:?usage: $0 STATE_DIR}"
pidfile="$dir/faultproxy.pid"
[[ -f "$pidfile" ]] || exit 0
pid="$(cat "$pidfile" 2>/dev/null || true)"
if [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null; then
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < 50; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null
fi
rm -f "$pidfile" "$dir/faultproxy.port" "$dir/faultproxy.env"
