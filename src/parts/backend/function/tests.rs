use std::collections::BTreeMap;

use super::apply::{field_of_rejection, user_error};
use super::desired::{DESCRIPTION_MAX_CHARS, DesiredCode, DesiredFunction, s3_code_marker};
use super::diff::ConfigDiff;
use super::*;
use crate::crd::{Architecture, BuiltinBackend, CodeBackend, PrivateApiSpec, Runtime};
use crate::error::AwsErrorKind;
use crate::parts::backend::test_support::owner;
use crate::parts::{HandlerPackage, Settings};

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
