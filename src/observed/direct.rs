//! The direct reads: one AWS call (or one paginated listing) each, straight into the live-state
//! types. The [`Reader`](super::Reader) decides when they are made and what is remembered.

use std::collections::BTreeMap;

use aws_sdk_ec2::types::{SecurityGroup, VpcEndpoint};

use crate::aws::RegionClients;
use crate::error::{AwsResultExt, NotFoundExt, Result};
use crate::model::{LiveApi, LiveFunction, LiveIntegration, LiveMethod, LiveResource};

/// GetRestApi; None when it does not exist.
pub(super) async fn rest_api(aws: &RegionClients, id: &str) -> Result<Option<LiveApi>> {
    let out = aws
        .apigateway
        .get_rest_api()
        .rest_api_id(id)
        .send()
        .await
        .aws("APIGateway", "GetRestApi")
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

/// Every REST API of the region (GetRestApis, pages of 500).
pub(super) async fn rest_apis(aws: &RegionClients) -> Result<Vec<LiveApi>> {
    let items: std::result::Result<Vec<_>, _> = aws
        .apigateway
        .get_rest_apis()
        .limit(500)
        .into_paginator()
        .items()
        .send()
        .collect()
        .await;
    Ok(items
        .aws("APIGateway", "GetRestApis")?
        .into_iter()
        .filter_map(LiveApi::from_item)
        .collect())
}

/// A function read by GetFunction, with the RevisionId it was read at.
pub(super) struct FunctionRead {
    pub(super) function: LiveFunction,
    pub(super) revision: Option<String>,
}

/// GetFunction by name or ARN; None when it does not exist.
pub(super) async fn function(aws: &RegionClients, id: &str) -> Result<Option<FunctionRead>> {
    let Some(out) = aws
        .lambda
        .get_function()
        .function_name(id)
        .send()
        .await
        .aws("Lambda", "GetFunction")
        .or_not_found()?
    else {
        return Ok(None);
    };
    let cfg = out
        .configuration()
        .ok_or_else(|| crate::error::Error::Unexpected {
            operation: "GetFunction",
            message: format!("no configuration for function {id}"),
        })?;
    Ok(Some(FunctionRead {
        function: LiveFunction::from_configuration(cfg, out.tags()),
        revision: cfg.revision_id().map(str::to_string),
    }))
}

/// A function's resource policy read by GetPolicy, with the RevisionId it was read at.
pub(super) struct PolicyRead {
    /// None: the function has no policy.
    pub(super) policy: Option<String>,
    pub(super) revision: Option<String>,
}

/// GetPolicy. ResourceNotFoundException means no policy (or no function: the write that follows
/// says which).
pub(super) async fn function_policy(aws: &RegionClients, function: &str) -> Result<PolicyRead> {
    let out = aws
        .lambda
        .get_policy()
        .function_name(function)
        .send()
        .await
        .aws("Lambda", "GetPolicy")
        .or_not_found()?;
    let revision = out.as_ref().and_then(|out| out.revision_id.clone());
    let policy = out.and_then(|out| out.policy).filter(|p| !p.is_empty());
    Ok(PolicyRead { policy, revision })
}

/// GetResources with the methods embedded (pages of 500); an integration the embedding left out
/// is asked for with GetIntegration.
pub(super) async fn routes(aws: &RegionClients, rest_api_id: &str) -> Result<Vec<LiveResource>> {
    let items: std::result::Result<Vec<_>, _> = aws
        .apigateway
        .get_resources()
        .rest_api_id(rest_api_id)
        .embed("methods")
        .limit(500)
        .into_paginator()
        .items()
        .send()
        .collect()
        .await;
    let mut resources = Vec::new();
    for item in items.aws("APIGateway", "GetResources")? {
        let (Some(id), Some(path)) = (item.id, item.path) else {
            continue;
        };
        let mut methods = BTreeMap::new();
        for (name, method) in item.resource_methods.unwrap_or_default() {
            let integration = match method.method_integration {
                Some(integration) => Some(integration),
                // Not embedded: ask for it.
                None => aws
                    .apigateway
                    .get_integration()
                    .rest_api_id(rest_api_id)
                    .resource_id(&id)
                    .http_method(&name)
                    .send()
                    .await
                    .aws("APIGateway", "GetIntegration")
                    .or_not_found()?
                    .map(|o| {
                        aws_sdk_apigateway::types::Integration::builder()
                            .set_type(o.r#type)
                            .set_http_method(o.http_method)
                            .set_uri(o.uri)
                            .build()
                    }),
            };
            methods.insert(
                name,
                LiveMethod {
                    authorization_type: method.authorization_type.unwrap_or_default(),
                    integration: integration.map(|i| LiveIntegration {
                        type_: i.r#type.map(|t| t.as_str().to_string()).unwrap_or_default(),
                        http_method: i.http_method.unwrap_or_default(),
                        uri: i.uri.unwrap_or_default(),
                    }),
                },
            );
        }
        resources.push(LiveResource { id, path, methods });
    }
    Ok(resources)
}

/// DescribeVpcEndpoints of one endpoint; None when it does not exist.
pub(super) async fn vpc_endpoint(aws: &RegionClients, id: &str) -> Result<Option<VpcEndpoint>> {
    Ok(aws
        .ec2
        .describe_vpc_endpoints()
        .vpc_endpoint_ids(id)
        .send()
        .await
        .aws("EC2", "DescribeVpcEndpoints")
        .or_not_found()?
        .and_then(|o| o.vpc_endpoints().first().cloned()))
}

/// DescribeSecurityGroups of one group; None when it does not exist.
pub(super) async fn security_group(aws: &RegionClients, id: &str) -> Result<Option<SecurityGroup>> {
    Ok(aws
        .ec2
        .describe_security_groups()
        .group_ids(id)
        .send()
        .await
        .aws("EC2", "DescribeSecurityGroups")
        .or_not_found()?
        .and_then(|o| o.security_groups().first().cloned()))
}
