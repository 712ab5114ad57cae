//! The REST API: type PRIVATE, its endpoint configuration (the endpoints allowed to reach it) and
//! its resource policy (Deny unless `aws:SourceVpce` is one of them, then Allow).

use std::collections::{BTreeMap, BTreeSet};

use aws_sdk_apigateway::types::{EndpointConfiguration, EndpointType, Op, PatchOperation};

use super::{AdoptedFrom, Change, Cleanup, Outcome, PartContext};
use crate::aws::apigateway_without_retries;
use crate::conditions::{PartState, reason};
use crate::crd::RetiringResource;
use crate::error::{AwsResultExt, Error, NotFoundExt, Result};
use crate::policy;

mod desired;
mod observe;
#[cfg(test)]
mod tests;

pub use crate::model::LiveApi;
pub use desired::{DesiredApi, diff, rest_api_arn, stale_endpoint_ids};
pub use observe::{find_owned, other_users_of_endpoint};

use desired::describe_op;
use observe::{Observed, get_api, observe, owned_by};

const SERVICE: &str = "APIGateway";

/// What later parts need of the REST API.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiInfo {
    pub rest_api_id: String,
    pub root_resource_id: Option<String>,
    /// Taken over from `spec.adopt.restApiId` in this reconcile, with its configuration already
    /// as the spec wants it (no UpdateRestApi): its stage may keep serving its deployment.
    pub adopted_unchanged: bool,
    /// The VPC endpoints its endpoint configuration names now. Endpoints the spec no longer names
    /// stay attached until the stage serves a deployment without them ([`detach_stale`]).
    pub vpc_endpoint_ids: BTreeSet<String>,
}

pub async fn reconcile(ctx: &PartContext<'_>, vpc_endpoint_id: &str) -> Result<Outcome<ApiInfo>> {
    let desired = DesiredApi::new(ctx, vpc_endpoint_id);
    let Observed {
        live,
        duplicates,
        adopting,
    } = observe(ctx).await?;
    let mut changes = Vec::new();
    if let Some(live) = live.as_ref().filter(|_| adopting) {
        // Tagged first: from here on the API is found as this object's, and deleted with it.
        tag_api(ctx, &live.id, desired.tags.clone()).await?;
        changes.push(Change::adopted("RestApi", &live.id, AdoptedFrom::Spec));
    }
    for duplicate in duplicates {
        if ctx.status.serving_until_now(
            RetiringResource::REST_API,
            ctx.status.rest_api_id.as_deref(),
            &duplicate.id,
        ) {
            // `spec.adopt` named another API: this one serves until the adopted one's stage does
            // (released by the reconciler then, see `crate::retiring`).
            continue;
        }
        delete_api(ctx, &duplicate.id).await?;
        changes.push(Change::new(
            "Deleted",
            format!("REST API {}", duplicate.id),
            if adopting {
                "made by the operator before spec.adopt named another REST API"
            } else {
                "a duplicate owned by this object"
            },
        ));
    }
    let Some(live) = live else {
        let api = create(ctx, &desired).await?;
        changes.push(Change::new(
            "Created",
            format!("REST API {}", api.rest_api_id),
            "private REST API with its resource policy",
        ));
        return Ok(Outcome {
            value: api,
            state: PartState::ready(
                reason::AVAILABLE,
                "private REST API and resource policy in sync",
            ),
            changes,
        });
    };
    if !adopting
        && let Some(previous_uid) = live.tags.get(crate::identity::TAG_UID)
        && previous_uid != &ctx.owner.uid
    {
        // Same cluster and object name, another UID: the object was re-created (or the cluster
        // rebuilt). The uid tag is updated with the other tags below.
        changes.push(Change::adopted(
            "RestApi",
            &live.id,
            AdoptedFrom::PreviousObject(previous_uid.clone()),
        ));
    }
    let prefix = policy::execute_api_arn_prefix(&ctx.aws.region, &ctx.aws.account_id, &live.id);
    let (ops, missing_tags) = if adopting {
        // Just tagged with the desired tags.
        (diff(&live, &desired, &prefix).0, BTreeMap::new())
    } else {
        diff(&live, &desired, &prefix)
    };
    let adopted_unchanged = adopting && ops.is_empty();
    let attached: BTreeSet<String> = live
        .vpc_endpoint_ids
        .iter()
        .chain(&desired.vpc_endpoint_ids)
        .cloned()
        .collect();
    if !ops.is_empty() {
        let detail = ops.iter().map(describe_op).collect::<Vec<_>>().join(", ");
        ctx.aws
            .apigateway
            .update_rest_api()
            .rest_api_id(&live.id)
            .set_patch_operations(Some(ops))
            .send()
            .await
            .aws(SERVICE, "UpdateRestApi")?;
        changes.push(Change::new(
            "Updated",
            format!("REST API {}", live.id),
            detail,
        ));
    }
    if !missing_tags.is_empty() {
        tag_api(ctx, &live.id, missing_tags).await?;
        changes.push(Change::new(
            "Updated",
            format!("REST API {}", live.id),
            "tags",
        ));
    }
    Ok(Outcome {
        value: ApiInfo {
            rest_api_id: live.id,
            root_resource_id: live.root_resource_id,
            adopted_unchanged,
            vpc_endpoint_ids: attached,
        },
        state: PartState::ready(
            reason::AVAILABLE,
            "private REST API and resource policy in sync",
        ),
        changes,
    })
}

