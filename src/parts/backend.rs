//! The Lambda backend: the function (`builtin`, `code`, or a referenced `functionArn`) and the
//! invoke permission that lets this API call it.
//!
//! Same shape as every part: observe (`GetFunction` gives configuration, code hash and tags in one
//! read; `GetPolicy` the resource policy), diff (pure functions below, unit-tested), apply the
//! smallest change (at most one `UpdateFunctionConfiguration` and one `UpdateFunctionCode`).
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

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, Instant};

use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::{
    Architecture as LambdaArchitecture, Environment, FunctionCode, FunctionConfiguration,
    Runtime as LambdaRuntime,
};
use serde_json::Value;

use super::{
    AdoptedFrom, Change, Cleanup, FIELD_ADOPT_FUNCTION, HandlerPackage, Outcome, PartContext,
    Settings,
};
use crate::conditions::{PartState, reason};
use crate::crd::{Architecture, BackendSpec, PrivateApiSpec};
use crate::error::{AwsErrorKind, AwsResultExt, Error, NotFoundExt, Result};
use crate::identity::{Owner, short_hash};

const SERVICE: &str = "Lambda";
const APIGATEWAY_PRINCIPAL: &str = "apigateway.amazonaws.com";
const INVOKE_ACTION: &str = "lambda:InvokeFunction";
const BUILTIN_RUNTIME: &str = "provided.al2023";
const BUILTIN_HANDLER: &str = "bootstrap";
/// The environment variable the built-in handler answers with (see `handler/src/lib.rs`).
const BUILTIN_MESSAGE_VAR: &str = "MESSAGE";
const BUILTIN_DESCRIPTION: &str = "privateapi.io builtin handler (managed by privateapi-operator)";
/// Lambda's limit on Description, in characters.
const DESCRIPTION_MAX_CHARS: usize = 256;
/// How long a reconcile waits for a code update to finish before it applies the configuration
/// that goes with it (see the module docs). Lambda usually finishes a zip update in seconds.
const CODE_UPDATE_WAIT: Duration = Duration::from_secs(30);
const CODE_UPDATE_POLL: Duration = Duration::from_millis(500);

const FIELD_BACKEND: &str = "spec.backend";
const FIELD_FUNCTION_ARN: &str = "spec.backend.functionArn";
const FIELD_ROLE: &str = "spec.backend.executionRoleArn";
const FIELD_ARCHITECTURE: &str = "spec.backend.architecture";
const FIELD_CODE: &str = "spec.backend.code";
const FIELD_ENVIRONMENT: &str = "spec.backend.environment";
const FIELD_MEMORY: &str = "spec.backend.memoryMiB";
const FIELD_TIMEOUT: &str = "spec.backend.timeoutSeconds";

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

// ---------------------------------------------------------------------------------------------
// Desired state (pure)
// ---------------------------------------------------------------------------------------------

/// The configuration fields the operator manages, as sent to and read from Lambda.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FunctionConfig {
    pub role: String,
    pub runtime: String,
    pub handler: String,
    pub memory_mib: i32,
    pub timeout_seconds: i32,
    pub environment: BTreeMap<String, String>,
    pub description: String,
}

/// Where the code of an owned function comes from.
#[derive(Debug, Clone)]
pub enum DesiredCode {
    /// The operator's handler package (`ZipFile`).
    Builtin(HandlerPackage),
    /// The user's package in S3.
    S3 {
        bucket: String,
        key: String,
        version: Option<String>,
    },
}

/// The function the spec asks for (`builtin` or `code`).
#[derive(Debug, Clone)]
pub struct DesiredFunction {
    pub name: String,
    pub config: FunctionConfig,
    pub architecture: Architecture,
    pub code: DesiredCode,
    pub tags: BTreeMap<String, String>,
}

/// The function `spec.backend` (`builtin` or `code`) asks for, with the operator's defaults.
/// Errors name the field to fix. Not for `functionArn` (the operator never shapes that one).
pub fn desired_function(
    spec: &PrivateApiSpec,
    settings: &Settings,
    owner: &Owner,
) -> Result<DesiredFunction> {
    let backend = &spec.backend;
    let role = backend
        .execution_role_arn
        .clone()
        .or_else(|| settings.default_execution_role_arn.clone())
        .ok_or_else(|| invalid(
            FIELD_ROLE,
            "no execution role for the function: set spec.backend.executionRoleArn (the operator has no default execution role configured)",
        ))?;
    let mut environment = backend.environment.clone().unwrap_or_default();
    let (runtime, handler, architecture, code, description) = if let Some(builtin) =
        &backend.builtin
    {
        // No package at all is the operator's configuration, whatever the spec says; a missing
        // one for the requested architecture is the manifest's to change.
        let architecture = settings.default_builtin_architecture().ok_or_else(|| {
            Error::Config(
                "no builtin handler package is configured (handler zip per architecture): \
                 spec.backend.builtin cannot be served"
                    .into(),
            )
        })?;
        let architecture = backend.architecture.unwrap_or(architecture);
        let package = settings.handler_package(architecture).ok_or_else(|| {
            let available: Vec<&str> = settings
                .handler_packages
                .keys()
                .map(String::as_str)
                .collect();
            invalid(
                FIELD_ARCHITECTURE,
                format!(
                    "the operator has no builtin handler package for {}; available: {}",
                    architecture.as_str(),
                    available.join(", ")
                ),
            )
        })?;
        environment.insert(BUILTIN_MESSAGE_VAR.to_string(), builtin.message.clone());
        (
            BUILTIN_RUNTIME.to_string(),
            BUILTIN_HANDLER.to_string(),
            architecture,
            DesiredCode::Builtin(package.clone()),
            BUILTIN_DESCRIPTION.to_string(),
        )
    } else if let Some(code) = &backend.code {
        let description = s3_code_marker(
            &code.s3_bucket,
            &code.s3_key,
            code.s3_object_version.as_deref(),
        );
        (
            code.runtime.as_str().to_string(),
            code.handler.clone(),
            backend.architecture.unwrap_or(Architecture::Arm64),
            DesiredCode::S3 {
                bucket: code.s3_bucket.clone(),
                key: code.s3_key.clone(),
                version: code.s3_object_version.clone(),
            },
            description,
        )
    } else {
        return Err(invalid(
            FIELD_BACKEND,
            "exactly one of spec.backend.builtin, spec.backend.functionArn or spec.backend.code must be set",
        ));
    };
    Ok(DesiredFunction {
        // A function taken over from `spec.adopt` keeps its name.
        name: spec
            .adopt
            .as_ref()
            .and_then(|a| a.function_name.clone())
            .unwrap_or_else(|| owner.function_name()),
        config: FunctionConfig {
            role,
            runtime,
            handler,
            memory_mib: backend.memory_mib,
            timeout_seconds: backend.timeout_seconds,
            environment,
            description,
        },
        architecture,
        code,
        tags: owner.tags(&spec.tags),
    })
}

