//! Typed errors of the operator, and the classification of AWS errors that decides between "fix the
//! manifest" (`InvalidSpec`, no retry), "slow down" (`Throttled`) and "try again" (`AwsError`).

use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

/// What kind of failure AWS reported, as far as the operator's reaction is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AwsErrorKind {
    /// Request rate exceeded: back off.
    Throttled,
    /// The resource does not exist (or no longer exists).
    NotFound,
    /// AWS rejected the request's parameters.
    InvalidRequest,
    /// The resource is in a state that does not allow the call yet (in use, update in progress).
    Conflict,
    /// 5xx, timeouts, dropped connections: retry.
    Transient,
    /// Anything else (access denied, quota exceeded, ...).
    Other,
}

#[derive(thiserror::Error, Debug)]
pub enum Error {
    #[error("Kubernetes API error: {0}")]
    Kube(#[source] kube::Error),

    #[error("finalizer error: {0}")]
    Finalizer(#[source] Box<kube::runtime::finalizer::Error<Error>>),

    #[error("{service} {operation} failed: {code}: {message}")]
    Aws {
        service: &'static str,
        operation: &'static str,
        code: String,
        message: String,
        kind: AwsErrorKind,
    },

    /// The spec names something AWS does not accept: the user must change the manifest.
    #[error("{field}: {message}")]
    InvalidSpec { field: String, message: String },

    /// A well-formed reference (a function ARN, an endpoint, a subnet, a role, an S3 object)
    /// names something that does not exist, or not yet: GitOps tools apply objects in any order,
    /// so it is looked at again with a capped backoff, and nothing that works is changed meanwhile.
    #[error("{field}: {message}")]
    ReferenceNotFound { field: String, message: String },

    /// A reference that exists but cannot be used yet (a certificate pending validation): waited
    /// for on the same capped backoff, under its own reason.
    #[error("{field}: {message}")]
    ReferenceNotReady { field: String, message: String },

    /// The operator itself is misconfigured (missing flag, unreadable handler package).
    #[error("operator configuration: {0}")]
    Config(String),

    /// Deletion is waiting for AWS (e.g. an endpoint's network interfaces to go away).
    #[error("cleanup in progress: {0}")]
    CleanupInProgress(String),

    /// Deletion waits until others stop using a resource of this object (its VPC endpoint).
    #[error("deletion waits: {0}")]
    InUse(String),

    /// AWS answered something the operator cannot interpret.
    #[error("unexpected AWS response from {operation}: {message}")]
    Unexpected {
        operation: &'static str,
        message: String,
    },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Low-cardinality label for metrics and the condition reason.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Error::Kube(_) => "kube",
            Error::Finalizer(_) => "finalizer",
            Error::Aws { kind, .. } => match kind {
                AwsErrorKind::Throttled => "throttled",
                AwsErrorKind::NotFound => "aws_not_found",
                AwsErrorKind::InvalidRequest => "aws_invalid_request",
                AwsErrorKind::Conflict => "aws_conflict",
                AwsErrorKind::Transient => "aws_transient",
                AwsErrorKind::Other => "aws_other",
            },
            Error::InvalidSpec { .. } => "invalid_spec",
            Error::ReferenceNotFound { .. } => "reference_not_found",
            Error::ReferenceNotReady { .. } => "reference_not_ready",
            Error::Config(_) => "config",
            Error::CleanupInProgress(_) => "cleanup_in_progress",
            Error::InUse(_) => "in_use",
            Error::Unexpected { .. } => "unexpected",
        }
    }

