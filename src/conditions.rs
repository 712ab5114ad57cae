//! Condition bookkeeping: one condition per part plus `Ready`, `lastTransitionTime` kept unless the
//! status changes (so an unchanged outcome writes an unchanged status, and the controller does not
//! trigger itself).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;

pub const READY: &str = "Ready";
pub const ENDPOINT_READY: &str = "EndpointReady";
pub const API_READY: &str = "ApiReady";
pub const BACKEND_READY: &str = "BackendReady";
pub const DEPLOYED: &str = "Deployed";
/// With `spec.domain`: the private custom domain name serves the stage.
pub const DOMAIN_READY: &str = "DomainReady";
/// Written by the prober (`spec.probe`) under its own field manager, never by the reconciler.
pub const REACHABLE: &str = "Reachable";

/// The part conditions, in dependency order.
pub const PART_CONDITIONS: [&str; 4] = [ENDPOINT_READY, API_READY, BACKEND_READY, DEPLOYED];

/// Stable reasons.
pub mod reason {
    pub const AVAILABLE: &str = "Available";
    pub const CREATING: &str = "Creating";
    pub const UPDATING: &str = "Updating";
    pub const PENDING: &str = "Pending";
    pub const DEPENDENCY_NOT_READY: &str = "DependencyNotReady";
    /// The spec is wrong in itself: terminal until the spec changes.
    pub const INVALID_SPEC: &str = "InvalidSpec";
    /// A well-formed reference names something that does not exist (yet): retried with backoff.
    pub const REFERENCE_NOT_FOUND: &str = "ReferenceNotFound";
    pub const AWS_ERROR: &str = "AwsError";
    pub const THROTTLED: &str = "Throttled";
    /// An AWS call of this object waits for the operator's share of an account quota (the
    /// message names the operation and estimates the wait); `Ready` keeps its status.
    pub const WAITING_FOR_QUOTA: &str = "WaitingForQuota";
    pub const DELETING: &str = "Deleting";
    pub const RECONCILING: &str = "Reconciling";
    pub const DEPLOYED: &str = "Deployed";
}

/// The outcome of one part, before it becomes a condition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartState {
    pub ready: bool,
    pub reason: String,
    pub message: String,
}

impl PartState {
    pub fn ready(reason: &str, message: impl Into<String>) -> Self {
        Self {
            ready: true,
            reason: reason.to_string(),
            message: message.into(),
        }
    }
    pub fn not_ready(reason: &str, message: impl Into<String>) -> Self {
        Self {
            ready: false,
            reason: reason.to_string(),
            message: message.into(),
        }
    }
}

/// Set (or add) condition `type_`, keeping `lastTransitionTime` when the status did not change.
pub fn set_condition(
    conditions: &mut Vec<Condition>,
    type_: &str,
    state: &PartState,
    generation: Option<i64>,
    now: Timestamp,
) {
    let status = if state.ready { "True" } else { "False" };
    match conditions.iter_mut().find(|c| c.type_ == type_) {
        Some(existing) => {
            if existing.status != status {
                existing.last_transition_time = Time(now);
            }
            existing.status = status.to_string();
            existing.reason = state.reason.clone();
            existing.message = state.message.clone();
            existing.observed_generation = generation;
        }
        None => conditions.push(Condition {
            type_: type_.to_string(),
            status: status.to_string(),
            reason: state.reason.clone(),
            message: state.message.clone(),
            observed_generation: generation,
            last_transition_time: Time(now),
        }),
    }
}

/// `Ready` from the part states: True when every part is True; otherwise the first part that is
/// not, which is what the user has to look at.
pub fn ready_state(parts: &[(&str, &PartState)]) -> PartState {
    // An InvalidSpec part comes first, wherever it is: the operator then waits for a spec change
    // and does not look again, so an earlier part's transient state (e.g. EndpointReady "Pending"
    // next to an unknown functionArn) would otherwise stay in Ready for good and hide the reason
    // the user has to act on.
    let invalid = parts
        .iter()
        .find(|(_, state)| !state.ready && state.reason == reason::INVALID_SPEC);
    match invalid.or_else(|| parts.iter().find(|(_, state)| !state.ready)) {
        None => PartState::ready(
            reason::AVAILABLE,
            "the private API is deployed and reachable through its VPC endpoint",
        ),
        Some((type_, state)) => {
            PartState::not_ready(&state.reason, format!("{type_}: {}", state.message))
        }
    }
}

pub fn find<'a>(conditions: &'a [Condition], type_: &str) -> Option<&'a Condition> {
    conditions.iter().find(|c| c.type_ == type_)
}

/// Whether the object is Ready for its current generation.
pub fn ready_now(object: &crate::crd::PrivateApi) -> bool {
    let generation = object.metadata.generation;
    object.status.as_ref().is_some_and(|status| {
        status.observed_generation == generation
            && status.conditions.iter().any(|c| {
                c.type_ == READY && c.status == "True" && c.observed_generation == generation
            })
    })
}

pub fn is_true(conditions: &[Condition], type_: &str) -> bool {
    find(conditions, type_).is_some_and(|c| c.status == "True")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: i64) -> Timestamp {
        Timestamp::from_second(secs).expect("valid timestamp")
    }

    #[test]
    fn transition_time_moves_only_on_status_change() {
        let mut conditions = Vec::new();
        set_condition(
            &mut conditions,
            READY,
            &PartState::not_ready("Creating", "a"),
            Some(1),
            at(10),
        );
        set_condition(
            &mut conditions,
            READY,
            &PartState::not_ready("Pending", "b"),
            Some(1),
            at(20),
        );
        assert_eq!(conditions.len(), 1);
        assert_eq!(conditions[0].last_transition_time, Time(at(10)));
        assert_eq!(conditions[0].reason, "Pending");
        set_condition(
            &mut conditions,
            READY,
            &PartState::ready("Available", "c"),
            Some(2),
            at(30),
        );
        assert_eq!(conditions[0].last_transition_time, Time(at(30)));
        assert_eq!(conditions[0].status, "True");
        assert_eq!(conditions[0].observed_generation, Some(2));
    }

    #[test]
    fn ready_names_the_first_part_that_is_not() {
        let ok = PartState::ready("Available", "");
        let pending = PartState::not_ready("Pending", "endpoint vpce-1 is pending");
        let ready = ready_state(&[(ENDPOINT_READY, &pending), (API_READY, &ok)]);
        assert!(!ready.ready);
        assert_eq!(ready.reason, "Pending");
        assert_eq!(ready.message, "EndpointReady: endpoint vpce-1 is pending");
        assert!(ready_state(&[(ENDPOINT_READY, &ok), (API_READY, &ok)]).ready);
    }

    #[test]
    fn ready_names_an_invalid_spec_before_a_transient_state() {
        let pending = PartState::not_ready("Pending", "endpoint vpce-1 is pending");
        let invalid = PartState::not_ready(
            reason::INVALID_SPEC,
            "spec.backend.functionArn: no such function",
        );
        let ready = ready_state(&[(ENDPOINT_READY, &pending), (BACKEND_READY, &invalid)]);
        assert_eq!(ready.reason, "InvalidSpec");
        assert_eq!(
            ready.message,
            "BackendReady: spec.backend.functionArn: no such function"
        );
    }
}
