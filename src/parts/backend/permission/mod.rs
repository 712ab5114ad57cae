//! The invoke permission: the statement on the function's resource policy that lets this API
//! call it.
//!
//! Observe the policy (`GetPolicy`), diff its statements against the one this API needs (pure:
//! only this owner's statements, by their Sid prefix; the matching is `crate::policy`'s), apply
//! (`RemovePermission` for this owner's stale or edited statements, then `AddPermission`).

use serde_json::Value;

use super::names::parse_function_arn;
use super::{BackendInfo, SERVICE, conflict_state};
use crate::conditions::{PartState, reason};
use crate::error::{AwsErrorKind, AwsResultExt, Error, NotFoundExt, Result};
use crate::identity::Owner;
use crate::parts::{Change, Outcome, PartContext};
use crate::policy;

const APIGATEWAY_PRINCIPAL: &str = "apigateway.amazonaws.com";
const INVOKE_ACTION: &str = "lambda:InvokeFunction";

/// The invoke permission this API needs on the function.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DesiredPermission {
    pub statement_id: String,
    /// `arn:<partition>:execute-api:<region>:<account>:<rest-api-id>/*`
    pub source_arn: String,
    pub source_account: String,
}

pub fn desired_permission(
    owner: &Owner,
    function_arn: &str,
    region: &str,
    account: &str,
    rest_api_id: &str,
) -> DesiredPermission {
    // The partition (aws, aws-cn, aws-us-gov) is the function's: the API is in the same region.
    let partition = parse_function_arn(function_arn)
        .map(|a| a.partition)
        .unwrap_or_else(|| "aws".to_string());
    DesiredPermission {
        statement_id: owner.permission_statement_id(rest_api_id),
        source_arn: format!("arn:{partition}:execute-api:{region}:{account}:{rest_api_id}/*"),
        source_account: account.to_string(),
    }
}

/// What to do to the function's resource policy.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PermissionDiff {
    /// Statement IDs of this owner to remove: for other API IDs (stale) or edited (drift).
    pub remove: Vec<String>,
    /// Whether the desired statement must be added (after the removals).
    pub add: bool,
}

impl PermissionDiff {
    pub fn is_empty(&self) -> bool {
        self.remove.is_empty() && !self.add
    }
}

/// The statements of a `GetPolicy` document (`Statement` is a list, or one object).
fn policy_statements(policy: &str) -> std::result::Result<Vec<Value>, String> {
    let doc: Value = serde_json::from_str(policy)
        .map_err(|e| format!("the function policy is not JSON: {e}"))?;
    policy::statements(&doc).ok_or_else(|| {
        format!(
            "unexpected Statement in the function policy: {}",
            doc["Statement"]
        )
    })
}

/// Statement IDs in the policy that start with `prefix` (this owner's).
pub fn owner_statement_ids(
    policy: Option<&str>,
    prefix: &str,
) -> std::result::Result<Vec<String>, String> {
    let Some(policy) = policy else {
        return Ok(Vec::new());
    };
    Ok(policy_statements(policy)?
        .iter()
        .filter_map(|st| st.get("Sid").and_then(Value::as_str))
        .filter(|sid| sid.starts_with(prefix))
        .map(str::to_string)
        .collect())
}

/// Compare the function's policy (`GetPolicy`'s JSON, None when it has none) with the one
/// statement of this owner it should hold. Statements of others are never touched.
pub fn permission_diff(
    policy: Option<&str>,
    prefix: &str,
    desired: &DesiredPermission,
) -> std::result::Result<PermissionDiff, String> {
    let statements = match policy {
        Some(policy) => policy_statements(policy)?,
        None => Vec::new(),
    };
    let mut diff = PermissionDiff::default();
    let mut found = false;
    for statement in &statements {
        let Some(sid) = statement.get("Sid").and_then(Value::as_str) else {
            continue;
        };
        if !sid.starts_with(prefix) {
            continue;
        }
        if !found && sid == desired.statement_id && statement_matches(statement, desired) {
            found = true;
        } else {
            diff.remove.push(sid.to_string());
        }
    }
    diff.add = !found;
    Ok(diff)
}

/// Whether the statement is the one this API needs: only apigateway.amazonaws.com may invoke,
/// only from this API and account.
fn statement_matches(statement: &Value, desired: &DesiredPermission) -> bool {
    policy::grants_service(
        statement,
        INVOKE_ACTION,
        APIGATEWAY_PRINCIPAL,
        &[
            ("ArnLike", "aws:SourceArn", &desired.source_arn),
            ("StringEquals", "aws:SourceAccount", &desired.source_account),
        ],
    )
}

/// The function's resource policy, None when it has none.
async fn get_policy(ctx: &PartContext<'_>, function: &str) -> Result<Option<String>> {
    ctx.reader.function_policy(function).await
}

fn unexpected_policy(message: String) -> Error {
    Error::Unexpected {
        operation: "GetPolicy",
        message,
    }
}

