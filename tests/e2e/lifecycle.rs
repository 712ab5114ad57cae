//! The lifecycle of PrivateApi objects beyond the seed stack, end to end (kubectl against the real
//! API server, the operator as a process, AWS checked through the SDK against the moto server):
//! a shared endpoint, spec changes, drift, Retain, delete before Ready, InvalidSpec, a crash in
//! the middle of a create, make-before-break switches (backend, endpoint, additional endpoint,
//! stage name, spec.adopt) sampled while they happen, and references that appear late. Each test
//! ends with the invariant: the AWS fake holds exactly the resources the live objects' status
//! names — no duplicates, no orphans.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use crate::support::iam::{Decision, evaluate_resource_policy};
use crate::support::inspect::*;
use crate::support::*;
use aws_sdk_apigateway::types::{Op, PatchOperation};
use aws_sdk_ec2::types::{VpcEndpoint, VpcEndpointType};
use privateapi_operator::aws::RegionClients;
use privateapi_operator::crd::{CodeBackend, DeletionPolicy, Runtime};
use privateapi_operator::policy;
use serde_json::{Value, json};

const READY_TIMEOUT: Duration = Duration::from_secs(120);
const GONE_TIMEOUT: Duration = Duration::from_secs(120);
/// An endpoint ID that is well-formed but is none of ours.
const OTHER_VPCE: &str = "vpce-0000000000000000a";

// ---------------------------------------------------------------------------------------------
// Manifests and kubectl
// ---------------------------------------------------------------------------------------------

fn has_any_id(object: &Value) -> bool {
    [
        "vpcEndpointId",
        "securityGroupId",
        "functionArn",
        "restApiId",
    ]
    .iter()
    .any(|f| object["status"][f].is_string())
}

/// Wait until condition `type_` has `status` and `reason` for the current generation.
fn wait_condition(
    world: &World,
    name: &str,
    type_: &str,
    status: &str,
    reason: &str,
    timeout: Duration,
) -> Value {
    let what = format!("{type_}={status} reason {reason} for the current generation");
    world.wait_for(name, timeout, &what, |o| {
        let generation = o["metadata"]["generation"].as_i64();
        condition(o, type_).is_some_and(|c| {
            c["status"] == status
                && c["reason"] == reason
                && c["observedGeneration"].as_i64() == generation
        })
    })
}

// ---------------------------------------------------------------------------------------------
// The invariant: AWS holds exactly what the live objects name
// ---------------------------------------------------------------------------------------------

/// What the objects' status says they own: the endpoint and group only when the operator created
/// them (`endpoint.create`), the function only when it is not a referenced `functionArn`.
fn expected_owned(objects: &[Value]) -> Vec<(String, String)> {
    let mut expected = Vec::new();
    for object in objects {
        let (spec, status) = (&object["spec"], &object["status"]);
        let mut push = |kind: &str, field: &str| {
            if let Some(id) = status[field].as_str() {
                expected.push((kind.to_string(), id.to_string()));
            }
        };
        if spec["endpoint"].get("create").is_some() {
            push("vpc-endpoint", "vpcEndpointId");
            push("security-group", "securityGroupId");
        }
        push("rest-api", "restApiId");
        if spec["backend"].get("functionArn").is_none() {
            push("function", "functionArn");
        }
    }
    expected.sort();
    expected
}

/// `owned_resources(cluster)` equals exactly what the namespace's live objects' status IDs name.
async fn assert_invariant(world: &World) -> Vec<(String, String)> {
    let objects = world.list();
    let expected = expected_owned(&objects);
    let found = world.owned_resources().await;
    assert_eq!(
        found,
        expected,
        "AWS holds other resources than the live objects own (left: AWS, right: status of {})",
        objects.len()
    );
    found
}

// ---------------------------------------------------------------------------------------------
// AWS helpers
// ---------------------------------------------------------------------------------------------

/// How often the tests here look again at what they wait for.
const POLL: Duration = Duration::from_millis(250);

/// What of an endpoint the operator must never change: tags, subnets, groups, private DNS, policy.
fn endpoint_shape(endpoint: &VpcEndpoint) -> String {
    let tags = ec2_tags(endpoint.tags());
    let mut subnets = endpoint.subnet_ids().to_vec();
    subnets.sort();
    let groups = endpoint_group_ids(endpoint);
    format!(
        "tags={tags:?} subnets={subnets:?} groups={groups:?} privateDns={:?} policy={:?}",
        endpoint.private_dns_enabled, endpoint.policy_document
    )
}

/// Delete a security group, retrying while an endpoint that used it is still going away.
async fn delete_group_when_free(aws: &RegionClients, group_id: &str) {
    poll::timed_async(
        &format!("security group {group_id} deleted"),
        Duration::from_secs(60),
        POLL,
        async || match aws
            .ec2
            .delete_security_group()
            .group_id(group_id)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(err) => Err(format!(
                "{:?}",
                err.as_service_error().map(|e| e.to_string())
            )),
        },
    )
    .await;
}

/// After a move from `endpoint.create` to `endpoint.id`: wait until the endpoint and security
/// group the operator owned are gone and status no longer names the group. Returns how long it
/// took.
async fn owned_endpoint_released(world: &World, name: &str, vpce: &str, group: &str) -> Duration {
    let aws = &world.aws;
    let (_, took) = poll::timed_async(
        "the owned endpoint and security group deleted",
        Duration::from_secs(30),
        POLL,
        async || {
            let endpoint_state = inspect::endpoint(aws, vpce)
                .await
                .map(|e| endpoint_state(&e));
            let group_left = aws
                .ec2
                .describe_security_groups()
                .group_ids(group)
                .send()
                .await
                .map(|o| !o.security_groups().is_empty())
                .unwrap_or(false);
            let object = world.get(name).ok_or("object gone")?;
            match (
                endpoint_state.as_deref(),
                group_left,
                object["status"]["securityGroupId"].as_str(),
            ) {
                (None | Some("deleting" | "deleted"), false, None) => Ok(()),
                other => Err(format!(
                    "(endpoint state, group left, status.securityGroupId) = {other:?}"
                )),
            }
        },
    )
    .await;
    took
}

/// Ops of `calls` that are EC2 writes (anything but Describe*).
fn ec2_writes(calls: &AwsCalls) -> Vec<String> {
    calls
        .by_operation
        .keys()
        .filter(|op| op.starts_with("EC2:") && !op.starts_with("EC2:Describe"))
        .cloned()
        .collect()
}

fn deployments_created(calls: &AwsCalls) -> u64 {
    calls
        .by_operation
        .iter()
        .filter(|(op, _)| op.ends_with(":CreateDeployment"))
        .map(|(_, n)| *n)
        .sum()
}

// ---------------------------------------------------------------------------------------------
// 1. Shared endpoint
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_apis_share_an_existing_endpoint_that_is_never_modified() {
    let mut world = World::new("shared").vpc(21).build().await;
    let vpce = make::endpoint(
        &world.aws,
        world.vpc(),
        VpcEndpointType::Interface,
        make::EXECUTE_API,
        &[("owner", "platform-team")],
    )
    .await;
    let shape_before = endpoint_shape(
        &inspect::endpoint(&world.aws, &vpce)
            .await
            .expect("endpoint"),
    );
    world.start_operator();
    let (aws, operator) = (&world.aws, world.operator());

    let started = Instant::now();
    world.referencing("alpha", &vpce).apply();
    world.referencing("beta", &vpce).apply();
    let alpha = world.wait_ready("alpha", READY_TIMEOUT);
    let beta = world.wait_ready("beta", READY_TIMEOUT);
    let calls = operator.aws_calls();
    eprintln!(
        "shared endpoint: both Ready in {:?}; {} reads, {} writes: {:?}",
        started.elapsed(),
        calls.reads,
        calls.writes,
        calls.by_operation
    );

    let mut api_ids = Vec::new();
    for object in [&alpha, &beta] {
        assert_eq!(status_str(object, "vpcEndpointId"), vpce);
        assert!(
            object["status"]["securityGroupId"].is_null(),
            "no managed group: {}",
            object["status"]
        );
        let rest_api_id = status_str(object, "restApiId");
        // Private DNS is off on the endpoint: the URL is the endpoint alias.
        assert_eq!(
            status_str(object, "url"),
            format!("https://{rest_api_id}-{vpce}.execute-api.us-east-1.amazonaws.com/prod/")
        );
        assert_eq!(
            api_vpc_endpoint_ids(aws, &rest_api_id).await,
            BTreeSet::from([vpce.clone()])
        );
        assert_eq!(
            api_policy_decisions(aws, &rest_api_id, &[Some(&vpce), Some(OTHER_VPCE), None]).await,
            vec![
                Decision::Allow,
                Decision::ExplicitDeny,
                Decision::ExplicitDeny
            ]
        );
        api_ids.push(rest_api_id);
    }
    assert_ne!(api_ids[0], api_ids[1], "each object has its own API");
    assert_ne!(
        status_str(&alpha, "functionArn"),
        status_str(&beta, "functionArn")
    );

    // The endpoint is as it was, and the operator only ever described it.
    let endpoint = inspect::endpoint(aws, &vpce).await.expect("endpoint");
    assert_eq!(endpoint_shape(&endpoint), shape_before);
    assert!(
        ec2_writes(&calls).is_empty(),
        "EC2 writes: {:?}",
        calls.by_operation
    );

    // Delete alpha: its API and function go, the endpoint and beta stay as they are.
    let (beta_api, beta_deployment) = (
        status_str(&beta, "restApiId"),
        status_str(&beta, "deploymentId"),
    );
    let delete_calls = operator.calls_during("shared endpoint: delete of alpha", || {
        world.delete_and_wait("alpha", GONE_TIMEOUT)
    });
    assert!(
        ec2_writes(&delete_calls).is_empty(),
        "EC2 writes: {:?}",
        delete_calls.by_operation
    );
    assert!(
        !rest_api_exists(aws, &api_ids[0]).await,
        "alpha's API deleted"
    );
    assert!(
        !function_exists(aws, &status_str(&alpha, "functionArn")).await,
        "alpha's function deleted"
    );
    let endpoint = inspect::endpoint(aws, &vpce)
        .await
        .expect("the endpoint still exists");
    assert_eq!(endpoint_state(&endpoint), "available");
    assert_eq!(endpoint_shape(&endpoint), shape_before);

    assert!(rest_api_exists(aws, &beta_api).await);
    assert_eq!(
        api_vpc_endpoint_ids(aws, &beta_api).await,
        BTreeSet::from([vpce.clone()])
    );
    assert_eq!(
        stages(aws, &beta_api).await,
        vec![("prod".to_string(), beta_deployment.clone())]
    );
    let steady = operator.calls_during("shared endpoint: beta poked", || world.poke("beta"));
    assert_eq!(steady.writes, 0, "beta in sync: {:?}", steady.by_operation);
    let beta = world.wait_ready("beta", Duration::from_secs(10));
    assert_eq!(status_str(&beta, "restApiId"), beta_api);
    assert_eq!(status_str(&beta, "deploymentId"), beta_deployment);

    let owned = assert_invariant(&world).await;
    assert_eq!(owned.len(), 2, "beta's API and function: {owned:?}");

    // Clean up: beta, then the endpoint (ours, made through the SDK).
    world.delete_and_wait("beta", GONE_TIMEOUT);
    assert!(
        inspect::endpoint(aws, &vpce)
            .await
            .is_some_and(|e| endpoint_state(&e) == "available")
    );
    assert_invariant(&world).await;
    delete_endpoint(aws, &vpce).await;
}

