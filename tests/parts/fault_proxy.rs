//! The fault proxy (`testbed/faultproxy/`) as the real SDK clients see it: every fault kind arrives
//! as the error, throttle or time-out the operator has to handle, the operator's own error
//! classification agrees, and a lost response leaves its side effect in moto.
//!
//! Run through the test bed: `bash testbed/with-testbed.sh cargo test --test parts fault_proxy::`.

use std::time::{Duration, Instant};

use crate::support::faults::FaultProxy;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_sdk_ec2::error::ProvideErrorMetadata;
use aws_smithy_runtime_api::client::result::SdkError;
use privateapi_operator::error::{AwsErrorKind, aws_error};
use serde_json::json;

/// The three service clients (and STS) of one SDK config.
struct Clients {
    ec2: aws_sdk_ec2::Client,
    apigw: aws_sdk_apigateway::Client,
    lambda: aws_sdk_lambda::Client,
    sts: aws_sdk_sts::Client,
}

impl Clients {
    fn new(config: &aws_config::SdkConfig) -> Self {
        Self {
            ec2: aws_sdk_ec2::Client::new(config),
            apigw: aws_sdk_apigateway::Client::new(config),
            lambda: aws_sdk_lambda::Client::new(config),
            sts: aws_sdk_sts::Client::new(config),
        }
    }
}

/// Clients through the proxy without the SDK's retries, so that each injected fault is seen as is.
async fn through_without_retries(proxy: &FaultProxy) -> Clients {
    let config = proxy
        .sdk_config()
        .await
        .into_builder()
        .retry_config(RetryConfig::disabled())
        .build();
    Clients::new(&config)
}

/// Clients straight to moto, to look at what really happened.
async fn direct() -> Clients {
    let regional = crate::support::aws().await;
    Clients {
        ec2: regional.ec2.clone(),
        apigw: regional.apigateway.clone(),
        lambda: regional.lambda.clone(),
        sts: aws_sdk_sts::Client::new(&crate::support::sdk_config_loader().load().await),
    }
}

fn status<E, R>(err: &SdkError<E, R>) -> Option<u16>
where
    R: std::fmt::Debug + privateapi_operator::error::HasStatus,
{
    match err {
        SdkError::ServiceError(e) => e.raw().status_code(),
        _ => None,
    }
}

