#!/usr/bin/env bash
# The quickstart, run by `make quickstart` inside the local test bed: creates a VPC like the
# reference stack's in the AWS fake, runs the operator, applies examples/seed.yaml with those IDs,
# waits for Ready, prints the object and its status, and ends with the reference stack's two
# commands: curl from a laptop (the bed's internet namespace: the name does not resolve) and from
# an instance in the VPC (the answer), when the bed has networks (root).
# PAPI_QUICKSTART_NAMESPACE (default `default`): where the object, the operator's watch and its
# Lease are. PAPI_OPERATOR_BIN / PAPI_HANDLER_ZIP_X86_64: use these instead of building them
# (tests/e2e/quickstart.rs runs this script so).
set -euo pipefail
cd "$(dirname "$0")/.."
: "${PAPI_TESTBED:?run through make quickstart (testbed/with-testbed.sh)}"
py=$PAPI_CACHE/moto-venv/bin/python
ns=${PAPI_QUICKSTART_NAMESPACE:-default}

if [[ -n ${PAPI_OPERATOR_BIN:-} && -n ${PAPI_HANDLER_ZIP_X86_64:-} ]]; then
    bin=$PAPI_OPERATOR_BIN zip=$PAPI_HANDLER_ZIP_X86_64
else
    echo "== building the operator and the built-in handler (debug)"
    cargo build -q --bin privateapi-operator
    bin=$CARGO_TARGET_DIR/debug/privateapi-operator
    zip=$(bash scripts/build-handler.sh)
fi

echo "== a VPC with two subnets and a client security group in the AWS fake"
read -r vpc subnet_a subnet_b client_sg < <("$py" - <<'PY'
import boto3
ec2 = boto3.client("ec2")
vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
for attribute in ("EnableDnsSupport", "EnableDnsHostnames"):
    ec2.modify_vpc_attribute(VpcId=vpc, **{attribute: {"Value": True}})
subnets = [ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.0.{i}.0/24", AvailabilityZone=az)["Subnet"]["SubnetId"]
           for i, az in enumerate(["us-east-1a", "us-east-1b"])]
sg = ec2.create_security_group(GroupName="client", Description="client instances", VpcId=vpc)["GroupId"]
print(vpc, *subnets, sg)
PY
)
echo "   $vpc $subnet_a $subnet_b $client_sg"

echo "== the CRD"
kubectl apply --server-side -f crds/privateapi.yaml >/dev/null
kubectl wait --for=condition=established crd/privateapis.privateapi.io --timeout=60s >/dev/null
until kubectl get papi -n "$ns" >/dev/null 2>&1; do sleep 0.5; done

echo "== the operator"
log=$PAPI_TESTBED_DIR/operator-quickstart-$ns.log
"$bin" --cluster-name "quickstart-$ns" --namespace "$ns" --lease-namespace "$ns" \
    --admin-addr 127.0.0.1:0 --handler-zip-x86-64 "$zip" \
    --default-execution-role-arn "$PAPI_LAMBDA_ROLE_ARN" >"$log" 2>&1 &
operator=$!
trap 'kill $operator 2>/dev/null; wait $operator 2>/dev/null' EXIT

echo "== kubectl apply -f examples/seed.yaml (with the IDs above)"
sed -e "s/vpc-0123456789abcdef0/$vpc/" -e "s/subnet-0aaaaaaaaaaaaaaaa/$subnet_a/" \
    -e "s/subnet-0bbbbbbbbbbbbbbbb/$subnet_b/" -e "s/sg-0cccccccccccccccc/$client_sg/" \
    -e "s/^  namespace: default$/  namespace: $ns/" examples/seed.yaml |
    kubectl apply -f -
start=$(date +%s%N)
if ! kubectl wait -n "$ns" --for=condition=Ready papi/seed --timeout=120s; then
    kubectl get papi -n "$ns" seed -o yaml
    tail -50 "$log"
    exit 1
fi
echo "Ready after $(( ($(date +%s%N) - start) / 1000000 )) ms"
echo
kubectl get papi -n "$ns" -o wide
echo
url=$(kubectl get papi -n "$ns" seed -o jsonpath='{.status.url}')
echo "URL:          $url"
echo "VPC endpoint: $(kubectl get papi -n "$ns" seed -o jsonpath='{.status.vpcEndpointId}')"
echo
kubectl get papi -n "$ns" seed -o jsonpath='{.status}' | "$py" -m json.tool

echo
if [[ ! -f $PAPI_TESTBED_DIR/netns.env ]]; then
    echo "(this test bed has no networks: run as root to see the reference stack's two curls)"
    exit 0
fi
# The bed's CA stands for Amazon's: curl is given it, as the instance trusts Amazon's.
ca=${PAPI_TESTBED_CA:-$PAPI_TESTBED_DIR/ca.pem}
echo "== the reference stack's two commands"
echo "From a laptop:"
echo "\$ curl $url"
testbed/netns/run.sh --internet curl -sS -m 10 --cacert "$ca" "$url" 2>&1 || true
echo
echo "From an instance in the VPC (security group $client_sg):"
echo "\$ curl $url"
testbed/netns/run.sh --vpc "$vpc" --security-group "$client_sg" curl -sS -m 10 --cacert "$ca" "$url" 2>&1
echo