/// The Description that records which S3 object the code was deployed from. Lambda allows 256
/// characters; a longer one (keys may have 1024) becomes a hash of the same three values.
pub fn s3_code_marker(bucket: &str, key: &str, version: Option<&str>) -> String {
    let mut marker = format!("privateapi.io code s3://{bucket}/{key}");
    if let Some(version) = version {
        marker.push_str("?versionId=");
        marker.push_str(version);
    }
    if marker.chars().count() <= DESCRIPTION_MAX_CHARS {
        return marker;
    }
    format!(
        "privateapi.io code s3 sha256:{}",
        short_hash(&[bucket, key, version.unwrap_or("")], 64)
    )
}

fn invalid(field: &str, message: impl Into<String>) -> Error {
    Error::InvalidSpec {
        field: field.to_string(),
        message: message.into(),
    }
}

// ---------------------------------------------------------------------------------------------
// Live state and diff (pure)
// ---------------------------------------------------------------------------------------------

/// A function as `GetFunction` reports it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LiveFunction {
    pub arn: String,
    pub name: String,
    pub config: FunctionConfig,
    /// `arm64` / `x86_64` (Lambda's default when none is reported is x86_64).
    pub architecture: String,
    pub code_sha256: String,
    pub tags: BTreeMap<String, String>,
    /// `Pending`, `Active`, `Inactive`, `Failed`, ...
    pub state: String,
    pub state_reason: Option<String>,
    /// `InProgress`, `Successful`, `Failed`; absent right after creation.
    pub last_update_status: Option<String>,
    pub last_update_status_reason: Option<String>,
    /// `Zip` or `Image`.
    pub package_type: String,
}

impl LiveFunction {
    pub fn from_configuration(
        cfg: &FunctionConfiguration,
        tags: Option<&HashMap<String, String>>,
    ) -> Self {
        Self {
            arn: cfg.function_arn().unwrap_or_default().to_string(),
            name: cfg.function_name().unwrap_or_default().to_string(),
            config: FunctionConfig {
                role: cfg.role().unwrap_or_default().to_string(),
                runtime: cfg
                    .runtime()
                    .map(|r| r.as_str().to_string())
                    .unwrap_or_default(),
                handler: cfg.handler().unwrap_or_default().to_string(),
                memory_mib: cfg.memory_size().unwrap_or_default(),
                timeout_seconds: cfg.timeout().unwrap_or_default(),
                environment: cfg
                    .environment()
                    .and_then(|e| e.variables())
                    .map(|vars| vars.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
                    .unwrap_or_default(),
                description: cfg.description().unwrap_or_default().to_string(),
            },
            architecture: cfg
                .architectures()
                .first()
                .map(|a| a.as_str().to_string())
                .unwrap_or_else(|| Architecture::X86_64.as_str().to_string()),
            code_sha256: cfg.code_sha256().unwrap_or_default().to_string(),
            tags: tags
                .map(|tags| tags.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
                .unwrap_or_default(),
            state: cfg
                .state()
                .map(|s| s.as_str().to_string())
                .unwrap_or_default(),
            state_reason: cfg.state_reason().map(str::to_string),
            last_update_status: cfg.last_update_status().map(|s| s.as_str().to_string()),
            last_update_status_reason: cfg.last_update_status_reason().map(str::to_string),
            package_type: cfg
                .package_type()
                .map(|p| p.as_str().to_string())
                .unwrap_or_else(|| "Zip".to_string()),
        }
    }

    /// Usable: Lambda accepts invocations and updates.
    pub fn active(&self) -> bool {
        matches!(self.state.as_str(), "Active" | "Inactive")
            && !matches!(
                self.last_update_status.as_deref(),
                Some("InProgress" | "Failed")
            )
    }

    /// Why the function is not [`active`](Self::active), for the condition message.
    pub fn unusable_reason(&self) -> String {
        if matches!(self.state.as_str(), "Active" | "Inactive") {
            format!(
                "the last update of function {} failed: {}",
                self.name,
                self.last_update_status_reason
                    .as_deref()
                    .unwrap_or("no reason given")
            )
        } else {
            format!(
                "function {} is {}: {}",
                self.name,
                self.state,
                self.state_reason.as_deref().unwrap_or("no reason given")
            )
        }
    }

    /// Why the function can't take an update now (Lambda would answer ResourceConflictException),
    /// as the not-ready state to report; None when it can.
    pub fn busy(&self) -> Option<PartState> {
        if self.state == "Pending" {
            return Some(PartState::not_ready(
                reason::PENDING,
                format!(
                    "function {} is Pending: {}",
                    self.name,
                    self.state_reason.as_deref().unwrap_or("being created")
                ),
            ));
        }
        if self.last_update_status.as_deref() == Some("InProgress") {
            return Some(PartState::not_ready(
                reason::UPDATING,
                format!("function {} is being updated", self.name),
            ));
        }
        None
    }

    pub fn owned_by(&self, owner: &Owner) -> bool {
        owner.owns(self.tags.iter().map(|(k, v)| (k.as_str(), v.as_str())))
    }
}

/// The configuration fields that differ, with their desired values.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ConfigDiff {
    pub role: Option<String>,
    pub runtime: Option<String>,
    pub handler: Option<String>,
    pub memory_mib: Option<i32>,
    pub timeout_seconds: Option<i32>,
    pub environment: Option<BTreeMap<String, String>>,
    pub description: Option<String>,
}

impl ConfigDiff {
    pub fn is_empty(&self) -> bool {
        self.fields().is_empty()
    }

