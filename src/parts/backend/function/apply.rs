//! The writes to the function (`CreateFunction`, `UpdateFunctionCode`,
//! `UpdateFunctionConfiguration`) and what Lambda's rejection of them says about the spec.

use std::time::Duration;

use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::{
    Architecture as LambdaArchitecture, Environment, FunctionCode, Runtime as LambdaRuntime,
};

use super::desired::{DesiredCode, DesiredFunction};
use super::diff::ConfigDiff;
use super::{
    BackendInfo, FIELD_ARCHITECTURE, FIELD_BACKEND, FIELD_CODE, FIELD_ENVIRONMENT, FIELD_MEMORY,
    FIELD_ROLE, FIELD_TIMEOUT, get_function, invalid, outcome,
};
use crate::conditions::{PartState, reason};
use crate::crd::BackendSpec;
use crate::error::{AwsErrorKind, AwsResultExt, Error, Result};
use crate::model::LiveFunction;
use crate::parts::backend::SERVICE;
use crate::parts::{Change, Outcome, PartContext};

/// How long a reconcile waits for a code update to finish before it applies the configuration
/// that goes with it (see the `function` module docs). Lambda usually finishes a zip update in
/// seconds.
const CODE_UPDATE_WAIT: Duration = Duration::from_secs(30);

/// Which AWS field a Lambda rejection (`InvalidParameterValueException`) is about.
pub fn field_of_rejection(message: &str) -> &'static str {
    let m = message.to_ascii_lowercase();
    let any = |words: &[&str]| words.iter().any(|w| m.contains(w));
    if m.contains("role") {
        FIELD_ROLE
    } else if any(&["s3", "getobject", "bucket", "zip", "runtime", "handler"]) {
        // The package, its runtime and handler are all under spec.backend.code.
        FIELD_CODE
    } else if m.contains("environment") {
        FIELD_ENVIRONMENT
    } else if m.contains("architecture") {
        FIELD_ARCHITECTURE
    } else if m.contains("memory") {
        FIELD_MEMORY
    } else if m.contains("timeout") {
        FIELD_TIMEOUT
    } else {
        FIELD_BACKEND
    }
}

/// Turn Lambda's rejection of what the spec says into `InvalidSpec` naming the field. A rejected
/// builtin package is the operator's fault, not the manifest's.
pub(super) fn user_error(err: Error, backend: &BackendSpec) -> Error {
    let Error::Aws {
        kind: AwsErrorKind::InvalidRequest,
        code,
        message,
        ..
    } = &err
    else {
        return err;
    };
    let field = field_of_rejection(&format!("{code} {message}"));
    if field == FIELD_CODE && backend.builtin.is_some() {
        return Error::Config(format!(
            "Lambda rejected the builtin handler package: {code}: {message}"
        ));
    }
    let hint = if field == FIELD_ROLE && backend.execution_role_arn.is_none() {
        " (this is the operator's default execution role; set spec.backend.executionRoleArn to use another)"
    } else {
        ""
    };
    let message = format!("{code}: {message}{hint}");
    if names_missing_reference(&message) {
        Error::reference_not_found(field, message)
    } else {
        invalid(field, message)
    }
}

/// Whether Lambda's rejection says that something the spec names does not exist (yet): a role
/// Lambda cannot assume (IAM roles are often made by the same GitOps sync, and IAM is eventually
/// consistent), an S3 bucket or object not uploaded yet.
pub fn names_missing_reference(message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    [
        "cannot be assumed",
        "nosuchkey",
        "nosuchbucket",
        "does not exist",
    ]
    .iter()
    .any(|words| m.contains(words))
}

pub(super) enum Created {
    New(Outcome<BackendInfo>),
    /// CreateFunction said the name exists (a retry after a lost response, or a concurrent
    /// create): this is what is there now.
    Existing(Box<LiveFunction>),
}

fn function_code(desired: &DesiredFunction) -> FunctionCode {
    match &desired.code {
        DesiredCode::Builtin(package) => FunctionCode::builder()
            .zip_file(Blob::new(package.zip.as_slice()))
            .build(),
        DesiredCode::S3 {
            bucket,
            key,
            version,
        } => FunctionCode::builder()
            .s3_bucket(bucket)
            .s3_key(key)
            .set_s3_object_version(version.clone())
            .build(),
    }
}

