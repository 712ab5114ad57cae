//! The reference stack as one PrivateApi: kubectl apply → Ready → every AWS resource checked
//! through the SDK → steady state makes no writes → delete leaves nothing behind.

use std::time::{Duration, Instant};

use crate::support::iam::{Decision, evaluate_resource_policy};
use crate::support::*;
use privateapi_operator::policy;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seed_stack_reconciles_to_a_working_private_api_and_is_removed_on_delete() {
    let _bed = crate::support::hold_testbed();
    install_crd();
    let namespace = unique("seed");
    let cluster = unique("cl");
    create_namespace(&namespace);
    let aws = aws().await;
    let vpc = make_vpc(&aws.ec2, 10).await;
    let operator = Operator::start(&namespace, &cluster);

    let started = Instant::now();
    apply(&seed_manifest(&namespace, "orders", &vpc, ""));
    let object = wait_ready(&namespace, "orders", Duration::from_secs(90));
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
    let printed = kubectl(&["get", "papi", "-n", &namespace, "-o", "wide"]);
    assert!(
        printed.contains("True") && printed.contains(&vpce_id),
        "{printed}"
    );

    // The endpoint: execute-api, interface, in the subnets, private DNS, the managed group.
    let endpoint = aws
        .ec2
        .describe_vpc_endpoints()
        .vpc_endpoint_ids(&vpce_id)
        .send()
        .await
        .expect("DescribeVpcEndpoints")
        .vpc_endpoints
        .unwrap_or_default()
        .pop()
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
    let groups: Vec<String> = endpoint
        .groups
        .unwrap_or_default()
        .into_iter()
        .filter_map(|g| g.group_id)
        .collect();
    assert_eq!(groups, vec![sg_id.clone()]);
    let endpoint_tags: Vec<(String, String)> = endpoint
        .tags
        .unwrap_or_default()
        .into_iter()
        .map(|t| (t.key.unwrap_or_default(), t.value.unwrap_or_default()))
        .collect();
    assert!(endpoint_tags.contains(&("privateapi.io/owner".into(), format!("{namespace}/orders"))));
    assert!(endpoint_tags.contains(&("privateapi.io/cluster".into(), cluster.clone())));
    assert!(endpoint_tags.contains(&("team".into(), "test".into())));

    // The security group admits HTTPS from the client group only, and nothing goes out.
    let group = aws
        .ec2
        .describe_security_groups()
        .group_ids(&sg_id)
        .send()
        .await
        .expect("DescribeSecurityGroups")
        .security_groups
        .unwrap_or_default()
        .pop()
        .expect("the group exists");
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
    let api = aws
        .apigateway
        .get_rest_api()
        .rest_api_id(&rest_api_id)
        .send()
        .await
        .expect("GetRestApi");
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
    let live_policy =
        policy::parse_policy(api.policy.as_deref().expect("policy")).expect("policy parses");
    let prefix = policy::execute_api_arn_prefix("us-east-1", &aws.account_id, &rest_api_id);
    let resource = format!("{prefix}prod/GET/");
    assert_eq!(
        evaluate_resource_policy(
            &live_policy,
            &prefix,
            policy::INVOKE_ACTION,
            &resource,
            Some(&vpce_id)
        ),
        Decision::Allow
    );
    assert_eq!(
        evaluate_resource_policy(
            &live_policy,
            &prefix,
            policy::INVOKE_ACTION,
            &resource,
            Some("vpce-0000000000000000a")
        ),
        Decision::ExplicitDeny
    );
    assert_eq!(
        evaluate_resource_policy(
            &live_policy,
            &prefix,
            policy::INVOKE_ACTION,
            &resource,
            None
        ),
        Decision::ExplicitDeny
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
    let expected_uri = format!(
        "arn:aws:apigateway:us-east-1:lambda:path/2015-03-31/functions/{function_arn}/invocations"
    );
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
    let stage = aws
        .apigateway
        .get_stage()
        .rest_api_id(&rest_api_id)
        .stage_name("prod")
        .send()
        .await
        .expect("GetStage");
    assert_eq!(stage.deployment_id.as_deref(), Some(deployment_id.as_str()));

    // The function: builtin handler, 256 MiB, MESSAGE, tags; the permission scoped to this API.
    let function = aws
        .lambda
        .get_function()
        .function_name(&function_arn)
        .send()
        .await
        .expect("GetFunction");
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
    let lambda_policy = aws
        .lambda
        .get_policy()
        .function_name(&function_arn)
        .send()
        .await
        .expect("GetPolicy")
        .policy
        .expect("policy");
    let lambda_policy: serde_json::Value = serde_json::from_str(&lambda_policy).expect("JSON");
    let statements = lambda_policy["Statement"].as_array().expect("statements");
    assert_eq!(statements.len(), 1, "{lambda_policy}");
    assert_eq!(
        statements[0]["Condition"]["ArnLike"]["AWS:SourceArn"],
        format!("{prefix}*")
    );

    // Steady state: a reconcile of the unchanged object makes no write.
    let before = operator.aws_calls();
    poke_and_wait(&operator, &namespace, "orders");
    let steady = before.since(&operator.aws_calls());
    eprintln!(
        "steady-state reconcile: {} reads, {} writes: {:?}",
        steady.reads, steady.writes, steady.by_operation
    );
    assert_eq!(
        steady.writes, 0,
        "steady state wrote: {:?}",
        steady.by_operation
    );
    assert!(steady.reads > 0, "the poke did not reconcile");
    let again = get_object(&namespace, "orders").expect("object");
    assert_eq!(
        again["status"]["deploymentId"],
        deployment_id.as_str(),
        "no redeploy"
    );

    // Delete: everything this object made is gone, nothing else.
    kubectl(&[
        "delete",
        "privateapi",
        "orders",
        "-n",
        &namespace,
        "--wait=false",
    ]);
    wait_gone(&namespace, "orders", Duration::from_secs(90));
    let left = owned_resources(&aws, &cluster).await;
    assert!(left.is_empty(), "left behind: {left:?}");
    drop(operator);
}
