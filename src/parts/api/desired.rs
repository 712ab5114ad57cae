//! What the REST API must look like, and the pure diff from what it is.

use std::collections::{BTreeMap, BTreeSet};

use aws_sdk_apigateway::types::{Op, PatchOperation};
use serde_json::Value;

use crate::model::LiveApi;
use crate::parts::{PartContext, missing_tags};
use crate::policy;

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
    let live_tags: BTreeMap<String, String> = live
        .tags
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    (ops, missing_tags(&desired.tags, &live_tags))
}

/// The endpoints attached to the API that the spec no longer names.
pub fn stale_endpoint_ids(attached: &BTreeSet<String>, desired: &DesiredApi) -> Vec<String> {
    attached
        .difference(&desired.vpc_endpoint_ids)
        .cloned()
        .collect()
}

pub(super) fn describe_op(op: &PatchOperation) -> String {
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
