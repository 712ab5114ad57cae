//! The Lambda function of the backend: `builtin` and `code` are the operator's (created, kept in
//! line with the spec, deleted with the object); a `functionArn` is someone else's (checked,
//! never changed).
//!
//! Observe (`GetFunction` gives configuration, code hash and tags in one read), diff (pure:
//! `desired` is what the spec asks for, `live` what Lambda reports, `diff` what differs), apply
//! the smallest change (`apply`: at most one `UpdateFunctionConfiguration` and one
//! `UpdateFunctionCode`).
//!
//! How code changes are detected:
//! - `builtin`: Lambda reports `CodeSha256` = base64(sha256(zip)), compared with the package's hash.
//! - `code` (S3): Lambda cannot say which S3 object the code came from, so the function's
//!   Description records it (`privateapi.io code s3://bucket/key?versionId=v`). Description is
//!   configuration and code is code: two updates, and Lambda refuses the second while the first is
//!   `InProgress`. If the reconcile returned between them, the next one would still see the old
//!   marker and update the code again, forever. So the code goes first and the configuration
//!   (with the new marker) follows in the same reconcile after a short, bounded wait; a crash or a
//!   timeout in between only repeats the (idempotent) code update.

mod apply;
mod desired;
mod diff;

pub use crate::model::{FunctionConfig, LiveFunction};

use self::apply::{
    Created, create_function, update_code, update_configuration, user_error, wait_update_finished,
};
use self::desired::{DesiredFunction, desired_function};
use self::diff::{code_diff, config_diff};
use super::names::parse_function_arn;
use super::{SERVICE, conflict_state};
use crate::conditions::{PartState, reason};
use crate::crd::BackendSpec;
use crate::error::{AwsResultExt, Error, Result};
use crate::identity::Owner;
use crate::parts::missing_tags;
use crate::parts::{AdoptedFrom, Change, FIELD_ADOPT_FUNCTION, Outcome, PartContext};

const FIELD_BACKEND: &str = "spec.backend";
const FIELD_FUNCTION_ARN: &str = "spec.backend.functionArn";
const FIELD_ROLE: &str = "spec.backend.executionRoleArn";
const FIELD_ARCHITECTURE: &str = "spec.backend.architecture";
const FIELD_CODE: &str = "spec.backend.code";
const FIELD_ENVIRONMENT: &str = "spec.backend.environment";
const FIELD_MEMORY: &str = "spec.backend.memoryMiB";
const FIELD_TIMEOUT: &str = "spec.backend.timeoutSeconds";

/// The function as the later parts (integration, invoke permission) and the status need it.
#[derive(Debug, Clone, PartialEq)]
pub struct BackendInfo {
    /// Unqualified ARN for owned functions; as given for `backend.functionArn` (may be qualified).
    pub function_arn: String,
    pub function_name: String,
    /// Created/owned by the operator (builtin, code); false for functionArn.
    pub owned: bool,
    /// State Active and LastUpdateStatus Successful (or `Inactive`, which Lambda reactivates on
    /// the next invocation, for a referenced function nobody has called in a while).
    pub active: bool,
}

fn invalid(field: &str, message: impl Into<String>) -> Error {
    Error::InvalidSpec {
        field: field.to_string(),
        message: message.into(),
    }
}

/// The function by name or ARN, None when it does not exist.
pub(super) async fn get_function(ctx: &PartContext<'_>, id: &str) -> Result<Option<LiveFunction>> {
    ctx.reader.function(id).await
}

fn info(live: &LiveFunction, owned: bool) -> BackendInfo {
    BackendInfo {
        function_arn: live.arn.clone(),
        function_name: live.name.clone(),
        owned,
        active: live.active(),
    }
}

fn outcome(value: BackendInfo, state: PartState, changes: Vec<Change>) -> Outcome<BackendInfo> {
    Outcome {
        value,
        state,
        changes,
    }
}

/// Observe the function the spec asks for, create it or bring it in line; for `functionArn`,
/// check that it exists in the object's region and change nothing.
pub async fn reconcile_function(ctx: &PartContext<'_>) -> Result<Outcome<BackendInfo>> {
    if let Some(arn) = &ctx.spec.backend.function_arn {
        return reconcile_referenced(ctx, arn).await;
    }
    let desired = desired_function(ctx.spec, ctx.settings, ctx.owner)?;
    reconcile_owned(ctx, &desired).await
}

