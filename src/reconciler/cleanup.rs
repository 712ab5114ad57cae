//! The finalizer's Cleanup: what the operator created goes, in dependency order, unless the
//! policy is Retain.

use std::sync::Arc;

use kube::ResourceExt;
use kube::api::Api;
use kube::runtime::controller::Action;
use tracing::warn;

use super::context::{Context, owner_of, region_of};
use super::events::publish;
use super::object_key;
use super::quota_reports::reporting_quota_waits;
use crate::conditions::{self, PartState, reason};
use crate::crd::{DeletionPolicy, PrivateApi};
use crate::error::{Error, Result};
use crate::observed::Reader;
use crate::parts::{Change, PartContext, api, backend, domain, endpoint};
use crate::status;

/// Remove what the operator created, in dependency order, unless the policy is Retain.
pub(super) async fn cleanup(object: Arc<PrivateApi>, ctx: &Context) -> Result<Action> {
    let key = object_key(&object.metadata);
    ctx.confirmed().remove(&key);
    ctx.set_waiting_for_aws(&key, false);
    ctx.observations.forget(&key);
    if let Some(status) = &object.status {
        ctx.observations.region(&region_of(&object, ctx)).forget(
            status.rest_api_id.as_deref(),
            status.function_arn.as_deref(),
        );
    }
    ctx.last_writes.forget(&key);
    reporting_quota_waits(&object, ctx, |_| {
        Box::pin(remove_all(object.clone(), ctx, key))
    })
    .await
}

async fn remove_all(object: Arc<PrivateApi>, ctx: &Context, key: String) -> Result<Action> {
    ctx.metrics.set_ready(&key, None);
    if object.spec.deletion_policy == DeletionPolicy::Retain {
        let change = Change::new("Retained", "all AWS resources", "deletionPolicy is Retain");
        publish(ctx, &object, &[change], &[]).await;
        return Ok(Action::await_change());
    }
    let owner = owner_of(&object, ctx);
    let region = region_of(&object, ctx);
    let clients = ctx.aws.for_region(&region).await?;
    let previous = object
        .status
        .as_ref()
        .map(status::operator_view)
        .unwrap_or_default();
    let pctx = PartContext {
        aws: &clients,
        owner: &owner,
        spec: &object.spec,
        status: &previous,
        settings: &ctx.settings,
        reader: Reader::direct(&clients),
    };
    let mut changes = Vec::new();
    // The custom domain name first (record, mappings, associations, domain: it maps the stage
    // and is associated with the endpoints); then the API (its stages and deployments go with
    // it), so nothing invokes the function or references the endpoint any more; then the
    // function's permission and the function; then the endpoint and its security group.
    let result = async {
        changes.extend(domain::cleanup(&pctx).await?.changes);
        changes.extend(api::cleanup(&pctx).await?.changes);
        changes.extend(backend::cleanup(&pctx).await?.changes);
        let endpoint = endpoint::cleanup_owned(&pctx).await?;
        changes.extend(endpoint.changes);
        Ok::<bool, Error>(endpoint.done)
    }
    .await;
    match &result {
        Err(err) => {
            publish(ctx, &object, &changes, std::slice::from_ref(err)).await;
            // Say on the object why it is not gone yet.
            let mut status = previous.clone();
            let state = PartState::not_ready(reason::DELETING, err.to_string());
            let now = k8s_openapi::jiff::Timestamp::now();
            let generation = object.metadata.generation;
            conditions::set_condition(
                &mut status.conditions,
                conditions::READY,
                &state,
                generation,
                now,
            );
            let kube_api: Api<PrivateApi> =
                Api::namespaced(ctx.client.clone(), &object.namespace().unwrap_or_default());
            if let Err(write_err) = status::write_if_changed(
                &kube_api,
                &object.name_any(),
                object.status.as_ref(),
                &status,
                &ctx.last_writes,
            )
            .await
            {
                warn!(error = %write_err, "cannot write status while deleting");
            }
        }
        Ok(_) => publish(ctx, &object, &changes, &[]).await,
    }
    match result {
        Ok(true) => Ok(Action::await_change()),
        Ok(false) => Err(Error::CleanupInProgress(
            "waiting for the endpoint's network interfaces to go away before deleting its security group".into(),
        )),
        Err(err) => Err(err),
    }
}
