//! The backend part (`src/parts/backend/`) against the test bed's corrected moto, through the
//! operator's own SDK clients (`AwsClients`, with the call-recording interceptor, so every test can
//! count the AWS calls a reconcile makes).
//!
//! Each test has its own `Owner` (unique name), so its own function and statement IDs: the tests
//! run in parallel on one server. moto's Lambda keeps a new function `Pending` and an update
//! `InProgress` for about a second (testbed/moto/server.py), as AWS does for longer.
//!
//! Run through the test bed: `make test`, or `bash testbed/with-testbed.sh cargo test --test
//! part_backend`.

use crate::support::inspect::{self, function_exists, lambda_statements};
use crate::support::{poll, unique};

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::{
    Architecture as LambdaArchitecture, Environment, FunctionCode, Runtime,
};
use privateapi_operator::aws::RegionClients;
use privateapi_operator::crd::{Architecture, PrivateApiSpec, PrivateApiStatus};
use privateapi_operator::error::Error;
use privateapi_operator::identity::Owner;
use privateapi_operator::metrics::{CallCounts, Metrics, is_read_operation};
use privateapi_operator::parts::backend::{self, BackendInfo};
use privateapi_operator::parts::{Change, HandlerPackage, Outcome, PartContext, Settings};
use serde_json::{Value, json};

const REGION: &str = "us-east-1";
const CLUSTER: &str = "part-backend-test";

// ---------------------------------------------------------------------------------------------
// test bed
// ---------------------------------------------------------------------------------------------

struct Bed {
    metrics: Arc<Metrics>,
    aws: Arc<RegionClients>,
    role: String,
}

async fn bed() -> Bed {
    let (aws, metrics) = crate::support::aws_counted().await;
    let role = std::env::var("PAPI_LAMBDA_ROLE_ARN").expect("PAPI_LAMBDA_ROLE_ARN (moto.env)");
    Bed { metrics, aws, role }
}

impl Bed {
    fn lambda(&self) -> &aws_sdk_lambda::Client {
        &self.aws.lambda
    }

    fn account(&self) -> &str {
        &self.aws.account_id
    }
}

/// Calls made between two snapshots of the metrics, by `Service:Operation`.
fn calls_between(before: &CallCounts, after: &CallCounts) -> BTreeMap<String, u64> {
    after
        .by_operation
        .iter()
        .filter_map(|(op, n)| {
            let d = n - before.by_operation.get(op).copied().unwrap_or(0);
            (d > 0).then(|| (op.clone(), d))
        })
        .collect()
}

fn is_read(op: &str) -> bool {
    is_read_operation(op.rsplit(':').next().unwrap_or(op))
}

fn writes(calls: &BTreeMap<String, u64>) -> BTreeMap<String, u64> {
    calls
        .iter()
        .filter(|(op, _)| !is_read(op))
        .map(|(op, n)| (op.clone(), *n))
        .collect()
}

fn reads(calls: &BTreeMap<String, u64>) -> BTreeMap<String, u64> {
    calls
        .iter()
        .filter(|(op, _)| is_read(op))
        .map(|(op, n)| (op.clone(), *n))
        .collect()
}

fn ops(list: &[(&str, u64)]) -> BTreeMap<String, u64> {
    list.iter().map(|(op, n)| (op.to_string(), *n)).collect()
}

/// Runs `f` and returns its result with the AWS calls it made. Only one future per test runs at a
/// time, so the calls are its own.
async fn measured<T>(bed: &Bed, f: impl Future<Output = T>) -> (T, BTreeMap<String, u64>) {
    let before = bed.metrics.aws_call_counts();
    let out = f.await;
    let after = bed.metrics.aws_call_counts();
    (out, calls_between(&before, &after))
}

// ---------------------------------------------------------------------------------------------
// a PrivateApi, as the reconciler hands it to the part
// ---------------------------------------------------------------------------------------------

struct Api {
    owner: Owner,
    spec: PrivateApiSpec,
    status: PrivateApiStatus,
    settings: Settings,
}

impl Api {
    fn new(bed: &Bed, test: &str, backend: Value) -> Self {
        let spec = serde_json::from_value(json!({
            "endpoint": {"id": "vpce-0123456789abcdef0"},
            "backend": backend,
            "tags": {"team": "backend-tests"},
        }))
        .expect("valid spec");
        Self {
            owner: Owner {
                cluster: CLUSTER.into(),
                namespace: "part-backend".into(),
                name: unique(test),
                uid: unique("uid"),
            },
            spec,
            status: PrivateApiStatus::default(),
            settings: Settings {
                cluster_name: CLUSTER.into(),
                default_execution_role_arn: Some(bed.role.clone()),
                handler_packages: [Architecture::Arm64, Architecture::X86_64]
                    .into_iter()
                    .map(|a| (a.as_str().to_string(), package(a)))
                    .collect(),
            },
        }
    }

    fn ctx<'a>(&'a self, bed: &'a Bed) -> PartContext<'a> {
        PartContext {
            aws: &bed.aws,
            owner: &self.owner,
            spec: &self.spec,
            status: &self.status,
            settings: &self.settings,
            reader: privateapi_operator::observed::Reader::direct(&bed.aws),
        }
    }

    fn set_backend(&mut self, backend: Value) {
        self.spec.backend = serde_json::from_value(backend).expect("valid backend");
    }
}

/// The builtin "handler" of the tests: moto does not run it, it only has to be a zip.
fn package(architecture: Architecture) -> HandlerPackage {
    let body = format!("#!/bin/sh\n# test handler for {}\n", architecture.as_str());
    HandlerPackage::from_zip(architecture, tiny_zip("bootstrap", body.as_bytes()))
}

