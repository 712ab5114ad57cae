//! The AWS parts of a `PrivateApi`. Each module has the same shape:
//!
//! - **observe** the live state (by the ID last recorded in status, else by ownership tags or a
//!   deterministic name — never create before looking);
//! - **diff** it against the spec (a pure function, unit-tested without AWS);
//! - **apply** the smallest change, and report what it did ([`Change`]) and the part's state
//!   ([`PartState`]) for the conditions.
//!
//! The reconciler only orders the parts and folds their outcomes into status.

pub mod api;
pub mod backend;
pub mod deployment;
pub mod domain;
pub mod endpoint;
pub mod routes;

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::aws::RegionClients;
use crate::conditions::PartState;
use crate::crd::{AdoptedResource, Architecture, PrivateApiSpec, PrivateApiStatus};
use crate::identity::Owner;
use crate::observed::Reader;

/// The built-in handler package for one architecture (see `handler/`).
#[derive(Debug, Clone)]
pub struct HandlerPackage {
    pub architecture: Architecture,
    /// The .zip bytes, read once at start-up.
    pub zip: Arc<Vec<u8>>,
    /// Base64 SHA-256 of the zip: what Lambda reports as `CodeSha256`.
    pub code_sha256: String,
}

impl HandlerPackage {
    pub fn from_zip(architecture: Architecture, zip: Vec<u8>) -> Self {
        use base64::Engine as _;
        use sha2::{Digest, Sha256};
        let code_sha256 = base64::engine::general_purpose::STANDARD.encode(Sha256::digest(&zip));
        Self {
            architecture,
            zip: Arc::new(zip),
            code_sha256,
        }
    }
}

/// Operator-wide settings the parts need.
#[derive(Debug, Clone, Default)]
pub struct Settings {
    /// The operator's cluster name (`privateapi.io/cluster` tag).
    pub cluster_name: String,
    /// Execution role of created functions when the spec names none.
    pub default_execution_role_arn: Option<String>,
    /// Built-in handler packages by architecture.
    pub handler_packages: BTreeMap<String, HandlerPackage>,
}

impl Settings {
    pub fn handler_package(&self, architecture: Architecture) -> Option<&HandlerPackage> {
        self.handler_packages.get(architecture.as_str())
    }

    /// The architecture a builtin backend gets when the spec names none: arm64 when a package for
    /// it exists (the reference stack's choice), else the one package there is.
    pub fn default_builtin_architecture(&self) -> Option<Architecture> {
        if self.handler_package(Architecture::Arm64).is_some() {
            return Some(Architecture::Arm64);
        }
        self.handler_packages
            .values()
            .next()
            .map(|p| p.architecture)
    }
}

/// Everything a part needs to observe and apply.
#[derive(Clone, Copy)]
pub struct PartContext<'a> {
    pub aws: &'a RegionClients,
    pub owner: &'a Owner,
    pub spec: &'a PrivateApiSpec,
    /// Status as last written: the IDs found before.
    pub status: &'a PrivateApiStatus,
    pub settings: &'a Settings,
    /// Every read of live state goes through it (from AWS, or from the shared listings in a
    /// periodic check); `aws` is for the writes.
    pub reader: Reader<'a>,
}

impl<'a> PartContext<'a> {
    /// Tags of every resource created for this object.
    pub fn tags(&self) -> BTreeMap<String, String> {
        self.owner.tags(&self.spec.tags)
    }
}

/// Something a part did in AWS, reported as a Kubernetes Event and a log line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// `Created`, `Updated`, `Deleted`, `Adopted`, `Deployed`.
    pub action: &'static str,
    /// What, e.g. `VPC endpoint vpce-0123`.
    pub resource: String,
    /// Why or what changed.
    pub detail: String,
    /// For `Adopted`: what goes into `status.adopted`.
    pub adopted: Option<AdoptedResource>,
}

/// The field of `spec.adopt` each kind of resource is named in.
pub const FIELD_ADOPT_REST_API: &str = "spec.adopt.restApiId";
pub const FIELD_ADOPT_FUNCTION: &str = "spec.adopt.functionName";
pub const FIELD_ADOPT_ENDPOINT: &str = "spec.adopt.vpcEndpointId";

/// Where an adopted resource came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AdoptedFrom {
    /// Named in `spec.adopt`.
    Spec,
    /// Made for an earlier object with the same cluster name, namespace and name (this UID).
    PreviousObject(String),
}

impl Change {
    /// `Adopted`, with the record that goes into `status.adopted`.
    pub fn adopted(kind: &str, id: &str, from: AdoptedFrom) -> Self {
        let (source, previous_uid, detail) = match from {
            AdoptedFrom::Spec => (
                "spec.adopt",
                None,
                "an existing resource named in spec.adopt, now tagged and managed by this object"
                    .to_string(),
            ),
            AdoptedFrom::PreviousObject(uid) => (
                "previousObject",
                Some(uid.clone()),
                format!("owned by this object's name in this cluster under an earlier UID ({uid})"),
            ),
        };
        let resource = match kind {
            "RestApi" => format!("REST API {id}"),
            "Function" => format!("Lambda function {id}"),
            "VpcEndpoint" => format!("VPC endpoint {id}"),
            "SecurityGroup" => format!("security group {id}"),
            other => format!("{other} {id}"),
        };
        Self {
            action: "Adopted",
            resource,
            detail,
            adopted: Some(AdoptedResource {
                kind: kind.to_string(),
                id: id.to_string(),
                source: source.to_string(),
                previous_uid,
                time: k8s_openapi::jiff::Timestamp::now().to_string(),
            }),
        }
    }
}

impl Change {
    pub fn new(
        action: &'static str,
        resource: impl Into<String>,
        detail: impl Into<String>,
    ) -> Self {
        Self {
            action,
            resource: resource.into(),
            detail: detail.into(),
            adopted: None,
        }
    }
}

/// The result of reconciling one part.
#[derive(Debug, Clone)]
pub struct Outcome<T> {
    /// What later parts and the status need (IDs).
    pub value: T,
    pub state: PartState,
    pub changes: Vec<Change>,
}

/// The result of cleaning a part up.
#[derive(Debug, Clone, Default)]
pub struct Cleanup {
    /// False while something is still going away (e.g. a security group whose endpoint network
    /// interfaces still exist): call again later.
    pub done: bool,
    pub changes: Vec<Change>,
}

/// The tags of `desired` that `live` lacks or holds with another value: what one tag call adds
/// (tags the resource has beyond them are left alone).
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
