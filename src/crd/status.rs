//! The status of a `PrivateApi`: written by the operator only (the reconciler, and the prober for
//! the `Reachable` condition under its own field manager).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::KubeSchema;
use serde::{Deserialize, Serialize};

/// A resource the operator took over rather than created.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub struct AdoptedResource {
    /// `RestApi`, `Function`, `VpcEndpoint` or `SecurityGroup`.
    pub kind: String,
    /// The resource's ID (function: its name).
    pub id: String,
    /// Where it came from: `spec.adopt` (an existing resource named in the spec) or
    /// `previousObject` (made for an earlier object of the same cluster name, namespace and name,
    /// e.g. before a cluster rebuild).
    pub source: String,
    /// The UID of that earlier object, for `previousObject`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_uid: Option<String>,
    /// When the operator took it over (RFC 3339).
    pub time: String,
}

/// A resource an earlier spec used (a function, a REST API, a VPC endpoint) that the stage may
/// still serve: released (deleted if the operator owns it, else this object's permission or
/// association taken off it) once the stage serves a deployment that no longer needs it.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
#[serde(rename_all = "camelCase")]
pub struct RetiringResource {
    /// `Function` (its ARN), `RestApi` or `VpcEndpoint` (their IDs).
    pub kind: String,
    /// The resource's ID.
    pub id: String,
}

impl RetiringResource {
    pub const FUNCTION: &'static str = "Function";
    pub const REST_API: &'static str = "RestApi";
    pub const VPC_ENDPOINT: &'static str = "VpcEndpoint";
}

impl PrivateApiStatus {
    /// Whether `id` is what the stage may still serve: the resource of `kind` status names
    /// (`named`), or one kept in `retiring` until the next deployment.
    pub fn serving_until_now(&self, kind: &str, named: Option<&str>, id: &str) -> bool {
        named == Some(id) || self.retiring.iter().any(|r| r.kind == kind && r.id == id)
    }
}

/// What the operator observed and owns. Written by the operator only.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct PrivateApiStatus {
    /// The `metadata.generation` the conditions describe.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// The invoke URL that works from inside the VPC (private DNS name when the endpoint has private
    /// DNS, else the endpoint alias).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Every form of the invoke URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub urls: Option<InvokeUrls>,
    /// The `execute-api` VPC endpoint the API is reachable through.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vpc_endpoint_id: Option<String>,
    /// The operator-managed security group of the endpoint (`endpoint.create` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub security_group_id: Option<String>,
    /// The REST API.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rest_api_id: Option<String>,
    /// The backend function.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub function_arn: Option<String>,
    /// The deployment the stage serves.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deployment_id: Option<String>,
    /// The stage that serves the deployment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stage_name: Option<String>,
    /// The region of all of the above.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// `Ready`, `EndpointReady`, `ApiReady`, `BackendReady`, `Deployed`, and `DomainReady` with
    /// `spec.domain`. Reason `InvalidSpec`:
    /// the spec is wrong in itself, terminal until it changes; `ReferenceNotFound`: a reference
    /// does not exist (yet), retried with backoff (at most 2 min apart); `ReferenceNotReady`: it
    /// exists but cannot serve yet (a certificate pending validation), the same backoff;
    /// `AwsError`, `Throttled`:
    /// retried. With `spec.probe`, also `Reachable`: what the operator's own request to the URL
    /// got (`True`: the expected status, with its latency; `False`: a diagnosis such as
    /// `NameNotResolved`, `ConnectTimeout`, `Forbidden`, `BackendError`; `Unknown`: not probed
    /// while the object is not Ready). `Ready` does not depend on `Reachable`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = kube::core::ListMerge::Map(vec!["type".into()]))]
    pub conditions: Vec<Condition>,
    /// Resources of an earlier spec, kept until the stage serves a deployment that no longer
    /// uses them (make-before-break); empty when no switch is under way.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub retiring: Vec<RetiringResource>,
    /// The private custom domain name (`spec.domain`) and its endpoints' access associations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain: Option<super::DomainStatus>,
    /// Resources the operator took over instead of creating, most recent per kind.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = kube::core::ListMerge::Map(vec!["kind".into()]))]
    pub adopted: Vec<AdoptedResource>,
}

/// The invoke URL in each of the forms API Gateway accepts from inside the VPC.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct InvokeUrls {
    /// `https://<api-id>.execute-api.<region>.amazonaws.com/<stage>/`, when the endpoint has private
    /// DNS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub private_dns: Option<String>,
    /// `https://<api-id>-<vpce-id>.execute-api.<region>.amazonaws.com/<stage>/`, public DNS that
    /// resolves to the endpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint_alias: Option<String>,
    /// `https://<spec.domain.name>/<basePath>/`, with `spec.domain`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_domain: Option<String>,
    /// The endpoint's own DNS name; send the header `x-apigw-api-id: <api-id>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint_dns: Option<String>,
}
