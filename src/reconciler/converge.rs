//! The order of the parts in one reconcile.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use kube::ResourceExt;
use kube::api::Api;
use kube::runtime::controller::Action;
use tracing::info;

use super::context::{Context, confirm, owner_of, region_of};
use super::decision::{Converged, INVALID_SPEC_RECHECK, Mode, PENDING_RECHECK, with_jitter};
use super::events::publish;
use super::fold::{combine, dependency, record_adoptions, state_of, switch_hold, waits_for_aws};
use super::object_key;
use crate::conditions;
use crate::crd::{PrivateApi, PrivateApiStatus};
use crate::error::{Error, Result};
use crate::observed::Reads;
use crate::parts::api::DesiredApi;
use crate::parts::{Change, Outcome, PartContext, api, backend, deployment, endpoint, routes};
use crate::retiring;
use crate::status;

/// Make AWS match the spec, part by part (`Mode::Check`: only compare, through clients that
/// refuse every write). `quota_reported`: a wait for quota was reported on the object meanwhile
/// (see [`reporting_quota_waits`]), so the status is written even if it looks unchanged.
pub(super) async fn converge(
    object: Arc<PrivateApi>,
    ctx: &Context,
    mode: Mode,
    quota_reported: Arc<AtomicBool>,
) -> Result<Converged> {
    let key = object_key(&object.metadata);
    let name = object.name_any();
    let kube_api: Api<PrivateApi> =
        Api::namespaced(ctx.client.clone(), &object.namespace().unwrap_or_default());
    let owner = owner_of(&object, ctx);
    let region = region_of(&object, ctx);
    let generation = object.metadata.generation;
    let previous = object.status.clone().unwrap_or_default();
    let mut status = PrivateApiStatus {
        region: Some(region.clone()),
        ..previous.clone()
    };
    let writable = ctx.aws.for_region(&region).await?;
    // A check is given clients that cannot write: whatever path a part takes, it changes nothing.
    let read_only = (mode != Mode::Fresh).then(|| writable.read_only());
    let clients = read_only.as_ref().map_or(&*writable, |r| r.clients());
    let observed = ctx.observations.region(&region);
    let pctx = PartContext {
        aws: clients,
        owner: &owner,
        spec: &object.spec,
        status: &previous,
        settings: &ctx.settings,
        reads: Some(Reads {
            region: &observed,
            window: ctx.observations.window(),
            shared: mode != Mode::Fresh,
            deep: matches!(mode, Mode::Check { deep: true }),
        }),
    };
    let mut changes: Vec<Change> = Vec::new();
    let mut errors: Vec<Error> = Vec::new();
    // The object's status on the API server as far as this reconcile knows (it writes the new
    // IDs as soon as they exist).
    let mut on_server = object.status.clone();

    // 1. The endpoint and the function do not depend on each other: in parallel.
    let (endpoint_result, function_result) = tokio::join!(
        endpoint::reconcile(&pctx),
        backend::reconcile_function(&pctx)
    );
    let (endpoint_state, endpoint) = match endpoint_result {
        Ok(outcome) => {
            changes.extend(outcome.changes);
            status.vpc_endpoint_id = Some(outcome.value.vpc_endpoint_id.clone());
            status.security_group_id = outcome.value.security_group_id.clone();
            // `endpoint.id` has no managed group: keep the one an earlier `endpoint.create` made
            // until step 5 has deleted it. Dropping it here (written to status just below) made
            // the reconcile after a DependencyViolation skip step 5, orphaning the group.
            if object.spec.endpoint.id.is_some() && status.security_group_id.is_none() {
                status.security_group_id = previous.security_group_id.clone();
            }
            (outcome.state, Some(outcome.value))
        }
        Err(err) => {
            let state = state_of(&err);
            errors.push(err);
            (state, None)
        }
    };
    let (function_state, function) = match function_result {
        Ok(outcome) => {
            changes.extend(outcome.changes);
            status.function_arn = Some(outcome.value.function_arn.clone());
            (outcome.state, Some(outcome.value))
        }
        Err(err) => {
            let state = state_of(&err);
            errors.push(err);
            (state, None)
        }
    };
    // Make-before-break: what status named before stays, recorded in `retiring`, until the stage
    // serves a deployment that no longer uses it. Written together with the new IDs, before
    // anything is wired to them.
    if let Some(endpoint) = &endpoint {
        retiring::replaced(
            &mut status.retiring,
            retiring::VPC_ENDPOINT,
            previous.vpc_endpoint_id.as_deref(),
            &endpoint.vpc_endpoint_id,
        );
    }
    if let Some(function) = &function {
        retiring::replaced(
            &mut status.retiring,
            retiring::FUNCTION,
            previous.function_arn.as_deref(),
            &function.function_arn,
        );
    }
    // IDs go to status as soon as the resources exist.
    if status != previous {
        if mode != Mode::Fresh {
            return Ok(Converged::Differs(
                "the endpoint's or function's ID changed".into(),
            ));
        }
        status::write_if_changed(
            &kube_api,
            &name,
            object.status.as_ref(),
            &status,
            &ctx.last_writes,
        )
        .await?;
        on_server = Some(status.clone());
    }

    // 2. The REST API needs the endpoint's ID (not its availability).
    let (api_state, rest_api) = match &endpoint {
        Some(endpoint) => match api::reconcile(&pctx, &endpoint.vpc_endpoint_id).await {
            Ok(outcome) => {
                changes.extend(outcome.changes);
                retiring::replaced(
                    &mut status.retiring,
                    retiring::REST_API,
                    previous.rest_api_id.as_deref(),
                    &outcome.value.rest_api_id,
                );
                status.rest_api_id = Some(outcome.value.rest_api_id.clone());
                (outcome.state, Some(outcome.value))
            }
            Err(err) => {
                let state = state_of(&err);
                errors.push(err);
                (state, None)
            }
        },
        None => (dependency("waiting for the VPC endpoint"), None),
    };

    // 3. Routes and the invoke permission need both the API and the function: in parallel.
    let mut backend_states = vec![function_state];
    let mut wired = false;
    let mut routes_changed = false;
    // This object's invoke statements for REST APIs it no longer uses: removed after deploying.
    let mut stale_statements: Vec<String> = Vec::new();
    if let (Some(rest_api), Some(function)) = (&rest_api, &function) {
        let (routes_result, permission_result) = tokio::join!(
            routes::reconcile(&pctx, rest_api, &function.function_arn),
            backend::reconcile_permission(&pctx, function, &rest_api.rest_api_id)
        );
        wired = true;
        routes_changed = routes_result
            .as_ref()
            .map_or(true, |outcome| !outcome.changes.is_empty());
        let permission_result = permission_result.map(|outcome| {
            stale_statements = outcome.value;
            Outcome {
                value: (),
                state: outcome.state,
                changes: outcome.changes,
            }
        });
        for result in [routes_result, permission_result] {
            match result {
                Ok(outcome) => {
                    changes.extend(outcome.changes);
                    wired &= outcome.state.ready;
                    backend_states.push(outcome.state);
                }
                Err(err) => {
                    wired = false;
                    backend_states.push(state_of(&err));
                    errors.push(err);
                }
            }
        }
    } else if function.is_some() {
        backend_states.push(dependency(
            "waiting for the REST API to wire the function to it",
        ));
    }
    let backend_state = combine(&backend_states);

    // 4. A deployment of what the API now is. During a switch, not before the new function or
    // endpoint can serve: the stage keeps serving the old one until then.
    let stale_endpoints = match (&rest_api, &endpoint) {
        (Some(rest_api), Some(endpoint)) => api::stale_endpoint_ids(
            &rest_api.vpc_endpoint_ids,
            &DesiredApi::new(&pctx, &endpoint.vpc_endpoint_id),
        ),
        _ => Vec::new(),
    };
    let hold = match (&endpoint, &function) {
        (Some(endpoint), Some(function)) => switch_hold(
            &status.retiring,
            !stale_endpoints.is_empty(),
            endpoint,
            function,
        ),
        _ => None,
    };
    let mut old_stages = None;
    let deployed_state = match (&rest_api, &endpoint, &function, hold) {
        (_, _, _, Some(hold)) => hold,
        (Some(rest_api), Some(endpoint), Some(function), None) if wired => {
            let desired = DesiredApi::new(&pctx, &endpoint.vpc_endpoint_id);
            let uri = routes::integration_uri(&clients.region, &function.function_arn);
            let fingerprint = deployment::fingerprint(&desired, &uri);
            // An adopted API that needed no change keeps serving its deployment (see there).
            let adopt_current = rest_api.adopted_unchanged && !routes_changed;
            match deployment::reconcile(
                &pctx,
                &ctx.fingerprints,
                rest_api,
                &fingerprint,
                adopt_current,
            )
            .await
            {
                Ok(outcome) => {
                    changes.extend(outcome.changes);
                    status.deployment_id = Some(outcome.value.deployment_id.clone());
                    status.stage_name = Some(outcome.value.stage_name.clone());
                    old_stages = Some(outcome.value).filter(|d| !d.old_stages.is_empty());
                    outcome.state
                }
                Err(err) => {
                    let state = state_of(&err);
                    errors.push(err);
                    state
                }
            }
        }
        _ => dependency("waiting for the REST API, its routes and the function"),
    };

    // The URL of what serves now.
    if let (Some(rest_api), Some(endpoint), Some(stage)) =
        (&rest_api, &endpoint, &status.stage_name)
    {
        let (url, urls) = status::invoke_urls(
            &clients.region,
            &rest_api.rest_api_id,
            stage,
            &endpoint.vpc_endpoint_id,
            endpoint.private_dns,
            &endpoint.dns_names,
        );
        status.url = Some(url);
        status.urls = Some(urls);
    }

    // 5. Make-before-break: once the stage serves a deployment of the current spec, what it no
    // longer needs goes: the stages of an earlier stageName, endpoints detached from the API,
    // this object's statements for other APIs, the retired function, API and endpoint, and after
    // a move from `endpoint.create` to `endpoint.id` the endpoint and security group the
    // operator owned.
    let serving_current = deployed_state.ready;
    let release_pending = !status.retiring.is_empty()
        || !stale_endpoints.is_empty()
        || !stale_statements.is_empty()
        || old_stages.is_some()
        || (object.spec.endpoint.id.is_some() && previous.security_group_id.is_some());
    if mode != Mode::Fresh && release_pending {
        return Ok(Converged::Differs(
            "resources of an earlier spec to release".into(),
        ));
    }
    // Clients follow status.url: it names what serves now before what it named before (a stage,
    // a REST API, the endpoint of its alias) goes.
    if serving_current && release_pending && status.url != previous.url {
        status::write_if_changed(
            &kube_api,
            &name,
            on_server.as_ref(),
            &status,
            &ctx.last_writes,
        )
        .await?;
        on_server = Some(status.clone());
    }
    let mut cleanup_pending = false;
    if serving_current
        && let (Some(rest_api), Some(endpoint), Some(function)) = (&rest_api, &endpoint, &function)
    {
        if let Some(deployed) = &old_stages {
            match deployment::delete_old_stages(&pctx, &rest_api.rest_api_id, deployed).await {
                Ok(deleted) => changes.extend(deleted),
                Err(err) => errors.push(err),
            }
        }
        match api::detach_stale(&pctx, rest_api, &endpoint.vpc_endpoint_id).await {
            Ok(detached) => changes.extend(detached),
            Err(err) => errors.push(err),
        }
        if !stale_statements.is_empty() {
            match backend::remove_statements(&pctx, &function.function_arn, &stale_statements).await
            {
                Ok(removed) => changes.extend(removed),
                Err(err) => errors.push(err),
            }
        }
        let current = retiring::Current {
            function_arn: &function.function_arn,
            rest_api_id: &rest_api.rest_api_id,
            vpc_endpoint_id: &endpoint.vpc_endpoint_id,
        };
        let released = retiring::release(&pctx, &status.retiring, &current).await;
        changes.extend(released.changes);
        errors.extend(released.errors);
        status.retiring = released.remaining;
    }
    if serving_current && object.spec.endpoint.id.is_some() && previous.security_group_id.is_some()
    {
        match endpoint::cleanup_owned(&pctx).await {
            Ok(cleanup) => {
                changes.extend(cleanup.changes);
                if cleanup.done {
                    status.security_group_id = None;
                }
                // The group waits for the endpoint's network interfaces: look again soon, not
                // after a full resync period.
                cleanup_pending = !cleanup.done;
            }
            Err(err) => errors.push(err),
        }
    }

    // 6. Conditions and status.
    let now = k8s_openapi::jiff::Timestamp::now();
    let parts = [
        (conditions::ENDPOINT_READY, &endpoint_state),
        (conditions::API_READY, &api_state),
        (conditions::BACKEND_READY, &backend_state),
        (conditions::DEPLOYED, &deployed_state),
    ];
    for (type_, state) in parts {
        conditions::set_condition(&mut status.conditions, type_, state, generation, now);
    }
    let ready = conditions::ready_state(&parts);
    conditions::set_condition(
        &mut status.conditions,
        conditions::READY,
        &ready,
        generation,
        now,
    );
    status.observed_generation = generation;
    record_adoptions(&mut status.adopted, &changes);
    if mode != Mode::Fresh {
        let differs = if read_only.as_ref().is_some_and(|r| r.write_attempted()) {
            Some("a part would change AWS".to_string())
        } else if !changes.is_empty() {
            Some(format!("{} change(s) to make", changes.len()))
        } else if let Some(err) = errors.first() {
            Some(err.to_string())
        } else if !ready.ready || cleanup_pending || release_pending {
            Some(format!("not ready: {}", ready.message))
        } else if Some(&status) != object.status.as_ref() {
            Some("the status would change".to_string())
        } else {
            None
        };
        return Ok(match differs {
            Some(why) => Converged::Differs(why),
            None => {
                confirm(ctx, &key, generation, &status, None);
                Converged::Done(Action::requeue(with_jitter(ctx.resync, &key)))
            }
        });
    }
    // Compared with the object's status: an unchanged outcome writes nothing. After a report
    // of a wait for quota (written meanwhile, see `reporting_quota_waits`) it is written in any
    // case.
    let current = if quota_reported.load(Ordering::SeqCst) {
        None
    } else {
        on_server.as_ref()
    };
    let written =
        status::write_if_changed(&kube_api, &name, current, &status, &ctx.last_writes).await?;
    ctx.metrics.set_ready(&key, Some(ready.ready));
    publish(ctx, &object, &changes, &errors).await;
    if ready.ready && !cleanup_pending && errors.is_empty() {
        confirm(ctx, &key, generation, &status, written);
    } else {
        ctx.confirmed().remove(&key);
    }

    // 7. When to look again.
    if !errors.is_empty() {
        ctx.set_waiting_for_aws(&key, false);
    }
    if let Some(invalid) = errors.iter().find(|e| e.is_invalid_spec()) {
        // Fix the manifest: retrying would only hammer AWS with the same request. But while
        // another part still waits for AWS (an endpoint pending), look again now and then so
        // its condition does not stay stale; once nothing waits, wait for a spec change.
        if parts.iter().any(|(_, state)| waits_for_aws(state)) {
            info!(object = %key, error = %invalid, "invalid spec; another part still waits for AWS");
            return Ok(Converged::Done(Action::requeue(INVALID_SPEC_RECHECK)));
        }
        info!(object = %key, error = %invalid, "invalid spec, waiting for a change");
        return Ok(Converged::Done(Action::await_change()));
    }
    if let Some(err) = errors.into_iter().next() {
        return Err(err);
    }
    let waiting = !ready.ready || cleanup_pending;
    ctx.set_waiting_for_aws(&key, waiting);
    if waiting {
        Ok(Converged::Done(Action::requeue(PENDING_RECHECK)))
    } else {
        Ok(Converged::Done(Action::requeue(with_jitter(
            ctx.resync, &key,
        ))))
    }
}