pub(super) async fn create_function(
    ctx: &PartContext<'_>,
    desired: &DesiredFunction,
) -> Result<Created> {
    let config = &desired.config;
    let mut request = ctx
        .aws
        .lambda
        .create_function()
        .function_name(&desired.name)
        .role(&config.role)
        .runtime(LambdaRuntime::from(config.runtime.as_str()))
        .handler(&config.handler)
        .memory_size(config.memory_mib)
        .timeout(config.timeout_seconds)
        .description(&config.description)
        .architectures(LambdaArchitecture::from(desired.architecture.as_str()))
        .code(function_code(desired))
        .set_tags(Some(desired.tags.clone().into_iter().collect()));
    if !config.environment.is_empty() {
        request = request.environment(
            Environment::builder()
                .set_variables(Some(config.environment.clone().into_iter().collect()))
                .build(),
        );
    }
    match request.send().await.aws(SERVICE, "CreateFunction") {
        Ok(out) => {
            let arn = out.function_arn().unwrap_or_default().to_string();
            let value = BackendInfo {
                function_arn: arn,
                function_name: desired.name.clone(),
                owned: true,
                active: false,
            };
            let state = PartState::not_ready(
                reason::CREATING,
                format!(
                    "function {} created, waiting for it to become Active",
                    desired.name
                ),
            );
            let change = Change::new(
                "Created",
                format!("Lambda function {}", desired.name),
                format!(
                    "{} {} {} MiB",
                    config.runtime,
                    desired.architecture.as_str(),
                    config.memory_mib
                ),
            );
            Ok(Created::New(outcome(value, state, vec![change])))
        }
        // The name is the idempotency key: "already exists" means an earlier attempt (or another
        // worker) made it. Look again; ownership is checked by the caller.
        Err(err) if err.aws_kind() == Some(AwsErrorKind::Conflict) => {
            match get_function(ctx, &desired.name).await? {
                Some(live) => Ok(Created::Existing(Box::new(live))),
                None => Err(err),
            }
        }
        Err(err) => Err(user_error(err, &ctx.spec.backend)),
    }
}

pub(super) async fn update_code(ctx: &PartContext<'_>, desired: &DesiredFunction) -> Result<()> {
    let mut request = ctx
        .aws
        .lambda
        .update_function_code()
        .function_name(&desired.name)
        .architectures(LambdaArchitecture::from(desired.architecture.as_str()));
    request = match &desired.code {
        DesiredCode::Builtin(package) => request.zip_file(Blob::new(package.zip.as_slice())),
        DesiredCode::S3 {
            bucket,
            key,
            version,
        } => request
            .s3_bucket(bucket)
            .s3_key(key)
            .set_s3_object_version(version.clone()),
    };
    request.send().await.aws(SERVICE, "UpdateFunctionCode")?;
    Ok(())
}

pub(super) async fn update_configuration(
    ctx: &PartContext<'_>,
    name: &str,
    diff: &ConfigDiff,
) -> Result<()> {
    let mut request = ctx
        .aws
        .lambda
        .update_function_configuration()
        .function_name(name)
        .set_role(diff.role.clone())
        .set_runtime(diff.runtime.as_deref().map(LambdaRuntime::from))
        .set_handler(diff.handler.clone())
        .set_memory_size(diff.memory_mib)
        .set_timeout(diff.timeout_seconds)
        .set_description(diff.description.clone());
    if let Some(environment) = &diff.environment {
        // Lambda replaces the whole map: send all of it.
        request = request.environment(
            Environment::builder()
                .set_variables(Some(environment.clone().into_iter().collect()))
                .build(),
        );
    }
    request
        .send()
        .await
        .aws(SERVICE, "UpdateFunctionConfiguration")?;
    Ok(())
}

/// Wait (bounded) until the function's last update is no longer InProgress (the SDK's
/// `FunctionUpdatedV2` waiter). False on timeout. An update that failed is finished too: the
/// next read reports why.
pub(super) async fn wait_update_finished(ctx: &PartContext<'_>, name: &str) -> Result<bool> {
    use aws_sdk_lambda::client::Waiters as _;
    use aws_smithy_runtime_api::client::waiters::error::WaiterError;
    match ctx
        .aws
        .lambda
        .wait_until_function_updated_v2()
        .function_name(name)
        .wait(CODE_UPDATE_WAIT)
        .await
    {
        Ok(_) | Err(WaiterError::FailureState(_)) => Ok(true),
        Err(WaiterError::ExceededMaxWait(_)) => Ok(false),
        Err(WaiterError::OperationFailed(failed)) => {
            Err(failed.into_error()).aws(SERVICE, "GetFunction")
        }
        Err(other) => Err(Error::Unexpected {
            operation: "GetFunction",
            message: format!("waiting for function {name} to be updated: {other}"),
        }),
    }
}
