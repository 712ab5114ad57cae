//! What clients in VPCs get from APIs the operator made, through the test bed's DNS and
//! execute-api data plane (curl from the bed's network namespaces).

use std::time::Duration;

use serde_json::{Value, json};

use privateapi_operator::crd::{CodeBackend, Runtime};

use crate::support::netns::{From, curl_async};
use crate::support::*;

const READY_WITHIN: Duration = Duration::from_secs(120);

fn message(body: &str) -> Option<Value> {
    serde_json::from_str::<Value>(body).ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_vpc_is_admitted_once_its_endpoint_is_added_and_deployed() {
    let world = World::new("reach").vpc(126).operator().await;
    let aws = &world.aws;
    // A second VPC with its own execute-api endpoint (private DNS on, admitting HTTPS from the
    // VPC's client group), and a client there in that group.
    let second = world.make_vpc(127).await;
    let group = make::https_group(aws, &second, &second.client_sg_id).await;
    let second_vpce =
        make::execute_api_endpoint_in(aws, &second.vpc_id, &second.subnet_ids, &group, true).await;
    let client = From::vpc(&second.vpc_id, &[&second.client_sg_id]);
    poll::until_async(
        "the second endpoint available",
        Duration::from_secs(60),
        Duration::from_millis(500),
        async || {
            inspect::endpoint_state_of(aws, &second_vpce)
                .await
                .as_deref()
                == Some("available")
        },
    )
    .await;

    world.seed("orders").apply();
    let object = world.wait_ready("orders", READY_WITHIN);
    let api = status_str(&object, "restApiId");
    let private_url = status_str(&object, "url");
    let alias_url =
        format!("https://{api}-{second_vpce}.execute-api.us-east-1.amazonaws.com/prod/");

    // Before: the private name reaches the second VPC's endpoint, which the deployed policy does
    // not admit; the alias names an endpoint the API does not list.
    let refused = curl_async(&client, &private_url, &[]).await;
    assert_eq!(refused.status, 403, "{refused:?}");
    assert!(refused.body.contains("not authorized"), "{refused:?}");
    let refused = curl_async(&client, &alias_url, &[]).await;
    assert_eq!(refused.status, 403, "{refused:?}");

    // The second endpoint added: once the change is Ready (deployed), both forms answer.
    world.patch("orders", json!({"additionalVpcEndpointIds": [second_vpce]}));
    world.wait_ready("orders", READY_WITHIN);
    for url in [&private_url, &alias_url] {
        let answered = curl_async(&client, url, &[]).await;
        assert_eq!(answered.status, 200, "{url}: {answered:?}");
        assert_eq!(
            message(&answered.body),
            Some(json!({"message": "Private API executed!!"})),
            "{answered:?}"
        );
    }

    world.delete_and_wait("orders", Duration::from_secs(120));
    inspect::delete_endpoint(aws, &second_vpce).await;
}

/// The reference stack's function, as its CDK code deploys it: Node.js, `index.handler`.
const REFERENCE_NODE_FUNCTION: &str = r#"exports.handler = async () => ({
  statusCode: 200,
  body: JSON.stringify({ message: "Private API executed!!" }),
});
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_reference_stacks_node_function_as_backend_code_answers_in_the_vpc() {
    let world = World::new("reach-node").vpc(128).operator().await;
    let vpc = world.vpc();
    // The user's package in S3, as their pipeline uploads it.
    let dir = tempfile::tempdir().expect("temp dir");
    let zip = dir.path().join("function.zip");
    std::fs::write(
        &zip,
        privateapi_handler::package::zip_single(
            "index.js",
            0o644,
            REFERENCE_NODE_FUNCTION.as_bytes(),
        )
        .expect("zip"),
    )
    .expect("write zip");
    let bucket = unique("code");
    make::boto3(&format!(
        "s3.create_bucket(Bucket='{bucket}')\n\
         s3.put_object(Bucket='{bucket}', Key='reference/index.zip', Body=open('{}', 'rb').read())",
        zip.display()
    ));

    world
        .seed("orders")
        .code(CodeBackend {
            s3_bucket: bucket,
            s3_key: "reference/index.zip".into(),
            s3_object_version: None,
            runtime: Runtime::Nodejs22,
            handler: "index.handler".into(),
        })
        .apply();
    let object = world.wait_ready("orders", READY_WITHIN);
    let url = status_str(&object, "url");
    let answered = curl_async(&From::vpc(&vpc.vpc_id, &[&vpc.client_sg_id]), &url, &[]).await;
    assert_eq!(answered.status, 200, "{answered:?}");
    assert_eq!(
        message(&answered.body),
        Some(json!({"message": "Private API executed!!"})),
        "{answered:?}"
    );
    world.delete_and_wait("orders", Duration::from_secs(120));
}
