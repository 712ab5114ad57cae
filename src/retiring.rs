//! Make-before-break. A switch (backend builtin ↔ code ↔ functionArn, endpoint create ↔ id,
//! `spec.adopt` taking over an API, endpoint or function) never releases what the stage serves:
//! the resource status named before goes into `status.retiring` in the same status write that
//! names the new one (before the new one is wired, so a crash cannot lose it), and is released
//! only once the stage serves a deployment that no longer uses it.
//!
//! The bookkeeping here is pure; [`release`] calls each part's `release_retired`.

use crate::crd::RetiringResource;
use crate::error::Error;
use crate::parts::{Change, PartContext, api, backend, endpoint};

pub const FUNCTION: &str = RetiringResource::FUNCTION;
pub const REST_API: &str = RetiringResource::REST_API;
pub const VPC_ENDPOINT: &str = RetiringResource::VPC_ENDPOINT;

/// Status named `previous`, the spec now leads to `current`: keep `previous` for release (unless
/// it is `current`), and take `current` off the list (a switch back to it).
pub fn replaced(
    retiring: &mut Vec<RetiringResource>,
    kind: &str,
    previous: Option<&str>,
    current: &str,
) {
    retiring.retain(|r| !(r.kind == kind && r.id == current));
    if let Some(previous) = previous
        && previous != current
        && !retiring.iter().any(|r| r.kind == kind && r.id == previous)
    {
        retiring.push(RetiringResource {
            kind: kind.to_string(),
            id: previous.to_string(),
        });
        retiring.sort();
    }
}

/// Whether a switch of this kind is under way.
pub fn switching(retiring: &[RetiringResource], kind: &str) -> bool {
    retiring.iter().any(|r| r.kind == kind)
}

/// What the stage serves now, against which retired resources are released.
pub struct Current<'a> {
    pub function_arn: &'a str,
    pub rest_api_id: &'a str,
    pub vpc_endpoint_id: &'a str,
}

/// The outcome of [`release`].
#[derive(Debug, Default)]
pub struct Released {
    pub changes: Vec<Change>,
    /// What is still to release (its release failed, or waits for others: see `errors`).
    pub remaining: Vec<RetiringResource>,
    pub errors: Vec<Error>,
}

/// Release every retired resource; call only once the stage serves a deployment of the current
/// spec. Functions first (the deployment no longer integrates them), then REST APIs, then
/// endpoints (the API was detached from them before).
pub async fn release(
    ctx: &PartContext<'_>,
    retiring: &[RetiringResource],
    current: &Current<'_>,
) -> Released {
    let mut released = Released::default();
    let order = |r: &RetiringResource| match r.kind.as_str() {
        FUNCTION => 0,
        REST_API => 1,
        _ => 2,
    };
    let mut ordered: Vec<&RetiringResource> = retiring.iter().collect();
    ordered.sort_by_key(|r| order(r));
    for resource in ordered {
        let current_id = match resource.kind.as_str() {
            FUNCTION => current.function_arn,
            REST_API => current.rest_api_id,
            _ => current.vpc_endpoint_id,
        };
        if resource.id == current_id {
            // Switched back to it: in use again, nothing to release.
            continue;
        }
        let result = match resource.kind.as_str() {
            FUNCTION => backend::release_retired(ctx, &resource.id, current.function_arn).await,
            REST_API => api::release_retired(ctx, &resource.id, current.rest_api_id).await,
            VPC_ENDPOINT => {
                endpoint::release_retired(ctx, &resource.id, current.vpc_endpoint_id).await
            }
            // Written by a newer operator version: leave it to that version.
            _ => {
                released.remaining.push(resource.clone());
                continue;
            }
        };
        match result {
            Ok(changes) => released.changes.extend(changes),
            Err(err) => {
                released.remaining.push(resource.clone());
                released.errors.push(err);
            }
        }
    }
    released.remaining.sort();
    released
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(kind: &str, id: &str) -> RetiringResource {
        RetiringResource {
            kind: kind.into(),
            id: id.into(),
        }
    }

    #[test]
    fn a_switch_keeps_the_previous_resource() {
        let mut retiring = Vec::new();
        replaced(&mut retiring, FUNCTION, Some("arn:f0"), "arn:a");
        assert_eq!(retiring, vec![r(FUNCTION, "arn:f0")]);
        // No change: nothing more.
        replaced(&mut retiring, FUNCTION, Some("arn:a"), "arn:a");
        assert_eq!(retiring, vec![r(FUNCTION, "arn:f0")]);
        // A first reconcile (nothing before): nothing to keep.
        let mut fresh = Vec::new();
        replaced(&mut fresh, FUNCTION, None, "arn:a");
        assert!(fresh.is_empty());
    }

    #[test]
    fn switches_chain_and_a_switch_back_is_not_released() {
        let mut retiring = Vec::new();
        // builtin f0 → a, then → b before the stage served a.
        replaced(&mut retiring, FUNCTION, Some("arn:f0"), "arn:a");
        replaced(&mut retiring, FUNCTION, Some("arn:a"), "arn:b");
        assert_eq!(retiring, vec![r(FUNCTION, "arn:a"), r(FUNCTION, "arn:f0")]);
        // ... and back to f0: f0 is in use again.
        replaced(&mut retiring, FUNCTION, Some("arn:b"), "arn:f0");
        assert_eq!(retiring, vec![r(FUNCTION, "arn:a"), r(FUNCTION, "arn:b")]);
        // Kinds are kept apart.
        replaced(&mut retiring, VPC_ENDPOINT, Some("vpce-1"), "vpce-2");
        assert!(switching(&retiring, VPC_ENDPOINT));
        assert!(!switching(&retiring, REST_API));
        assert_eq!(retiring.len(), 3);
    }
}
