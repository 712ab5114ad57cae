//! The EC2 part: the `execute-api` interface VPC endpoint, and for `endpoint.create` the
//! operator-managed security group in front of it.
//!
//! - `endpoint.id`: the endpoint is checked (exists, Interface, `execute-api` of the region, its
//!   state) and never modified.
//! - `endpoint.create`: observe the group (status ID, else deterministic name in the VPC) and the
//!   endpoint (status ID, else ownership tags) concurrently; diff them against the spec with the
//!   pure functions below; apply the smallest change. A reconcile of an object in sync makes two
//!   reads (DescribeSecurityGroups, DescribeVpcEndpoints) and no write. The user's references
//!   (VPC, subnets, groups) are checked with cheap reads only when something is about to be
//!   created or changed, and before anything is created, so an invalid spec leaves nothing behind.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use aws_sdk_ec2::types::{
    Filter, IpPermission, IpRange, Ipv6Range, PrefixListId, ResourceType, SecurityGroup, Tag,
    TagSpecification, UserIdGroupPair, VpcEndpoint, VpcEndpointType,
};

use super::{AdoptedFrom, Change, Cleanup, FIELD_ADOPT_ENDPOINT, Outcome, PartContext};
use crate::conditions::{PartState, reason};
use crate::crd::{CreateEndpointSpec, RetiringResource};
use crate::error::{AwsErrorKind, AwsResultExt, Error, NotFoundExt, Result, classify};
use crate::identity::{TAG_CLUSTER, TAG_OWNER, TAG_UID};

const SERVICE: &str = "EC2";
const HTTPS_PORT: i32 = 443;
const FIELD_ID: &str = "spec.endpoint.id";
const FIELD_CREATE: &str = "spec.endpoint.create";
const FIELD_VPC: &str = "spec.endpoint.create.vpcId";
const FIELD_SUBNETS: &str = "spec.endpoint.create.subnetIds";
const FIELD_PRIVATE_DNS: &str = "spec.endpoint.create.privateDns";
const FIELD_ALLOWED_GROUPS: &str = "spec.endpoint.create.allowedSecurityGroupIds";
const FIELD_GROUPS: &str = "spec.endpoint.create.securityGroupIds";
/// EC2 limits security group descriptions to 255 characters.
const MAX_GROUP_DESCRIPTION: usize = 255;

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

fn invalid(field: impl Into<String>, message: impl Into<String>) -> Error {
    Error::InvalidSpec {
        field: field.into(),
        message: message.into(),
    }
}

// ---------------------------------------------------------------------------------------------
// Endpoint state
// ---------------------------------------------------------------------------------------------

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

    fn owned_by(&self, ctx: &PartContext<'_>) -> bool {
        owns(ctx, &self.tags)
    }

    /// Owned endpoints come with their managed group; referenced ones have none.
    fn info(&self, managed_group_id: Option<String>, region: &str) -> EndpointInfo {
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

fn tag_map(tags: &[Tag]) -> BTreeMap<String, String> {
    tags.iter()
        .filter_map(|t| {
            Some((
                t.key()?.to_string(),
                t.value().unwrap_or_default().to_string(),
            ))
        })
        .collect()
}

fn owns(ctx: &PartContext<'_>, tags: &BTreeMap<String, String>) -> bool {
    ctx.owner
        .owns(tags.iter().map(|(k, v)| (k.as_str(), v.as_str())))
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
fn owned_state(live: &LiveEndpoint, group_id: &str) -> PartState {
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

// ---------------------------------------------------------------------------------------------
// Security group rules
// ---------------------------------------------------------------------------------------------

/// Where a rule admits traffic from (ingress) or to (egress).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Source {
    Cidr(String),
    Ipv6Cidr(String),
    Group(String),
    PrefixList(String),
}

/// One rule: a protocol, a port range and one source. AWS groups several sources per
/// (protocol, ports) in one IpPermission; flattening makes "one permission with two ranges" and
/// "two permissions" the same set.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Rule {
    /// Lowercase name (`tcp`) or `-1` for every protocol.
    pub protocol: String,
    pub from_port: Option<i32>,
    pub to_port: Option<i32>,
    pub source: Source,
}

impl Rule {
    pub fn https(source: Source) -> Self {
        Self {
            protocol: "tcp".into(),
            from_port: Some(HTTPS_PORT),
            to_port: Some(HTTPS_PORT),
            source,
        }
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let protocol = if self.protocol == "-1" {
            "all"
        } else {
            &self.protocol
        };
        match (self.from_port, self.to_port) {
            (Some(from), Some(to)) if from == to => write!(f, "{protocol}/{from}")?,
            (Some(from), Some(to)) => write!(f, "{protocol}/{from}-{to}")?,
            _ => write!(f, "{protocol}")?,
        }
        match &self.source {
            Source::Cidr(c) | Source::Ipv6Cidr(c) | Source::Group(c) | Source::PrefixList(c) => {
                write!(f, " {c}")
            }
        }
    }
}

/// EC2 reports tcp/udp/icmp by name whichever way they were written; numbers are normalized so a
/// rule written as `6` compares equal.
fn normalize_protocol(protocol: &str) -> String {
    match protocol.to_ascii_lowercase().as_str() {
        "6" => "tcp".into(),
        "17" => "udp".into(),
        "1" => "icmp".into(),
        "58" => "icmpv6".into(),
        "all" => "-1".into(),
        other => other.to_string(),
    }
}

/// A CIDR in the form EC2 reports it (IPv6 compressed, lowercase), so `2001:DB8:0::/48` in the
/// spec does not look like drift against `2001:db8::/48`.
fn canonical_cidr(cidr: &str) -> Source {
    let trimmed = cidr.trim();
    if let Some((addr, len)) = trimmed.split_once('/')
        && let Ok(v6) = addr.parse::<std::net::Ipv6Addr>()
    {
        return Source::Ipv6Cidr(format!("{v6}/{len}"));
    }
    if trimmed.contains(':') {
        return Source::Ipv6Cidr(trimmed.to_ascii_lowercase());
    }
    Source::Cidr(trimmed.to_string())
}

/// The rules AWS reports for a group, flattened.
pub fn rules_of(permissions: &[IpPermission]) -> BTreeSet<Rule> {
    let mut rules = BTreeSet::new();
    for permission in permissions {
        let protocol = normalize_protocol(permission.ip_protocol().unwrap_or("-1"));
        let (from_port, to_port) = if protocol == "-1" {
            (None, None)
        } else {
            (permission.from_port(), permission.to_port())
        };
        let rule = |source| Rule {
            protocol: protocol.clone(),
            from_port,
            to_port,
            source,
        };
        rules.extend(
            permission
                .ip_ranges()
                .iter()
                .filter_map(|r| r.cidr_ip())
                .map(|c| rule(Source::Cidr(c.to_string()))),
        );
        rules.extend(
            permission
                .ipv6_ranges()
                .iter()
                .filter_map(|r| r.cidr_ipv6())
                .map(|c| rule(Source::Ipv6Cidr(c.to_string()))),
        );
        rules.extend(
            permission
                .user_id_group_pairs()
                .iter()
                .filter_map(|p| p.group_id())
                .map(|g| rule(Source::Group(g.to_string()))),
        );
        rules.extend(
            permission
                .prefix_list_ids()
                .iter()
                .filter_map(|p| p.prefix_list_id())
                .map(|p| rule(Source::PrefixList(p.to_string()))),
        );
    }
    rules
}

/// Ingress of the managed group: HTTPS from each allowed CIDR and each allowed group, nothing
/// else (the reference stack admits all traffic from the client group; HTTPS is all the endpoint
/// serves).
pub fn desired_ingress(create: &CreateEndpointSpec) -> BTreeSet<Rule> {
    create
        .allowed_cidrs
        .iter()
        .map(|c| Rule::https(canonical_cidr(c)))
        .chain(
            create
                .allowed_security_group_ids
                .iter()
                .map(|g| Rule::https(Source::Group(g.clone()))),
        )
        .collect()
}

/// The rules to authorize (missing) and to revoke (extra).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RuleDiff {
    pub add: Vec<Rule>,
    pub remove: Vec<Rule>,
}

impl RuleDiff {
    pub fn is_empty(&self) -> bool {
        self.add.is_empty() && self.remove.is_empty()
    }

    fn describe(&self, direction: &str) -> String {
        let mut parts: Vec<String> = Vec::new();
        parts.extend(self.add.iter().map(|r| format!("+{r}")));
        parts.extend(self.remove.iter().map(|r| format!("-{r}")));
        format!("{direction}: {}", parts.join(", "))
    }
}

pub fn diff_rules(live: &BTreeSet<Rule>, desired: &BTreeSet<Rule>) -> RuleDiff {
    RuleDiff {
        add: desired.difference(live).cloned().collect(),
        remove: live.difference(desired).cloned().collect(),
    }
}

