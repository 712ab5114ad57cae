#!/usr/bin/env bash
# testbed/k8s/start.sh DIR: starts etcd + kube-apiserver on 127.0.0.1 (free ports) with state in
# DIR, waits for /readyz, writes DIR/kubeconfig (admin, system:masters) and DIR/k8s.env.
# Stop with testbed/k8s/stop.sh DIR. See testbed/README.md, "Kubernetes".
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib-k8s.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib-k8s.sh"

[[ $# -eq 1 ]] || papi_die "usage: $0 DIR"
DIR=$(mkdir -p "$1" && cd "$1" && pwd)
k8s_require_bins
if [[ -f $DIR/etcd.pid || -f $DIR/kube-apiserver.pid ]]; then
    papi_die "$DIR already has a test bed (pid files present): stop.sh it or use a new DIR"
fi

t0=$(papi_now)
[[ -f $DIR/pki/ca.crt ]] || k8s_make_pki "$DIR"

# Free ports are picked by binding port 0 and closing; another process can still take one before
# our server binds it, so each start is retried with new ports when the log says so.
started=
for attempt in 1 2 3 4 5; do
    ETCD_PORT=$(papi_free_port)
    ETCD_PEER_PORT=$(papi_free_port)
    [[ $ETCD_PORT != "$ETCD_PEER_PORT" ]] || continue
    rc=0
    k8s_start_etcd "$DIR" "$ETCD_PORT" "$ETCD_PEER_PORT" || rc=$?
    if [[ $rc -eq 0 ]]; then started=1; break; fi
    [[ $rc -eq 2 ]] || exit 1
    papi_log "etcd lost a port race (attempt $attempt): retrying on new ports"
    rm -rf "$DIR/etcd-data"   # nothing of value yet; don't keep a member bound to old URLs
done
[[ -n $started ]] || papi_die "etcd could not get free ports; see $DIR/etcd.log"
ETCD_URL=http://127.0.0.1:$ETCD_PORT

started=
for attempt in 1 2 3 4 5; do
    API_PORT=$(papi_free_port)
    k8s_apiserver_args "$DIR" "$API_PORT" "$ETCD_URL"
    rc=0
    k8s_start_apiserver "$DIR" || rc=$?
    if [[ $rc -eq 0 ]]; then started=1; break; fi
    if [[ $rc -ne 2 ]]; then
        papi_stop_pidfile "$DIR/etcd.pid" "$PAPI_STOP_GRACE"
        exit 1
    fi
    papi_log "kube-apiserver lost a port race (attempt $attempt): retrying on a new port"
done
if [[ -z $started ]]; then
    papi_stop_pidfile "$DIR/etcd.pid" "$PAPI_STOP_GRACE"
    papi_die "kube-apiserver could not get a free port; see $DIR/kube-apiserver.log"
fi

URL=$(k8s_apiserver_url "$DIR")
k8s_write_kubeconfig "$DIR" "$URL"
cat >"$DIR/k8s.env" <<ENV
export KUBECONFIG=$DIR/kubeconfig
export PAPI_KUBE_APISERVER_URL=$URL
export PAPI_ETCD_URL=$ETCD_URL
ENV
papi_log "kube-apiserver ready at $URL (etcd $ETCD_URL) in $(papi_elapsed "$t0")s; logs in $DIR"
