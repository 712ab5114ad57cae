//! The controller's watch of `PrivateApi` objects, with what its cache keeps trimmed.
//!
//! The reflector's store holds every watched object for the life of the process. Two parts of
//! each object are never read by the operator and can be large: `metadata.managedFields` (one
//! entry per field manager, each with a full field set: `kubectl apply`, the operator's own status
//! writes, Argo CD...) and the `kubectl.kubernetes.io/last-applied-configuration` annotation (a
//! copy of the whole manifest). Both are dropped from each watch event before it enters the
//! store. Nothing in the reconciler reads them: status is written by server-side apply, whose
//! field ownership lives in the API server, and the finalizer helper patches `finalizers` only.

use futures::StreamExt;
use kube::api::{Api, ObjectMeta};
use kube::core::DeserializeGuard;
use kube::runtime::controller::Controller;
use kube::runtime::{PredicateConfig, WatchStreamExt, reflector, watcher};

use crate::crd::PrivateApi;

/// The annotation `kubectl apply` (client-side) keeps a copy of the whole manifest in.
pub const LAST_APPLIED_ANNOTATION: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// Drop from `meta` what the operator never reads.
pub fn strip_metadata(meta: &mut ObjectMeta) {
    meta.managed_fields = None;
    if let Some(annotations) = &mut meta.annotations {
        annotations.remove(LAST_APPLIED_ANNOTATION);
        if annotations.is_empty() {
            meta.annotations = None;
        }
    }
}

/// [`strip_metadata`] for an object as the controller watches it (also one it cannot read: its
/// metadata stays in the store too).
pub fn strip_for_cache(object: &mut DeserializeGuard<PrivateApi>) {
    match &mut object.0 {
        Ok(object) => strip_metadata(&mut object.metadata),
        Err(invalid) => strip_metadata(&mut invalid.metadata),
    }
}

/// A controller like `Controller::new(api, config)` whose store holds stripped objects.
/// `on_synced` is called each time a full list has entered the store (the first one makes the
/// operator ready).
///
/// Why not `store.wait_until_ready()` for that: the store's readiness (kube-runtime's
/// `DelayedInit`) is a oneshot channel that remembers only the waker of the last task that polled
/// it, so a second waiter besides the controller's own is never woken, or takes the wake-up away
/// from the controller, which then never starts reconciling.
pub fn controller(
    api: Api<DeserializeGuard<PrivateApi>>,
    config: watcher::Config,
    on_synced: impl Fn() + Send + 'static,
) -> Controller<DeserializeGuard<PrivateApi>> {
    let (reader, writer) = reflector::store();
    // As Controller::new: no backoff here, the controller backs the trigger stream off itself.
    let objects = watcher(api, config)
        .modify(strip_for_cache)
        .reflect(writer)
        .inspect(move |event| {
            if matches!(event, Ok(watcher::Event::InitDone)) {
                on_synced();
            }
        })
        .applied_objects()
        // The store sees every change; the reconciler only those it acts on.
        .predicate_filter(reconciler_view_hash, PredicateConfig::default());
    Controller::for_stream(objects, reader)
}

