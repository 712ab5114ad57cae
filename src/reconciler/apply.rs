//! The finalizer's Apply: a cheap check on shared observations for objects in sync, a fresh
//! reconcile for everything else.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use kube::runtime::controller::Action;
use tracing::info;

use super::context::Context;
use super::converge::converge;
use super::decision::{Background, Converged, Mode};
use super::object_key;
use super::quota_reports::{caller, reporting_quota_waits};
use crate::crd::PrivateApi;
use crate::error::{Error, Result};
use crate::pacer::{self, Priority};

/// Make AWS match the spec: a cheap check on shared observations for objects in sync, a fresh
/// reconcile for everything else (and for a check that finds something to change).
pub(super) async fn apply(
    object: Arc<PrivateApi>,
    ctx: &Context,
    decision: Background,
) -> Result<Action> {
    let key = object_key(&object.metadata);
    match decision {
        Background::Recent(remaining) => return Ok(Action::requeue(remaining)),
        Background::Due => {
            let deep = ctx.observations.next_check_is_deep(&key);
            let not_reported = Arc::new(AtomicBool::new(false));
            // Boxed: the reconcile's future is large, and debug builds overflow a worker's
            // stack when it lives there.
            let check = pacer::as_caller(
                caller(&object, Priority::Background),
                Box::pin(converge(
                    object.clone(),
                    ctx,
                    Mode::Check { deep },
                    not_reported,
                )),
            );
            match check.await {
                Ok(Converged::Done(action)) => {
                    ctx.metrics
                        .record_resync(if deep { "deep" } else { "in_sync" });
                    return Ok(action);
                }
                Ok(Converged::Differs(why)) => {
                    info!(why = %why, "periodic check found a difference: reconciling fresh");
                }
                Err(err) => {
                    info!(error = %err, "periodic check failed: reconciling fresh");
                }
            }
            ctx.metrics.record_resync("drift");
        }
        Background::No => {}
    }
    let fresh = reporting_quota_waits(&object, ctx, |reported| {
        Box::pin(converge(object.clone(), ctx, Mode::Fresh, reported))
    });
    match fresh.await? {
        Converged::Done(action) => Ok(action),
        Converged::Differs(why) => Err(Error::Unexpected {
            operation: "reconcile",
            message: format!("a fresh reconcile reported a difference: {why}"),
        }),
    }
}
