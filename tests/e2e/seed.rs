//! The reference stack as one PrivateApi: kubectl apply → Ready → every AWS resource checked
//! through the SDK → steady state makes no writes → delete leaves nothing behind.

use std::time::{Duration, Instant};

use crate::support::iam::Decision;
use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seed_stack_reconciles_to_a_working_private_api_and_is_removed_on_delete() {
    let world = World::new("seed").vpc(10).operator().await;
    let (namespace, cluster, aws, vpc) =
        (&world.namespace, &world.cluster, &world.aws, world.vpc());
    let operator = world.operator();

    let started = Instant::now();
    world.seed("orders").apply();
    let object = world.wait_ready("orders", Duration::from_secs(90));
    let time_to_ready = started.elapsed();
    let create_calls = operator.aws_calls();
    eprintln!(
        "time to Ready: {time_to_ready:?}; AWS calls during create: {} reads, {} writes: {:?}",
        create_calls.reads, create_calls.writes, create_calls.by_operation
    );

    // Status: URL, endpoint, IDs, every condition True.
    let status = &object["status"];
    let rest_api_id = status["restApiId"].as_str().expect("restApiId").to_string();
    let vpce_id = status["vpcEndpointId"]
        .as_str()
        .expect("vpcEndpointId")
        .to_string();
    let sg_id = status["securityGroupId"]
        .as_str()
        .expect("securityGroupId")
        .to_string();
    let function_arn = status["functionArn"]
        .as_str()
        .expect("functionArn")
        .to_string();
    let deployment_id = status["deploymentId"]
        .as_str()
        .expect("deploymentId")
        .to_string();
    assert_eq!(
        status["url"].as_str(),
        Some(format!("https://{rest_api_id}.execute-api.us-east-1.amazonaws.com/prod/").as_str())
    );
    assert_eq!(
        status["urls"]["endpointAlias"].as_str(),
        Some(
            format!("https://{rest_api_id}-{vpce_id}.execute-api.us-east-1.amazonaws.com/prod/")
                .as_str()
        )
    );
    assert_eq!(status["region"], "us-east-1");
    for type_ in [
        "Ready",
        "EndpointReady",
        "ApiReady",
        "BackendReady",
        "Deployed",
    ] {
        let c = condition(&object, type_).unwrap_or_else(|| panic!("condition {type_}"));
        assert_eq!(c["status"], "True", "{type_}: {c}");
    }
    // The reference stack's proof, as its user runs it: from an instance in the VPC (in the
    // client group) the URL answers the message; from the internet it does not resolve.
    let url = status_str(&object, "url");
    let inside = netns::curl_async(
        &netns::From::vpc(&vpc.vpc_id, &[&vpc.client_sg_id]),
        &url,
        &[],
    )
    .await;
    assert_eq!(inside.status, 200, "{inside:?}");
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&inside.body).ok(),
        Some(serde_json::json!({"message": "Private API executed!!"})),
        "{inside:?}"
    );
    let laptop = netns::curl_async(&netns::From::Internet, &url, &[]).await;
    assert_eq!(laptop.exit, 6, "{laptop:?}");
    assert!(
        laptop.stderr.contains("Could not resolve host"),
        "{laptop:?}"
    );

    let printed = kubectl(&["get", "papi", "-n", namespace, "-o", "wide"]);
    assert!(
        printed.contains("True") && printed.contains(&vpce_id),
        "{printed}"
    );

    // The endpoint: execute-api, interface, in the subnets, private DNS, the managed group.
    let endpoint = inspect::endpoint(aws, &vpce_id)
        .await
        .expect("the endpoint exists");
    assert_eq!(
        endpoint.service_name.as_deref(),
        Some("com.amazonaws.us-east-1.execute-api")
    );
    assert_eq!(
        endpoint.vpc_endpoint_type.as_ref().map(|t| t.as_str()),
        Some("Interface")
    );
    assert_eq!(endpoint.private_dns_enabled, Some(true));
    let mut subnets = endpoint.subnet_ids.clone().unwrap_or_default();
    subnets.sort();
    let mut expected_subnets = vpc.subnet_ids.clone();
    expected_subnets.sort();
    assert_eq!(subnets, expected_subnets);
    assert_eq!(inspect::endpoint_group_ids(&endpoint), vec![sg_id.clone()]);
    let endpoint_tags = inspect::ec2_tags(endpoint.tags());
    assert_eq!(
        endpoint_tags.get("privateapi.io/owner"),
        Some(&format!("{namespace}/orders"))
    );
    assert_eq!(endpoint_tags.get("privateapi.io/cluster"), Some(cluster));
    assert_eq!(endpoint_tags.get("team").map(String::as_str), Some("test"));

    // The security group admits HTTPS from the client group only, and nothing goes out.
    let group = inspect::security_group(aws, &sg_id).await;
    let ingress = group.ip_permissions.unwrap_or_default();
    assert_eq!(ingress.len(), 1, "{ingress:?}");
    assert_eq!(ingress[0].ip_protocol.as_deref(), Some("tcp"));
    assert_eq!(
        (ingress[0].from_port, ingress[0].to_port),
        (Some(443), Some(443))
    );
    let sources: Vec<String> = ingress[0]
        .user_id_group_pairs
        .clone()
        .unwrap_or_default()
        .into_iter()
        .filter_map(|p| p.group_id)
        .collect();
    assert_eq!(sources, vec![vpc.client_sg_id.clone()]);
    assert!(ingress[0].ip_ranges.clone().unwrap_or_default().is_empty());
    assert!(group.ip_permissions_egress.unwrap_or_default().is_empty());

    // The REST API: PRIVATE, through that endpoint, with the Deny-unless-SourceVpce policy.
    let api = inspect::rest_api(aws, &rest_api_id).await;
    let configuration = api
        .endpoint_configuration
        .clone()
        .expect("endpoint configuration");
    let types: Vec<&str> = configuration.types().iter().map(|t| t.as_str()).collect();
    assert_eq!(types, vec!["PRIVATE"]);
    assert_eq!(
        configuration.vpc_endpoint_ids(),
        std::slice::from_ref(&vpce_id)
    );
    assert!(api.policy.is_some(), "the API has a policy");
    assert_eq!(
        inspect::api_policy_decisions(
            aws,
            &rest_api_id,
            &[Some(&vpce_id), Some("vpce-0000000000000000a"), None]
        )
        .await,
        vec![
            Decision::Allow,
            Decision::ExplicitDeny,
            Decision::ExplicitDeny
        ]
    );
    let api_tags = api.tags.clone().unwrap_or_default();
    assert_eq!(
        api_tags.get("privateapi.io/owner"),
        Some(&format!("{namespace}/orders"))
    );

    // Routes: ANY / and ANY /{proxy+}, AWS_PROXY to the function.
    let resources = aws
        .apigateway
        .get_resources()
        .rest_api_id(&rest_api_id)
        .embed("methods")
        .send()
        .await
        .expect("GetResources")
        .items
        .unwrap_or_default();
    let mut paths: Vec<String> = resources.iter().filter_map(|r| r.path.clone()).collect();
    paths.sort();
    assert_eq!(paths, vec!["/".to_string(), "/{proxy+}".to_string()]);
    let expected_uri = inspect::invocation_uri(&function_arn);
    for resource in &resources {
        let id = resource.id.as_deref().expect("resource id");
        let integration = aws
            .apigateway
            .get_integration()
            .rest_api_id(&rest_api_id)
            .resource_id(id)
            .http_method("ANY")
            .send()
            .await
            .expect("GetIntegration");
        assert_eq!(
            integration.r#type.as_ref().map(|t| t.as_str()),
            Some("AWS_PROXY")
        );
        assert_eq!(integration.http_method.as_deref(), Some("POST"));
        assert_eq!(integration.uri.as_deref(), Some(expected_uri.as_str()));
    }

    // The stage serves the latest deployment.
    assert_eq!(
        inspect::stage_deployment(aws, &rest_api_id, "prod").await,
        Some(deployment_id.clone())
    );

    // The function: builtin handler, 256 MiB, MESSAGE, tags; the permission scoped to this API.
    let function = inspect::function(aws, &function_arn).await;
    let configuration = function.configuration.expect("configuration");
    assert_eq!(configuration.memory_size, Some(256));
    assert_eq!(configuration.handler.as_deref(), Some("bootstrap"));
    assert_eq!(
        configuration.runtime.as_ref().map(|r| r.as_str()),
        Some("provided.al2023")
    );
    let environment = configuration
        .environment
        .and_then(|e| e.variables)
        .unwrap_or_default();
    assert_eq!(
        environment.get("MESSAGE").map(String::as_str),
        Some("Private API executed!!")
    );
    assert_eq!(
        function.tags.unwrap_or_default().get("privateapi.io/owner"),
        Some(&format!("{namespace}/orders"))
    );
    let statements = inspect::lambda_statements(aws, &function_arn).await;
    assert_eq!(statements.len(), 1, "{statements:?}");
    assert!(
        inspect::permits_api(&statements, aws, &rest_api_id),
        "{statements:?}"
    );

    // Steady state: a reconcile of the unchanged object makes no write.
    let steady = operator.calls_during("steady-state reconcile", || world.poke("orders"));
    assert_eq!(
        steady.writes, 0,
        "steady state wrote: {:?}",
        steady.by_operation
    );
    assert!(steady.reads > 0, "the poke did not reconcile");
    let again = world.get("orders").expect("object");
    assert_eq!(
        again["status"]["deploymentId"],
        deployment_id.as_str(),
        "no redeploy"
    );

    // Delete: everything this object made is gone, nothing else.
    world.delete_and_wait("orders", Duration::from_secs(90));
    let left = world.owned_resources().await;
    assert!(left.is_empty(), "left behind: {left:?}");
}
