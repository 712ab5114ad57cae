//! The endpoint as AWS reports it: its states, its DNS names, and what it means for the part's
//! readiness (pure).

use std::collections::{BTreeMap, BTreeSet};

use aws_sdk_ec2::types::VpcEndpoint;

use super::sdk::tag_map;
use super::validate::{FIELD_ID, invalid};
use crate::conditions::{PartState, reason};
use crate::error::Result;
use crate::identity::Owner;
use crate::parts::PartContext;

#[cfg(test)]
mod tests;

/// What the API part and the status need of the endpoint.
#[derive(Debug, Clone, PartialEq)]
pub struct EndpointInfo {
    pub vpc_endpoint_id: String,
    /// The operator-managed security group (endpoint.create only).
    pub security_group_id: Option<String>,
    pub private_dns: bool,
    /// The endpoint's DNS names (DnsEntries), regional first.
    pub dns_names: Vec<String>,
    /// State is `available`.
    pub available: bool,
    /// Created/owned by the operator (endpoint.create), false for endpoint.id.
    pub owned: bool,
}

/// `com.amazonaws.<region>.execute-api`.
pub fn service_name(region: &str) -> String {
    format!("com.amazonaws.{region}.execute-api")
}

/// What an endpoint state means to the operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lifecycle {
    Available,
    /// `pending`, `pendingAcceptance`: wait.
    Pending,
    /// `deleting`, `deleted`: as good as gone (tombstones stay listed a while).
    Gone,
    /// `failed`, `rejected`, `expired`: will never become available.
    Failed,
    /// Anything else AWS may add: alive, not ready.
    Other,
}

/// Classify an endpoint state. AWS sends states in lowercase (`available`) while the SDK's enum
/// spells them `Available`, so the value parses as `State::Unknown`: compare the text,
/// case-insensitively.
pub fn lifecycle(state: &str) -> Lifecycle {
    match state.to_ascii_lowercase().as_str() {
        "available" => Lifecycle::Available,
        "pending" | "pendingacceptance" => Lifecycle::Pending,
        "deleting" | "deleted" => Lifecycle::Gone,
        "failed" | "rejected" | "expired" => Lifecycle::Failed,
        _ => Lifecycle::Other,
    }
}

/// An endpoint as DescribeVpcEndpoints / CreateVpcEndpoint report it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct LiveEndpoint {
    pub id: String,
    pub vpc_id: String,
    pub service_name: String,
    /// `Interface`, `Gateway`, ...
    pub endpoint_type: String,
    /// As sent by AWS (lowercase).
    pub state: String,
    pub subnet_ids: BTreeSet<String>,
    pub security_group_ids: BTreeSet<String>,
    pub private_dns: bool,
    /// DnsEntries in AWS's order.
    pub dns_names: Vec<String>,
    /// Creation time (seconds, nanoseconds): the oldest of several duplicates is kept.
    pub created: (i64, u32),
    pub tags: BTreeMap<String, String>,
    /// `LastError`, for a failed endpoint.
    pub last_error: Option<String>,
}

impl LiveEndpoint {
    pub fn from_sdk(ep: &VpcEndpoint) -> Option<Self> {
        Some(Self {
            id: ep.vpc_endpoint_id()?.to_string(),
            vpc_id: ep.vpc_id().unwrap_or_default().to_string(),
            service_name: ep.service_name().unwrap_or_default().to_string(),
            endpoint_type: ep
                .vpc_endpoint_type()
                .map(|t| t.as_str().to_string())
                .unwrap_or_default(),
            state: ep
                .state()
                .map(|s| s.as_str().to_string())
                .unwrap_or_default(),
            subnet_ids: ep.subnet_ids().iter().cloned().collect(),
            security_group_ids: ep
                .groups()
                .iter()
                .filter_map(|g| g.group_id())
                .map(str::to_string)
                .collect(),
            private_dns: ep.private_dns_enabled().unwrap_or(false),
            dns_names: ep
                .dns_entries()
                .iter()
                .filter_map(|d| d.dns_name())
                .map(str::to_string)
                .collect(),
            created: ep
                .creation_timestamp()
                .map(|t| (t.secs(), t.subsec_nanos()))
                .unwrap_or((i64::MAX, 0)),
            tags: tag_map(ep.tags()),
            last_error: ep.last_error().map(|e| {
                format!(
                    "{}: {}",
                    e.code().unwrap_or("Unknown"),
                    e.message().unwrap_or("no message")
                )
            }),
        })
    }

    pub fn lifecycle(&self) -> Lifecycle {
        lifecycle(&self.state)
    }

    pub(super) fn owned_by(&self, ctx: &PartContext<'_>) -> bool {
        owns(ctx.owner, &self.tags)
    }

