//! Letting go of functions: one an earlier spec used (once the stage no longer calls it), and
//! everything this object used when it is deleted. Owned functions are deleted; from anyone
//! else's only this object's statements come off.

use std::collections::BTreeSet;

use super::SERVICE;
use super::function::{LiveFunction, get_function};
use super::names::parse_function_arn;
use super::permission::remove_owner_statements;
use crate::error::{AwsResultExt, NotFoundExt, Result};
use crate::parts::{Change, Cleanup, PartContext};

/// Release a function an earlier spec used, once the stage serves a deployment that calls
/// `current` instead (see `crate::retiring`): delete it if this object owns it, else take this
/// object's statements off it. The same function under another qualifier (`F` and `F:live`) is
/// never deleted, only its statements removed.
pub async fn release_retired(
    ctx: &PartContext<'_>,
    retired: &str,
    current: &str,
) -> Result<Vec<Change>> {
    let Some(parsed) = parse_function_arn(retired) else {
        return Ok(Vec::new());
    };
    if parsed.region != ctx.aws.region {
        return Ok(Vec::new());
    }
    let same_function = parse_function_arn(current).is_some_and(|c| c.name == parsed.name);
    release_function(ctx, retired, same_function).await
}

/// Delete the function if this owner owns it (and `keep` is false), else remove this owner's
/// permission statements from it. NotFound = nothing to do.
async fn release_function(ctx: &PartContext<'_>, id: &str, keep: bool) -> Result<Vec<Change>> {
    match get_function(ctx, id).await? {
        Some(live) => release_live(ctx, id, &live, keep).await,
        None => Ok(Vec::new()),
    }
}

async fn release_live(
    ctx: &PartContext<'_>,
    id: &str,
    live: &LiveFunction,
    keep: bool,
) -> Result<Vec<Change>> {
    if !keep && live.owned_by(ctx.owner) {
        // Deleting the function deletes its resource policy (and our statement) with it.
        let deleted = ctx
            .aws
            .lambda
            .delete_function()
            .function_name(&live.name)
            .send()
            .await
            .aws(SERVICE, "DeleteFunction")
            .or_not_found()?;
        return Ok(match deleted {
            Some(_) => vec![Change::new(
                "Deleted",
                format!("Lambda function {}", live.name),
                "owned by this PrivateApi",
            )],
            None => Vec::new(),
        });
    }
    remove_owner_statements(ctx, id).await
}

/// Remove this owner's permission statements from the function (owned or referenced), then delete the owned
/// function (found by status.function_arn AND by deterministic name + ownership tags). Never deletes a referenced
/// functionArn. NotFound = done.
pub async fn cleanup(ctx: &PartContext<'_>) -> Result<Cleanup> {
    let owned_name = ctx.owner.function_name();
    let referenced = ctx.spec.backend.function_arn.as_deref();
    // Compared by function name: the spec may reference (by ARN) the very function the operator
    // once created under its deterministic name, and then it must stay.
    let referenced_name = referenced.and_then(parse_function_arn).map(|a| a.name);
    let is_referenced = |id: &str| {
        let name = parse_function_arn(id).map_or_else(|| id.to_string(), |a| a.name);
        referenced_name.as_deref() == Some(name.as_str())
    };
    let mut changes = Vec::new();
    let mut seen: BTreeSet<String> = BTreeSet::new();
    // The referenced function first: only our statements come off it.
    if let Some(arn) = referenced
        && parse_function_arn(arn).is_some_and(|a| a.region == ctx.aws.region)
    {
        seen.insert(arn.to_string());
        changes.append(&mut remove_owner_statements(ctx, arn).await?);
    }
    // What status recorded: an owned function (deleted) or a previously referenced one (our
    // statements removed); `release_function` tells them apart by the ownership tags.
    if let Some(arn) = ctx.status.function_arn.as_deref()
        && !seen.contains(arn)
        && let Some(parsed) = parse_function_arn(arn)
        && parsed.region == ctx.aws.region
        && !(parsed.name == owned_name && parsed.qualifier.is_none())
    {
        seen.insert(arn.to_string());
        changes.append(&mut release_function(ctx, arn, is_referenced(arn)).await?);
    }
    // Functions an earlier spec used that were not released yet (a switch under way).
    for arn in ctx
        .status
        .retiring
        .iter()
        .filter(|r| r.kind == crate::crd::RetiringResource::FUNCTION)
        .map(|r| r.id.as_str())
    {
        if seen.contains(arn)
            || parse_function_arn(arn).is_none_or(|parsed| parsed.region != ctx.aws.region)
        {
            continue;
        }
        seen.insert(arn.to_string());
        changes.append(&mut release_function(ctx, arn, is_referenced(arn)).await?);
    }
    // The deterministic name: a function created before status recorded it.
    if !is_referenced(&owned_name) {
        changes.append(&mut release_owned_by_name(ctx, &owned_name).await?);
    }
    // A function named in spec.adopt, tagged before status recorded it.
    if let Some(adopted) = ctx
        .spec
        .adopt
        .as_ref()
        .and_then(|a| a.function_name.as_deref())
        && adopted != owned_name
        && !seen
            .iter()
            .any(|arn| parse_function_arn(arn).is_some_and(|a| a.name == adopted))
    {
        changes.append(&mut release_owned_by_name(ctx, adopted).await?);
    }
    Ok(Cleanup {
        done: true,
        changes,
    })
}

/// Delete the function with our deterministic name if our tags are on it; leave anyone else's.
async fn release_owned_by_name(ctx: &PartContext<'_>, name: &str) -> Result<Vec<Change>> {
    match get_function(ctx, name).await? {
        Some(live) if live.owned_by(ctx.owner) => release_live(ctx, name, &live, false).await,
        _ => Ok(Vec::new()),
    }
}
