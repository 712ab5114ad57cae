//! The reader the parts are handed, against the AWS fake: what each source asks AWS for, counted
//! by the SDK interceptor. A direct or remembering reader always asks; a shared one is served by
//! the region's listings and reuses what a remembering reader found while the listing says it
//! has not changed.

use std::time::Duration;

use aws_sdk_lambda::client::Waiters as _;
use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::{Architecture, FunctionCode, Runtime};
use privateapi_operator::observed::{Reader, RegionObservations};

use crate::support::*;

/// Calls of `operation` (e.g. `GetFunction`) AWS answered so far: attempts the SDK retried (a
/// loaded machine makes the fake slow) are not reads the reader asked for.
fn calls(metrics: &privateapi_operator::metrics::Metrics, operation: &str) -> u64 {
    crate::support::runtime::Metrics::parse(&metrics.render(false))
        .find(
            "privateapi_aws_calls_total",
            &[("operation", operation), ("outcome", "ok")],
        )
        .iter()
        .map(|sample| sample.value as u64)
        .sum()
}

const WINDOW: Duration = Duration::from_secs(60);

/// Set the function's memory, once it may be updated (the SDK's waiters).
async fn set_memory(aws: &privateapi_operator::aws::RegionClients, name: &str, mib: i32) {
    aws.lambda
        .wait_until_function_active_v2()
        .function_name(name)
        .wait(Duration::from_secs(30))
        .await
        .expect("function active");
    aws.lambda
        .update_function_configuration()
        .function_name(name)
        .memory_size(mib)
        .send()
        .await
        .expect("UpdateFunctionConfiguration");
    aws.lambda
        .wait_until_function_updated_v2()
        .function_name(name)
        .wait(Duration::from_secs(30))
        .await
        .expect("function updated");
}

