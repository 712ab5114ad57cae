//! The `PrivateApi` v1alpha1 API (group `privateapi.io`), as `docs/privateapi-v1alpha1.md` describes it.
//!
//! The CRD in `crds/privateapi.yaml` is generated from these types (`cargo run --bin crdgen`), so
//! every doc comment here is what `kubectl explain` prints and every `pattern`, range and CEL rule is
//! what the API server enforces on `kubectl apply`.

use std::collections::BTreeMap;

use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

mod domain;
mod probe;
mod status;

pub use domain::{AccessAssociation, DomainSpec, DomainStatus, NO_BASE_PATH, SecurityPolicy};
pub use probe::ProbeSpec;
pub use status::{AdoptedResource, InvokeUrls, PrivateApiStatus, RetiringResource};

/// AWS region names: `us-east-1`, `eu-central-2`, `us-gov-west-1`, `ap-southeast-5`.
pub const REGION_PATTERN: &str = r"^[a-z]{2}(-[a-z]+)+-[0-9]{1,2}$";
/// EC2 IDs carry 8 (legacy) or 17 lowercase hex digits.
pub const VPC_ID_PATTERN: &str = r"^vpc-([0-9a-f]{8}|[0-9a-f]{17})$";
pub const SUBNET_ID_PATTERN: &str = r"^subnet-([0-9a-f]{8}|[0-9a-f]{17})$";
pub const SECURITY_GROUP_ID_PATTERN: &str = r"^sg-([0-9a-f]{8}|[0-9a-f]{17})$";
pub const VPC_ENDPOINT_ID_PATTERN: &str = r"^vpce-([0-9a-f]{8}|[0-9a-f]{17})$";
/// A Lambda function ARN, optionally qualified by a version or alias.
pub const FUNCTION_ARN_PATTERN: &str = r"^arn:aws[a-z-]*:lambda:[a-z]{2}(-[a-z]+)+-[0-9]{1,2}:[0-9]{12}:function:[A-Za-z0-9_-]{1,64}(:(\$LATEST|[A-Za-z0-9_-]{1,128}))?$";
/// An IAM role ARN (paths allowed).
pub const ROLE_ARN_PATTERN: &str =
    r"^arn:aws[a-z-]*:iam::[0-9]{12}:role/[A-Za-z0-9+=,.@_/-]{1,512}$";
/// S3 bucket names (general purpose buckets).
pub const S3_BUCKET_PATTERN: &str = r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$";
/// API Gateway stage names.
pub const STAGE_NAME_PATTERN: &str = r"^[A-Za-z0-9_]{1,128}$";
/// Lambda handler strings.
pub const HANDLER_PATTERN: &str = r"^[^\s]{1,128}$";
/// REST API IDs: 10 lowercase letters and digits.
pub const REST_API_ID_PATTERN: &str = r"^[a-z0-9]{10}$";
/// Lambda function names (not ARNs).
pub const FUNCTION_NAME_PATTERN: &str = r"^[A-Za-z0-9_-]{1,64}$";

/// The default answer of the built-in backend (the reference stack's message).
pub const DEFAULT_BUILTIN_MESSAGE: &str = "Private API executed!!";
pub const DEFAULT_STAGE_NAME: &str = "prod";
pub const DEFAULT_MEMORY_MIB: i32 = 256;
pub const DEFAULT_TIMEOUT_SECONDS: i32 = 10;

