//! What AWS reports of the resources the parts manage: the live-state types, shared by the parts
//! (which read them directly) and the periodic checks' shared observations (`crate::observed`),
//! so that neither reaches into the other.

mod function;
mod rest_api;
mod routes;

pub use function::{FunctionConfig, LiveFunction};
pub use rest_api::{LiveApi, list_rest_apis};
pub use routes::{LiveIntegration, LiveMethod, LiveResource};
