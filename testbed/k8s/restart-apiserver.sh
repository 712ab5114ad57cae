#!/usr/bin/env bash
# testbed/k8s/restart-apiserver.sh DIR [DOWN_SECONDS]: stops kube-apiserver alone (etcd and its
# data stay), keeps it down for DOWN_SECONDS (default 0), starts it again with the same arguments
# and port (so DIR/kubeconfig and DIR/k8s.env stay valid) and waits for /readyz. For fault tests.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib-k8s.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib-k8s.sh"

[[ $# -ge 1 && $# -le 2 ]] || papi_die "usage: $0 DIR [DOWN_SECONDS]"
DIR=$(cd "$1" && pwd)
DOWN=${2:-0}
[[ -f $DIR/kube-apiserver.args ]] || papi_die "$DIR has no kube-apiserver.args: not a started test bed"
papi_pid_alive "$(cat "$DIR/etcd.pid" 2>/dev/null || true)" || papi_die "etcd is not running in $DIR"

t0=$(papi_now)
papi_stop_pidfile "$DIR/kube-apiserver.pid" "$PAPI_STOP_GRACE"
sleep "$DOWN"
# Same port as before: if something took it meanwhile, wait a little for it to go.
rc=1
for attempt in 1 2 3 4 5 6 7 8 9 10; do
    rc=0
    k8s_start_apiserver "$DIR" || rc=$?
    [[ $rc -eq 0 ]] && break
    [[ $rc -eq 2 ]] || exit 1
    papi_log "port of kube-apiserver busy (attempt $attempt): waiting"
    sleep 1
done
[[ $rc -eq 0 ]] || papi_die "kube-apiserver could not get its port back; see $DIR/kube-apiserver.log"
papi_log "kube-apiserver restarted at $(k8s_apiserver_url "$DIR") in $(papi_elapsed "$t0")s"
