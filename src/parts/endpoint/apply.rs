//! The calls that change AWS, driven by the plan: [`apply_owned`] carries out an [`OwnedPlan`]
//! step by step, the endpoint's own calls below it.

use std::collections::BTreeMap;

use aws_sdk_ec2::types::{ResourceType, VpcEndpointType};

use super::SERVICE;
use super::endpoint_diff::{DesiredEndpoint, EndpointDiff, canonical_create_params, modify_calls};
use super::model::{EndpointInfo, Lifecycle, LiveEndpoint, owned_state, service_name};
use super::plan::{
    Deletion, EndpointStep, EndpointUpdate, OwnedPlan, Retag, plan_retag, plan_update,
};
use super::sdk::{sdk_tags, tag_specification};
use super::security_group::{apply_rules, create_group, desired_ingress, plan_rules};
use super::validate::{References, rejected};
use crate::conditions::{PartState, reason};
use crate::crd::CreateEndpointSpec;
use crate::error::{AwsErrorKind, AwsResultExt, Error, NotFoundExt, Result, classify};
use crate::parts::{AdoptedFrom, Change, Outcome, PartContext};

pub(super) async fn apply_owned(
    ctx: &PartContext<'_>,
    create: &CreateEndpointSpec,
    plan: OwnedPlan,
) -> Result<Outcome<EndpointInfo>> {
    let tags = ctx.tags();
    let mut changes = Vec::new();
    let mut refs = References::new(*ctx, create);
    if plan.check_references {
        refs.check_everything().await?;
    }

    let group = match plan.group {
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
    let rules = plan_rules(&group, &desired_ingress(create));
    apply_rules(ctx, &mut refs, &group.id, &rules, &mut changes).await?;

    delete_planned(ctx, &plan.delete, &mut changes).await?;

    let desired = DesiredEndpoint::new(create, &group.id);
    let (mut endpoint, update) = match plan.endpoint {
        EndpointStep::Keep { mut live, adopt } => {
            if adopt {
                adopt_endpoint(ctx, &mut live, &tags, &mut changes).await?;
            }
            let update = plan_update(&live, &desired);
            (live, update)
        }
        EndpointStep::Create => {
            let live = create_endpoint(ctx, create, &desired).await?;
            changes.push(Change::new(
                "Created",
                format!("VPC endpoint {}", live.id),
                format!(
                    "{} in {}, subnets {}",
                    service_name(&ctx.aws.region),
                    create.vpc_id,
                    desired
                        .subnet_ids
                        .iter()
                        .cloned()
                        .collect::<Vec<_>>()
                        .join(" ")
                ),
            ));
            // Made from the desired state: nothing to compare yet (the create answer may not
            // echo every field).
            (live, EndpointUpdate::InSync)
        }
        EndpointStep::Refuse(err) => return Err(err),
    };
    let waiting_to_modify = match update {
        EndpointUpdate::InSync => None,
        EndpointUpdate::WaitUntilAvailable(diff) => Some(diff),
        EndpointUpdate::Modify(diff) => {
            update_endpoint(
                ctx,
                &mut refs,
                &group.id,
                &mut endpoint,
                &diff,
                &mut changes,
            )
            .await?;
            None
        }
    };

    let retag = plan_retag(ctx.owner, &tags, &group, &endpoint);
    apply_retag(ctx, retag, &tags, &mut changes).await?;

    let state = match waiting_to_modify {
        Some(diff) => PartState::not_ready(
            reason::PENDING,
            format!(
                "waiting for {} to become available before updating it ({})",
                endpoint.id,
                diff.describe()
            ),
        ),
        None => owned_state(&endpoint, &group.id),
    };
    Ok(Outcome {
        value: endpoint.info(Some(group.id.clone()), &ctx.aws.region),
        state,
        changes,
    })
}

async fn delete_planned(
    ctx: &PartContext<'_>,
    deletions: &[Deletion],
    changes: &mut Vec<Change>,
) -> Result<()> {
    if deletions.is_empty() {
        return Ok(());
    }
    let ids: Vec<String> = deletions.iter().map(|d| d.id.clone()).collect();
    delete_endpoints(ctx, &ids).await?;
    changes.extend(
        deletions
            .iter()
            .map(|d| Change::new("Deleted", format!("VPC endpoint {}", d.id), d.why.clone())),
    );
    Ok(())
}

/// Tagged first: from here on the endpoint is found as this object's, and deleted with it.
async fn adopt_endpoint(
    ctx: &PartContext<'_>,
    live: &mut LiveEndpoint,
    tags: &BTreeMap<String, String>,
    changes: &mut Vec<Change>,
) -> Result<()> {
    ctx.aws
        .ec2
        .create_tags()
        .resources(&live.id)
        .set_tags(Some(sdk_tags(tags)))
        .send()
        .await
        .aws(SERVICE, "CreateTags")?;
    live.tags.extend(tags.clone());
    changes.push(Change::adopted("VpcEndpoint", &live.id, AdoptedFrom::Spec));
    Ok(())
}

/// ModifyVpcEndpoint, after checking what the diff newly references: the Availability Zones of
/// added subnets decide whether it takes two calls (see [`modify_calls`]), and added groups
/// other than the managed one must exist in the VPC.
async fn update_endpoint(
    ctx: &PartContext<'_>,
    refs: &mut References<'_>,
    managed_group_id: &str,
    endpoint: &mut LiveEndpoint,
    diff: &EndpointDiff,
    changes: &mut Vec<Change>,
) -> Result<()> {
    let az_of: BTreeMap<String, String> = if diff.add_subnet_ids.is_empty() {
        BTreeMap::new()
    } else {
        refs.subnet_facts(&diff.remove_subnet_ids)
            .await?
            .iter()
            .map(|(id, f)| (id.clone(), f.availability_zone.clone()))
            .collect()
    };
    if diff
        .add_security_group_ids
        .iter()
        .any(|g| g != managed_group_id)
    {
        refs.check_groups(false, true).await?;
    }
    for call in modify_calls(diff, &az_of) {
        modify_endpoint(ctx, &endpoint.id, &call, refs.create).await?;
    }
    changes.push(Change::new(
        "Updated",
        format!("VPC endpoint {}", endpoint.id),
        diff.describe(),
    ));
    diff.apply_to(endpoint);
    Ok(())
}

async fn apply_retag(
    ctx: &PartContext<'_>,
    retag: Retag,
    tags: &BTreeMap<String, String>,
    changes: &mut Vec<Change>,
) -> Result<()> {
    changes.extend(retag.changes);
    if !retag.ids.is_empty() {
        ctx.aws
            .ec2
            .create_tags()
            .set_resources(Some(retag.ids))
            .set_tags(Some(sdk_tags(tags)))
            .send()
            .await
            .aws(SERVICE, "CreateTags")?;
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
pub(super) async fn delete_endpoints(ctx: &PartContext<'_>, ids: &[String]) -> Result<()> {
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
