#!/usr/bin/env bash
# Installs the AWS Lambda Runtime Interface Client for Node.js (npm `aws-lambda-ric`) into
# $PAPI_CACHE/node-ric, with which the bed's data plane runs functions of the nodejs* runtimes
# under the RIE: `node $PAPI_CACHE/node-ric/node_modules/aws-lambda-ric/index.mjs <handler>`.
#
# Its install scripts build its native part (rapid-client.node) from the sources it ships (curl,
# aws-lambda-cpp, with cmake and a C++ compiler; about 40 s on 2 cores) against the machine's Node
# headers (/usr/include/node: nothing is downloaded). Lambda's nodejs22.x and nodejs24.x run on
# Node 22/24; the bed runs them on the machine's Node (20 here: the package asks for >= 22 but runs
# a handler on 20, which the data plane's test of the reference stack's Node function checks).
#
# Idempotent: when the stamp names the pinned version and the package is there, it returns at once.
set -euo pipefail

RIC_VERSION=4.0.2
RIC_RECIPE=2 # bump when the install below changes

PAPI_CACHE=${PAPI_CACHE:-$HOME/.cache/privateapi-operator}
dir=$PAPI_CACHE/node-ric
entry=$dir/node_modules/aws-lambda-ric/index.mjs
stamp=$PAPI_CACHE/stamps/node-ric

if [[ -f $entry && -f $stamp && "$(cat "$stamp")" == "aws-lambda-ric@$RIC_VERSION recipe $RIC_RECIPE" ]]; then
    exit 0
fi
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    echo "testbed/rie/install-node-ric.sh: node/npm not installed: nodejs functions will not run in the bed" >&2
    exit 0
fi

mkdir -p "$PAPI_CACHE/stamps"
tmp=$(mktemp -d "$PAPI_CACHE/.node-ric.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
echo "testbed/rie/install-node-ric.sh: installing aws-lambda-ric@$RIC_VERSION" >&2
# node-gyp builds against these headers instead of downloading Node's.
if [[ -f /usr/include/node/node.h ]]; then
    export npm_config_nodedir=/usr
fi
npm install --prefix "$tmp" --no-audit --no-fund --no-package-lock --loglevel=error \
    "aws-lambda-ric@$RIC_VERSION" >&2
[[ -f $tmp/node_modules/aws-lambda-ric/rapid-client.node ]] ||
    { echo "testbed/rie/install-node-ric.sh: the native client was not built" >&2; exit 1; }
rm -rf "$dir"
mv "$tmp" "$dir"
trap - EXIT
printf '%s\n' "aws-lambda-ric@$RIC_VERSION recipe $RIC_RECIPE" >"$stamp.tmp"
mv -f "$stamp.tmp" "$stamp"
echo "testbed/rie/install-node-ric.sh: installed $entry" >&2