    /// The condition reason this error sets.
    pub fn reason(&self) -> &'static str {
        match self {
            Error::InvalidSpec { .. } => "InvalidSpec",
            Error::ReferenceNotFound { .. } => "ReferenceNotFound",
            Error::ReferenceNotReady { .. } => "ReferenceNotReady",
            Error::Aws {
                kind: AwsErrorKind::Throttled,
                ..
            } => "Throttled",
            Error::Config(_) => "OperatorMisconfigured",
            Error::CleanupInProgress(_) | Error::InUse(_) => "Deleting",
            Error::Kube(_) | Error::Finalizer(_) => "KubernetesError",
            _ => "AwsError",
        }
    }

    pub fn aws_kind(&self) -> Option<AwsErrorKind> {
        match self {
            Error::Aws { kind, .. } => Some(*kind),
            _ => None,
        }
    }

    pub fn is_not_found(&self) -> bool {
        self.aws_kind() == Some(AwsErrorKind::NotFound)
    }

    /// Terminal until the spec changes (a reference not found yet is not: it is retried).
    pub fn is_invalid_spec(&self) -> bool {
        matches!(self, Error::InvalidSpec { .. })
    }

    pub fn is_reference_not_found(&self) -> bool {
        matches!(self, Error::ReferenceNotFound { .. })
    }

    /// A reference waited for: not found yet, or not usable yet.
    pub fn is_waited_reference(&self) -> bool {
        matches!(
            self,
            Error::ReferenceNotFound { .. } | Error::ReferenceNotReady { .. }
        )
    }

    /// `ReferenceNotFound` naming `field`.
    pub fn reference_not_found(field: impl Into<String>, message: impl Into<String>) -> Self {
        Error::ReferenceNotFound {
            field: field.into(),
            message: message.into(),
        }
    }

    /// The AWS error code, if any.
    pub fn aws_code(&self) -> Option<&str> {
        match self {
            Error::Aws { code, .. } => Some(code),
            _ => None,
        }
    }

    /// Turn an AWS rejection of something the user wrote into `InvalidSpec` naming the field.
    pub fn into_invalid_spec_if(self, kinds: &[AwsErrorKind], field: &str) -> Error {
        match self {
            Error::Aws {
                kind,
                code,
                message,
                ..
            } if kinds.contains(&kind) => Error::InvalidSpec {
                field: field.to_string(),
                message: format!("{code}: {message}"),
            },
            other => other,
        }
    }
}

/// Classify an AWS error code (and HTTP status) the way the operator reacts to it.
pub fn classify(code: &str, status: Option<u16>) -> AwsErrorKind {
    const THROTTLED: &[&str] = &[
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "TooManyRequestsException",
        "RequestLimitExceeded",
        "RequestThrottled",
        "RequestThrottledException",
        "SlowDown",
    ];
    const CONFLICT: &[&str] = &[
        "ConflictException",
        "ResourceConflictException",
        "DependencyViolation",
        "ResourceInUseException",
        "IncorrectState",
        "InvalidState",
        "IdempotentParameterMismatch",
    ];
    if THROTTLED.contains(&code) || status == Some(429) {
        return AwsErrorKind::Throttled;
    }
    if code == "NotFoundException"
        || code == "ResourceNotFoundException"
        || code.ends_with(".NotFound")
        || code.ends_with(".Malformed") && code.starts_with("InvalidVpcEndpointId")
        || code == "NoSuchEntity"
        // Route 53.
        || code == "NoSuchHostedZone"
    {
        return AwsErrorKind::NotFound;
    }
    if CONFLICT.contains(&code) {
        return AwsErrorKind::Conflict;
    }
    if code.starts_with("InvalidParameter")
        || code.starts_with("Invalid")
        || code == "BadRequestException"
        || code == "ValidationException"
        || code == "MissingParameter"
    {
        return AwsErrorKind::InvalidRequest;
    }
    match status {
        Some(s) if s >= 500 => AwsErrorKind::Transient,
        Some(404) => AwsErrorKind::NotFound,
        _ if code.contains("ServiceUnavailable") || code.contains("InternalError") => {
            AwsErrorKind::Transient
        }
        _ => AwsErrorKind::Other,
    }
}