/// IpPermissions for a set of rules, one per (protocol, ports), as AWS groups them.
/// `description` goes on each source (authorize only: AWS matches rules without it).
pub fn permissions(rules: &[Rule], description: Option<&str>) -> Vec<IpPermission> {
    /// (protocol, from port, to port)
    type PortRange<'r> = (&'r str, Option<i32>, Option<i32>);
    let mut grouped: BTreeMap<PortRange<'_>, Vec<&Source>> = BTreeMap::new();
    for rule in rules {
        grouped
            .entry((rule.protocol.as_str(), rule.from_port, rule.to_port))
            .or_default()
            .push(&rule.source);
    }
    let description = description.map(str::to_string);
    grouped
        .into_iter()
        .map(|((protocol, from_port, to_port), sources)| {
            let mut permission = IpPermission::builder()
                .ip_protocol(protocol)
                .set_from_port(from_port)
                .set_to_port(to_port);
            for source in sources {
                permission = match source {
                    Source::Cidr(c) => permission.ip_ranges(
                        IpRange::builder()
                            .cidr_ip(c)
                            .set_description(description.clone())
                            .build(),
                    ),
                    Source::Ipv6Cidr(c) => permission.ipv6_ranges(
                        Ipv6Range::builder()
                            .cidr_ipv6(c)
                            .set_description(description.clone())
                            .build(),
                    ),
                    Source::Group(g) => permission.user_id_group_pairs(
                        UserIdGroupPair::builder()
                            .group_id(g)
                            .set_description(description.clone())
                            .build(),
                    ),
                    Source::PrefixList(p) => permission.prefix_list_ids(
                        PrefixListId::builder()
                            .prefix_list_id(p)
                            .set_description(description.clone())
                            .build(),
                    ),
                };
            }
            permission.build()
        })
        .collect()
}

/// The managed group's description (at most 255 characters; EC2 allows `/` and `:`).
pub fn group_description(namespace: &str, name: &str) -> String {
    let mut description =
        format!("privateapi-operator: HTTPS to the execute-api endpoint of {namespace}/{name}");
    if description.len() > MAX_GROUP_DESCRIPTION {
        // Kubernetes names are ASCII, so any byte index is a character boundary.
        description.truncate(MAX_GROUP_DESCRIPTION);
    }
    description
}

// ---------------------------------------------------------------------------------------------
// Endpoint diff
// ---------------------------------------------------------------------------------------------

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

    fn apply_to(&self, live: &mut LiveEndpoint) {
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

/// Tags of `desired` that `live` lacks or carries with another value.
pub fn missing_tags(
    live: &BTreeMap<String, String>,
    desired: &BTreeMap<String, String>,
) -> BTreeMap<String, String> {
    desired
        .iter()
        .filter(|(k, v)| live.get(*k) != Some(*v))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
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

// ---------------------------------------------------------------------------------------------
// Checking the user's references
// ---------------------------------------------------------------------------------------------

/// What DescribeSubnets says about a subnet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubnetFacts {
    pub vpc_id: String,
    pub availability_zone: String,
}

/// Every subnet of the spec exists, is in the VPC, and no two share an Availability Zone.
pub fn check_subnets(
    create: &CreateEndpointSpec,
    facts: &BTreeMap<String, SubnetFacts>,
    region: &str,
) -> Result<()> {
    let mut by_az: BTreeMap<&str, (usize, &str)> = BTreeMap::new();
    for (i, id) in create.subnet_ids.iter().enumerate() {
        let field = format!("{FIELD_SUBNETS}[{i}]");
        let Some(subnet) = facts.get(id) else {
            return Err(Error::reference_not_found(
                field,
                format!("subnet {id} does not exist in {region}"),
            ));
        };
        if subnet.vpc_id != create.vpc_id {
            return Err(invalid(
                field,
                format!(
                    "subnet {id} is in {}, not in {} (spec.endpoint.create.vpcId)",
                    subnet.vpc_id, create.vpc_id
                ),
            ));
        }
        match by_az.get(subnet.availability_zone.as_str()) {
            Some((j, other)) if *other != id.as_str() => {
                return Err(invalid(
                    field,
                    format!(
                        "subnet {id} is in Availability Zone {} like {FIELD_SUBNETS}[{j}] ({other}): an interface endpoint takes at most one subnet per Availability Zone",
                        subnet.availability_zone
                    ),
                ));
            }
            _ => {
                by_az.insert(subnet.availability_zone.as_str(), (i, id.as_str()));
            }
        }
    }
    Ok(())
}

/// Every group the spec names exists; the groups attached to the endpoint are in its VPC.
/// `found`: group ID → VPC ID. Only the lists asked for are checked.
pub fn check_groups(
    create: &CreateEndpointSpec,
    found: &BTreeMap<String, String>,
    allowed: bool,
    attached: bool,
    region: &str,
) -> Result<()> {
    if allowed {
        for (i, id) in create.allowed_security_group_ids.iter().enumerate() {
            if !found.contains_key(id) {
                return Err(Error::reference_not_found(
                    format!("{FIELD_ALLOWED_GROUPS}[{i}]"),
                    format!("security group {id} does not exist in {region}"),
                ));
            }
        }
    }
    if attached {
        for (i, id) in create.security_group_ids.iter().enumerate() {
            let field = format!("{FIELD_GROUPS}[{i}]");
            match found.get(id) {
                None => {
                    return Err(Error::reference_not_found(
                        field,
                        format!("security group {id} does not exist in {region}"),
                    ));
                }
                Some(vpc) if vpc != &create.vpc_id => {
                    return Err(invalid(
                        field,
                        format!(
                            "security group {id} is in {vpc}; groups attached to the endpoint must be in {}",
                            create.vpc_id
                        ),
                    ));
                }
                Some(_) => {}
            }
        }
    }
    Ok(())
}

/// The spec field an EC2 rejection of CreateVpcEndpoint/ModifyVpcEndpoint/
/// AuthorizeSecurityGroupIngress is about, when it is about the user's input.
pub fn rejection_field(code: &str, message: &str, create: &CreateEndpointSpec) -> Option<String> {
    let indexed = |ids: &[String], base: &str| -> String {
        ids.iter()
            .position(|id| message.contains(id.as_str()))
            .map(|i| format!("{base}[{i}]"))
            .unwrap_or_else(|| base.to_string())
    };
    let lower = message.to_ascii_lowercase();
    if code.starts_with("InvalidSubnet") || code == "DuplicateSubnetsInSameZone" {
        return Some(indexed(&create.subnet_ids, FIELD_SUBNETS));
    }
    if code.starts_with("InvalidVpcID") || code.starts_with("InvalidVpcId") {
        return Some(FIELD_VPC.to_string());
    }
    if code.starts_with("InvalidGroup") || code.starts_with("InvalidSecurityGroup") {
        if create
            .allowed_security_group_ids
            .iter()
            .any(|id| message.contains(id.as_str()))
        {
            return Some(indexed(
                &create.allowed_security_group_ids,
                FIELD_ALLOWED_GROUPS,
            ));
        }
        return Some(indexed(&create.security_group_ids, FIELD_GROUPS));
    }
    if code == "InvalidServiceName" {
        return Some("spec.region".to_string());
    }
    if code.starts_with("InvalidParameter")
        && (lower.contains("private-dns")
            || lower.contains("private dns")
            || lower.contains("dns domain")
            || lower.contains("enablednssupport")
            || lower.contains("enablednshostnames"))
    {
        return Some(FIELD_PRIVATE_DNS.to_string());
    }
    None
}

/// An AWS rejection of the user's input becomes `InvalidSpec` naming the field; anything else
/// stays an AWS error (retried).
fn rejected(err: Error, create: &CreateEndpointSpec) -> Error {
    if let Error::Aws {
        code,
        message,
        kind: AwsErrorKind::NotFound | AwsErrorKind::InvalidRequest,
        ..
    } = &err
        && let Some(field) = rejection_field(code, message, create)
    {
        let message = format!("{code}: {message}");
        // `InvalidSubnetID.NotFound`, `InvalidGroup.NotFound`, ...: a reference that may still
        // appear, unlike a malformed or conflicting one.
        return if code.ends_with(".NotFound") {
            Error::reference_not_found(field, message)
        } else {
            Error::InvalidSpec { field, message }
        };
    }
    err
}

/// The user's references, each checked at most once per reconcile and only when a write needs
/// it (a steady-state reconcile checks nothing).
struct References<'a> {
    ctx: PartContext<'a>,
    create: &'a CreateEndpointSpec,
    vpc_checked: bool,
    subnets: Option<BTreeMap<String, SubnetFacts>>,
    allowed_groups_checked: bool,
    attached_groups_checked: bool,
}

impl<'a> References<'a> {
    fn new(ctx: PartContext<'a>, create: &'a CreateEndpointSpec) -> Self {
        Self {
            ctx,
            create,
            vpc_checked: false,
            subnets: None,
            allowed_groups_checked: false,
            attached_groups_checked: false,
        }
    }

    async fn check_everything(&mut self) -> Result<()> {
        self.check_vpc().await?;
        self.subnet_facts(&[]).await?;
        self.check_groups(true, true).await
    }

    async fn check_vpc(&mut self) -> Result<()> {
        if self.vpc_checked {
            return Ok(());
        }
        // A filter, not VpcIds: an unknown ID then reads as an empty answer, not an error.
        let out = self
            .ctx
            .aws
            .ec2
            .describe_vpcs()
            .filters(filter("vpc-id", [self.create.vpc_id.as_str()]))
            .send()
            .await
            .aws(SERVICE, "DescribeVpcs")?;
        if !out
            .vpcs()
            .iter()
            .any(|v| v.vpc_id() == Some(self.create.vpc_id.as_str()))
        {
            return Err(Error::reference_not_found(
                FIELD_VPC,
                format!(
                    "VPC {} does not exist in {}",
                    self.create.vpc_id, self.ctx.aws.region
                ),
            ));
        }
        self.vpc_checked = true;
        Ok(())
    }

