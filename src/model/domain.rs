//! A private custom domain name and what hangs off it, as AWS reports them.

use std::collections::BTreeMap;

/// A private custom domain name (API Gateway `DomainName`, addressed by name and ID).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LiveDomain {
    pub name: String,
    pub id: String,
    pub arn: String,
    pub certificate_arn: Option<String>,
    pub security_policy: Option<String>,
    /// The resource policy as API Gateway returns it (escaped or not).
    pub policy: Option<String>,
    /// `PRIVATE` for the operator's.
    pub endpoint_types: Vec<String>,
    pub tags: BTreeMap<String, String>,
}

/// A domain name access association: one VPC endpoint may reach one private domain name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct LiveAssociation {
    pub arn: String,
    pub domain_arn: String,
    /// The VPC endpoint ID.
    pub source: String,
}

/// A base path mapping of a domain name to a REST API's stage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveMapping {
    /// `(none)` for the empty base path.
    pub base_path: String,
    pub rest_api_id: String,
    pub stage: String,
}

/// An ACM certificate's status and names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveCertificate {
    pub arn: String,
    /// `ISSUED`, `PENDING_VALIDATION`, `EXPIRED`, ...
    pub status: String,
    /// The domain name and the subject alternative names.
    pub names: Vec<String>,
}

/// A Route 53 hosted zone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveHostedZone {
    pub id: String,
    pub name: String,
    pub private: bool,
}

/// A DNS record the operator publishes for the domain name (a CNAME to the endpoint).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveRecord {
    pub name: String,
    pub target: String,
}
