# shellcheck shell=bash disable=SC2034
# The test bed's networks (see testbed/CONTRACT.md, "Networks"). Source it; don't run it.
#
# Each running test bed owns one slot S (0..127), held with flock on
# /run/papi-netns/slot-S.lock for as long as with-testbed.sh runs, and everything it creates is
# named and numbered from S, so that concurrent test beds never touch each other's:
#   addresses   198.(18 + S/64).(4*S % 256).0/22, a /22 of 198.18.0.0/15 per slot:
#                 .C.1          the bed's own address (DNS server), on the bridge papi<S>br
#                 .C.16-.C.254  VPC endpoint addresses (a `local` route for .C.0/24 on papi<S>br)
#                 .C+1.0 ..     one /30 per namespace i: host side +1, namespace side +2
#   names       bridge papi<S>br, namespaces papi<S>-<label>, host-side veths papi<S>v<i>
# PAPI_NETNS_MAX_SLOTS (128) limits the slots tried.

PAPI_NETNS_LOCK_DIR=${PAPI_NETNS_LOCK_DIR:-/run/papi-netns}

# papi_netns_block SLOT -> "B C": the /22 of the slot is 198.B.C.0/22.
papi_netns_block() {
    local s=$1
    echo "$((18 + s / 64)) $(((s * 4) % 256))"
}

# papi_netns_can: true when this process can make namespaces (root, ip netns, veth).
papi_netns_can() {
    [[ $(id -u) -eq 0 ]] && command -v ip >/dev/null && command -v flock >/dev/null &&
        ip netns list >/dev/null 2>&1
}

# papi_netns_teardown SLOT: removes everything slot SLOT may have made (namespaces and the
# processes left in them, their resolv.conf, veths, the bridge). Quiet when there is nothing.
papi_netns_teardown() {
    local s=$1 ns pid link
    for ns in $(ip netns list 2>/dev/null | awk '{print $1}' | grep -E "^papi${s}-" || true); do
        for pid in $(ip netns pids "$ns" 2>/dev/null); do
            kill -KILL "$pid" 2>/dev/null || true
        done
        ip netns del "$ns" 2>/dev/null || true
        rm -rf "/etc/netns/$ns"
    done
    for link in $(ip -o link show 2>/dev/null | awk -F': ' '{print $2}' | sed 's/@.*//' |
        grep -E "^papi${s}v[0-9]+$" || true); do
        ip link del "$link" 2>/dev/null || true
    done
    ip link del "papi${s}br" 2>/dev/null || true
}

# papi_netns_acquire DIR: takes a free slot (lock held on fd PAPI_NETNS_LOCK_FD by the calling
# shell and its children), cleans what a crashed earlier owner of the slot may have left, makes
# the bridge with the bed's address and the endpoint range, and writes DIR/netns.env.
# Returns 1 (nothing made) when no slot is free or the network cannot be made.
papi_netns_acquire() {
    local dir=$1 s fd b c max=${PAPI_NETNS_MAX_SLOTS:-128}
    mkdir -p "$PAPI_NETNS_LOCK_DIR" || return 1
    for ((s = 0; s < max; s++)); do
        exec {fd}>"$PAPI_NETNS_LOCK_DIR/slot-$s.lock" || return 1
        if flock -n "$fd"; then
            PAPI_NETNS_LOCK_FD=$fd
            break
        fi
        exec {fd}>&-
    done
    [[ -n ${PAPI_NETNS_LOCK_FD:-} ]] || return 1
    PAPI_NETNS_SLOT=$s
    papi_netns_teardown "$s"
    read -r b c < <(papi_netns_block "$s")
    if ! {
        ip link add "papi${s}br" type bridge &&
            ip link set "papi${s}br" up &&
            ip addr add "198.$b.$c.1/32" dev "papi${s}br" &&
            ip route add local "198.$b.$c.0/24" dev "papi${s}br" table local
    }; then
        papi_netns_teardown "$s"
        return 1
    fi
    mkdir -p "$dir/netns/ns"
    cat >"$dir/netns.env" <<ENV
export PAPI_NETNS_SLOT=$s PAPI_NETNS_DNS=198.$b.$c.1 PAPI_NETNS_ENDPOINTS=198.$b.$c.16-198.$b.$c.254 PAPI_TESTBED_CA=$dir/ca.pem
ENV
}

# papi_netns_release: tears down this bed's slot and drops the lock.
papi_netns_release() {
    [[ -n ${PAPI_NETNS_SLOT:-} ]] || return 0
    papi_netns_teardown "$PAPI_NETNS_SLOT"
    if [[ -n ${PAPI_NETNS_LOCK_FD:-} ]]; then
        exec {PAPI_NETNS_LOCK_FD}>&-
    fi
    PAPI_NETNS_SLOT= PAPI_NETNS_LOCK_FD=
}