/// A deployable zip holding one executable file, made by the handler crate's own deterministic
/// packager (moto does not run the code).
fn tiny_zip(name: &str, body: &[u8]) -> Vec<u8> {
    privateapi_handler::package::zip_single(name, 0o755, body).expect("a one-file zip")
}

// ---------------------------------------------------------------------------------------------
// helpers
// ---------------------------------------------------------------------------------------------

/// Reconcile the function until it is ready; returns the last outcome and every change made.
async fn converge(bed: &Bed, api: &Api) -> (Outcome<BackendInfo>, Vec<Change>) {
    let mut changes = Vec::new();
    let out = poll::until_async(
        "the function ready",
        Duration::from_secs(60),
        Duration::from_millis(250),
        async || {
            let out = backend::reconcile_function(&api.ctx(bed))
                .await
                .unwrap_or_else(|e| panic!("reconcile_function: {e}"));
            changes.extend(out.changes.iter().cloned());
            if out.state.ready {
                Ok(out)
            } else {
                Err(format!("{:?}; changes so far: {changes:?}", out.state))
            }
        },
    )
    .await;
    (out, changes)
}

/// Until the function is Active and no update is in progress (after a change made directly).
async fn wait_idle(bed: &Bed, name: &str) {
    poll::until_async(
        &format!("{name} Active, no update in progress"),
        Duration::from_secs(30),
        Duration::from_millis(100),
        async || {
            let cfg = inspect::function_configuration(&bed.aws, name).await;
            let state = cfg.state().map(|s| s.as_str());
            let update = cfg.last_update_status().map(|s| s.as_str());
            if state == Some("Active") && update != Some("InProgress") {
                Ok(())
            } else {
                Err(format!("{state:?}/{update:?}"))
            }
        },
    )
    .await;
}

fn sids(statements: &[Value]) -> Vec<String> {
    let mut sids: Vec<String> = statements
        .iter()
        .filter_map(|s| s["Sid"].as_str().map(str::to_string))
        .collect();
    sids.sort();
    sids
}

/// The statement AddPermission makes for API `api_id`, as GetPolicy returns it.
fn expected_statement(bed: &Bed, sid: &str, function_arn: &str, api_id: &str) -> Value {
    json!({
        "Sid": sid,
        "Effect": "Allow",
        "Principal": {"Service": "apigateway.amazonaws.com"},
        "Action": "lambda:InvokeFunction",
        "Resource": function_arn,
        "Condition": {
            "ArnLike": {"AWS:SourceArn": format!("arn:aws:execute-api:{REGION}:{}:{api_id}/*", bed.account())},
            "StringEquals": {"AWS:SourceAccount": bed.account()}
        }
    })
}

/// A function made directly (someone else's), with a foreign statement in its policy.
async fn external_function(bed: &Bed, name: &str) -> String {
    let out = bed
        .lambda()
        .create_function()
        .function_name(name)
        .runtime(Runtime::Providedal2023)
        .role(&bed.role)
        .handler("bootstrap")
        .architectures(LambdaArchitecture::X8664)
        .memory_size(640)
        .timeout(7)
        .description("not the operator's")
        .environment(
            Environment::builder()
                .variables("OWNED_BY", "someone else")
                .build(),
        )
        .tags("team", "someone-else")
        .code(
            FunctionCode::builder()
                .zip_file(Blob::new(tiny_zip("bootstrap", b"#!/bin/sh\n# theirs\n")))
                .build(),
        )
        .send()
        .await
        .expect("CreateFunction (external)");
    wait_idle(bed, name).await;
    bed.lambda()
        .add_permission()
        .function_name(name)
        .statement_id("someone-else-s3")
        .action("lambda:InvokeFunction")
        .principal("s3.amazonaws.com")
        .source_account(bed.account())
        .send()
        .await
        .expect("AddPermission (foreign)");
    out.function_arn().expect("function ARN").to_string()
}

/// What must not change on a function the operator only references.
#[derive(Debug, PartialEq)]
struct Snapshot {
    config: Vec<Option<String>>,
    architectures: Vec<String>,
    environment: BTreeMap<String, String>,
    tags: BTreeMap<String, String>,
}

async fn snapshot(bed: &Bed, name: &str) -> Snapshot {
    let out = inspect::function(&bed.aws, name).await;
    let c = out.configuration().expect("configuration");
    Snapshot {
        config: vec![
            c.role().map(str::to_string),
            c.runtime().map(|r| r.as_str().to_string()),
            c.handler().map(str::to_string),
            c.memory_size().map(|m| m.to_string()),
            c.timeout().map(|t| t.to_string()),
            c.description().map(str::to_string),
            c.code_sha256().map(str::to_string),
            c.last_modified().map(str::to_string),
        ],
        architectures: c
            .architectures()
            .iter()
            .map(|a| a.as_str().to_string())
            .collect(),
        environment: c
            .environment()
            .and_then(|e| e.variables())
            .map(|v| v.clone().into_iter().collect())
            .unwrap_or_default(),
        tags: out
            .tags()
            .map(|t| t.clone().into_iter().collect())
            .unwrap_or_default(),
    }
}

fn invalid_spec(err: Error) -> (String, String) {
    match err {
        Error::InvalidSpec { field, message } => (field, message),
        other => panic!("expected InvalidSpec, got {other:?}"),
    }
}

fn reference_not_found(err: Error) -> (String, String) {
    match err {
        Error::ReferenceNotFound { field, message } => (field, message),
        other => panic!("expected ReferenceNotFound, got {other:?}"),
    }
}