/// Detach the endpoints the spec no longer names: called once the stage serves a deployment whose
/// policy does not admit them.
pub async fn detach_stale(
    ctx: &PartContext<'_>,
    api: &ApiInfo,
    vpc_endpoint_id: &str,
) -> Result<Vec<Change>> {
    let desired = DesiredApi::new(ctx, vpc_endpoint_id);
    let stale = stale_endpoint_ids(&api.vpc_endpoint_ids, &desired);
    if stale.is_empty() {
        return Ok(Vec::new());
    }
    let ops: Vec<PatchOperation> = stale
        .iter()
        .map(|id| {
            PatchOperation::builder()
                .op(Op::Remove)
                .path("/endpointConfiguration/vpcEndpointIds")
                .value(id)
                .build()
        })
        .collect();
    ctx.aws
        .apigateway
        .update_rest_api()
        .rest_api_id(&api.rest_api_id)
        .set_patch_operations(Some(ops))
        .send()
        .await
        .aws(SERVICE, "UpdateRestApi")?;
    Ok(vec![Change::new(
        "Updated",
        format!("REST API {}", api.rest_api_id),
        format!(
            "VPC endpoint(s) {} detached: the stage serves a policy without them",
            stale.join(", ")
        ),
    )])
}

/// Delete a REST API an earlier spec used (`spec.adopt` named another, `current`), if it is this
/// object's. Gone already: nothing to do. `crate::retiring` never passes the current one.
pub async fn release_retired(
    ctx: &PartContext<'_>,
    id: &str,
    current: &str,
) -> Result<Vec<Change>> {
    match get_api(ctx, id).await? {
        Some(api) if owned_by(ctx, &api) => {
            delete_api(ctx, id).await?;
            Ok(vec![Change::new(
                "Deleted",
                format!("REST API {id}"),
                format!("replaced by REST API {current}, whose stage now serves"),
            )])
        }
        _ => Ok(Vec::new()),
    }
}

async fn create(ctx: &PartContext<'_>, desired: &DesiredApi) -> Result<ApiInfo> {
    let endpoint_configuration = EndpointConfiguration::builder()
        .types(EndpointType::Private)
        .set_vpc_endpoint_ids(Some(desired.vpc_endpoint_ids.iter().cloned().collect()))
        .build();
    // CreateRestApi has no idempotency token: no SDK retries, so a lost response is followed by a
    // lookup by tags on the next reconcile instead of a second API.
    let out = ctx
        .aws
        .apigateway
        .create_rest_api()
        .name(ctx.owner.rest_api_name())
        .set_description(desired.description.clone())
        .endpoint_configuration(endpoint_configuration)
        .policy(desired.policy.to_string())
        .set_tags(Some(desired.tags.clone().into_iter().collect()))
        .customize()
        .config_override(apigateway_without_retries())
        .send()
        .await
        .aws(SERVICE, "CreateRestApi")
        .map_err(|err| {
            err.into_invalid_spec_if(
                &[crate::error::AwsErrorKind::InvalidRequest],
                "spec.endpoint",
            )
        })?;
    let rest_api_id = out.id.ok_or_else(|| Error::Unexpected {
        operation: "CreateRestApi",
        message: "no id in the answer".into(),
    })?;
    Ok(ApiInfo {
        rest_api_id,
        root_resource_id: out.root_resource_id,
        adopted_unchanged: false,
        vpc_endpoint_ids: desired.vpc_endpoint_ids.clone(),
    })
}

async fn tag_api(ctx: &PartContext<'_>, id: &str, tags: BTreeMap<String, String>) -> Result<()> {
    ctx.aws
        .apigateway
        .tag_resource()
        .resource_arn(rest_api_arn(&ctx.aws.region, id))
        .set_tags(Some(tags.into_iter().collect()))
        .send()
        .await
        .aws(SERVICE, "TagResource")?;
    Ok(())
}

async fn delete_api(ctx: &PartContext<'_>, id: &str) -> Result<()> {
    ctx.aws
        .apigateway
        .delete_rest_api()
        .rest_api_id(id)
        .send()
        .await
        .aws(SERVICE, "DeleteRestApi")
        .or_not_found()?;
    Ok(())
}

/// Delete every REST API this object owns (the one in status and any found by tags). Its stages,
/// deployments, resources and methods go with it.
pub async fn cleanup(ctx: &PartContext<'_>) -> Result<Cleanup> {
    let mut changes = Vec::new();
    let mut ids: BTreeSet<String> = find_owned(ctx)
        .await?
        .into_iter()
        .map(|api| api.id)
        .collect();
    if let Some(id) = ctx.status.rest_api_id.as_deref()
        && let Some(api) = get_api(ctx, id).await?
        && ctx
            .owner
            .owns(api.tags.iter().map(|(k, v)| (k.as_str(), v.as_str())))
    {
        ids.insert(api.id);
    }
    for id in ids {
        delete_api(ctx, &id).await?;
        changes.push(Change::new(
            "Deleted",
            format!("REST API {id}"),
            "with its stages and deployments",
        ));
    }
    Ok(Cleanup {
        done: true,
        changes,
    })
}
