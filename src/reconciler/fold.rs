//! Folding the parts' outcomes: a part's result into its state, the states into conditions.

use crate::conditions::{PartState, reason};
use crate::error::Error;
use crate::parts::Change;
use crate::parts::backend::BackendInfo;
use crate::parts::endpoint::EndpointInfo;
use crate::retiring;

pub(super) fn state_of(err: &Error) -> PartState {
    PartState::not_ready(err.reason(), err.to_string())
}

/// A part that is not ready only because AWS has not finished (endpoint pending, function
/// updating), as opposed to failed or blocked by another part.
pub(super) fn waits_for_aws(state: &PartState) -> bool {
    !state.ready
        && [reason::PENDING, reason::CREATING, reason::UPDATING].contains(&state.reason.as_str())
}

pub(super) fn dependency(message: &str) -> PartState {
    PartState::not_ready(reason::DEPENDENCY_NOT_READY, message)
}

/// During a switch the deployment waits until what it switches to can serve (the new function
/// Active, the new endpoint available): until then the stage keeps serving the old one.
/// `detaching`: the API has endpoints attached that the spec no longer names.
pub(super) fn switch_hold(
    retiring: &[crate::crd::RetiringResource],
    detaching: bool,
    endpoint: &EndpointInfo,
    function: &BackendInfo,
) -> Option<PartState> {
    if retiring::switching(retiring, retiring::FUNCTION) && !function.active {
        return Some(PartState::not_ready(
            reason::PENDING,
            format!(
                "the stage keeps serving the previous function until {} is Active",
                function.function_name
            ),
        ));
    }
    if (retiring::switching(retiring, retiring::VPC_ENDPOINT) || detaching) && !endpoint.available {
        return Some(PartState::not_ready(
            reason::PENDING,
            format!(
                "the stage keeps serving the previous policy until VPC endpoint {} is available",
                endpoint.vpc_endpoint_id
            ),
        ));
    }
    None
}

/// The first state that is not ready, else the last (all ready).
pub(super) fn combine(states: &[PartState]) -> PartState {
    states
        .iter()
        .find(|s| !s.ready)
        .or(states.last())
        .cloned()
        .unwrap_or_else(|| dependency("nothing reconciled"))
}

/// What the parts took over goes into `status.adopted`, replacing the record of the same kind.
pub(super) fn record_adoptions(adopted: &mut Vec<crate::crd::AdoptedResource>, changes: &[Change]) {
    for record in changes.iter().filter_map(|c| c.adopted.as_ref()) {
        adopted.retain(|a| a.kind != record.kind);
        adopted.push(record.clone());
    }
    adopted.sort_by(|a, b| a.kind.cmp(&b.kind));
}