async fn rest_api_names(clients: &Clients) -> Vec<String> {
    clients
        .apigw
        .get_rest_apis()
        .limit(500)
        .send()
        .await
        .expect("GetRestApis")
        .items
        .unwrap_or_default()
        .into_iter()
        .filter_map(|api| api.name)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_are_named_as_the_sdk_names_them() {
    crate::support::require_testbed();
    let proxy = FaultProxy::start(1);
    let aws = Clients::new(&proxy.sdk_config().await);
    aws.ec2.describe_vpcs().send().await.expect("DescribeVpcs");
    let name = crate::support::unique("named");
    let api = aws
        .apigw
        .create_rest_api()
        .name(&name)
        .send()
        .await
        .expect("CreateRestApi");
    let api_id = api.id.expect("id");
    aws.apigw
        .get_rest_api()
        .rest_api_id(&api_id)
        .send()
        .await
        .expect("GetRestApi");
    aws.apigw
        .get_resources()
        .rest_api_id(&api_id)
        .send()
        .await
        .expect("GetResources");
    aws.apigw
        .delete_rest_api()
        .rest_api_id(&api_id)
        .send()
        .await
        .expect("DeleteRestApi");
    aws.lambda
        .list_functions()
        .send()
        .await
        .expect("ListFunctions");
    let missing = aws
        .lambda
        .get_function()
        .function_name("papi-no-such-function")
        .send()
        .await;
    assert!(missing.is_err(), "no such function");
    aws.sts
        .get_caller_identity()
        .send()
        .await
        .expect("GetCallerIdentity");

    let seen: Vec<(String, String, bool)> = proxy
        .calls()
        .iter()
        .map(|c| {
            (
                c["service"].as_str().unwrap_or_default().to_string(),
                c["operation"].as_str().unwrap_or_default().to_string(),
                c["mutating"].as_bool().unwrap_or_default(),
            )
        })
        .collect();
    let expected: Vec<(String, String, bool)> = [
        ("ec2", "DescribeVpcs", false),
        ("apigateway", "CreateRestApi", true),
        ("apigateway", "GetRestApi", false),
        ("apigateway", "GetResources", false),
        ("apigateway", "DeleteRestApi", true),
        ("lambda", "ListFunctions", false),
        ("lambda", "GetFunction", false),
        ("sts", "GetCallerIdentity", false),
    ]
    .iter()
    .map(|(s, o, m)| (s.to_string(), o.to_string(), *m))
    .collect();
    assert_eq!(seen, expected);
    let stats = proxy.stats();
    assert_eq!(stats["mutating_forwarded"], 2, "{stats}");
    assert_eq!(stats["forwarded"]["apigateway:CreateRestApi"], 1, "{stats}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttles_look_like_each_services_throttling_error() {
    crate::support::require_testbed();
    let proxy = FaultProxy::start(1);
    proxy.set_rules(json!([
        {"service": "*", "operation": "*", "fault": "throttle", "probability": 1.0}
    ]));
    let aws = through_without_retries(&proxy).await;

    let err = aws.ec2.describe_vpcs().send().await.expect_err("throttled");
    assert_eq!(err.code(), Some("RequestLimitExceeded"));
    assert_eq!(status(&err), Some(503));
    let classified = aws_error("EC2", "DescribeVpcs", err);
    assert_eq!(classified.aws_kind(), Some(AwsErrorKind::Throttled));

    let err = aws
        .apigw
        .get_rest_apis()
        .send()
        .await
        .expect_err("throttled");
    assert!(
        err.as_service_error()
            .is_some_and(|e| e.is_too_many_requests_exception()),
        "{err:?}"
    );
    assert_eq!(status(&err), Some(429));
    assert_eq!(
        aws_error("APIGateway", "GetRestApis", err).aws_kind(),
        Some(AwsErrorKind::Throttled)
    );

    let err = aws
        .lambda
        .list_functions()
        .send()
        .await
        .expect_err("throttled");
    let modeled = err
        .as_service_error()
        .and_then(|e| match e {
            aws_sdk_lambda::operation::list_functions::ListFunctionsError::TooManyRequestsException(t) => {
                Some(t.clone())
            }
            _ => None,
        })
        .unwrap_or_else(|| panic!("not TooManyRequestsException: {err:?}"));
    assert_eq!(modeled.retry_after_seconds(), Some("1"));
    assert_eq!(modeled.r#type(), Some("User"));
    assert_eq!(
        modeled.reason().map(|r| r.as_str()),
        Some("CallerRateLimitExceeded")
    );
    assert_eq!(
        aws_error("Lambda", "ListFunctions", err).aws_kind(),
        Some(AwsErrorKind::Throttled)
    );

    let err = aws
        .sts
        .get_caller_identity()
        .send()
        .await
        .expect_err("throttled");
    assert_eq!(err.code(), Some("Throttling"));
    assert_eq!(
        aws_error("STS", "GetCallerIdentity", err).aws_kind(),
        Some(AwsErrorKind::Throttled)
    );

    // With the SDK's default (standard) retries, one throttle is retried and the call succeeds.
    proxy.reset();
    proxy.set_rules(json!([
        {"service": "*", "operation": "*", "fault": "throttle", "schedule": [1, 3, 5]}
    ]));
    let retrying = Clients::new(&proxy.sdk_config().await);
    retrying
        .ec2
        .describe_vpcs()
        .send()
        .await
        .expect("retried after RequestLimitExceeded");
    retrying
        .apigw
        .get_rest_apis()
        .send()
        .await
        .expect("retried after 429");
    retrying
        .lambda
        .list_functions()
        .send()
        .await
        .expect("retried after 429");
    let stats = proxy.stats();
    assert_eq!(stats["injected_total"]["throttle"], 3, "{stats}");
    assert_eq!(stats["forwarded_total"], 3, "{stats}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_errors_are_transient() {
    crate::support::require_testbed();
    let proxy = FaultProxy::start(1);
    proxy.set_rules(json!([
        {"service": "ec2", "fault": "error5xx", "status": 503, "probability": 1.0},
        {"service": "*", "fault": "error5xx", "status": 500, "probability": 1.0}
    ]));
    let aws = through_without_retries(&proxy).await;
    let err = aws.ec2.describe_vpcs().send().await.expect_err("5xx");
    assert_eq!(status(&err), Some(503));
    assert_eq!(
        aws_error("EC2", "DescribeVpcs", err).aws_kind(),
        Some(AwsErrorKind::Transient)
    );
    let err = aws.apigw.get_rest_apis().send().await.expect_err("5xx");
    assert_eq!(status(&err), Some(500));
    assert_eq!(
        aws_error("APIGateway", "GetRestApis", err).aws_kind(),
        Some(AwsErrorKind::Transient)
    );
    let err = aws.lambda.list_functions().send().await.expect_err("5xx");
    assert_eq!(status(&err), Some(500));
    assert!(
        err.as_service_error()
            .is_some_and(|e| e.is_service_exception()),
        "{err:?}"
    );
    assert_eq!(
        aws_error("Lambda", "ListFunctions", err).aws_kind(),
        Some(AwsErrorKind::Transient)
    );
    assert_eq!(proxy.stats()["forwarded_total"], 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn latency_delays_the_call() {
    crate::support::require_testbed();
    let proxy = FaultProxy::start(1);
    proxy.set_rules(json!([
        {"service": "apigateway", "fault": "latency", "latency_ms": 400, "schedule": [1]}
    ]));
    let aws = through_without_retries(&proxy).await;
    let started = Instant::now();
    aws.apigw.get_rest_apis().send().await.expect("delayed");
    // The proxy's own delay, not a speed assertion: it cannot answer earlier.
    assert!(started.elapsed() >= Duration::from_millis(400));
    proxy.clear_rules();
    proxy.set_latency(200);
    let started = Instant::now();
    aws.lambda.list_functions().send().await.expect("delayed");
    assert!(started.elapsed() >= Duration::from_millis(200));
    let stats = proxy.stats();
    assert_eq!(stats["latency_ms"], 200);
    assert_eq!(stats["injected_total"]["latency"], 1, "{stats}");
    assert_eq!(stats["forwarded_total"], 2, "{stats}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_connection_is_a_dispatch_failure_and_nothing_happened() {
    crate::support::require_testbed();
    let proxy = FaultProxy::start(1);
    proxy.set_rules(json!([
        {"service": "apigateway", "operation": "CreateRestApi", "fault": "drop_connection", "schedule": [1]}
    ]));
    let aws = through_without_retries(&proxy).await;
    let name = crate::support::unique("dropped");
    let err = aws
        .apigw
        .create_rest_api()
        .name(&name)
        .send()
        .await
        .expect_err("dropped");
    assert!(
        matches!(
            err,
            SdkError::DispatchFailure(_) | SdkError::ResponseError(_)
        ),
        "{err:?}"
    );
    assert_eq!(
        aws_error("APIGateway", "CreateRestApi", err).aws_kind(),
        Some(AwsErrorKind::Transient)
    );
    assert!(!rest_api_names(&direct().await).await.contains(&name));
    assert_eq!(proxy.stats()["injected_total"]["drop_connection"], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_response_is_an_error_but_the_resource_exists() {
    crate::support::require_testbed();
    let proxy = FaultProxy::start(1);
    proxy.set_rules(json!([
        {"service": "*", "mutating": true, "fault": "lose_response", "probability": 1.0}
    ]));
    let aws = through_without_retries(&proxy).await;
    let moto = direct().await;
    let name = crate::support::unique("lost");
    let err = aws
        .apigw
        .create_rest_api()
        .name(&name)
        .send()
        .await
        .expect_err("response lost");
    assert!(
        matches!(
            err,
            SdkError::DispatchFailure(_) | SdkError::ResponseError(_)
        ),
        "{err:?}"
    );
    assert!(
        rest_api_names(&moto).await.contains(&name),
        "the API was created although the client got an error"
    );

    let vpc = moto
        .ec2
        .describe_vpcs()
        .send()
        .await
        .expect("DescribeVpcs")
        .vpcs
        .unwrap_or_default()
        .into_iter()
        .find_map(|v| v.vpc_id)
        .expect("a VPC (moto's default)");
    let group_name = crate::support::unique("lost-sg");
    aws.ec2
        .create_security_group()
        .group_name(&group_name)
        .description("lost response")
        .vpc_id(&vpc)
        .send()
        .await
        .expect_err("response lost");
    let groups = moto
        .ec2
        .describe_security_groups()
        .filters(
            aws_sdk_ec2::types::Filter::builder()
                .name("group-name")
                .values(&group_name)
                .build(),
        )
        .send()
        .await
        .expect("DescribeSecurityGroups");
    assert_eq!(groups.security_groups.unwrap_or_default().len(), 1);
    let stats = proxy.stats();
    assert_eq!(stats["injected_total"]["lose_response"], 2, "{stats}");
    assert_eq!(stats["mutating_forwarded"], 2, "{stats}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_response_times_out_and_the_resource_exists() {
    crate::support::require_testbed();
    let proxy = FaultProxy::start(1);
    proxy.set_rules(json!([
        {"service": "apigateway", "operation": "CreateRestApi", "fault": "hang_after_forward", "schedule": [1]}
    ]));
    // The SDK's defaults set no attempt timeout: a response that never comes is waited for (which
    // is why the operator sets one, `--aws-attempt-timeout-seconds`).
    let defaults = through_without_retries(&proxy).await;
    let waited = tokio::time::timeout(
        Duration::from_secs(15),
        defaults
            .apigw
            .create_rest_api()
            .name(crate::support::unique("hung-default"))
            .send(),
    )
    .await;
    assert!(waited.is_err(), "the SDK gave up by itself: {waited:?}");
    proxy.set_rules(json!([
        {"service": "apigateway", "operation": "CreateRestApi", "fault": "hang_after_forward", "schedule": [1]}
    ]));
    let config = proxy
        .sdk_config()
        .await
        .into_builder()
        .retry_config(RetryConfig::disabled())
        .timeout_config(
            TimeoutConfig::builder()
                .operation_attempt_timeout(Duration::from_secs(2))
                .build(),
        )
        .build();
    let aws = Clients::new(&config);
    let name = crate::support::unique("hung");
    let err = aws
        .apigw
        .create_rest_api()
        .name(&name)
        .send()
        .await
        .expect_err("timed out");
    assert!(matches!(err, SdkError::TimeoutError(_)), "{err:?}");
    assert!(rest_api_names(&direct().await).await.contains(&name));
    assert_eq!(
        proxy.stats()["injected_total"]["hang_after_forward"],
        2,
        "{}",
        proxy.stats()
    );
    // The client gave up and closed its connection: the proxy stops holding it by itself.
    proxy.wait_held(0, Duration::from_secs(30)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quotas_throttle_calls_over_their_bucket() {
    crate::support::require_testbed();
    let proxy = FaultProxy::start(1);
    // 2 calls of burst, then 1 every 1000 s (scale 0.001 of 1/s): the third call is throttled.
    proxy.set_quotas(
        0.001,
        json!([
            {"service": "apigateway", "operation": "GetRestApis", "rate_per_s": 1.0, "burst": 2},
            {"service": "lambda", "operation": "*", "rate_per_s": 1.0, "burst": 1}
        ]),
    );
    let aws = through_without_retries(&proxy).await;
    aws.apigw
        .get_rest_apis()
        .send()
        .await
        .expect("within burst");
    aws.apigw
        .get_rest_apis()
        .send()
        .await
        .expect("within burst");
    let err = aws
        .apigw
        .get_rest_apis()
        .send()
        .await
        .expect_err("over quota");
    assert!(
        err.as_service_error()
            .is_some_and(|e| e.is_too_many_requests_exception())
    );
    aws.lambda.list_functions().send().await.expect("burst 1");
    let err = aws
        .lambda
        .list_functions()
        .send()
        .await
        .expect_err("over quota");
    assert_eq!(
        aws_error("Lambda", "ListFunctions", err).aws_kind(),
        Some(AwsErrorKind::Throttled)
    );
    // other operations are not limited
    aws.ec2.describe_vpcs().send().await.expect("no EC2 quota");
    let stats = proxy.stats();
    assert_eq!(stats["throttled_by_quota_total"], 2, "{stats}");
    assert_eq!(
        stats["throttled_by_quota"]["apigateway:GetRestApis"], 1,
        "{stats}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn freeze_holds_the_kth_mutating_response_and_later_mutations() {
    crate::support::require_testbed();
    let proxy = FaultProxy::start(1);
    let aws = through_without_retries(&proxy).await;
    let moto = direct().await;
    let prefix = crate::support::unique("frozen");
    proxy.freeze_after_mutating(2);
    let apigw = aws.apigw.clone();
    let names: Vec<String> = (1..=3).map(|i| format!("{prefix}-{i}")).collect();
    let creating = {
        let names = names.clone();
        tokio::spawn(async move {
            for name in names {
                apigw
                    .create_rest_api()
                    .name(name)
                    .send()
                    .await
                    .expect("CreateRestApi");
            }
        })
    };
    assert!(proxy.wait_frozen(Duration::from_secs(60)), "never frozen");
    // The second create happened at AWS; its response is held; reads still pass.
    let existing = rest_api_names(&moto).await;
    assert!(existing.contains(&names[0]) && existing.contains(&names[1]));
    assert!(!existing.contains(&names[2]));
    aws.apigw.get_rest_apis().send().await.expect("reads pass");
    // A mutating call from elsewhere waits too, before reaching AWS.
    let other = crate::support::unique("held");
    let held_create = {
        let apigw = aws.apigw.clone();
        let other = other.clone();
        tokio::spawn(async move { apigw.create_rest_api().name(other).send().await })
    };
    proxy.wait_held(2, Duration::from_secs(30)).await;
    assert!(!rest_api_names(&moto).await.contains(&other));
    assert!(!creating.is_finished());
    proxy.release();
    creating
        .await
        .expect("the creates finish after the release");
    held_create
        .await
        .expect("task")
        .expect("the held create goes on");
    let existing = rest_api_names(&moto).await;
    assert!(names.iter().all(|n| existing.contains(n)) && existing.contains(&other));
    let stats = proxy.stats();
    assert_eq!(stats["frozen"], false);
    assert_eq!(stats["mutating_forwarded"], 4, "{stats}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_held_call_of_a_client_that_went_away_never_reaches_aws() {
    crate::support::require_testbed();
    let proxy = FaultProxy::start(1);
    let moto = direct().await;
    proxy.freeze_after_mutating(1);
    let first = crate::support::unique("first");
    let second = crate::support::unique("second");
    let aws = through_without_retries(&proxy).await;
    let create_first = {
        let apigw = aws.apigw.clone();
        let first = first.clone();
        tokio::spawn(async move { apigw.create_rest_api().name(first).send().await })
    };
    assert!(proxy.wait_frozen(Duration::from_secs(60)));
    let create_second = {
        let apigw = aws.apigw.clone();
        let second = second.clone();
        tokio::spawn(async move { apigw.create_rest_api().name(second).send().await })
    };
    proxy.wait_held(2, Duration::from_secs(30)).await;
    // The client "dies": its connections close (as for a SIGKILLed operator).
    create_first.abort();
    create_second.abort();
    drop(aws);
    let _ = create_first.await;
    let _ = create_second.await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    proxy.release();
    proxy.wait_held(0, Duration::from_secs(10)).await;
    let existing = rest_api_names(&moto).await;
    assert!(existing.contains(&first), "the first create reached AWS");
    assert!(!existing.contains(&second), "the held one must not");
    assert_eq!(proxy.mutating_forwarded(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_rules_are_refused() {
    crate::support::require_testbed();
    let proxy = FaultProxy::start(1);
    for rule in [
        json!([{"service": "s3", "fault": "throttle", "probability": 1.0}]),
        json!([{"fault": "explode", "probability": 1.0}]),
        json!([{"fault": "throttle"}]),
        json!([{"fault": "throttle", "probability": 1.0, "schedule": [1]}]),
        json!([{"fault": "throttle", "schedule": [0]}]),
    ] {
        let (status, answer) = proxy.control_raw("PUT", "/__faults/rules", Some(&rule));
        assert_eq!(status, 400, "{rule} -> {answer}");
    }
    let (status, _) = proxy.control_raw("GET", "/__faults/nothing", None);
    assert_eq!(status, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_seed_makes_probabilistic_faults_repeatable() {
    crate::support::require_testbed();
    let proxy = FaultProxy::start(7);
    let aws = through_without_retries(&proxy).await;
    let mut runs = Vec::new();
    for _ in 0..2 {
        proxy.reset();
        proxy.set_seed(42);
        proxy.set_rules(json!([
            {"service": "ec2", "fault": "error5xx", "probability": 0.5}
        ]));
        let mut outcomes = Vec::new();
        for _ in 0..16 {
            outcomes.push(aws.ec2.describe_vpcs().send().await.is_ok());
        }
        runs.push(outcomes);
    }
    assert_eq!(runs[0], runs[1]);
    assert!(runs[0].iter().any(|ok| *ok) && runs[0].iter().any(|ok| !*ok));
}
