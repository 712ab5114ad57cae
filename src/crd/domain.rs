//! `spec.domain`: a private custom domain name for the API (`https://orders.internal.example.com`),
//! served only through the object's VPC endpoints.

use kube::KubeSchema;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// DNS names: labels of letters, digits and hyphens, at least two labels, lowercase (API Gateway
/// keeps domain names in lowercase); no wildcard (a private domain name names one host).
pub const DOMAIN_NAME_PATTERN: &str =
    r"^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]([a-z0-9-]{0,61}[a-z0-9])?$";
/// ACM certificate ARNs.
pub const CERTIFICATE_ARN_PATTERN: &str =
    r"^arn:aws[a-z-]*:acm:[a-z]{2}(-[a-z]+)+-[0-9]{1,2}:[0-9]{12}:certificate/[A-Za-z0-9-]{1,64}$";
/// Route 53 hosted zone IDs (with or without the `/hostedzone/` prefix AWS sometimes returns):
/// uppercase letters and digits, at most 32 (AWS's start with `Z`, which the API does not
/// promise).
pub const HOSTED_ZONE_ID_PATTERN: &str = r"^(/hostedzone/)?[A-Z0-9]{1,32}$";
/// API Gateway base paths: path segments of unreserved characters, no leading or trailing slash.
pub const BASE_PATH_PATTERN: &str = r"^[A-Za-z0-9._~-]+(/[A-Za-z0-9._~-]+)*$";

/// A private custom domain name (API Gateway `DomainName` with a PRIVATE endpoint
/// configuration): the operator creates it with the certificate and a resource policy that
/// admits only the object's VPC endpoints, associates each of those endpoints with it, maps it to
/// the stage, and (with `hostedZoneId`) publishes the name in the VPC's private hosted zone.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct DomainSpec {
    /// The host name, e.g. `orders.internal.example.com` (lowercase). Renaming it makes the new
    /// name serve before the old one is removed.
    #[schemars(length(min = 3, max = 253), pattern(DOMAIN_NAME_PATTERN))]
    pub name: String,

    /// An ACM certificate of the object's region, `ISSUED`, that covers `name` (as its domain or
    /// a subject alternative name; `*.internal.example.com` covers one label). A certificate that
    /// is not issued yet is waited for.
    #[schemars(pattern(CERTIFICATE_ARN_PATTERN))]
    pub certificate_arn: String,

    /// The path under the domain that serves the stage, e.g. `orders` for
    /// `https://api.internal.example.com/orders/...`. Default: none (the whole domain).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 1024), pattern(BASE_PATH_PATTERN))]
    pub base_path: Option<String>,

    /// A Route 53 **private** hosted zone (associated with the endpoint's VPC) in which the
    /// operator publishes `name` as an alias of the VPC endpoint (removed on delete). Without it,
    /// publishing the name is up to you.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(pattern(HOSTED_ZONE_ID_PATTERN))]
    pub hosted_zone_id: Option<String>,

    /// The TLS version and ciphers the domain name accepts.
    #[serde(default)]
    pub security_policy: SecurityPolicy,
}

/// API Gateway's security policies for private custom domain names.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum SecurityPolicy {
    /// TLS 1.2 and later.
    #[default]
    #[serde(rename = "TLS_1_2")]
    Tls12,
}

impl SecurityPolicy {
    /// The name API Gateway uses.
    pub fn as_str(self) -> &'static str {
        match self {
            SecurityPolicy::Tls12 => "TLS_1_2",
        }
    }
}

impl DomainSpec {
    /// The base path as API Gateway writes it: `(none)` when there is none.
    pub fn base_path_or_none(&self) -> &str {
        self.base_path.as_deref().unwrap_or(NO_BASE_PATH)
    }
}

/// API Gateway's name for the empty base path.
pub const NO_BASE_PATH: &str = "(none)";

/// What the operator made for `spec.domain` (status).
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub struct DomainStatus {
    /// The domain name.
    pub name: String,
    /// API Gateway's ID of the private domain name (private names are addressed by name and ID).
    pub domain_name_id: String,
    /// The domain name's ARN.
    pub domain_name_arn: String,
    /// The hosted zone the operator published the name in (`spec.domain.hostedZoneId` when it
    /// did), so that the record goes with the name even once the spec no longer says where.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hosted_zone_id: Option<String>,
    /// The access associations of the object's endpoints with the domain name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub access_associations: Vec<AccessAssociation>,
}

/// One endpoint's access association with the domain name.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
#[serde(rename_all = "camelCase")]
pub struct AccessAssociation {
    pub vpc_endpoint_id: String,
    pub arn: String,
}
