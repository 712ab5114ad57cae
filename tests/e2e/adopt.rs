//! `spec.adopt` end to end: a private API stack built directly through the SDK the way the
//! reference CDK stack builds it (untagged) is taken over without recreating the REST API, the
//! function or the endpoint, and without a new deployment; adopt naming something that does not
//! exist (yet) is `ReferenceNotFound` naming the field (retried), and leaves nothing behind.

use std::time::Duration;

use crate::support::*;
use aws_sdk_apigateway::types::{EndpointConfiguration, EndpointType};
use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::{FunctionCode, Runtime};
use privateapi_operator::aws::RegionClients;
use privateapi_operator::crd::AdoptSpec;
use privateapi_operator::policy;

const READY_TIMEOUT: Duration = Duration::from_secs(120);
const GONE_TIMEOUT: Duration = Duration::from_secs(120);

/// The IDs of a stack built outside the operator.
struct ExistingStack {
    vpce: String,
    endpoint_sg: String,
    function_name: String,
    rest_api_id: String,
    deployment_id: String,
}

/// What CDK's `InterfaceVpcEndpoint` + `Function` + `LambdaRestApi` (PRIVATE, resource policy,
/// stage `prod`) make, through the SDK, with no privateapi.io tag anywhere.
async fn build_stack(aws: &RegionClients, vpc: &TestVpc, prefix: &str) -> ExistingStack {
    let endpoint_sg = make::security_group(
        &aws.ec2,
        &vpc.vpc_id,
        &unique(&format!("{prefix}-endpoint")),
        "endpoint security group (CDK)",
    )
    .await;
    let vpce =
        make::execute_api_endpoint_in(aws, &vpc.vpc_id, &vpc.subnet_ids, &endpoint_sg, true).await;

    let function_name = unique(&format!("{prefix}-fn"));
    let zip = privateapi_handler::package::zip_single("index.js", 0o644, b"exports.handler=1")
        .expect("a one-file zip");
    let role =
        std::env::var("PAPI_LAMBDA_ROLE_ARN").expect("PAPI_LAMBDA_ROLE_ARN from the test bed");
    let function_arn = aws
        .lambda
        .create_function()
        .function_name(&function_name)
        .runtime(Runtime::Nodejs20x)
        .handler("index.handler")
        .role(role)
        .memory_size(256)
        .code(FunctionCode::builder().zip_file(Blob::new(zip)).build())
        .send()
        .await
        .expect("CreateFunction")
        .function_arn
        .expect("function arn");

    let api = aws
        .apigateway
        .create_rest_api()
        .name(format!("{prefix}-api"))
        .endpoint_configuration(
            EndpointConfiguration::builder()
                .types(EndpointType::Private)
                .vpc_endpoint_ids(&vpce)
                .build(),
        )
        .policy(policy::desired_policy(std::slice::from_ref(&vpce)).to_string())
        .send()
        .await
        .expect("CreateRestApi");
    let rest_api_id = api.id.expect("api id");
    let root = api.root_resource_id.expect("root resource");
    make::proxy_routes(aws, &rest_api_id, &root, &function_arn, None).await;
    aws.lambda
        .add_permission()
        .function_name(&function_name)
        .statement_id("cdk-apigw-invoke")
        .action("lambda:InvokeFunction")
        .principal("apigateway.amazonaws.com")
        .source_arn(format!(
            "arn:aws:execute-api:us-east-1:{}:{rest_api_id}/*/*/*",
            aws.account_id
        ))
        .send()
        .await
        .expect("AddPermission");
    let deployment_id = aws
        .apigateway
        .create_deployment()
        .rest_api_id(&rest_api_id)
        .stage_name("prod")
        .send()
        .await
        .expect("CreateDeployment")
        .id
        .expect("deployment id");
    ExistingStack {
        vpce,
        endpoint_sg,
        function_name,
        rest_api_id,
        deployment_id,
    }
}

