#!/usr/bin/env bash
# The quickstart, run by `make quickstart` inside the local test bed: creates a VPC like the
# reference stack's in the AWS fake, runs the operator, applies examples/seed.yaml with those IDs,
# waits for Ready and prints the object and its status.
set -euo pipefail
cd "$(dirname "$0")/.."
: "${PAPI_TESTBED:?run through make quickstart (testbed/with-testbed.sh)}"
py=$PAPI_CACHE/moto-venv/bin/python

echo "== building the operator and the built-in handler (debug)"
cargo build -q --bin privateapi-operator
zip=$(bash scripts/build-handler.sh)

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
until kubectl get papi >/dev/null 2>&1; do sleep 0.5; done

echo "== the operator"
log=$PAPI_TESTBED_DIR/operator.log
"$CARGO_TARGET_DIR/debug/privateapi-operator" --cluster-name quickstart --admin-addr 127.0.0.1:0 \
    --handler-zip-x86-64 "$zip" --default-execution-role-arn "$PAPI_LAMBDA_ROLE_ARN" >"$log" 2>&1 &
operator=$!
trap 'kill $operator 2>/dev/null; wait $operator 2>/dev/null' EXIT

echo "== kubectl apply -f examples/seed.yaml (with the IDs above)"
sed -e "s/vpc-0123456789abcdef0/$vpc/" -e "s/subnet-0aaaaaaaaaaaaaaaa/$subnet_a/" \
    -e "s/subnet-0bbbbbbbbbbbbbbbb/$subnet_b/" -e "s/sg-0cccccccccccccccc/$client_sg/" examples/seed.yaml |
    kubectl apply -f -
start=$(date +%s%N)
if ! kubectl wait --for=condition=Ready papi/seed --timeout=120s; then
    kubectl get papi seed -o yaml
    tail -50 "$log"
    exit 1
fi
echo "Ready after $(( ($(date +%s%N) - start) / 1000000 )) ms"
echo
kubectl get papi -o wide
echo
echo "URL:          $(kubectl get papi seed -o jsonpath='{.status.url}')"
echo "VPC endpoint: $(kubectl get papi seed -o jsonpath='{.status.vpcEndpointId}')"
echo
kubectl get papi seed -o jsonpath='{.status}' | "$py" -m json.tool
