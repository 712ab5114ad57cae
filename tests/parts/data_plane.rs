//! The test bed's execute-api data plane (testbed/moto/dataplane.py) as a user sees it: `curl`
//! from a VPC's network namespace or from the internet one (testbed/netns/run.sh), against a
//! private REST API, its interface endpoint and a Lambda function built here directly with the
//! SDK (not through the operator). Each test has its own VPC, endpoint, function and API.
//!
//! Needs the built-in handler zip: `export PAPI_HANDLER_ZIP_X86_64=$(bash scripts/build-handler.sh)`.

use std::time::{Duration, Instant};

use aws_sdk_apigateway::types::{EndpointConfiguration, EndpointType, Op, PatchOperation};
use aws_sdk_ec2::types::{IpPermission, UserIdGroupPair};
use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::{Environment, FunctionCode, Runtime};
use privateapi_operator::aws::RegionClients;
use serde_json::{Value, json};

use crate::support::netns::{From, curl_async};
use crate::support::{REGION, TestVpc, aws, inspect, make, make_vpc, poll, unique};

/// What a test calls: a VPC with an execute-api endpoint admitting the VPC's "client" group,
/// a function answering `message`, a PRIVATE API on the endpoint with `ANY /` and
/// `ANY /{proxy+}`, deployed to `prod`.
struct Fixture {
    aws: std::sync::Arc<RegionClients>,
    vpc: TestVpc,
    endpoint: String,
    api: String,
    function: String,
    message: String,
}

fn allow_endpoint_policy(endpoint: &str) -> String {
    json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Effect": "Allow",
            "Principal": "*",
            "Action": "execute-api:Invoke",
            "Resource": "execute-api:/*",
            "Condition": {"StringEquals": {"aws:SourceVpce": endpoint}}
        }]
    })
    .to_string()
}

/// A function's code: its zip, runtime and handler.
struct Package {
    zip: Vec<u8>,
    runtime: Runtime,
    handler: &'static str,
}

impl Package {
    /// A `provided.al2023` package (its `bootstrap`).
    fn provided(zip: Vec<u8>) -> Self {
        Self {
            zip,
            runtime: Runtime::Providedal2023,
            handler: "bootstrap",
        }
    }

    /// The operator's built-in handler.
    fn builtin() -> Self {
        let path = std::env::var("PAPI_HANDLER_ZIP_X86_64")
            .expect("PAPI_HANDLER_ZIP_X86_64 (export it from `bash scripts/build-handler.sh`)");
        Self::provided(std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}")))
    }

    /// A Node.js function: `index.js` with `source`, handler `index.handler`.
    fn node(source: &str) -> Self {
        Self {
            zip: privateapi_handler::package::zip_single("index.js", 0o644, source.as_bytes())
                .expect("zip"),
            runtime: Runtime::Nodejs22x,
            handler: "index.handler",
        }
    }
}

impl Fixture {
    async fn new(second_octet: u8, private_dns: bool) -> Self {
        Self::with(second_octet, private_dns, Package::builtin(), None, None).await
    }

