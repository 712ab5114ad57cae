//! The `PrivateApi` CRD as a user meets it: `kubectl` against the test bed's real kube-apiserver.
//!
//! - a table of invalid manifests, each a small mutation of one valid base manifest, each rejected
//!   by `kubectl apply` with an error that names the offending field;
//! - immutability (CEL transition rules): `spec.region`, `spec.endpoint.create.vpcId`;
//! - valid manifests accepted, with the schema defaults filled in on the stored object;
//! - `kubectl explain`, the printer columns and the short name `papi`.
//!
//! No operator runs here: objects have no finalizer and are simply deleted at the end. Every test
//! works in its own namespace (`crd-validation-<pid>-<test>`); the test bed has no namespace
//! controller, so the namespaces are left in place (a fresh test bed is a fresh cluster).
//!
//! Run: `bash testbed/with-testbed.sh cargo test --test checks crd_validation:: -- --nocapture`.

use crate::support::{kubectl_raw, poll, repo_path};

use std::process::Output;
use std::sync::OnceLock;
use std::time::Duration;

use serde_json::{Value, json};

const CRD_NAME: &str = "customresourcedefinition/privateapis.privateapi.io";

// ---------------------------------------------------------------------------------------------
// kubectl helpers
// ---------------------------------------------------------------------------------------------

