//! The REST API: type PRIVATE, its endpoint configuration (the endpoints allowed to reach it) and
//! its resource policy (Deny unless `aws:SourceVpce` is one of them, then Allow).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use aws_sdk_apigateway::types::{EndpointConfiguration, EndpointType, Op, PatchOperation, RestApi};
use serde_json::Value;

use super::{AdoptedFrom, Change, Cleanup, FIELD_ADOPT_REST_API, Outcome, PartContext};
use crate::aws::{RegionClients, no_sdk_retries};
use crate::conditions::{PartState, reason};
use crate::crd::RetiringResource;
use crate::error::{AwsResultExt, Error, NotFoundExt, Result};
use crate::policy;

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

/// The REST API as AWS reports it, from `GetRestApi` or an item of `GetRestApis`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct LiveApi {
    pub id: String,
    pub description: Option<String>,
    pub created_epoch: i64,
    pub endpoint_types: Vec<String>,
    pub vpc_endpoint_ids: Vec<String>,
    pub policy: Option<String>,
    pub tags: HashMap<String, String>,
    pub root_resource_id: Option<String>,
}

impl LiveApi {
    fn from_parts(
        id: Option<String>,
        description: Option<String>,
        created: Option<aws_smithy_types::DateTime>,
        endpoint_configuration: Option<EndpointConfiguration>,
        policy: Option<String>,
        tags: Option<HashMap<String, String>>,
        root_resource_id: Option<String>,
    ) -> Option<Self> {
        let endpoint_configuration =
            endpoint_configuration.unwrap_or_else(|| EndpointConfiguration::builder().build());
        Some(Self {
            id: id?,
            description: description.filter(|d| !d.is_empty()),
            created_epoch: created.map(|d| d.secs()).unwrap_or_default(),
            endpoint_types: endpoint_configuration
                .types
                .unwrap_or_default()
                .iter()
                .map(|t| t.as_str().to_string())
                .collect(),
            vpc_endpoint_ids: endpoint_configuration.vpc_endpoint_ids.unwrap_or_default(),
            policy,
            tags: tags.unwrap_or_default(),
            root_resource_id,
        })
    }

    pub fn from_item(api: RestApi) -> Option<Self> {
        Self::from_parts(
            api.id,
            api.description,
            api.created_date,
            api.endpoint_configuration,
            api.policy,
            api.tags,
            api.root_resource_id,
        )
    }
}

/// What the REST API must look like.
#[derive(Debug, Clone, PartialEq)]
pub struct DesiredApi {
    pub description: Option<String>,
    pub vpc_endpoint_ids: BTreeSet<String>,
    pub policy: Value,
    pub tags: BTreeMap<String, String>,
}

impl DesiredApi {
    pub fn new(ctx: &PartContext<'_>, vpc_endpoint_id: &str) -> Self {
        let mut ids: BTreeSet<String> = ctx
            .spec
            .additional_vpc_endpoint_ids
            .iter()
            .cloned()
            .collect();
        ids.insert(vpc_endpoint_id.to_string());
        let id_list: Vec<String> = ids.iter().cloned().collect();
        Self {
            description: ctx.spec.description.clone().filter(|d| !d.is_empty()),
            policy: policy::desired_policy(&id_list),
            vpc_endpoint_ids: ids,
            tags: ctx.tags(),
        }
    }
}

