//! The reads: what a reconcile of `endpoint.create` finds (the owned endpoint by the ID in
//! status, else by ownership tags; the managed group through `security_group`), and an endpoint
//! by its ID.

use super::SERVICE;
use super::model::{Lifecycle, LiveEndpoint, choose_endpoint, service_name};
use super::sdk::{filter, ownership_filters};
use super::security_group::{LiveGroup, observe_group};
use super::validate::check_adoptable;
use crate::crd::CreateEndpointSpec;
use crate::error::{AwsErrorKind, AwsResultExt, Error, Result};
use crate::parts::{FIELD_ADOPT_ENDPOINT, PartContext};

/// What a reconcile of `endpoint.create` finds.
#[derive(Debug, Default)]
pub(super) struct ObservedOwned {
    pub(super) group: Option<LiveGroup>,
    pub(super) endpoints: ObservedEndpoints,
}

pub(super) async fn observe_owned(
    ctx: &PartContext<'_>,
    create: &CreateEndpointSpec,
) -> Result<ObservedOwned> {
    // Independent reads: at the same time.
    let (group, endpoints) =
        tokio::try_join!(observe_group(ctx, create), observe_endpoints(ctx, create))?;
    Ok(ObservedOwned { group, endpoints })
}

/// The owned endpoints found.
#[derive(Debug, Default)]
pub(super) struct ObservedEndpoints {
    pub(super) keep: Option<LiveEndpoint>,
    /// Other live endpoints owned by this object (a past duplicate): deleted.
    pub(super) duplicates: Vec<LiveEndpoint>,
    /// Owned endpoints that failed: deleted.
    pub(super) failed: Vec<LiveEndpoint>,
    /// Owned endpoints still `deleting` (e.g. deleted outside the operator).
    pub(super) deleting: Vec<String>,
    /// `keep` is the endpoint named in `spec.adopt`, not yet tagged as this object's.
    pub(super) adopting: bool,
}

pub(super) async fn describe_endpoint(
    ctx: &PartContext<'_>,
    id: &str,
) -> Result<Option<LiveEndpoint>> {
    let found = ctx.reader.vpc_endpoint(id).await?;
    Ok(found.as_ref().and_then(LiveEndpoint::from_sdk))
}

/// The endpoint the spec names in `field`: a malformed ID is the spec's fault, a missing endpoint
/// a reference that may still appear.
pub(super) async fn describe_named_endpoint(
    ctx: &PartContext<'_>,
    id: &str,
    field: &str,
) -> Result<LiveEndpoint> {
    describe_endpoint(ctx, id)
        .await
        .map_err(|err| err.into_invalid_spec_if(&[AwsErrorKind::InvalidRequest], field))?
        .ok_or_else(|| {
            Error::reference_not_found(
                field,
                format!("VPC endpoint {id} does not exist in {}", ctx.aws.region),
            )
        })
}

/// Every endpoint carrying this object's ownership tags (in `vpc_id` when given), whatever its
/// state.
pub(super) async fn find_owned_endpoints(
    ctx: &PartContext<'_>,
    vpc_id: Option<&str>,
) -> Result<Vec<LiveEndpoint>> {
    let mut request = ctx
        .aws
        .ec2
        .describe_vpc_endpoints()
        .set_filters(Some(ownership_filters(ctx.owner)));
    if let Some(vpc) = vpc_id {
        request = request.filters(filter("vpc-id", [vpc]));
    }
    let endpoints: std::result::Result<Vec<_>, _> =
        request.into_paginator().items().send().collect().await;
    let found = endpoints
        .aws(SERVICE, "DescribeVpcEndpoints")?
        .iter()
        .filter_map(LiveEndpoint::from_sdk)
        // The filters are the server's; ownership is checked here too.
        .filter(|e| e.owned_by(ctx))
        .collect();
    Ok(found)
}

/// The owned endpoint: by the ID in status if it is still there and ours (status may hold a
/// referenced endpoint after a switch from `id` to `create`: never adopted), else by ownership
/// tags in the VPC, skipping tombstones.
async fn observe_endpoints(
    ctx: &PartContext<'_>,
    create: &CreateEndpointSpec,
) -> Result<ObservedEndpoints> {
    let service = service_name(&ctx.aws.region);
    let mine = |e: &LiveEndpoint| e.vpc_id == create.vpc_id && e.service_name == service;
    let adopt_id = ctx
        .spec
        .adopt
        .as_ref()
        .and_then(|a| a.vpc_endpoint_id.as_deref());
    let status_id = ctx.status.vpc_endpoint_id.as_deref();
    let mut failed = Vec::new();
    if let Some(id) = status_id
        && adopt_id.is_none_or(|adopt| adopt == id)
        && let Some(live) = describe_endpoint(ctx, id).await?
        && live.owned_by(ctx)
        && mine(&live)
    {
        match live.lifecycle() {
            Lifecycle::Gone => {}
            Lifecycle::Failed => failed.push(live),
            _ => {
                return Ok(ObservedEndpoints {
                    keep: Some(live),
                    ..Default::default()
                });
            }
        }
    }
    let mut alive = Vec::new();
    let mut deleting = Vec::new();
    for live in find_owned_endpoints(ctx, Some(&create.vpc_id)).await? {
        if !mine(&live) {
            continue;
        }
        match live.lifecycle() {
            Lifecycle::Gone if live.state.eq_ignore_ascii_case("deleting") => {
                deleting.push(live.id)
            }
            Lifecycle::Gone => {}
            Lifecycle::Failed => {
                if !failed.iter().any(|f: &LiveEndpoint| f.id == live.id) {
                    failed.push(live);
                }
            }
            _ => alive.push(live),
        }
    }
    if let Some(adopt_id) = adopt_id
        && !alive.iter().any(|e| e.id == adopt_id)
    {
        // Not (yet) ours: the endpoint named in spec.adopt, checked before anything changes. The
        // endpoints the operator made before are duplicates from now on.
        let live = describe_named_endpoint(ctx, adopt_id, FIELD_ADOPT_ENDPOINT).await?;
        check_adoptable(ctx, &live, create)?;
        alive.sort_by(|a, b| a.id.cmp(&b.id));
        return Ok(ObservedEndpoints {
            keep: Some(live),
            duplicates: alive,
            failed,
            deleting,
            adopting: true,
        });
    }
    let (keep, duplicates) = choose_endpoint(alive, adopt_id.or(status_id));
    Ok(ObservedEndpoints {
        keep,
        duplicates,
        failed,
        deleting,
        adopting: false,
    })
}