/// Runs `kubectl ARGS` (the test bed's pinned kubectl, first on `PATH`) with a request timeout,
/// with `stdin` on its standard input when given.
fn kubectl(args: &[&str], stdin: Option<&str>) -> Output {
    let args = [args, &["--request-timeout=60s"]].concat();
    kubectl_raw(&args, stdin)
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// `kubectl ARGS` that must succeed; returns its stdout.
fn kubectl_ok(args: &[&str], stdin: Option<&str>) -> String {
    let out = kubectl(args, stdin);
    assert!(
        out.status.success(),
        "kubectl {args:?} failed ({}):\nstdout: {}\nstderr: {}",
        out.status,
        text(&out.stdout),
        text(&out.stderr)
    );
    text(&out.stdout)
}

/// Retries `kubectl ARGS` until it succeeds, for at most `timeout`; returns its stdout.
fn kubectl_retry(args: &[&str], timeout: Duration) -> String {
    poll::until(
        &format!("kubectl {args:?} to succeed"),
        timeout,
        Duration::from_millis(500),
        || {
            let out = kubectl(args, None);
            if out.status.success() {
                Ok(text(&out.stdout))
            } else {
                Err(text(&out.stderr))
            }
        },
    )
}

/// `kubectl apply -f -` of `manifest` (YAML) in namespace `ns`.
fn apply(ns: &str, manifest: &str) -> Output {
    kubectl(&["apply", "-n", ns, "-f", "-"], Some(manifest))
}

fn to_yaml(v: &Value) -> String {
    serde_yaml::to_string(v).expect("a JSON value serializes as YAML")
}

fn get_json(ns: &str, name: &str) -> Value {
    let out = kubectl_ok(&["get", "privateapi", name, "-n", ns, "-o", "json"], None);
    serde_json::from_str(&out).expect("kubectl get -o json prints JSON")
}

// ---------------------------------------------------------------------------------------------
// setup: the CRD (once per test binary) and a namespace per test
// ---------------------------------------------------------------------------------------------

/// Applies the committed CRD and waits until the API serves it. Other test binaries may apply it
/// at the same time: server-side apply with `--force-conflicts` makes that harmless.
fn crd_ready() {
    static READY: OnceLock<()> = OnceLock::new();
    READY.get_or_init(|| {
        if std::env::var_os("PAPI_TESTBED").is_none() {
            panic!("run through `make test` (testbed/with-testbed.sh)");
        }
        assert!(
            std::env::var_os("KUBECONFIG").is_some(),
            "KUBECONFIG is not set: run through `make test` (testbed/with-testbed.sh)"
        );
        kubectl_ok(
            &[
                "apply",
                "--server-side",
                "--force-conflicts",
                "--field-manager=crd-validation-test",
                "-f",
                &repo_path("crds/privateapi.yaml").to_string_lossy(),
            ],
            None,
        );
        kubectl_ok(
            &[
                "wait",
                "--for=condition=established",
                "--timeout=60s",
                CRD_NAME,
            ],
            None,
        );
        // Discovery lags a second or two behind `Established`.
        kubectl_retry(&["get", "privateapis", "-A"], Duration::from_secs(30));
    });
}

/// A fresh namespace for one test; `Drop` deletes the PrivateApis in it (also when the test
/// fails). The namespace itself stays: the test bed has no namespace controller to finish its
/// deletion.
struct Namespace(String);

impl Namespace {
    fn new(test: &str) -> Self {
        crd_ready();
        let name = format!("crd-validation-{}-{test}", std::process::id());
        kubectl_ok(&["create", "namespace", &name], None);
        Namespace(name)
    }
}

impl Drop for Namespace {
    fn drop(&mut self) {
        let out = kubectl(
            &[
                "delete",
                "privateapis",
                "--all",
                "-n",
                &self.0,
                "--wait=true",
                "--timeout=30s",
            ],
            None,
        );
        if !out.status.success() {
            eprintln!(
                "cleanup of namespace {} failed: {}",
                self.0,
                text(&out.stderr)
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// manifests
// ---------------------------------------------------------------------------------------------

const VPC: &str = "vpc-0123456789abcdef0";
const SUBNET_A: &str = "subnet-0aaaaaaaaaaaaaaaa";
const SUBNET_B: &str = "subnet-0bbbbbbbbbbbbbbbb";
const SG_CLIENT: &str = "sg-0cccccccccccccccc";
const SG_EXTRA: &str = "sg-0dddddddddddddddd";
const VPCE: &str = "vpce-0123456789abcdef0";
const VPCE_OTHER: &str = "vpce-0fedcba9876543210";
const FUNCTION_ARN: &str = "arn:aws:lambda:us-east-1:123456789012:function:existing";
const ROLE_ARN: &str = "arn:aws:iam::123456789012:role/papi-backend";

/// The valid manifest every invalid case mutates: nearly every field set, builtin backend,
/// operator-created endpoint.
const BASE: &str = r#"
apiVersion: privateapi.io/v1alpha1
kind: PrivateApi
metadata:
  name: base
spec:
  region: us-east-1
  endpoint:
    create:
      vpcId: vpc-0123456789abcdef0
      subnetIds: [subnet-0aaaaaaaaaaaaaaaa, subnet-0bbbbbbbbbbbbbbbb]
      privateDns: true
      allowedCidrs: [10.0.0.0/16]
      allowedSecurityGroupIds: [sg-0cccccccccccccccc]
      securityGroupIds: [sg-0dddddddddddddddd]
  additionalVpcEndpointIds: [vpce-0fedcba9876543210]
  backend:
    builtin:
      message: hello
    executionRoleArn: arn:aws:iam::123456789012:role/papi-backend
    architecture: arm64
    memoryMiB: 256
    timeoutSeconds: 10
    environment:
      GREETING: hi
  stageName: prod
  description: the base manifest of the validation table
  tags:
    team: a
  deletionPolicy: Delete
"#;

fn base() -> Value {
    serde_yaml::from_str(BASE).expect("BASE is YAML")
}

/// One edit of a manifest, at a JSON pointer (`/spec/backend/memoryMiB`).
#[derive(Clone)]
enum Edit {
    /// Sets the value, creating the last key if needed (the parent must exist).
    Set(&'static str, Value),
    /// Removes the key.
    Remove(&'static str),
}

use Edit::{Remove, Set};

/// Splits a JSON pointer into its parent pointer and its last key, unescaped (`~1` is `/`).
fn split_pointer(ptr: &str) -> (&str, String) {
    let (parent, key) = ptr.rsplit_once('/').expect("a JSON pointer");
    (parent, key.replace("~1", "/").replace("~0", "~"))
}

fn edited(mut v: Value, edits: &[Edit]) -> Value {
    for edit in edits {
        match edit {
            Set(ptr, value) => {
                let (parent_ptr, key) = split_pointer(ptr);
                let parent = v
                    .pointer_mut(parent_ptr)
                    .unwrap_or_else(|| panic!("no {parent_ptr} in the manifest"));
                match parent {
                    Value::Object(map) => {
                        map.insert(key, value.clone());
                    }
                    Value::Array(items) => {
                        let i: usize = key.parse().expect("an array index");
                        items[i] = value.clone();
                    }
                    other => panic!("{parent_ptr} is not an object or array: {other}"),
                }
            }
            Remove(ptr) => {
                let (parent_ptr, key) = split_pointer(ptr);
                let map = v
                    .pointer_mut(parent_ptr)
                    .and_then(Value::as_object_mut)
                    .unwrap_or_else(|| panic!("no object {parent_ptr} in the manifest"));
                assert!(map.remove(&key).is_some(), "no {ptr} to remove");
            }
        }
    }
    v
}

/// `n` distinct, valid subnet IDs.
fn subnets(n: usize) -> Value {
    json!(
        (0..n)
            .map(|i| format!("subnet-0{i:016x}"))
            .collect::<Vec<_>>()
    )
}

/// A backend that uses an existing function instead of the base's builtin one (without the
/// fields that only apply to builtin/code).
fn function_arn_backend() -> Vec<Edit> {
    vec![
        Remove("/spec/backend/builtin"),
        Remove("/spec/backend/executionRoleArn"),
        Remove("/spec/backend/architecture"),
        Remove("/spec/backend/environment"),
        Set("/spec/backend/functionArn", json!(FUNCTION_ARN)),
    ]
}

fn code_backend() -> Value {
    json!({
        "s3Bucket": "my-bucket",
        "s3Key": "path/to/code.zip",
        "runtime": "provided.al2023",
        "handler": "bootstrap",
    })
}

fn with(mut edits: Vec<Edit>, more: &[Edit]) -> Vec<Edit> {
    edits.extend_from_slice(more);
    edits
}

// ---------------------------------------------------------------------------------------------
// invalid manifests
// ---------------------------------------------------------------------------------------------

/// (name, edits of the base manifest, what kubectl's error must contain: the field path, or the
/// CEL message naming the field).
fn invalid_cases() -> Vec<(&'static str, Vec<Edit>, &'static str)> {
    let vpc_id = "/spec/endpoint/create/vpcId";
    let subnet_ids = "/spec/endpoint/create/subnetIds";
    vec![
        // --- EC2 ID patterns
        (
            "vpcId with the wrong prefix",
            vec![Set(vpc_id, json!("vpn-0123456789abcdef0"))],
            "spec.endpoint.create.vpcId: Invalid value",
        ),
        (
            "vpcId with 10 hex digits",
            vec![Set(vpc_id, json!("vpc-0123456789"))],
            "spec.endpoint.create.vpcId: Invalid value",
        ),
        (
            "vpcId in uppercase",
            vec![Set(vpc_id, json!("vpc-0123456789ABCDEF0"))],
            "spec.endpoint.create.vpcId: Invalid value",
        ),
        (
            "subnet ID with the wrong prefix",
            vec![Set(
                "/spec/endpoint/create/subnetIds/0",
                json!("subnets-0aaaaaaaaaaaaaaaa"),
            )],
            "spec.endpoint.create.subnetIds[0]: Invalid value",
        ),
        (
            "subnet ID with 16 hex digits",
            vec![Set(
                "/spec/endpoint/create/subnetIds/1",
                json!("subnet-0bbbbbbbbbbbbbbb"),
            )],
            "spec.endpoint.create.subnetIds[1]: Invalid value",
        ),
        (
            "subnet ID in uppercase",
            vec![Set(
                "/spec/endpoint/create/subnetIds/0",
                json!("subnet-0AAAAAAAAAAAAAAAA"),
            )],
            "spec.endpoint.create.subnetIds[0]: Invalid value",
        ),
        (
            "subnet ID with a non-hex digit",
            vec![Set(
                "/spec/endpoint/create/subnetIds/0",
                json!("subnet-0aaaaaaaaaaaaaaag"),
            )],
            "spec.endpoint.create.subnetIds[0]: Invalid value",
        ),
        (
            "zero subnets",
            vec![Set(subnet_ids, json!([]))],
            "spec.endpoint.create.subnetIds: Invalid value",
        ),
        (
            "17 subnets",
            vec![Set(subnet_ids, subnets(17))],
            "spec.endpoint.create.subnetIds: Too many",
        ),
        (
            "duplicate subnets",
            vec![Set(subnet_ids, json!([SUBNET_A, SUBNET_B, SUBNET_A]))],
            "spec.endpoint.create.subnetIds[2]: Duplicate value",
        ),
        (
            "no subnetIds",
            vec![Remove(subnet_ids)],
            "spec.endpoint.create.subnetIds: Required value",
        ),
        (
            "allowedSecurityGroupIds entry with the wrong prefix",
            vec![Set(
                "/spec/endpoint/create/allowedSecurityGroupIds/0",
                json!("sgr-0cccccccccccccccc"),
            )],
            "spec.endpoint.create.allowedSecurityGroupIds[0]: Invalid value",
        ),
        (
            "securityGroupIds entry in uppercase",
            vec![Set(
                "/spec/endpoint/create/securityGroupIds/0",
                json!("sg-0DDDDDDDDDDDDDDDD"),
            )],
            "spec.endpoint.create.securityGroupIds[0]: Invalid value",
        ),
        (
            "5 securityGroupIds",
            vec![Set(
                "/spec/endpoint/create/securityGroupIds",
                json!([
                    "sg-01111111111111111",
                    "sg-02222222222222222",
                    "sg-03333333333333333",
                    "sg-04444444444444444",
                    "sg-05555555555555555",
                ]),
            )],
            "spec.endpoint.create.securityGroupIds: Too many",
        ),
        (
            "endpoint.id with 7 hex digits",
            vec![
                Remove("/spec/endpoint/create"),
                Set("/spec/endpoint/id", json!("vpce-0123456")),
            ],
            "spec.endpoint.id: Invalid value",
        ),
        (
            "endpoint.id with the wrong prefix",
            vec![
                Remove("/spec/endpoint/create"),
                Set("/spec/endpoint/id", json!(VPC)),
            ],
            "spec.endpoint.id: Invalid value",
        ),
        (
            "additionalVpcEndpointIds entry in uppercase",
            vec![Set(
                "/spec/additionalVpcEndpointIds/0",
                json!("vpce-0FEDCBA9876543210"),
            )],
            "spec.additionalVpcEndpointIds[0]: Invalid value",
        ),
        (
            "duplicate additionalVpcEndpointIds",
            vec![Set(
                "/spec/additionalVpcEndpointIds",
                json!([VPCE_OTHER, VPCE_OTHER]),
            )],
            "spec.additionalVpcEndpointIds[1]: Duplicate value",
        ),
        // --- exactly one of endpoint.id / endpoint.create
        (
            "both endpoint.id and endpoint.create",
            vec![Set("/spec/endpoint/id", json!(VPCE))],
            "spec.endpoint: Invalid value: \"object\": exactly one of spec.endpoint.id or spec.endpoint.create must be set",
        ),
        (
            "neither endpoint.id nor endpoint.create",
            vec![Remove("/spec/endpoint/create")],
            "spec.endpoint: Invalid value: \"object\": exactly one of spec.endpoint.id or spec.endpoint.create must be set",
        ),
        (
            "no endpoint at all",
            vec![Remove("/spec/endpoint")],
            "spec.endpoint: Required value",
        ),
        // --- exactly one of backend.builtin / functionArn / code
        (
            "builtin and functionArn",
            with(
                function_arn_backend(),
                &[Set("/spec/backend/builtin", json!({}))],
            ),
            "spec.backend: Invalid value: \"object\": exactly one of spec.backend.builtin, spec.backend.functionArn or spec.backend.code must be set",
        ),
        (
            "builtin and code",
            vec![Set("/spec/backend/code", code_backend())],
            "spec.backend: Invalid value: \"object\": exactly one of spec.backend.builtin, spec.backend.functionArn or spec.backend.code must be set",
        ),
        (
            "functionArn and code",
            with(
                function_arn_backend(),
                &[Set("/spec/backend/code", code_backend())],
            ),
            "spec.backend: Invalid value: \"object\": exactly one of spec.backend.builtin, spec.backend.functionArn or spec.backend.code must be set",
        ),
        (
            "no builtin, functionArn or code",
            vec![Remove("/spec/backend/builtin")],
            "spec.backend: Invalid value: \"object\": exactly one of spec.backend.builtin, spec.backend.functionArn or spec.backend.code must be set",
        ),
        // --- ARNs
        (
            "functionArn with a short account ID",
            with(
                function_arn_backend(),
                &[Set(
                    "/spec/backend/functionArn",
                    json!("arn:aws:lambda:us-east-1:1234:function:existing"),
                )],
            ),
            "spec.backend.functionArn: Invalid value",
        ),
        (
            "functionArn that is a role ARN",
            with(
                function_arn_backend(),
                &[Set("/spec/backend/functionArn", json!(ROLE_ARN))],
            ),
            "spec.backend.functionArn: Invalid value",
        ),
        (
            "executionRoleArn of a user",
            vec![Set(
                "/spec/backend/executionRoleArn",
                json!("arn:aws:iam::123456789012:user/bob"),
            )],
            "spec.backend.executionRoleArn: Invalid value",
        ),
        (
            "executionRoleArn that is a bare role name",
            vec![Set("/spec/backend/executionRoleArn", json!("papi-backend"))],
            "spec.backend.executionRoleArn: Invalid value",
        ),
        // --- enums and ranges
        (
            "architecture amd64",
            vec![Set("/spec/backend/architecture", json!("amd64"))],
            "spec.backend.architecture: Unsupported value: \"amd64\"",
        ),
        (
            "memoryMiB 64",
            vec![Set("/spec/backend/memoryMiB", json!(64))],
            "spec.backend.memoryMiB: Invalid value: 64",
        ),
        (
            "memoryMiB 20000",
            vec![Set("/spec/backend/memoryMiB", json!(20000))],
            "spec.backend.memoryMiB: Invalid value: 20000",
        ),
        (
            "memoryMiB as a string",
            vec![Set("/spec/backend/memoryMiB", json!("256"))],
            "spec.backend.memoryMiB: Invalid value: \"string\"",
        ),
        (
            "timeoutSeconds 0",
            vec![Set("/spec/backend/timeoutSeconds", json!(0))],
            "spec.backend.timeoutSeconds: Invalid value: 0",
        ),
        (
            "timeoutSeconds 30",
            vec![Set("/spec/backend/timeoutSeconds", json!(30))],
            "spec.backend.timeoutSeconds: Invalid value: 30",
        ),
        (
            "runtime python2.7",
            vec![
                Remove("/spec/backend/builtin"),
                Set(
                    "/spec/backend/code",
                    json!({"s3Bucket": "my-bucket", "s3Key": "code.zip", "runtime": "python2.7", "handler": "app.handler"}),
                ),
            ],
            "spec.backend.code.runtime: Unsupported value: \"python2.7\"",
        ),
        (
            "code bucket with uppercase and underscore",
            vec![
                Remove("/spec/backend/builtin"),
                Set(
                    "/spec/backend/code",
                    json!({"s3Bucket": "My_Bucket", "s3Key": "code.zip", "runtime": "provided.al2023", "handler": "bootstrap"}),
                ),
            ],
            "spec.backend.code.s3Bucket: Invalid value",
        ),
        (
            "code without handler",
            vec![
                Remove("/spec/backend/builtin"),
                Set(
                    "/spec/backend/code",
                    json!({"s3Bucket": "my-bucket", "s3Key": "code.zip", "runtime": "provided.al2023"}),
                ),
            ],
            "spec.backend.code.handler: Required value",
        ),
        (
            "deletionPolicy Orphan",
            vec![Set("/spec/deletionPolicy", json!("Orphan"))],
            "spec.deletionPolicy: Unsupported value: \"Orphan\"",
        ),
        // --- stage, region, description
        (
            "stageName with a dash",
            vec![Set("/spec/stageName", json!("prod-1"))],
            "spec.stageName: Invalid value",
        ),
        (
            "empty stageName",
            vec![Set("/spec/stageName", json!(""))],
            "spec.stageName: Invalid value",
        ),
        (
            "region in uppercase",
            vec![Set("/spec/region", json!("US-EAST-1"))],
            "spec.region: Invalid value",
        ),
        (
            "region without dashes",
            vec![Set("/spec/region", json!("useast1"))],
            "spec.region: Invalid value",
        ),
        (
            "description longer than 1024",
            vec![Set("/spec/description", json!("d".repeat(1025)))],
            "spec.description: Too long",
        ),
        // --- tags
        (
            "tag key aws:foo",
            vec![Set("/spec/tags/aws:foo", json!("x"))],
            "spec.tags: Invalid value: \"object\": tag keys must be 1-128 characters and not start with 'aws:'",
        ),
        (
            "tag key privateapi.io/x",
            vec![Set("/spec/tags/privateapi.io~1x", json!("x"))],
            "spec.tags: Invalid value: \"object\": tag keys must be 1-128 characters and not start with 'aws:' or 'privateapi.io/'",
        ),
        // --- CIDRs
        (
            "allowedCidrs with host bits set",
            vec![Set(
                "/spec/endpoint/create/allowedCidrs",
                json!(["10.0.0.5/16"]),
            )],
            "spec.endpoint.create.allowedCidrs: Invalid value: \"array\": every entry of allowedCidrs must be a CIDR block",
        ),
        (
            "allowedCidrs entry that is not a CIDR",
            vec![Set(
                "/spec/endpoint/create/allowedCidrs",
                json!(["192.168.0.0/24", "not-a-cidr"]),
            )],
            "spec.endpoint.create.allowedCidrs: Invalid value: \"array\": every entry of allowedCidrs must be a CIDR block",
        ),
        // --- environment
        (
            "environment key AWS_REGION",
            vec![Set(
                "/spec/backend/environment/AWS_REGION",
                json!("eu-west-1"),
            )],
            "spec.backend.environment: Invalid value: \"object\": environment variable names must match",
        ),
        (
            "environment key starting with a digit",
            vec![Set("/spec/backend/environment/1ST", json!("x"))],
            "spec.backend.environment: Invalid value: \"object\": environment variable names must match",
        ),
        (
            "environment with functionArn",
            with(
                function_arn_backend(),
                &[Set("/spec/backend/environment", json!({"GREETING": "hi"}))],
            ),
            "spec.backend.environment: Invalid value: \"object\": spec.backend.environment applies to builtin or code backends, not to functionArn",
        ),
        (
            "executionRoleArn with functionArn",
            with(
                function_arn_backend(),
                &[Set("/spec/backend/executionRoleArn", json!(ROLE_ARN))],
            ),
            "spec.backend.executionRoleArn: Invalid value: \"object\": spec.backend.executionRoleArn applies to builtin or code backends, not to functionArn",
        ),
        (
            "architecture with functionArn",
            with(
                function_arn_backend(),
                &[Set("/spec/backend/architecture", json!("x86_64"))],
            ),
            "spec.backend.architecture: Invalid value: \"object\": spec.backend.architecture applies to builtin or code backends, not to functionArn",
        ),
        (
            "MESSAGE in environment with builtin",
            vec![Set("/spec/backend/environment/MESSAGE", json!("hi"))],
            "spec.backend.environment: Invalid value: \"object\": spec.backend.environment.MESSAGE is set by the builtin backend",
        ),
        // --- spec.adopt
        (
            "adopt without any field",
            vec![Set("/spec/adopt", json!({}))],
            "spec.adopt must name at least one of restApiId, functionName, vpcEndpointId",
        ),
        (
            "adopt.restApiId with upper case",
            vec![Set("/spec/adopt", json!({"restApiId": "ABC123defg"}))],
            "spec.adopt.restApiId: Invalid value",
        ),
        (
            "adopt.functionName with a dot",
            vec![Set("/spec/adopt", json!({"functionName": "my.fn"}))],
            "spec.adopt.functionName: Invalid value",
        ),
        (
            "adopt.vpcEndpointId not a vpce ID",
            vec![Set(
                "/spec/adopt",
                json!({"vpcEndpointId": "vpc-0123456789abcdef0"}),
            )],
            "spec.adopt.vpcEndpointId: Invalid value",
        ),
        (
            "adopt.functionName with backend.functionArn",
            with(
                function_arn_backend(),
                &[Set("/spec/adopt", json!({"functionName": "existing-fn"}))],
            ),
            "spec.adopt.functionName needs spec.backend.builtin or spec.backend.code",
        ),
        (
            "adopt.vpcEndpointId with endpoint.id",
            vec![
                Remove("/spec/endpoint/create"),
                Set("/spec/endpoint/id", json!(VPCE)),
                Set("/spec/adopt", json!({"vpcEndpointId": VPCE})),
            ],
            "spec.adopt.vpcEndpointId needs spec.endpoint.create",
        ),
        // --- unknown fields: kubectl 1.34's default --validate=strict asks the server for strict
        // field validation, which refuses the object naming the field.
        (
            "unknown field (subnetId, a typo of subnetIds)",
            vec![Set("/spec/endpoint/create/subnetId", json!(SUBNET_A))],
            "strict decoding error: unknown field \"spec.endpoint.create.subnetId\"",
        ),
        (
            "unknown top-level spec field",
            vec![Set("/spec/vpcEndpointId", json!(VPCE))],
            "strict decoding error: unknown field \"spec.vpcEndpointId\"",
        ),
    ]
}

#[test]
fn invalid_manifests_are_rejected_naming_the_field() {
    let ns = Namespace::new("invalid");
    let cases = invalid_cases();
    assert!(cases.len() >= 20, "the table has {} cases", cases.len());

    // Every case must fail because of its own mutation: the base itself is valid.
    let out = kubectl(
        &["apply", "--dry-run=server", "-n", &ns.0, "-f", "-"],
        Some(&to_yaml(&base())),
    );
    assert!(
        out.status.success(),
        "the base manifest is rejected:\n{}",
        text(&out.stderr)
    );

    let mut failures = Vec::new();
    for (i, (name, edits, expected)) in cases.iter().enumerate() {
        let manifest = edited(
            base(),
            &[Set("/metadata/name", json!(format!("invalid-{i}")))],
        );
        let manifest = to_yaml(&edited(manifest, edits));
        let out = apply(&ns.0, &manifest);
        let stderr = text(&out.stderr);
        println!("[{i}] {name}: {}", stderr.trim());
        if out.status.success() {
            failures.push(format!(
                "case {i} ({name}) was accepted; manifest:\n{manifest}\nstdout: {}",
                text(&out.stdout)
            ));
        } else if !stderr.contains(expected) {
            failures.push(format!(
                "case {i} ({name}) was rejected, but kubectl's error does not contain {expected:?}:\n{stderr}\nmanifest:\n{manifest}"
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} invalid cases failed:\n\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n\n")
    );
}

// ---------------------------------------------------------------------------------------------
// immutability
// ---------------------------------------------------------------------------------------------

fn assert_rejected(ns: &str, what: &str, manifest: &Value, expected: &str) {
    let out = apply(ns, &to_yaml(manifest));
    let stderr = text(&out.stderr);
    println!("{what}: {}", stderr.trim());
    assert!(
        !out.status.success(),
        "{what}: accepted, but must be rejected; stdout: {}",
        text(&out.stdout)
    );
    assert!(
        stderr.contains(expected),
        "{what}: rejected, but kubectl's error does not contain {expected:?}:\n{stderr}"
    );
}

fn assert_applied(ns: &str, what: &str, manifest: &Value) {
    let out = apply(ns, &to_yaml(manifest));
    assert!(
        out.status.success(),
        "{what}: rejected, but must be accepted:\n{}\nmanifest:\n{}",
        text(&out.stderr),
        to_yaml(manifest)
    );
}

#[test]
fn region_and_vpc_id_are_immutable() {
    let ns = Namespace::new("immutable");
    let region_msg = "spec.region: Invalid value: \"object\": spec.region is immutable";
    let vpc_msg = "spec.endpoint.create.vpcId: Invalid value: \"string\": spec.endpoint.create.vpcId is immutable";

    // With a region.
    let with_region = edited(base(), &[Set("/metadata/name", json!("with-region"))]);
    assert_applied(&ns.0, "create with-region", &with_region);
    assert_rejected(
        &ns.0,
        "region changed",
        &edited(
            with_region.clone(),
            &[Set("/spec/region", json!("eu-west-1"))],
        ),
        region_msg,
    );
    assert_rejected(
        &ns.0,
        "region removed",
        &edited(with_region.clone(), &[Remove("/spec/region")]),
        region_msg,
    );
    assert_rejected(
        &ns.0,
        "vpcId changed",
        &edited(
            with_region.clone(),
            &[Set(
                "/spec/endpoint/create/vpcId",
                json!("vpc-0fedcba9876543210"),
            )],
        ),
        vpc_msg,
    );

    // Without a region: adding one is a change too.
    let without_region = edited(
        base(),
        &[
            Set("/metadata/name", json!("without-region")),
            Remove("/spec/region"),
        ],
    );
    assert_applied(&ns.0, "create without-region", &without_region);
    assert_rejected(
        &ns.0,
        "region added",
        &edited(without_region, &[Set("/spec/region", json!("us-east-1"))]),
        region_msg,
    );

    // Mutable fields change freely, next to an unchanged region and vpcId.
    let changed = edited(
        with_region,
        &[
            Set("/spec/backend/memoryMiB", json!(512)),
            Set("/spec/endpoint/create/subnetIds", json!([SUBNET_B])),
            Set("/spec/stageName", json!("v2")),
        ],
    );
    assert_applied(
        &ns.0,
        "memoryMiB, subnetIds and stageName changed",
        &changed,
    );
    let stored = get_json(&ns.0, "with-region");
    assert_eq!(stored["spec"]["backend"]["memoryMiB"], json!(512));
    assert_eq!(
        stored["spec"]["endpoint"]["create"]["subnetIds"],
        json!([SUBNET_B])
    );
    assert_eq!(stored["spec"]["stageName"], json!("v2"));
    assert_eq!(stored["spec"]["region"], json!("us-east-1"));
    assert_eq!(stored["metadata"]["generation"], json!(2));
}

// ---------------------------------------------------------------------------------------------
// valid manifests and defaults
// ---------------------------------------------------------------------------------------------

/// (name, manifest, expected values in the stored object by JSON pointer, pointers that must be
/// absent).
type ValidCase = (
    &'static str,
    &'static str,
    Vec<(&'static str, Value)>,
    Vec<&'static str>,
);

fn valid_cases() -> Vec<ValidCase> {
    vec![
        (
            "adopt-all",
            r#"
apiVersion: privateapi.io/v1alpha1
kind: PrivateApi
metadata:
  name: adopt-all
spec:
  endpoint:
    create:
      vpcId: vpc-0123456789abcdef0
      subnetIds: [subnet-0aaaaaaaaaaaaaaaa]
  backend:
    builtin: {}
  adopt:
    restApiId: abc123defg
    functionName: my-existing-fn
    vpcEndpointId: vpce-0123456789abcdef0
"#,
            vec![
                ("/spec/adopt/restApiId", json!("abc123defg")),
                ("/spec/adopt/functionName", json!("my-existing-fn")),
                ("/spec/adopt/vpcEndpointId", json!(VPCE)),
            ],
            vec!["/status"],
        ),
        (
            "builtin-minimal",
            r#"
apiVersion: privateapi.io/v1alpha1
kind: PrivateApi
metadata:
  name: builtin-minimal
spec:
  endpoint:
    create:
      vpcId: vpc-0123456789abcdef0
      subnetIds: [subnet-0aaaaaaaaaaaaaaaa]
  backend:
    builtin: {}
"#,
            vec![
                ("/spec/stageName", json!("prod")),
                ("/spec/deletionPolicy", json!("Delete")),
                ("/spec/backend/memoryMiB", json!(256)),
                ("/spec/backend/timeoutSeconds", json!(10)),
                (
                    "/spec/backend/builtin/message",
                    json!("Private API executed!!"),
                ),
                ("/spec/endpoint/create/privateDns", json!(true)),
                ("/spec/endpoint/create/vpcId", json!(VPC)),
                ("/spec/endpoint/create/subnetIds", json!([SUBNET_A])),
            ],
            vec![
                "/spec/region",
                "/spec/backend/architecture",
                "/spec/backend/functionArn",
                "/spec/backend/code",
                "/spec/endpoint/id",
                "/spec/tags",
                "/status",
            ],
        ),
        (
            "function-arn",
            r#"
apiVersion: privateapi.io/v1alpha1
kind: PrivateApi
metadata:
  name: function-arn
spec:
  endpoint:
    id: vpce-0123456789abcdef0
  backend:
    functionArn: arn:aws:lambda:us-east-1:123456789012:function:existing:live
"#,
            vec![
                ("/spec/stageName", json!("prod")),
                ("/spec/deletionPolicy", json!("Delete")),
                ("/spec/backend/memoryMiB", json!(256)),
                ("/spec/backend/timeoutSeconds", json!(10)),
                (
                    "/spec/backend/functionArn",
                    json!(format!("{FUNCTION_ARN}:live")),
                ),
                ("/spec/endpoint/id", json!(VPCE)),
            ],
            vec!["/spec/backend/builtin", "/spec/endpoint/create"],
        ),
        (
            "code-s3",
            r#"
apiVersion: privateapi.io/v1alpha1
kind: PrivateApi
metadata:
  name: code-s3
spec:
  region: eu-central-2
  endpoint:
    create:
      vpcId: vpc-01234567
      subnetIds: [subnet-0aaaaaaa, subnet-0bbbbbbb]
      privateDns: false
      allowedCidrs: [10.1.0.0/16, "fd00:10::/64"]
  backend:
    code:
      s3Bucket: my-code.bucket-1
      s3Key: path/to/code.zip
      s3ObjectVersion: "3"
      runtime: python3.13
      handler: app.handler
    executionRoleArn: arn:aws:iam::123456789012:role/service/papi-backend
    architecture: x86_64
    memoryMiB: 10240
    timeoutSeconds: 29
    environment:
      LOG_LEVEL: debug
"#,
            vec![
                ("/spec/stageName", json!("prod")),
                ("/spec/deletionPolicy", json!("Delete")),
                ("/spec/backend/memoryMiB", json!(10240)),
                ("/spec/backend/timeoutSeconds", json!(29)),
                ("/spec/backend/code/runtime", json!("python3.13")),
                ("/spec/backend/code/s3ObjectVersion", json!("3")),
                ("/spec/backend/architecture", json!("x86_64")),
                ("/spec/endpoint/create/privateDns", json!(false)),
                ("/spec/region", json!("eu-central-2")),
            ],
            vec!["/spec/backend/builtin", "/spec/backend/functionArn"],
        ),
        (
            "shared-endpoint",
            r#"
apiVersion: privateapi.io/v1alpha1
kind: PrivateApi
metadata:
  name: shared-endpoint
spec:
  endpoint:
    id: vpce-0123456789abcdef0
  additionalVpcEndpointIds: [vpce-0fedcba9876543210, vpce-0abcdef1]
  backend:
    builtin:
      message: hello from the shared endpoint
    memoryMiB: 128
    timeoutSeconds: 1
"#,
            vec![
                ("/spec/stageName", json!("prod")),
                ("/spec/deletionPolicy", json!("Delete")),
                ("/spec/backend/memoryMiB", json!(128)),
                ("/spec/backend/timeoutSeconds", json!(1)),
                (
                    "/spec/backend/builtin/message",
                    json!("hello from the shared endpoint"),
                ),
                (
                    "/spec/additionalVpcEndpointIds",
                    json!([VPCE_OTHER, "vpce-0abcdef1"]),
                ),
            ],
            vec!["/spec/endpoint/create"],
        ),
        (
            "seed",
            r#"
apiVersion: privateapi.io/v1alpha1
kind: PrivateApi
metadata:
  name: seed
spec:
  region: us-east-1
  endpoint:
    create:
      vpcId: vpc-0123456789abcdef0
      subnetIds: [subnet-0aaaaaaaaaaaaaaaa, subnet-0bbbbbbbbbbbbbbbb]
      allowedSecurityGroupIds: [sg-0cccccccccccccccc]
      securityGroupIds: [sg-0dddddddddddddddd]
  backend:
    builtin: {}
    architecture: arm64
    executionRoleArn: arn:aws:iam::123456789012:role/papi-backend
  stageName: Prod_2
  description: The reference CDK stack as one PrivateApi
  tags:
    project: private-api
    cost-center: "1234"
  deletionPolicy: Retain
"#,
            vec![
                ("/spec/stageName", json!("Prod_2")),
                ("/spec/deletionPolicy", json!("Retain")),
                ("/spec/backend/memoryMiB", json!(256)),
                ("/spec/backend/timeoutSeconds", json!(10)),
                (
                    "/spec/backend/builtin/message",
                    json!("Private API executed!!"),
                ),
                ("/spec/endpoint/create/privateDns", json!(true)),
                (
                    "/spec/endpoint/create/allowedSecurityGroupIds",
                    json!([SG_CLIENT]),
                ),
                ("/spec/endpoint/create/securityGroupIds", json!([SG_EXTRA])),
                (
                    "/spec/tags",
                    json!({"project": "private-api", "cost-center": "1234"}),
                ),
            ],
            vec!["/spec/endpoint/create/allowedCidrs"],
        ),
        (
            "max-subnets",
            r#"
apiVersion: privateapi.io/v1alpha1
kind: PrivateApi
metadata:
  name: max-subnets
spec:
  endpoint:
    create:
      vpcId: vpc-0123456789abcdef0
      subnetIds:
      - subnet-00000000000000000
      - subnet-00000000000000001
      - subnet-00000000000000002
      - subnet-00000000000000003
      - subnet-00000000000000004
      - subnet-00000000000000005
      - subnet-00000000000000006
      - subnet-00000000000000007
      - subnet-00000000000000008
      - subnet-00000000000000009
      - subnet-0000000000000000a
      - subnet-0000000000000000b
      - subnet-0000000000000000c
      - subnet-0000000000000000d
      - subnet-0000000000000000e
      - subnet-0000000000000000f
      securityGroupIds:
      - sg-01111111111111111
      - sg-02222222222222222
      - sg-03333333333333333
      - sg-04444444444444444
  backend:
    functionArn: arn:aws:lambda:eu-west-1:123456789012:function:fn_1-a:$LATEST
"#,
            vec![
                ("/spec/endpoint/create/subnetIds", subnets(16)),
                ("/spec/endpoint/create/privateDns", json!(true)),
                ("/spec/stageName", json!("prod")),
                ("/spec/deletionPolicy", json!("Delete")),
            ],
            vec![],
        ),
    ]
}

#[test]
fn valid_manifests_are_accepted_with_defaults() {
    let ns = Namespace::new("valid");
    let cases = valid_cases();
    assert!(cases.len() >= 5);
    let mut failures = Vec::new();
    for (name, manifest, expected, absent) in &cases {
        let out = apply(&ns.0, manifest);
        if !out.status.success() {
            failures.push(format!(
                "valid case {name} was rejected:\n{}",
                text(&out.stderr)
            ));
            continue;
        }
        let stored = get_json(&ns.0, name);
        println!("{name}: stored spec {}", stored["spec"]);
        for (ptr, want) in expected {
            let got = stored.pointer(ptr);
            if got != Some(want) {
                failures.push(format!(
                    "valid case {name}: stored {ptr} is {got:?}, expected {want}; stored spec: {}",
                    stored["spec"]
                ));
            }
        }
        for ptr in absent {
            if let Some(got) = stored.pointer(ptr) {
                failures.push(format!(
                    "valid case {name}: stored {ptr} is {got}, expected it absent"
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} problems with the valid cases:\n\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}

// ---------------------------------------------------------------------------------------------
// explain, printer columns, short name
// ---------------------------------------------------------------------------------------------

#[test]
fn explain_printer_columns_and_short_name() {
    let ns = Namespace::new("columns");

    // `kubectl explain` reads the published OpenAPI v3 schema, which may lag behind discovery.
    let explain = kubectl_retry(
        &["explain", "privateapi.spec.endpoint.create"],
        Duration::from_secs(30),
    );
    println!("{explain}");
    for want in [
        "privateapi.io",
        "subnetIds",
        "vpcId",
        "allowedCidrs",
        "privateDns",
        "securityGroupIds",
        "The VPC of the endpoint. Immutable.",
        "managed security group",
    ] {
        assert!(
            explain.contains(want),
            "kubectl explain privateapi.spec.endpoint.create does not contain {want:?}:\n{explain}"
        );
    }
    let explain_backend = kubectl_ok(&["explain", "papi.spec.backend.timeoutSeconds"], None);
    assert!(
        explain_backend.contains("at most 29"),
        "kubectl explain papi.spec.backend.timeoutSeconds:\n{explain_backend}"
    );

    let manifest = edited(base(), &[Set("/metadata/name", json!("columns"))]);
    assert_applied(&ns.0, "create columns", &manifest);

    let table = kubectl_ok(&["get", "papi", "-n", &ns.0], None);
    println!("{table}");
    let mut lines = table.lines();
    let header: Vec<&str> = lines
        .next()
        .expect("a header line")
        .split_whitespace()
        .collect();
    assert_eq!(
        header,
        ["NAME", "READY", "URL", "REACHABLE", "ENDPOINT", "AGE"],
        "kubectl get papi header:\n{table}"
    );
    let row: Vec<&str> = lines
        .next()
        .expect("a row for the object")
        .split_whitespace()
        .collect();
    assert_eq!(row[0], "columns", "kubectl get papi:\n{table}");

    // The short name works for single objects too, and in the plural resource's full name.
    let name = kubectl_ok(&["get", "papi/columns", "-n", &ns.0, "-o", "name"], None);
    assert_eq!(name.trim(), "privateapi.privateapi.io/columns");
    let name = kubectl_ok(
        &[
            "get",
            "privateapis.privateapi.io",
            "columns",
            "-n",
            &ns.0,
            "-o",
            "jsonpath={.metadata.name}",
        ],
        None,
    );
    assert_eq!(name, "columns");
}
