# shellcheck shell=bash
# Functions shared by testbed/k8s/{start,stop,restart-apiserver}.sh. Source it; don't run it.
# Layout of a state directory DIR:
#   DIR/pki/                      CA, serving cert, admin client cert, service-account key
#   DIR/etcd-data/                etcd's data (a new DIR is a fresh cluster)
#   DIR/etcd.log, DIR/kube-apiserver.log
#   DIR/etcd.pid, DIR/kube-apiserver.pid
#   DIR/kube-apiserver.args       the apiserver's arguments, one a line (restart reuses them)
#   DIR/kubeconfig, DIR/k8s.env
# shellcheck source-path=SCRIPTDIR source=../lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"

PAPI_BIN=$PAPI_CACHE/bin
# Bounds, in seconds (overridable for slow machines).
PAPI_ETCD_START_TIMEOUT=${PAPI_ETCD_START_TIMEOUT:-30}
PAPI_APISERVER_START_TIMEOUT=${PAPI_APISERVER_START_TIMEOUT:-90}
PAPI_STOP_GRACE=${PAPI_STOP_GRACE:-10}

k8s_require_bins() {
    local b
    for b in etcd kube-apiserver; do
        [[ -x $PAPI_BIN/$b ]] || papi_die "$PAPI_BIN/$b is missing: run testbed/k8s/install.sh"
    done
}

