//! What the owned endpoint must look like, and the ModifyVpcEndpoint calls that get a live one
//! there (pure).

use std::collections::{BTreeMap, BTreeSet};

use super::model::{LiveEndpoint, service_name};
use crate::crd::CreateEndpointSpec;

#[cfg(test)]
mod tests;

/// What the owned endpoint must look like.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DesiredEndpoint {
    pub subnet_ids: BTreeSet<String>,
    /// The managed group plus `securityGroupIds`.
    pub security_group_ids: BTreeSet<String>,
    pub private_dns: bool,
}

impl DesiredEndpoint {
    pub fn new(create: &CreateEndpointSpec, managed_group_id: &str) -> Self {
        let mut security_group_ids: BTreeSet<String> =
            create.security_group_ids.iter().cloned().collect();
        security_group_ids.insert(managed_group_id.to_string());
        Self {
            subnet_ids: create.subnet_ids.iter().cloned().collect(),
            security_group_ids,
            private_dns: create.private_dns,
        }
    }
}

/// One ModifyVpcEndpoint's worth of changes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EndpointDiff {
    pub add_subnet_ids: Vec<String>,
    pub remove_subnet_ids: Vec<String>,
    pub add_security_group_ids: Vec<String>,
    pub remove_security_group_ids: Vec<String>,
    pub private_dns: Option<bool>,
}

impl EndpointDiff {
    pub fn is_empty(&self) -> bool {
        self.add_subnet_ids.is_empty()
            && self.remove_subnet_ids.is_empty()
            && self.add_security_group_ids.is_empty()
            && self.remove_security_group_ids.is_empty()
            && self.private_dns.is_none()
    }

    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        let list = |ids: &[String]| ids.join(" ");
        if !self.add_subnet_ids.is_empty() {
            parts.push(format!("subnets +{}", list(&self.add_subnet_ids)));
        }
        if !self.remove_subnet_ids.is_empty() {
            parts.push(format!("subnets -{}", list(&self.remove_subnet_ids)));
        }
        if !self.add_security_group_ids.is_empty() {
            parts.push(format!(
                "security groups +{}",
                list(&self.add_security_group_ids)
            ));
        }
        if !self.remove_security_group_ids.is_empty() {
            parts.push(format!(
                "security groups -{}",
                list(&self.remove_security_group_ids)
            ));
        }
        if let Some(on) = self.private_dns {
            parts.push(format!("private DNS {}", if on { "on" } else { "off" }));
        }
        parts.join(", ")
    }

    pub(super) fn apply_to(&self, live: &mut LiveEndpoint) {
        live.subnet_ids
            .retain(|s| !self.remove_subnet_ids.contains(s));
        live.subnet_ids.extend(self.add_subnet_ids.iter().cloned());
        live.security_group_ids
            .retain(|g| !self.remove_security_group_ids.contains(g));
        live.security_group_ids
            .extend(self.add_security_group_ids.iter().cloned());
        if let Some(on) = self.private_dns {
            live.private_dns = on;
        }
    }
}

pub fn diff_endpoint(live: &LiveEndpoint, desired: &DesiredEndpoint) -> EndpointDiff {
    EndpointDiff {
        add_subnet_ids: desired
            .subnet_ids
            .difference(&live.subnet_ids)
            .cloned()
            .collect(),
        remove_subnet_ids: live
            .subnet_ids
            .difference(&desired.subnet_ids)
            .cloned()
            .collect(),
        add_security_group_ids: desired
            .security_group_ids
            .difference(&live.security_group_ids)
            .cloned()
            .collect(),
        remove_security_group_ids: live
            .security_group_ids
            .difference(&desired.security_group_ids)
            .cloned()
            .collect(),
        private_dns: (live.private_dns != desired.private_dns).then_some(desired.private_dns),
    }
}

/// The ModifyVpcEndpoint calls for a diff: one, unless a subnet is added in an Availability Zone
/// whose current subnet is removed. EC2 checks "one subnet per AZ" against the subnets the
/// endpoint has before the call's removals, so then the removals go first and the additions in a
/// second call. `az_of`: Availability Zone of each subnet, as far as known.
pub fn modify_calls(diff: &EndpointDiff, az_of: &BTreeMap<String, String>) -> Vec<EndpointDiff> {
    if diff.is_empty() {
        return Vec::new();
    }
    let removed_azs: BTreeSet<&String> = diff
        .remove_subnet_ids
        .iter()
        .filter_map(|s| az_of.get(s))
        .collect();
    let clash = diff
        .add_subnet_ids
        .iter()
        .filter_map(|s| az_of.get(s))
        .any(|az| removed_azs.contains(az));
    if !clash {
        return vec![diff.clone()];
    }
    let mut first = diff.clone();
    first.add_subnet_ids.clear();
    let second = EndpointDiff {
        add_subnet_ids: diff.add_subnet_ids.clone(),
        ..Default::default()
    };
    vec![first, second]
}

/// The parameters a CreateVpcEndpoint's ClientToken covers, in a canonical form (sorted sets):
/// the same spec gives the same token, any change a new one (EC2 answers
/// IdempotentParameterMismatch for a reused token with other parameters).
pub fn canonical_create_params(
    region: &str,
    create: &CreateEndpointSpec,
    desired: &DesiredEndpoint,
    tags: &BTreeMap<String, String>,
) -> String {
    let join = |ids: &BTreeSet<String>| ids.iter().cloned().collect::<Vec<_>>().join(",");
    let tags = tags
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",");
    format!(
        "service={};vpc={};subnets={};groups={};privateDns={};tags={tags}",
        service_name(region),
        create.vpc_id,
        join(&desired.subnet_ids),
        join(&desired.security_group_ids),
        desired.private_dns,
    )
}
