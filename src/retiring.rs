//! Make-before-break. A switch (backend builtin ↔ code ↔ functionArn, endpoint create ↔ id,
//! `spec.adopt` taking over an API, endpoint or function) never releases what the stage serves:
//! the resource status named before goes into `status.retiring` in the same status write that
//! names the new one (before the new one is wired, so a crash cannot lose it), and is released
//! only once the stage serves a deployment that no longer uses it.
//!
//! The bookkeeping here is pure ([`now_names`], [`replaced`], [`hold_deployment`]);
//! [`release`] calls each part's `release_retired`, and [`release_leftovers`] orders everything
//! the stage no longer needs once it serves the current spec.

use crate::conditions::{PartState, reason};
use crate::crd::{PrivateApiStatus, RetiringResource};
use crate::error::Error;
use crate::parts::api::ApiInfo;
use crate::parts::backend::BackendInfo;
use crate::parts::deployment::{self, DeploymentInfo};
use crate::parts::endpoint::EndpointInfo;
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

/// Status names `id` as the current resource of `kind` (one of the three above) from now on; the
/// one `previous` named, if another, is kept in `status.retiring` until released.
pub fn now_names(status: &mut PrivateApiStatus, previous: &PrivateApiStatus, kind: &str, id: &str) {
    let (field, before) = match kind {
        FUNCTION => (&mut status.function_arn, &previous.function_arn),
        REST_API => (&mut status.rest_api_id, &previous.rest_api_id),
        VPC_ENDPOINT => (&mut status.vpc_endpoint_id, &previous.vpc_endpoint_id),
        _ => return,
    };
    *field = Some(id.to_string());
    replaced(&mut status.retiring, kind, before.as_deref(), id);
}

/// Whether a switch of this kind is under way.
pub fn switching(retiring: &[RetiringResource], kind: &str) -> bool {
    retiring.iter().any(|r| r.kind == kind)
}

/// During a switch the deployment waits until what it switches to can serve (the new function
/// Active, the new endpoint available): until then the stage keeps serving the old one.
/// `detaching`: the API has endpoints attached that the spec no longer names.
pub fn hold_deployment(
    retiring: &[RetiringResource],
    detaching: bool,
    endpoint: &EndpointInfo,
    function: &BackendInfo,
) -> Option<PartState> {
    if switching(retiring, FUNCTION) && !function.active {
        return Some(PartState::not_ready(
            reason::PENDING,
            format!(
                "the stage keeps serving the previous function until {} is Active",
                function.function_name
            ),
        ));
    }
    if (switching(retiring, VPC_ENDPOINT) || detaching) && !endpoint.available {
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
    /// [`release_leftovers`] after a move to `endpoint.id`: whether the endpoint and group the
    /// operator owned are gone (`None`: nothing of the kind, or it failed: see `errors`).
    pub owned_endpoint_gone: Option<bool>,
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

/// What the stage no longer needs once it serves a deployment of the current spec, besides
/// `status.retiring`.
pub struct Leftovers<'a> {
    /// The deployment with the stages of an earlier `stageName`.
    pub old_stages: Option<&'a DeploymentInfo>,
    /// Endpoints attached to the API that the spec no longer names.
    pub stale_endpoints: &'a [String],
    /// This object's invoke statements for REST APIs it no longer uses.
    pub stale_statements: &'a [String],
    /// After a move from `endpoint.create` to `endpoint.id`: the endpoint and security group the
    /// operator owned ([`endpoint::owned_left_behind`]).
    pub owned_endpoint: bool,
}

impl Leftovers<'_> {
    /// Whether anything is left to release, `retiring` included.
    pub fn pending(&self, retiring: &[RetiringResource]) -> bool {
        !retiring.is_empty()
            || !self.stale_endpoints.is_empty()
            || !self.stale_statements.is_empty()
            || self.old_stages.is_some()
            || self.owned_endpoint
    }
}