async fn reconcile_referenced(ctx: &PartContext<'_>, arn: &str) -> Result<Outcome<BackendInfo>> {
    let parsed = parse_function_arn(arn).ok_or_else(|| {
        invalid(
            FIELD_FUNCTION_ARN,
            format!("{arn} is not a Lambda function ARN"),
        )
    })?;
    if parsed.region != ctx.aws.region {
        return Err(invalid(
            FIELD_FUNCTION_ARN,
            format!(
                "function {arn} is in {}, but this PrivateApi is in {}: API Gateway integrates with functions of its own region",
                parsed.region, ctx.aws.region
            ),
        ));
    }
    let live = get_function(ctx, arn).await?.ok_or_else(|| {
        Error::reference_not_found(FIELD_FUNCTION_ARN, format!("function {arn} does not exist"))
    })?;
    let value = BackendInfo {
        function_arn: arn.to_string(),
        function_name: live.name.clone(),
        owned: false,
        active: live.active(),
    };
    let state = if let Some(busy) = live.busy() {
        busy
    } else if live.active() {
        PartState::ready(
            reason::AVAILABLE,
            format!("function {arn} exists (not managed by the operator)"),
        )
    } else {
        PartState::not_ready(reason::DEPENDENCY_NOT_READY, live.unusable_reason())
    };
    Ok(outcome(value, state, Vec::new()))
}

async fn reconcile_owned(
    ctx: &PartContext<'_>,
    desired: &DesiredFunction,
) -> Result<Outcome<BackendInfo>> {
    let mut changes = Vec::new();
    let adopt_name = ctx
        .spec
        .adopt
        .as_ref()
        .and_then(|a| a.function_name.as_deref());
    let adopting = adopt_name == Some(desired.name.as_str());
    let mut live = match get_function(ctx, &desired.name).await? {
        Some(live) => live,
        // An adopted function deleted behind the operator's back is made again under its name,
        // like any owned function; one that never existed is a mistake in the spec.
        None if adopting
            && !ctx
                .status
                .adopted
                .iter()
                .any(|a| a.kind == "Function" && a.id == desired.name) =>
        {
            return Err(Error::reference_not_found(
                FIELD_ADOPT_FUNCTION,
                format!(
                    "Lambda function {} does not exist in {}",
                    desired.name, ctx.aws.region
                ),
            ));
        }
        None => match create_function(ctx, desired).await? {
            Created::New(outcome) => return Ok(outcome),
            Created::Existing(live) => {
                changes.push(Change::new(
                    "Adopted",
                    format!("Lambda function {}", desired.name),
                    "found by its name after CreateFunction reported it exists",
                ));
                *live
            }
        },
    };
    if !live.owned_by(ctx.owner) {
        if !adopting {
            return Err(not_owned(ctx.owner, &live));
        }
        check_adoptable(ctx.owner, &live)?;
        // Tagged first: from here on the function is found as this object's, and deleted with
        // it. Lambda refuses nothing here while an update runs, so no busy check before.
        ctx.aws
            .lambda
            .tag_resource()
            .resource(&live.arn)
            .set_tags(Some(desired.tags.clone().into_iter().collect()))
            .send()
            .await
            .aws(SERVICE, "TagResource")?;
        live.tags.extend(desired.tags.clone());
        changes.push(Change::adopted("Function", &live.name, AdoptedFrom::Spec));
    }
    if let Some(busy) = live.busy() {
        return Ok(outcome(info(&live, true), busy, changes));
    }

    let missing = missing_tags(&desired.tags, &live.tags);
    if !missing.is_empty() {
        let keys: Vec<&str> = missing.keys().map(String::as_str).collect();
        let detail = format!("tags {} restored", keys.join(", "));
        let previous_uid = live
            .tags
            .get(crate::identity::TAG_UID)
            .filter(|uid| **uid != ctx.owner.uid)
            .cloned();
        let result = ctx
            .aws
            .lambda
            .tag_resource()
            .resource(&live.arn)
            .set_tags(Some(missing.into_iter().collect()))
            .send()
            .await
            .aws(SERVICE, "TagResource");
        if let Err(err) = result {
            return match conflict_state(&err, &live.name) {
                Some(state) => Ok(outcome(info(&live, true), state, changes)),
                None => Err(err),
            };
        }
        changes.push(match previous_uid {
            // The object was re-created (or the cluster rebuilt): same cluster and name.
            Some(uid) => Change::adopted("Function", &live.name, AdoptedFrom::PreviousObject(uid)),
            None => Change::new("Updated", format!("Lambda function {}", live.name), detail),
        });
    }

    let config = config_diff(&desired.config, &live.config);
    let code = code_diff(desired, &live);
    if config.is_empty() && code.is_empty() {
        let state = if live.active() {
            PartState::ready(
                reason::AVAILABLE,
                format!("function {} is active and in sync", live.name),
            )
        } else {
            // Nothing differs, yet Lambda says the function is unusable (Failed state or a failed
            // last update): report it rather than repeat an update Lambda already refused.
            PartState::not_ready(reason::AWS_ERROR, live.unusable_reason())
        };
        return Ok(outcome(info(&live, true), state, changes));
    }

    let mut value = info(&live, true);
    value.active = false;
    if !code.is_empty() {
        if let Err(err) = update_code(ctx, desired).await {
            let state = refused(err, &live.name, &ctx.spec.backend)?;
            return Ok(outcome(value, state, changes));
        }
        changes.push(Change::new(
            "Updated",
            format!("Lambda function {}", live.name),
            format!("{} deployed", code.join(" and ")),
        ));
        if config.is_empty() {
            return Ok(outcome(value, updating(&live.name), changes));
        }
        // The configuration (for S3 code: the Description marking the deployed object) must
        // follow in this reconcile, see the module docs.
        if !wait_update_finished(ctx, &live.name).await? {
            return Ok(outcome(value, updating(&live.name), changes));
        }
    }
    if let Err(err) = update_configuration(ctx, &live.name, &config).await {
        let state = refused(err, &live.name, &ctx.spec.backend)?;
        return Ok(outcome(value, state, changes));
    }
    changes.push(Change::new(
        "Updated",
        format!("Lambda function {}", live.name),
        format!("{} changed", config.fields().join(", ")),
    ));
    Ok(outcome(value, updating(&live.name), changes))
}

