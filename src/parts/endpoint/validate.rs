//! The checks of the spec's references (VPC, subnets, security groups, the endpoint named in
//! `spec.adopt`), and AWS rejections turned into errors that name the spec's field.

use std::collections::{BTreeMap, BTreeSet};

use super::SERVICE;
use super::model::{Lifecycle, LiveEndpoint, service_name};
use super::sdk::filter;
use crate::crd::CreateEndpointSpec;
use crate::error::{AwsErrorKind, AwsResultExt, Error, Result};
use crate::parts::{FIELD_ADOPT_ENDPOINT, PartContext};

#[cfg(test)]
mod tests;

pub(super) const FIELD_ID: &str = "spec.endpoint.id";
pub(super) const FIELD_CREATE: &str = "spec.endpoint.create";
pub(super) const FIELD_VPC: &str = "spec.endpoint.create.vpcId";
const FIELD_SUBNETS: &str = "spec.endpoint.create.subnetIds";
const FIELD_PRIVATE_DNS: &str = "spec.endpoint.create.privateDns";
const FIELD_ALLOWED_GROUPS: &str = "spec.endpoint.create.allowedSecurityGroupIds";
const FIELD_GROUPS: &str = "spec.endpoint.create.securityGroupIds";

pub(super) fn invalid(field: impl Into<String>, message: impl Into<String>) -> Error {
    Error::InvalidSpec {
        field: field.into(),
        message: message.into(),
    }
}

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
pub(super) fn rejected(err: Error, create: &CreateEndpointSpec) -> Error {
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
pub(super) struct References<'a> {
    ctx: PartContext<'a>,
    pub(super) create: &'a CreateEndpointSpec,
    vpc_checked: bool,
    subnets: Option<BTreeMap<String, SubnetFacts>>,
    allowed_groups_checked: bool,
    attached_groups_checked: bool,
}

impl<'a> References<'a> {
    pub(super) fn new(ctx: PartContext<'a>, create: &'a CreateEndpointSpec) -> Self {
        Self {
            ctx,
            create,
            vpc_checked: false,
            subnets: None,
            allowed_groups_checked: false,
            attached_groups_checked: false,
        }
    }

    pub(super) async fn check_everything(&mut self) -> Result<()> {
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
    pub(super) async fn subnet_facts(
        &mut self,
        also: &[String],
    ) -> Result<&BTreeMap<String, SubnetFacts>> {
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

    pub(super) async fn check_groups(&mut self, allowed: bool, attached: bool) -> Result<()> {
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

/// An endpoint named in `spec.adopt` must be a live `execute-api` interface endpoint in the
/// spec's VPC, and nobody else's.
pub(super) fn check_adoptable(
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