/// Make-before-break, the break: what the stage no longer needs goes, in this order: the stages
/// of an earlier stageName, endpoints detached from the API, this object's statements for other
/// APIs, the retired function, API and endpoint ([`release`]), and after a move from
/// `endpoint.create` to `endpoint.id` the endpoint and security group the operator owned. Call
/// only once the stage serves a deployment of the current spec, and status.url names it.
pub async fn release_leftovers(
    ctx: &PartContext<'_>,
    retiring: &[RetiringResource],
    leftovers: &Leftovers<'_>,
    rest_api: &ApiInfo,
    endpoint: &EndpointInfo,
    function: &BackendInfo,
) -> Released {
    let mut changes = Vec::new();
    let mut errors = Vec::new();
    let mut gather = |result: Result<Vec<Change>, Error>| match result {
        Ok(done) => changes.extend(done),
        Err(err) => errors.push(err),
    };
    if let Some(deployed) = leftovers.old_stages {
        gather(deployment::delete_old_stages(ctx, &rest_api.rest_api_id, deployed).await);
    }
    gather(api::detach_stale(ctx, rest_api, &endpoint.vpc_endpoint_id).await);
    if !leftovers.stale_statements.is_empty() {
        gather(
            backend::remove_statements(ctx, &function.function_arn, leftovers.stale_statements)
                .await,
        );
    }
    let current = Current {
        function_arn: &function.function_arn,
        rest_api_id: &rest_api.rest_api_id,
        vpc_endpoint_id: &endpoint.vpc_endpoint_id,
    };
    let mut released = release(ctx, retiring, &current).await;
    changes.append(&mut released.changes);
    errors.append(&mut released.errors);
    if leftovers.owned_endpoint {
        match endpoint::cleanup_owned(ctx).await {
            Ok(cleanup) => {
                changes.extend(cleanup.changes);
                released.owned_endpoint_gone = Some(cleanup.done);
            }
            Err(err) => errors.push(err),
        }
    }
    Released {
        changes,
        errors,
        ..released
    }
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

    #[test]
    fn status_names_the_new_resource_and_keeps_the_old_one() {
        let previous = PrivateApiStatus {
            function_arn: Some("arn:f0".into()),
            rest_api_id: Some("api0".into()),
            ..Default::default()
        };
        let mut status = previous.clone();
        now_names(&mut status, &previous, FUNCTION, "arn:a");
        now_names(&mut status, &previous, REST_API, "api0");
        now_names(&mut status, &previous, VPC_ENDPOINT, "vpce-1");
        assert_eq!(status.function_arn.as_deref(), Some("arn:a"));
        assert_eq!(status.rest_api_id.as_deref(), Some("api0"));
        assert_eq!(status.vpc_endpoint_id.as_deref(), Some("vpce-1"));
        assert_eq!(status.retiring, vec![r(FUNCTION, "arn:f0")]);
        // A kind this version does not know: nothing.
        let before = status.clone();
        now_names(&mut status, &previous, "Queue", "q");
        assert_eq!(status, before);
    }

    #[test]
    fn the_deployment_waits_for_what_it_switches_to() {
        let endpoint = EndpointInfo {
            vpc_endpoint_id: "vpce-2".into(),
            security_group_id: None,
            private_dns: false,
            dns_names: Vec::new(),
            available: false,
            owned: false,
        };
        let function = BackendInfo {
            function_arn: "arn:b".into(),
            function_name: "b".into(),
            owned: true,
            active: false,
        };
        // Nothing switches: nothing to wait for.
        assert_eq!(hold_deployment(&[], false, &endpoint, &function), None);
        let held = hold_deployment(&[r(FUNCTION, "arn:a")], false, &endpoint, &function);
        assert!(held.is_some_and(|s| !s.ready && s.message.contains(" b is Active")));
        let held = hold_deployment(&[], true, &endpoint, &function);
        assert!(held.is_some_and(|s| s.message.contains("vpce-2 is available")));
        let ready = EndpointInfo {
            available: true,
            ..endpoint
        };
        assert_eq!(
            hold_deployment(&[r(VPC_ENDPOINT, "vpce-1")], true, &ready, &function),
            None
        );
    }

    #[test]
    fn leftovers_are_pending_while_anything_is_left() {
        let none = Leftovers {
            old_stages: None,
            stale_endpoints: &[],
            stale_statements: &[],
            owned_endpoint: false,
        };
        assert!(!none.pending(&[]));
        assert!(none.pending(&[r(REST_API, "api0")]));
        let statements = ["sid".to_string()];
        let with_statements = Leftovers {
            stale_statements: &statements,
            ..none
        };
        assert!(with_statements.pending(&[]));
        let owned = Leftovers {
            owned_endpoint: true,
            ..none
        };
        assert!(owned.pending(&[]));
    }
}