# k8s_make_pki DIR: throwaway CA, serving cert, admin client cert, service-account key.
k8s_make_pki() {
    local pki=$1/pki
    mkdir -p "$pki"
    (
        cd "$pki"
        umask 077
        local ec=(-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes)
        openssl req -x509 "${ec[@]}" -keyout ca.key -out ca.crt -days 7 \
            -subj "/CN=papi-testbed-ca" \
            -addext "basicConstraints=critical,CA:TRUE" \
            -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
        cat >serving.ext <<'EOF'
basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth
subjectAltName=IP:127.0.0.1,DNS:localhost,IP:10.0.0.1,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local
EOF
        cat >client.ext <<'EOF'
basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=clientAuth
EOF
        openssl req "${ec[@]}" -keyout serving.key -out serving.csr -subj "/CN=kube-apiserver" 2>/dev/null
        openssl x509 -req -in serving.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 7 \
            -extfile serving.ext -out serving.crt 2>/dev/null
        openssl req "${ec[@]}" -keyout admin.key -out admin.csr -subj "/O=system:masters/CN=admin" 2>/dev/null
        openssl x509 -req -in admin.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 7 \
            -extfile client.ext -out admin.crt 2>/dev/null
        # Service-account token signing key (RS256, what every client expects).
        openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out sa.key 2>/dev/null
        openssl pkey -in sa.key -pubout -out sa.pub 2>/dev/null
        rm -f ./*.csr
    ) || papi_die "creating certificates in $pki failed"
}

# k8s_write_kubeconfig DIR URL: admin kubeconfig with the certs embedded (self-contained).
k8s_write_kubeconfig() (
    local dir=$1 url=$2 pki=$1/pki
    local b64="base64 -w0"
    umask 077
    cat >"$dir/kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: papi-testbed
  cluster:
    server: $url
    certificate-authority-data: $($b64 <"$pki/ca.crt")
users:
- name: admin
  user:
    client-certificate-data: $($b64 <"$pki/admin.crt")
    client-key-data: $($b64 <"$pki/admin.key")
contexts:
- name: papi-testbed
  context:
    cluster: papi-testbed
    user: admin
    namespace: default
current-context: papi-testbed
EOF
)

# k8s_log_says_port_in_use LOG
k8s_log_says_port_in_use() { grep -qi 'address already in use' "$1" 2>/dev/null; }

# k8s_start_etcd DIR CLIENT_PORT PEER_PORT -> 0 ready, 2 lost a port race, 1 other failure.
k8s_start_etcd() {
    local dir=$1 cport=$2 pport=$3 log=$1/etcd.log pid i
    : >"$log"
    "$PAPI_BIN/etcd" \
        --name=papi \
        --data-dir="$dir/etcd-data" \
        --listen-client-urls="http://127.0.0.1:$cport" \
        --advertise-client-urls="http://127.0.0.1:$cport" \
        --listen-peer-urls="http://127.0.0.1:$pport" \
        --initial-advertise-peer-urls="http://127.0.0.1:$pport" \
        --initial-cluster="papi=http://127.0.0.1:$pport" \
        --unsafe-no-fsync=true \
        --log-outputs=stderr \
        </dev/null >>"$log" 2>&1 &
    pid=$!
    echo "$pid" >"$dir/etcd.pid"
    for ((i = 0; i < PAPI_ETCD_START_TIMEOUT * 10; i++)); do
        if ! papi_pid_alive "$pid"; then
            rm -f "$dir/etcd.pid"
            k8s_log_says_port_in_use "$log" && return 2
            papi_log "etcd exited during start-up"
            papi_log_tail "$log"
            return 1
        fi
        if curl -fsS --max-time 2 "http://127.0.0.1:$cport/health" 2>/dev/null | grep -q '"health":"true"'; then
            return 0
        fi
        sleep 0.1
    done
    papi_log "etcd not healthy after ${PAPI_ETCD_START_TIMEOUT}s"
    papi_log_tail "$log"
    papi_stop_pidfile "$dir/etcd.pid" "$PAPI_STOP_GRACE"
    return 1
}

# k8s_apiserver_args DIR SECURE_PORT ETCD_URL: writes DIR/kube-apiserver.args
k8s_apiserver_args() {
    local dir=$1 port=$2 etcd=$3 pki=$1/pki
    cat >"$dir/kube-apiserver.args" <<EOF
--bind-address=127.0.0.1
--advertise-address=127.0.0.1
--secure-port=$port
--etcd-servers=$etcd
--cert-dir=$pki
--tls-cert-file=$pki/serving.crt
--tls-private-key-file=$pki/serving.key
--client-ca-file=$pki/ca.crt
--service-account-issuer=https://kubernetes.default.svc.cluster.local
--api-audiences=https://kubernetes.default.svc.cluster.local
--service-account-key-file=$pki/sa.pub
--service-account-signing-key-file=$pki/sa.key
--service-cluster-ip-range=10.0.0.0/24
--authorization-mode=RBAC
--allow-privileged=true
--disable-admission-plugins=ServiceAccount
--profiling=false
--endpoint-reconciler-type=none
--v=1
EOF
}

# k8s_apiserver_url DIR -> https://127.0.0.1:PORT (from the saved args)
k8s_apiserver_url() {
    local port
    port=$(sed -n 's/^--secure-port=//p' "$1/kube-apiserver.args")
    echo "https://127.0.0.1:$port"
}

# k8s_readyz DIR -> 0 when /readyz answers ok with the admin cert.
k8s_readyz() {
    local dir=$1 pki=$1/pki
    [[ "$(curl -sS --max-time 3 --cacert "$pki/ca.crt" --cert "$pki/admin.crt" --key "$pki/admin.key" \
        "$(k8s_apiserver_url "$dir")/readyz" 2>/dev/null)" == ok ]]
}

# k8s_start_apiserver DIR -> 0 ready, 2 lost a port race, 1 other failure.
# Uses DIR/kube-apiserver.args; appends to DIR/kube-apiserver.log.
k8s_start_apiserver() {
    local dir=$1 log=$1/kube-apiserver.log pid i start_line
    local -a args
    mapfile -t args <"$dir/kube-apiserver.args"
    touch "$log"
    start_line=$(($(wc -l <"$log") + 1))
    echo "==== start $(date -u +%FT%TZ) ====" >>"$log"
    "$PAPI_BIN/kube-apiserver" "${args[@]}" </dev/null >>"$log" 2>&1 &
    pid=$!
    echo "$pid" >"$dir/kube-apiserver.pid"
    for ((i = 0; i < PAPI_APISERVER_START_TIMEOUT * 5; i++)); do
        if ! papi_pid_alive "$pid"; then
            rm -f "$dir/kube-apiserver.pid"
            tail -n +"$start_line" "$log" | grep -qi 'address already in use' && return 2
            papi_log "kube-apiserver exited during start-up"
            papi_log_tail "$log"
            return 1
        fi
        k8s_readyz "$dir" && return 0
        sleep 0.2
    done
    papi_log "kube-apiserver not ready after ${PAPI_APISERVER_START_TIMEOUT}s"
    papi_log_tail "$log"
    curl -sS --max-time 3 --cacert "$dir/pki/ca.crt" --cert "$dir/pki/admin.crt" \
        --key "$dir/pki/admin.key" "$(k8s_apiserver_url "$dir")/readyz?verbose" >&2 || true
    papi_stop_pidfile "$dir/kube-apiserver.pid" "$PAPI_STOP_GRACE"
    return 1
}
