//! What a probe's outcome means for a user: the `Reachable` condition's status, reason and
//! message. Pure; the messages name what to look at, since the operator knows which step failed.

use std::time::Duration;

use super::request::Outcome;

/// The reasons of the `Reachable` condition.
pub mod reason {
    /// The expected status came back.
    pub const ANSWERED: &str = "Answered";
    /// The URL's host name has no address from the operator's network.
    pub const NAME_NOT_RESOLVED: &str = "NameNotResolved";
    /// No connection in time: the endpoint's security groups do not admit the operator's network.
    pub const CONNECT_TIMEOUT: &str = "ConnectTimeout";
    /// The connection was refused or the address is unreachable.
    pub const CONNECTION_FAILED: &str = "ConnectionFailed";
    pub const TLS_ERROR: &str = "TlsError";
    /// 403 from the deployed resource policy.
    pub const FORBIDDEN: &str = "Forbidden";
    /// 403 "Missing Authentication Token": no such stage or route.
    pub const NO_ROUTE: &str = "NoRoute";
    /// 5xx: API Gateway could not invoke the function, or the function failed or timed out.
    pub const BACKEND_ERROR: &str = "BackendError";
    /// Any other status than the expected one.
    pub const UNEXPECTED_STATUS: &str = "UnexpectedStatus";
    /// Connected, but no answer within `spec.probe.timeoutSeconds`.
    pub const NO_ANSWER: &str = "NoAnswer";
    pub const PROTOCOL_ERROR: &str = "ProtocolError";
    /// Not probed: the object is not Ready, or has no URL yet.
    pub const NOT_PROBED: &str = "NotProbed";
}

/// The `Reachable` condition before it gets its times and generation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reachability {
    /// `True`, `False` or `Unknown`.
    pub status: &'static str,
    pub reason: &'static str,
    pub message: String,
}

impl Reachability {
    fn new(status: &'static str, reason: &'static str, message: String) -> Self {
        Self {
            status,
            reason,
            message,
        }
    }

    pub fn not_probed(why: &str) -> Self {
        Self::new("Unknown", reason::NOT_PROBED, why.to_string())
    }
}

/// The probe of `url` came to `outcome`; `expected` is `spec.probe.expectedStatus`.
pub fn diagnose(outcome: &Outcome, url: &str, expected: u16) -> Reachability {
    let failed = |reason, message: String| Reachability::new("False", reason, message);
    match outcome {
        Outcome::Answered {
            status, latency, ..
        } if *status == expected => Reachability::new(
            "True",
            reason::ANSWERED,
            format!(
                "GET {url} answered {status} in {} from the operator's network",
                latency_class(*latency)
            ),
        ),
        Outcome::Answered { status, body, .. } => {
            let said = gateway_message(body);
            let quoted = if said.is_empty() {
                String::new()
            } else {
                format!(" ({said})")
            };
            let (reason, hint) = match status {
                403 if said.contains("Missing Authentication Token") => (
                    reason::NO_ROUTE,
                    "the deployed stage has no route for this path (spec.probe.path, spec.stageName)",
                ),
                403 => (
                    reason::FORBIDDEN,
                    "the deployed resource policy refuses requests through the VPC endpoint the operator's network uses: it admits only spec.endpoint and spec.additionalVpcEndpointIds",
                ),
                500 => (
                    reason::BACKEND_ERROR,
                    "API Gateway could not invoke the function (its invoke permission for this API is missing or wrong) or the function failed",
                ),
                502 => (
                    reason::BACKEND_ERROR,
                    "the function failed or its answer is not a Lambda proxy answer",
                ),
                504 => (
                    reason::BACKEND_ERROR,
                    "the function did not answer within the integration timeout (spec.backend.timeoutSeconds)",
                ),
                s if *s >= 500 => (reason::BACKEND_ERROR, "the API or its backend failed"),
                _ => (reason::UNEXPECTED_STATUS, "not spec.probe.expectedStatus"),
            };
            failed(
                reason,
                format!("GET {url} answered {status}{quoted}, expected {expected}: {hint}"),
            )
        }
        Outcome::NotResolved { host, error } => failed(
            reason::NAME_NOT_RESOLVED,
            format!(
                "{host} does not resolve from the operator's network ({error}): the private DNS name resolves only inside a VPC with an execute-api endpoint that has private DNS (spec.endpoint.create.privateDns)"
            ),
        ),
        Outcome::ConnectTimeout { addresses } => failed(
            reason::CONNECT_TIMEOUT,
            format!(
                "connecting to {} timed out: the VPC endpoint's security groups do not admit HTTPS from the operator's network (spec.endpoint.create.allowedCidrs, allowedSecurityGroupIds)",
                list(addresses)
            ),
        ),
        Outcome::ConnectFailed { address, error } => failed(
            reason::CONNECTION_FAILED,
            format!("connecting to {address} failed: {error}"),
        ),
        Outcome::TlsFailed { host, error } => failed(
            reason::TLS_ERROR,
            format!("the TLS handshake with {host} failed: {error}"),
        ),
        Outcome::NoAnswer { after } => failed(
            reason::NO_ANSWER,
            format!(
                "GET {url}: connected, but no answer within {} s (spec.probe.timeoutSeconds)",
                after.as_secs()
            ),
        ),
        Outcome::ProtocolError { error } => failed(
            reason::PROTOCOL_ERROR,
            format!("GET {url}: not an HTTP answer: {error}"),
        ),
        Outcome::BadUrl { url } => {
            failed(reason::PROTOCOL_ERROR, format!("{url} is not an https URL"))
        }
    }
}

/// The latency in a coarse class, so that a steady API rewrites its condition only when the
/// class changes (the exact figure is the `privateapi_probe_duration_seconds` histogram).
pub fn latency_class(latency: Duration) -> &'static str {
    const CLASSES: [(u64, &str); 9] = [
        (10, "under 10 ms"),
        (50, "under 50 ms"),
        (100, "under 100 ms"),
        (250, "under 250 ms"),
        (500, "under 500 ms"),
        (1000, "under 1 s"),
        (2500, "under 2.5 s"),
        (5000, "under 5 s"),
        (10_000, "under 10 s"),
    ];
    let ms = u64::try_from(latency.as_millis()).unwrap_or(u64::MAX);
    CLASSES
        .iter()
        .find(|(limit, _)| ms < *limit)
        .map_or("10 s or more", |(_, class)| class)
}

/// API Gateway's own words in an error body: `{"message": ...}` or `{"Message": ...}`.
fn gateway_message(body: &str) -> String {
    let said = serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| {
            v.get("message")
                .or_else(|| v.get("Message"))
                .and_then(|m| m.as_str().map(str::to_string))
        })
        .unwrap_or_else(|| body.trim().to_string());
    // A condition message stays short.
    said.chars().take(300).collect()
}

fn list(addresses: &[std::net::SocketAddr]) -> String {
    addresses
        .iter()
        .map(|a| a.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}