/// Convert an SDK error into [`Error::Aws`], keeping the code, message and classification.
pub fn aws_error<E, R>(service: &'static str, operation: &'static str, err: SdkError<E, R>) -> Error
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug + HasStatus,
{
    match &err {
        SdkError::ServiceError(service_err) => {
            let status = service_err.raw().status_code();
            let inner = service_err.err();
            let code = inner.code().unwrap_or("Unknown").to_string();
            let message = inner
                .message()
                .map(str::to_string)
                .unwrap_or_else(|| inner.to_string());
            let kind = classify(&code, status);
            Error::Aws {
                service,
                operation,
                code,
                message,
                kind,
            }
        }
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            Error::Aws {
                service,
                operation,
                code: "Transient".to_string(),
                message: format!(
                    "{}",
                    aws_smithy_types::error::display::DisplayErrorContext(&err)
                ),
                kind: AwsErrorKind::Transient,
            }
        }
        _ => Error::Aws {
            service,
            operation,
            code: "Other".to_string(),
            message: format!(
                "{}",
                aws_smithy_types::error::display::DisplayErrorContext(&err)
            ),
            kind: AwsErrorKind::Other,
        },
    }
}

/// The HTTP status of a raw SDK response.
pub trait HasStatus {
    fn status_code(&self) -> Option<u16>;
}

impl HasStatus for aws_smithy_runtime_api::http::Response {
    fn status_code(&self) -> Option<u16> {
        Some(self.status().as_u16())
    }
}

/// `.aws("EC2", "DescribeVpcEndpoints")?` on an SDK result.
pub trait AwsResultExt<T> {
    fn aws(self, service: &'static str, operation: &'static str) -> Result<T>;
}

impl<T, E, R> AwsResultExt<T> for std::result::Result<T, SdkError<E, R>>
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug + HasStatus,
{
    fn aws(self, service: &'static str, operation: &'static str) -> Result<T> {
        self.map_err(|err| aws_error(service, operation, err))
    }
}

/// Treat NotFound as `None`: the usual shape of an observe call.
pub trait NotFoundExt<T> {
    fn or_not_found(self) -> Result<Option<T>>;
}

impl<T> NotFoundExt<T> for Result<T> {
    fn or_not_found(self) -> Result<Option<T>> {
        match self {
            Ok(value) => Ok(Some(value)),
            Err(err) if err.is_not_found() => Ok(None),
            Err(err) => Err(err),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn throttling_codes_of_each_service_are_throttled() {
        assert_eq!(
            classify("RequestLimitExceeded", Some(503)),
            AwsErrorKind::Throttled
        );
        assert_eq!(
            classify("TooManyRequestsException", Some(429)),
            AwsErrorKind::Throttled
        );
        assert_eq!(classify("Whatever", Some(429)), AwsErrorKind::Throttled);
    }

    #[test]
    fn not_found_codes_are_not_found() {
        assert_eq!(
            classify("NotFoundException", Some(404)),
            AwsErrorKind::NotFound
        );
        assert_eq!(
            classify("ResourceNotFoundException", Some(404)),
            AwsErrorKind::NotFound
        );
        assert_eq!(
            classify("InvalidVpcEndpointId.NotFound", Some(400)),
            AwsErrorKind::NotFound
        );
        assert_eq!(
            classify("InvalidGroup.NotFound", Some(400)),
            AwsErrorKind::NotFound
        );
    }

    #[test]
    fn other_codes() {
        assert_eq!(
            classify("DependencyViolation", Some(400)),
            AwsErrorKind::Conflict
        );
        assert_eq!(
            classify("InvalidParameterValue", Some(400)),
            AwsErrorKind::InvalidRequest
        );
        assert_eq!(
            classify("BadRequestException", Some(400)),
            AwsErrorKind::InvalidRequest
        );
        assert_eq!(
            classify("InternalFailure", Some(500)),
            AwsErrorKind::Transient
        );
        assert_eq!(classify("AccessDenied", Some(403)), AwsErrorKind::Other);
    }

    #[test]
    fn invalid_spec_upgrade_names_the_field() {
        let err = Error::Aws {
            service: "EC2",
            operation: "CreateVpcEndpoint",
            code: "InvalidSubnetID.NotFound".into(),
            message: "The subnet ID 'subnet-1' does not exist".into(),
            kind: AwsErrorKind::NotFound,
        };
        let err =
            err.into_invalid_spec_if(&[AwsErrorKind::NotFound], "spec.endpoint.create.subnetIds");
        assert_eq!(err.reason(), "InvalidSpec");
        assert!(
            err.to_string()
                .starts_with("spec.endpoint.create.subnetIds: InvalidSubnetID.NotFound")
        );
    }
}
