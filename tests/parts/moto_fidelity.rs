//! Fidelity tests for the AWS half of the test bed (`testbed/moto`): the corrected moto server,
//! reached with the operator's real Rust SDK clients through `AWS_ENDPOINT_URL`.
//!
//! Each `#[tokio::test]` asserts one AWS behaviour that moto 5.2.5 gets wrong and
//! `testbed/moto/server.py` corrects (the test names are listed in the README's "AWS (moto)"
//! section), plus a few that walk every call the operator makes with the SDK's own request
//! shapes. Every test makes its own resources (its own VPC where it matters) so they run in
//! parallel on one server.
//!
//! Run through the test bed: `make test`, or `bash testbed/with-testbed.sh cargo test --test
//! moto_fidelity`, or by hand: `testbed/moto/start.sh DIR; source DIR/moto.env;
//! PAPI_TESTBED=1 cargo test --test parts moto_fidelity::`.

use crate::support::{poll, unique};

use std::time::{Duration, Instant};

use aws_sdk_apigateway::types::{EndpointConfiguration, EndpointType, Op, PatchOperation};
use aws_sdk_ec2::error::ProvideErrorMetadata;
use aws_sdk_ec2::types::{
    Filter, IpPermission, IpRange, ResourceType, Tag, TagSpecification, UserIdGroupPair,
    VpcEndpointType,
};
use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::{Architecture, Environment, FunctionCode, Runtime};
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;

pub(crate) const ACCOUNT: &str = "123456789012";
pub(crate) const REGION: &str = "us-east-1";
pub(crate) const EXECUTE_API: &str = "com.amazonaws.us-east-1.execute-api";

// ---------------------------------------------------------------------------------------------
// helpers
// ---------------------------------------------------------------------------------------------

pub(crate) async fn sdk_config() -> aws_config::SdkConfig {
    if std::env::var_os("PAPI_TESTBED").is_none() {
        panic!("run through `make test` (testbed/with-testbed.sh)");
    }
    assert!(
        std::env::var_os("AWS_ENDPOINT_URL").is_some(),
        "AWS_ENDPOINT_URL is not set: source $PAPI_TESTBED_DIR/moto.env (testbed/with-testbed.sh does)"
    );
    crate::support::sdk_config_loader().load().await
}

struct Aws {
    ec2: aws_sdk_ec2::Client,
    apigw: aws_sdk_apigateway::Client,
    lambda: aws_sdk_lambda::Client,
}

async fn aws() -> Aws {
    let cfg = sdk_config().await;
    Aws {
        ec2: aws_sdk_ec2::Client::new(&cfg),
        apigw: aws_sdk_apigateway::Client::new(&cfg),
        lambda: aws_sdk_lambda::Client::new(&cfg),
    }
}

/// Error code, HTTP status and message of a failed call.
pub(crate) fn failure<E: ProvideErrorMetadata + std::fmt::Debug, T: std::fmt::Debug>(
    r: Result<T, SdkError<E, HttpResponse>>,
) -> (String, u16, String) {
    match r {
        Ok(v) => panic!("expected an error, got {v:?}"),
        Err(e) => {
            let status = e.raw_response().map(|r| r.status().as_u16()).unwrap_or(0);
            let code = e.code().unwrap_or_default().to_string();
            let msg = e.message().unwrap_or_default().to_string();
            assert!(!code.is_empty(), "no error code in {e:?}");
            (code, status, msg)
        }
    }
}

/// A call that must fail, answering its error code and HTTP status.
pub(crate) type FailingCall<'a> = futures::future::BoxFuture<'a, (String, u16)>;

/// What a failing call is, and the error code and HTTP status it must answer.
pub(crate) type Expected<'a> = (&'a str, &'a str, u16);

/// The error code and HTTP status a call answers (it must fail).
pub(crate) fn code_and_status<'a, T, E, F>(call: F) -> FailingCall<'a>
where
    T: std::fmt::Debug,
    E: ProvideErrorMetadata + std::fmt::Debug,
    F: std::future::Future<Output = Result<T, SdkError<E, HttpResponse>>> + Send + 'a,
{
    Box::pin(async move {
        let (code, status, _) = failure(call.await);
        (code, status)
    })
}

/// A table of calls that must fail: (what, expected code, expected status) and the call, in order.
pub(crate) async fn expect_failures(table: Vec<(Expected<'_>, FailingCall<'_>)>) {
    for ((what, code, status), call) in table {
        let (got_code, got_status) = call.await;
        assert_eq!((got_code.as_str(), got_status), (code, status), "{what}");
    }
}

/// How often the fidelity tests look again at what they wait for.
pub(crate) const POLL: Duration = Duration::from_millis(100);

fn tag_spec(rt: ResourceType, uid: &str) -> TagSpecification {
    TagSpecification::builder()
        .resource_type(rt)
        .tags(Tag::builder().key("privateapi.io/uid").value(uid).build())
        .tags(
            Tag::builder()
                .key("privateapi.io/owner")
                .value("team-a/orders")
                .build(),
        )
        .build()
}

/// A fresh VPC with DNS support and hostnames on (needed for private DNS), two subnets in two
/// AZs and one security group. Returns (vpc, [subnets], sg).
async fn network(aws: &Aws, cidr_second_octet: u8) -> (String, Vec<String>, String) {
    let vpc = crate::support::make_vpc(&aws.ec2, cidr_second_octet).await;
    (vpc.vpc_id, vpc.subnet_ids, vpc.client_sg_id)
}

async fn create_endpoint(
    aws: &Aws,
    vpc: &str,
    subnets: &[String],
    sg: &str,
    private_dns: bool,
    token: Option<&str>,
    uid: &str,
) -> Result<
    aws_sdk_ec2::operation::create_vpc_endpoint::CreateVpcEndpointOutput,
    SdkError<aws_sdk_ec2::operation::create_vpc_endpoint::CreateVpcEndpointError, HttpResponse>,
> {
    aws.ec2
        .create_vpc_endpoint()
        .vpc_endpoint_type(VpcEndpointType::Interface)
        .vpc_id(vpc)
        .service_name(EXECUTE_API)
        .set_subnet_ids(Some(subnets.to_vec()))
        .security_group_ids(sg)
        .private_dns_enabled(private_dns)
        .tag_specifications(tag_spec(ResourceType::VpcEndpoint, uid))
        .set_client_token(token.map(str::to_string))
        .send()
        .await
}

async fn endpoint_state(aws: &Aws, id: &str) -> Option<String> {
    let out = aws
        .ec2
        .describe_vpc_endpoints()
        .filters(Filter::builder().name("vpc-endpoint-id").values(id).build())
        .send()
        .await
        .unwrap();
    out.vpc_endpoints()
        .first()
        .and_then(|e| e.state())
        .map(|s| s.as_str().to_string())
}

/// The resource policy the operator writes (design doc, "What the operator makes in AWS"),
/// minified, keys in the order the operator writes them (serde_json's `json!` would sort them).
pub(crate) fn operator_policy(vpce: &[&str]) -> String {
    let vpce = serde_json::to_string(vpce).unwrap();
    format!(
        concat!(
            r#"{{"Version":"2012-10-17","Statement":["#,
            r#"{{"Effect":"Deny","Principal":"*","Action":"execute-api:Invoke","Resource":"execute-api:/*","#,
            r#""Condition":{{"StringNotEquals":{{"aws:SourceVpce":{}}}}}}},"#,
            r#"{{"Effect":"Allow","Principal":"*","Action":"execute-api:Invoke","Resource":"execute-api:/*"}}]}}"#
        ),
        vpce
    )
}

/// AWS's rendering of a policy in GetRestApi: minified, then JSON-escaped inside the string
/// (`"` -> `\"`, `/` -> `\/`), `execute-api:` expanded to the API's ARN.
fn aws_escaped(minified: &str) -> String {
    minified
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('/', "\\/")
}

/// A deployable zip holding one executable file, made by the handler crate's own deterministic
/// packager (moto does not run the code).
fn tiny_zip(name: &str, body: &[u8]) -> Vec<u8> {
    privateapi_handler::package::zip_single(name, 0o755, body).expect("a one-file zip")
}

fn role_arn() -> String {
    std::env::var("PAPI_LAMBDA_ROLE_ARN")
        .unwrap_or_else(|_| format!("arn:aws:iam::{ACCOUNT}:role/papi-backend"))
}

async fn create_function(
    aws: &Aws,
    name: &str,
    zip: &[u8],
) -> aws_sdk_lambda::operation::create_function::CreateFunctionOutput {
    aws.lambda
        .create_function()
        .function_name(name)
        .runtime(Runtime::Providedal2023)
        .role(role_arn())
        .handler("bootstrap")
        .architectures(Architecture::Arm64)
        .memory_size(256)
        .timeout(10)
        .environment(
            Environment::builder()
                .variables("PAPI_MESSAGE", "Private API executed!!")
                .build(),
        )
        .tags("privateapi.io/uid", name)
        .code(
            FunctionCode::builder()
                .zip_file(Blob::new(zip.to_vec()))
                .build(),
        )
        .send()
        .await
        .unwrap()
}

async fn wait_active(aws: &Aws, name: &str) {
    poll::until_async(
        "function Active",
        Duration::from_secs(30),
        POLL,
        async || {
            let c = aws
                .lambda
                .get_function_configuration()
                .function_name(name)
                .send()
                .await
                .unwrap();
            (c.state().map(|s| s.as_str()) == Some("Active")
                && c.last_update_status().map(|s| s.as_str()) != Some("InProgress"))
            .then_some(())
        },
    )
    .await
}

// ---------------------------------------------------------------------------------------------
// corrections: API Gateway
// ---------------------------------------------------------------------------------------------