// ---------------------------------------------------------------------------------------------
// 2. Spec changes
// ---------------------------------------------------------------------------------------------

/// Patch the spec, wait for Ready of the new generation, return the object, the AWS calls the
/// change cost and the time it took.
fn change(world: &World, name: &str, what: &str, patch: Value) -> (Value, AwsCalls) {
    let operator = world.operator();
    let before = operator.aws_calls();
    let started = Instant::now();
    world.patch(name, patch);
    let object = world.wait_ready(name, READY_TIMEOUT);
    let elapsed = started.elapsed();
    // Let the reconcile the status write queues finish, so its calls are counted too.
    std::thread::sleep(Duration::from_millis(1500));
    let calls = before.since(&operator.aws_calls());
    eprintln!(
        "change {what}: Ready in {elapsed:?}; {} reads, {} writes: {:?}",
        calls.reads, calls.writes, calls.by_operation
    );
    (object, calls)
}

/// A client calling the API from the VPC during spec changes, and what it got during each.
struct Availability {
    traffic: netns::Traffic,
    reports: Vec<(String, netns::TrafficReport)>,
}

impl Availability {
    /// 5 requests a second to `url` from an instance in `vpc`'s client group.
    fn start(vpc: &TestVpc, url: &str) -> Self {
        let client = netns::From::vpc(&vpc.vpc_id, &[&vpc.client_sg_id]);
        let traffic = netns::Traffic::start(&client, url, 5.0);
        // Answered once before any change: the client and the API work.
        poll::until(
            "the client's first answer",
            Duration::from_secs(30),
            Duration::from_millis(500),
            || {
                let report = traffic.between(0.0, f64::MAX);
                (report.sent > report.failed)
                    .then_some(())
                    .ok_or(format!("{report:?}"))
            },
        );
        Self {
            traffic,
            reports: Vec::new(),
        }
    }

    /// [`change`], with what the client got from the patch until the change was Ready.
    fn change(&mut self, world: &World, name: &str, what: &str, patch: Value) -> (Value, AwsCalls) {
        let from = netns::epoch_now();
        let changed = change(world, name, what, patch);
        self.record(what, from);
        changed
    }

    /// What the client got from `from` (epoch seconds) until now, as `what`.
    fn record(&mut self, what: &str, from: f64) {
        let report = self.traffic.between(from, netns::epoch_now());
        eprintln!(
            "{what}: the client sent {} requests, {} failed {:?}",
            report.sent, report.failed, report.failures
        );
        self.reports.push((what.to_string(), report));
    }