    /// The names of the fields that differ, for events and logs.
    pub fn fields(&self) -> Vec<&'static str> {
        let mut fields = Vec::new();
        let mut push = |set: bool, name| {
            if set {
                fields.push(name)
            }
        };
        push(self.role.is_some(), "role");
        push(self.runtime.is_some(), "runtime");
        push(self.handler.is_some(), "handler");
        push(self.memory_mib.is_some(), "memory");
        push(self.timeout_seconds.is_some(), "timeout");
        push(self.environment.is_some(), "environment");
        push(self.description.is_some(), "description");
        fields
    }
}

pub fn config_diff(desired: &FunctionConfig, live: &FunctionConfig) -> ConfigDiff {
    fn differs<T: PartialEq + Clone>(desired: &T, live: &T) -> Option<T> {
        (desired != live).then(|| desired.clone())
    }
    ConfigDiff {
        role: differs(&desired.role, &live.role),
        runtime: differs(&desired.runtime, &live.runtime),
        handler: differs(&desired.handler, &live.handler),
        memory_mib: differs(&desired.memory_mib, &live.memory_mib),
        timeout_seconds: differs(&desired.timeout_seconds, &live.timeout_seconds),
        environment: differs(&desired.environment, &live.environment),
        description: differs(&desired.description, &live.description),
    }
}

/// Why the code must be deployed again (`code`, `architecture`), empty when it need not.
pub fn code_diff(desired: &DesiredFunction, live: &LiveFunction) -> Vec<&'static str> {
    let mut why = Vec::new();
    let code_differs = match &desired.code {
        DesiredCode::Builtin(package) => package.code_sha256 != live.code_sha256,
        // The marker in the Description is the only record of the S3 source (module docs).
        DesiredCode::S3 { .. } => desired.config.description != live.config.description,
    };
    if code_differs {
        why.push("code");
    }
    if desired.architecture.as_str() != live.architecture {
        why.push("architecture");
    }
    why
}

/// Our tags that are missing or changed on the function. Other tags are left alone: they may be
/// someone else's.
pub fn missing_tags(
    desired: &BTreeMap<String, String>,
    live: &BTreeMap<String, String>,
) -> BTreeMap<String, String> {
    desired
        .iter()
        .filter(|(k, v)| live.get(*k) != Some(*v))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

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
fn user_error(err: Error, backend: &BackendSpec) -> Error {
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

/// The parts of a Lambda function ARN: `arn:<partition>:lambda:<region>:<account>:function:<name>[:<qualifier>]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FunctionArn {
    pub partition: String,
    pub region: String,
    pub account: String,
    pub name: String,
    pub qualifier: Option<String>,
}

pub fn parse_function_arn(arn: &str) -> Option<FunctionArn> {
    let parts: Vec<&str> = arn.split(':').collect();
    if !(7..=8).contains(&parts.len())
        || parts[0] != "arn"
        || parts[2] != "lambda"
        || parts[5] != "function"
        || parts[1].is_empty()
        || parts[3].is_empty()
        || parts[6].is_empty()
    {
        return None;
    }
    Some(FunctionArn {
        partition: parts[1].to_string(),
        region: parts[3].to_string(),
        account: parts[4].to_string(),
        name: parts[6].to_string(),
        qualifier: parts.get(7).map(|q| q.to_string()),
    })
}

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
    match doc.get("Statement") {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(statements)) => Ok(statements.clone()),
        Some(statement @ Value::Object(_)) => Ok(vec![statement.clone()]),
        Some(other) => Err(format!(
            "unexpected Statement in the function policy: {other}"
        )),
    }
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

/// A string, or a list holding exactly one string (IAM accepts both).
fn single_string(value: Option<&Value>) -> Option<&str> {
    match value? {
        Value::String(s) => Some(s),
        Value::Array(items) if items.len() == 1 => items[0].as_str(),
        _ => None,
    }
}

