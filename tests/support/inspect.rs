//! Reading AWS as the tests check it: the SDK read sequences several tests share (an endpoint by
//! ID, a security group's rules, a REST API's endpoints and policy, a stage's deployment, a
//! function's configuration and resource policy).

use std::collections::{BTreeMap, BTreeSet};

use crate::support::iam::{Decision, evaluate_resource_policy};
use aws_sdk_ec2::types::{SecurityGroup, VpcEndpoint};
use aws_sdk_lambda::operation::get_function_configuration::GetFunctionConfigurationOutput;
use privateapi_operator::aws::RegionClients;
use privateapi_operator::policy;
use serde_json::Value;

use super::REGION;

// ---- EC2

/// The endpoint, if EC2 still describes it.
pub async fn endpoint(aws: &RegionClients, id: &str) -> Option<VpcEndpoint> {
    aws.ec2
        .describe_vpc_endpoints()
        .vpc_endpoint_ids(id)
        .send()
        .await
        .ok()?
        .vpc_endpoints
        .unwrap_or_default()
        .pop()
}

/// Its state, lower case (`pending`, `available`, `deleting`, …).
pub fn endpoint_state(endpoint: &VpcEndpoint) -> String {
    endpoint
        .state
        .as_ref()
        .map(|s| s.as_str().to_ascii_lowercase())
        .unwrap_or_default()
}

/// The state of endpoint `id`; None when EC2 no longer describes it.
pub async fn endpoint_state_of(aws: &RegionClients, id: &str) -> Option<String> {
    endpoint(aws, id).await.map(|e| endpoint_state(&e))
}

/// The security groups attached to an endpoint, sorted.
pub fn endpoint_group_ids(endpoint: &VpcEndpoint) -> Vec<String> {
    let mut ids: Vec<String> = endpoint
        .groups()
        .iter()
        .filter_map(|g| g.group_id().map(str::to_string))
        .collect();
    ids.sort();
    ids
}