/// A private API Gateway REST API reachable only through an `execute-api` interface VPC endpoint,
/// with a Lambda backend. The operator creates and keeps in sync the endpoint (or uses an existing
/// one), the REST API and its resource policy, the function, its invoke permission, the proxy
/// integration, a deployment and the stage.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "privateapi.io",
    version = "v1alpha1",
    kind = "PrivateApi",
    plural = "privateapis",
    shortname = "papi",
    doc = "A private API Gateway REST API reachable only through an execute-api interface VPC endpoint, with a Lambda backend, kept in sync with AWS by privateapi-operator.",
    namespaced,
    status = "PrivateApiStatus",
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"URL","type":"string","jsonPath":".status.url"}"#,
    printcolumn = r#"{"name":"Reachable","type":"string","jsonPath":".status.conditions[?(@.type==\"Reachable\")].status"}"#,
    printcolumn = r#"{"name":"Endpoint","type":"string","jsonPath":".status.vpcEndpointId"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[x_kube(validation = kube::core::Rule::new(
    "has(self.region) == has(oldSelf.region) && (!has(self.region) || self.region == oldSelf.region)"
).message("spec.region is immutable: create a new PrivateApi to move to another region").field_path(".region"))]
#[x_kube(validation = kube::core::Rule::new(
    "!has(self.adopt) || !has(self.adopt.functionName) || has(self.backend.builtin) || has(self.backend.code)"
).message("spec.adopt.functionName needs spec.backend.builtin or spec.backend.code (the adopted function is then managed); to use a function without managing it, set spec.backend.functionArn instead").field_path(".adopt.functionName"))]
#[x_kube(validation = kube::core::Rule::new(
    "!has(self.adopt) || !has(self.adopt.vpcEndpointId) || has(self.endpoint.create)"
).message("spec.adopt.vpcEndpointId needs spec.endpoint.create (the adopted endpoint is then managed); to use an endpoint without managing it, set spec.endpoint.id instead").field_path(".adopt.vpcEndpointId"))]
#[serde(rename_all = "camelCase")]
pub struct PrivateApiSpec {
    /// The AWS region of every resource of this API, e.g. `us-east-1`. Default: the operator's
    /// region. Immutable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(pattern(REGION_PATTERN))]
    pub region: Option<String>,

    /// The `execute-api` interface VPC endpoint through which the API is reachable: exactly one of
    /// `id` (reuse an existing endpoint) or `create` (the operator creates and owns one).
    pub endpoint: EndpointSpec,

    /// Other `execute-api` VPC endpoints that may also invoke the API. They are added to the REST
    /// API's endpoint configuration and to the `aws:SourceVpce` condition of its resource policy.
    /// The operator never modifies them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(inner(pattern(VPC_ENDPOINT_ID_PATTERN)), length(max = 15))]
    #[x_kube(merge_strategy = kube::core::ListMerge::Set)]
    pub additional_vpc_endpoint_ids: Vec<String>,

    /// The Lambda function that serves every request (`ANY /` and `ANY /{proxy+}`, proxy
    /// integration): exactly one of `builtin`, `functionArn` or `code`.
    pub backend: BackendSpec,

    /// The API Gateway stage that serves the API; its name is the first path segment of the URL.
    /// Renaming it moves the deployment to the new stage and removes the old one.
    #[serde(default = "default_stage_name")]
    #[schemars(pattern(STAGE_NAME_PATTERN))]
    pub stage_name: String,

    /// Description copied to the REST API.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 1024))]
    pub description: Option<String>,

    /// Tags added to every AWS resource the operator creates, besides its own `privateapi.io/*`
    /// ownership tags. Keys must not start with `aws:` or `privateapi.io/`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend("maxProperties" = 40))]
    #[x_kube(validation = kube::core::Rule::new(
        "self.all(k, !k.startsWith('aws:') && !k.startsWith('privateapi.io/') && size(k) >= 1 && size(k) <= 128 && size(self[k]) <= 256)"
    ).message("tag keys must be 1-128 characters and not start with 'aws:' or 'privateapi.io/'; values at most 256 characters"))]
    pub tags: BTreeMap<String, String>,

    /// What happens in AWS when this object is deleted: `Delete` removes everything the operator
    /// created (never a referenced endpoint or function); `Retain` leaves it all in place.
    #[serde(default)]
    pub deletion_policy: DeletionPolicy,

    /// Take over resources that already exist (e.g. a stack built with CDK) instead of creating
    /// new ones. The operator checks that each exists and is something this spec can manage, tags
    /// it as its own, then keeps it in line with the spec like the resources it creates, changing
    /// it only where the spec differs; `deletionPolicy` applies to it from then on. Without this
    /// block the operator never takes over a resource it did not create.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub adopt: Option<AdoptSpec>,

    /// Have the operator send a real HTTPS request to `status.url` from where it runs, and report
    /// the answer in the `Reachable` condition (off when absent). `Ready` does not depend on it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probe: Option<ProbeSpec>,

    /// A private custom domain name for the API, e.g. `orders.internal.example.com`, served only
    /// through the object's VPC endpoints (API Gateway private custom domain names).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain: Option<DomainSpec>,
}