/// (operator, lowercase key, value) triples of a Condition block: IAM condition keys are
/// case-insensitive (`AWS:SourceArn` = `aws:SourceArn`), operators and values are not.
fn condition_triples(condition: Option<&Value>) -> Option<BTreeSet<(String, String, String)>> {
    let mut triples = BTreeSet::new();
    let Some(condition) = condition else {
        return Some(triples);
    };
    for (operator, entries) in condition.as_object()? {
        for (key, values) in entries.as_object()? {
            let values: Vec<&Value> = match values {
                Value::Array(items) => items.iter().collect(),
                other => vec![other],
            };
            for value in values {
                triples.insert((
                    operator.clone(),
                    key.to_ascii_lowercase(),
                    value.as_str()?.to_string(),
                ));
            }
        }
    }
    Some(triples)
}

fn statement_matches(statement: &Value, desired: &DesiredPermission) -> bool {
    let effect = statement.get("Effect").and_then(Value::as_str) == Some("Allow");
    let action = single_string(statement.get("Action"))
        .is_some_and(|a| a.eq_ignore_ascii_case(INVOKE_ACTION));
    let principal = statement
        .get("Principal")
        .and_then(Value::as_object)
        .is_some_and(|p| {
            p.len() == 1 && single_string(p.get("Service")) == Some(APIGATEWAY_PRINCIPAL)
        });
    let expected = BTreeSet::from([
        (
            "ArnLike".to_string(),
            "aws:sourcearn".to_string(),
            desired.source_arn.clone(),
        ),
        (
            "StringEquals".to_string(),
            "aws:sourceaccount".to_string(),
            desired.source_account.clone(),
        ),
    ]);
    let conditions = condition_triples(statement.get("Condition")).is_some_and(|c| c == expected);
    effect && action && principal && conditions
}

// ---------------------------------------------------------------------------------------------
// Observe / apply
// ---------------------------------------------------------------------------------------------

/// The function by name or ARN, None when it does not exist.
async fn get_function(ctx: &PartContext<'_>, id: &str) -> Result<Option<LiveFunction>> {
    if let Some(reads) = ctx.shared_reads()
        && !reads.deep
        && let Some(unchanged) = reads
            .region
            .unchanged_function(ctx.aws, reads.window, id)
            .await?
    {
        return Ok(Some(unchanged));
    }
    let Some(out) = ctx
        .aws
        .lambda
        .get_function()
        .function_name(id)
        .send()
        .await
        .aws(SERVICE, "GetFunction")
        .or_not_found()?
    else {
        return Ok(None);
    };
    let cfg = out.configuration().ok_or_else(|| Error::Unexpected {
        operation: "GetFunction",
        message: format!("no configuration for function {id}"),
    })?;
    let live = LiveFunction::from_configuration(cfg, out.tags());
    if let Some(reads) = ctx.reads {
        reads.region.remember_function(id, cfg.revision_id(), &live);
    }
    Ok(Some(live))
}

/// The function's resource policy, None when it has none.
async fn get_policy(ctx: &PartContext<'_>, function: &str) -> Result<Option<String>> {
    if let Some(reads) = ctx.shared_reads()
        && !reads.deep
        && let Some(unchanged) = reads
            .region
            .unchanged_policy(ctx.aws, reads.window, function)
            .await?
    {
        return Ok(unchanged);
    }
    // ResourceNotFoundException: no policy (or no function: the write that follows says which).
    let out = ctx
        .aws
        .lambda
        .get_policy()
        .function_name(function)
        .send()
        .await
        .aws(SERVICE, "GetPolicy")
        .or_not_found()?;
    let revision = out.as_ref().and_then(|out| out.revision_id.clone());
    let policy = out.and_then(|out| out.policy).filter(|p| !p.is_empty());
    if let Some(reads) = ctx.reads {
        // No policy: no revision to check it against next time (read again).
        reads
            .region
            .remember_policy(function, revision.as_deref(), policy.as_ref());
    }
    Ok(policy)
}

fn unexpected_policy(message: String) -> Error {
    Error::Unexpected {
        operation: "GetPolicy",
        message,
    }
}

/// Lambda refuses writes while the function is Pending or being updated: report that as a
/// not-ready state (the reconciler requeues) rather than an error.
fn conflict_state(err: &Error, function: &str) -> Option<PartState> {
    if err.aws_kind() != Some(AwsErrorKind::Conflict) {
        return None;
    }
    let message = err.to_string();
    let reason = if message.contains("Pending") {
        reason::PENDING
    } else {
        reason::UPDATING
    };
    Some(PartState::not_ready(
        reason,
        format!("function {function} is busy, will retry: {message}"),
    ))
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
            return match conflict_state(&err, &live.name) {
                Some(state) => Ok(outcome(value, state, changes)),
                None => Err(user_error(err, &ctx.spec.backend)),
            };
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
        return match conflict_state(&err, &live.name) {
            Some(state) => Ok(outcome(value, state, changes)),
            None => Err(user_error(err, &ctx.spec.backend)),
        };
    }
    changes.push(Change::new(
        "Updated",
        format!("Lambda function {}", live.name),
        format!("{} changed", config.fields().join(", ")),
    ));
    Ok(outcome(value, updating(&live.name), changes))
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

