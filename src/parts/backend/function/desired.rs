//! The function the spec asks for (pure): its configuration, code source and tags.

use std::collections::BTreeMap;

use super::{FIELD_ARCHITECTURE, FIELD_BACKEND, FIELD_ROLE, invalid};
use crate::crd::{Architecture, PrivateApiSpec};
use crate::error::{Error, Result};
use crate::identity::{Owner, short_hash};
use crate::model::FunctionConfig;
use crate::parts::{HandlerPackage, Settings};

const BUILTIN_RUNTIME: &str = "provided.al2023";
const BUILTIN_HANDLER: &str = "bootstrap";
/// The environment variable the built-in handler answers with (see `handler/src/lib.rs`).
const BUILTIN_MESSAGE_VAR: &str = "MESSAGE";
const BUILTIN_DESCRIPTION: &str = "privateapi.io builtin handler (managed by privateapi-operator)";
/// Lambda's limit on Description, in characters.
pub(super) const DESCRIPTION_MAX_CHARS: usize = 256;

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
