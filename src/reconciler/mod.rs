//! The reconciler: orders the parts, folds their outcomes into conditions and status, reports what
//! changed as Events, and decides when to look again. It holds no AWS logic of its own.
//!
//! A reconcile, from the controller's call to the next look:
//!
//! - here, [`reconcile`]: a slot (`crate::admission`), then the finalizer, which calls apply or
//!   cleanup; [`error_policy`] backs off after a failure;
//! - `newest`: the copy of the object a reconcile works on (the store's, not behind our own last
//!   status write);
//! - `decision`: what kind of reconcile the object gets (a fresh one, the periodic check of an
//!   object in sync, or none: the echo of our own status write), and when to look again;
//! - `apply`: the periodic check first where one is due, a fresh reconcile otherwise or when the
//!   check finds a difference;
//! - `converge`: the parts in their order:
//!   1. the VPC endpoint (`parts::endpoint`) and the Lambda function (`parts::backend`), in
//!      parallel; their IDs go to status at once, what status named before into `retiring`;
//!   2. the REST API and its policy (`parts::api`), which needs the endpoint's ID;
//!   3. the routes (`parts::routes`) and the invoke permission (`parts::backend`), in parallel;
//!   4. the deployment and the stage (`parts::deployment`), held during a switch until the new
//!      function or endpoint can serve; then status.url of what serves;
//!   5. make-before-break (`crate::retiring`): once the stage serves the current spec, status.url
//!      is written, then what the stage no longer needs goes;
//!   6. conditions and the status write; 7. when to look again;
//! - `fold`: a part's outcome into its state (changes and errors gathered), states into
//!   conditions;
//! - `events`: the changes and errors as Events; `quota_reports`: long waits for quota written on
//!   the object meanwhile;
//! - `cleanup`: on deletion, the API, then the function, then the endpoint and its group;
//! - `context`: what every reconcile shares, and the records kept per object.

mod apply;
mod cleanup;
mod context;
mod converge;
mod decision;
mod events;
mod fold;
mod newest;
mod quota_reports;
#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::time::{Duration, Instant};

use kube::ResourceExt;
use kube::api::Api;
use kube::core::DeserializeGuard;
use kube::runtime::controller::Action;
use kube::runtime::finalizer::{Event as FinalizerEvent, finalizer};
use tracing::warn;

use crate::crd::PrivateApi;
use crate::error::{Error, Result};
use crate::pacer::Priority;
use apply::apply;
use cleanup::cleanup;
use decision::{
    BACKOFF_BASE, BACKOFF_CAP, Background, IN_USE_RECHECK, PENDING_RECHECK, REFERENCE_BACKOFF_CAP,
    background, with_jitter,
};
use newest::{latest, not_behind_last_write};

pub use context::{Bookkeeping, Context, prune_forgotten_every};

/// Reconciles at a time unless `with_concurrency` says otherwise (`--concurrency`'s default).
pub const DEFAULT_CONCURRENCY: usize = 8;

/// Keeps AWS resources until the operator has deleted them.
pub const FINALIZER: &str = "privateapi.io/cleanup";

/// How often the per-object records of objects gone from the store are forgotten.
pub const PRUNE_EVERY: Duration = Duration::from_secs(60);

fn object_key(meta: &kube::core::ObjectMeta) -> String {
    format!(
        "{}/{}",
        meta.namespace.as_deref().unwrap_or_default(),
        meta.name.as_deref().unwrap_or_default()
    )
}