/// A hash of the object as the reconciler sees it: everything but its resourceVersion and the
/// status conditions other writers own (`status::operator_view`). A change of the prober's
/// `Reachable` condition alone then wakes no reconcile (which would read AWS for nothing).
/// Objects our types cannot read always pass.
pub fn reconciler_view_hash(object: &DeserializeGuard<PrivateApi>) -> Option<u64> {
    use std::hash::{DefaultHasher, Hasher};
    let Ok(object) = &object.0 else {
        return None;
    };
    let mut view = object.clone();
    view.metadata.resource_version = None;
    view.status = view.status.as_ref().map(crate::status::operator_view);
    let mut hasher = DefaultHasher::new();
    hasher.write(&serde_json::to_vec(&view).ok()?);
    Some(hasher.finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn watched(manifest: serde_json::Value) -> DeserializeGuard<PrivateApi> {
        serde_json::from_value(manifest).expect("a PrivateApi as the API server sends it")
    }

    #[test]
    fn managed_fields_and_last_applied_are_dropped_the_rest_kept() {
        let mut object = watched(serde_json::json!({
            "apiVersion": "privateapi.io/v1alpha1",
            "kind": "PrivateApi",
            "metadata": {
                "name": "orders",
                "namespace": "team-a",
                "uid": "0b6f8e1c-1111-2222-3333-444455556666",
                "generation": 3,
                "resourceVersion": "812",
                "finalizers": ["privateapi.io/cleanup"],
                "labels": {"team": "a"},
                "annotations": {
                    LAST_APPLIED_ANNOTATION: "{\"apiVersion\":\"privateapi.io/v1alpha1\",\"kind\":\"PrivateApi\"}",
                    "papi-test/poke": "1"
                },
                "managedFields": [
                    {"manager": "kubectl-client-side-apply", "operation": "Update",
                     "apiVersion": "privateapi.io/v1alpha1", "fieldsType": "FieldsV1",
                     "fieldsV1": {"f:spec": {"f:stageName": {}}}},
                    {"manager": "privateapi-operator", "operation": "Apply", "subresource": "status",
                     "apiVersion": "privateapi.io/v1alpha1", "fieldsType": "FieldsV1",
                     "fieldsV1": {"f:status": {"f:restApiId": {}}}}
                ]
            },
            "spec": {
                "endpoint": {"id": "vpce-0123456789abcdef0"},
                "backend": {"builtin": {"message": "hi"}}
            },
            "status": {"restApiId": "abc123defg", "observedGeneration": 3}
        }));
        strip_for_cache(&mut object);
        let object = object.0.expect("readable");
        let stripped = serde_json::to_value(&object).expect("serializes");
        assert_eq!(
            stripped["metadata"],
            serde_json::json!({
                "name": "orders",
                "namespace": "team-a",
                "uid": "0b6f8e1c-1111-2222-3333-444455556666",
                "generation": 3,
                "resourceVersion": "812",
                "finalizers": ["privateapi.io/cleanup"],
                "labels": {"team": "a"},
                "annotations": {"papi-test/poke": "1"}
            })
        );
        assert_eq!(stripped["status"]["restApiId"], "abc123defg");
        assert_eq!(
            object.spec.endpoint.id.as_deref(),
            Some("vpce-0123456789abcdef0")
        );
    }

    #[test]
    fn an_unreadable_object_keeps_only_its_needed_metadata_too() {
        let mut object = watched(serde_json::json!({
            "apiVersion": "privateapi.io/v1alpha1",
            "kind": "PrivateApi",
            "metadata": {
                "name": "odd",
                "namespace": "team-a",
                "annotations": {LAST_APPLIED_ANNOTATION: "{}"},
                "managedFields": [{"manager": "kubectl", "operation": "Update"}]
            },
            "spec": {"endpoint": "not an object"}
        }));
        assert!(object.0.is_err(), "the spec does not parse");
        strip_for_cache(&mut object);
        let invalid = object.0.expect_err("still unreadable");
        assert_eq!(invalid.metadata.name.as_deref(), Some("odd"));
        assert!(invalid.metadata.managed_fields.is_none());
        assert!(invalid.metadata.annotations.is_none());
    }

    #[test]
    fn only_a_change_the_reconciler_acts_on_wakes_it() {
        let object = |rv: &str, conditions: serde_json::Value| {
            watched(serde_json::json!({
                "apiVersion": "privateapi.io/v1alpha1",
                "kind": "PrivateApi",
                "metadata": {"name": "orders", "namespace": "team-a", "uid": "u1",
                             "generation": 2, "resourceVersion": rv},
                "spec": {"endpoint": {"id": "vpce-0123456789abcdef0"},
                         "backend": {"builtin": {}}},
                "status": {"observedGeneration": 2, "conditions": conditions}
            }))
        };
        let condition = |type_: &str, status: &str| {
            serde_json::json!({"type": type_, "status": status, "reason": "R", "message": "m",
                               "lastTransitionTime": "2026-12-03T10:00:00Z", "observedGeneration": 2})
        };
        let ready = reconciler_view_hash(&object(
            "10",
            serde_json::json!([condition("Ready", "True")]),
        ));
        // The prober's condition comes and changes in a new resourceVersion: the same view.
        let probed = reconciler_view_hash(&object(
            "11",
            serde_json::json!([condition("Ready", "True"), condition("Reachable", "True")]),
        ));
        let unreachable = reconciler_view_hash(&object(
            "12",
            serde_json::json!([condition("Ready", "True"), condition("Reachable", "False")]),
        ));
        assert!(ready.is_some());
        assert_eq!(ready, probed);
        assert_eq!(ready, unreachable);
        // Its own condition is a change.
        let not_ready = reconciler_view_hash(&object(
            "13",
            serde_json::json!([condition("Ready", "False")]),
        ));
        assert_ne!(ready, not_ready);
    }
}
