#!/usr/bin/env bash
# shellcheck disable=SC2317,SC2012  # functions run from traps; log dirs have plain names
# testbed/with-testbed.sh CMD [ARGS...]: runs CMD inside a fresh test bed (see CONTRACT.md).
#   1. testbed/install.sh (about a second when the cache is warm)
#   2. PAPI_TESTBED_DIR=$(mktemp -d); testbed/k8s/start.sh and testbed/moto/start.sh on it
#   3. exports PAPI_TESTBED=1, PAPI_TESTBED_DIR, PAPI_CACHE, PATH=$PAPI_CACHE/bin:$PATH,
#      PAPI_RIE, and the variables of DIR/k8s.env and DIR/moto.env
#   4. runs CMD; on exit (also on failure, Ctrl-C or TERM) stops CMD if still running, stops the
#      servers and removes the state dir, unless PAPI_KEEP_TESTBED=1.
# Exit code: CMD's (130/143 when interrupted). When CMD fails, the server logs are copied to
# $PAPI_CACHE/testbed-logs/<time>/ (the last 10 are kept) and their place is printed.
set -uo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

if [[ $# -lt 1 ]]; then
    echo "usage: $0 CMD [ARGS...]" >&2
    exit 2
fi
ROOT=$PAPI_TESTBED_ROOT
# shellcheck source-path=SCRIPTDIR source=netns/lib-netns.sh
. "$ROOT/netns/lib-netns.sh"

bash "$ROOT/install.sh" || papi_die "testbed/install.sh failed"

PAPI_TESTBED_DIR=$(mktemp -d "${TMPDIR:-/tmp}/papi-testbed.XXXXXX") || papi_die "mktemp failed"
export PAPI_TESTBED_DIR
cmd_pid=
cmd_started=
k8s_start_pid=

# Sends SIG to PID and all its descendants (children first, collected before anything dies).
kill_tree() {
    local sig=$1 pid=$2 child
    for child in $(ps -o pid= --ppid "$pid" 2>/dev/null); do
        kill_tree "$sig" "$child"
    done
    kill "-$sig" "$pid" 2>/dev/null || true
}

stop_cmd() {
    local i
    papi_pid_alive "$cmd_pid" || return 0
    papi_log "stopping CMD (pid $cmd_pid)"
    kill_tree TERM "$cmd_pid"
    for ((i = 0; i < 100; i++)); do
        papi_pid_alive "$cmd_pid" || return 0
        sleep 0.1
    done
    kill_tree KILL "$cmd_pid"
}

cleanup() {
    local rc=$? keep_logs dest
    trap - EXIT INT TERM
    stop_cmd
    # interrupted while starting: let the start script go before stopping what it started
    if papi_pid_alive "$k8s_start_pid"; then
        kill -TERM "$k8s_start_pid" 2>/dev/null
        wait "$k8s_start_pid" 2>/dev/null
    fi
    if [[ -f $ROOT/moto/stop.sh ]]; then
        bash "$ROOT/moto/stop.sh" "$PAPI_TESTBED_DIR" &
    fi
    bash "$ROOT/k8s/stop.sh" "$PAPI_TESTBED_DIR"
    wait
    papi_netns_release
    if [[ ${PAPI_KEEP_TESTBED:-0} == 1 ]]; then
        papi_log "state kept (PAPI_KEEP_TESTBED=1): $PAPI_TESTBED_DIR (logs: $PAPI_TESTBED_DIR/*.log)"
    else
        if [[ $rc -ne 0 ]] && compgen -G "$PAPI_TESTBED_DIR/*.log" >/dev/null; then
            dest=$PAPI_CACHE/testbed-logs/$(date +%Y%m%d-%H%M%S)-$$
            mkdir -p "$dest" && cp "$PAPI_TESTBED_DIR"/*.log "$dest"/ 2>/dev/null
            # keep the newest 10
            ls -1d "$PAPI_CACHE"/testbed-logs/*/ 2>/dev/null | sort | head -n -10 |
                while read -r keep_logs; do rm -rf "$keep_logs"; done
            papi_log "test bed logs copied to $dest (PAPI_KEEP_TESTBED=1 keeps the whole state dir)"
        fi
        rm -rf "$PAPI_TESTBED_DIR"
    fi
    if [[ -n $cmd_started && $rc -ne 0 ]]; then
        papi_log "CMD failed with exit code $rc"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# The bed's networks (testbed/netns): a slot of its own, its bridge and DNS address; namespaces
# are made on first use by testbed/netns/run.sh. Skipped (with a note) when this process cannot
# make namespaces (not root) or PAPI_NETNS=0.
if [[ ${PAPI_NETNS:-1} != 0 ]] && papi_netns_can; then
    if papi_netns_acquire "$PAPI_TESTBED_DIR"; then
        papi_log "networks: slot $PAPI_NETNS_SLOT (testbed/netns/run.sh --vpc ... CMD)"
    else
        papi_log "networks: could not take a slot or make the bridge; running without them"
    fi
else
    papi_log "networks: not made (needs root and ip netns; PAPI_NETNS=${PAPI_NETNS:-1})"
fi

# k8s and moto start side by side (each takes a few seconds).
t0=$(papi_now)
bash "$ROOT/k8s/start.sh" "$PAPI_TESTBED_DIR" &
k8s_start_pid=$!
start_failed=
if [[ -f $ROOT/moto/start.sh ]]; then
    bash "$ROOT/moto/start.sh" "$PAPI_TESTBED_DIR" || start_failed=1
fi
wait "$k8s_start_pid" || start_failed=1
k8s_start_pid=
[[ -z $start_failed ]] || papi_die "the test bed did not start (logs: see above)"
papi_log "test bed up in $(papi_elapsed "$t0")s: $PAPI_TESTBED_DIR"

export PAPI_TESTBED=1 PAPI_CACHE
export PATH=$PAPI_CACHE/bin:$PATH
export PAPI_RIE=$PAPI_CACHE/bin/aws-lambda-rie
for env in k8s.env moto.env netns.env; do
    if [[ -f $PAPI_TESTBED_DIR/$env ]]; then
        # shellcheck disable=SC1090
        . "$PAPI_TESTBED_DIR/$env"
    fi
done

# CMD runs in the background so that a TERM (e.g. a CI time-out) or Ctrl-C reaches the traps at
# once rather than after CMD ends; stdin is passed on explicitly (a background command would
# otherwise read /dev/null).
cmd_started=1
"$@" <&0 &
cmd_pid=$!
wait "$cmd_pid"
rc=$?
cmd_pid=
exit "$rc"