    /// `code`: the function's package; `policy`: the API's resource policy (None: allow this
    /// endpoint); `timeout_ms`: the integrations' timeout (None: API Gateway's 29 s).
    async fn with(
        second_octet: u8,
        private_dns: bool,
        code: Package,
        policy: Option<String>,
        timeout_ms: Option<i32>,
    ) -> Self {
        let aws = aws().await;
        let vpc = make_vpc(&aws.ec2, second_octet).await;
        let endpoint_sg = make::https_group(&aws, &vpc, &vpc.client_sg_id).await;
        let endpoint = make::execute_api_endpoint_in(
            &aws,
            &vpc.vpc_id,
            &vpc.subnet_ids[..1],
            &endpoint_sg,
            private_dns,
        )
        .await;

        let function = unique("dp");
        let message = format!("hello from {function}");
        let role = std::env::var("PAPI_LAMBDA_ROLE_ARN").expect("PAPI_LAMBDA_ROLE_ARN");
        let function_arn = aws
            .lambda
            .create_function()
            .function_name(&function)
            .runtime(code.runtime)
            .handler(code.handler)
            .role(role)
            .timeout(3)
            .environment(
                Environment::builder()
                    .variables("MESSAGE", &message)
                    .build(),
            )
            .code(
                FunctionCode::builder()
                    .zip_file(Blob::new(code.zip))
                    .build(),
            )
            .send()
            .await
            .expect("CreateFunction")
            .function_arn
            .expect("function ARN");

        let policy = policy.unwrap_or_else(|| allow_endpoint_policy(&endpoint));
        let api = aws
            .apigateway
            .create_rest_api()
            .name(unique("dp"))
            .endpoint_configuration(
                EndpointConfiguration::builder()
                    .types(EndpointType::Private)
                    .vpc_endpoint_ids(&endpoint)
                    .build(),
            )
            .policy(policy)
            .send()
            .await
            .expect("CreateRestApi")
            .id
            .expect("API id");
        let resources = aws
            .apigateway
            .get_resources()
            .rest_api_id(&api)
            .send()
            .await
            .expect("GetResources");
        let root = resources
            .items()
            .iter()
            .find(|r| r.path() == Some("/"))
            .and_then(|r| r.id())
            .expect("root resource")
            .to_string();
        make::proxy_routes(&aws, &api, &root, &function_arn, timeout_ms).await;
        let fixture = Fixture {
            aws,
            vpc,
            endpoint,
            api,
            function,
            message,
        };
        fixture.deploy().await;
        fixture.allow_invoke().await;
        fixture.wait_endpoint_available().await;
        fixture
    }

    async fn deploy(&self) {
        self.aws
            .apigateway
            .create_deployment()
            .rest_api_id(&self.api)
            .stage_name("prod")
            .send()
            .await
            .expect("CreateDeployment");
    }

    async fn allow_invoke(&self) {
        self.aws
            .lambda
            .add_permission()
            .function_name(&self.function)
            .statement_id("apigateway")
            .action("lambda:InvokeFunction")
            .principal("apigateway.amazonaws.com")
            .source_arn(format!(
                "arn:aws:execute-api:{REGION}:{}:{}/*",
                self.aws.account_id, self.api
            ))
            .send()
            .await
            .expect("AddPermission");
    }

    async fn set_policy(&self, policy: &str) {
        self.aws
            .apigateway
            .update_rest_api()
            .rest_api_id(&self.api)
            .patch_operations(
                PatchOperation::builder()
                    .op(Op::Replace)
                    .path("/policy")
                    .value(policy)
                    .build(),
            )
            .send()
            .await
            .expect("UpdateRestApi /policy");
    }

    async fn wait_endpoint_available(&self) {
        poll::until_async(
            &format!("endpoint {} available", self.endpoint),
            Duration::from_secs(20),
            Duration::from_millis(200),
            async || {
                let state = inspect::endpoint_state_of(&self.aws, &self.endpoint).await;
                (state.as_deref() == Some("available"))
                    .then_some(())
                    .ok_or_else(|| format!("{state:?}"))
            },
        )
        .await;
    }

    /// `https://{api}.execute-api.{region}.amazonaws.com/prod{path}`
    fn url(&self, path: &str) -> String {
        format!(
            "https://{}.execute-api.{REGION}.amazonaws.com/prod{path}",
            self.api
        )
    }

    /// `https://{api}-{vpce}.execute-api.{region}.amazonaws.com/prod{path}`
    fn vpce_url(&self, path: &str) -> String {
        format!(
            "https://{}-{}.execute-api.{REGION}.amazonaws.com/prod{path}",
            self.api, self.endpoint
        )
    }

    /// An instance of the VPC in the group the endpoint admits.
    fn client(&self) -> From {
        From::vpc(&self.vpc.vpc_id, &[&self.vpc.client_sg_id])
    }

    fn message_body(&self) -> Value {
        json!({ "message": self.message })
    }
}

fn body_json(body: &str) -> Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {body:?}"))
}