/// The patch operations that make `live` match `desired` (empty when in sync), and the tags to add.
/// Endpoints are only added here: one the spec no longer names may still be what clients go
/// through until the stage serves a policy without it, so it is detached after that deployment
/// ([`stale_endpoint_ids`], [`detach_stale`]).
pub fn diff(
    live: &LiveApi,
    desired: &DesiredApi,
    api_arn_prefix: &str,
) -> (Vec<PatchOperation>, BTreeMap<String, String>) {
    let mut ops = Vec::new();
    let patch = |op: Op, path: &str, value: Option<&str>| {
        PatchOperation::builder()
            .op(op)
            .path(path)
            .set_value(value.map(str::to_string))
            .build()
    };
    // Someone turned the API into REGIONAL or EDGE: back to PRIVATE.
    for other in live
        .endpoint_types
        .iter()
        .filter(|t| t.as_str() != "PRIVATE")
    {
        ops.push(patch(
            Op::Replace,
            &format!("/endpointConfiguration/types/{other}"),
            Some("PRIVATE"),
        ));
    }
    if live.endpoint_types.is_empty() {
        ops.push(patch(
            Op::Add,
            "/endpointConfiguration/types",
            Some("PRIVATE"),
        ));
    }
    let live_ids: BTreeSet<&String> = live.vpc_endpoint_ids.iter().collect();
    for id in desired
        .vpc_endpoint_ids
        .iter()
        .filter(|id| !live_ids.contains(id))
    {
        ops.push(patch(
            Op::Add,
            "/endpointConfiguration/vpcEndpointIds",
            Some(id),
        ));
    }
    if !policy::equivalent(live.policy.as_deref(), &desired.policy, api_arn_prefix) {
        ops.push(patch(
            Op::Replace,
            "/policy",
            Some(&desired.policy.to_string()),
        ));
    }
    if live.description != desired.description {
        ops.push(patch(
            Op::Replace,
            "/description",
            Some(desired.description.as_deref().unwrap_or("")),
        ));
    }
    let missing_tags = desired
        .tags
        .iter()
        .filter(|(k, v)| live.tags.get(*k) != Some(*v))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    (ops, missing_tags)
}

/// The endpoints attached to the API that the spec no longer names.
pub fn stale_endpoint_ids(attached: &BTreeSet<String>, desired: &DesiredApi) -> Vec<String> {
    attached
        .difference(&desired.vpc_endpoint_ids)
        .cloned()
        .collect()
}

fn describe_op(op: &PatchOperation) -> String {
    format!(
        "{} {}",
        op.op().map(|o| o.as_str()).unwrap_or("?"),
        op.path().unwrap_or("?")
    )
}

/// The ARN API Gateway's tagging API takes for a REST API.
pub fn rest_api_arn(region: &str, rest_api_id: &str) -> String {
    format!("arn:aws:apigateway:{region}::/restapis/{rest_api_id}")
}

async fn get_api(ctx: &PartContext<'_>, id: &str) -> Result<Option<LiveApi>> {
    if let Some(reads) = ctx.shared_reads() {
        return reads.region.rest_api(ctx.aws, reads.window, id).await;
    }
    let out = ctx
        .aws
        .apigateway
        .get_rest_api()
        .rest_api_id(id)
        .send()
        .await
        .aws(SERVICE, "GetRestApi")
        .or_not_found()?;
    Ok(out.and_then(|o| {
        LiveApi::from_parts(
            o.id,
            o.description,
            o.created_date,
            o.endpoint_configuration,
            o.policy,
            o.tags,
            o.root_resource_id,
        )
    }))
}

/// Every REST API of the region (pages of 500).
async fn list_all(ctx: &PartContext<'_>) -> Result<Vec<LiveApi>> {
    list_rest_apis(ctx.aws).await
}

/// Every REST API of the region of `aws` (pages of 500).
pub async fn list_rest_apis(aws: &RegionClients) -> Result<Vec<LiveApi>> {
    let mut all = Vec::new();
    let mut position: Option<String> = None;
    loop {
        let page = aws
            .apigateway
            .get_rest_apis()
            .limit(500)
            .set_position(position.clone())
            .send()
            .await
            .aws(SERVICE, "GetRestApis")?;
        all.extend(
            page.items
                .unwrap_or_default()
                .into_iter()
                .filter_map(LiveApi::from_item),
        );
        match page.position {
            Some(next) if Some(&next) != position.as_ref() && !next.is_empty() => {
                position = Some(next)
            }
            _ => break,
        }
    }
    Ok(all)
}