enum Created {
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

async fn create_function(ctx: &PartContext<'_>, desired: &DesiredFunction) -> Result<Created> {
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

async fn update_code(ctx: &PartContext<'_>, desired: &DesiredFunction) -> Result<()> {
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

async fn update_configuration(ctx: &PartContext<'_>, name: &str, diff: &ConfigDiff) -> Result<()> {
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

/// Wait (bounded) until the function's last update is no longer InProgress. False on timeout.
async fn wait_update_finished(ctx: &PartContext<'_>, name: &str) -> Result<bool> {
    let deadline = Instant::now() + CODE_UPDATE_WAIT;
    loop {
        tokio::time::sleep(CODE_UPDATE_POLL).await;
        let cfg = ctx
            .aws
            .lambda
            .get_function_configuration()
            .function_name(name)
            .send()
            .await
            .aws(SERVICE, "GetFunctionConfiguration")?;
        if cfg.last_update_status().map(|s| s.as_str()) != Some("InProgress") {
            return Ok(true);
        }
        if Instant::now() >= deadline {
            return Ok(false);
        }
    }
}

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

/// Remove every statement of this owner from the function's policy.
async fn remove_owner_statements(ctx: &PartContext<'_>, function: &str) -> Result<Vec<Change>> {
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
    for sid in &diff.remove {
        let detail = "edited outside the operator; re-adding it";
        match remove_permission(ctx, function, sid).await {
            Ok(true) => changes.push(Change::new(
                "Deleted",
                format!("invoke permission {sid}"),
                detail,
            )),
            Ok(false) => {}
            Err(err) => {
                return match conflict_state(&err, &backend.function_name) {
                    Some(state) => Ok(Outcome {
                        value: stale.clone(),
                        state,
                        changes,
                    }),
                    None => Err(err),
                };
            }
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
                return match conflict_state(&err, &backend.function_name) {
                    Some(state) => Ok(Outcome {
                        value: stale.clone(),
                        state,
                        changes,
                    }),
                    None => Err(err),
                };
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
    if let Some(reads) = ctx.reads
        && !changes.is_empty()
    {
        // The permission change gave the function a new RevisionId: read the policy once more
        // (it also confirms the change) so that the periodic checks know the function's current
        // revision and need neither GetFunction nor GetPolicy.
        // No policy before (a new function): the revision the function was read at.
        let before = reads
            .region
            .policy_revision(function)
            .or_else(|| reads.region.remembered_function_revision(function));
        get_policy(ctx, function).await?;
        if let (Some(before), Some(after)) = (before, reads.region.policy_revision(function)) {
            // Only if the function was read at the revision the policy was read at, before the
            // change (nothing else changed it in between).
            reads
                .region
                .move_function_revision(function, &before, &after);
        }
    }
    Ok(Outcome {
        value: stale,
        state: ready,
        changes,
    })
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::{BuiltinBackend, CodeBackend, Runtime};

    fn owner() -> Owner {
        Owner {
            cluster: "dev".into(),
            namespace: "team-a".into(),
            name: "orders".into(),
            uid: "uid-1".into(),
        }
    }

    fn spec(backend: serde_json::Value) -> PrivateApiSpec {
        serde_json::from_value(serde_json::json!({
            "endpoint": {"id": "vpce-0123456789abcdef0"},
            "backend": backend,
            "tags": {"team": "a"},
        }))
        .expect("valid spec")
    }

    fn settings(archs: &[Architecture], role: Option<&str>) -> Settings {
        Settings {
            cluster_name: "dev".into(),
            default_execution_role_arn: role.map(str::to_string),
            handler_packages: archs
                .iter()
                .map(|a| {
                    (
                        a.as_str().to_string(),
                        HandlerPackage::from_zip(*a, a.as_str().as_bytes().to_vec()),
                    )
                })
                .collect(),
        }
    }

    const ROLE: &str = "arn:aws:iam::123456789012:role/papi-backend";

    #[test]
    fn builtin_defaults() {
        let d = desired_function(
            &spec(serde_json::json!({"builtin": {}})),
            &settings(&[Architecture::X86_64, Architecture::Arm64], Some(ROLE)),
            &owner(),
        )
        .expect("desired");
        assert_eq!(d.name, owner().function_name());
        assert_eq!(d.architecture, Architecture::Arm64);
        assert_eq!(d.config.runtime, "provided.al2023");
        assert_eq!(d.config.handler, "bootstrap");
        assert_eq!(d.config.role, ROLE);
        assert_eq!((d.config.memory_mib, d.config.timeout_seconds), (256, 10));
        assert_eq!(
            d.config.environment,
            BTreeMap::from([("MESSAGE".to_string(), BuiltinBackend::default().message)])
        );
        assert_eq!(d.tags.get("team").map(String::as_str), Some("a"));
        assert_eq!(
            d.tags.get("privateapi.io/owner").map(String::as_str),
            Some("team-a/orders")
        );
        match &d.code {
            DesiredCode::Builtin(p) => assert_eq!(p.architecture, Architecture::Arm64),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn builtin_uses_the_only_package_and_the_spec_environment() {
        let d = desired_function(
            &spec(serde_json::json!({
                "builtin": {"message": "hi"},
                "environment": {"A": "1"},
                "executionRoleArn": "arn:aws:iam::123456789012:role/mine",
                "memoryMiB": 512, "timeoutSeconds": 20
            })),
            &settings(&[Architecture::X86_64], Some(ROLE)),
            &owner(),
        )
        .expect("desired");
        assert_eq!(d.architecture, Architecture::X86_64);
        assert_eq!(d.config.role, "arn:aws:iam::123456789012:role/mine");
        assert_eq!((d.config.memory_mib, d.config.timeout_seconds), (512, 20));
        assert_eq!(
            d.config.environment,
            BTreeMap::from([
                ("A".to_string(), "1".to_string()),
                ("MESSAGE".to_string(), "hi".to_string())
            ])
        );
    }

    #[test]
    fn builtin_architecture_without_package_names_the_field_and_lists_packages() {
        let err = desired_function(
            &spec(serde_json::json!({"builtin": {}, "architecture": "arm64"})),
            &settings(&[Architecture::X86_64], Some(ROLE)),
            &owner(),
        )
        .expect_err("no arm64 package");
        assert!(err.is_invalid_spec());
        let text = err.to_string();
        assert!(text.starts_with("spec.backend.architecture: "), "{text}");
        assert!(
            text.contains("arm64") && text.contains("available: x86_64"),
            "{text}"
        );
        for backend in [
            serde_json::json!({"builtin": {}}),
            serde_json::json!({"builtin": {}, "architecture": "x86_64"}),
        ] {
            let err = desired_function(&spec(backend), &settings(&[], Some(ROLE)), &owner())
                .expect_err("no package at all");
            assert!(matches!(err, Error::Config(_)), "{err:?}");
        }
    }

    #[test]
    fn missing_role_names_the_field() {
        let err = desired_function(
            &spec(serde_json::json!({"builtin": {}})),
            &settings(&[Architecture::Arm64], None),
            &owner(),
        )
        .expect_err("no role");
        assert!(err.is_invalid_spec());
        assert!(
            err.to_string()
                .starts_with("spec.backend.executionRoleArn: "),
            "{err}"
        );
    }

    #[test]
    fn s3_code_records_its_source_in_the_description() {
        let d = desired_function(
            &spec(serde_json::json!({"code": {
                "s3Bucket": "my-bucket", "s3Key": "path/code.zip", "s3ObjectVersion": "3",
                "runtime": "python3.12", "handler": "index.handler"
            }})),
            &settings(&[], Some(ROLE)),
            &owner(),
        )
        .expect("desired");
        assert_eq!(
            d.config.description,
            "privateapi.io code s3://my-bucket/path/code.zip?versionId=3"
        );
        assert_eq!(d.config.runtime, "python3.12");
        assert_eq!(d.config.handler, "index.handler");
        assert_eq!(d.architecture, Architecture::Arm64);
        assert!(d.config.environment.is_empty());
        let code = CodeBackend {
            s3_bucket: "b".into(),
            s3_key: "k".repeat(400),
            s3_object_version: None,
            runtime: Runtime::ProvidedAl2023,
            handler: "bootstrap".into(),
        };
        let long = s3_code_marker(&code.s3_bucket, &code.s3_key, None);
        assert!(long.chars().count() <= DESCRIPTION_MAX_CHARS, "{long}");
        assert_ne!(long, s3_code_marker("b", &"k".repeat(401), None));
        assert_ne!(
            s3_code_marker("b", "k", None),
            s3_code_marker("b", "k", Some("1"))
        );
    }

    fn live_from(d: &DesiredFunction) -> LiveFunction {
        LiveFunction {
            arn: format!("arn:aws:lambda:us-east-1:123456789012:function:{}", d.name),
            name: d.name.clone(),
            config: d.config.clone(),
            architecture: d.architecture.as_str().to_string(),
            code_sha256: match &d.code {
                DesiredCode::Builtin(p) => p.code_sha256.clone(),
                DesiredCode::S3 { .. } => "whatever".into(),
            },
            tags: d.tags.clone(),
            state: "Active".into(),
            last_update_status: Some("Successful".into()),
            ..Default::default()
        }
    }

    fn builtin_desired() -> DesiredFunction {
        desired_function(
            &spec(serde_json::json!({"builtin": {}})),
            &settings(&[Architecture::Arm64, Architecture::X86_64], Some(ROLE)),
            &owner(),
        )
        .expect("desired")
    }

    #[test]
    fn in_sync_function_has_no_diff() {
        let d = builtin_desired();
        let live = live_from(&d);
        assert!(config_diff(&d.config, &live.config).is_empty());
        assert!(code_diff(&d, &live).is_empty());
        assert!(missing_tags(&d.tags, &live.tags).is_empty());
        assert!(live.active() && live.busy().is_none());
    }

    #[test]
    fn each_config_field_is_compared() {
        let d = builtin_desired();
        let mut live = live_from(&d);
        live.config.memory_mib = 512;
        live.config.timeout_seconds = 3;
        live.config.role = "arn:aws:iam::123456789012:role/other".into();
        live.config.runtime = "python3.12".into();
        live.config.handler = "x".into();
        live.config.environment.insert("EXTRA".into(), "1".into());
        live.config.description = "edited".into();
        let diff = config_diff(&d.config, &live.config);
        assert_eq!(
            diff.fields(),
            [
                "role",
                "runtime",
                "handler",
                "memory",
                "timeout",
                "environment",
                "description"
            ]
        );
        assert_eq!(diff.memory_mib, Some(256));
        assert_eq!(diff.environment.as_ref(), Some(&d.config.environment));
        // Only the memory: only the memory is sent.
        let mut live = live_from(&d);
        live.config.memory_mib = 128;
        assert_eq!(
            config_diff(&d.config, &live.config),
            ConfigDiff {
                memory_mib: Some(256),
                ..Default::default()
            }
        );
    }

    #[test]
    fn code_and_architecture_changes_are_detected() {
        let d = builtin_desired();
        let mut live = live_from(&d);
        live.code_sha256 = "other".into();
        assert_eq!(code_diff(&d, &live), ["code"]);
        live.architecture = "x86_64".into();
        assert_eq!(code_diff(&d, &live), ["code", "architecture"]);

        let s3 = desired_function(
            &spec(serde_json::json!({"code": {"s3Bucket": "bb", "s3Key": "k", "runtime": "provided.al2023", "handler": "bootstrap"}})),
            &settings(&[], Some(ROLE)),
            &owner(),
        )
        .expect("desired");
        let mut live = live_from(&s3);
        live.code_sha256 = "anything: Lambda's hash says nothing about the S3 source".into();
        assert!(code_diff(&s3, &live).is_empty());
        live.config.description = s3_code_marker("bb", "old", None);
        assert_eq!(code_diff(&s3, &live), ["code"]);
    }

    #[test]
    fn tags_drift_is_only_ours() {
        let d = builtin_desired();
        let mut live = d.tags.clone();
        live.remove("privateapi.io/uid");
        live.insert("team".into(), "b".into());
        live.insert("someone-elses".into(), "x".into());
        assert_eq!(
            missing_tags(&d.tags, &live),
            BTreeMap::from([
                ("privateapi.io/uid".to_string(), "uid-1".to_string()),
                ("team".to_string(), "a".to_string())
            ])
        );
    }

    #[test]
    fn busy_states() {
        let d = builtin_desired();
        let mut live = live_from(&d);
        live.state = "Pending".into();
        live.last_update_status = None;
        assert_eq!(live.busy().map(|s| s.reason), Some("Pending".to_string()));
        assert!(!live.active());
        let mut live = live_from(&d);
        live.last_update_status = Some("InProgress".into());
        assert_eq!(live.busy().map(|s| s.reason), Some("Updating".to_string()));
        assert!(!live.active());
        live.last_update_status = Some("Failed".into());
        live.last_update_status_reason = Some("KMS key is disabled".into());
        assert!(live.busy().is_none());
        assert!(!live.active());
        assert!(live.unusable_reason().contains("KMS key is disabled"));
        let mut live = live_from(&d);
        live.state = "Failed".into();
        live.state_reason = Some("subnet gone".into());
        assert!(!live.active() && live.busy().is_none());
        assert!(live.unusable_reason().contains("is Failed: subnet gone"));
    }

    #[test]
    fn rejections_name_the_field() {
        assert_eq!(
            field_of_rejection(
                "InvalidParameterValueException The role defined for the function cannot be assumed by Lambda."
            ),
            FIELD_ROLE
        );
        assert_eq!(
            field_of_rejection(
                "InvalidParameterValueException Error occurred while GetObject. S3 Error Code: NoSuchKey."
            ),
            FIELD_CODE
        );
        assert_eq!(
            field_of_rejection(
                "InvalidParameterValueException The runtime parameter of python3.7 is no longer supported"
            ),
            FIELD_CODE
        );
        assert_eq!(
            field_of_rejection("InvalidParameterValueException Unsupported value"),
            FIELD_BACKEND
        );
        assert_eq!(
            field_of_rejection(
                "InvalidParameterValueException Lambda was unable to configure your environment variables because the environment variables you have provided exceeded the 4KB limit."
            ),
            FIELD_ENVIRONMENT
        );
        let backend = spec(serde_json::json!({"builtin": {}})).backend;
        let err = user_error(
            Error::Aws {
                service: "Lambda",
                operation: "CreateFunction",
                code: "InvalidParameterValueException".into(),
                message: "The role defined for the function cannot be assumed by Lambda.".into(),
                kind: AwsErrorKind::InvalidRequest,
            },
            &backend,
        );
        // A role that may not exist yet (IAM made by the same sync): retried.
        assert!(err.is_reference_not_found());
        assert!(
            err.to_string()
                .starts_with("spec.backend.executionRoleArn: "),
            "{err}"
        );
        assert!(err.to_string().contains("default execution role"), "{err}");
        let throttled = user_error(
            Error::Aws {
                service: "Lambda",
                operation: "CreateFunction",
                code: "TooManyRequestsException".into(),
                message: "Rate exceeded".into(),
                kind: AwsErrorKind::Throttled,
            },
            &backend,
        );
        assert_eq!(throttled.reason(), "Throttled");
    }

    #[test]
    fn function_arns() {
        assert_eq!(
            parse_function_arn("arn:aws:lambda:us-east-1:123456789012:function:existing"),
            Some(FunctionArn {
                partition: "aws".into(),
                region: "us-east-1".into(),
                account: "123456789012".into(),
                name: "existing".into(),
                qualifier: None
            })
        );
        let q = parse_function_arn("arn:aws-cn:lambda:cn-north-1:123456789012:function:f:prod")
            .expect("qualified");
        assert_eq!(
            (q.partition.as_str(), q.qualifier.as_deref()),
            ("aws-cn", Some("prod"))
        );
        assert_eq!(parse_function_arn("arn:aws:iam::123456789012:role/x"), None);
        assert_eq!(parse_function_arn("existing"), None);
    }

    fn desired_perm(api: &str) -> DesiredPermission {
        desired_permission(
            &owner(),
            "arn:aws:lambda:us-east-1:123456789012:function:f",
            "us-east-1",
            "123456789012",
            api,
        )
    }

    /// A statement as Lambda's GetPolicy returns it for AddPermission with SourceArn/SourceAccount.
    fn aws_statement(sid: &str, source_arn: &str) -> serde_json::Value {
        serde_json::json!({
            "Sid": sid, "Effect": "Allow",
            "Principal": {"Service": "apigateway.amazonaws.com"},
            "Action": "lambda:InvokeFunction",
            "Resource": "arn:aws:lambda:us-east-1:123456789012:function:f",
            "Condition": {
                "ArnLike": {"AWS:SourceArn": source_arn},
                "StringEquals": {"AWS:SourceAccount": "123456789012"}
            }
        })
    }

    fn policy(statements: Vec<serde_json::Value>) -> String {
        serde_json::json!({"Version": "2012-10-17", "Id": "default", "Statement": statements})
            .to_string()
    }

    #[test]
    fn desired_permission_is_scoped_to_the_api() {
        let d = desired_perm("abc123defg");
        assert_eq!(
            d.source_arn,
            "arn:aws:execute-api:us-east-1:123456789012:abc123defg/*"
        );
        assert_eq!(d.source_account, "123456789012");
        assert_eq!(
            d.statement_id,
            owner().permission_statement_id("abc123defg")
        );
    }

    #[test]
    fn permission_in_sync_needs_nothing() {
        let d = desired_perm("api1");
        let p = policy(vec![
            aws_statement(&d.statement_id, &d.source_arn),
            aws_statement(
                "someone-else",
                "arn:aws:execute-api:us-east-1:123456789012:zzz/*",
            ),
        ]);
        let prefix = owner().permission_statement_prefix();
        assert!(
            permission_diff(Some(&p), &prefix, &d)
                .expect("diff")
                .is_empty()
        );
        // Case of the condition key and a one-element list don't matter.
        let mut st = aws_statement(&d.statement_id, &d.source_arn);
        st["Condition"] = serde_json::json!({
            "ArnLike": {"aws:SourceArn": [d.source_arn.clone()]},
            "StringEquals": {"aws:sourceaccount": "123456789012"}
        });
        st["Principal"] = serde_json::json!({"Service": ["apigateway.amazonaws.com"]});
        assert!(
            permission_diff(Some(&policy(vec![st])), &prefix, &d)
                .expect("diff")
                .is_empty()
        );
    }

    #[test]
    fn missing_stale_and_edited_permissions() {
        let d = desired_perm("api2");
        let prefix = owner().permission_statement_prefix();
        assert_eq!(
            permission_diff(None, &prefix, &d).expect("diff"),
            PermissionDiff {
                remove: vec![],
                add: true
            }
        );
        let stale = desired_perm("api1");
        let p = policy(vec![
            aws_statement(&stale.statement_id, &stale.source_arn),
            aws_statement(
                "someone-else",
                "arn:aws:execute-api:us-east-1:123456789012:zzz/*",
            ),
        ]);
        assert_eq!(
            permission_diff(Some(&p), &prefix, &d).expect("diff"),
            PermissionDiff {
                remove: vec![stale.statement_id.clone()],
                add: true
            }
        );
        // Our statement with another SourceArn, principal or an extra condition: replaced.
        let edits: [fn(&mut serde_json::Value); 7] = [
            |st: &mut serde_json::Value| {
                st["Condition"]["ArnLike"]["AWS:SourceArn"] =
                    "arn:aws:execute-api:us-east-1:123456789012:*/*".into()
            },
            |st: &mut serde_json::Value| {
                st["Principal"] = serde_json::json!({"Service": "events.amazonaws.com"})
            },
            |st: &mut serde_json::Value| st["Principal"] = serde_json::json!("*"),
            |st: &mut serde_json::Value| {
                st["Condition"]["StringEquals"]["AWS:SourceAccount"] = "999999999999".into()
            },
            |st: &mut serde_json::Value| {
                st["Condition"].as_object_mut().map(|c| c.remove("ArnLike"));
            },
            |st: &mut serde_json::Value| st["Action"] = "lambda:*".into(),
            |st: &mut serde_json::Value| st["Effect"] = "Deny".into(),
        ];
        for edit in edits {
            let mut st = aws_statement(&d.statement_id, &d.source_arn);
            edit(&mut st);
            assert_eq!(
                permission_diff(Some(&policy(vec![st.clone()])), &prefix, &d).expect("diff"),
                PermissionDiff {
                    remove: vec![d.statement_id.clone()],
                    add: true
                },
                "{st}"
            );
        }
        // Another owner's statements (different prefix) are not ours to touch.
        let mut other = owner();
        other.name = "payments".into();
        let theirs = other.permission_statement_id("api9");
        let p = policy(vec![aws_statement(
            &theirs,
            "arn:aws:execute-api:us-east-1:123456789012:api9/*",
        )]);
        assert_eq!(
            permission_diff(Some(&p), &prefix, &d).expect("diff"),
            PermissionDiff {
                remove: vec![],
                add: true
            }
        );
        assert_eq!(
            owner_statement_ids(Some(&p), &prefix).expect("ids"),
            Vec::<String>::new()
        );
        assert_eq!(
            owner_statement_ids(Some(&p), &other.permission_statement_prefix()).expect("ids"),
            vec![theirs]
        );
        assert!(permission_diff(Some("not json"), &prefix, &d).is_err());
    }
}