/// A refused code or configuration update: while the function is busy, the not-ready state to
/// report; otherwise the error, naming the field of the spec Lambda rejected.
fn refused(err: Error, function: &str, backend: &BackendSpec) -> Result<PartState> {
    match conflict_state(&err, function) {
        Some(state) => Ok(state),
        None => Err(user_error(err, backend)),
    }
}

fn updating(name: &str) -> PartState {
    PartState::not_ready(
        reason::UPDATING,
        format!("function {name} is being updated"),
    )
}

/// A function named in `spec.adopt` must be nobody else's, and a zip package (the operator
/// deploys zips: an image function cannot take `builtin` or `code`).
fn check_adoptable(owner: &Owner, live: &LiveFunction) -> Result<()> {
    if let Some(other) =
        owner.claimed_by_other(live.tags.iter().map(|(k, v)| (k.as_str(), v.as_str())))
    {
        return Err(invalid(
            FIELD_ADOPT_FUNCTION,
            format!(
                "Lambda function {} is managed by another PrivateApi ({other}); the operator takes over only resources nobody manages",
                live.name
            ),
        ));
    }
    if live.package_type != "Zip" {
        return Err(invalid(
            FIELD_ADOPT_FUNCTION,
            format!(
                "Lambda function {} is a container image function; only zip functions can be adopted (the operator deploys zip packages)",
                live.name
            ),
        ));
    }
    Ok(())
}

fn not_owned(owner: &Owner, live: &LiveFunction) -> Error {
    invalid(
        FIELD_BACKEND,
        format!(
            "a Lambda function named {} already exists but is not tagged as owned by this PrivateApi \
             (privateapi.io/cluster={}, privateapi.io/owner={}); the operator does not take over functions it did not \
             create: delete or retag that function, or reference it with spec.backend.functionArn",
            live.name,
            owner.cluster,
            owner.key()
        ),
    )
}

#[cfg(test)]
mod tests;