fn denied_message(f: &Fixture, method_path: &str, explicit: bool) -> Value {
    let account = &f.aws.account_id;
    let masked = format!("********{}", &account[account.len() - 4..]);
    let mut m = format!(
        "User: anonymous is not authorized to perform: execute-api:Invoke on resource: \
         arn:aws:execute-api:{REGION}:{masked}:{}/prod/{method_path}",
        f.api
    );
    if explicit {
        m.push_str(" with an explicit deny");
    }
    json!({ "Message": m })
}

#[tokio::test]
async fn inside_gets_the_message_and_the_internet_cannot_resolve() {
    let f = Fixture::new(101, true).await;

    let inside = curl_async(&f.client(), &f.url("/"), &[]).await;
    assert_eq!((inside.exit, inside.status), (0, 200), "{inside:?}");
    assert_eq!(body_json(&inside.body), f.message_body());
    let deeper = curl_async(&f.client(), &f.url("/orders/42?x=1"), &["-X", "POST"]).await;
    assert_eq!((deeper.exit, deeper.status), (0, 200), "{deeper:?}");
    assert_eq!(body_json(&deeper.body), f.message_body());

    let internet = curl_async(&From::Internet, &f.url("/"), &[]).await;
    assert_eq!(internet.exit, 6, "{internet:?}");
    assert!(
        internet.stderr.contains(&format!(
            "Could not resolve host: {}.execute-api.{REGION}.amazonaws.com",
            f.api
        )),
        "{internet:?}"
    );

    // Another VPC, without an endpoint of its own: the private name does not resolve there.
    let other = make_vpc(&f.aws.ec2, 102).await;
    let elsewhere = curl_async(&From::vpc(&other.vpc_id, &[]), &f.url("/"), &[]).await;
    assert_eq!(elsewhere.exit, 6, "{elsewhere:?}");
}

#[tokio::test]
async fn without_private_dns_only_the_endpoint_names_resolve() {
    let f = Fixture::new(103, false).await;
    let private = curl_async(&f.client(), &f.url("/"), &[]).await;
    assert_eq!(private.exit, 6, "{private:?}");
    let vpce = curl_async(&f.client(), &f.vpce_url("/"), &[]).await;
    assert_eq!((vpce.exit, vpce.status), (0, 200), "{vpce:?}");
    assert_eq!(body_json(&vpce.body), f.message_body());
}

#[tokio::test]
async fn a_group_the_endpoint_does_not_admit_times_out() {
    let f = Fixture::new(104, true).await;
    let started = Instant::now();
    let extra = From::vpc(&f.vpc.vpc_id, &[&f.vpc.extra_sg_id]);
    let r = curl_async(&extra, &f.url("/"), &[]).await;
    assert_eq!(r.exit, 28, "{r:?}");
    assert!(r.stderr.contains("Failed to connect"), "{r:?}");
    assert!(
        started.elapsed() >= Duration::from_secs(3),
        "dropped, not refused"
    );
    // The VPC's default group (no group given) is not admitted either.
    let default = curl_async(&From::vpc(&f.vpc.vpc_id, &[]), &f.url("/"), &[]).await;
    assert_eq!(default.exit, 28, "{default:?}");
    // Admitting the group lets it in.
    f.aws
        .ec2
        .authorize_security_group_ingress()
        .group_id(
            f.aws
                .ec2
                .describe_vpc_endpoints()
                .vpc_endpoint_ids(&f.endpoint)
                .send()
                .await
                .expect("DescribeVpcEndpoints")
                .vpc_endpoints()[0]
                .groups()[0]
                .group_id()
                .expect("group id"),
        )
        .ip_permissions(
            IpPermission::builder()
                .ip_protocol("tcp")
                .from_port(443)
                .to_port(443)
                .user_id_group_pairs(
                    UserIdGroupPair::builder()
                        .group_id(&f.vpc.extra_sg_id)
                        .build(),
                )
                .build(),
        )
        .send()
        .await
        .expect("AuthorizeSecurityGroupIngress");
    let admitted = curl_async(&extra, &f.url("/"), &[]).await;
    assert_eq!((admitted.exit, admitted.status), (0, 200), "{admitted:?}");
}