fn owned_by(ctx: &PartContext<'_>, api: &LiveApi) -> bool {
    ctx.owner
        .owns(api.tags.iter().map(|(k, v)| (k.as_str(), v.as_str())))
}

/// REST APIs not owned by this object whose endpoint configuration names `vpc_endpoint_id`:
/// while there are any, deleting the endpoint would cut them off.
pub async fn other_users_of_endpoint(
    ctx: &PartContext<'_>,
    vpc_endpoint_id: &str,
) -> Result<Vec<String>> {
    Ok(list_all(ctx)
        .await?
        .into_iter()
        .filter(|api| !owned_by(ctx, api))
        .filter(|api| api.vpc_endpoint_ids.iter().any(|id| id == vpc_endpoint_id))
        .map(|api| api.id)
        .collect())
}

/// Every REST API of the region this owner owns, oldest first.
pub async fn find_owned(ctx: &PartContext<'_>) -> Result<Vec<LiveApi>> {
    let mut owned: Vec<LiveApi> = list_all(ctx)
        .await?
        .into_iter()
        .filter(|api| owned_by(ctx, api))
        .collect();
    owned.sort_by_key(|api| (api.created_epoch, api.id.clone()));
    Ok(owned)
}

/// The REST API found for this object.
#[derive(Debug, Default)]
struct Observed {
    live: Option<LiveApi>,
    /// Other APIs owned by this object (a duplicate from an earlier failure, or the API the
    /// operator made before `spec.adopt` named another): deleted.
    duplicates: Vec<LiveApi>,
    /// `live` is the API named in `spec.adopt`, not yet tagged as this object's.
    adopting: bool,
}

/// Find the API by the ID in status (if it still exists and is ours), else the one `spec.adopt`
/// names, else by ownership tags. Extra owned APIs are returned to be deleted.
async fn observe(ctx: &PartContext<'_>) -> Result<Observed> {
    let adopt_id = ctx
        .spec
        .adopt
        .as_ref()
        .and_then(|a| a.rest_api_id.as_deref());
    if let Some(id) = ctx.status.rest_api_id.as_deref()
        && adopt_id.is_none_or(|adopt| adopt == id)
        && let Some(api) = get_api(ctx, id).await?
        && owned_by(ctx, &api)
    {
        return Ok(Observed {
            live: Some(api),
            ..Default::default()
        });
    }
    let mut owned = find_owned(ctx).await?;
    if let Some(adopt_id) = adopt_id {
        if let Some(index) = owned.iter().position(|api| api.id == adopt_id) {
            let keep = owned.remove(index);
            return Ok(Observed {
                live: Some(keep),
                duplicates: owned,
                adopting: false,
            });
        }
        let api = get_api(ctx, adopt_id).await?.ok_or_else(|| {
            Error::reference_not_found(
                FIELD_ADOPT_REST_API,
                format!("REST API {adopt_id} does not exist in {}", ctx.aws.region),
            )
        })?;
        check_adoptable(ctx, &api)?;
        return Ok(Observed {
            live: Some(api),
            duplicates: owned,
            adopting: true,
        });
    }
    if owned.is_empty() {
        return Ok(Observed::default());
    }
    let keep = owned.remove(0);
    Ok(Observed {
        live: Some(keep),
        duplicates: owned,
        adopting: false,
    })
}

fn invalid_adopt(message: String) -> Error {
    Error::InvalidSpec {
        field: FIELD_ADOPT_REST_API.to_string(),
        message,
    }
}