fn default_stage_name() -> String {
    DEFAULT_STAGE_NAME.to_string()
}

/// Exactly one of `id` or `create`.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[x_kube(validation = kube::core::Rule::new("has(self.id) != has(self.create)")
    .message("exactly one of spec.endpoint.id or spec.endpoint.create must be set"))]
#[serde(rename_all = "camelCase")]
pub struct EndpointSpec {
    /// An existing `execute-api` interface endpoint to use. The operator checks that it exists and
    /// is available, and never modifies or deletes it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(pattern(VPC_ENDPOINT_ID_PATTERN))]
    pub id: Option<String>,

    /// Have the operator create and own an interface endpoint for
    /// `com.amazonaws.<region>.execute-api`, with a managed security group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub create: Option<CreateEndpointSpec>,
}

/// An interface VPC endpoint for `execute-api` created and owned by the operator.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct CreateEndpointSpec {
    /// The VPC of the endpoint. Immutable.
    #[schemars(pattern(VPC_ID_PATTERN))]
    #[x_kube(validation = kube::core::Rule::new("self == oldSelf").message("spec.endpoint.create.vpcId is immutable"))]
    pub vpc_id: String,

    /// Subnets (of that VPC, at most one per Availability Zone) that get an endpoint network
    /// interface.
    #[schemars(inner(pattern(SUBNET_ID_PATTERN)), length(min = 1, max = 16))]
    #[x_kube(merge_strategy = kube::core::ListMerge::Set)]
    pub subnet_ids: Vec<String>,

    /// Whether the endpoint gets private DNS, so `https://<api-id>.execute-api.<region>.amazonaws.com`
    /// resolves to it inside the VPC. Only one `execute-api` endpoint with private DNS may exist in
    /// a VPC.
    #[serde(default = "default_true")]
    pub private_dns: bool,

    /// CIDR blocks admitted on HTTPS (tcp/443) by the operator-managed security group.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(inner(length(max = 43)), length(max = 50))]
    #[x_kube(merge_strategy = kube::core::ListMerge::Set)]
    #[x_kube(validation = kube::core::Rule::new("self.all(c, isCIDR(c) && cidr(c) == cidr(c).masked())")
        .message("every entry of allowedCidrs must be a CIDR block with no host bits set, e.g. 10.0.0.0/16"))]
    pub allowed_cidrs: Vec<String>,

    /// Security groups whose members are admitted on HTTPS (tcp/443) by the operator-managed
    /// security group (the reference stack's client instance group).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(inner(pattern(SECURITY_GROUP_ID_PATTERN)), length(max = 50))]
    #[x_kube(merge_strategy = kube::core::ListMerge::Set)]
    pub allowed_security_group_ids: Vec<String>,

    /// Extra, user-managed security groups attached to the endpoint as they are (at most 4: an
    /// endpoint takes 5 groups and the operator's own is one).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(inner(pattern(SECURITY_GROUP_ID_PATTERN)), length(max = 4))]
    #[x_kube(merge_strategy = kube::core::ListMerge::Set)]
    pub security_group_ids: Vec<String>,
}

fn default_true() -> bool {
    true
}