#[tokio::test]
async fn the_vpce_name_needs_the_association_and_a_route() {
    let f = Fixture::new(105, true).await;
    let ok = curl_async(&f.client(), &f.vpce_url("/"), &[]).await;
    assert_eq!((ok.exit, ok.status), (0, 200), "{ok:?}");
    assert_eq!(body_json(&ok.body), f.message_body());

    // The name resolves from the internet too, but there is no route to the endpoint.
    let internet = curl_async(&From::Internet, &f.vpce_url("/"), &[]).await;
    assert_eq!(internet.exit, 28, "{internet:?}");

    // The endpoint's own DNS name, the API chosen by x-apigw-api-id (or Host).
    let dns = inspect::endpoint(&f.aws, &f.endpoint)
        .await
        .expect("the endpoint")
        .dns_entries()[0]
        .dns_name()
        .expect("DNS name")
        .to_string();
    let header = format!("x-apigw-api-id: {}", f.api);
    let by_header = curl_async(
        &f.client(),
        &format!("https://{dns}/prod/"),
        &["-H", &header],
    )
    .await;
    assert_eq!(
        (by_header.exit, by_header.status),
        (0, 200),
        "{by_header:?}"
    );
    let no_api = curl_async(&f.client(), &format!("https://{dns}/prod/"), &[]).await;
    assert_eq!(no_api.status, 403, "{no_api:?}");
    assert_eq!(body_json(&no_api.body), json!({"message": "Forbidden"}));

    // Without the association, the {api}-{vpce} form is refused.
    f.aws
        .apigateway
        .update_rest_api()
        .rest_api_id(&f.api)
        .patch_operations(
            PatchOperation::builder()
                .op(Op::Remove)
                .path("/endpointConfiguration/vpcEndpointIds")
                .value(&f.endpoint)
                .build(),
        )
        .send()
        .await
        .expect("UpdateRestApi");
    let refused = curl_async(&f.client(), &f.vpce_url("/"), &[]).await;
    assert_eq!(refused.status, 403, "{refused:?}");
    assert_eq!(body_json(&refused.body), json!({"message": "Forbidden"}));
    // ... while the private DNS name does not need it.
    let private = curl_async(&f.client(), &f.url("/"), &[]).await;
    assert_eq!(private.status, 200, "{private:?}");

    // An unknown stage is Forbidden too.
    let stage = curl_async(
        &f.client(),
        &format!("https://{}.execute-api.{REGION}.amazonaws.com/test/", f.api),
        &[],
    )
    .await;
    assert_eq!(stage.status, 403, "{stage:?}");
    assert_eq!(body_json(&stage.body), json!({"message": "Forbidden"}));
}