/// An API named in `spec.adopt` must be PRIVATE (turning a public API private would cut off its
/// clients: that is not a change to make on the way in) and nobody else's.
fn check_adoptable(ctx: &PartContext<'_>, api: &LiveApi) -> Result<()> {
    if let Some(other) = ctx
        .owner
        .claimed_by_other(api.tags.iter().map(|(k, v)| (k.as_str(), v.as_str())))
    {
        return Err(invalid_adopt(format!(
            "REST API {} is managed by another PrivateApi ({other}); the operator takes over only resources nobody manages",
            api.id
        )));
    }
    if api.endpoint_types != ["PRIVATE"] {
        return Err(invalid_adopt(format!(
            "REST API {} has endpoint type {}; only PRIVATE REST APIs can be adopted",
            api.id,
            if api.endpoint_types.is_empty() {
                "none".to_string()
            } else {
                api.endpoint_types.join(", ")
            }
        )));
    }
    Ok(())
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
        .config_override(
            aws_sdk_apigateway::config::Builder::default().retry_config(no_sdk_retries()),
        )
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

#[cfg(test)]
mod tests {
    use super::*;

    const PREFIX: &str = "arn:aws:execute-api:us-east-1:123456789012:abc/";

    fn desired(ids: &[&str]) -> DesiredApi {
        let ids: Vec<String> = ids.iter().map(|s| s.to_string()).collect();
        DesiredApi {
            description: None,
            policy: policy::desired_policy(&ids),
            vpc_endpoint_ids: ids.into_iter().collect(),
            tags: BTreeMap::from([("privateapi.io/owner".to_string(), "ns/a".to_string())]),
        }
    }

    fn live_matching(d: &DesiredApi) -> LiveApi {
        LiveApi {
            id: "abc".into(),
            endpoint_types: vec!["PRIVATE".into()],
            vpc_endpoint_ids: d.vpc_endpoint_ids.iter().cloned().collect(),
            // As API Gateway stores it: escaped, with the ARN expanded.
            policy: Some(
                d.policy
                    .to_string()
                    .replace("execute-api:/*", &format!("{PREFIX}*"))
                    .replace('"', "\\\""),
            ),
            tags: d.tags.clone().into_iter().collect(),
            ..Default::default()
        }
    }

    #[test]
    fn in_sync_means_no_operation() {
        let d = desired(&["vpce-1", "vpce-2"]);
        let (ops, tags) = diff(&live_matching(&d), &d, PREFIX);
        assert!(ops.is_empty(), "{ops:?}");
        assert!(tags.is_empty());
    }

    #[test]
    fn endpoint_ids_are_added_now_and_detached_after_the_deployment() {
        let d = desired(&["vpce-1", "vpce-3"]);
        let mut live = live_matching(&desired(&["vpce-1", "vpce-2"]));
        live.policy = Some(d.policy.to_string());
        let (ops, _) = diff(&live, &d, PREFIX);
        let described: Vec<String> = ops
            .iter()
            .map(|o| format!("{} {}", describe_op(o), o.value().unwrap_or("")))
            .collect();
        // vpce-2 may be what clients go through until the stage serves a policy without it.
        assert_eq!(
            described,
            vec!["add /endpointConfiguration/vpcEndpointIds vpce-3"]
        );
        let attached: BTreeSet<String> = ["vpce-1", "vpce-2", "vpce-3"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(
            stale_endpoint_ids(&attached, &d),
            vec!["vpce-2".to_string()]
        );
    }

    #[test]
    fn policy_type_description_and_tag_drift_are_found() {
        let d = desired(&["vpce-1"]);
        let mut live = live_matching(&d);
        live.policy = Some(r#"{"Version":"2012-10-17","Statement":[]}"#.into());
        live.endpoint_types = vec!["REGIONAL".into()];
        live.description = Some("edited".into());
        live.tags.clear();
        let (ops, tags) = diff(&live, &d, PREFIX);
        let described: Vec<String> = ops.iter().map(describe_op).collect();
        assert_eq!(
            described,
            vec![
                "replace /endpointConfiguration/types/REGIONAL",
                "replace /policy",
                "replace /description"
            ]
        );
        assert_eq!(tags.len(), 1);
    }
}