#[tokio::test]
async fn a_shared_reader_reuses_what_was_remembered_until_the_listing_says_it_changed() {
    let (aws, metrics) = aws_counted().await;
    let role = std::env::var("PAPI_LAMBDA_ROLE_ARN").expect("PAPI_LAMBDA_ROLE_ARN (moto.env)");
    let name = unique("papi-reader");
    aws.lambda
        .create_function()
        .function_name(&name)
        .runtime(Runtime::Providedal2023)
        .role(&role)
        .handler("bootstrap")
        .architectures(Architecture::X8664)
        .code(
            FunctionCode::builder()
                .zip_file(Blob::new(
                    privateapi_handler::package::zip_single("bootstrap", 0o755, b"#!/bin/sh\n")
                        .expect("zip"),
                ))
                .build(),
        )
        .send()
        .await
        .expect("CreateFunction");
    let api = aws
        .apigateway
        .create_rest_api()
        .name(unique("papi-reader"))
        .send()
        .await
        .expect("CreateRestApi");
    let api_id = api.id().expect("id").to_string();
    let region = RegionObservations::default();

    // Direct: every read asks, nothing is remembered.
    let direct = Reader::direct(&aws);
    let found = direct.function(&name).await.expect("read").expect("exists");
    assert_eq!(found.name, name);
    direct.function(&name).await.expect("read");
    assert_eq!(calls(&metrics, "GetFunction"), 2);
    let shared = Reader::shared(&aws, &region, WINDOW, false);
    assert_eq!(
        shared.function(&name).await.expect("read").as_ref(),
        Some(&found),
        "nothing remembered yet: read directly"
    );
    assert_eq!(calls(&metrics, "GetFunction"), 3);
    // One listing (its pages: other tests' functions share the fake, 50 a page).
    let function_pages = calls(&metrics, "ListFunctions");
    assert!(function_pages >= 1);

    // Remembering: asks, and what it finds serves the shared reads that follow.
    let remembering = Reader::remembering(&aws, &region);
    remembering.function(&name).await.expect("read");
    let routes = remembering.routes(&api_id).await.expect("routes");
    assert_eq!(
        routes.len(),
        1,
        "a new API has its root resource: {routes:?}"
    );
    remembering.routes_are(&api_id, &routes);
    assert_eq!(calls(&metrics, "GetFunction"), 4);
    assert_eq!(calls(&metrics, "GetResources"), 1);

    let mut api_pages = None;
    for _ in 0..3 {
        assert_eq!(
            shared.function(&name).await.expect("read").as_ref(),
            Some(&found)
        );
        assert_eq!(shared.routes(&api_id).await.expect("routes"), routes);
        let live = shared
            .rest_api(&api_id)
            .await
            .expect("read")
            .expect("listed");
        assert_eq!(live.id, api_id);
        // The first shared read of an API listed them (however many pages); no later one did.
        let pages = calls(&metrics, "GetRestApis");
        assert!(pages >= 1);
        assert_eq!(
            *api_pages.get_or_insert(pages),
            pages,
            "one listing per window"
        );
    }
    assert_eq!(
        calls(&metrics, "GetFunction"),
        4,
        "served by the remembered read"
    );
    assert_eq!(calls(&metrics, "GetResources"), 1);
    assert_eq!(
        calls(&metrics, "ListFunctions"),
        function_pages,
        "one listing per window"
    );
    assert_eq!(calls(&metrics, "GetRestApi"), 0);

    // The deep turn reads routes directly.
    Reader::shared(&aws, &region, WINDOW, true)
        .routes(&api_id)
        .await
        .expect("routes");
    assert_eq!(calls(&metrics, "GetResources"), 2);

    // Someone changes the function: the next listing shows a new revision, and the shared read
    // goes to AWS again (a window of zero: every shared read lists).
    let fresh_region = RegionObservations::default();
    Reader::remembering(&aws, &fresh_region)
        .function(&name)
        .await
        .expect("read");
    let listing_each_time = Reader::shared(&aws, &fresh_region, Duration::ZERO, false);
    let before = calls(&metrics, "GetFunction");
    listing_each_time.function(&name).await.expect("read");
    assert_eq!(calls(&metrics, "GetFunction"), before, "unchanged: served");
    set_memory(&aws, &name, 1024).await;
    let before = calls(&metrics, "GetFunction");
    let changed = listing_each_time
        .function(&name)
        .await
        .expect("read")
        .expect("exists");
    assert_eq!(changed.config.memory_mib, 1024);
    assert_eq!(calls(&metrics, "GetFunction"), before + 1, "changed: read");

    aws.lambda
        .delete_function()
        .function_name(&name)
        .send()
        .await
        .expect("DeleteFunction");
    aws.apigateway
        .delete_rest_api()
        .rest_api_id(&api_id)
        .send()
        .await
        .expect("DeleteRestApi");
}

#[tokio::test]
async fn ec2_reads_of_remembering_readers_are_listed_together_by_shared_ones() {
    let (aws, metrics) = aws_counted().await;
    let vpc = make_vpc(&aws.ec2, 77).await;
    let region = RegionObservations::default();
    let remembering = Reader::remembering(&aws, &region);
    for group in [&vpc.client_sg_id, &vpc.extra_sg_id] {
        let found = remembering
            .security_group(group)
            .await
            .expect("read")
            .expect("exists");
        assert_eq!(found.group_id(), Some(group.as_str()));
    }
    assert_eq!(calls(&metrics, "DescribeSecurityGroups"), 2);
    let shared = Reader::shared(&aws, &region, WINDOW, false);
    for group in [&vpc.client_sg_id, &vpc.extra_sg_id] {
        assert!(shared.security_group(group).await.expect("read").is_some());
    }
    assert_eq!(
        calls(&metrics, "DescribeSecurityGroups"),
        3,
        "both groups in one listing"
    );
    assert!(
        Reader::direct(&aws)
            .vpc_endpoint("vpce-0123456789abcdef0")
            .await
            .expect("read")
            .is_none(),
        "an endpoint that does not exist is None"
    );
}
