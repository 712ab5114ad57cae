//! Folding the parts' outcomes: a part's result into its state and value (its changes and errors
//! gathered for the Events and the next look), the states into conditions.

use crate::conditions::{self, PartState, reason};
use crate::crd::{AdoptedResource, PrivateApiStatus};
use crate::error::{Error, Result};
use crate::parts::{Change, Outcome};

/// What the parts of one reconcile did and what failed, in the order they ran.
#[derive(Default)]
pub(super) struct Gathered {
    pub(super) changes: Vec<Change>,
    pub(super) errors: Vec<Error>,
}

impl Gathered {
    /// A part's result: its state and what later parts need of it. A failed part is not ready
    /// for the reason of its error, and has nothing for them.
    pub(super) fn part<T>(&mut self, result: Result<Outcome<T>>) -> (PartState, Option<T>) {
        match result {
            Ok(outcome) => {
                self.changes.extend(outcome.changes);
                (outcome.state, Some(outcome.value))
            }
            Err(err) => {
                let state = PartState::not_ready(err.reason(), err.to_string());
                self.errors.push(err);
                (state, None)
            }
        }
    }
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

/// The first state that is not ready, else the last (all ready).
pub(super) fn combine(states: &[PartState]) -> PartState {
    states
        .iter()
        .find(|s| !s.ready)
        .or(states.last())
        .cloned()
        .unwrap_or_else(|| dependency("nothing reconciled"))
}

/// The parts' conditions and `Ready` on `status`, for `generation`; returns `Ready`'s state.
pub(super) fn set_conditions(
    status: &mut PrivateApiStatus,
    parts: &[(&str, &PartState)],
    generation: Option<i64>,
) -> PartState {
    let now = k8s_openapi::jiff::Timestamp::now();
    for (type_, state) in parts {
        conditions::set_condition(&mut status.conditions, type_, state, generation, now);
    }
    let ready = conditions::ready_state(parts);
    conditions::set_condition(
        &mut status.conditions,
        conditions::READY,
        &ready,
        generation,
        now,
    );
    status.observed_generation = generation;
    ready
}

/// What the parts took over goes into `status.adopted`, replacing the record of the same kind.
pub(super) fn record_adoptions(adopted: &mut Vec<AdoptedResource>, changes: &[Change]) {
    for record in changes.iter().filter_map(|c| c.adopted.as_ref()) {
        adopted.retain(|a| a.kind != record.kind);
        adopted.push(record.clone());
    }
    adopted.sort_by(|a, b| a.kind.cmp(&b.kind));
}