/// Exactly one of `builtin`, `functionArn` or `code`; the other fields tune the function the
/// operator creates (`builtin`, `code`).
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[x_kube(validation = kube::core::Rule::new(
    "(has(self.builtin) ? 1 : 0) + (has(self.functionArn) ? 1 : 0) + (has(self.code) ? 1 : 0) == 1"
).message("exactly one of spec.backend.builtin, spec.backend.functionArn or spec.backend.code must be set"))]
// One rule per field, each with its own fieldPath, so the error names the field that is set.
#[x_kube(validation = kube::core::Rule::new(
    "!has(self.functionArn) || !has(self.executionRoleArn)"
).message("spec.backend.executionRoleArn applies to builtin or code backends, not to functionArn (the operator never changes an existing function)").field_path(".executionRoleArn"))]
#[x_kube(validation = kube::core::Rule::new(
    "!has(self.functionArn) || !has(self.environment)"
).message("spec.backend.environment applies to builtin or code backends, not to functionArn (the operator never changes an existing function)").field_path(".environment"))]
#[x_kube(validation = kube::core::Rule::new(
    "!has(self.functionArn) || !has(self.architecture)"
).message("spec.backend.architecture applies to builtin or code backends, not to functionArn (the operator never changes an existing function)").field_path(".architecture"))]
#[x_kube(validation = kube::core::Rule::new(
    "!has(self.builtin) || !has(self.environment) || !('MESSAGE' in self.environment)"
).message("spec.backend.environment.MESSAGE is set by the builtin backend from spec.backend.builtin.message").field_path(".environment"))]
#[serde(rename_all = "camelCase")]
pub struct BackendSpec {
    /// The operator deploys its built-in handler, which answers every request with
    /// `{"message": <message>}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub builtin: Option<BuiltinBackend>,

    /// An existing function to call. The operator only adds its invoke permission for this API
    /// (and removes it on deletion); it never changes or deletes the function.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(pattern(FUNCTION_ARN_PATTERN))]
    pub function_arn: Option<String>,

    /// The user's own deployment package in S3; the operator creates and owns the function.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<CodeBackend>,

    /// The function's execution role (`builtin`, `code`). Default: the operator's
    /// `--default-execution-role-arn`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(pattern(ROLE_ARN_PATTERN))]
    pub execution_role_arn: Option<String>,

    /// Instruction set of the function (`builtin`, `code`). Default `arm64`; for `builtin`, the
    /// architecture the operator's handler package was built for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub architecture: Option<Architecture>,

    /// Memory of the function in MiB.
    #[serde(rename = "memoryMiB", default = "default_memory_mib")]
    #[schemars(range(min = 128, max = 10240))]
    pub memory_mib: i32,

    /// Function timeout in seconds, at most 29: API Gateway's integration timeout.
    #[serde(default = "default_timeout_seconds")]
    #[schemars(range(min = 1, max = 29))]
    pub timeout_seconds: i32,

    /// Environment variables of the function (`builtin`, `code`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("maxProperties" = 64))]
    #[x_kube(validation = kube::core::Rule::new(
        "self.all(k, k.matches('^[A-Za-z][A-Za-z0-9_]*$') && !k.startsWith('AWS_'))"
    ).message("environment variable names must match [A-Za-z][A-Za-z0-9_]* and not start with AWS_ (reserved by Lambda)"))]
    pub environment: Option<BTreeMap<String, String>>,
}

fn default_memory_mib() -> i32 {
    DEFAULT_MEMORY_MIB
}
fn default_timeout_seconds() -> i32 {
    DEFAULT_TIMEOUT_SECONDS
}

/// The operator's built-in handler (from `handler/`).
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct BuiltinBackend {
    /// What the handler answers, as `{"message": <message>}`.
    #[serde(default = "default_builtin_message")]
    #[schemars(length(max = 4096))]
    pub message: String,
}

impl Default for BuiltinBackend {
    fn default() -> Self {
        Self {
            message: default_builtin_message(),
        }
    }
}

fn default_builtin_message() -> String {
    DEFAULT_BUILTIN_MESSAGE.to_string()
}

/// A deployment package in S3.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct CodeBackend {
    /// The bucket, in the same region as the function.
    #[schemars(pattern(S3_BUCKET_PATTERN))]
    pub s3_bucket: String,
    /// The key of the .zip package.
    #[schemars(length(min = 1, max = 1024))]
    pub s3_key: String,
    /// A version of the object, for versioned buckets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 1024))]
    pub s3_object_version: Option<String>,
    /// The Lambda runtime.
    pub runtime: Runtime,
    /// The handler the runtime calls, e.g. `bootstrap` or `index.handler`.
    #[schemars(pattern(HANDLER_PATTERN))]
    pub handler: String,
}

