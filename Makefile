# The two commands of the README, plus the pieces they are made of.
SHELL := /bin/bash
PAPI_CACHE ?= $(HOME)/.cache/privateapi-operator
export PAPI_CACHE
# Builds are cached outside the repo, so a fresh clone (CI) starts warm.
export CARGO_TARGET_DIR ?= $(PAPI_CACHE)/target

.PHONY: quickstart test lint crds install-testbed bench

## Run the operator end to end on the local test bed: a sample PrivateApi, its status printed.
quickstart:
	bash testbed/with-testbed.sh bash scripts/quickstart.sh

## Every test, against the real kube-apiserver + etcd and the AWS fake (installs what it needs).
test:
	bash testbed/with-testbed.sh bash scripts/test.sh

## The benchmark (not part of `test`): bench/README.md. N="10 100" LATENCY_MS="0 50" or RUNS="10:0 1:50".
bench:
	N="$(N)" LATENCY_MS="$(LATENCY_MS)" RUNS="$(RUNS)" bash bench/run.sh

## Format and lint (the Dockerfile with hadolint, installed pinned into $(PAPI_CACHE)/bin).
lint:
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings
	"$$(bash scripts/install-hadolint.sh)" Dockerfile

## Regenerate crds/privateapi.yaml from src/crd/, and its copies in the kustomize base and the
## Helm chart (tests/checks/deploy_manifests.rs fails when a copy is stale).
CRD_FILES := crds/privateapi.yaml deploy/crds/privateapi.yaml deploy/helm/privateapi-operator/crds/privateapi.yaml
crds:
	for path in $(CRD_FILES); do cargo run -q --bin crdgen $$path || exit 1; done

install-testbed:
	bash testbed/install.sh
