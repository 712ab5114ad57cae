//! The end-to-end tests, one binary: users' manifests through `kubectl` against the test bed's
//! real API server, the operator as a separate process, AWS checked through the real SDK clients
//! against the corrected moto server. The tests run in parallel on one test bed, each in its own
//! namespace with its own cluster name, and hold the bed while they run (`support::hold_testbed`):
//! the one scenario that restarts the API server holds it alone.

#[path = "../support/mod.rs"]
mod support;

mod adopt;
mod bench_harness;
mod deploy_rbac;
mod fault_suite;
mod lifecycle;
mod quota;
mod rebuild;
mod runtime;
mod seed;