/// EC2 tags as a map.
pub fn ec2_tags(tags: &[aws_sdk_ec2::types::Tag]) -> BTreeMap<String, String> {
    tags.iter()
        .map(|t| {
            (
                t.key().unwrap_or_default().to_string(),
                t.value().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

pub async fn delete_endpoint(aws: &RegionClients, id: &str) {
    aws.ec2
        .delete_vpc_endpoints()
        .vpc_endpoint_ids(id)
        .send()
        .await
        .expect("DeleteVpcEndpoints");
}

/// The security group; panics when EC2 does not describe it.
pub async fn security_group(aws: &RegionClients, id: &str) -> SecurityGroup {
    aws.ec2
        .describe_security_groups()
        .group_ids(id)
        .send()
        .await
        .expect("DescribeSecurityGroups")
        .security_groups
        .unwrap_or_default()
        .pop()
        .expect("the group exists")
}

/// A group's ingress rules: (protocol, from port, to port, sources: CIDRs and groups).
pub type Ingress = (String, i32, i32, BTreeSet<String>);

pub async fn ingress_sources(aws: &RegionClients, group_id: &str) -> Vec<Ingress> {
    security_group(aws, group_id)
        .await
        .ip_permissions()
        .iter()
        .map(|p| {
            let mut sources: BTreeSet<String> = p
                .ip_ranges()
                .iter()
                .filter_map(|r| r.cidr_ip.clone())
                .collect();
            sources.extend(
                p.user_id_group_pairs()
                    .iter()
                    .filter_map(|g| g.group_id.clone()),
            );
            (
                p.ip_protocol().unwrap_or_default().to_string(),
                p.from_port.unwrap_or(-1),
                p.to_port.unwrap_or(-1),
                sources,
            )
        })
        .collect()
}

/// The one rule the managed group has: HTTPS from `sources`.
pub fn https_from(sources: &[&str]) -> Vec<Ingress> {
    vec![(
        "tcp".to_string(),
        443,
        443,
        sources.iter().map(|s| s.to_string()).collect(),
    )]
}

// ---- API Gateway

pub async fn rest_api(
    aws: &RegionClients,
    id: &str,
) -> aws_sdk_apigateway::operation::get_rest_api::GetRestApiOutput {
    aws.apigateway
        .get_rest_api()
        .rest_api_id(id)
        .send()
        .await
        .expect("GetRestApi")
}

/// Every REST API of the region (the first 500: more than the tests ever make).
pub async fn rest_apis(aws: &RegionClients) -> Vec<aws_sdk_apigateway::types::RestApi> {
    aws.apigateway
        .get_rest_apis()
        .limit(500)
        .send()
        .await
        .expect("GetRestApis")
        .items
        .unwrap_or_default()
}

/// Whether the REST API exists (NotFound: no; any other error panics).
pub async fn rest_api_exists(aws: &RegionClients, id: &str) -> bool {
    match aws.apigateway.get_rest_api().rest_api_id(id).send().await {
        Ok(_) => true,
        Err(err)
            if err
                .as_service_error()
                .is_some_and(|e| e.is_not_found_exception()) =>
        {
            false
        }
        Err(err) => panic!("GetRestApi {id}: {err:?}"),
    }
}

/// The endpoints in the API's endpoint configuration.
pub async fn api_vpc_endpoint_ids(aws: &RegionClients, rest_api_id: &str) -> BTreeSet<String> {
    rest_api(aws, rest_api_id)
        .await
        .endpoint_configuration
        .map(|c| c.vpc_endpoint_ids().iter().cloned().collect())
        .unwrap_or_default()
}

/// The API's resource policy, parsed (Null when it has none).
pub async fn api_policy(aws: &RegionClients, rest_api_id: &str) -> Value {
    rest_api(aws, rest_api_id)
        .await
        .policy
        .as_deref()
        .and_then(policy::parse_policy)
        .unwrap_or(Value::Null)
}

/// What the API's policy decides for `GET /` on stage `prod` through each endpoint (None: from
/// outside any endpoint).
pub async fn api_policy_decisions(
    aws: &RegionClients,
    rest_api_id: &str,
    through: &[Option<&str>],
) -> Vec<Decision> {
    let live = api_policy(aws, rest_api_id).await;
    let prefix = policy::execute_api_arn_prefix(REGION, &aws.account_id, rest_api_id);
    let resource = format!("{prefix}prod/GET/");
    through
        .iter()
        .map(|vpce| {
            evaluate_resource_policy(&live, &prefix, policy::INVOKE_ACTION, &resource, *vpce)
        })
        .collect()
}

/// (stage name, deployment ID) of each stage of the API, sorted.
pub async fn stages(aws: &RegionClients, rest_api_id: &str) -> Vec<(String, String)> {
    let mut stages: Vec<(String, String)> = aws
        .apigateway
        .get_stages()
        .rest_api_id(rest_api_id)
        .send()
        .await
        .expect("GetStages")
        .item
        .unwrap_or_default()
        .into_iter()
        .map(|s| {
            (
                s.stage_name.unwrap_or_default(),
                s.deployment_id.unwrap_or_default(),
            )
        })
        .collect();
    stages.sort();
    stages
}

/// The deployment a stage serves; None when the stage (or its deployment) is missing.
pub async fn stage_deployment(
    aws: &RegionClients,
    rest_api_id: &str,
    stage: &str,
) -> Option<String> {
    aws.apigateway
        .get_stage()
        .rest_api_id(rest_api_id)
        .stage_name(stage)
        .send()
        .await
        .ok()
        .and_then(|s| s.deployment_id)
}

/// The resources (routes) of the API.
pub async fn resources(
    aws: &RegionClients,
    rest_api_id: &str,
) -> Vec<aws_sdk_apigateway::types::Resource> {
    aws.apigateway
        .get_resources()
        .rest_api_id(rest_api_id)
        .send()
        .await
        .expect("GetResources")
        .items
        .unwrap_or_default()
}

/// The integration URI of `ANY` on every resource of the API.
pub async fn integration_uris(aws: &RegionClients, rest_api_id: &str) -> BTreeSet<String> {
    let mut uris = BTreeSet::new();
    for resource in resources(aws, rest_api_id).await {
        let integration = aws
            .apigateway
            .get_integration()
            .rest_api_id(rest_api_id)
            .resource_id(resource.id.unwrap_or_default())
            .http_method("ANY")
            .send()
            .await
            .expect("GetIntegration");
        uris.insert(integration.uri.unwrap_or_default());
    }
    uris
}

/// The URI of a Lambda proxy integration calling `function_arn`.
pub fn invocation_uri(function_arn: &str) -> String {
    format!(
        "arn:aws:apigateway:{REGION}:lambda:path/2015-03-31/functions/{function_arn}/invocations"
    )
}

// ---- Lambda

/// Every function of the region (all pages of ListFunctions), with its tags.
pub async fn functions_with_tags(
    aws: &RegionClients,
) -> Vec<(
    aws_sdk_lambda::types::FunctionConfiguration,
    std::collections::HashMap<String, String>,
)> {
    let mut functions = Vec::new();
    let mut marker = None;
    loop {
        let page = aws
            .lambda
            .list_functions()
            .set_marker(marker.clone())
            .send()
            .await
            .expect("ListFunctions");
        for function in page.functions.unwrap_or_default() {
            let Some(arn) = function.function_arn.as_deref() else {
                continue;
            };
            let tags = aws
                .lambda
                .list_tags()
                .resource(arn)
                .send()
                .await
                .ok()
                .and_then(|t| t.tags)
                .unwrap_or_default();
            functions.push((function, tags));
        }
        match page.next_marker {
            Some(next) if !next.is_empty() => marker = Some(next),
            _ => break,
        }
    }
    functions
}

/// Whether the function exists (ResourceNotFound: no; any other error panics).
pub async fn function_exists(aws: &RegionClients, name_or_arn: &str) -> bool {
    match aws
        .lambda
        .get_function()
        .function_name(name_or_arn)
        .send()
        .await
    {
        Ok(_) => true,
        Err(err)
            if err
                .as_service_error()
                .is_some_and(|e| e.is_resource_not_found_exception()) =>
        {
            false
        }
        Err(err) => panic!("GetFunction {name_or_arn}: {err:?}"),
    }
}

pub async fn function(
    aws: &RegionClients,
    name_or_arn: &str,
) -> aws_sdk_lambda::operation::get_function::GetFunctionOutput {
    aws.lambda
        .get_function()
        .function_name(name_or_arn)
        .send()
        .await
        .unwrap_or_else(|e| panic!("GetFunction {name_or_arn}: {e:?}"))
}

pub async fn function_configuration(
    aws: &RegionClients,
    name_or_arn: &str,
) -> GetFunctionConfigurationOutput {
    aws.lambda
        .get_function_configuration()
        .function_name(name_or_arn)
        .send()
        .await
        .expect("GetFunctionConfiguration")
}

/// One variable of the function's environment.
pub fn env_var(config: &GetFunctionConfigurationOutput, key: &str) -> Option<String> {
    config
        .environment
        .as_ref()
        .and_then(|e| e.variables.as_ref())
        .and_then(|v| v.get(key).cloned())
}

/// The statements of a function's resource policy (none when it has no policy).
pub async fn lambda_statements(aws: &RegionClients, name_or_arn: &str) -> Vec<Value> {
    match aws
        .lambda
        .get_policy()
        .function_name(name_or_arn)
        .send()
        .await
    {
        Ok(out) => {
            let policy: Value =
                serde_json::from_str(out.policy.as_deref().unwrap_or("{}")).expect("policy JSON");
            policy["Statement"].as_array().cloned().unwrap_or_default()
        }
        Err(err)
            if err
                .as_service_error()
                .is_some_and(|e| e.is_resource_not_found_exception()) =>
        {
            Vec::new()
        }
        Err(err) => panic!("GetPolicy {name_or_arn}: {err:?}"),
    }
}

/// Whether one statement lets API Gateway invoke the function from exactly this API.
pub fn permits_api(statements: &[Value], aws: &RegionClients, rest_api_id: &str) -> bool {
    let source = format!(
        "{}*",
        policy::execute_api_arn_prefix(REGION, &aws.account_id, rest_api_id)
    );
    statements
        .iter()
        .any(|s| s["Condition"]["ArnLike"]["AWS:SourceArn"] == source.as_str())
}

/// Whether the policy has exactly one statement, and it lets this API invoke the function.
pub fn permits_only(statements: &[Value], aws: &RegionClients, rest_api_id: &str) -> bool {
    statements.len() == 1 && permits_api(statements, aws, rest_api_id)
}

/// Every private domain name of the account-region (API Gateway, resourceOwner SELF).
pub async fn private_domain_names(
    aws: &RegionClients,
) -> Vec<aws_sdk_apigateway::types::DomainName> {
    aws.apigateway
        .get_domain_names()
        .resource_owner(aws_sdk_apigateway::types::ResourceOwner::SelfValue)
        .limit(500)
        .into_paginator()
        .items()
        .send()
        .collect::<Result<Vec<_>, _>>()
        .await
        .expect("GetDomainNames")
}

/// The endpoints associated with the private domain name `domain_arn`.
pub async fn domain_association_sources(aws: &RegionClients, domain_arn: &str) -> BTreeSet<String> {
    aws.apigateway
        .get_domain_name_access_associations()
        .resource_owner(aws_sdk_apigateway::types::ResourceOwner::SelfValue)
        .send()
        .await
        .expect("GetDomainNameAccessAssociations")
        .items()
        .iter()
        .filter(|a| a.domain_name_arn() == Some(domain_arn))
        .filter_map(|a| a.access_association_source().map(str::to_string))
        .collect()
}

/// The base path mappings of a private domain name as (base path, REST API, stage); none when
/// the domain name is gone.
pub async fn domain_mappings(
    aws: &RegionClients,
    name: &str,
    id: &str,
) -> Vec<(String, String, String)> {
    match aws
        .apigateway
        .get_base_path_mappings()
        .domain_name(name)
        .domain_name_id(id)
        .send()
        .await
    {
        Ok(out) => out
            .items()
            .iter()
            .map(|m| {
                (
                    m.base_path().unwrap_or_default().to_string(),
                    m.rest_api_id().unwrap_or_default().to_string(),
                    m.stage().unwrap_or_default().to_string(),
                )
            })
            .collect(),
        Err(_) => Vec::new(),
    }
}

/// The records named `name` in the hosted zone `zone`, as (type, first value).
pub async fn records_named(aws: &RegionClients, zone: &str, name: &str) -> Vec<(String, String)> {
    aws.route53
        .list_resource_record_sets()
        .hosted_zone_id(zone)
        .send()
        .await
        .expect("ListResourceRecordSets")
        .resource_record_sets()
        .iter()
        .filter(|r| r.name().trim_end_matches('.') == name)
        .map(|r| {
            let value = r.resource_records().first().map(|v| v.value().to_string());
            (r.r#type().as_str().to_string(), value.unwrap_or_default())
        })
        .collect()
}
