//! What changed in AWS, and what failed, as Kubernetes Events on the object (and log lines).

use kube::Resource;
use kube::runtime::events::{Event as KubeEvent, EventType};
use tracing::{info, warn};

use super::context::Context;
use crate::crd::PrivateApi;
use crate::error::Error;
use crate::parts::Change;

pub(super) async fn publish(
    ctx: &Context,
    object: &PrivateApi,
    changes: &[Change],
    errors: &[Error],
) {
    let reference = object.object_ref(&());
    for change in changes {
        info!(action = change.action, resource = %change.resource, detail = %change.detail, "changed AWS");
        let note = if change.detail.is_empty() {
            change.resource.clone()
        } else {
            format!("{}: {}", change.resource, change.detail)
        };
        let event = KubeEvent {
            type_: EventType::Normal,
            reason: change.action.to_string(),
            note: Some(note.chars().take(1000).collect()),
            action: "Reconcile".into(),
            secondary: None,
        };
        if let Err(err) = ctx.recorder.publish(&event, &reference).await {
            warn!(error = %err, "cannot publish event");
        }
    }
    for error in errors {
        let event = KubeEvent {
            type_: EventType::Warning,
            reason: error.reason().to_string(),
            note: Some(error.to_string().chars().take(1000).collect()),
            action: "Reconcile".into(),
            secondary: None,
        };
        if let Err(err) = ctx.recorder.publish(&event, &reference).await {
            warn!(error = %err, "cannot publish event");
        }
    }
}