/// GetRestApi/GetRestApis/CreateRestApi/UpdateRestApi return the policy as AWS does.
#[tokio::test]
async fn apigw_policy_is_escaped_and_expanded() {
    let aws = aws().await;
    let policy = operator_policy(&["vpce-0123456789abcdef0"]);
    let created = aws
        .apigw
        .create_rest_api()
        .name(unique("papi-policy"))
        .policy(&policy)
        .endpoint_configuration(
            EndpointConfiguration::builder()
                .types(EndpointType::Private)
                .vpc_endpoint_ids("vpce-0123456789abcdef0")
                .build(),
        )
        .send()
        .await
        .unwrap();
    let id = created.id().unwrap().to_string();
    let expected_doc = policy.replace(
        "execute-api:/*",
        &format!("arn:aws:execute-api:{REGION}:{ACCOUNT}:{id}/*"),
    );
    let expected = aws_escaped(&expected_doc);
    assert!(
        expected.starts_with(r#"{\"Version\":\"2012-10-17\",\"Statement\":[{\"Effect\":\"Deny\""#)
    );
    assert!(expected.contains(&format!(
        r#"\"Resource\":\"arn:aws:execute-api:{REGION}:{ACCOUNT}:{id}\/*\""#
    )));

    assert_eq!(
        created.policy(),
        Some(expected.as_str()),
        "CreateRestApi response"
    );
    let got = aws
        .apigw
        .get_rest_api()
        .rest_api_id(&id)
        .send()
        .await
        .unwrap();
    assert_eq!(got.policy(), Some(expected.as_str()), "GetRestApi");
    assert_ne!(
        got.policy(),
        Some(policy.as_str()),
        "a literal comparison must not match"
    );

    let mut seen = false;
    let mut pages = aws.apigw.get_rest_apis().limit(500).into_paginator().send();
    while let Some(page) = pages.next().await {
        for api in page.unwrap().items() {
            if api.id() == Some(id.as_str()) {
                assert_eq!(api.policy(), Some(expected.as_str()), "GetRestApis item");
                seen = true;
            }
        }
    }
    assert!(seen, "GetRestApis lists the API");

    // Unescaping (what the operator must do) gives back the expanded document.
    let unescaped: serde_json::Value =
        serde_json::from_str(&format!("\"{}\"", got.policy().unwrap()))
            .and_then(|s: String| serde_json::from_str(&s))
            .unwrap();
    assert_eq!(
        unescaped,
        serde_json::from_str::<serde_json::Value>(&expected_doc).unwrap()
    );

    // UpdateRestApi replace /policy: same rendering in the response and afterwards.
    let policy2 = operator_policy(&["vpce-0123456789abcdef0", "vpce-0fedcba9876543210"]);
    let updated = aws
        .apigw
        .update_rest_api()
        .rest_api_id(&id)
        .patch_operations(
            PatchOperation::builder()
                .op(Op::Replace)
                .path("/policy")
                .value(&policy2)
                .build(),
        )
        .send()
        .await
        .unwrap();
    let expected2 = aws_escaped(&policy2.replace(
        "execute-api:/*",
        &format!("arn:aws:execute-api:{REGION}:{ACCOUNT}:{id}/*"),
    ));
    assert_eq!(
        updated.policy(),
        Some(expected2.as_str()),
        "UpdateRestApi response"
    );

    // A policy that is not JSON is refused, as on AWS.
    let (code, status, _) = failure(
        aws.apigw
            .create_rest_api()
            .name(unique("papi-badpolicy"))
            .policy("{not json")
            .send()
            .await,
    );
    assert_eq!((code.as_str(), status), ("BadRequestException", 400));
    aws.apigw
        .delete_rest_api()
        .rest_api_id(&id)
        .send()
        .await
        .unwrap();
}

/// UpdateRestApi add/remove/replace on /endpointConfiguration/vpcEndpointIds.
#[tokio::test]
async fn apigw_update_vpc_endpoint_ids() {
    let aws = aws().await;
    let id = aws
        .apigw
        .create_rest_api()
        .name(unique("papi-vpce"))
        .endpoint_configuration(
            EndpointConfiguration::builder()
                .types(EndpointType::Private)
                .vpc_endpoint_ids("vpce-0aaaaaaaaaaaaaaaa")
                .build(),
        )
        .send()
        .await
        .unwrap()
        .id
        .unwrap();
    let patch = |op: Op, value: &str| {
        PatchOperation::builder()
            .op(op)
            .path("/endpointConfiguration/vpcEndpointIds")
            .value(value)
            .build()
    };
    let ids = |api: &aws_sdk_apigateway::operation::update_rest_api::UpdateRestApiOutput| {
        let cfg = api.endpoint_configuration().unwrap();
        assert_eq!(cfg.types(), &[EndpointType::Private], "types untouched");
        cfg.vpc_endpoint_ids().to_vec()
    };
    let out = aws
        .apigw
        .update_rest_api()
        .rest_api_id(&id)
        .patch_operations(patch(Op::Add, "vpce-0bbbbbbbbbbbbbbbb"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        ids(&out),
        ["vpce-0aaaaaaaaaaaaaaaa", "vpce-0bbbbbbbbbbbbbbbb"]
    );
    let out = aws
        .apigw
        .update_rest_api()
        .rest_api_id(&id)
        .patch_operations(patch(Op::Remove, "vpce-0aaaaaaaaaaaaaaaa"))
        .send()
        .await
        .unwrap();
    assert_eq!(ids(&out), ["vpce-0bbbbbbbbbbbbbbbb"]);
    let out = aws
        .apigw
        .update_rest_api()
        .rest_api_id(&id)
        .patch_operations(patch(
            Op::Replace,
            "vpce-0cccccccccccccccc,vpce-0dddddddddddddddd",
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(
        ids(&out),
        ["vpce-0cccccccccccccccc", "vpce-0dddddddddddddddd"]
    );
    let got = aws
        .apigw
        .get_rest_api()
        .rest_api_id(&id)
        .send()
        .await
        .unwrap();
    assert_eq!(
        got.endpoint_configuration().unwrap().vpc_endpoint_ids(),
        ["vpce-0cccccccccccccccc", "vpce-0dddddddddddddddd"]
    );
    aws.apigw
        .delete_rest_api()
        .rest_api_id(&id)
        .send()
        .await
        .unwrap();
}

/// Deletes of things that are gone answer 404 NotFoundException (moto: 500 or 400).
#[tokio::test]
async fn apigw_deletes_are_404_when_gone() {
    let aws = aws().await;
    let id = aws
        .apigw
        .create_rest_api()
        .name(unique("papi-404"))
        .send()
        .await
        .unwrap()
        .id
        .unwrap();
    let root = aws
        .apigw
        .get_resources()
        .rest_api_id(&id)
        .send()
        .await
        .unwrap()
        .items()[0]
        .id()
        .unwrap()
        .to_string();
    let api_gone = |what| (what, "NotFoundException", 404);
    expect_failures(vec![
        (
            api_gone("GetDeployment unknown"),
            code_and_status(
                aws.apigw
                    .get_deployment()
                    .rest_api_id(&id)
                    .deployment_id("nosuchdep")
                    .send(),
            ),
        ),
        (
            api_gone("DeleteDeployment unknown"),
            code_and_status(
                aws.apigw
                    .delete_deployment()
                    .rest_api_id(&id)
                    .deployment_id("nosuchdep")
                    .send(),
            ),
        ),
        (
            api_gone("DeleteStage unknown"),
            code_and_status(
                aws.apigw
                    .delete_stage()
                    .rest_api_id(&id)
                    .stage_name("prod")
                    .send(),
            ),
        ),
        (
            api_gone("GetStage unknown"),
            code_and_status(
                aws.apigw
                    .get_stage()
                    .rest_api_id(&id)
                    .stage_name("prod")
                    .send(),
            ),
        ),
        (
            api_gone("DeleteMethod unknown"),
            code_and_status(
                aws.apigw
                    .delete_method()
                    .rest_api_id(&id)
                    .resource_id(&root)
                    .http_method("ANY")
                    .send(),
            ),
        ),
        (
            api_gone("GetIntegration on a missing method"),
            code_and_status(
                aws.apigw
                    .get_integration()
                    .rest_api_id(&id)
                    .resource_id(&root)
                    .http_method("ANY")
                    .send(),
            ),
        ),
    ])
    .await;
    aws.apigw
        .delete_rest_api()
        .rest_api_id(&id)
        .send()
        .await
        .unwrap();
    expect_failures(vec![
        (
            api_gone("DeleteRestApi twice"),
            code_and_status(aws.apigw.delete_rest_api().rest_api_id(&id).send()),
        ),
        (
            api_gone("GetRestApi after delete"),
            code_and_status(aws.apigw.get_rest_api().rest_api_id(&id).send()),
        ),
    ])
    .await;

    // Lambda: DeleteFunction twice, RemovePermission of an unknown statement.
    let name = unique("papi-404fn");
    create_function(&aws, &name, &tiny_zip("bootstrap", b"#!/bin/sh\n")).await;
    let function_gone = |what| (what, "ResourceNotFoundException", 404);
    expect_failures(vec![(
        function_gone("RemovePermission unknown sid"),
        code_and_status(
            aws.lambda
                .remove_permission()
                .function_name(&name)
                .statement_id("nope")
                .send(),
        ),
    )])
    .await;
    aws.lambda
        .delete_function()
        .function_name(&name)
        .send()
        .await
        .unwrap();
    expect_failures(vec![
        (
            function_gone("DeleteFunction twice"),
            code_and_status(aws.lambda.delete_function().function_name(&name).send()),
        ),
        (
            function_gone("GetFunction after delete"),
            code_and_status(aws.lambda.get_function().function_name(&name).send()),
        ),
    ])
    .await;
}

/// TagResource/GetTags/UntagResource by REST API ARN; CreateRestApi tags are the same tags.
#[tokio::test]
async fn apigw_tags_by_rest_api_arn() {
    let aws = aws().await;
    let created = aws
        .apigw
        .create_rest_api()
        .name(unique("papi-tags"))
        .tags("privateapi.io/uid", "u-1")
        .tags("privateapi.io/owner", "team-a/orders")
        .send()
        .await
        .unwrap();
    let id = created.id().unwrap().to_string();
    assert_eq!(
        created
            .tags()
            .unwrap()
            .get("privateapi.io/uid")
            .map(String::as_str),
        Some("u-1")
    );
    let arn = format!("arn:aws:apigateway:{REGION}::/restapis/{id}");
    let tags = aws
        .apigw
        .get_tags()
        .resource_arn(&arn)
        .send()
        .await
        .unwrap();
    assert_eq!(
        tags.tags()
            .unwrap()
            .get("privateapi.io/owner")
            .map(String::as_str),
        Some("team-a/orders")
    );

    aws.apigw
        .tag_resource()
        .resource_arn(&arn)
        .tags("privateapi.io/cluster", "kind-a")
        .send()
        .await
        .unwrap();
    aws.apigw
        .untag_resource()
        .resource_arn(&arn)
        .tag_keys("privateapi.io/owner")
        .send()
        .await
        .unwrap();
    let tags = aws
        .apigw
        .get_tags()
        .resource_arn(&arn)
        .send()
        .await
        .unwrap();
    let tags = tags.tags().unwrap();
    assert_eq!(
        tags.get("privateapi.io/cluster").map(String::as_str),
        Some("kind-a")
    );
    assert_eq!(
        tags.get("privateapi.io/uid").map(String::as_str),
        Some("u-1")
    );
    assert!(!tags.contains_key("privateapi.io/owner"));
    // ... and GetRestApi / GetRestApis show the same tags.
    let got = aws
        .apigw
        .get_rest_api()
        .rest_api_id(&id)
        .send()
        .await
        .unwrap();
    assert_eq!(got.tags(), Some(tags));
    let mut pages = aws.apigw.get_rest_apis().limit(500).into_paginator().send();
    let mut seen = false;
    while let Some(page) = pages.next().await {
        for api in page.unwrap().items() {
            if api.id() == Some(id.as_str()) {
                assert_eq!(api.tags(), Some(tags));
                seen = true;
            }
        }
    }
    assert!(seen);
    aws.apigw
        .delete_rest_api()
        .rest_api_id(&id)
        .send()
        .await
        .unwrap();
    let (c, s, _) = failure(aws.apigw.get_tags().resource_arn(&arn).send().await);
    assert_eq!((c.as_str(), s), ("NotFoundException", 404));
}

/// Methods `ANY /` and `ANY /{proxy+}` with an AWS_PROXY integration to `fn_arn`.
async fn build_api(aws: &Aws, id: &str, fn_arn: &str) -> (String, String) {
    let res = aws
        .apigw
        .get_resources()
        .rest_api_id(id)
        .embed("methods")
        .limit(500)
        .send()
        .await
        .unwrap();
    let root = res
        .items()
        .iter()
        .find(|r| r.path() == Some("/"))
        .unwrap()
        .id()
        .unwrap()
        .to_string();
    let proxy = aws
        .apigw
        .create_resource()
        .rest_api_id(id)
        .parent_id(&root)
        .path_part("{proxy+}")
        .send()
        .await
        .unwrap()
        .id
        .unwrap();
    let uri = format!(
        "arn:aws:apigateway:{REGION}:lambda:path/2015-03-31/functions/{fn_arn}/invocations"
    );
    for rid in [&root, &proxy] {
        aws.apigw
            .put_method()
            .rest_api_id(id)
            .resource_id(rid)
            .http_method("ANY")
            .authorization_type("NONE")
            .send()
            .await
            .unwrap();
        aws.apigw
            .put_integration()
            .rest_api_id(id)
            .resource_id(rid)
            .http_method("ANY")
            .r#type(aws_sdk_apigateway::types::IntegrationType::AwsProxy)
            .integration_http_method("POST")
            .uri(&uri)
            .send()
            .await
            .unwrap();
    }
    (root, proxy)
}

/// UpdateDeployment replaces the description (the operator stamps adopted deployments this way).
#[tokio::test]
async fn apigw_update_deployment_description() {
    let aws = aws().await;
    let id = aws
        .apigw
        .create_rest_api()
        .name(unique("papi-update-deployment"))
        .send()
        .await
        .unwrap()
        .id
        .unwrap();
    build_api(
        &aws,
        &id,
        &format!("arn:aws:lambda:{REGION}:{ACCOUNT}:function:x"),
    )
    .await;
    let deployment = aws
        .apigw
        .create_deployment()
        .rest_api_id(&id)
        .stage_name("prod")
        .send()
        .await
        .unwrap()
        .id
        .unwrap();
    let updated = aws
        .apigw
        .update_deployment()
        .rest_api_id(&id)
        .deployment_id(&deployment)
        .patch_operations(
            aws_sdk_apigateway::types::PatchOperation::builder()
                .op(aws_sdk_apigateway::types::Op::Replace)
                .path("/description")
                .value("stamped")
                .build(),
        )
        .send()
        .await
        .expect("UpdateDeployment");
    assert_eq!(updated.description.as_deref(), Some("stamped"));
    let read = aws
        .apigw
        .get_deployment()
        .rest_api_id(&id)
        .deployment_id(&deployment)
        .send()
        .await
        .unwrap();
    assert_eq!(read.description.as_deref(), Some("stamped"));
}

/// DeleteDeployment refuses the deployment a stage points at now, not the one it was made with.
#[tokio::test]
async fn apigw_delete_deployment_follows_stage() {
    let aws = aws().await;
    let id = aws
        .apigw
        .create_rest_api()
        .name(unique("papi-deploy"))
        .send()
        .await
        .unwrap()
        .id
        .unwrap();
    build_api(
        &aws,
        &id,
        &format!("arn:aws:lambda:{REGION}:{ACCOUNT}:function:x"),
    )
    .await;
    let d1 = aws
        .apigw
        .create_deployment()
        .rest_api_id(&id)
        .stage_name("prod")
        .send()
        .await
        .unwrap()
        .id
        .unwrap();
    let d2 = aws
        .apigw
        .create_deployment()
        .rest_api_id(&id)
        .description("second")
        .send()
        .await
        .unwrap()
        .id
        .unwrap();
    aws.apigw
        .update_stage()
        .rest_api_id(&id)
        .stage_name("prod")
        .patch_operations(
            PatchOperation::builder()
                .op(Op::Replace)
                .path("/deploymentId")
                .value(&d2)
                .build(),
        )
        .send()
        .await
        .unwrap();
    let (c, s, msg) = failure(
        aws.apigw
            .delete_deployment()
            .rest_api_id(&id)
            .deployment_id(&d2)
            .send()
            .await,
    );
    assert_eq!((c.as_str(), s), ("BadRequestException", 400), "{msg}");
    assert!(
        msg.contains("Active stages pointing to this deployment"),
        "{msg}"
    );
    aws.apigw
        .delete_deployment()
        .rest_api_id(&id)
        .deployment_id(&d1)
        .send()
        .await
        .unwrap();
    let deps = aws
        .apigw
        .get_deployments()
        .rest_api_id(&id)
        .limit(500)
        .send()
        .await
        .unwrap();
    let ids: Vec<_> = deps.items().iter().filter_map(|d| d.id()).collect();
    assert_eq!(ids, [d2.as_str()]);
    aws.apigw
        .delete_rest_api()
        .rest_api_id(&id)
        .send()
        .await
        .unwrap();
}

/// A stage can only point at a deployment that exists.
#[tokio::test]
async fn apigw_stage_needs_existing_deployment() {
    let aws = aws().await;
    let id = aws
        .apigw
        .create_rest_api()
        .name(unique("papi-stage"))
        .send()
        .await
        .unwrap()
        .id
        .unwrap();
    build_api(
        &aws,
        &id,
        &format!("arn:aws:lambda:{REGION}:{ACCOUNT}:function:x"),
    )
    .await;
    let (c, s, _) = failure(
        aws.apigw
            .create_stage()
            .rest_api_id(&id)
            .stage_name("prod")
            .deployment_id("nosuchdep")
            .send()
            .await,
    );
    assert_eq!((c.as_str(), s), ("NotFoundException", 404));
    let d = aws
        .apigw
        .create_deployment()
        .rest_api_id(&id)
        .send()
        .await
        .unwrap()
        .id
        .unwrap();
    aws.apigw
        .create_stage()
        .rest_api_id(&id)
        .stage_name("prod")
        .deployment_id(&d)
        .send()
        .await
        .unwrap();
    let (c, s, _) = failure(
        aws.apigw
            .update_stage()
            .rest_api_id(&id)
            .stage_name("prod")
            .patch_operations(
                PatchOperation::builder()
                    .op(Op::Replace)
                    .path("/deploymentId")
                    .value("nosuchdep")
                    .build(),
            )
            .send()
            .await,
    );
    assert_eq!((c.as_str(), s), ("NotFoundException", 404));
    let (c, s, _) = failure(
        aws.apigw
            .update_stage()
            .rest_api_id(&id)
            .stage_name("nosuchstage")
            .patch_operations(
                PatchOperation::builder()
                    .op(Op::Replace)
                    .path("/deploymentId")
                    .value(&d)
                    .build(),
            )
            .send()
            .await,
    );
    assert_eq!(
        (c.as_str(), s),
        ("NotFoundException", 404),
        "UpdateStage of a missing stage"
    );
    let st = aws
        .apigw
        .get_stage()
        .rest_api_id(&id)
        .stage_name("prod")
        .send()
        .await
        .unwrap();
    assert_eq!(st.deployment_id(), Some(d.as_str()));
    aws.apigw
        .delete_rest_api()
        .rest_api_id(&id)
        .send()
        .await
        .unwrap();
}

/// CreateResource/PutMethod on what exists: 409 ConflictException.
#[tokio::test]
async fn apigw_create_existing_conflicts() {
    let aws = aws().await;
    let id = aws
        .apigw
        .create_rest_api()
        .name(unique("papi-conflict"))
        .send()
        .await
        .unwrap()
        .id
        .unwrap();
    let (root, _) = build_api(
        &aws,
        &id,
        &format!("arn:aws:lambda:{REGION}:{ACCOUNT}:function:x"),
    )
    .await;
    let (c, s, msg) = failure(
        aws.apigw
            .create_resource()
            .rest_api_id(&id)
            .parent_id(&root)
            .path_part("{proxy+}")
            .send()
            .await,
    );
    assert_eq!((c.as_str(), s), ("ConflictException", 409), "{msg}");
    let (c, s, _) = failure(
        aws.apigw
            .put_method()
            .rest_api_id(&id)
            .resource_id(&root)
            .http_method("ANY")
            .authorization_type("NONE")
            .send()
            .await,
    );
    assert_eq!((c.as_str(), s), ("ConflictException", 409));
    // The integration survived the refused PutMethod.
    let integ = aws
        .apigw
        .get_integration()
        .rest_api_id(&id)
        .resource_id(&root)
        .http_method("ANY")
        .send()
        .await
        .unwrap();
    assert_eq!(
        integ.r#type(),
        Some(&aws_sdk_apigateway::types::IntegrationType::AwsProxy)
    );
    let res = aws
        .apigw
        .get_resources()
        .rest_api_id(&id)
        .limit(500)
        .send()
        .await
        .unwrap();
    assert_eq!(res.items().len(), 2, "one / and one /{{proxy+}}");
    aws.apigw
        .delete_rest_api()
        .rest_api_id(&id)
        .send()
        .await
        .unwrap();
}

/// GetRestApis pages (default 25, `position`), ListFunctions pages (`NextMarker`).
#[tokio::test]
async fn paging_get_rest_apis_and_list_functions() {
    let aws = aws().await;
    let mut mine = vec![];
    for _ in 0..3 {
        mine.push(
            aws.apigw
                .create_rest_api()
                .name(unique("papi-page"))
                .send()
                .await
                .unwrap()
                .id
                .unwrap(),
        );
    }
    let first = aws.apigw.get_rest_apis().limit(2).send().await.unwrap();
    assert_eq!(first.items().len(), 2, "limit is honoured");
    assert!(
        first.position().is_some(),
        "a position token when there is more"
    );
    let mut all = vec![];
    let mut pages = aws.apigw.get_rest_apis().limit(2).into_paginator().send();
    while let Some(page) = pages.next().await {
        let page = page.unwrap();
        assert!(page.items().len() <= 2);
        all.extend(
            page.items()
                .iter()
                .filter_map(|a| a.id().map(str::to_string)),
        );
    }
    for id in &mine {
        assert!(all.contains(id), "paging reaches {id}");
    }
    let mut fns = vec![];
    for _ in 0..3 {
        let name = unique("papi-page");
        create_function(&aws, &name, &tiny_zip("bootstrap", b"x")).await;
        fns.push(name);
    }
    let first = aws
        .lambda
        .list_functions()
        .max_items(2)
        .send()
        .await
        .unwrap();
    assert_eq!(first.functions().len(), 2);
    assert!(first.next_marker().is_some());
    let mut names = vec![];
    let mut pages = aws
        .lambda
        .list_functions()
        .max_items(2)
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        names.extend(
            page.unwrap()
                .functions()
                .iter()
                .filter_map(|f| f.function_name().map(str::to_string)),
        );
    }
    for n in &fns {
        assert!(names.contains(n), "paging reaches {n}");
        aws.lambda
            .delete_function()
            .function_name(n)
            .send()
            .await
            .unwrap();
    }
    for id in &mine {
        aws.apigw
            .delete_rest_api()
            .rest_api_id(id)
            .send()
            .await
            .unwrap();
    }
}

// ---------------------------------------------------------------------------------------------
// corrections: EC2
// ---------------------------------------------------------------------------------------------

/// Same ClientToken + same parameters = same endpoint; different parameters = mismatch.
#[tokio::test]
async fn ec2_endpoint_client_token_idempotent() {
    let aws = aws().await;
    let (vpc, subnets, sg) = network(&aws, 11).await;
    let uid = unique("uid");
    let token = unique("token");
    let a = create_endpoint(&aws, &vpc, &subnets, &sg, true, Some(&token), &uid)
        .await
        .unwrap();
    let b = create_endpoint(&aws, &vpc, &subnets, &sg, true, Some(&token), &uid)
        .await
        .unwrap();
    let id = a.vpc_endpoint().unwrap().vpc_endpoint_id().unwrap();
    assert_eq!(
        Some(id),
        b.vpc_endpoint().unwrap().vpc_endpoint_id(),
        "same endpoint"
    );
    assert_eq!(b.client_token(), Some(token.as_str()));
    let found = aws
        .ec2
        .describe_vpc_endpoints()
        .filters(
            Filter::builder()
                .name("tag:privateapi.io/uid")
                .values(&uid)
                .build(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(found.vpc_endpoints().len(), 1, "no duplicate");
    let (c, s, _) =
        failure(create_endpoint(&aws, &vpc, &subnets[..1], &sg, true, Some(&token), &uid).await);
    assert_eq!((c.as_str(), s), ("IdempotentParameterMismatch", 400));
    aws.ec2
        .delete_vpc_endpoints()
        .vpc_endpoint_ids(id)
        .send()
        .await
        .unwrap();
}

/// A new endpoint is `pending`, then `available`.
#[tokio::test]
async fn ec2_endpoint_pending_then_available() {
    let aws = aws().await;
    let (vpc, subnets, sg) = network(&aws, 12).await;
    let out = create_endpoint(&aws, &vpc, &subnets, &sg, true, None, &unique("uid"))
        .await
        .unwrap();
    let ep = out.vpc_endpoint().unwrap();
    let id = ep.vpc_endpoint_id().unwrap().to_string();
    assert_eq!(
        ep.state().map(|s| s.as_str()),
        Some("pending"),
        "CreateVpcEndpoint answers pending"
    );
    // Trap: AWS (and moto) send lowercase states ("pending", "available", "deleting", "deleted"),
    // while the SDK's `State` enum spells them "Pending", "Available", ...: the value parses as
    // `State::Unknown`, so an operator must compare `state.as_str()` (case-insensitively), never
    // match `State::Available`.
    assert_ne!(ep.state(), Some(&aws_sdk_ec2::types::State::Pending));
    assert_eq!(endpoint_state(&aws, &id).await.as_deref(), Some("pending"));
    let started = Instant::now();
    poll::until_async(
        "endpoint available",
        Duration::from_secs(30),
        POLL,
        async || (endpoint_state(&aws, &id).await.as_deref() == Some("available")).then_some(()),
    )
    .await;
    assert!(
        started.elapsed() >= Duration::from_millis(100),
        "it was pending for a while"
    );
    // DNS entries in AWS's shape: regional first, then one per AZ.
    let desc = aws
        .ec2
        .describe_vpc_endpoints()
        .vpc_endpoint_ids(&id)
        .send()
        .await
        .unwrap();
    let dns: Vec<_> = desc.vpc_endpoints()[0]
        .dns_entries()
        .iter()
        .filter_map(|d| d.dns_name())
        .collect();
    assert_eq!(dns.len(), 3, "{dns:?}");
    assert!(dns[0].starts_with(&format!("{id}-")), "{dns:?}");
    assert!(
        dns[0].ends_with(".execute-api.us-east-1.vpce.amazonaws.com"),
        "{dns:?}"
    );
    assert!(dns[1].contains("-us-east-1a.execute-api."), "{dns:?}");
    aws.ec2
        .delete_vpc_endpoints()
        .vpc_endpoint_ids(&id)
        .send()
        .await
        .unwrap();
}

/// At most one subnet per Availability Zone, on create and on ModifyVpcEndpoint.
#[tokio::test]
async fn ec2_endpoint_one_subnet_per_az() {
    let aws = aws().await;
    let (vpc, subnets, sg) = network(&aws, 18).await;
    let same_az = aws
        .ec2
        .create_subnet()
        .vpc_id(&vpc)
        .cidr_block("10.18.9.0/24")
        .availability_zone("us-east-1a")
        .send()
        .await
        .unwrap()
        .subnet
        .unwrap()
        .subnet_id
        .unwrap();
    let (c, s, msg) = failure(
        create_endpoint(
            &aws,
            &vpc,
            &[subnets[0].clone(), same_az.clone()],
            &sg,
            false,
            None,
            &unique("uid"),
        )
        .await,
    );
    assert_eq!((c.as_str(), s), ("DuplicateSubnetsInSameZone", 400));
    assert!(
        msg.starts_with(&format!(
            "Found another VPC endpoint subnet in the availability zone of {}",
            subnets[0]
        )),
        "{msg}"
    );
    let ep = create_endpoint(&aws, &vpc, &subnets[..1], &sg, false, None, &unique("uid"))
        .await
        .unwrap();
    let id = ep
        .vpc_endpoint()
        .unwrap()
        .vpc_endpoint_id()
        .unwrap()
        .to_string();
    let (c, _, _) = failure(
        aws.ec2
            .modify_vpc_endpoint()
            .vpc_endpoint_id(&id)
            .add_subnet_ids(&same_az)
            .send()
            .await,
    );
    assert_eq!(c, "DuplicateSubnetsInSameZone");
    // Remove first, then add: fine (what an operator moving an endpoint within an AZ must do).
    aws.ec2
        .modify_vpc_endpoint()
        .vpc_endpoint_id(&id)
        .add_subnet_ids(&subnets[1])
        .send()
        .await
        .unwrap();
    aws.ec2
        .modify_vpc_endpoint()
        .vpc_endpoint_id(&id)
        .remove_subnet_ids(&subnets[0])
        .send()
        .await
        .unwrap();
    aws.ec2
        .modify_vpc_endpoint()
        .vpc_endpoint_id(&id)
        .add_subnet_ids(&same_az)
        .send()
        .await
        .unwrap();
    let d = aws
        .ec2
        .describe_vpc_endpoints()
        .vpc_endpoint_ids(&id)
        .send()
        .await
        .unwrap();
    assert_eq!(
        d.vpc_endpoints()[0].subnet_ids(),
        [subnets[1].clone(), same_az]
    );
    assert_eq!(d.vpc_endpoints()[0].network_interface_ids().len(), 2);
    aws.ec2
        .delete_vpc_endpoints()
        .vpc_endpoint_ids(&id)
        .send()
        .await
        .unwrap();
}

/// An endpoint for another region's service (spec.region != the client's region) is refused.
#[tokio::test]
async fn ec2_endpoint_service_of_other_region_is_invalid() {
    let aws = aws().await;
    let (vpc, subnets, sg) = network(&aws, 19).await;
    let (c, s, msg) = failure(
        aws.ec2
            .create_vpc_endpoint()
            .vpc_endpoint_type(VpcEndpointType::Interface)
            .vpc_id(&vpc)
            .service_name("com.amazonaws.eu-west-1.execute-api")
            .subnet_ids(&subnets[0])
            .security_group_ids(&sg)
            .send()
            .await,
    );
    assert_eq!((c.as_str(), s), ("InvalidServiceName", 400));
    assert_eq!(
        msg,
        "The Vpc Endpoint Service 'com.amazonaws.eu-west-1.execute-api' does not exist"
    );
}

/// DeleteVpcEndpoints: `deleting`, then `deleted`; an unknown id is an Unsuccessful item.
#[tokio::test]
async fn ec2_endpoint_delete_lifecycle() {
    let aws = aws().await;
    let (vpc, subnets, sg) = network(&aws, 13).await;
    let out = create_endpoint(&aws, &vpc, &subnets, &sg, false, None, &unique("uid"))
        .await
        .unwrap();
    let id = out
        .vpc_endpoint()
        .unwrap()
        .vpc_endpoint_id()
        .unwrap()
        .to_string();
    let del = aws
        .ec2
        .delete_vpc_endpoints()
        .vpc_endpoint_ids(&id)
        .send()
        .await
        .unwrap();
    assert!(del.unsuccessful().is_empty());
    assert_eq!(endpoint_state(&aws, &id).await.as_deref(), Some("deleting"));
    poll::until_async(
        "endpoint deleted",
        Duration::from_secs(30),
        POLL,
        async || (endpoint_state(&aws, &id).await.as_deref() == Some("deleted")).then_some(()),
    )
    .await;
}

/// DeleteVpcEndpoints with an unknown id answers 200 with an Unsuccessful item.
#[tokio::test]
async fn ec2_delete_unknown_endpoint_is_unsuccessful_item() {
    let aws = aws().await;
    let out = aws
        .ec2
        .delete_vpc_endpoints()
        .vpc_endpoint_ids("vpce-0123456789abcdef0")
        .send()
        .await
        .unwrap();
    let item = &out.unsuccessful()[0];
    assert_eq!(item.resource_id(), Some("vpce-0123456789abcdef0"));
    assert_eq!(
        item.error().and_then(|e| e.code()),
        Some("InvalidVpcEndpoint.NotFound")
    );
    let (c, _, _) = failure(
        aws.ec2
            .describe_vpc_endpoints()
            .vpc_endpoint_ids("vpce-0123456789abcdef0")
            .send()
            .await,
    );
    assert_eq!(c, "InvalidVpcEndpointId.NotFound");
}

/// One private-DNS execute-api endpoint per VPC; private DNS needs the VPC's DNS attributes.
#[tokio::test]
async fn ec2_second_private_dns_endpoint_conflicts() {
    let aws = aws().await;
    let (vpc, subnets, sg) = network(&aws, 14).await;
    let first = create_endpoint(&aws, &vpc, &subnets, &sg, true, None, &unique("uid"))
        .await
        .unwrap();
    let first = first
        .vpc_endpoint()
        .unwrap()
        .vpc_endpoint_id()
        .unwrap()
        .to_string();
    let (c, s, msg) =
        failure(create_endpoint(&aws, &vpc, &subnets, &sg, true, None, &unique("uid")).await);
    assert_eq!((c.as_str(), s), ("InvalidParameter", 400));
    assert_eq!(
        msg,
        format!(
            "private-dns-enabled cannot be set because there is already a conflicting DNS domain for execute-api.us-east-1.amazonaws.com in the VPC {vpc}"
        )
    );
    // Without private DNS a second endpoint is fine, but turning it on later conflicts too.
    let second = create_endpoint(&aws, &vpc, &subnets, &sg, false, None, &unique("uid"))
        .await
        .unwrap();
    let second = second
        .vpc_endpoint()
        .unwrap()
        .vpc_endpoint_id()
        .unwrap()
        .to_string();
    let (c, _, _) = failure(
        aws.ec2
            .modify_vpc_endpoint()
            .vpc_endpoint_id(&second)
            .private_dns_enabled(true)
            .send()
            .await,
    );
    assert_eq!(c, "InvalidParameter");
    // While the first is still `deleting` it keeps the domain.
    aws.ec2
        .delete_vpc_endpoints()
        .vpc_endpoint_ids(&first)
        .send()
        .await
        .unwrap();
    if endpoint_state(&aws, &first).await.as_deref() == Some("deleting") {
        let (c, _, _) =
            failure(create_endpoint(&aws, &vpc, &subnets, &sg, true, None, &unique("uid")).await);
        assert_eq!(c, "InvalidParameter");
    }
    poll::until_async(
        "first endpoint deleted",
        Duration::from_secs(30),
        POLL,
        async || (endpoint_state(&aws, &first).await.as_deref() == Some("deleted")).then_some(()),
    )
    .await;
    aws.ec2
        .modify_vpc_endpoint()
        .vpc_endpoint_id(&second)
        .private_dns_enabled(true)
        .send()
        .await
        .unwrap();
    let d = aws
        .ec2
        .describe_vpc_endpoints()
        .vpc_endpoint_ids(&second)
        .send()
        .await
        .unwrap();
    assert_eq!(d.vpc_endpoints()[0].private_dns_enabled(), Some(true));
    aws.ec2
        .delete_vpc_endpoints()
        .vpc_endpoint_ids(&second)
        .send()
        .await
        .unwrap();

    // A new VPC has enableDnsHostnames=false: private DNS is refused there.
    let bare = aws
        .ec2
        .create_vpc()
        .cidr_block("10.15.0.0/16")
        .send()
        .await
        .unwrap()
        .vpc
        .unwrap()
        .vpc_id
        .unwrap();
    let sn = aws
        .ec2
        .create_subnet()
        .vpc_id(&bare)
        .cidr_block("10.15.0.0/24")
        .availability_zone("us-east-1a")
        .send()
        .await
        .unwrap()
        .subnet
        .unwrap()
        .subnet_id
        .unwrap();
    let (c, _, msg) =
        failure(create_endpoint(&aws, &bare, &[sn], &sg, true, None, &unique("uid")).await);
    assert_eq!(c, "InvalidParameter", "{msg}");
    assert!(msg.contains("enableDnsHostnames"), "{msg}");
}

/// DeleteSecurityGroup of a group an endpoint uses: DependencyViolation until it is deleted.
#[tokio::test]
async fn ec2_security_group_in_use_by_endpoint() {
    let aws = aws().await;
    let (vpc, subnets, sg) = network(&aws, 16).await;
    let out = create_endpoint(&aws, &vpc, &subnets, &sg, false, None, &unique("uid"))
        .await
        .unwrap();
    let id = out
        .vpc_endpoint()
        .unwrap()
        .vpc_endpoint_id()
        .unwrap()
        .to_string();
    let (c, s, msg) = failure(aws.ec2.delete_security_group().group_id(&sg).send().await);
    assert_eq!((c.as_str(), s), ("DependencyViolation", 400));
    assert_eq!(msg, format!("resource {sg} has a dependent object"));
    // A group referenced by another group's rule is in use too.
    let other = aws
        .ec2
        .create_security_group()
        .group_name(unique("papi-ref"))
        .description("references")
        .vpc_id(&vpc)
        .send()
        .await
        .unwrap()
        .group_id
        .unwrap();
    aws.ec2
        .authorize_security_group_ingress()
        .group_id(&sg)
        .ip_permissions(
            IpPermission::builder()
                .ip_protocol("tcp")
                .from_port(443)
                .to_port(443)
                .user_id_group_pairs(UserIdGroupPair::builder().group_id(&other).build())
                .build(),
        )
        .send()
        .await
        .unwrap();
    let (c, _, _) = failure(
        aws.ec2
            .delete_security_group()
            .group_id(&other)
            .send()
            .await,
    );
    assert_eq!(c, "DependencyViolation");

    aws.ec2
        .delete_vpc_endpoints()
        .vpc_endpoint_ids(&id)
        .send()
        .await
        .unwrap();
    poll::until_async(
        "security group deletable",
        Duration::from_secs(30),
        POLL,
        async || {
            aws.ec2
                .delete_security_group()
                .group_id(&sg)
                .send()
                .await
                .ok()
        },
    )
    .await;
    aws.ec2
        .delete_security_group()
        .group_id(&other)
        .send()
        .await
        .unwrap();
}

// ---------------------------------------------------------------------------------------------
// corrections: Lambda
// ---------------------------------------------------------------------------------------------

/// CreateFunction answers State=Pending; the function becomes Active a little later.
#[tokio::test]
async fn lambda_function_pending_then_active() {
    let aws = aws().await;
    let name = unique("papi-pending");
    let zip = tiny_zip("bootstrap", b"#!/bin/sh\necho hi\n");
    let out = create_function(&aws, &name, &zip).await;
    assert_eq!(out.state().map(|s| s.as_str()), Some("Pending"));
    assert_eq!(
        out.state_reason_code().map(|s| s.as_str()),
        Some("Creating")
    );
    // CodeSha256 is base64(sha256(zip)), as on AWS: the operator can compare it.
    use base64::Engine;
    use sha2::Digest;
    let sha = base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(&zip));
    assert_eq!(out.code_sha256(), Some(sha.as_str()));
    assert_eq!(out.architectures(), &[Architecture::Arm64]);
    wait_active(&aws, &name).await;
    let f = aws
        .lambda
        .get_function()
        .function_name(&name)
        .send()
        .await
        .unwrap();
    assert_eq!(
        f.configuration().unwrap().state().map(|s| s.as_str()),
        Some("Active")
    );
    assert_eq!(f.tags().unwrap().get("privateapi.io/uid"), Some(&name));
    aws.lambda
        .delete_function()
        .function_name(&name)
        .send()
        .await
        .unwrap();
}

/// LastUpdateStatus InProgress -> Successful; updates while Pending/InProgress conflict.
#[tokio::test]
async fn lambda_update_in_progress_conflicts() {
    let aws = aws().await;
    let name = unique("papi-update");
    create_function(&aws, &name, &tiny_zip("bootstrap", b"v1")).await;
    let (c, s, msg) = failure(
        aws.lambda
            .update_function_configuration()
            .function_name(&name)
            .memory_size(512)
            .send()
            .await,
    );
    assert_eq!((c.as_str(), s), ("ResourceConflictException", 409));
    assert!(
        msg.contains("currently in the following state: Pending"),
        "{msg}"
    );
    wait_active(&aws, &name).await;

    let out = aws
        .lambda
        .update_function_configuration()
        .function_name(&name)
        .memory_size(512)
        .send()
        .await
        .unwrap();
    assert_eq!(
        out.last_update_status().map(|s| s.as_str()),
        Some("InProgress")
    );
    let (c, s, msg) = failure(
        aws.lambda
            .update_function_code()
            .function_name(&name)
            .zip_file(Blob::new(tiny_zip("bootstrap", b"v2")))
            .send()
            .await,
    );
    assert_eq!((c.as_str(), s), ("ResourceConflictException", 409));
    assert!(
        msg.contains("An update is in progress for resource: arn:aws:lambda:"),
        "{msg}"
    );
    wait_active(&aws, &name).await;
    let cfg = aws
        .lambda
        .get_function_configuration()
        .function_name(&name)
        .send()
        .await
        .unwrap();
    assert_eq!(
        cfg.last_update_status().map(|s| s.as_str()),
        Some("Successful")
    );
    assert_eq!(cfg.memory_size(), Some(512));
    let out = aws
        .lambda
        .update_function_code()
        .function_name(&name)
        .s3_bucket(std::env::var("PAPI_TEST_CODE_BUCKET").unwrap_or("papi-testbed-code".into()))
        .s3_key(std::env::var("PAPI_TEST_CODE_KEY").unwrap_or("handler.zip".into()))
        .send()
        .await
        .unwrap();
    assert_eq!(
        out.last_update_status().map(|s| s.as_str()),
        Some("InProgress")
    );
    aws.lambda
        .delete_function()
        .function_name(&name)
        .send()
        .await
        .unwrap();
}

/// CreateFunction with an S3 object that does not exist fails as on AWS.
#[tokio::test]
async fn lambda_s3_code_must_exist() {
    let aws = aws().await;
    let name = unique("papi-s3");
    let bucket = std::env::var("PAPI_TEST_CODE_BUCKET").unwrap_or("papi-testbed-code".into());
    let key = std::env::var("PAPI_TEST_CODE_KEY").unwrap_or("handler.zip".into());
    let create = |key: String| {
        aws.lambda
            .create_function()
            .function_name(&name)
            .runtime(Runtime::Providedal2023)
            .role(role_arn())
            .handler("bootstrap")
            .code(
                FunctionCode::builder()
                    .s3_bucket(&bucket)
                    .s3_key(key)
                    .build(),
            )
            .send()
    };
    let (c, s, msg) = failure(create("no/such/key.zip".into()).await);
    assert_eq!((c.as_str(), s), ("InvalidParameterValueException", 400));
    assert!(msg.contains("NoSuchKey"), "{msg}");
    let out = create(key).await.unwrap();
    assert!(out.code_size() > 0);
    aws.lambda
        .delete_function()
        .function_name(&name)
        .send()
        .await
        .unwrap();
}

/// AddPermission with an existing StatementId conflicts; GetPolicy is AWS's minified JSON.
#[tokio::test]
async fn lambda_permission_duplicate_sid_conflicts() {
    let aws = aws().await;
    let name = unique("papi-perm");
    let f = create_function(&aws, &name, &tiny_zip("bootstrap", b"x")).await;
    let fn_arn = f.function_arn().unwrap().to_string();
    let source = format!("arn:aws:execute-api:{REGION}:{ACCOUNT}:abc123defg/*");
    let add = || {
        aws.lambda
            .add_permission()
            .function_name(&name)
            .statement_id("privateapi-apigateway-invoke")
            .action("lambda:InvokeFunction")
            .principal("apigateway.amazonaws.com")
            .source_arn(&source)
            .source_account(ACCOUNT)
            .send()
    };
    let out = add().await.unwrap();
    let st: serde_json::Value = serde_json::from_str(out.statement().unwrap()).unwrap();
    assert_eq!(st["Sid"], "privateapi-apigateway-invoke");
    let (c, s, msg) = failure(add().await);
    assert_eq!((c.as_str(), s), ("ResourceConflictException", 409));
    assert!(
        msg.contains("The statement id (privateapi-apigateway-invoke) provided already exists"),
        "{msg}"
    );

    let pol = aws
        .lambda
        .get_policy()
        .function_name(&name)
        .send()
        .await
        .unwrap();
    let text = pol.policy().unwrap();
    assert!(!text.contains(": "), "minified: {text}");
    let expected = serde_json::json!({
        "Version": "2012-10-17", "Id": "default",
        "Statement": [{
            "Sid": "privateapi-apigateway-invoke", "Effect": "Allow",
            "Principal": {"Service": "apigateway.amazonaws.com"},
            "Action": "lambda:InvokeFunction", "Resource": fn_arn,
            "Condition": {"ArnLike": {"AWS:SourceArn": source},
                          "StringEquals": {"AWS:SourceAccount": ACCOUNT}}
        }]
    });
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(text).unwrap(),
        expected
    );
    assert!(
        text.starts_with(r#"{"Version":"2012-10-17","Id":"default","Statement":[{"Sid":"#),
        "{text}"
    );
    aws.lambda
        .remove_permission()
        .function_name(&name)
        .statement_id("privateapi-apigateway-invoke")
        .send()
        .await
        .unwrap();
    let (c, s, _) = failure(aws.lambda.get_policy().function_name(&name).send().await);
    assert_eq!((c.as_str(), s), ("ResourceNotFoundException", 404));
    aws.lambda
        .delete_function()
        .function_name(&name)
        .send()
        .await
        .unwrap();
}

/// A function's RevisionId moves with every change (code, configuration, permissions) and is the
/// one GetPolicy and ListFunctions report: the operator's periodic check skips GetFunction and
/// GetPolicy while ListFunctions shows the revision it last read.
#[tokio::test]
async fn lambda_revision_id_follows_every_change() {
    let aws = aws().await;
    let name = unique("papi-rev");
    let created = create_function(&aws, &name, &tiny_zip("bootstrap", b"x")).await;
    wait_active(&aws, &name).await;
    let revision = || async {
        aws.lambda
            .get_function()
            .function_name(&name)
            .send()
            .await
            .unwrap()
            .configuration()
            .and_then(|c| c.revision_id())
            .map(str::to_string)
            .unwrap()
    };
    let listed = || async {
        let mut pages = aws.lambda.list_functions().into_paginator().send();
        let mut found = None;
        while let Some(page) = pages.next().await {
            for f in page.unwrap().functions() {
                if f.function_name() == Some(name.as_str()) {
                    found = f.revision_id().map(str::to_string);
                }
            }
        }
        found.unwrap()
    };
    let mut seen = vec![revision().await];
    assert!(created.revision_id().is_some());
    assert_eq!(
        listed().await,
        seen[0],
        "ListFunctions reports GetFunction's revision"
    );
    // Reading changes nothing.
    assert_eq!(revision().await, seen[0]);

    let source = format!("arn:aws:execute-api:{REGION}:{ACCOUNT}:abc123defg/*");
    aws.lambda
        .add_permission()
        .function_name(&name)
        .statement_id("privateapi-apigateway-invoke")
        .action("lambda:InvokeFunction")
        .principal("apigateway.amazonaws.com")
        .source_arn(&source)
        .send()
        .await
        .unwrap();
    seen.push(revision().await);
    let policy = aws
        .lambda
        .get_policy()
        .function_name(&name)
        .send()
        .await
        .unwrap();
    assert_eq!(
        policy.revision_id(),
        Some(seen[1].as_str()),
        "GetPolicy's is the function's"
    );

    let updated = aws
        .lambda
        .update_function_configuration()
        .function_name(&name)
        .memory_size(512)
        .send()
        .await
        .unwrap();
    seen.push(revision().await);
    assert_eq!(
        updated.revision_id(),
        Some(seen[2].as_str()),
        "the update answers the new one"
    );
    wait_active(&aws, &name).await;

    aws.lambda
        .update_function_code()
        .function_name(&name)
        .zip_file(Blob::new(tiny_zip("bootstrap", b"y")))
        .send()
        .await
        .unwrap();
    seen.push(revision().await);
    wait_active(&aws, &name).await;

    aws.lambda
        .remove_permission()
        .function_name(&name)
        .statement_id("privateapi-apigateway-invoke")
        .send()
        .await
        .unwrap();
    seen.push(revision().await);
    assert_eq!(listed().await, seen[4]);
    let distinct: std::collections::BTreeSet<_> = seen.iter().collect();
    assert_eq!(
        distinct.len(),
        seen.len(),
        "every change moved the revision: {seen:?}"
    );

    // AddPermission with a stale RevisionId is refused; with the current one it passes.
    let (code, status, _) = failure(
        aws.lambda
            .add_permission()
            .function_name(&name)
            .statement_id("again")
            .action("lambda:InvokeFunction")
            .principal("apigateway.amazonaws.com")
            .revision_id(&seen[0])
            .send()
            .await,
    );
    assert_eq!(
        (code.as_str(), status),
        ("PreconditionFailedException", 412)
    );
    aws.lambda
        .add_permission()
        .function_name(&name)
        .statement_id("again")
        .action("lambda:InvokeFunction")
        .principal("apigateway.amazonaws.com")
        .revision_id(&seen[4])
        .send()
        .await
        .unwrap();
    aws.lambda
        .delete_function()
        .function_name(&name)
        .send()
        .await
        .unwrap();
}

// ---------------------------------------------------------------------------------------------
// every call the operator makes, with the SDK's request shapes
// ---------------------------------------------------------------------------------------------

/// EC2: the endpoint + managed security group flow.
#[tokio::test]
async fn ec2_operator_calls_work() {
    let aws = aws().await;
    let uid = unique("uid");
    // DescribeVpcs / DescribeSubnets on the default VPC.
    let vpcs = aws
        .ec2
        .describe_vpcs()
        .filters(Filter::builder().name("is-default").values("true").build())
        .send()
        .await
        .unwrap();
    let default_vpc = vpcs.vpcs()[0].vpc_id().unwrap().to_string();
    let subnets = aws
        .ec2
        .describe_subnets()
        .filters(
            Filter::builder()
                .name("vpc-id")
                .values(&default_vpc)
                .build(),
        )
        .send()
        .await
        .unwrap();
    assert!(subnets.subnets().len() >= 2, "default subnets exist");

    let (vpc, subnet_ids, user_sg) = network(&aws, 17).await;
    let d = aws
        .ec2
        .describe_subnets()
        .set_subnet_ids(Some(subnet_ids.clone()))
        .send()
        .await
        .unwrap();
    assert_eq!(d.subnets().len(), 2);
    assert!(d.subnets().iter().all(|s| s.vpc_id() == Some(vpc.as_str())));
    let d = aws.ec2.describe_vpcs().vpc_ids(&vpc).send().await.unwrap();
    assert_eq!(d.vpcs().len(), 1);

    // CreateSecurityGroup with tags; found again by name, VPC and tag.
    let name = unique("papi-managed");
    let sg = aws
        .ec2
        .create_security_group()
        .group_name(&name)
        .description("privateapi managed endpoint group")
        .vpc_id(&vpc)
        .tag_specifications(tag_spec(ResourceType::SecurityGroup, &uid))
        .send()
        .await
        .unwrap()
        .group_id
        .unwrap();
    let found = aws
        .ec2
        .describe_security_groups()
        .filters(Filter::builder().name("group-name").values(&name).build())
        .filters(Filter::builder().name("vpc-id").values(&vpc).build())
        .filters(
            Filter::builder()
                .name("tag:privateapi.io/uid")
                .values(&uid)
                .build(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(found.security_groups().len(), 1);
    assert_eq!(found.security_groups()[0].group_id(), Some(sg.as_str()));
    let by_id = aws
        .ec2
        .describe_security_groups()
        .group_ids(&sg)
        .send()
        .await
        .unwrap();
    assert_eq!(by_id.security_groups()[0].tags().len(), 2);

    // Ingress tcp/443 from a CIDR and a group; default egress revoked.
    let https = |cidr: Option<&str>, group: Option<&str>| {
        let mut p = IpPermission::builder()
            .ip_protocol("tcp")
            .from_port(443)
            .to_port(443);
        if let Some(c) = cidr {
            p = p.ip_ranges(
                IpRange::builder()
                    .cidr_ip(c)
                    .description("allowedCidrs")
                    .build(),
            );
        }
        if let Some(g) = group {
            p = p.user_id_group_pairs(UserIdGroupPair::builder().group_id(g).build());
        }
        p.build()
    };
    aws.ec2
        .authorize_security_group_ingress()
        .group_id(&sg)
        .ip_permissions(https(Some("10.17.0.0/16"), None))
        .ip_permissions(https(None, Some(&user_sg)))
        .send()
        .await
        .unwrap();
    let (c, _, _) = failure(
        aws.ec2
            .authorize_security_group_ingress()
            .group_id(&sg)
            .ip_permissions(https(Some("10.17.0.0/16"), None))
            .send()
            .await,
    );
    assert_eq!(
        c, "InvalidPermission.Duplicate",
        "AWS refuses a duplicate rule"
    );
    aws.ec2
        .revoke_security_group_egress()
        .group_id(&sg)
        .ip_permissions(
            IpPermission::builder()
                .ip_protocol("-1")
                .ip_ranges(IpRange::builder().cidr_ip("0.0.0.0/0").build())
                .build(),
        )
        .send()
        .await
        .unwrap();
    let g = aws
        .ec2
        .describe_security_groups()
        .group_ids(&sg)
        .send()
        .await
        .unwrap();
    let g = &g.security_groups()[0];
    assert!(
        g.ip_permissions_egress().is_empty(),
        "egress revoked: {:?}",
        g.ip_permissions_egress()
    );
    let ingress = g.ip_permissions();
    let cidrs: Vec<_> = ingress
        .iter()
        .flat_map(|p| p.ip_ranges())
        .filter_map(|r| r.cidr_ip())
        .collect();
    let groups: Vec<_> = ingress
        .iter()
        .flat_map(|p| p.user_id_group_pairs())
        .filter_map(|p| p.group_id())
        .collect();
    assert_eq!(cidrs, ["10.17.0.0/16"]);
    assert_eq!(groups, [user_sg.as_str()]);
    assert!(
        ingress
            .iter()
            .all(|p| p.from_port() == Some(443) && p.to_port() == Some(443))
    );
    aws.ec2
        .revoke_security_group_ingress()
        .group_id(&sg)
        .ip_permissions(https(Some("10.17.0.0/16"), None))
        .send()
        .await
        .unwrap();
    let g = aws
        .ec2
        .describe_security_groups()
        .group_ids(&sg)
        .send()
        .await
        .unwrap();
    assert_eq!(
        g.security_groups()[0]
            .ip_permissions()
            .iter()
            .flat_map(|p| p.ip_ranges())
            .count(),
        0
    );

    // The endpoint: create in one subnet, then ModifyVpcEndpoint adds/removes subnets and groups.
    let ep = aws
        .ec2
        .create_vpc_endpoint()
        .vpc_endpoint_type(VpcEndpointType::Interface)
        .vpc_id(&vpc)
        .service_name(EXECUTE_API)
        .subnet_ids(&subnet_ids[0])
        .security_group_ids(&sg)
        .private_dns_enabled(true)
        .tag_specifications(tag_spec(ResourceType::VpcEndpoint, &uid))
        .client_token(unique("tok"))
        .send()
        .await
        .unwrap()
        .vpc_endpoint
        .unwrap();
    let id = ep.vpc_endpoint_id().unwrap().to_string();
    assert_eq!(ep.vpc_endpoint_type(), Some(&VpcEndpointType::Interface));
    assert_eq!(ep.service_name(), Some(EXECUTE_API));
    for (f, v) in [
        ("tag:privateapi.io/uid", uid.as_str()),
        ("vpc-endpoint-id", id.as_str()),
        ("vpc-id", vpc.as_str()),
        ("service-name", EXECUTE_API),
    ] {
        let out = aws
            .ec2
            .describe_vpc_endpoints()
            .filters(Filter::builder().name(f).values(v).build())
            .filters(Filter::builder().name("vpc-id").values(&vpc).build())
            .send()
            .await
            .unwrap();
        assert_eq!(out.vpc_endpoints().len(), 1, "filter {f}");
        assert_eq!(
            out.vpc_endpoints()[0].vpc_endpoint_id(),
            Some(id.as_str()),
            "filter {f}"
        );
    }
    aws.ec2
        .modify_vpc_endpoint()
        .vpc_endpoint_id(&id)
        .add_subnet_ids(&subnet_ids[1])
        .add_security_group_ids(&user_sg)
        .send()
        .await
        .unwrap();
    let e = aws
        .ec2
        .describe_vpc_endpoints()
        .vpc_endpoint_ids(&id)
        .send()
        .await
        .unwrap();
    let e = &e.vpc_endpoints()[0];
    assert_eq!(e.subnet_ids(), subnet_ids.as_slice());
    assert_eq!(e.network_interface_ids().len(), 2, "one ENI per subnet");
    let mut gids: Vec<_> = e.groups().iter().filter_map(|g| g.group_id()).collect();
    gids.sort();
    let mut want = vec![sg.as_str(), user_sg.as_str()];
    want.sort();
    assert_eq!(gids, want);
    aws.ec2
        .modify_vpc_endpoint()
        .vpc_endpoint_id(&id)
        .remove_subnet_ids(&subnet_ids[0])
        .remove_security_group_ids(&user_sg)
        .private_dns_enabled(false)
        .send()
        .await
        .unwrap();
    let e = aws
        .ec2
        .describe_vpc_endpoints()
        .vpc_endpoint_ids(&id)
        .send()
        .await
        .unwrap();
    let e = &e.vpc_endpoints()[0];
    assert_eq!(e.subnet_ids(), &subnet_ids[1..]);
    assert_eq!(e.network_interface_ids().len(), 1);
    assert_eq!(
        e.groups()
            .iter()
            .filter_map(|g| g.group_id())
            .collect::<Vec<_>>(),
        [sg.as_str()]
    );
    assert_eq!(e.private_dns_enabled(), Some(false));
    assert!(
        e.tags()
            .iter()
            .any(|t| t.key() == Some("privateapi.io/uid"))
    );

    // CreateTags on an existing endpoint (adoption) and on the group.
    aws.ec2
        .create_tags()
        .resources(&id)
        .resources(&sg)
        .tags(
            Tag::builder()
                .key("privateapi.io/cluster")
                .value("kind-a")
                .build(),
        )
        .send()
        .await
        .unwrap();
    let out = aws
        .ec2
        .describe_vpc_endpoints()
        .filters(
            Filter::builder()
                .name("tag:privateapi.io/cluster")
                .values("kind-a")
                .build(),
        )
        .filters(Filter::builder().name("vpc-id").values(&vpc).build())
        .send()
        .await
        .unwrap();
    assert_eq!(out.vpc_endpoints().len(), 1);

    // Teardown in the operator's order.
    aws.ec2
        .delete_vpc_endpoints()
        .vpc_endpoint_ids(&id)
        .send()
        .await
        .unwrap();
    poll::until_async(
        "managed group deletable",
        Duration::from_secs(30),
        POLL,
        async || {
            aws.ec2
                .delete_security_group()
                .group_id(&sg)
                .send()
                .await
                .ok()
        },
    )
    .await;
    let (c, _, _) = failure(aws.ec2.delete_security_group().group_id(&sg).send().await);
    assert_eq!(c, "InvalidGroup.NotFound");
}

/// API Gateway: the private REST API, methods, deployment and stage flow.
#[tokio::test]
async fn apigw_operator_calls_work() {
    let aws = aws().await;
    let fn_arn = format!(
        "arn:aws:lambda:{REGION}:{ACCOUNT}:function:{}",
        unique("papi-fn")
    );
    let api = aws
        .apigw
        .create_rest_api()
        .name(unique("papi-orders"))
        .description("orders API")
        .endpoint_configuration(
            EndpointConfiguration::builder()
                .types(EndpointType::Private)
                .vpc_endpoint_ids("vpce-0123456789abcdef0")
                .build(),
        )
        .policy(operator_policy(&["vpce-0123456789abcdef0"]))
        .tags("privateapi.io/uid", "u-2")
        .send()
        .await
        .unwrap();
    let id = api.id().unwrap().to_string();
    assert_eq!(api.description(), Some("orders API"));
    assert!(api.root_resource_id().is_some());
    let updated = aws
        .apigw
        .update_rest_api()
        .rest_api_id(&id)
        .patch_operations(
            PatchOperation::builder()
                .op(Op::Replace)
                .path("/description")
                .value("new")
                .build(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(updated.description(), Some("new"));
    assert_eq!(
        updated.endpoint_configuration().unwrap().types(),
        &[EndpointType::Private]
    );

    let (root, proxy) = build_api(&aws, &id, &fn_arn).await;
    let res = aws
        .apigw
        .get_resources()
        .rest_api_id(&id)
        .embed("methods")
        .limit(500)
        .send()
        .await
        .unwrap();
    assert_eq!(res.items().len(), 2);
    for r in res.items() {
        let m = r.resource_methods().unwrap().get("ANY").unwrap();
        let i = m.method_integration().unwrap();
        assert_eq!(
            i.r#type(),
            Some(&aws_sdk_apigateway::types::IntegrationType::AwsProxy)
        );
        assert_eq!(i.http_method(), Some("POST"));
        assert!(i.uri().unwrap().contains(&fn_arn));
    }
    let m = aws
        .apigw
        .get_method()
        .rest_api_id(&id)
        .resource_id(&proxy)
        .http_method("ANY")
        .send()
        .await
        .unwrap();
    assert_eq!(m.authorization_type(), Some("NONE"));
    let i = aws
        .apigw
        .get_integration()
        .rest_api_id(&id)
        .resource_id(&root)
        .http_method("ANY")
        .send()
        .await
        .unwrap();
    assert!(i.uri().unwrap().ends_with(&format!("{fn_arn}/invocations")));

    // Deployment + stage, then a new deployment moved onto the stage, the old one deleted.
    let d1 = aws
        .apigw
        .create_deployment()
        .rest_api_id(&id)
        .description("d1")
        .send()
        .await
        .unwrap()
        .id
        .unwrap();
    aws.apigw
        .create_stage()
        .rest_api_id(&id)
        .stage_name("prod")
        .deployment_id(&d1)
        .tags("privateapi.io/uid", "u-2")
        .send()
        .await
        .unwrap();
    let (c, s, _) = failure(
        aws.apigw
            .create_stage()
            .rest_api_id(&id)
            .stage_name("prod")
            .deployment_id(&d1)
            .send()
            .await,
    );
    assert_eq!(
        (c.as_str(), s),
        ("ConflictException", 409),
        "CreateStage twice"
    );
    let st = aws
        .apigw
        .get_stage()
        .rest_api_id(&id)
        .stage_name("prod")
        .send()
        .await
        .unwrap();
    assert_eq!(st.deployment_id(), Some(d1.as_str()));
    let d2 = aws
        .apigw
        .create_deployment()
        .rest_api_id(&id)
        .description("d2")
        .send()
        .await
        .unwrap()
        .id
        .unwrap();
    let st = aws
        .apigw
        .update_stage()
        .rest_api_id(&id)
        .stage_name("prod")
        .patch_operations(
            PatchOperation::builder()
                .op(Op::Replace)
                .path("/deploymentId")
                .value(&d2)
                .build(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(st.deployment_id(), Some(d2.as_str()));
    let stages = aws
        .apigw
        .get_stages()
        .rest_api_id(&id)
        .send()
        .await
        .unwrap();
    assert_eq!(stages.item().len(), 1);
    assert_eq!(stages.item()[0].deployment_id(), Some(d2.as_str()));
    let dep = aws
        .apigw
        .get_deployment()
        .rest_api_id(&id)
        .deployment_id(&d2)
        .send()
        .await
        .unwrap();
    assert_eq!(dep.description(), Some("d2"));
    aws.apigw
        .delete_deployment()
        .rest_api_id(&id)
        .deployment_id(&d1)
        .send()
        .await
        .unwrap();
    let deps = aws
        .apigw
        .get_deployments()
        .rest_api_id(&id)
        .limit(500)
        .send()
        .await
        .unwrap();
    assert_eq!(deps.items().len(), 1);

    // Stage tags by ARN.
    let stage_arn = format!("arn:aws:apigateway:{REGION}::/restapis/{id}/stages/prod");
    aws.apigw
        .tag_resource()
        .resource_arn(&stage_arn)
        .tags("privateapi.io/owner", "team-a/orders")
        .send()
        .await
        .unwrap();
    let t = aws
        .apigw
        .get_tags()
        .resource_arn(&stage_arn)
        .send()
        .await
        .unwrap();
    assert_eq!(t.tags().unwrap().len(), 2);

    // Removing a method, the stage, the API.
    aws.apigw
        .delete_method()
        .rest_api_id(&id)
        .resource_id(&proxy)
        .http_method("ANY")
        .send()
        .await
        .unwrap();
    let (c, _, _) = failure(
        aws.apigw
            .get_method()
            .rest_api_id(&id)
            .resource_id(&proxy)
            .http_method("ANY")
            .send()
            .await,
    );
    assert_eq!(c, "NotFoundException");
    aws.apigw
        .delete_stage()
        .rest_api_id(&id)
        .stage_name("prod")
        .send()
        .await
        .unwrap();
    aws.apigw
        .delete_deployment()
        .rest_api_id(&id)
        .deployment_id(&d2)
        .send()
        .await
        .unwrap();
    aws.apigw
        .delete_rest_api()
        .rest_api_id(&id)
        .send()
        .await
        .unwrap();
}

/// Lambda: create (zip and S3), read, update, permissions, tags, delete.
#[tokio::test]
async fn lambda_operator_calls_work() {
    let aws = aws().await;
    let name = unique("papi-backend");
    let created = create_function(&aws, &name, &tiny_zip("bootstrap", b"#!/bin/sh\n")).await;
    let arn = created.function_arn().unwrap().to_string();
    assert_eq!(
        arn,
        format!("arn:aws:lambda:{REGION}:{ACCOUNT}:function:{name}")
    );
    assert_eq!(created.runtime(), Some(&Runtime::Providedal2023));
    assert_eq!(created.memory_size(), Some(256));
    assert_eq!(created.timeout(), Some(10));
    assert_eq!(
        created
            .environment()
            .and_then(|e| e.variables())
            .and_then(|v| v.get("PAPI_MESSAGE"))
            .map(String::as_str),
        Some("Private API executed!!")
    );
    wait_active(&aws, &name).await;
    let f = aws
        .lambda
        .get_function()
        .function_name(&arn)
        .send()
        .await
        .unwrap();
    assert_eq!(
        f.configuration().unwrap().function_name(),
        Some(name.as_str())
    );
    let cfg = aws
        .lambda
        .get_function_configuration()
        .function_name(&name)
        .send()
        .await
        .unwrap();
    assert_eq!(cfg.role(), Some(role_arn().as_str()));

    let out = aws
        .lambda
        .update_function_configuration()
        .function_name(&name)
        .memory_size(512)
        .timeout(20)
        .environment(
            Environment::builder()
                .variables("PAPI_MESSAGE", "hello")
                .build(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(out.memory_size(), Some(512));
    wait_active(&aws, &name).await;
    let zip2 = tiny_zip("bootstrap", b"#!/bin/sh\necho v2\n");
    let out = aws
        .lambda
        .update_function_code()
        .function_name(&name)
        .zip_file(Blob::new(zip2.clone()))
        .send()
        .await
        .unwrap();
    use base64::Engine;
    use sha2::Digest;
    let sha = base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(&zip2));
    assert_eq!(out.code_sha256(), Some(sha.as_str()));
    wait_active(&aws, &name).await;

    // Tags.
    aws.lambda
        .tag_resource()
        .resource(&arn)
        .tags("privateapi.io/cluster", "kind-a")
        .send()
        .await
        .unwrap();
    let tags = aws.lambda.list_tags().resource(&arn).send().await.unwrap();
    let tags = tags.tags().unwrap();
    assert_eq!(
        tags.get("privateapi.io/cluster").map(String::as_str),
        Some("kind-a")
    );
    assert_eq!(tags.get("privateapi.io/uid"), Some(&name));

    // Invoke permission for the API.
    aws.lambda
        .add_permission()
        .function_name(&name)
        .statement_id("privateapi-invoke")
        .action("lambda:InvokeFunction")
        .principal("apigateway.amazonaws.com")
        .source_arn(format!(
            "arn:aws:execute-api:{REGION}:{ACCOUNT}:abc123defg/*"
        ))
        .source_account(ACCOUNT)
        .send()
        .await
        .unwrap();
    let pol = aws
        .lambda
        .get_policy()
        .function_name(&name)
        .send()
        .await
        .unwrap();
    assert!(
        pol.policy()
            .unwrap()
            .contains("arn:aws:execute-api:us-east-1:123456789012:abc123defg/*")
    );
    aws.lambda
        .remove_permission()
        .function_name(&name)
        .statement_id("privateapi-invoke")
        .send()
        .await
        .unwrap();

    // ListFunctions finds it.
    let mut found = false;
    let mut pages = aws.lambda.list_functions().into_paginator().send();
    while let Some(p) = pages.next().await {
        found |= p
            .unwrap()
            .functions()
            .iter()
            .any(|f| f.function_name() == Some(name.as_str()));
    }
    assert!(found);

    // S3 code.
    let s3name = unique("papi-s3code");
    let out = aws
        .lambda
        .create_function()
        .function_name(&s3name)
        .runtime(Runtime::Providedal2023)
        .role(role_arn())
        .handler("bootstrap")
        .architectures(Architecture::X8664)
        .code(
            FunctionCode::builder()
                .s3_bucket(
                    std::env::var("PAPI_TEST_CODE_BUCKET").unwrap_or("papi-testbed-code".into()),
                )
                .s3_key(std::env::var("PAPI_TEST_CODE_KEY").unwrap_or("handler.zip".into()))
                .build(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(out.architectures(), &[Architecture::X8664]);
    aws.lambda
        .delete_function()
        .function_name(&s3name)
        .send()
        .await
        .unwrap();
    aws.lambda
        .delete_function()
        .function_name(&name)
        .send()
        .await
        .unwrap();
}