fn actions(changes: &[Change]) -> Vec<(&'static str, &str)> {
    changes
        .iter()
        .map(|c| (c.action, c.resource.as_str()))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// builtin: create, steady state, lost status
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn builtin_function_is_created_as_specified_and_steady_state_writes_nothing() {
    let bed = bed().await;
    let api = Api::new(
        &bed,
        "create",
        json!({"builtin": {"message": "hello from the test"}, "environment": {"EXTRA": "1"}}),
    );
    let name = api.owner.function_name();
    let arn = format!("arn:aws:lambda:{REGION}:{}:function:{name}", bed.account());

    let (first, calls) = measured(&bed, backend::reconcile_function(&api.ctx(&bed))).await;
    let first = first.expect("first reconcile");
    assert_eq!(writes(&calls), ops(&[("Lambda:CreateFunction", 1)]));
    assert_eq!(
        first.value,
        BackendInfo {
            function_arn: arn.clone(),
            function_name: name.clone(),
            owned: true,
            active: false
        }
    );
    assert!(!first.state.ready);
    assert_eq!(first.state.reason, "Creating");
    assert_eq!(
        actions(&first.changes),
        [("Created", format!("Lambda function {name}").as_str())]
    );

    // Right after the create the function is Pending: reported, nothing written.
    let (second, calls) = measured(&bed, backend::reconcile_function(&api.ctx(&bed))).await;
    let second = second.expect("second reconcile");
    assert_eq!(writes(&calls), ops(&[]), "{calls:?}");
    if !second.state.ready {
        assert_eq!(second.state.reason, "Pending", "{:?}", second.state);
    }

    let (ready, changes) = converge(&bed, &api).await;
    assert!(
        changes.is_empty(),
        "nothing to change after the create: {changes:?}"
    );
    assert_eq!(
        ready.value,
        BackendInfo {
            function_arn: arn.clone(),
            function_name: name.clone(),
            owned: true,
            active: true
        }
    );
    assert_eq!(ready.state.reason, "Available");

    let out = inspect::function(&bed.aws, &name).await;
    let c = out.configuration().expect("configuration");
    assert_eq!(c.function_arn(), Some(arn.as_str()));
    assert_eq!(c.runtime(), Some(&Runtime::Providedal2023));
    assert_eq!(c.handler(), Some("bootstrap"));
    assert_eq!(c.architectures(), &[LambdaArchitecture::Arm64]);
    assert_eq!(c.memory_size(), Some(256));
    assert_eq!(c.timeout(), Some(10));
    assert_eq!(c.role(), Some(bed.role.as_str()));
    assert_eq!(
        c.code_sha256(),
        Some(package(Architecture::Arm64).code_sha256.as_str())
    );
    let env: BTreeMap<String, String> = c
        .environment()
        .and_then(|e| e.variables())
        .expect("environment")
        .clone()
        .into_iter()
        .collect();
    assert_eq!(
        env,
        BTreeMap::from([
            ("EXTRA".to_string(), "1".to_string()),
            ("MESSAGE".to_string(), "hello from the test".to_string())
        ])
    );
    let tags: BTreeMap<String, String> = out.tags().expect("tags").clone().into_iter().collect();
    assert_eq!(tags, api.owner.tags(&api.spec.tags));
    assert_eq!(tags.get("team").map(String::as_str), Some("backend-tests"));

    // Steady state: one read, no write.
    let (steady, calls) = measured(&bed, backend::reconcile_function(&api.ctx(&bed))).await;
    let steady = steady.expect("steady reconcile");
    assert!(steady.state.ready && steady.changes.is_empty());
    assert_eq!(writes(&calls), ops(&[]));
    assert_eq!(reads(&calls), ops(&[("Lambda:GetFunction", 1)]));
    eprintln!("steady-state reconcile_function calls: {calls:?}");

    backend::cleanup(&api.ctx(&bed)).await.expect("cleanup");
}

#[tokio::test]
async fn lost_status_and_a_rebuilt_cluster_find_the_same_function() {
    let bed = bed().await;
    let mut api = Api::new(&bed, "lost", json!({"builtin": {}}));
    let (ready, _) = converge(&bed, &api).await;

    // Status lost (never written, or the object re-created): found by its name, nothing created.
    api.status = PrivateApiStatus::default();
    let (again, calls) = measured(&bed, backend::reconcile_function(&api.ctx(&bed))).await;
    let again = again.expect("reconcile without status");
    assert_eq!(again.value, ready.value);
    assert_eq!(writes(&calls), ops(&[]));

    // Same cluster and object name, new UID (a rebuilt cluster): adopted, the uid tag follows.
    api.owner.uid = unique("new-uid");
    let (adopted, calls) = measured(&bed, backend::reconcile_function(&api.ctx(&bed))).await;
    let adopted = adopted.expect("reconcile with a new uid");
    assert_eq!(adopted.value.function_arn, ready.value.function_arn);
    assert_eq!(writes(&calls), ops(&[("Lambda:TagResource", 1)]));
    let out = inspect::function(&bed.aws, &api.owner.function_name()).await;
    assert_eq!(
        out.tags().and_then(|t| t.get("privateapi.io/uid")),
        Some(&api.owner.uid)
    );
    let (_, changes) = converge(&bed, &api).await;
    assert!(changes.is_empty(), "{changes:?}");

    backend::cleanup(&api.ctx(&bed)).await.expect("cleanup");
}

// ---------------------------------------------------------------------------------------------
// drift and spec changes
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn drift_is_reverted() {
    let bed = bed().await;
    let api = Api::new(
        &bed,
        "drift",
        json!({"builtin": {"message": "as specified"}}),
    );
    let name = api.owner.function_name();
    converge(&bed, &api).await;
    let desired = snapshot(&bed, &name).await;

    // Memory and environment edited, our tags removed.
    bed.lambda()
        .update_function_configuration()
        .function_name(&name)
        .memory_size(1024)
        .environment(
            Environment::builder()
                .variables("MESSAGE", "hacked")
                .variables("INJECTED", "1")
                .build(),
        )
        .send()
        .await
        .expect("edit the configuration");
    wait_idle(&bed, &name).await;
    let arn = inspect::function(&bed.aws, &name)
        .await
        .configuration()
        .and_then(|c| c.function_arn())
        .expect("arn")
        .to_string();
    bed.lambda()
        .untag_resource()
        .resource(&arn)
        .tag_keys("privateapi.io/uid")
        .tag_keys("team")
        .send()
        .await
        .expect("remove tags");

    let (first, calls) = measured(&bed, backend::reconcile_function(&api.ctx(&bed))).await;
    let first = first.expect("reconcile after drift");
    assert_eq!(
        writes(&calls),
        ops(&[
            ("Lambda:TagResource", 1),
            ("Lambda:UpdateFunctionConfiguration", 1)
        ])
    );
    assert!(!first.state.ready);
    converge(&bed, &api).await;
    let reverted = snapshot(&bed, &name).await;
    assert_eq!(reverted.environment, desired.environment);
    assert_eq!(reverted.tags, desired.tags);
    assert_eq!(reverted.config[3], Some("256".to_string()));

    // Code replaced behind our back: the package is deployed again.
    bed.lambda()
        .update_function_code()
        .function_name(&name)
        .zip_file(Blob::new(tiny_zip("bootstrap", b"#!/bin/sh\n# not ours\n")))
        .send()
        .await
        .expect("replace the code");
    wait_idle(&bed, &name).await;
    let (_, calls) = measured(&bed, backend::reconcile_function(&api.ctx(&bed))).await;
    assert_eq!(writes(&calls), ops(&[("Lambda:UpdateFunctionCode", 1)]));
    converge(&bed, &api).await;
    assert_eq!(
        inspect::function(&bed.aws, &name)
            .await
            .configuration()
            .and_then(|c| c.code_sha256()),
        Some(package(Architecture::Arm64).code_sha256.as_str())
    );

    // Deleted behind our back: created again, as specified.
    bed.lambda()
        .delete_function()
        .function_name(&name)
        .send()
        .await
        .expect("delete the function");
    let (_, changes) = converge(&bed, &api).await;
    assert_eq!(
        actions(&changes),
        [("Created", format!("Lambda function {name}").as_str())]
    );
    let recreated = snapshot(&bed, &name).await;
    assert_eq!(recreated.environment, desired.environment);
    assert_eq!(recreated.tags, desired.tags);
    assert_eq!(recreated.config[..7], desired.config[..7]);

    backend::cleanup(&api.ctx(&bed)).await.expect("cleanup");
}

#[tokio::test]
async fn spec_changes_converge_with_one_update() {
    let bed = bed().await;
    let mut api = Api::new(&bed, "change", json!({"builtin": {}}));
    let name = api.owner.function_name();
    converge(&bed, &api).await;

    api.spec.backend.memory_mib = 512;
    api.spec.backend.timeout_seconds = 20;
    api.spec.backend.builtin = Some(privateapi_operator::crd::BuiltinBackend {
        message: "changed".into(),
    });
    let (first, calls) = measured(&bed, backend::reconcile_function(&api.ctx(&bed))).await;
    let first = first.expect("reconcile after the spec change");
    assert_eq!(
        writes(&calls),
        ops(&[("Lambda:UpdateFunctionConfiguration", 1)])
    );
    assert_eq!(
        (first.state.ready, first.state.reason.as_str()),
        (false, "Updating")
    );
    assert!(!first.value.active);

    // While the update is in progress: reported, nothing written.
    let (second, calls) = measured(&bed, backend::reconcile_function(&api.ctx(&bed))).await;
    let second = second.expect("reconcile during the update");
    assert_eq!(writes(&calls), ops(&[]));
    if !second.state.ready {
        assert_eq!(second.state.reason, "Updating", "{:?}", second.state);
    }

    let (_, changes) = converge(&bed, &api).await;
    assert!(changes.is_empty(), "{changes:?}");
    let c = inspect::function(&bed.aws, &name).await;
    let c = c.configuration().expect("configuration");
    assert_eq!((c.memory_size(), c.timeout()), (Some(512), Some(20)));
    assert_eq!(
        c.environment()
            .and_then(|e| e.variables())
            .and_then(|v| v.get("MESSAGE"))
            .map(String::as_str),
        Some("changed")
    );
    let (_, calls) = measured(&bed, backend::reconcile_function(&api.ctx(&bed))).await;
    assert_eq!(writes(&calls), ops(&[]));

    backend::cleanup(&api.ctx(&bed)).await.expect("cleanup");
}

#[tokio::test]
async fn architecture_change_deploys_the_other_package() {
    let bed = bed().await;
    let mut api = Api::new(&bed, "arch", json!({"builtin": {}}));
    let name = api.owner.function_name();
    converge(&bed, &api).await;

    api.spec.backend.architecture = Some(Architecture::X86_64);
    let (_, calls) = measured(&bed, backend::reconcile_function(&api.ctx(&bed))).await;
    assert_eq!(writes(&calls), ops(&[("Lambda:UpdateFunctionCode", 1)]));
    converge(&bed, &api).await;
    let c = inspect::function(&bed.aws, &name).await;
    let c = c.configuration().expect("configuration");
    assert_eq!(c.architectures(), &[LambdaArchitecture::X8664]);
    assert_eq!(
        c.code_sha256(),
        Some(package(Architecture::X86_64).code_sha256.as_str())
    );
    let (_, calls) = measured(&bed, backend::reconcile_function(&api.ctx(&bed))).await;
    assert_eq!(writes(&calls), ops(&[]));

    backend::cleanup(&api.ctx(&bed)).await.expect("cleanup");
}

// ---------------------------------------------------------------------------------------------
// code from S3
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn s3_code_backend_records_and_follows_its_source() {
    let bed = bed().await;
    let bucket = std::env::var("PAPI_TEST_CODE_BUCKET").expect("PAPI_TEST_CODE_BUCKET (moto.env)");
    let key = std::env::var("PAPI_TEST_CODE_KEY").expect("PAPI_TEST_CODE_KEY (moto.env)");
    let mut api = Api::new(
        &bed,
        "s3code",
        json!({
            "code": {"s3Bucket": bucket, "s3Key": key, "runtime": "python3.12", "handler": "index.handler"},
            "architecture": "x86_64",
            "environment": {"A": "1"},
            "memoryMiB": 128
        }),
    );
    let name = api.owner.function_name();
    converge(&bed, &api).await;
    let out = inspect::function(&bed.aws, &name).await;
    let c = out.configuration().expect("configuration");
    assert_eq!(
        c.description(),
        Some(format!("privateapi.io code s3://{bucket}/{key}").as_str())
    );
    assert_eq!(c.runtime(), Some(&Runtime::Python312));
    assert_eq!(c.handler(), Some("index.handler"));
    assert_eq!(c.architectures(), &[LambdaArchitecture::X8664]);
    assert_eq!(c.memory_size(), Some(128));
    assert!(c.code_size() > 0);
    assert_eq!(
        c.environment().and_then(|e| e.variables()).map(|v| v.len()),
        Some(1)
    );
    let (_, calls) = measured(&bed, backend::reconcile_function(&api.ctx(&bed))).await;
    assert_eq!(writes(&calls), ops(&[]));

    // Another source: the code is deployed, then (in the same reconcile, once the code update is
    // done) the Description that records it. moto does not check object versions, so a new
    // version of the same key stands for "another object".
    if let Some(code) = api.spec.backend.code.as_mut() {
        code.s3_object_version = Some("2".into());
    }
    let (first, calls) = measured(&bed, backend::reconcile_function(&api.ctx(&bed))).await;
    let first = first.expect("reconcile after the source changed");
    assert_eq!(
        writes(&calls),
        ops(&[
            ("Lambda:UpdateFunctionCode", 1),
            ("Lambda:UpdateFunctionConfiguration", 1)
        ]),
        "{calls:?}"
    );
    assert_eq!(first.changes.len(), 2, "{:?}", first.changes);
    let (_, changes) = converge(&bed, &api).await;
    assert!(changes.is_empty(), "{changes:?}");
    assert_eq!(
        inspect::function(&bed.aws, &name)
            .await
            .configuration()
            .and_then(|c| c.description()),
        Some(format!("privateapi.io code s3://{bucket}/{key}?versionId=2").as_str())
    );
    let (_, calls) = measured(&bed, backend::reconcile_function(&api.ctx(&bed))).await;
    assert_eq!(writes(&calls), ops(&[]));

    // A key that does not exist (yet): retried, and the function keeps its code meanwhile.
    if let Some(code) = api.spec.backend.code.as_mut() {
        code.s3_key = "no/such/key.zip".into();
    }
    let err = backend::reconcile_function(&api.ctx(&bed))
        .await
        .expect_err("missing S3 object");
    let (field, message) = reference_not_found(err);
    assert_eq!(field, "spec.backend.code");
    assert!(message.contains("NoSuchKey"), "{message}");
    assert_eq!(
        inspect::function(&bed.aws, &name)
            .await
            .configuration()
            .and_then(|c| c.description()),
        Some(format!("privateapi.io code s3://{bucket}/{key}?versionId=2").as_str())
    );
    backend::cleanup(&api.ctx(&bed)).await.expect("cleanup");

    // And on create: nothing is made.
    let missing = Api::new(
        &bed,
        "s3missing",
        json!({"code": {"s3Bucket": bucket, "s3Key": "no/such/key.zip", "runtime": "provided.al2023", "handler": "bootstrap"}}),
    );
    let err = backend::reconcile_function(&missing.ctx(&bed))
        .await
        .expect_err("missing S3 object on create");
    assert_eq!(reference_not_found(err).0, "spec.backend.code");
    assert!(!function_exists(&bed.aws, &missing.owner.function_name()).await);
}

// ---------------------------------------------------------------------------------------------
// invalid specs
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn missing_or_unusable_role_is_invalid_spec() {
    let bed = bed().await;
    let mut api = Api::new(&bed, "norole", json!({"builtin": {}}));
    api.settings.default_execution_role_arn = None;
    let (result, calls) = measured(&bed, backend::reconcile_function(&api.ctx(&bed))).await;
    let (field, _) = invalid_spec(result.expect_err("no role"));
    assert_eq!(field, "spec.backend.executionRoleArn");
    assert_eq!(calls, ops(&[]), "nothing asked of AWS");

    // A role Lambda cannot assume (here: one that does not exist).
    api.spec.backend.execution_role_arn = Some(format!(
        "arn:aws:iam::{}:role/{}",
        bed.account(),
        unique("papi-no-such-role")
    ));
    let err = backend::reconcile_function(&api.ctx(&bed))
        .await
        .expect_err("role cannot be assumed");
    // IAM roles are often made by the same sync, and IAM is eventually consistent: retried.
    let (field, message) = reference_not_found(err);
    assert_eq!(field, "spec.backend.executionRoleArn");
    assert!(message.contains("cannot be assumed"), "{message}");
    assert!(!function_exists(&bed.aws, &api.owner.function_name()).await);
}

#[tokio::test]
async fn function_arn_not_found_is_retried_and_one_elsewhere_is_invalid_spec() {
    let bed = bed().await;
    let missing = format!(
        "arn:aws:lambda:{REGION}:{}:function:{}",
        bed.account(),
        unique("papi-nope")
    );
    let api = Api::new(&bed, "noarn", json!({"functionArn": missing}));
    let (field, message) = reference_not_found(
        backend::reconcile_function(&api.ctx(&bed))
            .await
            .expect_err("nonexistent function"),
    );
    assert_eq!(field, "spec.backend.functionArn");
    assert!(message.contains("does not exist"), "{message}");

    let elsewhere = format!("arn:aws:lambda:eu-west-1:{}:function:x", bed.account());
    let api = Api::new(&bed, "otherregion", json!({"functionArn": elsewhere}));
    let (result, calls) = measured(&bed, backend::reconcile_function(&api.ctx(&bed))).await;
    let (field, message) = invalid_spec(result.expect_err("function in another region"));
    assert_eq!(field, "spec.backend.functionArn");
    assert!(message.contains("eu-west-1"), "{message}");
    assert_eq!(calls, ops(&[]));
}

#[tokio::test]
async fn a_function_with_our_name_but_not_our_tags_is_not_taken_over() {
    let bed = bed().await;
    let api = Api::new(&bed, "squatter", json!({"builtin": {}}));
    let name = api.owner.function_name();
    external_function(&bed, &name).await;
    let before = snapshot(&bed, &name).await;

    let (result, calls) = measured(&bed, backend::reconcile_function(&api.ctx(&bed))).await;
    let (field, message) = invalid_spec(result.expect_err("not ours"));
    assert_eq!(field, "spec.backend");
    assert!(message.contains("not tagged as owned"), "{message}");
    assert_eq!(writes(&calls), ops(&[]));

    let (cleaned, calls) = measured(&bed, backend::cleanup(&api.ctx(&bed))).await;
    assert!(cleaned.expect("cleanup").done);
    assert_eq!(writes(&calls), ops(&[]));
    assert_eq!(snapshot(&bed, &name).await, before);
    bed.lambda()
        .delete_function()
        .function_name(&name)
        .send()
        .await
        .expect("delete");
}

// ---------------------------------------------------------------------------------------------
// the invoke permission
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn permission_is_added_kept_repaired_and_moved() {
    let bed = bed().await;
    let api = Api::new(&bed, "perm", json!({"builtin": {}}));
    let (ready, _) = converge(&bed, &api).await;
    let function = ready.value.clone();
    let ours = |api_id: &str| api.owner.permission_statement_id(api_id);
    let expected =
        |api_id: &str| expected_statement(&bed, &ours(api_id), &function.function_arn, api_id);

    let (out, calls) = measured(
        &bed,
        backend::reconcile_permission(&api.ctx(&bed), &function, "api1aaaaaa"),
    )
    .await;
    let out = out.expect("add the permission");
    assert!(out.state.ready);
    assert_eq!(writes(&calls), ops(&[("Lambda:AddPermission", 1)]));
    assert_eq!(
        lambda_statements(&bed.aws, &function.function_name).await,
        [expected("api1aaaaaa")]
    );

    // Someone else's statement on our function is not ours to remove.
    bed.lambda()
        .add_permission()
        .function_name(&function.function_name)
        .statement_id("someone-else-events")
        .action("lambda:InvokeFunction")
        .principal("events.amazonaws.com")
        .send()
        .await
        .expect("foreign statement");

    // Steady state: one GetPolicy, no write.
    let (out, calls) = measured(
        &bed,
        backend::reconcile_permission(&api.ctx(&bed), &function, "api1aaaaaa"),
    )
    .await;
    assert!(out.expect("steady").changes.is_empty());
    assert_eq!(writes(&calls), ops(&[]));
    assert_eq!(reads(&calls), ops(&[("Lambda:GetPolicy", 1)]));
    eprintln!("steady-state reconcile_permission calls: {calls:?}");

    // Removed behind our back: added again.
    bed.lambda()
        .remove_permission()
        .function_name(&function.function_name)
        .statement_id(ours("api1aaaaaa"))
        .send()
        .await
        .expect("remove ours");
    let (_, calls) = measured(
        &bed,
        backend::reconcile_permission(&api.ctx(&bed), &function, "api1aaaaaa"),
    )
    .await;
    assert_eq!(writes(&calls), ops(&[("Lambda:AddPermission", 1)]));

    // Edited (our statement ID, any API of the account may call): replaced.
    bed.lambda()
        .remove_permission()
        .function_name(&function.function_name)
        .statement_id(ours("api1aaaaaa"))
        .send()
        .await
        .expect("remove ours");
    bed.lambda()
        .add_permission()
        .function_name(&function.function_name)
        .statement_id(ours("api1aaaaaa"))
        .action("lambda:InvokeFunction")
        .principal("apigateway.amazonaws.com")
        .source_arn(format!(
            "arn:aws:execute-api:{REGION}:{}:*/*",
            bed.account()
        ))
        .send()
        .await
        .expect("loosened statement");
    let (_, calls) = measured(
        &bed,
        backend::reconcile_permission(&api.ctx(&bed), &function, "api1aaaaaa"),
    )
    .await;
    assert_eq!(
        writes(&calls),
        ops(&[("Lambda:AddPermission", 1), ("Lambda:RemovePermission", 1)])
    );
    let now = lambda_statements(&bed.aws, &function.function_name).await;
    assert_eq!(
        sids(&now),
        [ours("api1aaaaaa"), "someone-else-events".to_string()]
    );
    assert!(now.contains(&expected("api1aaaaaa")), "{now:?}");

    // The API was replaced (new ID): the statement for the new one is added, the one for the
    // old API is reported stale (the stage may still invoke through it) and goes once the
    // reconciler removes it after the deployment.
    let (outcome, calls) = measured(
        &bed,
        backend::reconcile_permission(&api.ctx(&bed), &function, "api2bbbbbb"),
    )
    .await;
    let stale = outcome.expect("permission").value;
    assert_eq!(stale, [ours("api1aaaaaa")]);
    assert_eq!(writes(&calls), ops(&[("Lambda:AddPermission", 1)]));
    let removed = backend::remove_statements(&api.ctx(&bed), &function.function_arn, &stale)
        .await
        .expect("remove stale");
    assert_eq!(removed.len(), 1, "{removed:?}");
    let now = lambda_statements(&bed.aws, &function.function_name).await;
    assert_eq!(
        sids(&now),
        [ours("api2bbbbbb"), "someone-else-events".to_string()]
    );
    assert!(now.contains(&expected("api2bbbbbb")), "{now:?}");

    backend::cleanup(&api.ctx(&bed)).await.expect("cleanup");
}

#[tokio::test]
async fn function_arn_backend_gets_only_the_permission() {
    let bed = bed().await;
    let name = unique("papi-ext");
    let arn = external_function(&bed, &name).await;
    let before = snapshot(&bed, &name).await;
    let mut api = Api::new(&bed, "ref", json!({"functionArn": arn}));

    let (out, calls) = measured(&bed, backend::reconcile_function(&api.ctx(&bed))).await;
    let out = out.expect("referenced function");
    assert_eq!(
        out.value,
        BackendInfo {
            function_arn: arn.clone(),
            function_name: name.clone(),
            owned: false,
            active: true
        }
    );
    assert!(out.state.ready && out.changes.is_empty());
    assert_eq!(writes(&calls), ops(&[]));
    assert_eq!(reads(&calls), ops(&[("Lambda:GetFunction", 1)]));

    let (perm, calls) = measured(
        &bed,
        backend::reconcile_permission(&api.ctx(&bed), &out.value, "api3cccccc"),
    )
    .await;
    assert!(perm.expect("permission").state.ready);
    assert_eq!(writes(&calls), ops(&[("Lambda:AddPermission", 1)]));
    let ours = api.owner.permission_statement_id("api3cccccc");
    let now = lambda_statements(&bed.aws, &name).await;
    assert_eq!(sids(&now), [ours.clone(), "someone-else-s3".to_string()]);
    assert!(
        now.contains(&expected_statement(&bed, &ours, &arn, "api3cccccc")),
        "{now:?}"
    );

    // Steady state.
    let (_, calls) = measured(&bed, async {
        backend::reconcile_function(&api.ctx(&bed))
            .await
            .expect("function");
        backend::reconcile_permission(&api.ctx(&bed), &out.value, "api3cccccc")
            .await
            .expect("permission");
    })
    .await;
    assert_eq!(writes(&calls), ops(&[]));
    assert_eq!(
        snapshot(&bed, &name).await,
        before,
        "the function itself never changes"
    );

    // Cleanup takes our statement off and nothing else.
    api.status.function_arn = Some(arn.clone());
    let (cleaned, calls) = measured(&bed, backend::cleanup(&api.ctx(&bed))).await;
    let cleaned = cleaned.expect("cleanup");
    assert!(cleaned.done);
    assert_eq!(writes(&calls), ops(&[("Lambda:RemovePermission", 1)]));
    assert_eq!(
        sids(&lambda_statements(&bed.aws, &name).await),
        ["someone-else-s3"]
    );
    assert_eq!(snapshot(&bed, &name).await, before);

    bed.lambda()
        .delete_function()
        .function_name(&name)
        .send()
        .await
        .expect("delete");
}

// ---------------------------------------------------------------------------------------------
// cleanup and backend switches
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn cleanup_deletes_the_owned_function_with_or_without_status() {
    let bed = bed().await;
    let mut api = Api::new(&bed, "cleanup", json!({"builtin": {}}));
    let name = api.owner.function_name();
    let (ready, _) = converge(&bed, &api).await;
    backend::reconcile_permission(&api.ctx(&bed), &ready.value, "api4dddddd")
        .await
        .expect("permission");
    api.status.function_arn = Some(ready.value.function_arn.clone());

    let (cleaned, calls) = measured(&bed, backend::cleanup(&api.ctx(&bed))).await;
    let cleaned = cleaned.expect("cleanup");
    assert!(cleaned.done);
    assert_eq!(writes(&calls), ops(&[("Lambda:DeleteFunction", 1)]));
    assert_eq!(
        actions(&cleaned.changes),
        [("Deleted", format!("Lambda function {name}").as_str())]
    );
    assert!(!function_exists(&bed.aws, &name).await);
    // Again: nothing left, nothing written.
    let (again, calls) = measured(&bed, backend::cleanup(&api.ctx(&bed))).await;
    assert!(again.expect("second cleanup").done);
    assert_eq!(writes(&calls), ops(&[]));

    // Deleted before status recorded the function: found by its name and tags.
    let lost = Api::new(&bed, "cleanup-lost", json!({"builtin": {}}));
    converge(&bed, &lost).await;
    let cleaned = backend::cleanup(&lost.ctx(&bed)).await.expect("cleanup");
    assert!(cleaned.done);
    assert!(!function_exists(&bed.aws, &lost.owner.function_name()).await);
}

#[tokio::test]
async fn switching_backends_keeps_the_previous_one_until_it_is_released() {
    let bed = bed().await;
    let mut api = Api::new(&bed, "switch", json!({"builtin": {}}));
    let owned_name = api.owner.function_name();
    let (ready, _) = converge(&bed, &api).await;
    let owned_arn = ready.value.function_arn.clone();
    api.status.function_arn = Some(owned_arn.clone());
    backend::reconcile_permission(&api.ctx(&bed), &ready.value, "api5eeeeee")
        .await
        .expect("permission");
    let sid = api.owner.permission_statement_id("api5eeeeee");

    // A mistyped functionArn: ReferenceNotFound, and the working function and its permission
    // stay (make-before-break: nothing is released before the new one serves).
    let typo = format!(
        "arn:aws:lambda:{REGION}:{}:function:{}",
        bed.account(),
        unique("papi-typo")
    );
    api.set_backend(json!({"functionArn": typo}));
    let (result, calls) = measured(&bed, backend::reconcile_function(&api.ctx(&bed))).await;
    assert_eq!(
        reference_not_found(result.expect_err("typo")).0,
        "spec.backend.functionArn"
    );
    assert_eq!(writes(&calls), ops(&[]), "nothing written");
    assert!(function_exists(&bed.aws, &owned_name).await);
    assert_eq!(
        sids(&lambda_statements(&bed.aws, &owned_name).await),
        [sid.as_str()]
    );

    // builtin -> functionArn: the new function is wired, the old one is not touched by the
    // reconcile; it goes when the reconciler releases it (after the deployment).
    let ext_name = unique("papi-ext-switch");
    let ext_arn = external_function(&bed, &ext_name).await;
    api.set_backend(json!({"functionArn": ext_arn}));
    let (out, calls) = measured(&bed, backend::reconcile_function(&api.ctx(&bed))).await;
    let out = out.expect("switch to functionArn");
    assert_eq!(out.value.function_arn, ext_arn);
    assert!(out.changes.is_empty(), "{:?}", out.changes);
    assert_eq!(writes(&calls), ops(&[]));
    assert!(
        function_exists(&bed.aws, &owned_name).await,
        "kept until released"
    );
    backend::reconcile_permission(&api.ctx(&bed), &out.value, "api5eeeeee")
        .await
        .expect("permission");
    let released = backend::release_retired(&api.ctx(&bed), &owned_arn, &ext_arn)
        .await
        .expect("release");
    assert_eq!(
        actions(&released),
        [("Deleted", format!("Lambda function {owned_name}").as_str())]
    );
    assert!(!function_exists(&bed.aws, &owned_name).await);
    api.status.function_arn = Some(ext_arn.clone());

    // functionArn -> builtin: a new owned function; the referenced one keeps our statement until
    // released, then loses only that, and stays.
    let before = snapshot(&bed, &ext_name).await;
    api.set_backend(json!({"builtin": {}}));
    let (new, changes) = converge(&bed, &api).await;
    assert!(changes.iter().any(|c| c.action == "Created"), "{changes:?}");
    assert!(
        sids(&lambda_statements(&bed.aws, &ext_name).await).contains(&sid),
        "the referenced function still permits the API until released"
    );
    let released = backend::release_retired(&api.ctx(&bed), &ext_arn, &new.value.function_arn)
        .await
        .expect("release");
    assert!(
        released
            .iter()
            .any(|c| c.action == "Deleted" && c.resource == format!("invoke permission {sid}")),
        "{released:?}"
    );
    assert_eq!(
        sids(&lambda_statements(&bed.aws, &ext_name).await),
        ["someone-else-s3"]
    );
    assert_eq!(snapshot(&bed, &ext_name).await, before);
    // What is current again (a switch back) is never released.
    let released = privateapi_operator::retiring::release(
        &api.ctx(&bed),
        &[privateapi_operator::crd::RetiringResource {
            kind: privateapi_operator::retiring::FUNCTION.into(),
            id: new.value.function_arn.clone(),
        }],
        &privateapi_operator::retiring::Current {
            function_arn: &new.value.function_arn,
            rest_api_id: "api5eeeeee",
            vpc_endpoint_id: "vpce-0000000000000000a",
        },
    )
    .await;
    assert!(released.changes.is_empty() && released.errors.is_empty());
    assert!(released.remaining.is_empty(), "dropped from the list");
    assert!(function_exists(&bed.aws, &owned_name).await);

    api.status.function_arn = Some(new.value.function_arn.clone());
    backend::cleanup(&api.ctx(&bed)).await.expect("cleanup");
    assert!(!function_exists(&bed.aws, &owned_name).await);
    bed.lambda()
        .delete_function()
        .function_name(&ext_name)
        .send()
        .await
        .expect("delete");
}

#[tokio::test]
async fn a_referenced_function_is_never_deleted_even_one_the_operator_made() {
    let bed = bed().await;
    let mut api = Api::new(&bed, "keep", json!({"builtin": {}}));
    let name = api.owner.function_name();
    let (ready, _) = converge(&bed, &api).await;
    let arn = ready.value.function_arn.clone();
    api.status.function_arn = Some(arn.clone());

    // The user now references that same function: it is no longer the operator's to change.
    api.set_backend(json!({"functionArn": arn}));
    let (out, calls) = measured(&bed, backend::reconcile_function(&api.ctx(&bed))).await;
    let out = out.expect("reference the function");
    assert!(!out.value.owned && out.value.function_arn == arn);
    assert!(out.changes.is_empty(), "{:?}", out.changes);
    assert_eq!(writes(&calls), ops(&[]));
    backend::reconcile_permission(&api.ctx(&bed), &out.value, "api6ffffff")
        .await
        .expect("permission");

    let (cleaned, calls) = measured(&bed, backend::cleanup(&api.ctx(&bed))).await;
    assert!(cleaned.expect("cleanup").done);
    assert_eq!(writes(&calls), ops(&[("Lambda:RemovePermission", 1)]));
    assert!(
        function_exists(&bed.aws, &name).await,
        "a referenced function stays"
    );
    assert!(lambda_statements(&bed.aws, &name).await.is_empty());
    bed.lambda()
        .delete_function()
        .function_name(&name)
        .send()
        .await
        .expect("delete");
}
