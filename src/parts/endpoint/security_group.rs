//! The operator-managed security group in front of the endpoint: its rules and their pure diff,
//! then the reads and the calls that make the live group match.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use aws_sdk_ec2::types::{
    IpPermission, IpRange, Ipv6Range, PrefixListId, ResourceType, SecurityGroup, UserIdGroupPair,
};

use super::SERVICE;
use super::model::owns;
use super::sdk::{filter, ownership_filters, tag_map, tag_specification};
use super::validate::{FIELD_VPC, References, invalid, rejected};
use crate::crd::CreateEndpointSpec;
use crate::error::{AwsResultExt, Error, NotFoundExt, Result};
use crate::identity::{TAG_CLUSTER, TAG_OWNER};
use crate::parts::{Change, PartContext};

const HTTPS_PORT: i32 = 443;
/// EC2 limits security group descriptions to 255 characters.
const MAX_GROUP_DESCRIPTION: usize = 255;

#[cfg(test)]
mod tests;

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

    pub(super) fn describe(&self, direction: &str) -> String {
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

/// What the managed group's rules need: exactly the desired ingress, and no egress.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct RulePlan {
    pub(super) ingress: RuleDiff,
    /// Every egress rule goes (nothing is ever added): the endpoint answers, it opens no
    /// connection.
    pub(super) egress: RuleDiff,
}

impl RulePlan {
    /// An added rule admits a security group: the spec's allowed groups are checked first.
    pub(super) fn admits_new_groups(&self) -> bool {
        self.ingress
            .add
            .iter()
            .any(|r| matches!(r.source, Source::Group(_)))
    }
}

pub(super) fn plan_rules(group: &LiveGroup, desired_ingress: &BTreeSet<Rule>) -> RulePlan {
    RulePlan {
        ingress: diff_rules(&group.ingress, desired_ingress),
        egress: diff_rules(&group.egress, &BTreeSet::new()),
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

/// The managed security group as DescribeSecurityGroups reports it.
#[derive(Debug, Clone, PartialEq, Default)]
pub(super) struct LiveGroup {
    pub(super) id: String,
    pub(super) vpc_id: String,
    pub(super) name: String,
    pub(super) tags: BTreeMap<String, String>,
    pub(super) ingress: BTreeSet<Rule>,
    pub(super) egress: BTreeSet<Rule>,
}

impl LiveGroup {
    pub(super) fn from_sdk(group: &SecurityGroup) -> Option<Self> {
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
pub(super) async fn observe_group(
    ctx: &PartContext<'_>,
    create: &CreateEndpointSpec,
) -> Result<Option<LiveGroup>> {
    if let Some(id) = ctx.status.security_group_id.as_deref() {
        let found = ctx.reader.security_group(id).await?;
        if let Some(group) = found.as_ref().and_then(LiveGroup::from_sdk)
            && owns(ctx.owner, &group.tags)
            && group.vpc_id == create.vpc_id
        {
            return Ok(Some(group));
        }
    }
    find_group_by_name(ctx, create).await
}

/// The IDs of every group this object owns, by ownership tags, plus the one in status if ours
/// (for the cleanup: whatever VPC the spec says now).
pub(super) async fn find_owned_groups(ctx: &PartContext<'_>) -> Result<BTreeSet<String>> {
    let out = ctx
        .aws
        .ec2
        .describe_security_groups()
        .set_filters(Some(ownership_filters(ctx.owner)))
        .send()
        .await
        .aws(SERVICE, "DescribeSecurityGroups")?;
    let mut groups: BTreeSet<String> = out
        .security_groups()
        .iter()
        .filter_map(LiveGroup::from_sdk)
        .filter(|g| owns(ctx.owner, &g.tags))
        .map(|g| g.id)
        .collect();
    if let Some(id) = ctx.status.security_group_id.as_deref()
        && !groups.contains(id)
        && let Some(group) = ctx
            .reader
            .security_group(id)
            .await?
            .as_ref()
            .and_then(LiveGroup::from_sdk)
        && owns(ctx.owner, &group.tags)
    {
        groups.insert(group.id);
    }
    Ok(groups)
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
    if !owns(ctx.owner, &group.tags) {
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

pub(super) async fn create_group(
    ctx: &PartContext<'_>,
    create: &CreateEndpointSpec,
) -> Result<LiveGroup> {
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

/// The calls that make the group's rules the plan's, each only when it has something to do.
pub(super) async fn apply_rules(
    ctx: &PartContext<'_>,
    refs: &mut References<'_>,
    group_id: &str,
    plan: &RulePlan,
    changes: &mut Vec<Change>,
) -> Result<()> {
    let create = refs.create;
    let ingress = &plan.ingress;
    if !ingress.remove.is_empty() {
        ctx.aws
            .ec2
            .revoke_security_group_ingress()
            .group_id(group_id)
            .set_ip_permissions(Some(permissions(&ingress.remove, None)))
            .send()
            .await
            .aws(SERVICE, "RevokeSecurityGroupIngress")
            .or_not_found()?;
    }
    if !ingress.add.is_empty() {
        if plan.admits_new_groups() {
            refs.check_groups(true, false).await?;
        }
        let result = ctx
            .aws
            .ec2
            .authorize_security_group_ingress()
            .group_id(group_id)
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
            format!("security group {group_id}"),
            ingress.describe("ingress"),
        ));
    }
    // Egress is only ever revoked: the plan wants none.
    if !plan.egress.remove.is_empty() {
        ctx.aws
            .ec2
            .revoke_security_group_egress()
            .group_id(group_id)
            .set_ip_permissions(Some(permissions(&plan.egress.remove, None)))
            .send()
            .await
            .aws(SERVICE, "RevokeSecurityGroupEgress")
            .or_not_found()?;
        changes.push(Change::new(
            "Updated",
            format!("security group {group_id}"),
            plan.egress.describe("egress"),
        ));
    }
    Ok(())
}
