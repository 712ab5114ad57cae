# shellcheck shell=bash disable=SC2034
# Shared shell helpers for the test bed. Source it; don't run it.
#   . "$(dirname "$0")/../lib.sh"      (from testbed/<part>/*.sh)
# Everything here is bash; scripts that source it should use `set -euo pipefail`.

# The contract's cache directory.
PAPI_CACHE=${PAPI_CACHE:-$HOME/.cache/privateapi-operator}
export PAPI_CACHE

# Root of the testbed/ folder (this file's directory).
PAPI_TESTBED_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

papi_log() { printf '[testbed] %s\n' "$*" >&2; }
papi_die() { printf '[testbed] ERROR: %s\n' "$*" >&2; exit 1; }

# Seconds since the epoch with milliseconds, for timing steps.
papi_now() { date +%s.%N; }
# papi_elapsed START -> "12.3"
papi_elapsed() { awk -v s="$1" -v e="$(date +%s.%N)" 'BEGIN { printf "%.1f", e - s }'; }

# papi_free_port -> a TCP port on 127.0.0.1 that was free a moment ago. The caller must still
# handle losing a race for it (start, check, retry with a new port).
papi_free_port() {
    python3 -c 'import socket
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])
s.close()'
}

# papi_stamp_ok NAME CONTENT: true when $PAPI_CACHE/stamps/NAME holds exactly CONTENT.
papi_stamp_ok() {
    local f="$PAPI_CACHE/stamps/$1"
    [[ -f $f ]] && [[ "$(cat "$f")" == "$2" ]]
}
# papi_stamp_write NAME CONTENT
papi_stamp_write() {
    mkdir -p "$PAPI_CACHE/stamps"
    printf '%s\n' "$2" >"$PAPI_CACHE/stamps/$1.tmp"
    mv -f "$PAPI_CACHE/stamps/$1.tmp" "$PAPI_CACHE/stamps/$1"
}

# papi_pid_alive PID: the process exists and is not a zombie. Servers outlive the script that
# started them, so their parent is whatever reaps orphans here, which may reap late: a zombie
# counts as gone.
papi_pid_alive() {
    [[ -n ${1:-} ]] && kill -0 "$1" 2>/dev/null || return 1
    local stat
    stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 0
    stat=${stat##*) }
    [[ ${stat%% *} != Z ]]
}

# papi_stop_pidfile FILE [GRACE_SECONDS]: TERM the process named in FILE, KILL it after the grace
# period (default 10 s), then remove FILE. Quiet and successful when there is nothing to stop.
papi_stop_pidfile() {
    local f=$1 grace=${2:-10} pid i
    [[ -f $f ]] || return 0
    pid=$(cat "$f" 2>/dev/null || true)
    if papi_pid_alive "$pid"; then
        kill -TERM "$pid" 2>/dev/null || true
        for ((i = 0; i < grace * 10; i++)); do
            papi_pid_alive "$pid" || break
            sleep 0.1
        done
        if papi_pid_alive "$pid"; then
            papi_log "pid $pid ($(basename "$f" .pid)) ignored TERM for ${grace}s: sending KILL"
            kill -KILL "$pid" 2>/dev/null || true
            for ((i = 0; i < 50; i++)); do
                papi_pid_alive "$pid" || break
                sleep 0.1
            done
        fi
    fi
    rm -f "$f"
}

# papi_log_tail FILE [LINES]: print the end of a log to stderr, framed.
papi_log_tail() {
    local f=$1 n=${2:-40}
    printf '[testbed] ---- last %s lines of %s ----\n' "$n" "$f" >&2
    tail -n "$n" "$f" >&2 2>/dev/null || true
    printf '[testbed] ---- end of %s ----\n' "$f" >&2
}
