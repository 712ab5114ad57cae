//! The end-to-end tests, one binary: users' manifests through `kubectl` against the test bed's
//! real API server, the operator as a separate process, AWS checked through the real SDK clients
//! against the corrected moto server. The tests run in parallel on one test bed, each in its own
//! namespace with its own cluster name; the tests that lose, rebuild or restart a cluster do it to
//! a control plane of their own (`support::control_plane`).

#[path = "../support/mod.rs"]
mod support;

mod adopt;
mod bench_harness;
mod data_plane;
mod deploy_rbac;
mod domain;
mod fault_suite;
mod lifecycle;
mod probe;
mod quickstart;
mod quota;
mod rebuild;
mod runtime;
mod seed;