/// Current Lambda runtimes (deprecated ones can no longer be created).
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Runtime {
    #[serde(rename = "provided.al2023")]
    ProvidedAl2023,
    #[serde(rename = "provided.al2")]
    ProvidedAl2,
    #[serde(rename = "nodejs22.x")]
    Nodejs22,
    #[serde(rename = "nodejs24.x")]
    Nodejs24,
    #[serde(rename = "python3.10")]
    Python310,
    #[serde(rename = "python3.11")]
    Python311,
    #[serde(rename = "python3.12")]
    Python312,
    #[serde(rename = "python3.13")]
    Python313,
    #[serde(rename = "python3.14")]
    Python314,
    #[serde(rename = "java8.al2")]
    Java8Al2,
    #[serde(rename = "java11")]
    Java11,
    #[serde(rename = "java17")]
    Java17,
    #[serde(rename = "java21")]
    Java21,
    #[serde(rename = "java25")]
    Java25,
    #[serde(rename = "dotnet8")]
    Dotnet8,
    #[serde(rename = "dotnet10")]
    Dotnet10,
    #[serde(rename = "ruby3.3")]
    Ruby33,
    #[serde(rename = "ruby3.4")]
    Ruby34,
}

impl Runtime {
    /// The name Lambda uses.
    pub fn as_str(self) -> &'static str {
        match self {
            Runtime::ProvidedAl2023 => "provided.al2023",
            Runtime::ProvidedAl2 => "provided.al2",
            Runtime::Nodejs22 => "nodejs22.x",
            Runtime::Nodejs24 => "nodejs24.x",
            Runtime::Python310 => "python3.10",
            Runtime::Python311 => "python3.11",
            Runtime::Python312 => "python3.12",
            Runtime::Python313 => "python3.13",
            Runtime::Python314 => "python3.14",
            Runtime::Java8Al2 => "java8.al2",
            Runtime::Java11 => "java11",
            Runtime::Java17 => "java17",
            Runtime::Java21 => "java21",
            Runtime::Java25 => "java25",
            Runtime::Dotnet8 => "dotnet8",
            Runtime::Dotnet10 => "dotnet10",
            Runtime::Ruby33 => "ruby3.3",
            Runtime::Ruby34 => "ruby3.4",
        }
    }
}

/// The function's instruction set.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Architecture {
    #[serde(rename = "arm64")]
    Arm64,
    #[serde(rename = "x86_64")]
    X86_64,
}

impl Architecture {
    /// The name Lambda uses.
    pub fn as_str(self) -> &'static str {
        match self {
            Architecture::Arm64 => "arm64",
            Architecture::X86_64 => "x86_64",
        }
    }
}

impl std::str::FromStr for Architecture {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "arm64" | "aarch64" => Ok(Architecture::Arm64),
            "x86_64" | "amd64" => Ok(Architecture::X86_64),
            other => Err(format!("unknown architecture {other:?} (arm64 or x86_64)")),
        }
    }
}

/// What happens in AWS when the object is deleted.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum DeletionPolicy {
    /// Delete every AWS resource the operator created for this object.
    #[default]
    Delete,
    /// Leave every AWS resource in place (its ownership tags stay).
    Retain,
}

/// Existing resources to take over (see `spec.adopt`). At least one field.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[x_kube(validation = kube::core::Rule::new("has(self.restApiId) || has(self.functionName) || has(self.vpcEndpointId)")
    .message("spec.adopt must name at least one of restApiId, functionName, vpcEndpointId"))]
#[serde(rename_all = "camelCase")]
pub struct AdoptSpec {
    /// An existing PRIVATE REST API of the object's region, e.g. `abc123defg`. Its stage keeps
    /// serving its current deployment until a change requires a new one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(pattern(REST_API_ID_PATTERN))]
    pub rest_api_id: Option<String>,
    /// The name of an existing Lambda function (zip package) of the object's region. Unlike
    /// `backend.functionArn`, it becomes operator-managed: its code and configuration follow
    /// `backend.builtin` or `backend.code`, and `deletionPolicy: Delete` deletes it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(pattern(FUNCTION_NAME_PATTERN))]
    pub function_name: Option<String>,
    /// An existing `execute-api` interface endpoint in `endpoint.create.vpcId`. It becomes
    /// operator-managed: its subnets, security groups and private DNS follow `endpoint.create`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(pattern(VPC_ENDPOINT_ID_PATTERN))]
    pub vpc_endpoint_id: Option<String>,
}