    /// Checks the spec's subnets and returns what is known of them and of `also` (subnets about
    /// to be removed, whose Availability Zones decide whether a modify needs two calls).
    async fn subnet_facts(&mut self, also: &[String]) -> Result<&BTreeMap<String, SubnetFacts>> {
        let known = self.subnets.get_or_insert_with(BTreeMap::new);
        let wanted: BTreeSet<&String> = self
            .create
            .subnet_ids
            .iter()
            .chain(also)
            .filter(|id| !known.contains_key(*id))
            .collect();
        if !wanted.is_empty() {
            let out = self
                .ctx
                .aws
                .ec2
                .describe_subnets()
                .filters(filter("subnet-id", wanted.iter().map(|s| s.as_str())))
                .send()
                .await
                .aws(SERVICE, "DescribeSubnets")?;
            for subnet in out.subnets() {
                if let Some(id) = subnet.subnet_id() {
                    known.insert(
                        id.to_string(),
                        SubnetFacts {
                            vpc_id: subnet.vpc_id().unwrap_or_default().to_string(),
                            availability_zone: subnet
                                .availability_zone()
                                .unwrap_or_default()
                                .to_string(),
                        },
                    );
                }
            }
        }
        check_subnets(self.create, known, &self.ctx.aws.region)?;
        Ok(known)
    }

    async fn check_groups(&mut self, allowed: bool, attached: bool) -> Result<()> {
        let allowed = allowed && !self.allowed_groups_checked;
        let attached = attached && !self.attached_groups_checked;
        let mut ids: BTreeSet<&str> = BTreeSet::new();
        if allowed {
            ids.extend(
                self.create
                    .allowed_security_group_ids
                    .iter()
                    .map(String::as_str),
            );
        }
        if attached {
            ids.extend(self.create.security_group_ids.iter().map(String::as_str));
        }
        if !ids.is_empty() {
            let out = self
                .ctx
                .aws
                .ec2
                .describe_security_groups()
                .filters(filter("group-id", ids.iter().copied()))
                .send()
                .await
                .aws(SERVICE, "DescribeSecurityGroups")?;
            let found: BTreeMap<String, String> = out
                .security_groups()
                .iter()
                .filter_map(|g| {
                    Some((
                        g.group_id()?.to_string(),
                        g.vpc_id().unwrap_or_default().to_string(),
                    ))
                })
                .collect();
            check_groups(self.create, &found, allowed, attached, &self.ctx.aws.region)?;
        }
        self.allowed_groups_checked |= allowed;
        self.attached_groups_checked |= attached;
        Ok(())
    }
}

fn filter<'v>(name: &str, values: impl IntoIterator<Item = &'v str>) -> Filter {
    Filter::builder()
        .name(name)
        .set_values(Some(values.into_iter().map(str::to_string).collect()))
        .build()
}

fn tag_specification(
    resource_type: ResourceType,
    tags: &BTreeMap<String, String>,
) -> TagSpecification {
    TagSpecification::builder()
        .resource_type(resource_type)
        .set_tags(Some(sdk_tags(tags)))
        .build()
}

