//! What differs between the function the spec asks for and the live one (pure).

use std::collections::BTreeMap;

use super::desired::{DesiredCode, DesiredFunction};
use crate::model::FunctionConfig;
use crate::model::LiveFunction;

/// The configuration fields that differ, with their desired values.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ConfigDiff {
    pub role: Option<String>,
    pub runtime: Option<String>,
    pub handler: Option<String>,
    pub memory_mib: Option<i32>,
    pub timeout_seconds: Option<i32>,
    pub environment: Option<BTreeMap<String, String>>,
    pub description: Option<String>,
}

impl ConfigDiff {
    pub fn is_empty(&self) -> bool {
        self.fields().is_empty()
    }

    /// The names of the fields that differ, for events and logs.
    pub fn fields(&self) -> Vec<&'static str> {
        let mut fields = Vec::new();
        let mut push = |set: bool, name| {
            if set {
                fields.push(name)
            }
        };
        push(self.role.is_some(), "role");
        push(self.runtime.is_some(), "runtime");
        push(self.handler.is_some(), "handler");
        push(self.memory_mib.is_some(), "memory");
        push(self.timeout_seconds.is_some(), "timeout");
        push(self.environment.is_some(), "environment");
        push(self.description.is_some(), "description");
        fields
    }
}

pub fn config_diff(desired: &FunctionConfig, live: &FunctionConfig) -> ConfigDiff {
    fn differs<T: PartialEq + Clone>(desired: &T, live: &T) -> Option<T> {
        (desired != live).then(|| desired.clone())
    }
    ConfigDiff {
        role: differs(&desired.role, &live.role),
        runtime: differs(&desired.runtime, &live.runtime),
        handler: differs(&desired.handler, &live.handler),
        memory_mib: differs(&desired.memory_mib, &live.memory_mib),
        timeout_seconds: differs(&desired.timeout_seconds, &live.timeout_seconds),
        environment: differs(&desired.environment, &live.environment),
        description: differs(&desired.description, &live.description),
    }
}

/// Why the code must be deployed again (`code`, `architecture`), empty when it need not.
pub fn code_diff(desired: &DesiredFunction, live: &LiveFunction) -> Vec<&'static str> {
    let mut why = Vec::new();
    let code_differs = match &desired.code {
        DesiredCode::Builtin(package) => package.code_sha256 != live.code_sha256,
        // The marker in the Description is the only record of the S3 source (see the `function`
        // module docs).
        DesiredCode::S3 { .. } => desired.config.description != live.config.description,
    };
    if code_differs {
        why.push("code");
    }
    if desired.architecture.as_str() != live.architecture {
        why.push("architecture");
    }
    why
}