    /// Owned endpoints come with their managed group; referenced ones have none.
    pub(super) fn info(&self, managed_group_id: Option<String>, region: &str) -> EndpointInfo {
        EndpointInfo {
            vpc_endpoint_id: self.id.clone(),
            owned: managed_group_id.is_some(),
            security_group_id: managed_group_id,
            private_dns: self.private_dns,
            dns_names: order_dns_names(&self.dns_names, region),
            available: self.lifecycle() == Lifecycle::Available,
        }
    }
}

pub(super) fn owns(owner: &Owner, tags: &BTreeMap<String, String>) -> bool {
    owner.owns(tags.iter().map(|(k, v)| (k.as_str(), v.as_str())))
}

/// The DNS names with the regional one first, then the zonal ones, then any other (the private
/// DNS names some services list), each once.
pub fn order_dns_names(names: &[String], region: &str) -> Vec<String> {
    let rank = |name: &str| -> u8 {
        let first_label = name.split('.').next().unwrap_or_default();
        if !first_label.starts_with("vpce-") {
            2
        } else if first_label.contains(&format!("-{region}")) {
            // vpce-<id>-<suffix>-us-east-1a: one Availability Zone.
            1
        } else {
            0
        }
    };
    let mut ordered: Vec<String> = Vec::with_capacity(names.len());
    for name in names {
        if !ordered.contains(name) {
            ordered.push(name.clone());
        }
    }
    // A stable sort keeps AWS's order within each rank.
    ordered.sort_by_key(|name| rank(name));
    ordered
}

/// The regional DNS name (`vpce-<id>-<suffix>.execute-api.<region>.vpce.amazonaws.com`), the one
/// that works from every Availability Zone.
pub fn regional_dns_name<'a>(names: &'a [String], region: &str) -> Option<&'a str> {
    names.iter().map(String::as_str).find(|name| {
        let first_label = name.split('.').next().unwrap_or_default();
        first_label.starts_with("vpce-") && !first_label.contains(&format!("-{region}"))
    })
}

/// Whether a referenced endpoint (`endpoint.id`) can serve the API: an Interface endpoint for
/// this region's `execute-api`, not on its way out. Its readiness otherwise.
pub fn check_referenced(live: &LiveEndpoint, region: &str) -> Result<PartState> {
    let service = service_name(region);
    if !live.endpoint_type.eq_ignore_ascii_case("interface") {
        return Err(invalid(
            FIELD_ID,
            format!(
                "{} is a {} endpoint; an Interface endpoint for {service} is needed",
                live.id,
                if live.endpoint_type.is_empty() {
                    "non-interface"
                } else {
                    &live.endpoint_type
                }
            ),
        ));
    }
    if live.service_name != service {
        return Err(invalid(
            FIELD_ID,
            format!(
                "{} is an endpoint for {}, not for {service}",
                live.id, live.service_name
            ),
        ));
    }
    match live.lifecycle() {
        Lifecycle::Available => Ok(PartState::ready(
            reason::AVAILABLE,
            format!("VPC endpoint {} is available", live.id),
        )),
        Lifecycle::Pending | Lifecycle::Other => Ok(PartState::not_ready(
            reason::PENDING,
            format!(
                "waiting for {} to become available (it is {})",
                live.id, live.state
            ),
        )),
        Lifecycle::Gone | Lifecycle::Failed => Err(invalid(
            FIELD_ID,
            format!(
                "{} is {}: it can no longer serve the API",
                live.id, live.state
            ),
        )),
    }
}

/// The part state of the operator's own endpoint.
pub(super) fn owned_state(live: &LiveEndpoint, group_id: &str) -> PartState {
    match live.lifecycle() {
        Lifecycle::Available => PartState::ready(
            reason::AVAILABLE,
            format!(
                "VPC endpoint {} is available; security group {group_id} in sync",
                live.id
            ),
        ),
        _ => PartState::not_ready(
            reason::PENDING,
            format!(
                "waiting for {} to become available (it is {})",
                live.id, live.state
            ),
        ),
    }
}

/// Which of several live endpoints owned by this object to keep: the one in status, else the
/// oldest (ties broken by ID, so two operators agree). The others are duplicates to delete.
pub fn choose_endpoint(
    mut candidates: Vec<LiveEndpoint>,
    preferred: Option<&str>,
) -> (Option<LiveEndpoint>, Vec<LiveEndpoint>) {
    if candidates.is_empty() {
        return (None, candidates);
    }
    let index = preferred
        .and_then(|id| candidates.iter().position(|c| c.id == id))
        .or_else(|| {
            candidates
                .iter()
                .enumerate()
                .min_by(|(_, a), (_, b)| (a.created, &a.id).cmp(&(b.created, &b.id)))
                .map(|(i, _)| i)
        })
        .unwrap_or(0);
    let keep = candidates.swap_remove(index);
    candidates.sort_by(|a, b| a.id.cmp(&b.id));
    (Some(keep), candidates)
}
