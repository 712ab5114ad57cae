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

## Format and lint.
lint:
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings

## Regenerate crds/privateapi.yaml from src/crd.rs.
crds:
	cargo run -q --bin crdgen crds/privateapi.yaml

install-testbed:
	bash testbed/install.sh
