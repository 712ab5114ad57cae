//! What kind of reconcile an object gets (a fresh one, a periodic check, or none while its last
//! confirmation is recent), and when to look at it again.

use std::time::Duration;

use kube::runtime::controller::Action;
use tracing::info;

use super::context::Context;
use super::fold::{Gathered, waits_for_aws};
use crate::conditions::{self, PartState};
use crate::crd::{PrivateApi, PrivateApiStatus};
use crate::error::{Error, Result};
use crate::pacer::Priority;
use crate::status;

/// How soon to look again at an object that waits for AWS (endpoint pending, function updating).
pub(super) const PENDING_RECHECK: Duration = Duration::from_secs(3);
/// How soon to look again at an object with an invalid spec while another of its parts still
/// waits for AWS: slow, since part of each look is the request AWS rejected.
const INVALID_SPEC_RECHECK: Duration = Duration::from_secs(30);
/// How soon a deletion blocked by another user of the endpoint looks again.
pub(super) const IN_USE_RECHECK: Duration = Duration::from_secs(10);
/// Backoff after errors: base doubling per consecutive failure, capped.
pub(super) const BACKOFF_BASE: Duration = Duration::from_secs(2);
pub(super) const BACKOFF_CAP: Duration = Duration::from_secs(300);
/// A reference that does not exist yet (`ReferenceNotFound`) is looked at again on the same
/// doubling backoff, capped lower: GitOps tools make the missing object within minutes.
pub(super) const REFERENCE_BACKOFF_CAP: Duration = Duration::from_secs(120);

/// A delay with up to 10 % jitter, so objects created together do not resync together.
pub(super) fn with_jitter(delay: Duration, key: &str) -> Duration {
    let seed =
        crate::identity::short_hash(&[key, &format!("{:?}", std::time::SystemTime::now())], 8);
    let fraction = u64::from_str_radix(&seed, 16).unwrap_or(0) % 1000;
    delay + delay.mul_f64(fraction as f64 / 10_000.0)
}

/// How a reconcile reads and writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Mode {
    /// Read everything from AWS, change what differs, write the status.
    Fresh,
    /// The periodic check of an object in sync: read from the shared observations, change
    /// nothing; anything that differs sends the object to a fresh reconcile.
    Check { deep: bool },
}

/// What a reconcile came to.
pub(super) enum Converged {
    Done(Action),
    /// A check found something to change (the reason, for the log).
    Differs(String),
}

/// What to do with an object whose spec is unchanged since it was last confirmed in sync.
pub(super) enum Background {
    /// Not the case: reconcile fresh.
    No,
    /// Confirmed moments ago (this is the echo of our own status write, or a metadata edit):
    /// nothing to read, look again when the period is over.
    Recent(Duration),
    /// In sync as far as we know, and due for its periodic check.
    Due,
}

impl Background {
    /// The class of the slot a reconcile of this kind waits for (`None`: it needs none).
    pub(super) fn class(&self) -> Option<Priority> {
        match self {
            Background::No => Some(Priority::Foreground),
            Background::Due => Some(Priority::Background),
            Background::Recent(_) => None,
        }
    }
}

pub(super) fn background(object: &PrivateApi, ctx: &Context, key: &str) -> Background {
    if object.metadata.deletion_timestamp.is_some() || !conditions::ready_now(object) {
        return Background::No;
    }
    let confirmed = ctx.confirmed().get(key).cloned();
    match confirmed {
        // Someone else changed the status since (or we never confirmed it in this process: a
        // check confirms it against AWS).
        Some(confirmed)
            if confirmed.generation != object.metadata.generation
                || confirmed.status != status::digest(object.status.as_ref()) =>
        {
            Background::No
        }
        Some(confirmed)
            if confirmed.written.is_some()
                && confirmed.written == object.metadata.resource_version
                && confirmed.at.elapsed() < ctx.resync / 2 =>
        {
            Background::Recent(ctx.resync.saturating_sub(confirmed.at.elapsed()))
        }
        _ => Background::Due,
    }
}

/// What a periodic check came to: why the object needs a fresh reconcile, or `None` (in sync).
/// `write_attempted`: a part tried to change AWS (refused: a check cannot write); `left_to_do`:
/// something of an earlier spec is still to release or clean up; `before`: the object's status.
pub(super) fn check_differs(
    write_attempted: bool,
    gathered: &Gathered,
    ready: &PartState,
    left_to_do: bool,
    status: &PrivateApiStatus,
    before: Option<&PrivateApiStatus>,
) -> Option<String> {
    if write_attempted {
        Some("a part would change AWS".to_string())
    } else if !gathered.changes.is_empty() {
        Some(format!("{} change(s) to make", gathered.changes.len()))
    } else if let Some(err) = gathered.errors.first() {
        Some(err.to_string())
    } else if !ready.ready || left_to_do {
        Some(format!("not ready: {}", ready.message))
    } else if Some(status) != before {
        Some("the status would change".to_string())
    } else {
        None
    }
}

/// When to look again after a fresh reconcile, from its errors and its parts' states (`ready`:
/// the object's); records whether the object now waits for AWS. `cleanup_pending`: the endpoint
/// and group of an earlier `endpoint.create` are still going away.
pub(super) fn look_again(
    ctx: &Context,
    key: &str,
    errors: Vec<Error>,
    parts: &[(&str, &PartState)],
    ready: &PartState,
    cleanup_pending: bool,
) -> Result<Action> {
    if !errors.is_empty() {
        ctx.set_waiting_for_aws(key, false);
    }
    if let Some(invalid) = errors.iter().find(|e| e.is_invalid_spec()) {
        // Fix the manifest: retrying would only hammer AWS with the same request. But while
        // another part still waits for AWS (an endpoint pending), look again now and then so
        // its condition does not stay stale; once nothing waits, wait for a spec change.
        if parts.iter().any(|(_, state)| waits_for_aws(state)) {
            info!(error = %invalid, "invalid spec; another part still waits for AWS");
            return Ok(Action::requeue(INVALID_SPEC_RECHECK));
        }
        info!(error = %invalid, "invalid spec, waiting for a change");
        return Ok(Action::await_change());
    }
    if let Some(err) = errors.into_iter().next() {
        return Err(err);
    }
    let waiting = !ready.ready || cleanup_pending;
    ctx.set_waiting_for_aws(key, waiting);
    if waiting {
        Ok(Action::requeue(PENDING_RECHECK))
    } else {
        Ok(Action::requeue(with_jitter(ctx.resync, key)))
    }
}