/// Take this object's statements `sids` off the function (those for an API it no longer uses).
pub async fn remove_statements(
    ctx: &PartContext<'_>,
    function: &str,
    sids: &[String],
) -> Result<Vec<Change>> {
    let mut changes = Vec::new();
    for sid in sids {
        if remove_permission(ctx, function, sid).await? {
            changes.push(Change::new(
                "Deleted",
                format!("invoke permission {sid}"),
                format!(
                    "for a REST API this object no longer uses, removed from function {function}"
                ),
            ));
        }
    }
    Ok(changes)
}

/// Remove every statement of this owner from the function's policy.
pub(super) async fn remove_owner_statements(
    ctx: &PartContext<'_>,
    function: &str,
) -> Result<Vec<Change>> {
    let policy = get_policy(ctx, function).await?;
    let sids = owner_statement_ids(policy.as_deref(), &ctx.owner.permission_statement_prefix())
        .map_err(unexpected_policy)?;
    let mut changes = Vec::new();
    for sid in sids {
        if remove_permission(ctx, function, &sid).await? {
            changes.push(Change::new(
                "Deleted",
                format!("invoke permission {sid}"),
                format!("removed from function {function}"),
            ));
        }
    }
    Ok(changes)
}

/// RemovePermission; false when it was already gone.
async fn remove_permission(ctx: &PartContext<'_>, function: &str, sid: &str) -> Result<bool> {
    Ok(ctx
        .aws
        .lambda
        .remove_permission()
        .function_name(function)
        .statement_id(sid)
        .send()
        .await
        .aws(SERVICE, "RemovePermission")
        .or_not_found()?
        .is_some())
}

/// Ensure exactly one invoke permission of this owner on the function: principal apigateway.amazonaws.com,
/// action lambda:InvokeFunction, SourceArn arn:aws:execute-api:<region>:<account>:<rest_api_id>/*, SourceAccount = account,
/// statement id ctx.owner.permission_statement_id(rest_api_id); remove this owner's stale statements (same prefix, other API ids).
pub async fn reconcile_permission(
    ctx: &PartContext<'_>,
    backend: &BackendInfo,
    rest_api_id: &str,
) -> Result<Outcome<Vec<String>>> {
    let function = backend.function_arn.as_str();
    let desired = desired_permission(
        ctx.owner,
        function,
        &ctx.aws.region,
        &ctx.aws.account_id,
        rest_api_id,
    );
    let prefix = ctx.owner.permission_statement_prefix();
    let policy = get_policy(ctx, function).await?;
    let mut diff =
        permission_diff(policy.as_deref(), &prefix, &desired).map_err(unexpected_policy)?;
    // This object's statements for other REST APIs (one `spec.adopt` replaced, or one deleted
    // in AWS) may be what the stage still invokes through: removed after the deployment.
    let stale: Vec<String> = diff
        .remove
        .iter()
        .filter(|sid| **sid != desired.statement_id)
        .cloned()
        .collect();
    diff.remove.retain(|sid| *sid == desired.statement_id);
    let ready = PartState::ready(
        reason::AVAILABLE,
        format!(
            "API {rest_api_id} may invoke function {}",
            backend.function_name
        ),
    );
    let mut changes = Vec::new();
    if diff.is_empty() {
        return Ok(Outcome {
            value: stale.clone(),
            state: ready,
            changes,
        });
    }
    // Lambda refuses writes while the function is busy: not ready, with what was done so far.
    let busy = |err: Error, changes| match conflict_state(&err, &backend.function_name) {
        Some(state) => Ok(Outcome {
            value: stale.clone(),
            state,
            changes,
        }),
        None => Err(err),
    };
    for sid in &diff.remove {
        let detail = "edited outside the operator; re-adding it";
        match remove_permission(ctx, function, sid).await {
            Ok(true) => changes.push(Change::new(
                "Deleted",
                format!("invoke permission {sid}"),
                detail,
            )),
            Ok(false) => {}
            Err(err) => return busy(err, changes),
        }
    }
    if diff.add {
        let added = ctx
            .aws
            .lambda
            .add_permission()
            .function_name(function)
            .statement_id(&desired.statement_id)
            .action(INVOKE_ACTION)
            .principal(APIGATEWAY_PRINCIPAL)
            .source_arn(&desired.source_arn)
            .source_account(&desired.source_account)
            .send()
            .await
            .aws(SERVICE, "AddPermission");
        if let Err(err) = added {
            if err.aws_kind() == Some(AwsErrorKind::Conflict)
                && err.to_string().contains("already exists")
            {
                // Added by a previous attempt whose response was lost: check what is there.
                let policy = get_policy(ctx, function).await?;
                let again = permission_diff(policy.as_deref(), &prefix, &desired)
                    .map_err(unexpected_policy)?;
                if again.add || again.remove.contains(&desired.statement_id) {
                    return Err(err);
                }
            } else {
                return busy(err, changes);
            }
        } else {
            changes.push(Change::new(
                "Created",
                format!("invoke permission {}", desired.statement_id),
                format!(
                    "apigateway.amazonaws.com may invoke {} from {}",
                    backend.function_name, desired.source_arn
                ),
            ));
        }
    }
    if !changes.is_empty() {
        ctx.reader.function_policy_changed(function).await?;
    }
    Ok(Outcome {
        value: stale,
        state: ready,
        changes,
    })
}

#[cfg(test)]
mod tests;
