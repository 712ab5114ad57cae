//! The EC2 part: the `execute-api` interface VPC endpoint, and for `endpoint.create` the
//! operator-managed security group in front of it.
//!
//! - `endpoint.id`: the endpoint is checked (exists, Interface, `execute-api` of the region, its
//!   state) and never modified.
//! - `endpoint.create`: observe the group (status ID, else deterministic name in the VPC) and the
//!   endpoint (status ID, else ownership tags) concurrently; diff them against the spec with pure
//!   functions; apply the smallest change. A reconcile of an object in sync makes two reads
//!   (DescribeSecurityGroups, DescribeVpcEndpoints) and no write. The user's references (VPC,
//!   subnets, groups) are checked with cheap reads only when something is about to be created or
//!   changed, and before anything is created, so an invalid spec leaves nothing behind.
//!
//! This file is the part's door: the functions the reconciler calls. Behind it:
//!
//! - `model`: the endpoint as AWS reports it, its states and DNS names, the part's readiness;
//! - `endpoint_diff`: what the owned endpoint must look like, and the ModifyVpcEndpoint calls that
//!   get it there (pure);
//! - `security_group`: the managed group: its rules, their pure diff, the calls that apply it;
//! - `validate`: the checks of the spec's references, and AWS rejections named by spec field;
//! - `observe`: the reads of the endpoint;
//! - `apply`: the calls that change the endpoint;
//! - `cleanup`: deleting what this object owns;
//! - `sdk`: conversions to and from the EC2 SDK's types.

mod apply;
mod cleanup;
mod endpoint_diff;
mod model;
mod observe;
mod sdk;
mod security_group;
mod validate;

#[cfg(test)]
mod fixtures;

use std::collections::BTreeMap;

use crate::conditions::{PartState, reason};
use crate::crd::{CreateEndpointSpec, RetiringResource};
use crate::error::{AwsErrorKind, AwsResultExt, Error, Result};
use crate::identity::TAG_UID;
use crate::parts::{AdoptedFrom, Change, Outcome, PartContext};

pub use cleanup::{cleanup_owned, release_retired};
pub use endpoint_diff::{
    DesiredEndpoint, EndpointDiff, canonical_create_params, diff_endpoint, missing_tags,
    modify_calls,
};
pub use model::{
    EndpointInfo, Lifecycle, LiveEndpoint, check_referenced, choose_endpoint, lifecycle,
    order_dns_names, regional_dns_name, service_name,
};
pub use security_group::{
    Rule, RuleDiff, Source, desired_ingress, diff_rules, group_description, permissions, rules_of,
};
pub use validate::{SubnetFacts, check_groups, check_subnets, rejection_field};

use apply::{create_endpoint, delete_endpoints, modify_endpoint};
use model::{owned_state, owns};
use observe::{describe_endpoint, observe_endpoints};
use sdk::sdk_tags;
use security_group::{create_group, observe_group, sync_rules};
use validate::{FIELD_CREATE, FIELD_ID, References, invalid};

/// The service AWS errors of this part are reported under.
const SERVICE: &str = "EC2";

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
