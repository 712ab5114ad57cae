//! `spec.probe`: the operator's own request to the API, reported as the `Reachable` condition.

use kube::KubeSchema;
use serde::{Deserialize, Serialize};

pub const DEFAULT_PROBE_PATH: &str = "/";
pub const DEFAULT_PROBE_STATUS: u16 = 200;
pub const DEFAULT_PROBE_INTERVAL_SECONDS: u32 = 60;
pub const DEFAULT_PROBE_TIMEOUT_SECONDS: u32 = 5;

/// A `GET` of `status.url` + `path`, sent by the operator from its own network every
/// `intervalSeconds` while the object is Ready; the answer (status and latency) or why there was
/// none goes to the `Reachable` condition. It never calls an AWS control-plane API.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[x_kube(validation = kube::core::Rule::new("self.timeoutSeconds < self.intervalSeconds")
    .message("spec.probe.timeoutSeconds must be less than spec.probe.intervalSeconds").field_path(".timeoutSeconds"))]
#[serde(rename_all = "camelCase")]
pub struct ProbeSpec {
    /// The path after the stage, e.g. `/` or `/health`.
    #[serde(default = "default_path")]
    #[schemars(
        length(min = 1, max = 1024),
        pattern(r"^/[A-Za-z0-9._~!$&'()*+,;=:@%/?-]*$")
    )]
    pub path: String,
    /// The HTTP status that counts as reachable.
    #[serde(default = "default_status")]
    #[schemars(range(min = 100, max = 599))]
    pub expected_status: u16,
    /// Seconds between two probes of this object (at least 5).
    #[serde(default = "default_interval")]
    #[schemars(range(min = 5, max = 86400))]
    pub interval_seconds: u32,
    /// Seconds one probe may take, name resolution and connection included.
    #[serde(default = "default_timeout")]
    #[schemars(range(min = 1, max = 60))]
    pub timeout_seconds: u32,
}

impl Default for ProbeSpec {
    fn default() -> Self {
        Self {
            path: default_path(),
            expected_status: default_status(),
            interval_seconds: default_interval(),
            timeout_seconds: default_timeout(),
        }
    }
}

fn default_path() -> String {
    DEFAULT_PROBE_PATH.to_string()
}
fn default_status() -> u16 {
    DEFAULT_PROBE_STATUS
}
fn default_interval() -> u32 {
    DEFAULT_PROBE_INTERVAL_SECONDS
}
fn default_timeout() -> u32 {
    DEFAULT_PROBE_TIMEOUT_SECONDS
}
