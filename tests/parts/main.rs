//! The parts against the AWS fake, one test binary: the endpoint and backend parts called
//! directly (no Kubernetes), the corrected moto server's fidelity tests, and the fault proxy as
//! the real SDK clients see it. Run through the test bed (`make test`).

#[path = "../support/mod.rs"]
mod support;

mod backend;
mod data_plane;
mod endpoint;
mod fault_proxy;
mod moto_fidelity;
mod moto_fidelity_domains;
mod reader;
