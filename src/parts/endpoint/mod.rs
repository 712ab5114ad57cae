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
//! - `observe`: the reads;
//! - `plan`: from what was observed, what a reconcile does (pure);
//! - `apply`: the calls that change AWS, driven by the plan;
//! - `cleanup`: deleting what this object owns;
//! - `sdk`: conversions to and from the EC2 SDK's types.

mod apply;
mod cleanup;
mod endpoint_diff;
mod model;
mod observe;
mod plan;
mod sdk;
mod security_group;
mod validate;

#[cfg(test)]
mod fixtures;

use crate::crd::CreateEndpointSpec;
use crate::error::Result;
use crate::parts::{Outcome, PartContext};

pub use cleanup::{cleanup_owned, group_in_status, owned_left_behind, release_retired};
pub use endpoint_diff::{
    DesiredEndpoint, EndpointDiff, canonical_create_params, diff_endpoint, modify_calls,
};
pub use model::{
    EndpointInfo, Lifecycle, LiveEndpoint, check_referenced, choose_endpoint, lifecycle,
    order_dns_names, regional_dns_name, service_name,
};
pub use security_group::{
    Rule, RuleDiff, Source, desired_ingress, diff_rules, group_description, permissions, rules_of,
};
pub use validate::{SubnetFacts, check_groups, check_subnets, rejection_field};

use apply::apply_owned;
use observe::{describe_named_endpoint, observe_owned};
use plan::plan_owned;
use validate::{FIELD_ID, invalid};

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
    let live = describe_named_endpoint(ctx, id, FIELD_ID).await?;
    let state = check_referenced(&live, &ctx.aws.region)?;
    Ok(Outcome {
        value: live.info(None, &ctx.aws.region),
        state,
        changes: Vec::new(),
    })
}

/// `endpoint.create`: observe, plan, apply the plan.
async fn reconcile_owned(
    ctx: &PartContext<'_>,
    create: &CreateEndpointSpec,
) -> Result<Outcome<EndpointInfo>> {
    let observed = observe_owned(ctx, create).await?;
    let plan = plan_owned(observed, create, ctx.status);
    apply_owned(ctx, create, plan).await
}
