//! Long waits for quota, reported on the object while a foreground reconcile waits for the pacer.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use kube::ResourceExt;
use kube::api::Api;
use tracing::{info, warn};

use super::context::Context;
use super::object_key;
use crate::conditions::{self, reason};
use crate::crd::PrivateApi;
use crate::pacer::{self, Caller, Priority, WaitReport};
use crate::status;

/// Writes a long wait for quota on the object: `Ready` keeps its status and says why nothing
/// moves (reason `WaitingForQuota`). Written with its own field manager, and only this one
/// condition; the reconciler's next status write replaces it.
async fn report_quota_wait(object: &PrivateApi, ctx: &Context, report: WaitReport) {
    let api: Api<PrivateApi> =
        Api::namespaced(ctx.client.clone(), &object.namespace().unwrap_or_default());
    let name = object.name_any();
    let ready = object
        .status
        .as_ref()
        .and_then(|s| s.conditions.iter().find(|c| c.type_ == conditions::READY));
    let condition = serde_json::json!({
        "type": conditions::READY,
        "status": ready.map_or("False", |c| c.status.as_str()),
        "reason": reason::WAITING_FOR_QUOTA,
        "message": report.to_string(),
        "observedGeneration": ready.and_then(|c| c.observed_generation).or(object.metadata.generation),
        "lastTransitionTime": ready
            .map(|c| c.last_transition_time.0)
            .unwrap_or_else(k8s_openapi::jiff::Timestamp::now)
            .to_string(),
    });
    let patch = serde_json::json!({
        "apiVersion": "privateapi.io/v1alpha1",
        "kind": "PrivateApi",
        "status": { "conditions": [condition] },
    });
    let params = kube::api::PatchParams::apply(status::QUOTA_FIELD_MANAGER).force();
    match api
        .patch_status(&name, &params, &kube::api::Patch::Apply(&patch))
        .await
    {
        Ok(written) => {
            ctx.last_writes.record(&written);
            info!(wait = %report, "waiting for quota");
        }
        Err(err) => warn!(error = %err, "cannot report the wait for quota"),
    }
}

/// Runs `reconcile` (one foreground reconcile of `object`) as its object's caller, and writes the
/// pacer's reports of long waits for quota on the object meanwhile. `reconcile` is told, through
/// the flag it is given, whether a report was written: its own status write then replaces it.
///
/// The reports are written between polls of `reconcile`, never during one: the reconcile's last
/// status write cannot be overtaken by a report of an earlier wait.
pub(super) async fn reporting_quota_waits<F, T>(
    object: &PrivateApi,
    ctx: &Context,
    reconcile: impl FnOnce(Arc<AtomicBool>) -> F,
) -> T
where
    F: std::future::Future<Output = T>,
{
    let (reports, mut waits) = tokio::sync::mpsc::channel(1);
    let reported = Arc::new(AtomicBool::new(false));
    let caller = Caller {
        on_wait: Some(reports),
        ..caller(object, Priority::Foreground)
    };
    let mut running = std::pin::pin!(pacer::as_caller(caller, reconcile(reported.clone())));
    loop {
        tokio::select! {
            biased;
            done = &mut running => return done,
            Some(report) = waits.recv() => {
                reported.store(true, Ordering::SeqCst);
                report_quota_wait(object, ctx, report).await;
            }
        }
    }
}

/// Who calls AWS for `object`, for the pacer: its class and namespace. A periodic check of an
/// object in sync has nothing to tell its users while it waits (and writing would make every slow
/// check a status write), so only [`reporting_quota_waits`] adds a report channel.
pub(super) fn caller(object: &PrivateApi, priority: Priority) -> Caller {
    Caller {
        object: object_key(&object.metadata),
        namespace: object.namespace().unwrap_or_default(),
        priority,
        on_wait: None,
    }
}
