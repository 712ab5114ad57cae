#!/usr/bin/env bash
# testbed/moto/stop.sh DIR: stops the moto server started by start.sh DIR (TERM, then KILL after
# 10 s). Quiet and successful when nothing is running.
set -uo pipefail
dir="${1:?usage: $0 STATE_DIR}"
pidfile="$dir/moto.pid"
[[ -f "$pidfile" ]] || exit 0
pid="$(cat "$pidfile" 2>/dev/null || true)"
if [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null; then
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < 100; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$pid" 2>/dev/null; then
    echo "testbed/moto/stop.sh: pid $pid ignored TERM for 10s, sending KILL" >&2
    kill -KILL "$pid" 2>/dev/null || true
  fi
fi
rm -f "$pidfile" "$dir/moto.port"
