#!/usr/bin/env bash
# testbed/k8s/stop.sh DIR: stops the kube-apiserver and etcd that start.sh DIR started (TERM, then
# KILL after PAPI_STOP_GRACE seconds). Safe to run twice or on a DIR where nothing runs.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib-k8s.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib-k8s.sh"

[[ $# -eq 1 ]] || papi_die "usage: $0 DIR"
[[ -d $1 ]] || exit 0
papi_stop_pidfile "$1/kube-apiserver.pid" "$PAPI_STOP_GRACE"
papi_stop_pidfile "$1/etcd.pid" "$PAPI_STOP_GRACE"
