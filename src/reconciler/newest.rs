//! The copy of an object a reconcile works on: the newest in the controller's store, and never one
//! older than the operator's own last status write.

use std::sync::Arc;

use kube::ResourceExt;
use kube::api::Api;
use kube::core::DeserializeGuard;
use kube::runtime::reflector::ObjectRef;
use tracing::{info, warn};

use super::context::Context;
use super::object_key;
use crate::crd::PrivateApi;
use crate::error::{Error, Result};

/// The newest copy of the triggered object: from the controller's store (the watch's latest)
/// when the context has it, else the trigger's own. `None`: no longer in the store; `Err`: an
/// object our types cannot read (a newer or older CRD), skipped without breaking the watch of
/// the others.
pub(super) fn latest(
    guard: &Arc<DeserializeGuard<PrivateApi>>,
    ctx: &Context,
) -> Option<std::result::Result<Arc<PrivateApi>, ()>> {
    let current = match &ctx.store {
        Some(store) => store.get(&ObjectRef::from_obj(guard.as_ref()))?,
        None => guard.clone(),
    };
    Some(match &current.0 {
        Ok(object) => Ok(Arc::new(object.clone())),
        Err(invalid) => {
            warn!(object = %object_key(&invalid.metadata), error = %invalid.error, "cannot read object, skipping it");
            Err(())
        }
    })
}

/// `object` (a store copy), or the object read again from the API server when the copy's status
/// is not the one the operator last wrote: the watch lags behind that write, and a status built
/// on the older copy would roll it back (`adopted`, `retiring`, `lastTransitionTime`s).
/// `None`: the object is gone.
pub(super) async fn not_behind_last_write(
    object: Arc<PrivateApi>,
    ctx: &Context,
) -> Result<Option<Arc<PrivateApi>>> {
    if !ctx.last_writes.is_behind(&object) {
        return Ok(Some(object));
    }
    let api: Api<PrivateApi> =
        Api::namespaced(ctx.client.clone(), &object.namespace().unwrap_or_default());
    let fresh = api.get_opt(&object.name_any()).await.map_err(Error::Kube)?;
    if let Some(fresh) = &fresh {
        info!(
            object = %object_key(&object.metadata),
            store = ?object.metadata.resource_version,
            read = ?fresh.metadata.resource_version,
            "the watch is behind the last status write: read the object again"
        );
        ctx.last_writes.record(fresh);
    }
    Ok(fresh.map(Arc::new))
}
