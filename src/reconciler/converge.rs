//! The order of the parts in one reconcile: what each needs of the others, when the status is
//! written, and when what an earlier spec used goes. The parts do the work (`crate::parts`,
//! `crate::retiring`); [`Gathered::part`] folds each one's outcome.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use kube::ResourceExt;
use kube::api::Api;
use kube::runtime::controller::Action;

use super::context::{Context, confirm, owner_of, region_of};
use super::decision::{Converged, Mode, check_differs, look_again, with_jitter};
use super::events::publish;
use super::fold::{Gathered, combine, dependency, record_adoptions, set_conditions};
use super::object_key;
use crate::conditions;
use crate::crd::{PrivateApi, PrivateApiStatus};
use crate::error::Result;
use crate::observed::Reader;
use crate::parts::api::DesiredApi;
use crate::parts::domain::DomainTarget;
use crate::parts::{PartContext, api, backend, deployment, domain, endpoint, routes};
use crate::retiring::{self, Leftovers};
use crate::status;

/// Make AWS match the spec, part by part (`Mode::Check`: only compare, through clients that
/// refuse every write). `quota_reported`: a wait for quota was reported on the object meanwhile
/// (see [`reporting_quota_waits`](super::quota_reports::reporting_quota_waits)), so the status is
/// written even if it looks unchanged.
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
    // What the object's status says, as far as the reconciler owns it.
    let seen = object.status.as_ref().map(status::operator_view);
    let previous = seen.clone().unwrap_or_default();
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
        reader: match mode {
            Mode::Fresh => Reader::remembering(clients, &observed),
            Mode::Check { deep } => {
                Reader::shared(clients, &observed, ctx.observations.window(), deep)
            }
        },
    };
    let mut gathered = Gathered::default();
    // The object's status on the API server as far as this reconcile knows (it writes the new
    // IDs as soon as they exist).
    let mut on_server = seen.clone();

    // 1. The endpoint and the function do not depend on each other: in parallel.
    let (endpoint_result, function_result) = tokio::join!(
        endpoint::reconcile(&pctx),
        backend::reconcile_function(&pctx)
    );
    let (endpoint_state, endpoint) = gathered.part(endpoint_result);
    let (function_state, function) = gathered.part(function_result);
    // Make-before-break: what status named before stays, recorded in `retiring`, until the stage
    // serves a deployment that no longer uses it. Written together with the new IDs, before
    // anything is wired to them.
    if let Some(endpoint) = &endpoint {
        let id = &endpoint.vpc_endpoint_id;
        retiring::now_names(&mut status, &previous, retiring::VPC_ENDPOINT, id);
        status.security_group_id = endpoint::group_in_status(&pctx, endpoint);
    }
    if let Some(function) = &function {
        let arn = &function.function_arn;
        retiring::now_names(&mut status, &previous, retiring::FUNCTION, arn);
    }
    // IDs go to status as soon as the resources exist.
    if status != previous {
        if mode != Mode::Fresh {
            return Ok(Converged::Differs(
                "the endpoint's or function's ID changed".into(),
            ));
        }
        let last = object.status.as_ref();
        status::write_if_changed(&kube_api, &name, last, &status, &ctx.last_writes).await?;
        on_server = Some(status.clone());
    }

    // 2. The REST API needs the endpoint's ID (not its availability).
    let (api_state, rest_api) = match &endpoint {
        Some(endpoint) => gathered.part(api::reconcile(&pctx, &endpoint.vpc_endpoint_id).await),
        None => (dependency("waiting for the VPC endpoint"), None),
    };
    if let Some(rest_api) = &rest_api {
        let id = &rest_api.rest_api_id;
        retiring::now_names(&mut status, &previous, retiring::REST_API, id);
    }

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
        routes_changed = routes_result
            .as_ref()
            .map_or(true, |outcome| !outcome.changes.is_empty());
        let (routes_state, _) = gathered.part(routes_result);
        let (permission_state, statements) = gathered.part(permission_result);
        stale_statements = statements.unwrap_or_default();
        wired = routes_state.ready && permission_state.ready;
        backend_states.extend([routes_state, permission_state]);
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
        (Some(endpoint), Some(function)) => retiring::hold_deployment(
            &status.retiring,
            !stale_endpoints.is_empty(),
            endpoint,
            function,
        ),
        _ => None,
    };
    let (deployed_state, deployed) = match (&rest_api, &endpoint, &function, hold) {
        (_, _, _, Some(hold)) => (hold, None),
        (Some(rest_api), Some(endpoint), Some(function), None) if wired => {
            let fingerprint = deployment::desired_fingerprint(
                &pctx,
                &endpoint.vpc_endpoint_id,
                &function.function_arn,
            );
            // An adopted API that needed no change keeps serving its deployment (see there).
            let adopt_current = rest_api.adopted_unchanged && !routes_changed;
            let fingerprints = &ctx.fingerprints;
            gathered.part(
                deployment::reconcile(&pctx, fingerprints, rest_api, &fingerprint, adopt_current)
                    .await,
            )
        }
        _ => (
            dependency("waiting for the REST API, its routes and the function"),
            None,
        ),
    };
    if let Some(deployed) = &deployed {
        status.deployment_id = Some(deployed.deployment_id.clone());
        status.stage_name = Some(deployed.stage_name.clone());
    }
    let old_stages = deployed.filter(|d| !d.old_stages.is_empty());

    // The URL of what serves now.
    if let (Some(rest_api), Some(endpoint)) = (&rest_api, &endpoint) {
        status::set_invoke_urls(
            &mut status,
            &clients.region,
            &rest_api.rest_api_id,
            endpoint,
        );
    }

    // 4b. The custom domain name maps the stage once it serves the current spec (and goes when
    // the spec no longer names one).
    let domain_state = if object.spec.domain.is_some() || previous.domain.is_some() {
        Some(match (&rest_api, &endpoint, status.stage_name.clone()) {
            (Some(rest_api), Some(endpoint), Some(stage)) if deployed_state.ready => {
                let mut endpoints: std::collections::BTreeSet<String> = object
                    .spec
                    .additional_vpc_endpoint_ids
                    .iter()
                    .cloned()
                    .collect();
                endpoints.insert(endpoint.vpc_endpoint_id.clone());
                let target = DomainTarget {
                    rest_api_id: &rest_api.rest_api_id,
                    stage: &stage,
                    endpoints,
                    endpoint_dns: endpoint.dns_names.first().map(String::as_str),
                };
                let (state, value) = gathered.part(domain::reconcile(&pctx, &target).await);
                if let Some(value) = value {
                    status::set_custom_domain_url(&mut status, object.spec.domain.as_ref(), &value);
                    status.domain = value;
                }
                state
            }
            _ => dependency("waiting for the stage to serve the current spec"),
        })
    } else {
        None
    };

    // 5. Make-before-break: once the stage serves a deployment of the current spec, what it no
    // longer needs goes (`retiring::release_leftovers` says what, in which order).
    let serving_current = deployed_state.ready;
    let leftovers = Leftovers {
        old_stages: old_stages.as_ref(),
        stale_endpoints: &stale_endpoints,
        stale_statements: &stale_statements,
        owned_endpoint: endpoint::owned_left_behind(&pctx),
    };
    let release_pending = leftovers.pending(&status.retiring);
    if mode != Mode::Fresh && release_pending {
        return Ok(Converged::Differs(
            "resources of an earlier spec to release".into(),
        ));
    }
    // Clients follow status.url: it names what serves now before what it named before (a stage,
    // a REST API, the endpoint of its alias) goes.
    if serving_current && release_pending && status.url != previous.url {
        let last = on_server.as_ref();
        status::write_if_changed(&kube_api, &name, last, &status, &ctx.last_writes).await?;
        on_server = Some(status.clone());
    }
    let mut cleanup_pending = false;
    // Serving the current spec means all three parts are there (their deployment serves).
    if serving_current
        && let (Some(rest_api), Some(endpoint), Some(function)) = (&rest_api, &endpoint, &function)
    {
        let released = retiring::release_leftovers(
            &pctx,
            &status.retiring,
            &leftovers,
            rest_api,
            endpoint,
            function,
        )
        .await;
        gathered.changes.extend(released.changes);
        gathered.errors.extend(released.errors);
        status.retiring = released.remaining;
        match released.owned_endpoint_gone {
            Some(true) => status.security_group_id = None,
            // The group waits for the endpoint's network interfaces: look again soon, not
            // after a full resync period.
            Some(false) => cleanup_pending = true,
            None => {}
        }
    }

    // 6. Conditions and status.
    let mut parts = vec![
        (conditions::ENDPOINT_READY, &endpoint_state),
        (conditions::API_READY, &api_state),
        (conditions::BACKEND_READY, &backend_state),
        (conditions::DEPLOYED, &deployed_state),
    ];
    // DomainReady only while the spec names a domain.
    match (&domain_state, object.spec.domain.is_some()) {
        (Some(state), true) => parts.push((conditions::DOMAIN_READY, state)),
        _ => status
            .conditions
            .retain(|c| c.type_ != conditions::DOMAIN_READY),
    }
    let ready = set_conditions(&mut status, &parts, generation);
    record_adoptions(&mut status.adopted, &gathered.changes);
    if mode != Mode::Fresh {
        let write_attempted = read_only.as_ref().is_some_and(|r| r.write_attempted());
        let left_to_do = cleanup_pending || release_pending;
        let before = seen.as_ref();
        return Ok(
            match check_differs(
                write_attempted,
                &gathered,
                &ready,
                left_to_do,
                &status,
                before,
            ) {
                Some(why) => Converged::Differs(why),
                None => {
                    confirm(ctx, &key, generation, &status, None);
                    Converged::Done(Action::requeue(with_jitter(ctx.resync, &key)))
                }
            },
        );
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
    publish(ctx, &object, &gathered.changes, &gathered.errors).await;
    if ready.ready && !cleanup_pending && gathered.errors.is_empty() {
        confirm(ctx, &key, generation, &status, written);
    } else {
        ctx.confirmed().remove(&key);
    }

    // 7. When to look again.
    let action = look_again(ctx, &key, gathered.errors, &parts, &ready, cleanup_pending)?;
    Ok(Converged::Done(action))
}