fn sdk_tags(tags: &BTreeMap<String, String>) -> Vec<Tag> {
    tags.iter()
        .map(|(k, v)| Tag::builder().key(k).value(v).build())
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Observe
// ---------------------------------------------------------------------------------------------

/// The managed security group as DescribeSecurityGroups reports it.
#[derive(Debug, Clone, PartialEq, Default)]
struct LiveGroup {
    id: String,
    vpc_id: String,
    name: String,
    tags: BTreeMap<String, String>,
    ingress: BTreeSet<Rule>,
    egress: BTreeSet<Rule>,
}

impl LiveGroup {
    fn from_sdk(group: &SecurityGroup) -> Option<Self> {
        Some(Self {
            id: group.group_id()?.to_string(),
            vpc_id: group.vpc_id().unwrap_or_default().to_string(),
            name: group.group_name().unwrap_or_default().to_string(),
            tags: tag_map(group.tags()),
            ingress: rules_of(group.ip_permissions()),
            egress: rules_of(group.ip_permissions_egress()),
        })
    }
}

/// The managed group: by the ID in status if it still exists and is ours, else by its
/// deterministic name in the VPC. A group of that name without our tags is someone else's: an
/// error, never taken over.
async fn observe_group(
    ctx: &PartContext<'_>,
    create: &CreateEndpointSpec,
) -> Result<Option<LiveGroup>> {
    if let Some(id) = ctx.status.security_group_id.as_deref() {
        if let Some(reads) = ctx.reads {
            reads.region.want_group(id).await;
        }
        let found = match ctx.shared_reads() {
            Some(reads) => {
                reads
                    .region
                    .security_group(ctx.aws, reads.window, id)
                    .await?
            }
            None => ctx
                .aws
                .ec2
                .describe_security_groups()
                .group_ids(id)
                .send()
                .await
                .aws(SERVICE, "DescribeSecurityGroups")
                .or_not_found()?
                .and_then(|o| o.security_groups().first().cloned()),
        };
        if let Some(group) = found.as_ref().and_then(LiveGroup::from_sdk)
            && owns(ctx, &group.tags)
            && group.vpc_id == create.vpc_id
        {
            return Ok(Some(group));
        }
    }
    find_group_by_name(ctx, create).await
}

async fn find_group_by_name(
    ctx: &PartContext<'_>,
    create: &CreateEndpointSpec,
) -> Result<Option<LiveGroup>> {
    let name = ctx.owner.security_group_name();
    let out = ctx
        .aws
        .ec2
        .describe_security_groups()
        .filters(filter("group-name", [name.as_str()]))
        .filters(filter("vpc-id", [create.vpc_id.as_str()]))
        .send()
        .await
        .aws(SERVICE, "DescribeSecurityGroups")?;
    let Some(group) = out.security_groups().first().and_then(LiveGroup::from_sdk) else {
        return Ok(None);
    };
    if !owns(ctx, &group.tags) {
        return Err(invalid(
            FIELD_VPC,
            format!(
                "security group {} ({name}) in {} is not tagged as this object's ({}={}, {}={}); the operator does not take it over: delete or rename it",
                group.id,
                create.vpc_id,
                TAG_CLUSTER,
                ctx.owner.cluster,
                TAG_OWNER,
                ctx.owner.key()
            ),
        ));
    }
    Ok(Some(group))
}

/// The owned endpoints found.
#[derive(Debug, Default)]
struct ObservedEndpoints {
    keep: Option<LiveEndpoint>,
    /// Other live endpoints owned by this object (a past duplicate): deleted.
    duplicates: Vec<LiveEndpoint>,
    /// Owned endpoints that failed: deleted.
    failed: Vec<LiveEndpoint>,
    /// Owned endpoints still `deleting` (e.g. deleted outside the operator).
    deleting: Vec<String>,
    /// `keep` is the endpoint named in `spec.adopt`, not yet tagged as this object's.
    adopting: bool,
}

async fn describe_endpoint(ctx: &PartContext<'_>, id: &str) -> Result<Option<LiveEndpoint>> {
    if let Some(reads) = ctx.shared_reads() {
        let found = reads.region.vpc_endpoint(ctx.aws, reads.window, id).await?;
        return Ok(found.as_ref().and_then(LiveEndpoint::from_sdk));
    }
    if let Some(reads) = ctx.reads {
        // The periodic checks list every object's endpoint together.
        reads.region.want_endpoint(id).await;
    }
    let out = ctx
        .aws
        .ec2
        .describe_vpc_endpoints()
        .vpc_endpoint_ids(id)
        .send()
        .await
        .aws(SERVICE, "DescribeVpcEndpoints")
        .or_not_found()?;
    Ok(out.and_then(|o| o.vpc_endpoints().iter().find_map(LiveEndpoint::from_sdk)))
}

/// Every endpoint carrying this object's ownership tags (in `vpc_id` when given), whatever its
/// state.
async fn find_owned_endpoints(
    ctx: &PartContext<'_>,
    vpc_id: Option<&str>,
) -> Result<Vec<LiveEndpoint>> {
    let mut found = Vec::new();
    let mut next_token: Option<String> = None;
    let owner_key = ctx.owner.key();
    loop {
        let mut request = ctx
            .aws
            .ec2
            .describe_vpc_endpoints()
            .filters(filter(
                &format!("tag:{TAG_CLUSTER}"),
                [ctx.owner.cluster.as_str()],
            ))
            .filters(filter(&format!("tag:{TAG_OWNER}"), [owner_key.as_str()]))
            .set_next_token(next_token.clone());
        if let Some(vpc) = vpc_id {
            request = request.filters(filter("vpc-id", [vpc]));
        }
        let out = request.send().await.aws(SERVICE, "DescribeVpcEndpoints")?;
        found.extend(
            out.vpc_endpoints()
                .iter()
                .filter_map(LiveEndpoint::from_sdk)
                // The filters are the server's; ownership is checked here too.
                .filter(|e| e.owned_by(ctx)),
        );
        match out.next_token() {
            Some(token) if !token.is_empty() && Some(token) != next_token.as_deref() => {
                next_token = Some(token.to_string());
            }
            _ => break,
        }
    }
    Ok(found)
}

/// The owned endpoint: by the ID in status if it is still there and ours (status may hold a
/// referenced endpoint after a switch from `id` to `create`: never adopted), else by ownership
/// tags in the VPC, skipping tombstones.
async fn observe_endpoints(
    ctx: &PartContext<'_>,
    create: &CreateEndpointSpec,
) -> Result<ObservedEndpoints> {
    let service = service_name(&ctx.aws.region);
    let mine = |e: &LiveEndpoint| e.vpc_id == create.vpc_id && e.service_name == service;
    let adopt_id = ctx
        .spec
        .adopt
        .as_ref()
        .and_then(|a| a.vpc_endpoint_id.as_deref());
    let status_id = ctx.status.vpc_endpoint_id.as_deref();
    let mut failed = Vec::new();
    if let Some(id) = status_id
        && adopt_id.is_none_or(|adopt| adopt == id)
        && let Some(live) = describe_endpoint(ctx, id).await?
        && live.owned_by(ctx)
        && mine(&live)
    {
        match live.lifecycle() {
            Lifecycle::Gone => {}
            Lifecycle::Failed => failed.push(live),
            _ => {
                return Ok(ObservedEndpoints {
                    keep: Some(live),
                    ..Default::default()
                });
            }
        }
    }
    let mut alive = Vec::new();
    let mut deleting = Vec::new();
    for live in find_owned_endpoints(ctx, Some(&create.vpc_id)).await? {
        if !mine(&live) {
            continue;
        }
        match live.lifecycle() {
            Lifecycle::Gone if live.state.eq_ignore_ascii_case("deleting") => {
                deleting.push(live.id)
            }
            Lifecycle::Gone => {}
            Lifecycle::Failed => {
                if !failed.iter().any(|f: &LiveEndpoint| f.id == live.id) {
                    failed.push(live);
                }
            }
            _ => alive.push(live),
        }
    }
    if let Some(adopt_id) = adopt_id
        && !alive.iter().any(|e| e.id == adopt_id)
    {
        // Not (yet) ours: the endpoint named in spec.adopt, checked before anything changes. The
        // endpoints the operator made before are duplicates from now on.
        let live = describe_endpoint(ctx, adopt_id)
            .await
            .map_err(|err| {
                err.into_invalid_spec_if(&[AwsErrorKind::InvalidRequest], FIELD_ADOPT_ENDPOINT)
            })?
            .ok_or_else(|| {
                Error::reference_not_found(
                    FIELD_ADOPT_ENDPOINT,
                    format!(
                        "VPC endpoint {adopt_id} does not exist in {}",
                        ctx.aws.region
                    ),
                )
            })?;
        check_adoptable(ctx, &live, create)?;
        alive.sort_by(|a, b| a.id.cmp(&b.id));
        return Ok(ObservedEndpoints {
            keep: Some(live),
            duplicates: alive,
            failed,
            deleting,
            adopting: true,
        });
    }
    let (keep, duplicates) = choose_endpoint(alive, adopt_id.or(status_id));
    Ok(ObservedEndpoints {
        keep,
        duplicates,
        failed,
        deleting,
        adopting: false,
    })
}

/// An endpoint named in `spec.adopt` must be a live `execute-api` interface endpoint in the
/// spec's VPC, and nobody else's.
fn check_adoptable(
    ctx: &PartContext<'_>,
    live: &LiveEndpoint,
    create: &CreateEndpointSpec,
) -> Result<()> {
    let service = service_name(&ctx.aws.region);
    let problem = if let Some(other) = ctx
        .owner
        .claimed_by_other(live.tags.iter().map(|(k, v)| (k.as_str(), v.as_str())))
    {
        Some(format!(
            "is managed by another PrivateApi ({other}); the operator takes over only resources nobody manages"
        ))
    } else if !live.endpoint_type.eq_ignore_ascii_case("Interface") || live.service_name != service
    {
        Some(format!(
            "is a {} endpoint for {}, not an Interface endpoint for {service}",
            live.endpoint_type, live.service_name
        ))
    } else if live.vpc_id != create.vpc_id {
        Some(format!(
            "is in {}, but spec.endpoint.create.vpcId is {}",
            live.vpc_id, create.vpc_id
        ))
    } else if matches!(live.lifecycle(), Lifecycle::Gone | Lifecycle::Failed) {
        Some(format!("is {}", live.state))
    } else {
        None
    };
    match problem {
        Some(problem) => Err(invalid(
            FIELD_ADOPT_ENDPOINT,
            format!("VPC endpoint {} {problem}", live.id),
        )),
        None => Ok(()),
    }
}

// ---------------------------------------------------------------------------------------------
// Apply
// ---------------------------------------------------------------------------------------------

async fn create_group(ctx: &PartContext<'_>, create: &CreateEndpointSpec) -> Result<LiveGroup> {
    let name = ctx.owner.security_group_name();
    let result = ctx
        .aws
        .ec2
        .create_security_group()
        .group_name(&name)
        .description(group_description(&ctx.owner.namespace, &ctx.owner.name))
        .vpc_id(&create.vpc_id)
        .tag_specifications(tag_specification(ResourceType::SecurityGroup, &ctx.tags()))
        .send()
        .await
        .aws(SERVICE, "CreateSecurityGroup");
    match result {
        Ok(out) => {
            let id = out.group_id().ok_or_else(|| Error::Unexpected {
                operation: "CreateSecurityGroup",
                message: "no GroupId in the answer".into(),
            })?;
            // EC2 gives a new group an allow-all IPv4 egress rule (and reads may lag the create):
            // start from that instead of describing the group again.
            Ok(LiveGroup {
                id: id.to_string(),
                vpc_id: create.vpc_id.clone(),
                name,
                tags: ctx.tags(),
                ingress: BTreeSet::new(),
                egress: BTreeSet::from([Rule {
                    protocol: "-1".into(),
                    from_port: None,
                    to_port: None,
                    source: Source::Cidr("0.0.0.0/0".into()),
                }]),
            })
        }
        // The name is taken: an SDK retry after a lost response, or a concurrent reconcile. The
        // group found by name is ours if it carries our tags.
        Err(err) if err.aws_code() == Some("InvalidGroup.Duplicate") => {
            find_group_by_name(ctx, create).await?.ok_or(err)
        }
        Err(err) => Err(rejected(err, create)),
    }
}

/// Make the group's rules exactly the desired ingress and no egress, touching only what differs.
async fn sync_rules(
    ctx: &PartContext<'_>,
    refs: &mut References<'_>,
    group: &LiveGroup,
    desired: &BTreeSet<Rule>,
    changes: &mut Vec<Change>,
) -> Result<()> {
    let create = refs.create;
    let ingress = diff_rules(&group.ingress, desired);
    if !ingress.remove.is_empty() {
        ctx.aws
            .ec2
            .revoke_security_group_ingress()
            .group_id(&group.id)
            .set_ip_permissions(Some(permissions(&ingress.remove, None)))
            .send()
            .await
            .aws(SERVICE, "RevokeSecurityGroupIngress")
            .or_not_found()?;
    }
    if !ingress.add.is_empty() {
        if ingress
            .add
            .iter()
            .any(|r| matches!(r.source, Source::Group(_)))
        {
            refs.check_groups(true, false).await?;
        }
        let result = ctx
            .aws
            .ec2
            .authorize_security_group_ingress()
            .group_id(&group.id)
            .set_ip_permissions(Some(permissions(
                &ingress.add,
                Some("privateapi-operator: HTTPS to the execute-api endpoint"),
            )))
            .send()
            .await
            .aws(SERVICE, "AuthorizeSecurityGroupIngress");
        match result {
            Ok(_) => {}
            // An SDK retry of a call that went through: the rules are there.
            Err(err) if err.aws_code() == Some("InvalidPermission.Duplicate") => {}
            Err(err) => return Err(rejected(err, create)),
        }
    }
    if !ingress.is_empty() {
        changes.push(Change::new(
            "Updated",
            format!("security group {}", group.id),
            ingress.describe("ingress"),
        ));
    }
    // The endpoint answers; it opens no connection: no egress at all.
    let egress: Vec<Rule> = group.egress.iter().cloned().collect();
    if !egress.is_empty() {
        ctx.aws
            .ec2
            .revoke_security_group_egress()
            .group_id(&group.id)
            .set_ip_permissions(Some(permissions(&egress, None)))
            .send()
            .await
            .aws(SERVICE, "RevokeSecurityGroupEgress")
            .or_not_found()?;
        changes.push(Change::new(
            "Updated",
            format!("security group {}", group.id),
            RuleDiff {
                add: Vec::new(),
                remove: egress,
            }
            .describe("egress"),
        ));
    }
    Ok(())
}

/// CreateVpcEndpoint with a ClientToken derived from the parameters and the endpoint last in
/// status: a retry after a lost response or a crash returns the endpoint made the first time.
async fn create_endpoint(
    ctx: &PartContext<'_>,
    create: &CreateEndpointSpec,
    desired: &DesiredEndpoint,
) -> Result<LiveEndpoint> {
    let tags = ctx.tags();
    let params = canonical_create_params(&ctx.aws.region, create, desired, &tags);
    let mut previous = ctx.status.vpc_endpoint_id.clone();
    // A token whose endpoint has since been deleted keeps returning it (EC2 remembers tokens for
    // a while): derive the next token from that endpoint, which is as deterministic as the first.
    for _ in 0..4 {
        let token = ctx
            .owner
            .endpoint_client_token(&params, previous.as_deref());
        let out = ctx
            .aws
            .ec2
            .create_vpc_endpoint()
            .vpc_endpoint_type(VpcEndpointType::Interface)
            .vpc_id(&create.vpc_id)
            .service_name(service_name(&ctx.aws.region))
            .set_subnet_ids(Some(desired.subnet_ids.iter().cloned().collect()))
            .set_security_group_ids(Some(desired.security_group_ids.iter().cloned().collect()))
            .private_dns_enabled(desired.private_dns)
            .tag_specifications(tag_specification(ResourceType::VpcEndpoint, &tags))
            .client_token(token)
            .send()
            .await
            .aws(SERVICE, "CreateVpcEndpoint")
            .map_err(|err| rejected(err, create))?;
        let live = out
            .vpc_endpoint()
            .and_then(LiveEndpoint::from_sdk)
            .ok_or_else(|| Error::Unexpected {
                operation: "CreateVpcEndpoint",
                message: "no VpcEndpoint in the answer".into(),
            })?;
        match live.lifecycle() {
            Lifecycle::Gone | Lifecycle::Failed => previous = Some(live.id),
            _ => return Ok(live),
        }
    }
    Err(Error::Unexpected {
        operation: "CreateVpcEndpoint",
        message: "every ClientToken tried returned an endpoint that is deleted or failed".into(),
    })
}

async fn modify_endpoint(
    ctx: &PartContext<'_>,
    id: &str,
    diff: &EndpointDiff,
    create: &CreateEndpointSpec,
) -> Result<()> {
    let non_empty = |ids: &[String]| (!ids.is_empty()).then(|| ids.to_vec());
    ctx.aws
        .ec2
        .modify_vpc_endpoint()
        .vpc_endpoint_id(id)
        .set_add_subnet_ids(non_empty(&diff.add_subnet_ids))
        .set_remove_subnet_ids(non_empty(&diff.remove_subnet_ids))
        .set_add_security_group_ids(non_empty(&diff.add_security_group_ids))
        .set_remove_security_group_ids(non_empty(&diff.remove_security_group_ids))
        .set_private_dns_enabled(diff.private_dns)
        .send()
        .await
        .aws(SERVICE, "ModifyVpcEndpoint")
        .map_err(|err| rejected(err, create))?;
    Ok(())
}

/// DeleteVpcEndpoints; an endpoint already gone is done.
async fn delete_endpoints(ctx: &PartContext<'_>, ids: &[String]) -> Result<()> {
    if ids.is_empty() {
        return Ok(());
    }
    let out = ctx
        .aws
        .ec2
        .delete_vpc_endpoints()
        .set_vpc_endpoint_ids(Some(ids.to_vec()))
        .send()
        .await
        .aws(SERVICE, "DeleteVpcEndpoints")
        .or_not_found()?;
    // Per-endpoint failures come back as Unsuccessful items of a 200 answer.
    for item in out.as_ref().map(|o| o.unsuccessful()).unwrap_or_default() {
        let code = item.error().and_then(|e| e.code()).unwrap_or("Unknown");
        let kind = classify(code, None);
        if kind == AwsErrorKind::NotFound {
            continue;
        }
        return Err(Error::Aws {
            service: SERVICE,
            operation: "DeleteVpcEndpoints",
            code: code.to_string(),
            message: format!(
                "{}: {}",
                item.resource_id().unwrap_or("?"),
                item.error()
                    .and_then(|e| e.message())
                    .unwrap_or("no message")
            ),
            kind,
        });
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Reconcile and cleanup
// ---------------------------------------------------------------------------------------------

/// Make the endpoint (and for `endpoint.create` its security group) match the spec.
pub async fn reconcile(ctx: &PartContext<'_>) -> Result<Outcome<EndpointInfo>> {
    match (&ctx.spec.endpoint.id, &ctx.spec.endpoint.create) {
        (Some(id), None) => reconcile_referenced(ctx, id).await,
        (None, Some(create)) => reconcile_owned(ctx, create).await,
        _ => Err(invalid(
            "spec.endpoint",
            "exactly one of spec.endpoint.id or spec.endpoint.create must be set",
        )),
    }
}

/// `endpoint.id`: one read, never a write.
async fn reconcile_referenced(ctx: &PartContext<'_>, id: &str) -> Result<Outcome<EndpointInfo>> {
    let live = describe_endpoint(ctx, id)
        .await
        .map_err(|err| err.into_invalid_spec_if(&[AwsErrorKind::InvalidRequest], FIELD_ID))?
        .ok_or_else(|| {
            Error::reference_not_found(
                FIELD_ID,
                format!("VPC endpoint {id} does not exist in {}", ctx.aws.region),
            )
        })?;
    let state = check_referenced(&live, &ctx.aws.region)?;
    Ok(Outcome {
        value: live.info(None, &ctx.aws.region),
        state,
        changes: Vec::new(),
    })
}

async fn reconcile_owned(
    ctx: &PartContext<'_>,
    create: &CreateEndpointSpec,
) -> Result<Outcome<EndpointInfo>> {
    let region = ctx.aws.region.as_str();
    let tags = ctx.tags();
    let mut changes = Vec::new();
    let mut refs = References::new(*ctx, create);

    // Independent reads: at the same time.
    let (group, mut observed) =
        tokio::try_join!(observe_group(ctx, create), observe_endpoints(ctx, create))?;

    // Something to create: check every reference first, so an invalid spec leaves nothing behind.
    if group.is_none() || observed.keep.is_none() {
        refs.check_everything().await?;
    }

    let group = match group {
        Some(group) => group,
        None => {
            let group = create_group(ctx, create).await?;
            changes.push(Change::new(
                "Created",
                format!("security group {}", group.id),
                format!("{} in {}", group.name, group.vpc_id),
            ));
            group
        }
    };
    sync_rules(
        ctx,
        &mut refs,
        &group,
        &desired_ingress(create),
        &mut changes,
    )
    .await?;

    // Duplicates (a past double create) and failed endpoints go. Not the endpoint status named
    // when `spec.adopt` names another: clients go through it until the stage serves a policy
    // without it (released by the reconciler then, see `crate::retiring`).
    let doomed: Vec<&LiveEndpoint> = observed
        .duplicates
        .iter()
        .filter(|e| {
            !ctx.status.serving_until_now(
                RetiringResource::VPC_ENDPOINT,
                ctx.status.vpc_endpoint_id.as_deref(),
                &e.id,
            )
        })
        .chain(&observed.failed)
        .collect();
    if !doomed.is_empty() {
        let ids: Vec<String> = doomed.iter().map(|e| e.id.clone()).collect();
        delete_endpoints(ctx, &ids).await?;
        for endpoint in &doomed {
            let why = match &endpoint.last_error {
                Some(error) if endpoint.lifecycle() == Lifecycle::Failed => {
                    format!("it is {}: {error}", endpoint.state)
                }
                _ if endpoint.lifecycle() == Lifecycle::Failed => {
                    format!("it is {}", endpoint.state)
                }
                _ => "a duplicate owned by this object".to_string(),
            };
            changes.push(Change::new(
                "Deleted",
                format!("VPC endpoint {}", endpoint.id),
                why,
            ));
        }
    }

    let desired = DesiredEndpoint::new(create, &group.id);
    if let Some(live) = observed.keep.as_mut().filter(|_| observed.adopting) {
        // Tagged first: from here on the endpoint is found as this object's, and deleted with it.
        ctx.aws
            .ec2
            .create_tags()
            .resources(&live.id)
            .set_tags(Some(sdk_tags(&tags)))
            .send()
            .await
            .aws(SERVICE, "CreateTags")?;
        live.tags.extend(tags.clone());
        changes.push(Change::adopted("VpcEndpoint", &live.id, AdoptedFrom::Spec));
    }
    let (mut endpoint, created) = match observed.keep {
        Some(live) => (live, false),
        None => {
            if let Some(failed) = observed.failed.first() {
                // Creating again would most likely fail again: wait for a spec change.
                return Err(invalid(
                    FIELD_CREATE,
                    format!(
                        "VPC endpoint {} {}{}; the operator deleted it and creates a new one when the spec changes",
                        failed.id,
                        failed.state,
                        failed
                            .last_error
                            .as_deref()
                            .map(|e| format!(" ({e})"))
                            .unwrap_or_default()
                    ),
                ));
            }
            if desired.private_dns
                && let Some(going) = observed.deleting.first()
            {
                // Our endpoint deleted outside the operator keeps the VPC's private DNS name while
                // it is `deleting`: creating now is refused with a DNS conflict, which was taken
                // for InvalidSpec and never retried (no endpoint for good). Look again shortly.
                return Err(Error::CleanupInProgress(format!(
                    "VPC endpoint {going} is still deleting and holds the VPC's private DNS name; \
                     its replacement is created once it is gone"
                )));
            }
            let live = create_endpoint(ctx, create, &desired).await?;
            changes.push(Change::new(
                "Created",
                format!("VPC endpoint {}", live.id),
                format!(
                    "{} in {}, subnets {}",
                    service_name(region),
                    create.vpc_id,
                    desired
                        .subnet_ids
                        .iter()
                        .cloned()
                        .collect::<Vec<_>>()
                        .join(" ")
                ),
            ));
            (live, true)
        }
    };

    // A new endpoint was made from the desired state: nothing to compare yet (the create answer
    // may not echo every field).
    let diff = if created {
        EndpointDiff::default()
    } else {
        diff_endpoint(&endpoint, &desired)
    };
    let mut waiting_to_modify = None;
    if !diff.is_empty() {
        if endpoint.lifecycle() == Lifecycle::Pending {
            // EC2 may refuse to modify an endpoint that is still being set up; come back when it
            // is available (the reconciler requeues pending endpoints).
            waiting_to_modify = Some(diff.describe());
        } else {
            let az_of: BTreeMap<String, String> = if diff.add_subnet_ids.is_empty() {
                BTreeMap::new()
            } else {
                refs.subnet_facts(&diff.remove_subnet_ids)
                    .await?
                    .iter()
                    .map(|(id, f)| (id.clone(), f.availability_zone.clone()))
                    .collect()
            };
            let added_groups: Vec<&String> = diff
                .add_security_group_ids
                .iter()
                .filter(|g| **g != group.id)
                .collect();
            if !added_groups.is_empty() {
                refs.check_groups(false, true).await?;
            }
            for call in modify_calls(&diff, &az_of) {
                modify_endpoint(ctx, &endpoint.id, &call, create).await?;
            }
            changes.push(Change::new(
                "Updated",
                format!("VPC endpoint {}", endpoint.id),
                diff.describe(),
            ));
            diff.apply_to(&mut endpoint);
        }
    }

    // Tags: ownership (a new UID after the object was re-created) and spec.tags.
    let mut untagged = Vec::new();
    for (resource, kind, id, live_tags) in [
        ("security group", "SecurityGroup", &group.id, &group.tags),
        ("VPC endpoint", "VpcEndpoint", &endpoint.id, &endpoint.tags),
    ] {
        let missing = missing_tags(live_tags, &tags);
        if missing.is_empty() {
            continue;
        }
        untagged.push(id.clone());
        changes.push(match live_tags.get(TAG_UID) {
            Some(uid) if owns(ctx, live_tags) && uid != &ctx.owner.uid => {
                Change::adopted(kind, id, AdoptedFrom::PreviousObject(uid.clone()))
            }
            _ => Change::new(
                "Updated",
                format!("{resource} {id}"),
                format!(
                    "tags {}",
                    missing.keys().cloned().collect::<Vec<_>>().join(", ")
                ),
            ),
        });
    }
    if !untagged.is_empty() {
        ctx.aws
            .ec2
            .create_tags()
            .set_resources(Some(untagged))
            .set_tags(Some(sdk_tags(&tags)))
            .send()
            .await
            .aws(SERVICE, "CreateTags")?;
    }

    let state = match waiting_to_modify {
        Some(pending_changes) => PartState::not_ready(
            reason::PENDING,
            format!(
                "waiting for {} to become available before updating it ({pending_changes})",
                endpoint.id
            ),
        ),
        None => owned_state(&endpoint, &group.id),
    };
    Ok(Outcome {
        value: endpoint.info(Some(group.id.clone()), region),
        state,
        changes,
    })
}

/// Delete an endpoint an earlier spec used, once the stage serves a policy without it: only if
/// this object owns it and no other REST API uses it (then
/// [`Error::InUse`]: looked at again later). Gone already, or someone else's: nothing to do (the
/// API was detached from it before).
pub async fn release_retired(
    ctx: &PartContext<'_>,
    id: &str,
    current: &str,
) -> Result<Vec<Change>> {
    let Some(live) = describe_endpoint(ctx, id).await? else {
        return Ok(Vec::new());
    };
    if !live.owned_by(ctx) || live.lifecycle() == Lifecycle::Gone {
        return Ok(Vec::new());
    }
    let users = super::api::other_users_of_endpoint(ctx, id).await?;
    if !users.is_empty() {
        return Err(Error::InUse(format!(
            "VPC endpoint {id} is still used by REST API(s) {}; it is deleted once they no longer use it",
            users.join(", ")
        )));
    }
    delete_endpoints(ctx, &[id.to_string()]).await?;
    Ok(vec![Change::new(
        "Deleted",
        format!("VPC endpoint {id}"),
        format!("replaced by {current}, which the stage's policy now admits"),
    )])
}

/// Delete the endpoint and security group this object owns (found by status IDs AND by ownership
/// tags), never a referenced `endpoint.id`. NotFound = done. Returns done=false while the SG still
/// has dependencies (DependencyViolation while the endpoint's network interfaces go away) so the
/// caller retries later.
pub async fn cleanup_owned(ctx: &PartContext<'_>) -> Result<Cleanup> {
    let referenced = ctx.spec.endpoint.id.as_deref();
    let mut changes = Vec::new();

    // Endpoints: every one tagged as ours, in any VPC (the spec may no longer say which), plus the
    // one in status if the tag search missed it — only if it carries our tags too: status may
    // hold a referenced endpoint.
    let mut endpoints: BTreeMap<String, LiveEndpoint> = find_owned_endpoints(ctx, None)
        .await?
        .into_iter()
        .map(|e| (e.id.clone(), e))
        .collect();
    if let Some(id) = ctx.status.vpc_endpoint_id.as_deref()
        && !endpoints.contains_key(id)
        && Some(id) != referenced
        && let Some(live) = describe_endpoint(ctx, id).await?
        && live.owned_by(ctx)
    {
        endpoints.insert(live.id.clone(), live);
    }
    let doomed: Vec<String> = endpoints
        .values()
        .filter(|e| Some(e.id.as_str()) != referenced && e.lifecycle() != Lifecycle::Gone)
        .map(|e| e.id.clone())
        .collect();
    // Others may have been told to use an endpoint this object created (another PrivateApi's
    // `endpoint.id`, a REST API made elsewhere): deleting it would cut them off. Like a volume
    // claim in use, the cleanup waits until nobody uses it — on deletion and after a switch to
    // `endpoint.id` alike.
    for id in &doomed {
        let users = super::api::other_users_of_endpoint(ctx, id).await?;
        if !users.is_empty() {
            return Err(Error::InUse(format!(
                "VPC endpoint {id} is still used by REST API(s) {}; it is deleted once they no longer use it",
                users.join(", ")
            )));
        }
    }
    delete_endpoints(ctx, &doomed).await?;
    changes.extend(doomed.iter().map(|id| {
        Change::new(
            "Deleted",
            format!("VPC endpoint {id}"),
            "owned by this object",
        )
    }));

    // Security groups: by tags, plus the one in status if ours.
    let owner_key = ctx.owner.key();
    let out = ctx
        .aws
        .ec2
        .describe_security_groups()
        .filters(filter(
            &format!("tag:{TAG_CLUSTER}"),
            [ctx.owner.cluster.as_str()],
        ))
        .filters(filter(&format!("tag:{TAG_OWNER}"), [owner_key.as_str()]))
        .send()
        .await
        .aws(SERVICE, "DescribeSecurityGroups")?;
    let mut groups: BTreeSet<String> = out
        .security_groups()
        .iter()
        .filter_map(LiveGroup::from_sdk)
        .filter(|g| owns(ctx, &g.tags))
        .map(|g| g.id)
        .collect();
    if let Some(id) = ctx.status.security_group_id.as_deref()
        && !groups.contains(id)
    {
        let out = ctx
            .aws
            .ec2
            .describe_security_groups()
            .group_ids(id)
            .send()
            .await
            .aws(SERVICE, "DescribeSecurityGroups")
            .or_not_found()?;
        if let Some(group) = out
            .as_ref()
            .and_then(|o| o.security_groups().first())
            .and_then(LiveGroup::from_sdk)
            && owns(ctx, &group.tags)
        {
            groups.insert(group.id);
        }
    }

    let mut done = true;
    for id in groups {
        let result = ctx
            .aws
            .ec2
            .delete_security_group()
            .group_id(&id)
            .send()
            .await
            .aws(SERVICE, "DeleteSecurityGroup");
        match result {
            Ok(_) => changes.push(Change::new(
                "Deleted",
                format!("security group {id}"),
                "owned by this object",
            )),
            Err(err) if err.is_not_found() => {}
            // The endpoint's network interfaces still use it (they go a little after the
            // endpoint): try again later.
            Err(err)
                if matches!(
                    err.aws_code(),
                    Some("DependencyViolation" | "InvalidGroup.InUse")
                ) =>
            {
                done = false;
            }
            Err(err) => return Err(err),
        }
    }
    Ok(Cleanup { done, changes })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> CreateEndpointSpec {
        CreateEndpointSpec {
            vpc_id: "vpc-1".into(),
            subnet_ids: vec!["subnet-a".into(), "subnet-b".into()],
            private_dns: true,
            allowed_cidrs: vec!["10.0.0.0/16".into(), "2001:DB8:0::/48".into()],
            allowed_security_group_ids: vec!["sg-client".into()],
            security_group_ids: vec!["sg-extra".into()],
        }
    }

    fn https(source: Source) -> Rule {
        Rule::https(source)
    }

    fn cidr(c: &str) -> Source {
        Source::Cidr(c.into())
    }

    #[test]
    fn desired_ingress_is_https_from_each_allowed_source() {
        let rules = desired_ingress(&spec());
        assert_eq!(
            rules,
            BTreeSet::from([
                https(cidr("10.0.0.0/16")),
                https(Source::Ipv6Cidr("2001:db8::/48".into())),
                https(Source::Group("sg-client".into())),
            ])
        );
        let mut empty = spec();
        empty.allowed_cidrs.clear();
        empty.allowed_security_group_ids.clear();
        assert!(desired_ingress(&empty).is_empty());
    }

    #[test]
    fn one_permission_with_several_sources_equals_several_permissions() {
        let one = IpPermission::builder()
            .ip_protocol("tcp")
            .from_port(443)
            .to_port(443)
            .ip_ranges(
                IpRange::builder()
                    .cidr_ip("10.0.0.0/16")
                    .description("x")
                    .build(),
            )
            .ip_ranges(IpRange::builder().cidr_ip("10.1.0.0/16").build())
            .user_id_group_pairs(
                UserIdGroupPair::builder()
                    .group_id("sg-1")
                    .user_id("123")
                    .build(),
            )
            .build();
        let several = vec![
            IpPermission::builder()
                .ip_protocol("6")
                .from_port(443)
                .to_port(443)
                .ip_ranges(IpRange::builder().cidr_ip("10.1.0.0/16").build())
                .build(),
            IpPermission::builder()
                .ip_protocol("tcp")
                .from_port(443)
                .to_port(443)
                .user_id_group_pairs(UserIdGroupPair::builder().group_id("sg-1").build())
                .ip_ranges(IpRange::builder().cidr_ip("10.0.0.0/16").build())
                .build(),
        ];
        assert_eq!(rules_of(&[one]), rules_of(&several));
        assert_eq!(rules_of(&several).len(), 3);
    }

    #[test]
    fn all_traffic_rules_ignore_ports() {
        let perm = IpPermission::builder()
            .ip_protocol("-1")
            .from_port(-1)
            .to_port(-1)
            .ip_ranges(IpRange::builder().cidr_ip("0.0.0.0/0").build())
            .build();
        let rules = rules_of(&[perm]);
        let rule = rules.iter().next().expect("one rule");
        assert_eq!((rule.from_port, rule.to_port), (None, None));
        assert_eq!(rule.to_string(), "all 0.0.0.0/0");
    }

    #[test]
    fn rule_diff_adds_only_missing_and_removes_only_extra() {
        let desired = BTreeSet::from([
            https(cidr("10.0.0.0/16")),
            https(Source::Group("sg-1".into())),
        ]);
        let ssh = Rule {
            protocol: "tcp".into(),
            from_port: Some(22),
            to_port: Some(22),
            source: cidr("0.0.0.0/0"),
        };
        let live = BTreeSet::from([
            https(Source::Group("sg-1".into())),
            ssh.clone(),
            https(cidr("1.2.3.4/32")),
        ]);
        let diff = diff_rules(&live, &desired);
        assert_eq!(diff.add, vec![https(cidr("10.0.0.0/16"))]);
        // Sorted (protocol, ports, source), whatever order AWS listed them in.
        assert_eq!(diff.remove, vec![ssh, https(cidr("1.2.3.4/32"))]);
        assert_eq!(
            diff.describe("ingress"),
            "ingress: +tcp/443 10.0.0.0/16, -tcp/22 0.0.0.0/0, -tcp/443 1.2.3.4/32"
        );
        assert!(diff_rules(&desired, &desired).is_empty());
    }

    #[test]
    fn permissions_group_sources_per_port_range_and_round_trip() {
        let rules = vec![
            https(cidr("10.0.0.0/16")),
            https(Source::Group("sg-1".into())),
            https(Source::Ipv6Cidr("::/0".into())),
            Rule {
                protocol: "-1".into(),
                from_port: None,
                to_port: None,
                source: Source::PrefixList("pl-1".into()),
            },
        ];
        let perms = permissions(&rules, Some("why"));
        assert_eq!(perms.len(), 2, "{perms:?}");
        let tcp = perms
            .iter()
            .find(|p| p.ip_protocol() == Some("tcp"))
            .expect("tcp permission");
        assert_eq!(tcp.ip_ranges()[0].description(), Some("why"));
        assert_eq!(rules_of(&perms), rules.into_iter().collect());
    }

    fn live_endpoint(id: &str) -> LiveEndpoint {
        LiveEndpoint {
            id: id.into(),
            vpc_id: "vpc-1".into(),
            service_name: "com.amazonaws.us-east-1.execute-api".into(),
            endpoint_type: "Interface".into(),
            state: "available".into(),
            subnet_ids: BTreeSet::from(["subnet-a".to_string(), "subnet-b".to_string()]),
            security_group_ids: BTreeSet::from(["sg-managed".to_string(), "sg-extra".to_string()]),
            private_dns: true,
            ..Default::default()
        }
    }

    #[test]
    fn endpoint_in_sync_needs_nothing() {
        let desired = DesiredEndpoint::new(&spec(), "sg-managed");
        assert!(diff_endpoint(&live_endpoint("vpce-1"), &desired).is_empty());
    }

    #[test]
    fn endpoint_diff_lists_each_difference() {
        let mut spec = spec();
        spec.subnet_ids = vec!["subnet-b".into(), "subnet-c".into()];
        spec.security_group_ids.clear();
        spec.private_dns = false;
        let desired = DesiredEndpoint::new(&spec, "sg-managed");
        let mut live = live_endpoint("vpce-1");
        live.security_group_ids =
            BTreeSet::from(["sg-extra".to_string(), "sg-default".to_string()]);
        let diff = diff_endpoint(&live, &desired);
        assert_eq!(
            diff,
            EndpointDiff {
                add_subnet_ids: vec!["subnet-c".into()],
                remove_subnet_ids: vec!["subnet-a".into()],
                add_security_group_ids: vec!["sg-managed".into()],
                remove_security_group_ids: vec!["sg-default".into(), "sg-extra".into()],
                private_dns: Some(false),
            }
        );
        assert_eq!(
            diff.describe(),
            "subnets +subnet-c, subnets -subnet-a, security groups +sg-managed, security groups -sg-default sg-extra, private DNS off"
        );
        diff.apply_to(&mut live);
        assert!(diff_endpoint(&live, &desired).is_empty());
    }

    #[test]
    fn modify_is_one_call_unless_a_subnet_replaces_one_in_its_zone() {
        let diff = EndpointDiff {
            add_subnet_ids: vec!["subnet-c".into()],
            remove_subnet_ids: vec!["subnet-a".into()],
            private_dns: Some(true),
            ..Default::default()
        };
        let az = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
            pairs
                .iter()
                .map(|(s, z)| (s.to_string(), z.to_string()))
                .collect()
        };
        let other_zone = az(&[("subnet-a", "us-east-1a"), ("subnet-c", "us-east-1c")]);
        assert_eq!(modify_calls(&diff, &other_zone), vec![diff.clone()]);
        let same_zone = az(&[("subnet-a", "us-east-1a"), ("subnet-c", "us-east-1a")]);
        let calls = modify_calls(&diff, &same_zone);
        assert_eq!(calls.len(), 2);
        assert_eq!(calls[0].remove_subnet_ids, vec!["subnet-a".to_string()]);
        assert!(calls[0].add_subnet_ids.is_empty());
        assert_eq!(calls[0].private_dns, Some(true));
        assert_eq!(calls[1].add_subnet_ids, vec!["subnet-c".to_string()]);
        assert!(calls[1].remove_subnet_ids.is_empty() && calls[1].private_dns.is_none());
        assert!(modify_calls(&EndpointDiff::default(), &same_zone).is_empty());
    }

    #[test]
    fn keeps_the_endpoint_in_status_else_the_oldest() {
        let mut a = live_endpoint("vpce-a");
        a.created = (200, 0);
        let mut b = live_endpoint("vpce-b");
        b.created = (100, 5);
        let mut c = live_endpoint("vpce-c");
        c.created = (100, 5);
        let (keep, others) = choose_endpoint(vec![a.clone(), b.clone(), c.clone()], None);
        assert_eq!(keep.map(|k| k.id), Some("vpce-b".to_string()));
        assert_eq!(
            others.iter().map(|o| o.id.as_str()).collect::<Vec<_>>(),
            ["vpce-a", "vpce-c"]
        );
        let (keep, others) = choose_endpoint(vec![a, b, c], Some("vpce-a"));
        assert_eq!(keep.map(|k| k.id), Some("vpce-a".to_string()));
        assert_eq!(others.len(), 2);
        let (keep, others) = choose_endpoint(Vec::new(), Some("vpce-a"));
        assert!(keep.is_none() && others.is_empty());
    }

    #[test]
    fn regional_dns_name_comes_first() {
        let names: Vec<String> = [
            "vpce-0abc-x1y2-us-east-1a.execute-api.us-east-1.vpce.amazonaws.com",
            "execute-api.us-east-1.amazonaws.com",
            "vpce-0abc-x1y2.execute-api.us-east-1.vpce.amazonaws.com",
            "vpce-0abc-x1y2-us-east-1b.execute-api.us-east-1.vpce.amazonaws.com",
        ]
        .map(String::from)
        .to_vec();
        let ordered = order_dns_names(&names, "us-east-1");
        assert_eq!(
            ordered[0],
            "vpce-0abc-x1y2.execute-api.us-east-1.vpce.amazonaws.com"
        );
        assert_eq!(ordered[1], names[0]);
        assert_eq!(ordered[2], names[3]);
        assert_eq!(ordered[3], "execute-api.us-east-1.amazonaws.com");
        assert_eq!(
            regional_dns_name(&names, "us-east-1"),
            Some("vpce-0abc-x1y2.execute-api.us-east-1.vpce.amazonaws.com")
        );
        assert_eq!(regional_dns_name(&names[..1], "us-east-1"), None);
    }

    #[test]
    fn states_are_compared_case_insensitively() {
        assert_eq!(lifecycle("available"), Lifecycle::Available);
        assert_eq!(lifecycle("Available"), Lifecycle::Available);
        assert_eq!(lifecycle("pendingAcceptance"), Lifecycle::Pending);
        assert_eq!(lifecycle("deleting"), Lifecycle::Gone);
        assert_eq!(lifecycle("Rejected"), Lifecycle::Failed);
        assert_eq!(lifecycle("partial"), Lifecycle::Other);
    }

    #[test]
    fn a_referenced_endpoint_must_be_an_available_execute_api_interface() {
        let region = "us-east-1";
        let ok = live_endpoint("vpce-1");
        let state = check_referenced(&ok, region).expect("usable");
        assert!(state.ready);
        assert_eq!(state.reason, "Available");

        let mut pending = ok.clone();
        pending.state = "pendingAcceptance".into();
        let state = check_referenced(&pending, region).expect("usable later");
        assert!(!state.ready);
        assert_eq!(state.reason, "Pending");
        assert!(
            state.message.contains("waiting for vpce-1"),
            "{}",
            state.message
        );

        let field_of = |live: &LiveEndpoint| match check_referenced(live, region) {
            Err(Error::InvalidSpec { field, message }) => (field, message),
            other => panic!("expected InvalidSpec, got {other:?}"),
        };
        let mut gateway = ok.clone();
        gateway.endpoint_type = "Gateway".into();
        let (field, message) = field_of(&gateway);
        assert_eq!(field, "spec.endpoint.id");
        assert!(message.contains("Gateway"), "{message}");
        let mut sqs = ok.clone();
        sqs.service_name = "com.amazonaws.us-east-1.sqs".into();
        assert!(field_of(&sqs).1.contains("com.amazonaws.us-east-1.sqs"));
        let mut other_region = ok.clone();
        other_region.service_name = "com.amazonaws.eu-west-1.execute-api".into();
        field_of(&other_region);
        for state in ["deleting", "deleted", "failed", "rejected", "expired"] {
            let mut gone = ok.clone();
            gone.state = state.into();
            assert!(field_of(&gone).1.contains(state));
        }
    }

    fn facts(pairs: &[(&str, &str, &str)]) -> BTreeMap<String, SubnetFacts> {
        pairs
            .iter()
            .map(|(id, vpc, az)| {
                (
                    id.to_string(),
                    SubnetFacts {
                        vpc_id: vpc.to_string(),
                        availability_zone: az.to_string(),
                    },
                )
            })
            .collect()
    }

    /// `field: message` of a refusal: ReferenceNotFound when something does not exist (retried),
    /// InvalidSpec otherwise.
    fn invalid_field(result: Result<()>) -> String {
        match result {
            Err(Error::ReferenceNotFound { field, message })
                if message.contains("does not exist") =>
            {
                format!("{field}: {message}")
            }
            Err(Error::InvalidSpec { field, message }) if !message.contains("does not exist") => {
                format!("{field}: {message}")
            }
            other => panic!(
                "expected InvalidSpec (or ReferenceNotFound for what does not exist), got {other:?}"
            ),
        }
    }

    #[test]
    fn subnet_checks_name_the_index() {
        let spec = spec();
        let good = facts(&[
            ("subnet-a", "vpc-1", "us-east-1a"),
            ("subnet-b", "vpc-1", "us-east-1b"),
        ]);
        check_subnets(&spec, &good, "us-east-1").expect("valid");
        let missing = facts(&[("subnet-a", "vpc-1", "us-east-1a")]);
        let msg = invalid_field(check_subnets(&spec, &missing, "us-east-1"));
        assert!(
            msg.starts_with("spec.endpoint.create.subnetIds[1]: subnet subnet-b does not exist"),
            "{msg}"
        );
        let other_vpc = facts(&[
            ("subnet-a", "vpc-2", "us-east-1a"),
            ("subnet-b", "vpc-1", "us-east-1b"),
        ]);
        let msg = invalid_field(check_subnets(&spec, &other_vpc, "us-east-1"));
        assert!(
            msg.starts_with("spec.endpoint.create.subnetIds[0]: subnet subnet-a is in vpc-2"),
            "{msg}"
        );
        let same_az = facts(&[
            ("subnet-a", "vpc-1", "us-east-1a"),
            ("subnet-b", "vpc-1", "us-east-1a"),
        ]);
        let msg = invalid_field(check_subnets(&spec, &same_az, "us-east-1"));
        assert!(msg.starts_with("spec.endpoint.create.subnetIds[1]: subnet subnet-b is in Availability Zone us-east-1a like spec.endpoint.create.subnetIds[0]"), "{msg}");
    }

    #[test]
    fn group_checks_name_the_list_and_index() {
        let spec = spec();
        let all = BTreeMap::from([
            ("sg-client".to_string(), "vpc-9".to_string()),
            ("sg-extra".to_string(), "vpc-1".to_string()),
        ]);
        check_groups(&spec, &all, true, true, "us-east-1")
            .expect("valid: allowed groups may be in another VPC");
        let msg = invalid_field(check_groups(
            &spec,
            &BTreeMap::new(),
            true,
            false,
            "us-east-1",
        ));
        assert!(msg.starts_with("spec.endpoint.create.allowedSecurityGroupIds[0]: security group sg-client does not exist"), "{msg}");
        check_groups(&spec, &BTreeMap::new(), false, false, "us-east-1").expect("nothing asked");
        let foreign = BTreeMap::from([("sg-extra".to_string(), "vpc-9".to_string())]);
        let msg = invalid_field(check_groups(&spec, &foreign, false, true, "us-east-1"));
        assert!(
            msg.starts_with(
                "spec.endpoint.create.securityGroupIds[0]: security group sg-extra is in vpc-9"
            ),
            "{msg}"
        );
    }

    #[test]
    fn aws_rejections_name_the_field() {
        let spec = spec();
        let field = |code: &str, message: &str| rejection_field(code, message, &spec);
        assert_eq!(
            field(
                "InvalidSubnetID.NotFound",
                "The subnet ID 'subnet-b' does not exist"
            )
            .as_deref(),
            Some("spec.endpoint.create.subnetIds[1]")
        );
        assert_eq!(
            field(
                "DuplicateSubnetsInSameZone",
                "Found another VPC endpoint subnet in the availability zone of subnet-a."
            )
            .as_deref(),
            Some("spec.endpoint.create.subnetIds[0]")
        );
        assert_eq!(
            field(
                "InvalidParameter",
                "private-dns-enabled cannot be set because there is already a conflicting DNS domain for execute-api.us-east-1.amazonaws.com in the VPC vpc-1"
            )
            .as_deref(),
            Some("spec.endpoint.create.privateDns")
        );
        assert_eq!(
            field("InvalidParameter", "Enabling private DNS requires both enableDnsSupport and enableDnsHostnames VPC attributes set to true for vpc-1").as_deref(),
            Some("spec.endpoint.create.privateDns")
        );
        assert_eq!(
            field(
                "InvalidGroup.NotFound",
                "The security group 'sg-client' does not exist"
            )
            .as_deref(),
            Some("spec.endpoint.create.allowedSecurityGroupIds[0]")
        );
        assert_eq!(
            field(
                "InvalidGroup.NotFound",
                "The security group 'sg-extra' does not exist"
            )
            .as_deref(),
            Some("spec.endpoint.create.securityGroupIds[0]")
        );
        assert_eq!(
            field("InvalidVpcID.NotFound", "VpcID vpc-1 does not exist.").as_deref(),
            Some("spec.endpoint.create.vpcId")
        );
        assert_eq!(field("InvalidParameterValue", "something else"), None);
        assert_eq!(field("UnauthorizedOperation", "no"), None);

        let err = rejected(
            Error::Aws {
                service: SERVICE,
                operation: "CreateVpcEndpoint",
                code: "InvalidSubnetID.NotFound".into(),
                message: "The subnet ID 'subnet-a' does not exist".into(),
                kind: AwsErrorKind::NotFound,
            },
            &spec,
        );
        assert_eq!(err.reason(), "ReferenceNotFound");
        assert!(
            err.to_string()
                .starts_with("spec.endpoint.create.subnetIds[0]: InvalidSubnetID.NotFound")
        );
        let throttled = rejected(
            Error::Aws {
                service: SERVICE,
                operation: "CreateVpcEndpoint",
                code: "RequestLimitExceeded".into(),
                message: "slow down subnet-a".into(),
                kind: AwsErrorKind::Throttled,
            },
            &spec,
        );
        assert_eq!(throttled.reason(), "Throttled");
    }

    #[test]
    fn create_parameters_are_canonical() {
        let tags = BTreeMap::from([
            ("b".to_string(), "2".to_string()),
            ("a".to_string(), "1".to_string()),
        ]);
        let one = spec();
        let mut reordered = spec();
        reordered.subnet_ids.reverse();
        let p1 = canonical_create_params(
            "us-east-1",
            &one,
            &DesiredEndpoint::new(&one, "sg-m"),
            &tags,
        );
        let p2 = canonical_create_params(
            "us-east-1",
            &reordered,
            &DesiredEndpoint::new(&reordered, "sg-m"),
            &tags,
        );
        assert_eq!(p1, p2);
        assert_eq!(
            p1,
            "service=com.amazonaws.us-east-1.execute-api;vpc=vpc-1;subnets=subnet-a,subnet-b;groups=sg-extra,sg-m;privateDns=true;tags=a=1,b=2"
        );
        let mut no_dns = spec();
        no_dns.private_dns = false;
        assert_ne!(
            p1,
            canonical_create_params(
                "us-east-1",
                &no_dns,
                &DesiredEndpoint::new(&no_dns, "sg-m"),
                &tags
            )
        );
    }

    #[test]
    fn missing_tags_are_the_absent_and_the_different() {
        let desired = BTreeMap::from([
            ("privateapi.io/uid".to_string(), "new".to_string()),
            ("team".to_string(), "a".to_string()),
        ]);
        let live = BTreeMap::from([
            ("privateapi.io/uid".to_string(), "old".to_string()),
            ("extra".to_string(), "kept".to_string()),
        ]);
        assert_eq!(missing_tags(&live, &desired), desired);
        assert!(missing_tags(&desired, &desired).is_empty());
    }

    #[test]
    fn group_description_fits_ec2_limits() {
        assert_eq!(
            group_description("team-a", "orders"),
            "privateapi-operator: HTTPS to the execute-api endpoint of team-a/orders"
        );
        assert_eq!(
            group_description(&"n".repeat(63), &"x".repeat(253)).len(),
            255
        );
    }
}