#[tokio::test]
async fn an_undeployed_policy_edit_changes_nothing() {
    let f = Fixture::new(106, true).await;
    let deny = json!({
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Principal": "*", "Action": "execute-api:Invoke", "Resource": "execute-api:/*"},
            {"Effect": "Deny", "Principal": "*", "Action": "execute-api:Invoke", "Resource": "execute-api:/*",
             "Condition": {"StringEquals": {"aws:SourceVpc": f.vpc.vpc_id}}}
        ]
    })
    .to_string();
    f.set_policy(&deny).await;
    let before = curl_async(&f.client(), &f.url("/"), &[]).await;
    assert_eq!((before.exit, before.status), (0, 200), "{before:?}");
    assert_eq!(body_json(&before.body), f.message_body());

    f.deploy().await;
    let after = curl_async(&f.client(), &f.url("/items"), &[]).await;
    assert_eq!(after.status, 403, "{after:?}");
    assert_eq!(
        body_json(&after.body),
        denied_message(&f, "GET/items", true)
    );
}

#[tokio::test]
async fn a_policy_for_another_endpoint_is_403() {
    let policy = allow_endpoint_policy("vpce-0123456789abcdef0");
    let f = Fixture::with(107, true, Package::builtin(), Some(policy), None).await;
    let r = curl_async(&f.client(), &f.url("/"), &[]).await;
    assert_eq!(r.status, 403, "{r:?}");
    assert_eq!(body_json(&r.body), denied_message(&f, "GET/", false));
}

#[tokio::test]
async fn without_the_invoke_permission_it_is_500() {
    let f = Fixture::new(108, true).await;
    f.aws
        .lambda
        .remove_permission()
        .function_name(&f.function)
        .statement_id("apigateway")
        .send()
        .await
        .expect("RemovePermission");
    let r = curl_async(&f.client(), &f.url("/"), &[]).await;
    assert_eq!(r.status, 500, "{r:?}");
    assert_eq!(r.body, r#"{"message": "Internal server error"}"#);

    f.allow_invoke().await;
    let back = curl_async(&f.client(), &f.url("/"), &[]).await;
    assert_eq!(back.status, 200, "{back:?}");
}

/// A `provided` runtime in shell: answers each invocation with $ANSWER after $SLEEP seconds.
fn shell_function(answer: &str, sleep: &str) -> Package {
    let script = format!(
        r#"#!/bin/sh
api="http://$AWS_LAMBDA_RUNTIME_API/2018-06-01/runtime/invocation"
while :; do
  id=$(curl -sS -D - -o /dev/null "$api/next" | tr -d '\r' | awk -F': ' 'tolower($1) == "lambda-runtime-aws-request-id" {{print $2}}')
  sleep {sleep}
  printf '%s' '{answer}' | curl -sS -o /dev/null -X POST --data-binary @- "$api/$id/response"
done
"#
    );
    Package::provided(
        privateapi_handler::package::zip_single("bootstrap", 0o755, script.as_bytes())
            .expect("zip"),
    )
}

#[tokio::test]
async fn the_answer_is_mapped_back_a_malformed_one_is_502_a_slow_one_504() {
    let answer = r#"{"statusCode":201,"headers":{"x-a":"1"},"multiValueHeaders":{"x-b":["2","3"]},"body":"bGF0ZQ==","isBase64Encoded":true}"#;
    let f = Fixture::with(109, true, shell_function(answer, "0"), None, None).await;
    let r = curl_async(&f.client(), &f.url("/"), &["-i"]).await;
    assert_eq!((r.exit, r.status), (0, 201), "{r:?}");
    let lower = r.body.to_lowercase();
    assert!(lower.contains("x-a: 1\r\n"), "{r:?}");
    assert!(lower.contains("x-b: 2\r\nx-b: 3\r\n"), "{r:?}");
    assert!(r.body.ends_with("\r\n\r\nlate"), "{r:?}");

    let bad = r#"{"statusCode":200,"bogus":1}"#;
    let f = Fixture::with(110, true, shell_function(bad, "0"), None, None).await;
    let r = curl_async(&f.client(), &f.url("/"), &[]).await;
    assert_eq!(r.status, 502, "{r:?}");
    assert_eq!(
        body_json(&r.body),
        json!({"message": "Internal server error"})
    );

    // The integration gives up after 500 ms, before the function answers: 504.
    let late = r#"{"statusCode":200,"body":"late"}"#;
    let f = Fixture::with(111, true, shell_function(late, "2"), None, Some(500)).await;
    let r = curl_async(&f.client(), &f.url("/"), &[]).await;
    assert_eq!(r.status, 504, "{r:?}");
    assert_eq!(
        body_json(&r.body),
        json!({"message": "Endpoint request timed out"})
    );
}

/// The reference stack's function: Node.js, `index.handler`, its message in the body.
const REFERENCE_NODE_FUNCTION: &str = r#"exports.handler = async (event) => ({
  statusCode: 200,
  headers: { "content-type": "application/json" },
  body: JSON.stringify({ message: "Private API executed!!", path: event.path, vpce: event.requestContext.identity.vpceId }),
});
"#;

#[tokio::test]
async fn the_reference_stacks_node_function_answers_through_the_runtime_interface_client() {
    let f = Fixture::with(
        112,
        true,
        Package::node(REFERENCE_NODE_FUNCTION),
        None,
        None,
    )
    .await;
    let r = curl_async(&f.client(), &f.url("/orders"), &[]).await;
    assert_eq!((r.exit, r.status), (0, 200), "{r:?}");
    assert_eq!(
        body_json(&r.body),
        json!({"message": "Private API executed!!", "path": "/orders", "vpce": f.endpoint})
    );
}
