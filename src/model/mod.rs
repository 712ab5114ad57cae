//! What AWS reports of the resources the parts manage: the live-state types, made by the reads
//! in `crate::observed` (direct, or from the shared listings) and compared by the parts. No I/O
//! here.

mod domain;
mod function;
mod rest_api;
mod routes;

pub use domain::{
    LiveAssociation, LiveCertificate, LiveDomain, LiveHostedZone, LiveMapping, LiveRecord,
};
pub use function::{FunctionConfig, LiveFunction};
pub use rest_api::LiveApi;
pub use routes::{LiveIntegration, LiveMethod, LiveResource};
