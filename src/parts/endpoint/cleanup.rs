//! Deleting what this object owns: an endpoint an earlier spec used, and everything on deletion.

use std::collections::{BTreeMap, BTreeSet};

use super::SERVICE;
use super::apply::delete_endpoints;
use super::model::{Lifecycle, LiveEndpoint, owns};
use super::observe::{describe_endpoint, find_owned_endpoints};
use super::sdk::filter;
use super::security_group::LiveGroup;
use crate::error::{AwsResultExt, Error, NotFoundExt, Result};
use crate::identity::{TAG_CLUSTER, TAG_OWNER};
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
    let users = crate::parts::api::other_users_of_endpoint(ctx, id).await?;
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
        let users = crate::parts::api::other_users_of_endpoint(ctx, id).await?;
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
        .filter(|g| owns(ctx.owner, &g.tags))
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
            && owns(ctx.owner, &group.tags)
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
