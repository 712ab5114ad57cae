//! A Lambda function as Lambda reports it (and the configuration fields the operator manages),
//! and what its state means for the backend part.

use std::collections::{BTreeMap, HashMap};

use aws_sdk_lambda::types::FunctionConfiguration;

use crate::conditions::{PartState, reason};
use crate::crd::Architecture;
use crate::identity::Owner;

/// The configuration fields the operator manages, as sent to and read from Lambda.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FunctionConfig {
    pub role: String,
    pub runtime: String,
    pub handler: String,
    pub memory_mib: i32,
    pub timeout_seconds: i32,
    pub environment: BTreeMap<String, String>,
    pub description: String,
}

/// A function as `GetFunction` reports it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LiveFunction {
    pub arn: String,
    pub name: String,
    pub config: FunctionConfig,
    /// `arm64` / `x86_64` (Lambda's default when none is reported is x86_64).
    pub architecture: String,
    pub code_sha256: String,
    pub tags: BTreeMap<String, String>,
    /// `Pending`, `Active`, `Inactive`, `Failed`, ...
    pub state: String,
    pub state_reason: Option<String>,
    /// `InProgress`, `Successful`, `Failed`; absent right after creation.
    pub last_update_status: Option<String>,
    pub last_update_status_reason: Option<String>,
    /// `Zip` or `Image`.
    pub package_type: String,
}

impl LiveFunction {
    pub fn from_configuration(
        cfg: &FunctionConfiguration,
        tags: Option<&HashMap<String, String>>,
    ) -> Self {
        Self {
            arn: cfg.function_arn().unwrap_or_default().to_string(),
            name: cfg.function_name().unwrap_or_default().to_string(),
            config: FunctionConfig {
                role: cfg.role().unwrap_or_default().to_string(),
                runtime: cfg
                    .runtime()
                    .map(|r| r.as_str().to_string())
                    .unwrap_or_default(),
                handler: cfg.handler().unwrap_or_default().to_string(),
                memory_mib: cfg.memory_size().unwrap_or_default(),
                timeout_seconds: cfg.timeout().unwrap_or_default(),
                environment: cfg
                    .environment()
                    .and_then(|e| e.variables())
                    .map(|vars| vars.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
                    .unwrap_or_default(),
                description: cfg.description().unwrap_or_default().to_string(),
            },
            architecture: cfg
                .architectures()
                .first()
                .map(|a| a.as_str().to_string())
                .unwrap_or_else(|| Architecture::X86_64.as_str().to_string()),
            code_sha256: cfg.code_sha256().unwrap_or_default().to_string(),
            tags: tags
                .map(|tags| tags.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
                .unwrap_or_default(),
            state: cfg
                .state()
                .map(|s| s.as_str().to_string())
                .unwrap_or_default(),
            state_reason: cfg.state_reason().map(str::to_string),
            last_update_status: cfg.last_update_status().map(|s| s.as_str().to_string()),
            last_update_status_reason: cfg.last_update_status_reason().map(str::to_string),
            package_type: cfg
                .package_type()
                .map(|p| p.as_str().to_string())
                .unwrap_or_else(|| "Zip".to_string()),
        }
    }

    /// Usable: Lambda accepts invocations and updates.
    pub fn active(&self) -> bool {
        matches!(self.state.as_str(), "Active" | "Inactive")
            && !matches!(
                self.last_update_status.as_deref(),
                Some("InProgress" | "Failed")
            )
    }

    /// Why the function is not [`active`](Self::active), for the condition message.
    pub fn unusable_reason(&self) -> String {
        if matches!(self.state.as_str(), "Active" | "Inactive") {
            format!(
                "the last update of function {} failed: {}",
                self.name,
                self.last_update_status_reason
                    .as_deref()
                    .unwrap_or("no reason given")
            )
        } else {
            format!(
                "function {} is {}: {}",
                self.name,
                self.state,
                self.state_reason.as_deref().unwrap_or("no reason given")
            )
        }
    }

    /// Why the function can't take an update now (Lambda would answer ResourceConflictException),
    /// as the not-ready state to report; None when it can.
    pub fn busy(&self) -> Option<PartState> {
        if self.state == "Pending" {
            return Some(PartState::not_ready(
                reason::PENDING,
                format!(
                    "function {} is Pending: {}",
                    self.name,
                    self.state_reason.as_deref().unwrap_or("being created")
                ),
            ));
        }
        if self.last_update_status.as_deref() == Some("InProgress") {
            return Some(PartState::not_ready(
                reason::UPDATING,
                format!("function {} is being updated", self.name),
            ));
        }
        None
    }

    pub fn owned_by(&self, owner: &Owner) -> bool {
        owner.owns(self.tags.iter().map(|(k, v)| (k.as_str(), v.as_str())))
    }
}