/// The reference stack's manifest in the world, untagged, with `spec.adopt`.
fn adopt_manifest(world: &World, name: &str, adopt: AdoptSpec) -> PrivateApiManifest {
    world.seed(name).no_tags().adopt(adopt)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_untagged_stack_is_adopted_without_recreating_anything() {
    let mut world = World::new("adopt").vpc(61).build().await;
    let stack = build_stack(&world.aws, world.vpc(), "cdk").await;
    world.start_operator();
    let (namespace, aws, operator) = (&world.namespace, &world.aws, world.operator());

    adopt_manifest(
        &world,
        "adopted",
        manifest::adopt(
            Some(&stack.rest_api_id),
            Some(&stack.function_name),
            Some(&stack.vpce),
        ),
    )
    .apply();
    let object = world.wait_ready("adopted", READY_TIMEOUT);

    // The same REST API, endpoint and function; the stage still serves the stack's deployment.
    assert_eq!(status_str(&object, "restApiId"), stack.rest_api_id);
    assert_eq!(status_str(&object, "vpcEndpointId"), stack.vpce);
    assert!(
        status_str(&object, "functionArn").ends_with(&format!(":function:{}", stack.function_name)),
        "{}",
        object["status"]
    );
    assert_eq!(
        status_str(&object, "deploymentId"),
        stack.deployment_id,
        "no new deployment: the adopted API already matched the spec; log:\n{}",
        operator.log()
    );
    let adopted: Vec<(String, String, String)> = object["status"]["adopted"]
        .as_array()
        .expect("status.adopted")
        .iter()
        .map(|a| {
            (
                a["kind"].as_str().unwrap_or_default().to_string(),
                a["id"].as_str().unwrap_or_default().to_string(),
                a["source"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    assert_eq!(
        adopted,
        vec![
            (
                "Function".into(),
                stack.function_name.clone(),
                "spec.adopt".into()
            ),
            (
                "RestApi".into(),
                stack.rest_api_id.clone(),
                "spec.adopt".into()
            ),
            (
                "VpcEndpoint".into(),
                stack.vpce.clone(),
                "spec.adopt".into()
            ),
        ]
    );
    let events = kubectl(&[
        "get",
        "events",
        "-n",
        namespace,
        "--field-selector",
        "reason=Adopted",
        "-o",
        "json",
    ]);
    // kube's Recorder folds events with the same reason on one object into a series: the note
    // is the first adoption's.
    assert!(
        events.contains(&stack.rest_api_id)
            || events.contains(&stack.vpce)
            || events.contains(&stack.function_name),
        "an Adopted event names what was taken over: {events}"
    );

    // Nothing new besides the managed security group: the stack's resources now carry the tags.
    let owned = world.owned_resources().await;
    let kinds: Vec<&str> = owned.iter().map(|(kind, _)| kind.as_str()).collect();
    assert_eq!(
        kinds,
        vec!["function", "rest-api", "security-group", "vpc-endpoint"],
        "{owned:?}"
    );
    assert!(owned.contains(&("rest-api".to_string(), stack.rest_api_id.clone())));
    assert!(owned.contains(&("vpc-endpoint".to_string(), stack.vpce.clone())));
    // The endpoint now has the managed group instead of the stack's (not in the spec).
    let groups = inspect::endpoint(aws, &stack.vpce)
        .await
        .map(|e| inspect::endpoint_group_ids(&e))
        .unwrap_or_default();
    assert_eq!(
        groups,
        vec![status_str(&object, "securityGroupId")],
        "the stack's group {} is replaced by the managed one",
        stack.endpoint_sg
    );

    // A steady-state resync changes nothing and keeps the deployment.
    world.poke("adopted");
    let again = world.get("adopted").expect("object");
    assert_eq!(status_str(&again, "deploymentId"), stack.deployment_id);

    // deletionPolicy Delete applies to what was adopted.
    world.delete_and_wait("adopted", GONE_TIMEOUT);
    assert!(!inspect::rest_api_exists(aws, &stack.rest_api_id).await);
    assert!(!inspect::function_exists(aws, &stack.function_name).await);
    assert!(
        matches!(
            inspect::endpoint_state_of(aws, &stack.vpce)
                .await
                .as_deref(),
            None | Some("deleting" | "deleted")
        ),
        "the adopted endpoint is deleted"
    );
    assert!(world.owned_resources().await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn adopting_what_does_not_exist_is_waited_for_and_leaves_nothing() {
    let world = World::new("adopt-missing").vpc(62).operator().await;
    let aws = &world.aws;

    adopt_manifest(
        &world,
        "ghost",
        manifest::adopt(Some("zzzzzzzzzz"), Some("no-such-function"), None),
    )
    .apply();
    let object = world.wait_for(
        "ghost",
        READY_TIMEOUT,
        "Ready, ApiReady and BackendReady ReferenceNotFound (once the endpoint is available)",
        |object| {
            ["Ready", "ApiReady", "BackendReady"].iter().all(|type_| {
                condition(object, type_).is_some_and(|c| c["reason"] == "ReferenceNotFound")
            })
        },
    );
    let message = |type_: &str| condition_message(&object, type_);
    assert!(
        message("ApiReady").contains("spec.adopt.restApiId"),
        "{}",
        message("ApiReady")
    );
    assert!(message("ApiReady").contains("zzzzzzzzzz"));
    assert!(
        message("BackendReady").contains("spec.adopt.functionName"),
        "{}",
        message("BackendReady")
    );
    let ready = condition(&object, "Ready").expect("Ready");
    assert_eq!(ready["status"], "False");
    assert_eq!(ready["reason"], "ReferenceNotFound");
    assert!(
        !inspect::function_exists(aws, "no-such-function").await,
        "never created under that name"
    );

    // What the valid part made (the endpoint) goes with the object.
    world.delete_and_wait("ghost", GONE_TIMEOUT);
    assert!(world.owned_resources().await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn adopting_a_public_api_or_another_objects_function_is_invalid_spec() {
    let mut world = World::new("adopt-kind").vpc(63).build().await;
    let aws = world.aws.clone();
    let regional = aws
        .apigateway
        .create_rest_api()
        .name("public-api")
        .endpoint_configuration(
            EndpointConfiguration::builder()
                .types(EndpointType::Regional)
                .build(),
        )
        .send()
        .await
        .expect("CreateRestApi")
        .id
        .expect("api id");
    // A function some other PrivateApi manages (its ownership tags); its stack in another VPC
    // (one private-DNS execute-api endpoint per VPC).
    let stack = build_stack(&aws, &world.make_vpc(64).await, "claimed").await;
    aws.lambda
        .tag_resource()
        .resource(format!(
            "arn:aws:lambda:us-east-1:{}:function:{}",
            aws.account_id, stack.function_name
        ))
        .tags("privateapi.io/cluster", "elsewhere")
        .tags("privateapi.io/owner", "team-b/orders")
        .send()
        .await
        .expect("TagResource");
    world.start_operator();

    adopt_manifest(
        &world,
        "wrong-kind",
        manifest::adopt(Some(&regional), Some(&stack.function_name), None),
    )
    .apply();
    let object = world.wait_for(
        "wrong-kind",
        READY_TIMEOUT,
        "ApiReady and BackendReady InvalidSpec",
        |object| {
            ["ApiReady", "BackendReady"]
                .iter()
                .all(|type_| condition(object, type_).is_some_and(|c| c["reason"] == "InvalidSpec"))
        },
    );
    let message = |type_: &str| condition_message(&object, type_);
    assert!(
        message("ApiReady").contains("spec.adopt.restApiId")
            && message("ApiReady").contains("only PRIVATE"),
        "{}",
        message("ApiReady")
    );
    assert!(
        message("BackendReady").contains("spec.adopt.functionName")
            && message("BackendReady").contains("team-b/orders"),
        "{}",
        message("BackendReady")
    );
    // Neither was taken over: no tags of this cluster on them.
    let api_tags = inspect::rest_api(&aws, &regional)
        .await
        .tags
        .unwrap_or_default();
    assert!(
        !api_tags.contains_key("privateapi.io/owner"),
        "{api_tags:?}"
    );
    world.delete_and_wait("wrong-kind", GONE_TIMEOUT);
    assert!(world.owned_resources().await.is_empty());
    assert!(
        inspect::function_exists(&aws, &stack.function_name).await,
        "another object's function stays"
    );
}