/// Entry point of the controller: waits for a slot, then only the finalizer decides between
/// apply and cleanup.
pub async fn reconcile(
    guard: Arc<DeserializeGuard<PrivateApi>>,
    ctx: Arc<Context>,
) -> Result<Action> {
    let mut object = match latest(&guard, &ctx) {
        Some(Ok(object)) => object,
        Some(Err(())) => return Ok(Action::await_change()),
        // Deleted from the store since it was triggered: nothing left to do.
        None => return Ok(Action::await_change()),
    };
    let key = object_key(&object.metadata);
    let namespace = object
        .namespace()
        .ok_or_else(|| Error::Config("PrivateApi without namespace".into()))?;
    let mut decision = background(&object, &ctx, &key);
    // A slot first (see `admission`), before anything is read; the echo of our own status
    // write reads nothing and needs none.
    let class = match decision.class() {
        Some(Priority::Foreground) if ctx.is_waiting_for_aws(&key) => Some(Priority::Recheck),
        class => class,
    };
    let _permit = match class {
        None => None,
        Some(class) => {
            let Some(permit) = ctx.admission.admit(class, &namespace).await else {
                // Shutting down.
                return Ok(Action::await_change());
            };
            // The object as it is now: the copy it was triggered with can be old after a wait
            // (a newer spec, a deletion); and not older than the operator's own last write.
            object = match latest(&guard, &ctx) {
                Some(Ok(object)) => match not_behind_last_write(object, &ctx).await? {
                    Some(object) => object,
                    None => return Ok(Action::await_change()),
                },
                _ => return Ok(Action::await_change()),
            };
            decision = background(&object, &ctx, &key);
            Some(permit)
        }
    };
    // Boxed: a waiting reconcile stays a small future (the controller holds one per object
    // that waits for a slot).
    Box::pin(admitted(object, decision, &key, &namespace, &ctx)).await
}

/// One reconcile that holds its slot. Everything it logs is in a span that names the object.
#[tracing::instrument(name = "reconcile", skip_all, fields(object = %key))]
async fn admitted(
    object: Arc<PrivateApi>,
    decision: Background,
    key: &str,
    namespace: &str,
    ctx: &Context,
) -> Result<Action> {
    let api: Api<PrivateApi> = Api::namespaced(ctx.client.clone(), namespace);
    let started = Instant::now();
    let result = finalizer(&api, FINALIZER, object, |event| async {
        match event {
            FinalizerEvent::Apply(object) => Box::pin(apply(object, ctx, decision)).await,
            FinalizerEvent::Cleanup(object) => Box::pin(cleanup(object, ctx)).await,
        }
    })
    .await
    .map_err(|err| Error::Finalizer(Box::new(err)));
    let label = match &result {
        Ok(_) => "ok",
        Err(err) => inner_error(err).metric_label(),
    };
    ctx.metrics.record_reconcile(label, started.elapsed());
    if result.is_ok() {
        ctx.failures().remove(key);
    }
    result
}

/// The error inside the finalizer's wrapper.
fn inner_error(err: &Error) -> &Error {
    use kube::runtime::finalizer::Error as F;
    match err {
        Error::Finalizer(boxed) => match boxed.as_ref() {
            F::ApplyFailed(inner) | F::CleanupFailed(inner) => inner,
            _ => err,
        },
        other => other,
    }
}

/// Exponential backoff per object, capped; other objects are not affected.
pub fn error_policy(
    guard: Arc<DeserializeGuard<PrivateApi>>,
    err: &Error,
    ctx: Arc<Context>,
) -> Action {
    let key = match &guard.0 {
        Ok(object) => object_key(&object.metadata),
        Err(invalid) => object_key(&invalid.metadata),
    };
    let inner = inner_error(err);
    if matches!(inner, Error::CleanupInProgress(_)) {
        return Action::requeue(PENDING_RECHECK);
    }
    if matches!(inner, Error::InUse(_)) {
        // Others may use the endpoint for a long time: look again slowly.
        return Action::requeue(IN_USE_RECHECK);
    }
    let failures = {
        let mut all = ctx.failures();
        let n = all.entry(key.clone()).or_insert(0);
        *n = n.saturating_add(1);
        *n
    };
    let cap = if inner.is_waited_reference() {
        REFERENCE_BACKOFF_CAP
    } else {
        BACKOFF_CAP
    };
    let delay = BACKOFF_BASE
        .saturating_mul(2u32.saturating_pow(failures.saturating_sub(1).min(16)))
        .min(cap);
    warn!(object = %key, error = %inner, failures, retry_in = ?delay, "reconcile failed");
    Action::requeue(with_jitter(delay, &key))
}
