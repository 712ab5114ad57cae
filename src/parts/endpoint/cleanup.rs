//! Deleting what this object owns: an endpoint an earlier spec used, and everything on deletion.

use std::collections::BTreeMap;

use super::SERVICE;
use super::apply::delete_endpoints;
use super::model::{EndpointInfo, Lifecycle, LiveEndpoint};
use super::observe::{describe_endpoint, find_owned_endpoints};
use super::security_group::find_owned_groups;
use crate::error::{AwsResultExt, Error, Result};
use crate::parts::{Change, Cleanup, PartContext};

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
    refuse_while_used(ctx, id).await?;
    delete_endpoints(ctx, &[id.to_string()]).await?;
    Ok(vec![Change::new(
        "Deleted",
        format!("VPC endpoint {id}"),
        format!("replaced by {current}, which the stage's policy now admits"),
    )])
}

/// After a move from `endpoint.create` to `endpoint.id`: the endpoint and security group the
/// operator made for the earlier spec are still to delete (status still names the group). They go
/// with [`cleanup_owned`] once the stage serves the referenced endpoint.
pub fn owned_left_behind(ctx: &PartContext<'_>) -> bool {
    ctx.spec.endpoint.id.is_some() && ctx.status.security_group_id.is_some()
}

/// The security group status names once `endpoint` is reconciled: its managed group, else the one
/// an earlier `endpoint.create` made. `endpoint.id` has no managed group: that one is kept until
/// [`cleanup_owned`] has deleted it. Dropping it at once (status is written as soon as the
/// endpoint's ID is known) made the reconcile after a DependencyViolation skip that cleanup,
/// orphaning the group.
pub fn group_in_status(ctx: &PartContext<'_>, endpoint: &EndpointInfo) -> Option<String> {
    match &endpoint.security_group_id {
        None if ctx.spec.endpoint.id.is_some() => ctx.status.security_group_id.clone(),
        managed => managed.clone(),
    }
}

/// Delete the endpoint and security group this object owns (found by status IDs AND by ownership
/// tags), never a referenced `endpoint.id`. NotFound = done. Returns done=false while the SG still
/// has dependencies (DependencyViolation while the endpoint's network interfaces go away) so the
/// caller retries later.
pub async fn cleanup_owned(ctx: &PartContext<'_>) -> Result<Cleanup> {
    let mut changes = delete_owned_endpoints(ctx).await?;
    let mut done = true;
    for id in find_owned_groups(ctx).await? {
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

/// Every endpoint tagged as ours, in any VPC (the spec may no longer say which), plus the one in
/// status if the tag search missed it — only if it carries our tags too: status may hold a
/// referenced endpoint.
async fn delete_owned_endpoints(ctx: &PartContext<'_>) -> Result<Vec<Change>> {
    let referenced = ctx.spec.endpoint.id.as_deref();
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
        refuse_while_used(ctx, id).await?;
    }
    delete_endpoints(ctx, &doomed).await?;
    Ok(doomed
        .iter()
        .map(|id| {
            Change::new(
                "Deleted",
                format!("VPC endpoint {id}"),
                "owned by this object",
            )
        })
        .collect())
}

/// [`Error::InUse`] while another REST API uses the endpoint: it is looked at again later.
async fn refuse_while_used(ctx: &PartContext<'_>, id: &str) -> Result<()> {
    let users = crate::parts::api::other_users_of_endpoint(ctx, id).await?;
    if !users.is_empty() {
        return Err(Error::InUse(format!(
            "VPC endpoint {id} is still used by REST API(s) {}; it is deleted once they no longer use it",
            users.join(", ")
        )));
    }
    Ok(())
}