    /// Every change but `except` answered every request.
    fn assert_no_failure_but(&self, except: &[&str]) {
        for (what, report) in &self.reports {
            if except.contains(&what.as_str()) {
                continue;
            }
            assert!(report.sent > 0, "{what}: the client sent nothing");
            assert_eq!(report.failed, 0, "{what}: {report:?}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spec_changes_converge_and_redeploy_only_when_the_api_or_policy_changed() {
    let world = World::new("change").vpc(22).operator().await;
    let (aws, vpc) = (&world.aws, world.vpc());
    let name = "orders";
    world.seed(name).apply();
    let object = world.wait_ready(name, READY_TIMEOUT);
    let rest_api_id = status_str(&object, "restApiId");
    let function_arn = status_str(&object, "functionArn");
    let vpce = status_str(&object, "vpcEndpointId");
    let sg_id = status_str(&object, "securityGroupId");
    let first_deployment = status_str(&object, "deploymentId");
    // A client in the VPC (in the client group) calls the API throughout, on the endpoint alias
    // URL, which every change below keeps serving, private DNS or not.
    let alias = |stage: &str| {
        format!("https://{rest_api_id}-{vpce}.execute-api.us-east-1.amazonaws.com/{stage}/")
    };
    let mut served = Availability::start(vpc, &alias("prod"));

    // Memory: the function is updated, no redeploy.
    let (object, calls) = served.change(
        &world,
        name,
        "memoryMiB 256→512",
        json!({"backend": {"memoryMiB": 512}}),
    );
    assert_eq!(
        function_configuration(aws, &function_arn).await.memory_size,
        Some(512)
    );
    assert_eq!(status_str(&object, "deploymentId"), first_deployment);
    assert_eq!(deployments_created(&calls), 0);
    assert_eq!(
        stages(aws, &rest_api_id).await,
        vec![("prod".to_string(), first_deployment.clone())]
    );

    // The builtin message reaches the function's environment, no redeploy.
    let (object, calls) = served.change(
        &world,
        name,
        "builtin.message",
        json!({"backend": {"builtin": {"message": "Hello from the lifecycle test"}}}),
    );
    let config = function_configuration(aws, &function_arn).await;
    assert_eq!(
        env_var(&config, "MESSAGE").as_deref(),
        Some("Hello from the lifecycle test")
    );
    assert_eq!(status_str(&object, "deploymentId"), first_deployment);
    assert_eq!(deployments_created(&calls), 0);

    // Timeout and environment: the function converges, no redeploy.
    let (object, calls) = served.change(
        &world,
        name,
        "timeoutSeconds + environment",
        json!({"backend": {"timeoutSeconds": 20, "environment": {"LOG_LEVEL": "debug"}}}),
    );
    let config = function_configuration(aws, &function_arn).await;
    assert_eq!(config.timeout, Some(20));
    assert_eq!(env_var(&config, "LOG_LEVEL").as_deref(), Some("debug"));
    assert_eq!(
        env_var(&config, "MESSAGE").as_deref(),
        Some("Hello from the lifecycle test")
    );
    assert_eq!(status_str(&object, "deploymentId"), first_deployment);
    assert_eq!(deployments_created(&calls), 0);

    // Another endpoint may invoke the API: endpoint configuration and policy change, and a new
    // deployment makes the policy take effect.
    let extra = make::execute_api_endpoint(aws, vpc).await;
    let (object, calls) = served.change(
        &world,
        name,
        "additionalVpcEndpointIds",
        json!({"additionalVpcEndpointIds": [extra]}),
    );
    assert_eq!(
        api_vpc_endpoint_ids(aws, &rest_api_id).await,
        BTreeSet::from([vpce.clone(), extra.clone()])
    );
    assert_eq!(
        api_policy_decisions(
            aws,
            &rest_api_id,
            &[Some(&vpce), Some(&extra), Some(OTHER_VPCE), None]
        )
        .await,
        vec![
            Decision::Allow,
            Decision::Allow,
            Decision::ExplicitDeny,
            Decision::ExplicitDeny
        ]
    );
    let second_deployment = status_str(&object, "deploymentId");
    assert_ne!(
        second_deployment, first_deployment,
        "the policy change was deployed"
    );
    assert_eq!(deployments_created(&calls), 1);
    assert_eq!(
        stages(aws, &rest_api_id).await,
        vec![("prod".to_string(), second_deployment.clone())]
    );

    // Stage rename: the new stage serves the API, the old one is gone.
    let (object, calls) = served.change(
        &world,
        name,
        "stageName prod→live",
        json!({"stageName": "live"}),
    );
    let third_deployment = status_str(&object, "deploymentId");
    // The client follows status.url to the new stage (the old one is gone once it names it).
    served.traffic.follow(&alias("live"));
    assert_eq!(
        stages(aws, &rest_api_id).await,
        vec![("live".to_string(), third_deployment.clone())]
    );
    assert_eq!(
        status_str(&object, "url"),
        format!("https://{rest_api_id}.execute-api.us-east-1.amazonaws.com/live/")
    );
    assert!(
        calls.by_operation.contains_key("API Gateway:DeleteStage"),
        "{:?}",
        calls.by_operation
    );

    // Description: copied to the API, no redeploy.
    let (object, calls) = served.change(
        &world,
        name,
        "description",
        json!({"description": "orders API, second edition"}),
    );
    let api = rest_api(aws, &rest_api_id).await;
    assert_eq!(
        api.description.as_deref(),
        Some("orders API, second edition")
    );
    assert_eq!(status_str(&object, "deploymentId"), third_deployment);
    assert_eq!(deployments_created(&calls), 0);

    // allowedCidrs: an HTTPS rule from the CIDR on the managed group, no redeploy.
    let (object, calls) = served.change(
        &world,
        name,
        "allowedCidrs",
        json!({"endpoint": {"create": {"allowedCidrs": ["10.99.0.0/16"]}}}),
    );
    assert_eq!(
        ingress_sources(aws, &sg_id).await,
        https_from(&["10.99.0.0/16", &vpc.client_sg_id])
    );
    assert_eq!(status_str(&object, "deploymentId"), third_deployment);
    assert_eq!(deployments_created(&calls), 0);

    // Tags: added to every resource, no redeploy.
    let (object, calls) = served.change(
        &world,
        name,
        "tags",
        json!({"tags": {"team": "test", "env": "dev"}}),
    );
    let api_tags = rest_api(aws, &rest_api_id).await.tags.unwrap_or_default();
    assert_eq!(api_tags.get("env").map(String::as_str), Some("dev"));
    let function_tags = aws
        .lambda
        .list_tags()
        .resource(&function_arn)
        .send()
        .await
        .expect("ListTags")
        .tags
        .unwrap_or_default();
    assert_eq!(function_tags.get("env").map(String::as_str), Some("dev"));
    let endpoint = inspect::endpoint(aws, &vpce).await.expect("endpoint");
    let endpoint_tags = ec2_tags(endpoint.tags());
    assert_eq!(
        endpoint_tags.get("env").map(String::as_str),
        Some("dev"),
        "{endpoint_tags:?}"
    );
    let group_tags = ec2_tags(security_group(aws, &sg_id).await.tags());
    assert_eq!(
        group_tags.get("env").map(String::as_str),
        Some("dev"),
        "{group_tags:?}"
    );
    assert_eq!(status_str(&object, "deploymentId"), third_deployment);
    assert_eq!(deployments_created(&calls), 0);

    // A user-managed group attached to the endpoint beside the managed one, no redeploy.
    let user_sg =
        make::security_group(&aws.ec2, &vpc.vpc_id, &unique("user"), "user-managed").await;
    let (object, calls) = served.change(
        &world,
        name,
        "securityGroupIds",
        json!({"endpoint": {"create": {"securityGroupIds": [user_sg]}}}),
    );
    let endpoint = inspect::endpoint(aws, &vpce).await.expect("endpoint");
    let groups: BTreeSet<String> = endpoint
        .groups()
        .iter()
        .filter_map(|g| g.group_id.clone())
        .collect();
    assert_eq!(groups, BTreeSet::from([sg_id.clone(), user_sg.clone()]));
    assert_eq!(status_str(&object, "deploymentId"), third_deployment);
    assert_eq!(deployments_created(&calls), 0);

    // One subnet fewer and private DNS off: the endpoint follows, the URL becomes the endpoint
    // alias, no redeploy.
    let (object, calls) = served.change(
        &world,
        name,
        "subnetIds + privateDns",
        json!({"endpoint": {"create": {"subnetIds": [vpc.subnet_ids[0]], "privateDns": false}}}),
    );
    let endpoint = inspect::endpoint(aws, &vpce).await.expect("endpoint");
    assert_eq!(endpoint.subnet_ids(), [vpc.subnet_ids[0].clone()]);
    assert_eq!(endpoint.private_dns_enabled, Some(false));
    assert_eq!(
        status_str(&object, "url"),
        format!("https://{rest_api_id}-{vpce}.execute-api.us-east-1.amazonaws.com/live/")
    );
    assert_eq!(status_str(&object, "deploymentId"), third_deployment);
    assert_eq!(deployments_created(&calls), 0);

    // The additional endpoint removed: configuration and policy follow, and are deployed.
    let (object, calls) = served.change(
        &world,
        name,
        "additionalVpcEndpointIds removed",
        json!({"additionalVpcEndpointIds": null}),
    );
    assert_eq!(
        api_vpc_endpoint_ids(aws, &rest_api_id).await,
        BTreeSet::from([vpce.clone()])
    );
    assert_eq!(
        api_policy_decisions(aws, &rest_api_id, &[Some(&vpce), Some(&extra)]).await,
        vec![Decision::Allow, Decision::ExplicitDeny]
    );
    let last_deployment = status_str(&object, "deploymentId");
    assert_ne!(last_deployment, third_deployment);
    assert_eq!(deployments_created(&calls), 1);
    assert_eq!(
        stages(aws, &rest_api_id).await,
        vec![("live".to_string(), last_deployment)]
    );

    // Every change but the stage rename (whose old URL goes, by design) kept the API answering
    // the client, request after request.
    served.assert_no_failure_but(&["stageName prod→live"]);

    // Nothing was replaced on the way.
    assert_eq!(status_str(&object, "restApiId"), rest_api_id);
    assert_eq!(status_str(&object, "functionArn"), function_arn);
    assert_eq!(status_str(&object, "vpcEndpointId"), vpce);
    assert_eq!(status_str(&object, "securityGroupId"), sg_id);
    assert_invariant(&world).await;

    world.delete_and_wait(name, GONE_TIMEOUT);
    assert_invariant(&world).await;
    delete_endpoint(aws, &extra).await;
    aws.ec2
        .delete_security_group()
        .group_id(&user_sg)
        .send()
        .await
        .expect("DeleteSecurityGroup of the user's group");
}

// ---------------------------------------------------------------------------------------------
// 3. Drift
// ---------------------------------------------------------------------------------------------

const DRIFT_TIMEOUT: Duration = Duration::from_secs(20);

/// One drift of a table: what is changed, the change made in AWS, and the check that it is
/// reverted.
struct Drift<'a> {
    what: &'static str,
    make: futures::future::BoxFuture<'a, ()>,
    reverted: Box<dyn FnMut() -> futures::future::BoxFuture<'a, Result<(), String>> + Send + 'a>,
}

/// Wait until the drift of `what` is reverted (`check` holds), at most [`DRIFT_TIMEOUT`]; note in
/// `times` how long it took. Returns what `check` found.
async fn reverted<L: poll::Look>(
    times: &mut Vec<(&'static str, Duration)>,
    what: &'static str,
    check: impl AsyncFnMut() -> L,
) -> L::Value {
    let (value, took) =
        poll::timed_async(&format!("{what} reverted"), DRIFT_TIMEOUT, POLL, check).await;
    times.push((what, took));
    value
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drift_made_in_aws_is_reverted_within_one_resync() {
    let world = World::new("drift")
        .vpc(23)
        .operator_with(&["--resync-seconds", "5"])
        .await;
    let (aws, vpc, operator) = (&world.aws, world.vpc(), world.operator());
    let name = "orders";
    world.seed(name).apply();
    let object = world.wait_ready(name, READY_TIMEOUT);
    let rest_api_id = status_str(&object, "restApiId");
    let function_arn = status_str(&object, "functionArn");
    let vpce = status_str(&object, "vpcEndpointId");
    let sg_id = status_str(&object, "securityGroupId");
    let mut times = Vec::new();

    // Drift that leaves every ID in place, one after the other: each is made in AWS, then
    // reverted by the operator within one resync; the object stays Ready and owns exactly what
    // it should.
    let allow_all = json!({"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Principal": "*", "Action": "execute-api:Invoke", "Resource": "execute-api:/*"
    }]});
    let drifts: Vec<Drift> = vec![
        Drift {
            what: "policy",
            // The API policy replaced by an allow-all policy.
            make: Box::pin(async {
                aws.apigateway
                    .update_rest_api()
                    .rest_api_id(&rest_api_id)
                    .patch_operations(
                        PatchOperation::builder()
                            .op(Op::Replace)
                            .path("/policy")
                            .value(allow_all.to_string())
                            .build(),
                    )
                    .send()
                    .await
                    .expect("UpdateRestApi");
                assert_eq!(
                    api_policy_decisions(aws, &rest_api_id, &[Some(OTHER_VPCE)]).await,
                    vec![Decision::Allow],
                    "the drift took"
                );
            }),
            reverted: Box::new(|| {
                Box::pin(async {
                    let decisions = api_policy_decisions(
                        aws,
                        &rest_api_id,
                        &[Some(&vpce), Some(OTHER_VPCE), None],
                    )
                    .await;
                    let expected = [
                        Decision::Allow,
                        Decision::ExplicitDeny,
                        Decision::ExplicitDeny,
                    ];
                    (decisions == expected)
                        .then_some(())
                        .ok_or_else(|| format!("{decisions:?}"))
                })
            }),
        },
        Drift {
            what: "permission",
            // The invoke permission removed.
            make: Box::pin(async {
                make::remove_invoke_permissions(aws, &function_arn).await;
                assert!(lambda_statements(aws, &function_arn).await.is_empty());
            }),
            reverted: Box::new(|| {
                Box::pin(async {
                    let statements = lambda_statements(aws, &function_arn).await;
                    permits_only(&statements, aws, &rest_api_id)
                        .then_some(())
                        .ok_or_else(|| format!("{statements:?}"))
                })
            }),
        },
        Drift {
            what: "memory",
            make: Box::pin(async {
                aws.lambda
                    .update_function_configuration()
                    .function_name(&function_arn)
                    .memory_size(1024)
                    .send()
                    .await
                    .expect("UpdateFunctionConfiguration");
            }),
            reverted: Box::new(|| {
                Box::pin(async {
                    match function_configuration(aws, &function_arn).await.memory_size {
                        Some(256) => Ok(()),
                        other => Err(format!("{other:?}")),
                    }
                })
            }),
        },
        Drift {
            what: "stage",
            make: Box::pin(async {
                aws.apigateway
                    .delete_stage()
                    .rest_api_id(&rest_api_id)
                    .stage_name("prod")
                    .send()
                    .await
                    .expect("DeleteStage");
            }),
            // The stage is back, and the status names the deployment it serves.
            reverted: Box::new(|| {
                Box::pin(async {
                    let stages = stages(aws, &rest_api_id).await;
                    let object = world.get(name).ok_or("object gone")?;
                    let deployment = object["status"]["deploymentId"].as_str().unwrap_or("");
                    match stages.as_slice() {
                        [(stage, serving)] if stage == "prod" && serving == deployment => Ok(()),
                        _ => Err(format!("stages {stages:?}, status {deployment}")),
                    }
                })
            }),
        },
        Drift {
            what: "ingress rule",
            // The security group's ingress rules revoked, exactly as EC2 reports them (with the
            // operator's rule descriptions).
            make: Box::pin(async {
                let live_rules = security_group(aws, &sg_id)
                    .await
                    .ip_permissions
                    .unwrap_or_default();
                assert_eq!(live_rules.len(), 1, "{live_rules:?}");
                aws.ec2
                    .revoke_security_group_ingress()
                    .group_id(&sg_id)
                    .set_ip_permissions(Some(live_rules))
                    .send()
                    .await
                    .expect("RevokeSecurityGroupIngress");
                assert!(
                    ingress_sources(aws, &sg_id).await.is_empty(),
                    "the drift took"
                );
            }),
            reverted: Box::new(|| {
                Box::pin(async {
                    let rules = ingress_sources(aws, &sg_id).await;
                    (rules == https_from(&[&vpc.client_sg_id]))
                        .then_some(())
                        .ok_or_else(|| format!("{rules:?}"))
                })
            }),
        },
    ];
    for mut drift in drifts {
        drift.make.await;
        reverted(&mut times, drift.what, async || (drift.reverted)().await).await;
        world.wait_ready(name, READY_TIMEOUT);
        assert_invariant(&world).await;
    }

    // The function deleted: recreated (same name, so same ARN), with its permission.
    aws.lambda
        .delete_function()
        .function_name(&function_arn)
        .send()
        .await
        .expect("DeleteFunction");
    reverted(&mut times, "function", async || {
        if !function_exists(aws, &function_arn).await {
            return Err("no function".into());
        }
        let statements = lambda_statements(aws, &function_arn).await;
        if permits_only(&statements, aws, &rest_api_id) {
            Ok(())
        } else {
            Err(format!("permission: {statements:?}"))
        }
    })
    .await;
    let object = world.wait_ready(name, READY_TIMEOUT);
    assert_eq!(status_str(&object, "functionArn"), function_arn);
    let config = function_configuration(aws, &function_arn).await;
    assert_eq!(config.memory_size, Some(256));
    assert_eq!(
        env_var(&config, "MESSAGE").as_deref(),
        Some("Private API executed!!")
    );
    assert_invariant(&world).await;

    // The REST API deleted: recreated with a new ID, which status names.
    aws.apigateway
        .delete_rest_api()
        .rest_api_id(&rest_api_id)
        .send()
        .await
        .expect("DeleteRestApi");
    let new_api_id = reverted(&mut times, "REST API", async || {
        let object = world.get(name).ok_or("object gone")?;
        match object["status"]["restApiId"].as_str() {
            Some(id) if id != rest_api_id && rest_api_exists(aws, id).await => Ok(id.to_string()),
            other => Err(format!("status.restApiId {other:?}")),
        }
    })
    .await;
    let object = world.wait_ready(name, READY_TIMEOUT);
    assert_eq!(status_str(&object, "restApiId"), new_api_id);
    assert!(!rest_api_exists(aws, &rest_api_id).await);
    assert_eq!(
        api_vpc_endpoint_ids(aws, &new_api_id).await,
        BTreeSet::from([vpce.clone()])
    );
    assert_eq!(
        api_policy_decisions(aws, &new_api_id, &[Some(&vpce), Some(OTHER_VPCE)]).await,
        vec![Decision::Allow, Decision::ExplicitDeny]
    );
    assert_eq!(
        stages(aws, &new_api_id).await,
        vec![("prod".to_string(), status_str(&object, "deploymentId"))]
    );
    let statements = lambda_statements(aws, &function_arn).await;
    assert!(
        permits_only(&statements, aws, &new_api_id),
        "the permission follows the new API: {statements:?}"
    );
    assert_invariant(&world).await;

    eprintln!("drift reverted after (resync 5 s): {times:?}");
    let calls = operator.aws_calls();
    eprintln!(
        "drift: total {} reads, {} writes: {:?}",
        calls.reads, calls.writes, calls.by_operation
    );

    world.delete_and_wait(name, GONE_TIMEOUT);
    assert_invariant(&world).await;
}

// ---------------------------------------------------------------------------------------------
// 4. Retain
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_with_retain_leaves_every_resource_with_its_tags() {
    let world = World::new("retain").vpc(24).operator().await;
    let (aws, operator) = (&world.aws, world.operator());
    world
        .seed("kept")
        .deletion_policy(DeletionPolicy::Retain)
        .apply();
    // Another object beside it (private DNS off: one private-DNS endpoint per VPC).
    world.seed("other").private_dns(false).apply();
    let kept = world.wait_ready("kept", READY_TIMEOUT);
    let other = world.wait_ready("other", READY_TIMEOUT);
    let owner = format!("{}/kept", world.namespace);
    let (vpce, sg_id, rest_api_id, function_arn) = (
        status_str(&kept, "vpcEndpointId"),
        status_str(&kept, "securityGroupId"),
        status_str(&kept, "restApiId"),
        status_str(&kept, "functionArn"),
    );

    let delete_calls = operator.calls_during("retain: delete", || {
        world.delete_and_wait("kept", GONE_TIMEOUT)
    });
    assert_eq!(
        delete_calls.writes, 0,
        "Retain writes nothing: {:?}",
        delete_calls.by_operation
    );

    // Everything is still there, with its tags.
    let endpoint = inspect::endpoint(aws, &vpce)
        .await
        .expect("endpoint retained");
    assert_eq!(endpoint_state(&endpoint), "available");
    let endpoint_tags = ec2_tags(endpoint.tags());
    assert_eq!(
        endpoint_tags.get("privateapi.io/owner"),
        Some(&owner),
        "{endpoint_tags:?}"
    );
    assert_eq!(
        endpoint_tags.get("privateapi.io/cluster"),
        Some(&world.cluster)
    );
    assert_eq!(endpoint_tags.get("team").map(String::as_str), Some("test"));
    let group_tags = ec2_tags(security_group(aws, &sg_id).await.tags());
    assert_eq!(
        group_tags.get("privateapi.io/owner"),
        Some(&owner),
        "{group_tags:?}"
    );
    let api_tags = rest_api(aws, &rest_api_id).await.tags.unwrap_or_default();
    assert_eq!(api_tags.get("privateapi.io/owner"), Some(&owner));
    assert_eq!(api_tags.get("team").map(String::as_str), Some("test"));
    assert_eq!(
        stages(aws, &rest_api_id).await.len(),
        1,
        "the stage is retained"
    );
    let function = inspect::function(aws, &function_arn).await;
    let function_tags = function.tags.unwrap_or_default();
    assert_eq!(function_tags.get("privateapi.io/owner"), Some(&owner));
    assert!(permits_api(
        &lambda_statements(aws, &function_arn).await,
        aws,
        &rest_api_id
    ));

    // The other object is untouched.
    let other_now = world.wait_ready("other", Duration::from_secs(10));
    for field in [
        "restApiId",
        "functionArn",
        "vpcEndpointId",
        "securityGroupId",
        "deploymentId",
    ] {
        assert_eq!(
            other_now["status"][field], other["status"][field],
            "{field}"
        );
    }

    // Clean the retained resources up by hand, so the invariant is about the other object.
    aws.apigateway
        .delete_rest_api()
        .rest_api_id(&rest_api_id)
        .send()
        .await
        .expect("DeleteRestApi");
    aws.lambda
        .delete_function()
        .function_name(&function_arn)
        .send()
        .await
        .expect("DeleteFunction");
    delete_endpoint(aws, &vpce).await;
    delete_group_when_free(aws, &sg_id).await;
    let owned = assert_invariant(&world).await;
    assert_eq!(
        owned.len(),
        4,
        "the other object's four resources: {owned:?}"
    );

    world.delete_and_wait("other", GONE_TIMEOUT);
    assert_invariant(&world).await;
}

// ---------------------------------------------------------------------------------------------
// 5. Delete before Ready
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_before_ready_leaves_nothing() {
    let world = World::new("early").vpc(25).operator().await;
    let operator = world.operator();
    let manifest = |name: &str| world.seed(name).private_dns(false);

    // Deleted right after apply.
    let started = Instant::now();
    manifest("immediate").apply();
    world.delete("immediate");

    // Deleted as soon as status names anything.
    manifest("first-id").apply();
    let object = world.wait_for("first-id", READY_TIMEOUT, "any ID in status", has_any_id);
    world.delete("first-id");
    eprintln!(
        "delete before Ready: first-id deleted with status {}",
        serde_json::to_string(&object["status"]).unwrap_or_default()
    );
    assert!(
        !condition(&object, "Ready").is_some_and(|c| c["status"] == "True"),
        "deleted before Ready"
    );

    // Deleted once the REST API exists, while the endpoint may still be pending.
    manifest("api-made").apply();
    let object = world.wait_for("api-made", READY_TIMEOUT, "restApiId in status", |o| {
        o["status"]["restApiId"].is_string()
    });
    world.delete("api-made");
    let was_ready = condition(&object, "Ready").is_some_and(|c| c["status"] == "True");
    eprintln!(
        "delete before Ready: api-made deleted (Ready then: {was_ready}) with status {}",
        serde_json::to_string(&object["status"]).unwrap_or_default()
    );

    for name in ["immediate", "first-id", "api-made"] {
        world.wait_gone(name, GONE_TIMEOUT);
    }
    eprintln!(
        "delete before Ready: all three gone {:?} after the first apply",
        started.elapsed()
    );
    let calls = operator.aws_calls();
    eprintln!(
        "delete before Ready: {} reads, {} writes: {:?}",
        calls.reads, calls.writes, calls.by_operation
    );
    let left = assert_invariant(&world).await;
    assert!(left.is_empty(), "left behind: {left:?}");
}

// ---------------------------------------------------------------------------------------------
// 6. InvalidSpec
// ---------------------------------------------------------------------------------------------

/// Wait for InvalidSpec naming `field` in Ready's message; return the object.
fn wait_invalid(world: &World, name: &str, field: &str) -> Value {
    wait_refused(world, name, "InvalidSpec", field)
}

/// Wait for Ready=False with `reason` naming `field`; return the object.
fn wait_refused(world: &World, name: &str, reason: &str, field: &str) -> Value {
    let object = wait_condition(world, name, "Ready", "False", reason, READY_TIMEOUT);
    let message = condition_message(&object, "Ready");
    assert!(
        message.contains(field),
        "Ready's message names {field}: {message}"
    );
    eprintln!("{reason} {}/{name}: {message}", world.namespace);
    object
}

/// Once things settled, nothing happens for ~5 s: no reconcile, no AWS call.
fn assert_quiet(operator: &Operator, what: &str) {
    std::thread::sleep(Duration::from_secs(2));
    let (reconciles, calls) = (operator.reconciles(), operator.aws_calls());
    std::thread::sleep(Duration::from_secs(5));
    let (reconciles_after, calls_after) = (operator.reconciles(), operator.aws_calls());
    let delta = calls.since(&calls_after);
    assert_eq!(
        reconciles_after, reconciles,
        "{what}: the operator kept reconciling"
    );
    assert_eq!(
        (delta.reads, delta.writes),
        (0, 0),
        "{what}: AWS calls {:?}",
        delta.by_operation
    );
    eprintln!("{what}: no reconcile and no AWS call in 5 s (reconciles so far: {reconciles})");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_specs_are_reported_not_retried_and_fixable() {
    let world = World::new("invalid").vpc(26).operator().await;
    let (aws, vpc, operator) = (&world.aws, world.vpc(), world.operator());

    // A subnet that does not exist (yet): retried, nothing made meanwhile.
    world
        .seed("subnet")
        .subnets([vpc.subnet_ids[0].as_str(), "subnet-0123456789abcdef0"])
        .apply();
    let object = wait_refused(&world, "subnet", "ReferenceNotFound", "subnetIds");
    let endpoint_ready = condition(&object, "EndpointReady").expect("EndpointReady");
    assert_eq!(
        endpoint_ready["reason"], "ReferenceNotFound",
        "{endpoint_ready}"
    );
    assert!(
        object["status"]["vpcEndpointId"].is_null(),
        "no endpoint was made"
    );
    assert_invariant(&world).await;

    // Fixed: Ready.
    let started = Instant::now();
    world.patch(
        "subnet",
        json!({"endpoint": {"create": {"subnetIds": vpc.subnet_ids}}}),
    );
    world.wait_ready("subnet", READY_TIMEOUT);
    eprintln!("unknown subnet fixed: Ready in {:?}", started.elapsed());

    // An endpoint that is not an execute-api interface endpoint.
    let gateway = make::endpoint(
        aws,
        vpc,
        VpcEndpointType::Gateway,
        "com.amazonaws.us-east-1.s3",
        &[],
    )
    .await;
    world.referencing("gateway", &gateway).apply();
    wait_invalid(&world, "gateway", "spec.endpoint.id");

    assert_quiet(operator, "not an execute-api endpoint");

    // A function that does not exist yet, as when a GitOps sync applies the PrivateApi before
    // the object that makes the function: ReferenceNotFound naming the field, retried with
    // backoff after its endpoint is available, and Ready on its own once the function exists —
    // no spec change, no restart.
    let late_name = unique("papi-late");
    let late_arn = format!(
        "arn:aws:lambda:us-east-1:{}:function:{late_name}",
        aws.account_id
    );
    world
        .seed("nofunction")
        .private_dns(false)
        .function_arn(&late_arn)
        .apply();
    wait_refused(&world, "nofunction", "ReferenceNotFound", "functionArn");
    wait_condition(
        &world,
        "nofunction",
        "EndpointReady",
        "True",
        "Available",
        Duration::from_secs(60),
    );
    let generation = world.get("nofunction").expect("object")["metadata"]["generation"].clone();
    std::thread::sleep(Duration::from_secs(5));
    let created = Instant::now();
    assert_eq!(make::handler_function(aws, &late_name).await, late_arn);
    let object = world.wait_ready("nofunction", READY_TIMEOUT);
    assert_eq!(
        object["metadata"]["generation"], generation,
        "no spec change"
    );
    eprintln!(
        "function made {:?} after the object: Ready {:?} after it exists",
        Duration::from_secs(5),
        created.elapsed()
    );
    assert_invariant(&world).await;

    // Deleting refused objects leaves nothing of theirs behind.
    world.delete("gateway");
    world.delete("nofunction");
    world.wait_gone("gateway", GONE_TIMEOUT);
    world.wait_gone("nofunction", GONE_TIMEOUT);
    let owned = assert_invariant(&world).await;
    assert_eq!(
        owned.len(),
        4,
        "only the fixed object's resources: {owned:?}"
    );
    assert!(
        function_exists(aws, &late_arn).await,
        "a referenced function stays"
    );
    assert!(lambda_statements(aws, &late_arn).await.is_empty());
    aws.lambda
        .delete_function()
        .function_name(&late_arn)
        .send()
        .await
        .expect("DeleteFunction");

    world.delete_and_wait("subnet", GONE_TIMEOUT);
    assert_invariant(&world).await;
    delete_endpoint(aws, &gateway).await;
}

// ---------------------------------------------------------------------------------------------
// 7. Crash in the middle of a create
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_killed_mid_create_recovers_without_duplicates() {
    let mut world = World::new("crash").operator().await;
    let mut names = Vec::new();
    for (i, k) in [1u64, 2, 3, 4, 6, 8, 10, 12].into_iter().enumerate() {
        let vpc = world.make_vpc(70 + i as u8).await;
        let name = format!("crash-after-{k}");
        let baseline = world.operator().aws_calls().writes;
        let started = Instant::now();
        PrivateApiManifest::seed(&world.namespace, &name, &vpc).apply();
        let at_kill = poll::until(
            &format!("{name}: {k} writes"),
            Duration::from_secs(60),
            Duration::from_millis(5),
            || {
                let calls = world.operator().aws_calls();
                if calls.writes - baseline >= k {
                    Ok(calls)
                } else {
                    Err(format!("{calls:?}"))
                }
            },
        );
        world.operator_mut().kill();
        eprintln!(
            "{name}: killed after {} writes ({:?} in); calls so far: {:?}",
            at_kill.writes - baseline,
            started.elapsed(),
            at_kill.by_operation
        );
        let status_at_kill = world.get(&name).map(|o| o["status"].clone());
        eprintln!(
            "{name}: status at kill: {}",
            status_at_kill.unwrap_or_default()
        );
        world.operator_mut().restart();
        let restarted = Instant::now();
        world.wait_ready(&name, READY_TIMEOUT);
        let calls = world.operator().aws_calls();
        eprintln!(
            "{name}: Ready {:?} after the restart; the new process made {} reads, {} writes: {:?}",
            restarted.elapsed(),
            calls.reads,
            calls.writes,
            calls.by_operation
        );
        names.push(name);
        let owned = assert_invariant(&world).await;
        for kind in ["vpc-endpoint", "security-group", "rest-api", "function"] {
            let n = owned.iter().filter(|(k, _)| k == kind).count();
            assert_eq!(n, names.len(), "one {kind} per object: {owned:?}");
        }
    }

    for name in &names {
        world.delete(name);
    }
    for name in &names {
        world.wait_gone(name, GONE_TIMEOUT);
    }
    let left = assert_invariant(&world).await;
    assert!(left.is_empty(), "left behind: {left:?}");
}

// ---------------------------------------------------------------------------------------------
// 8. Switching the backend and the endpoint between owned and referenced
// ---------------------------------------------------------------------------------------------

/// A function made by "someone else" (the built-in handler's zip, 128 MiB).
async fn create_existing_function(aws: &RegionClients) -> String {
    make::handler_function(aws, &unique("existing")).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn switching_between_owned_and_referenced_backend_and_endpoint_leaves_no_orphan() {
    let world = World::new("switch").vpc(28).operator().await;
    let (aws, vpc) = (&world.aws, world.vpc());
    let name = "orders";
    world.seed(name).apply();
    let object = world.wait_ready(name, READY_TIMEOUT);
    let rest_api_id = status_str(&object, "restApiId");
    let owned_function = status_str(&object, "functionArn");
    let owned_vpce = status_str(&object, "vpcEndpointId");
    let owned_sg = status_str(&object, "securityGroupId");
    let first_deployment = status_str(&object, "deploymentId");

    // builtin → functionArn: the owned function goes, the referenced one is wired and not changed.
    let existing = create_existing_function(aws).await;
    let (object, _) = change(
        &world,
        name,
        "backend builtin→functionArn",
        json!({"backend": {"builtin": null, "architecture": null, "functionArn": existing}}),
    );
    assert_eq!(status_str(&object, "functionArn"), existing);
    assert!(
        !function_exists(aws, &owned_function).await,
        "the owned function is deleted"
    );
    assert_eq!(
        function_configuration(aws, &existing).await.memory_size,
        Some(128)
    );
    let statements = lambda_statements(aws, &existing).await;
    assert!(
        permits_only(&statements, aws, &rest_api_id),
        "{statements:?}"
    );
    assert_eq!(
        integration_uris(aws, &rest_api_id).await,
        BTreeSet::from([invocation_uri(&existing)])
    );
    let second_deployment = status_str(&object, "deploymentId");
    assert_ne!(
        second_deployment, first_deployment,
        "the integration change was deployed"
    );
    assert_invariant(&world).await;

    // endpoint.create → endpoint.id: the API moves to the referenced endpoint, the owned endpoint
    // and its security group go.
    let shared = make::execute_api_endpoint(aws, vpc).await;
    let (object, _) = change(
        &world,
        name,
        "endpoint create→id",
        json!({"endpoint": {"create": null, "id": shared}}),
    );
    assert_eq!(status_str(&object, "vpcEndpointId"), shared);
    assert_eq!(
        api_vpc_endpoint_ids(aws, &rest_api_id).await,
        BTreeSet::from([shared.clone()])
    );
    assert_eq!(
        api_policy_decisions(aws, &rest_api_id, &[Some(&shared), Some(&owned_vpce)]).await,
        vec![Decision::Allow, Decision::ExplicitDeny]
    );
    assert_ne!(
        status_str(&object, "deploymentId"),
        second_deployment,
        "the policy change was deployed"
    );
    let took = owned_endpoint_released(&world, name, &owned_vpce, &owned_sg).await;
    eprintln!(
        "endpoint create→id: owned endpoint and group gone {took:?} after the change settled"
    );
    assert_eq!(
        endpoint_state(
            &inspect::endpoint(aws, &shared)
                .await
                .expect("shared endpoint")
        ),
        "available"
    );
    assert_invariant(&world).await;

    // functionArn → builtin: a new owned function; the referenced one loses our statement only.
    let (object, _) = change(
        &world,
        name,
        "backend functionArn→builtin",
        json!({"backend": {"functionArn": null, "builtin": {"message": "back again"}, "architecture": "x86_64"}}),
    );
    let new_function = status_str(&object, "functionArn");
    assert_ne!(new_function, existing);
    assert_eq!(
        env_var(&function_configuration(aws, &new_function).await, "MESSAGE").as_deref(),
        Some("back again")
    );
    assert!(
        function_exists(aws, &existing).await,
        "the referenced function is never deleted"
    );
    assert!(
        lambda_statements(aws, &existing).await.is_empty(),
        "our statement is removed"
    );
    assert_eq!(
        integration_uris(aws, &rest_api_id).await,
        BTreeSet::from([invocation_uri(&new_function)])
    );
    assert_invariant(&world).await;

    world.delete_and_wait(name, GONE_TIMEOUT);
    assert!(function_exists(aws, &existing).await);
    assert_eq!(
        endpoint_state(
            &inspect::endpoint(aws, &shared)
                .await
                .expect("shared endpoint")
        ),
        "available"
    );
    let left = assert_invariant(&world).await;
    assert!(left.is_empty(), "left behind: {left:?}");
    delete_endpoint(aws, &shared).await;
    aws.lambda
        .delete_function()
        .function_name(&existing)
        .send()
        .await
        .expect("DeleteFunction");
}

// ---------------------------------------------------------------------------------------------
// 9. The owned endpoint deleted in AWS
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn owned_endpoint_deleted_in_aws_is_recreated_and_the_api_follows() {
    let world = World::new("vpce-drift")
        .vpc(29)
        .operator_with(&["--resync-seconds", "5"])
        .await;
    let (aws, operator) = (&world.aws, world.operator());
    let name = "orders";
    world.seed(name).apply();
    let object = world.wait_ready(name, READY_TIMEOUT);
    let rest_api_id = status_str(&object, "restApiId");
    let old_vpce = status_str(&object, "vpcEndpointId");
    let sg_id = status_str(&object, "securityGroupId");
    let old_deployment = status_str(&object, "deploymentId");

    // Deleted, and a reconcile comes while it is still `deleting` (its private DNS domain still
    // taken), as any edit of the object would make.
    delete_endpoint(aws, &old_vpce).await;
    let before = operator.aws_calls();
    kubectl(&[
        "annotate",
        "privateapi",
        name,
        "-n",
        &world.namespace,
        "papi-test/poke=after-endpoint-delete",
    ]);
    let (new_vpce, took) = poll::timed_async(
        "a new endpoint in status, available, used by the API",
        Duration::from_secs(30),
        POLL,
        async || {
            let object = world.get(name).ok_or("object gone")?;
            let id = object["status"]["vpcEndpointId"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            if id.is_empty() || id == old_vpce {
                return Err(format!("status: {}", object["status"]));
            }
            let state = inspect::endpoint(aws, &id)
                .await
                .map(|e| endpoint_state(&e));
            let api_ids = api_vpc_endpoint_ids(aws, &rest_api_id).await;
            if state.as_deref() == Some("available") && api_ids == BTreeSet::from([id.clone()]) {
                Ok(id)
            } else {
                Err(format!(
                    "{id} is {state:?}; API endpoints {api_ids:?}; status {}",
                    object["status"]
                ))
            }
        },
    )
    .await;
    let object = world.wait_ready(name, READY_TIMEOUT);
    let calls = before.since(&operator.aws_calls());
    eprintln!(
        "endpoint deleted: recreated as {new_vpce} in {took:?}; {} reads, {} writes: {:?}",
        calls.reads, calls.writes, calls.by_operation
    );
    let endpoint = inspect::endpoint(aws, &new_vpce)
        .await
        .expect("new endpoint");
    assert_eq!(endpoint.private_dns_enabled, Some(true));
    let groups: Vec<String> = endpoint
        .groups()
        .iter()
        .filter_map(|g| g.group_id.clone())
        .collect();
    assert_eq!(groups, vec![sg_id.clone()], "the managed group is reused");
    assert_eq!(status_str(&object, "securityGroupId"), sg_id);
    assert_eq!(
        api_policy_decisions(aws, &rest_api_id, &[Some(&new_vpce), Some(&old_vpce)]).await,
        vec![Decision::Allow, Decision::ExplicitDeny]
    );
    assert_ne!(
        status_str(&object, "deploymentId"),
        old_deployment,
        "the policy change was deployed"
    );
    assert_invariant(&world).await;

    world.delete_and_wait(name, GONE_TIMEOUT);
    assert_invariant(&world).await;
}

// ---------------------------------------------------------------------------------------------
// An endpoint the operator created, used by another object
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_an_object_whose_endpoint_others_use_waits_for_them() {
    let world = World::new("inuse").vpc(29).operator().await;
    let aws = &world.aws;

    world.seed("owner").apply();
    let owner = world.wait_ready("owner", READY_TIMEOUT);
    let vpce = status_str(&owner, "vpcEndpointId");
    let owner_api = status_str(&owner, "restApiId");
    world.referencing("user", &vpce).apply();
    let user = world.wait_ready("user", READY_TIMEOUT);
    let user_api = status_str(&user, "restApiId");

    // Deleting the owner removes its API and function, but not the endpoint "user" goes
    // through: the object waits, and says why.
    world.delete("owner");
    let blocked = world.wait_for(
        "owner",
        Duration::from_secs(60),
        "Ready=False reason Deleting naming the API that uses the endpoint",
        |o| {
            condition(o, "Ready").is_some_and(|c| {
                c["reason"] == "Deleting"
                    && c["message"]
                        .as_str()
                        .unwrap_or_default()
                        .contains(&user_api)
            })
        },
    );
    eprintln!(
        "owner waits: {}",
        condition(&blocked, "Ready")
            .map(|c| c["message"].to_string())
            .unwrap_or_default()
    );
    let endpoint = inspect::endpoint(aws, &vpce)
        .await
        .expect("the endpoint is still there");
    assert_eq!(endpoint_state(&endpoint), "available");
    assert!(
        !rest_api_exists(aws, &owner_api).await,
        "the owner's own API is deleted meanwhile"
    );
    let user = world.get("user").expect("user");
    assert!(
        condition(&user, "Ready").is_some_and(|c| c["status"] == "True"),
        "the user of the endpoint stays Ready"
    );

    // Once nobody uses it, the endpoint and its security group go, and the owner with them.
    world.delete_and_wait("user", GONE_TIMEOUT);
    world.wait_gone("owner", GONE_TIMEOUT);
    let left = world.owned_resources().await;
    assert!(left.is_empty(), "left behind: {left:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn switching_to_another_endpoint_keeps_the_old_one_while_others_use_it() {
    let world = World::new("switchuse").vpc(31).operator().await;
    let (aws, vpc) = (&world.aws, world.vpc());

    world.seed("owner").apply();
    let owner = world.wait_ready("owner", READY_TIMEOUT);
    let old_vpce = status_str(&owner, "vpcEndpointId");
    world.referencing("user", &old_vpce).apply();
    world.wait_ready("user", READY_TIMEOUT);

    // The owner moves to an endpoint made elsewhere; "user" still goes through the old one.
    let other_vpce = make::execute_api_endpoint(aws, vpc).await;
    world.patch(
        "owner",
        json!({"endpoint": {"create": null, "id": other_vpce}}),
    );
    let owner = world.wait_ready("owner", READY_TIMEOUT);
    assert_eq!(status_str(&owner, "vpcEndpointId"), other_vpce);
    // Give the cleanup of the old endpoint a few tries: it must keep waiting.
    std::thread::sleep(Duration::from_secs(12));
    let still = inspect::endpoint(aws, &old_vpce)
        .await
        .expect("the old endpoint is still there");
    assert_eq!(
        endpoint_state(&still),
        "available",
        "the endpoint \"user\" goes through is not deleted"
    );
    let user = world.get("user").expect("user");
    assert!(condition(&user, "Ready").is_some_and(|c| c["status"] == "True"));

    // Once "user" is gone, the owner removes its old endpoint and security group.
    world.delete_and_wait("user", GONE_TIMEOUT);
    poll::until_async(
        "the old endpoint and group removed",
        Duration::from_secs(60),
        Duration::from_millis(500),
        async || {
            let owned = world.owned_resources().await;
            let kinds: Vec<&str> = owned.iter().map(|(kind, _)| kind.as_str()).collect();
            if !kinds.contains(&"vpc-endpoint") && !kinds.contains(&"security-group") {
                Ok(())
            } else {
                Err(format!("{owned:?}"))
            }
        },
    )
    .await;
    world.delete_and_wait("owner", GONE_TIMEOUT);
    let left = world.owned_resources().await;
    assert!(left.is_empty(), "left behind: {left:?}");
}

// ---------------------------------------------------------------------------------------------
// Make-before-break: what the stage serves never uses something gone, forbidden or detached
// ---------------------------------------------------------------------------------------------

/// Which stage a sampler looks at.
#[derive(Clone)]
enum Target {
    /// This API's stage.
    Stage { rest_api_id: String, stage: String },
    /// The API and stage the object's `status.url` names, read at each sample: what a client that
    /// follows the status calls.
    StatusUrl { namespace: String, name: String },
}

/// (REST API ID, stage) of an invoke URL, `https://<api-id>[-<vpce-id>].execute-api.<region>
/// .amazonaws.com/<stage>/` (see `status::invoke_urls`).
fn api_and_stage_of_url(url: &str) -> Option<(String, String)> {
    let rest = url.strip_prefix("https://")?;
    let (host, path) = rest.split_once('/')?;
    let api = host.split(['.', '-']).next()?;
    let stage = path.split('/').next()?;
    (!api.is_empty() && !stage.is_empty()).then(|| (api.to_string(), stage.to_string()))
}

impl Target {
    /// (REST API ID, stage) now, and a token that changes when the target does (`status.url`).
    async fn resolve(&self) -> Result<(String, String, String), String> {
        match self {
            Target::Stage { rest_api_id, stage } => {
                Ok((rest_api_id.clone(), stage.clone(), String::new()))
            }
            Target::StatusUrl { namespace, name } => {
                // kubectl blocks: let the runtime move its other tasks off this worker meanwhile.
                let object = tokio::task::block_in_place(|| get_object(namespace, name))
                    .ok_or("the object is gone")?;
                let url = object["status"]["url"].as_str().unwrap_or_default();
                let (api, stage) =
                    api_and_stage_of_url(url).ok_or(format!("status.url is {url:?}"))?;
                Ok((api, stage, url.to_string()))
            }
        }
    }
}

/// What one sample checks of what the stage serves.
#[derive(Clone, Copy)]
enum Check {
    /// The function its deployment integrates exists and lets the API invoke it.
    Function,
    /// Every endpoint its deployment's resource policy admits exists, is available and is
    /// attached to the API (its `endpointConfiguration.vpcEndpointIds`); at least one is
    /// admitted, and nothing else.
    Endpoints,
}

/// What a deployment was made from, recorded when the sampler first sees the stage serve it:
/// the operator updates the integration and the policy, then deploys, so what the API has at
/// that moment is what the deployment holds (moto's deployments keep no snapshot to read back).
enum Served {
    Function(String),
    /// The endpoints its policy admits; Err: the policy admits requests from anywhere.
    Endpoints(Result<BTreeSet<String>, String>),
}

/// The `aws:SourceVpce` values a policy names, each admitted by the resource policy or not.
fn admitted_endpoints(live: &Value, prefix: &str) -> Result<BTreeSet<String>, String> {
    let mut named = BTreeSet::new();
    for statement in live["Statement"].as_array().into_iter().flatten() {
        for operator in statement["Condition"].as_object().into_iter().flatten() {
            match &operator.1["aws:SourceVpce"] {
                Value::String(id) => {
                    named.insert(id.clone());
                }
                Value::Array(ids) => {
                    named.extend(ids.iter().filter_map(|v| v.as_str().map(String::from)))
                }
                _ => {}
            }
        }
    }
    let resource = format!("{prefix}prod/GET/");
    let allows = |vpce: Option<&str>| {
        evaluate_resource_policy(live, prefix, policy::INVOKE_ACTION, &resource, vpce)
            == Decision::Allow
    };
    if allows(None) {
        return Err(format!(
            "the policy admits requests from outside any endpoint: {live}"
        ));
    }
    Ok(named.into_iter().filter(|id| allows(Some(id))).collect())
}

/// What the API has now that a deployment made now would hold.
async fn served_now(aws: &RegionClients, rest_api_id: &str, check: Check) -> Served {
    match check {
        Check::Function => {
            let uris = integration_uris(aws, rest_api_id).await;
            let function = uris
                .iter()
                .filter_map(|u| u.split("/functions/").nth(1))
                .filter_map(|f| f.strip_suffix("/invocations"))
                .next()
                .unwrap_or_default()
                .to_string();
            Served::Function(function)
        }
        Check::Endpoints => {
            let live = api_policy(aws, rest_api_id).await;
            let prefix = policy::execute_api_arn_prefix("us-east-1", &aws.account_id, rest_api_id);
            Served::Endpoints(admitted_endpoints(&live, &prefix))
        }
    }
}

/// Whether what a deployment uses is still there: Err(why) when not.
async fn still_there(
    aws: &RegionClients,
    rest_api_id: &str,
    served: &Served,
) -> Result<(), String> {
    match served {
        Served::Function(function) => {
            if !function_exists(aws, function).await {
                return Err(format!("calls {function}, which is gone"));
            }
            if !permits_api(&lambda_statements(aws, function).await, aws, rest_api_id) {
                return Err(format!("calls {function}, which does not permit the API"));
            }
            Ok(())
        }
        Served::Endpoints(admitted) => {
            let admitted = admitted.as_ref().map_err(Clone::clone)?;
            if admitted.is_empty() {
                return Err("its policy admits no endpoint".into());
            }
            let attached = api_vpc_endpoint_ids(aws, rest_api_id).await;
            for id in admitted {
                let state = inspect::endpoint(aws, id).await.map(|e| endpoint_state(&e));
                if state.as_deref() != Some("available") {
                    return Err(format!("its policy admits {id}, which is {state:?}"));
                }
                if !attached.contains(id) {
                    return Err(format!(
                        "its policy admits {id}, which is not attached to the API ({attached:?})"
                    ));
                }
            }
            Ok(())
        }
    }
}

/// Samples, every 300 ms, what the target stage serves (its deployment) and checks it.
struct StageSampler {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    task: tokio::task::JoinHandle<(u64, Vec<String>)>,
}

impl StageSampler {
    fn start(aws: std::sync::Arc<RegionClients>, target: Target, check: Check) -> Self {
        use std::sync::atomic::{AtomicBool, Ordering};
        let stop = std::sync::Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        let task = tokio::spawn(async move {
            // By (API, deployment): what it was made from.
            let mut served: std::collections::HashMap<(String, String), Served> =
                Default::default();
            let (mut samples, mut bad) = (0u64, Vec::new());
            while !stopped.load(Ordering::SeqCst) {
                let verdict = Self::sample(&aws, &target, check, &mut served).await;
                tokio::time::sleep(Duration::from_millis(300)).await;
                match verdict {
                    // The target moved during the look (status.url changed): look again.
                    None => continue,
                    Some(Ok(())) => {}
                    Some(Err(why)) => bad.push(why),
                }
                samples += 1;
            }
            (samples, bad)
        });
        Self { stop, task }
    }

    /// One look; None when the target changed during it.
    async fn sample(
        aws: &RegionClients,
        target: &Target,
        check: Check,
        served: &mut std::collections::HashMap<(String, String), Served>,
    ) -> Option<Result<(), String>> {
        let (rest_api_id, stage, before) = match target.resolve().await {
            Ok(resolved) => resolved,
            Err(why) => return Some(Err(why)),
        };
        let verdict = match stage_deployment(aws, &rest_api_id, &stage).await {
            None => Err(format!(
                "stage {stage} of {rest_api_id} serves no deployment"
            )),
            Some(deployment) => {
                let key = (rest_api_id.clone(), deployment.clone());
                if !served.contains_key(&key) {
                    served.insert(key.clone(), served_now(aws, &rest_api_id, check).await);
                }
                still_there(aws, &rest_api_id, &served[&key])
                    .await
                    .map_err(|why| {
                        format!("deployment {deployment} of {rest_api_id}/{stage} {why}")
                    })
            }
        };
        if verdict.is_err() && target.resolve().await.map(|t| t.2).as_ref() != Ok(&before) {
            return None;
        }
        Some(verdict)
    }

    /// Stop; print and check the figures: sampled throughout, never bad.
    async fn finish(self, what: &str) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        let (samples, bad) = self.task.await.expect("sampler");
        eprintln!(
            "make-before-break {what}: {samples} samples, {} bad",
            bad.len()
        );
        assert!(samples >= 10, "{what}: sampled throughout ({samples})");
        assert!(bad.is_empty(), "{what}: bad samples: {bad:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backend_switches_never_leave_the_stage_calling_a_missing_or_forbidden_function() {
    let world = World::new("mbb").vpc(33).operator().await;
    let aws = &world.aws;
    let name = "orders";
    world.seed(name).private_dns(false).apply();
    let object = world.wait_ready(name, READY_TIMEOUT);
    let rest_api_id = status_str(&object, "restApiId");
    let owned_function = status_str(&object, "functionArn");
    let existing = create_existing_function(aws).await;
    // A client in the VPC calls the API throughout (the endpoint alias URL: private DNS is off).
    let vpce = status_str(&object, "vpcEndpointId");
    let mut served = Availability::start(
        world.vpc(),
        &format!("https://{rest_api_id}-{vpce}.execute-api.us-east-1.amazonaws.com/prod/"),
    );

    let sampler = StageSampler::start(
        aws.clone(),
        Target::Stage {
            rest_api_id: rest_api_id.clone(),
            stage: "prod".into(),
        },
        Check::Function,
    );

    // 1. A mistyped functionArn changes nothing that works: the function, its permission and
    //    the deployment stay; the object says why it is not Ready.
    let deployment = status_str(&object, "deploymentId");
    let typo = format!("{existing}-typo");
    let typo_from = netns::epoch_now();
    world.patch(
        name,
        json!({"backend": {"builtin": null, "architecture": null, "functionArn": typo}}),
    );
    let object = wait_refused(&world, name, "ReferenceNotFound", "functionArn");
    std::thread::sleep(Duration::from_secs(3));
    assert!(
        function_exists(aws, &owned_function).await,
        "the working function stays"
    );
    assert!(permits_api(
        &lambda_statements(aws, &owned_function).await,
        aws,
        &rest_api_id
    ));
    assert_eq!(status_str(&object, "functionArn"), owned_function);
    assert_eq!(status_str(&object, "deploymentId"), deployment);
    assert_eq!(
        integration_uris(aws, &rest_api_id).await,
        BTreeSet::from([invocation_uri(&owned_function)])
    );
    served.record("functionArn mistyped", typo_from);

    // 2. Fixed: builtin → functionArn. The owned function goes only after the stage serves the
    //    deployment that calls the referenced one.
    let (object, _) = served.change(
        &world,
        name,
        "backend builtin→functionArn (make-before-break)",
        json!({"backend": {"functionArn": existing}}),
    );
    assert_eq!(status_str(&object, "functionArn"), existing);
    assert!(
        object["status"]["retiring"].is_null(),
        "nothing left to release: {}",
        object["status"]
    );
    assert!(!function_exists(aws, &owned_function).await);

    // 3. functionArn → builtin: our statement stays on the referenced function until the stage
    //    calls the new one.
    let (object, _) = served.change(
        &world,
        name,
        "backend functionArn→builtin (make-before-break)",
        json!({"backend": {"functionArn": null, "builtin": {"message": "back"}, "architecture": "x86_64"}}),
    );
    let new_function = status_str(&object, "functionArn");
    assert_ne!(new_function, existing);
    assert!(lambda_statements(aws, &existing).await.is_empty());
    assert_invariant(&world).await;

    sampler.finish("backend switches").await;
    served.assert_no_failure_but(&[]);

    world.delete_and_wait(name, GONE_TIMEOUT);
    let left = assert_invariant(&world).await;
    assert!(left.is_empty(), "left behind: {left:?}");
    aws.lambda
        .delete_function()
        .function_name(&existing)
        .send()
        .await
        .expect("DeleteFunction");
}

/// Wait until an endpoint made by the test is available, as a user would before naming it.
async fn wait_available(aws: &RegionClients, id: &str) {
    poll::timed_async(
        &format!("endpoint {id} available"),
        Duration::from_secs(60),
        POLL,
        async || match inspect::endpoint(aws, id).await.map(|e| endpoint_state(&e)) {
            Some(state) if state == "available" => Ok(()),
            other => Err(format!("{other:?}")),
        },
    )
    .await;
}

/// Extra time each AWS call of the operator takes (through the fault proxy): about what AWS's
/// calls take more than moto's, so the gap between two calls of one reconcile (e.g. releasing
/// something and writing the status that stops naming it) is as wide as in AWS, wide enough
/// for a sampler to see what a client would see in it.
const AWS_LATENCY_MS: u64 = 150;

/// The world's operator, whose AWS calls take [`AWS_LATENCY_MS`] longer: through the proxy
/// returned.
fn operator_at_aws_latency(world: &mut World) -> faults::FaultProxy {
    let proxy = faults::FaultProxy::start(15);
    proxy.set_latency(AWS_LATENCY_MS);
    let operator = proxy.start_operator(&world.namespace, &world.cluster, &[]);
    world.set_operator(operator);
    proxy
}

/// Wait until a switch has settled: Ready, nothing left in `status.retiring`, and the API
/// attached to exactly the endpoints the spec names. Returns the object.
async fn wait_switched(world: &World, name: &str, rest_api_id: &str) -> Value {
    let aws = &world.aws;
    let (object, took) = poll::timed_async(
        "the switch settled (Ready, status.retiring empty, only the spec's endpoints attached)",
        Duration::from_secs(60),
        POLL,
        async || {
            let object = world.get(name).ok_or("object gone")?;
            let mut named: BTreeSet<String> = object["spec"]["additionalVpcEndpointIds"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|v| v.as_str().map(String::from))
                .collect();
            named.extend(object["status"]["vpcEndpointId"].as_str().map(String::from));
            let attached = api_vpc_endpoint_ids(aws, rest_api_id).await;
            if is_ready(&object) && object["status"]["retiring"].is_null() && attached == named {
                Ok(object)
            } else {
                Err(format!(
                    "attached {attached:?}, spec names {named:?}; status {}",
                    object["status"]
                ))
            }
        },
    )
    .await;
    eprintln!(
        "{}/{name}: switch settled {took:?} after Ready",
        world.namespace
    );
    object
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endpoint_switches_never_leave_the_stage_admitting_a_missing_or_detached_endpoint() {
    let world = World::new("mbb-vpce").vpc(34).operator().await;
    let (aws, vpc) = (&world.aws, world.vpc());
    let name = "orders";
    let manifest = world.seed(name).private_dns(false);
    manifest.apply();
    let object = world.wait_ready(name, READY_TIMEOUT);
    let rest_api_id = status_str(&object, "restApiId");
    let first_owned = status_str(&object, "vpcEndpointId");
    let first_group = status_str(&object, "securityGroupId");
    let shared = make::execute_api_endpoint(aws, vpc).await;

    let sampler = StageSampler::start(
        aws.clone(),
        Target::Stage {
            rest_api_id: rest_api_id.clone(),
            stage: "prod".into(),
        },
        Check::Endpoints,
    );
    // endpoint.create → endpoint.id: the owned endpoint goes only after the stage serves a
    // policy that admits the referenced one alone (the sampler's check).
    change(
        &world,
        name,
        "endpoint create→id (make-before-break)",
        json!({"endpoint": {"create": null, "id": shared}}),
    );
    let object = wait_switched(&world, name, &rest_api_id).await;
    assert_eq!(status_str(&object, "vpcEndpointId"), shared);
    owned_endpoint_released(&world, name, &first_owned, &first_group).await;

    // endpoint.id → endpoint.create: a new owned endpoint; the referenced one is detached once
    // the stage no longer admits it, and never deleted.
    change(
        &world,
        name,
        "endpoint id→create (make-before-break)",
        json!({"endpoint": {"id": null, "create": manifest.spec_json()["endpoint"]["create"]}}),
    );
    let object = wait_switched(&world, name, &rest_api_id).await;
    sampler.finish("endpoint create→id→create").await;

    let second_owned = status_str(&object, "vpcEndpointId");
    assert!(
        second_owned != first_owned && second_owned != shared,
        "a new endpoint: {second_owned}"
    );
    assert_eq!(
        api_vpc_endpoint_ids(aws, &rest_api_id).await,
        BTreeSet::from([second_owned.clone()])
    );
    assert_eq!(
        endpoint_state(&inspect::endpoint(aws, &shared).await.expect("shared")),
        "available",
        "the referenced endpoint is never deleted"
    );
    assert_invariant(&world).await;

    world.delete_and_wait(name, GONE_TIMEOUT);
    let left = assert_invariant(&world).await;
    assert!(left.is_empty(), "left behind: {left:?}");
    delete_endpoint(aws, &shared).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removed_additional_endpoint_stays_attached_until_the_stage_no_longer_admits_it() {
    let world = World::new("mbb-extra").vpc(35).operator().await;
    let (aws, vpc) = (&world.aws, world.vpc());
    let name = "orders";
    world.seed(name).private_dns(false).apply();
    let object = world.wait_ready(name, READY_TIMEOUT);
    let rest_api_id = status_str(&object, "restApiId");
    let owned = status_str(&object, "vpcEndpointId");
    let extra = make::execute_api_endpoint(aws, vpc).await;
    // The operator does not wait for an additional endpoint to be available (the spec's main
    // endpoint still serves meanwhile); a user names one that is.
    wait_available(aws, &extra).await;

    let sampler = StageSampler::start(
        aws.clone(),
        Target::Stage {
            rest_api_id: rest_api_id.clone(),
            stage: "prod".into(),
        },
        Check::Endpoints,
    );
    // Added: attached before a deployment admits it.
    change(
        &world,
        name,
        "additionalVpcEndpointIds added",
        json!({"additionalVpcEndpointIds": [extra]}),
    );
    wait_switched(&world, name, &rest_api_id).await;
    assert_eq!(
        api_vpc_endpoint_ids(aws, &rest_api_id).await,
        BTreeSet::from([owned.clone(), extra.clone()])
    );
    // Removed: detached only after a deployment that no longer admits it serves.
    change(
        &world,
        name,
        "additionalVpcEndpointIds removed (make-before-break)",
        json!({"additionalVpcEndpointIds": null}),
    );
    wait_switched(&world, name, &rest_api_id).await;
    sampler
        .finish("additionalVpcEndpointIds added and removed")
        .await;

    assert_eq!(
        api_vpc_endpoint_ids(aws, &rest_api_id).await,
        BTreeSet::from([owned.clone()])
    );
    assert_eq!(
        api_policy_decisions(aws, &rest_api_id, &[Some(&owned), Some(&extra)]).await,
        vec![Decision::Allow, Decision::ExplicitDeny]
    );
    assert_eq!(
        endpoint_state(&inspect::endpoint(aws, &extra).await.expect("extra")),
        "available",
        "an additional endpoint is not owned: never deleted"
    );
    assert_invariant(&world).await;

    world.delete_and_wait(name, GONE_TIMEOUT);
    let left = assert_invariant(&world).await;
    assert!(left.is_empty(), "left behind: {left:?}");
    delete_endpoint(aws, &extra).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stage_renames_never_leave_the_status_url_without_a_stage() {
    let mut world = World::new("mbb-stage").vpc(36).build().await;
    let _proxy = operator_at_aws_latency(&mut world);
    let aws = &world.aws;
    let name = "orders";
    world.seed(name).private_dns(false).apply();
    let object = world.wait_ready(name, READY_TIMEOUT);
    let rest_api_id = status_str(&object, "restApiId");

    let sampler = StageSampler::start(
        aws.clone(),
        Target::StatusUrl {
            namespace: world.namespace.clone(),
            name: name.into(),
        },
        Check::Function,
    );
    for stage in ["live", "v2", "prod"] {
        let (object, _) = change(
            &world,
            name,
            &format!("stageName → {stage} (make-before-break)"),
            json!({"stageName": stage}),
        );
        assert!(
            status_str(&object, "url").ends_with(&format!("/{stage}/")),
            "{}",
            object["status"]
        );
        // The old stage goes: the stage named in the spec is the API's only one.
        let (_, took) = poll::timed_async(
            "only the new stage left",
            Duration::from_secs(30),
            POLL,
            async || {
                let object = world.get(name).ok_or("object gone")?;
                let now = stages(aws, &rest_api_id).await;
                let deployment = object["status"]["deploymentId"]
                    .as_str()
                    .unwrap_or_default();
                if now == vec![(stage.to_string(), deployment.to_string())] {
                    Ok(())
                } else {
                    Err(format!("stages {now:?}, status {}", object["status"]))
                }
            },
        )
        .await;
        eprintln!("stage renamed to {stage}: the old stage gone {took:?} after Ready");
    }
    sampler.finish("stage renames prod→live→v2→prod").await;
    assert_invariant(&world).await;

    world.delete_and_wait(name, GONE_TIMEOUT);
    let left = assert_invariant(&world).await;
    assert!(left.is_empty(), "left behind: {left:?}");
}

/// A private REST API made outside the operator (e.g. by CDK, not deployed yet), reachable
/// through `vpce`.
async fn create_private_api(aws: &RegionClients, vpce: &str) -> String {
    aws.apigateway
        .create_rest_api()
        .name(unique("made-elsewhere"))
        .endpoint_configuration(
            aws_sdk_apigateway::types::EndpointConfiguration::builder()
                .types(aws_sdk_apigateway::types::EndpointType::Private)
                .vpc_endpoint_ids(vpce)
                .build(),
        )
        .policy(policy::desired_policy(&[vpce.to_string()]).to_string())
        .send()
        .await
        .expect("CreateRestApi")
        .id
        .expect("api id")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn adopting_a_rest_api_keeps_the_status_url_serving_until_the_adopted_one_does() {
    let mut world = World::new("mbb-adopt").vpc(37).build().await;
    let _proxy = operator_at_aws_latency(&mut world);
    let aws = &world.aws;
    let name = "orders";
    world.seed(name).private_dns(false).apply();
    let object = world.wait_ready(name, READY_TIMEOUT);
    let mut previous_api = status_str(&object, "restApiId");
    let vpce = status_str(&object, "vpcEndpointId");
    let function = status_str(&object, "functionArn");

    let sampler = StageSampler::start(
        aws.clone(),
        Target::StatusUrl {
            namespace: world.namespace.clone(),
            name: name.into(),
        },
        Check::Function,
    );
    // The operator's own API → one made elsewhere → another (spec.adopt can be set or changed
    // at any time: no CEL rule makes it immutable). Each time the API status.url named before
    // goes only after the adopted one serves.
    for step in ["own API → adopted", "adopted → another adopted"] {
        let adopted = create_private_api(aws, &vpce).await;
        change(
            &world,
            name,
            &format!("spec.adopt.restApiId: {step} (make-before-break)"),
            json!({"adopt": {"restApiId": adopted}}),
        );
        let (object, took) = poll::timed_async(
            "the adopted API in status, the previous one released",
            Duration::from_secs(60),
            POLL,
            async || {
                let object = world.get(name).ok_or("object gone")?;
                let released = !rest_api_exists(aws, &previous_api).await;
                if object["status"]["restApiId"] == adopted.as_str()
                    && object["status"]["retiring"].is_null()
                    && released
                {
                    Ok(object)
                } else {
                    Err(format!(
                        "previous API released: {released}; status {}",
                        object["status"]
                    ))
                }
            },
        )
        .await;
        eprintln!("spec.adopt {step}: the previous REST API released {took:?} after Ready");
        assert_eq!(
            api_and_stage_of_url(&status_str(&object, "url")),
            Some((adopted.clone(), "prod".to_string()))
        );
        assert_eq!(
            integration_uris(aws, &adopted).await,
            BTreeSet::from([invocation_uri(&function)])
        );
        let statements = lambda_statements(aws, &function).await;
        assert!(
            permits_only(&statements, aws, &adopted),
            "only the adopted API may invoke the function: {statements:?}"
        );
        assert!(
            object["status"]["adopted"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|a| a["kind"] == "RestApi" && a["id"] == adopted.as_str()),
            "{}",
            object["status"]
        );
        assert_invariant(&world).await;
        previous_api = adopted;
    }
    sampler
        .finish("spec.adopt taking over a REST API, twice")
        .await;

    world.delete_and_wait(name, GONE_TIMEOUT);
    assert!(
        !rest_api_exists(aws, &previous_api).await,
        "deletionPolicy Delete applies to the adopted API"
    );
    let left = assert_invariant(&world).await;
    assert!(left.is_empty(), "left behind: {left:?}");
}

// ---------------------------------------------------------------------------------------------
// References that appear late
// ---------------------------------------------------------------------------------------------

/// Apply `spec`, see it refused with ReferenceNotFound naming `field`, make the reference with
/// `make`, and wait for Ready with no spec change; print how long after the reference appeared
/// it became Ready. Returns the object.
fn ready_once_the_reference_appears(
    world: &World,
    manifest: &PrivateApiManifest,
    field: &str,
    make: impl FnOnce(),
) -> Value {
    let name = manifest.name();
    manifest.apply();
    let refused = wait_refused(world, name, "ReferenceNotFound", field);
    assert!(
        refused["status"]["functionArn"].is_null(),
        "no function is made without it: {}",
        refused["status"]
    );
    let generation = refused["metadata"]["generation"].clone();
    make();
    let appeared = Instant::now();
    let object = world.wait_ready(name, READY_TIMEOUT);
    let took = appeared.elapsed();
    assert_eq!(
        object["metadata"]["generation"], generation,
        "Ready without a spec change"
    );
    eprintln!("late reference {field}: Ready {took:?} after it appeared");
    object
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn references_that_appear_late_become_ready_on_their_own() {
    let mut world = World::new("late").vpc(38).build().await;
    let vpce = make::execute_api_endpoint(&world.aws, world.vpc()).await;
    // Available first: its own transition would be one more status change, and each one a
    // reconcile that fails again and lengthens the backoff being measured.
    wait_available(&world.aws, &vpce).await;
    world.start_operator();
    let aws = &world.aws;

    // An execution role the same sync makes (IAM is eventually consistent as well): Lambda
    // answers that it cannot be assumed until it exists.
    let role_name = unique("papi-late-role");
    let role_arn = format!("arn:aws:iam::{}:role/{role_name}", aws.account_id);
    let object = ready_once_the_reference_appears(
        &world,
        &world
            .referencing("late-role", &vpce)
            .execution_role_arn(&role_arn),
        "spec.backend.executionRoleArn",
        || {
            make::boto3(&format!(
                "iam.create_role(RoleName='{role_name}', AssumeRolePolicyDocument=json.dumps(\
                 {{'Version': '2012-10-17', 'Statement': [{{'Effect': 'Allow', 'Principal': \
                 {{'Service': 'lambda.amazonaws.com'}}, 'Action': 'sts:AssumeRole'}}]}}))"
            ))
        },
    );
    let config = function_configuration(aws, &status_str(&object, "functionArn")).await;
    assert_eq!(config.role.as_deref(), Some(role_arn.as_str()));

    // A deployment package not uploaded yet.
    let bucket = std::env::var("PAPI_TEST_CODE_BUCKET").expect("PAPI_TEST_CODE_BUCKET (moto.env)");
    let seeded = std::env::var("PAPI_TEST_CODE_KEY").expect("PAPI_TEST_CODE_KEY (moto.env)");
    let key = format!("late/{}.zip", unique("code"));
    let object = ready_once_the_reference_appears(
        &world,
        &world.referencing("late-code", &vpce).code(CodeBackend {
            s3_bucket: bucket.clone(),
            s3_key: key.clone(),
            s3_object_version: None,
            runtime: Runtime::ProvidedAl2023,
            handler: "bootstrap".into(),
        }),
        "spec.backend.code",
        || {
            make::boto3(&format!(
                "s3.copy_object(Bucket='{bucket}', Key='{key}', \
                 CopySource={{'Bucket': '{bucket}', 'Key': '{seeded}'}})"
            ))
        },
    );
    let config = function_configuration(aws, &status_str(&object, "functionArn")).await;
    assert!(
        config
            .description
            .as_deref()
            .is_some_and(|d| d.contains(&key)),
        "{:?}",
        config.description
    );
    assert_invariant(&world).await;

    for name in ["late-role", "late-code"] {
        world.delete_and_wait(name, GONE_TIMEOUT);
    }
    let left = assert_invariant(&world).await;
    assert!(left.is_empty(), "left behind: {left:?}");
    delete_endpoint(aws, &vpce).await;
}
