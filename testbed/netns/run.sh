#!/usr/bin/env bash
# testbed/netns/run.sh (--vpc VPC_ID [--security-group SG_ID]... | --internet) [--] CMD [ARGS...]
# Runs CMD "from" an instance in VPC_ID with those security groups (none given: the VPC's
# default group), or from the internet, inside a network namespace of the running test bed
# (PAPI_TESTBED_DIR; see testbed/CONTRACT.md, "Networks"). The namespace is made on first use
# and reused after: papi<S>-<vpc>[-<hash of the groups>] or papi<S>-internet, with a veth pair to
# the host, a default route over it and /etc/netns/<name>/resolv.conf naming the bed's DNS.
# Its address -> (VPC, groups) is recorded in $PAPI_TESTBED_DIR/netns/ns/<name>.json, where the
# bed's DNS and execute-api data plane look callers up.
#   --print-name   print the namespace name instead of running anything
#   --forward PORT make the host's 127.0.0.1:PORT (the API server, the AWS fake) reachable at
#                  127.0.0.1:PORT inside the namespace too (forward.py; repeatable), for a program
#                  that must talk to the bed while its own requests leave through the VPC
# Exit code: CMD's (exec'd through `ip netns exec`).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source-path=SCRIPTDIR source=lib-netns.sh
. "$here/lib-netns.sh"

usage() {
    sed -n '2,4p' "$0" >&2
    exit 2
}
die() {
    echo "testbed/netns/run.sh: $*" >&2
    exit 1
}

vpc= internet= print_name=
sgs=() forwards=()
while [[ $# -gt 0 ]]; do
    case $1 in
    --vpc) vpc=${2:?--vpc needs a VPC id}; shift 2 ;;
    --vpc=*) vpc=${1#--vpc=}; shift ;;
    --security-group | --sg) sgs+=("${2:?--security-group needs a group id}"); shift 2 ;;
    --security-group=*) sgs+=("${1#*=}"); shift ;;
    --internet) internet=1; shift ;;
    --print-name) print_name=1; shift ;;
    --forward) forwards+=("${2:?--forward needs a port}"); shift 2 ;;
    --forward=*) forwards+=("${1#*=}"); shift ;;
    --) shift; break ;;
    -*) usage ;;
    *) break ;;
    esac
done
[[ -n $vpc || -n $internet ]] || usage
[[ -z $vpc || -z $internet ]] || die "--vpc and --internet exclude each other"
[[ -z $internet || ${#sgs[@]} -eq 0 ]] || die "--internet takes no security group"
[[ -z $vpc || $vpc =~ ^vpc-[0-9a-f]+$ ]] || die "not a VPC id: $vpc"
for port in "${forwards[@]}"; do
    [[ $port =~ ^[0-9]+$ ]] || die "not a port: $port"
done
for sg in "${sgs[@]}"; do
    [[ $sg =~ ^sg-[0-9a-f]+$ ]] || die "not a security group id: $sg"
done
[[ $print_name || $# -gt 0 ]] || usage

dir=${PAPI_TESTBED_DIR:?run inside the test bed (testbed/with-testbed.sh)}
[[ -f $dir/netns.env ]] || die "this test bed has no networks ($dir/netns.env missing: not root?)"
# shellcheck disable=SC1091
. "$dir/netns.env"
s=$PAPI_NETNS_SLOT

if [[ -n $internet ]]; then
    label=internet
    sgs_json='[]'
else
    label=$vpc
    sgs_json='['
    if [[ ${#sgs[@]} -gt 0 ]]; then
        mapfile -t sgs < <(printf '%s\n' "${sgs[@]}" | sort -u)
        label=$vpc-$(printf '%s\n' "${sgs[@]}" | sha256sum | cut -c1-8)
        sgs_json+=$(printf '"%s",' "${sgs[@]}")
        sgs_json=${sgs_json%,}
    fi
    sgs_json+=']'
fi
name=papi$s-$label

if [[ ! -e /run/netns/$name ]]; then
    exec {lock}>"$dir/netns/lock"
    flock "$lock"
    if [[ ! -e /run/netns/$name ]]; then
        i=$(cat "$dir/netns/next-index" 2>/dev/null || echo 0)
        ((i < 192)) || die "this test bed has made 192 namespaces already"
        echo $((i + 1)) >"$dir/netns/next-index"
        read -r b c < <(papi_netns_block "$s")
        net="198.$b.$((c + 1 + i / 64))"
        host=$net.$(((i % 64) * 4 + 1))
        addr=$net.$(((i % 64) * 4 + 2))
        veth=papi${s}v$i
        ip netns add "$name"
        if ! {
            ip link add "$veth" type veth peer name eth0 netns "$name" &&
                ip addr add "$host/30" dev "$veth" &&
                ip link set "$veth" up &&
                ip -n "$name" link set lo up &&
                ip -n "$name" addr add "$addr/30" dev eth0 &&
                ip -n "$name" link set eth0 up &&
                ip -n "$name" route add default via "$host"
        }; then
            ip netns del "$name" 2>/dev/null || true
            ip link del "$veth" 2>/dev/null || true
            die "could not make namespace $name"
        fi
        mkdir -p "/etc/netns/$name"
        printf 'nameserver %s\noptions timeout:2 attempts:1\n' "$PAPI_NETNS_DNS" >"/etc/netns/$name/resolv.conf"
        printf '{"name":"%s","address":"%s","vpc":%s,"security_groups":%s,"internet":%s}\n' \
            "$name" "$addr" "$([[ -n $vpc ]] && echo "\"$vpc\"" || echo null)" "$sgs_json" \
            "$([[ -n $internet ]] && echo true || echo false)" >"$dir/netns/ns/.$name.tmp"
        mv -f "$dir/netns/ns/.$name.tmp" "$dir/netns/ns/$name.json"
    fi
    exec {lock}>&-
fi

if [[ ${#forwards[@]} -gt 0 ]]; then
    # The host's network namespace, open for forward.py to connect from.
    exec {hostns}</proc/self/ns/net
    for port in "${forwards[@]}"; do
        ip netns exec "$name" python3 "$here/forward.py" --port "$port" --host-netns-fd "$hostns" ||
            die "cannot forward port $port into $name"
    done
    exec {hostns}<&-
fi

if [[ -n $print_name ]]; then
    echo "$name"
    exit 0
fi
exec ip netns exec "$name" "$@"
