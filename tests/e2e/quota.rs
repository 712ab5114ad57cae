//! AWS's control-plane quotas: the operator against a test bed that enforces them (the fault
//! proxy's `aws` preset: the published quotas, scaled, with each service's exact throttling
//! answer), the `WaitingForQuota` report, and the periodic checks on shared listings.
//!
//! Every operator here runs as a separate process with its own namespace and cluster name.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use crate::support::faults::FaultProxy;
use crate::support::runtime::Metrics;
use crate::support::{
    Operator, PrivateApiManifest, TestVpc, World, apply, condition, create_namespace,
    delete_object, get_object, inspect, install_crd, make_vpc, patch_spec, poll, unique, wait_for,
    wait_gone, wait_ready,
};
use serde_json::json;

const READY: Duration = Duration::from_secs(300);

/// The quotas at 10×: tight enough that a burst of creates exceeds them.
const SCALE: f64 = 10.0;

fn manifest(namespace: &str, name: &str, vpc: &TestVpc) -> PrivateApiManifest {
    // One VPC has room for one endpoint with private DNS for execute-api.
    PrivateApiManifest::seed(namespace, name, vpc).private_dns(false)
}

fn delete_all(namespace: &str, names: &[String]) {
    let objects: Vec<(String, String)> = names
        .iter()
        .map(|name| (namespace.to_string(), name.clone()))
        .collect();
    delete_objects(&objects);
}

/// Delete every (namespace, name) at once, then wait until all are gone.
fn delete_objects(objects: &[(String, String)]) {
    for (namespace, name) in objects {
        delete_object(namespace, name);
    }
    for (namespace, name) in objects {
        wait_gone(namespace, name, READY);
    }
}

fn throttled_by_quota(proxy: &FaultProxy) -> u64 {
    proxy.stats()["throttled_by_quota_total"]
        .as_u64()
        .unwrap_or(0)
}

/// The operator's own count of throttling answers.
fn throttled_seen(operator: &Operator) -> f64 {
    operator
        .metrics()
        .find("privateapi_aws_calls_total", &[("outcome", "throttled")])
        .iter()
        .map(|s| s.value)
        .fold(0.0, |a, b| a + b)
}

/// Six objects created at once through a fault proxy enforcing the published quotas (×10), by
/// an operator with or without its pacer: how many calls the quotas throttled (creates and
/// deletes), and how many throttling answers the operator reports it saw.
async fn burst_under_quotas(pacing: bool, octet: u8) -> (u64, f64) {
    let mut world = World::new(if pacing {
        "quota-paced"
    } else {
        "quota-unpaced"
    })
    .cluster_prefix("qc")
    .vpc(octet)
    .build()
    .await;
    let proxy = FaultProxy::start(7);
    proxy.control(
        "PUT",
        "/__faults/quotas",
        Some(&json!({"preset": "aws", "scale": SCALE})),
    );
    let scale = SCALE.to_string();
    let pacing_flag = format!("--aws-pacing={pacing}");
    world.set_operator(proxy.start_operator(
        &world.namespace,
        &world.cluster,
        &[&pacing_flag, "--aws-quota-scale", &scale],
    ));
    let names: Vec<String> = (0..6).map(|i| format!("burst-{i}")).collect();
    let started = Instant::now();
    for name in &names {
        manifest(&world.namespace, name, world.vpc()).apply();
    }
    for name in &names {
        world.wait_ready(name, READY);
    }
    let ready_after = started.elapsed();
    let throttled_at_create = throttled_by_quota(&proxy);
    let seen = throttled_seen(world.operator());
    delete_all(&world.namespace, &names);
    let throttled_total = throttled_by_quota(&proxy);
    eprintln!(
        "pacing={pacing}: 6 objects Ready in {:.1} s; throttled by the quotas: {throttled_at_create} during the creates, {throttled_total} with the deletes; operator saw {seen}",
        ready_after.as_secs_f64()
    );
    drop(world);
    drop(proxy);
    (throttled_total, seen)
}

/// Without the pacer the operator is throttled by the quotas (and still converges, by backing
/// off): the quotas of the fault proxy bite, so the paced run below means something.
#[tokio::test]
async fn quotas_throttle_an_unpaced_operator() {
    crate::support::require_testbed();
    let (throttled, seen) = burst_under_quotas(false, 91).await;
    assert!(
        throttled > 0 && seen > 0.0,
        "without pacing the quotas must bite: throttled {throttled}, operator saw {seen}"
    );
}

/// With the pacer, the same burst is never throttled, not once.
#[tokio::test]
async fn quotas_never_throttle_a_paced_operator() {
    crate::support::require_testbed();
    let (throttled, seen) = burst_under_quotas(true, 92).await;
    assert_eq!(throttled, 0, "with pacing, no throttling answer at all");
    assert_eq!(seen, 0.0);
}

/// A call that waits for quota longer than the report threshold says so on its object: `Ready`
/// keeps its status (False for a new object, True for one already Ready) with reason
/// `WaitingForQuota`, the operation and an estimate; the next status write replaces it.
#[tokio::test]
async fn a_long_wait_for_quota_is_reported_and_ready_keeps_its_value() {
    // CreateDeployment: 1 per 1000 s, ×50 (the tests' scale) = one every ~20.6 s; the first is
    // free (a full bucket).
    let world = World::new("quota-wait")
        .cluster_prefix("qw")
        .vpc(93)
        .operator_with(&[
            "--aws-quota",
            "API Gateway:CreateDeployment=1/1000s",
            "--aws-quota-share",
            "1",
            "--quota-wait-report-seconds",
            "1",
        ])
        .await;
    let (namespace, vpc, operator) = (&world.namespace, world.vpc(), world.operator());
    manifest(namespace, "first", vpc).apply();
    wait_ready(namespace, "first", READY);

    // A new object waits for its deployment: Ready=False, WaitingForQuota.
    manifest(namespace, "second", vpc).apply();
    let waiting = wait_for(
        namespace,
        "second",
        Duration::from_secs(60),
        "Ready=False with reason WaitingForQuota",
        |o| {
            condition(o, "Ready")
                .is_some_and(|c| c["status"] == "False" && c["reason"] == "WaitingForQuota")
        },
    );
    let message = condition(&waiting, "Ready").expect("Ready")["message"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        message.contains("API Gateway CreateDeployment quota") && message.contains("about"),
        "{message}"
    );
    let second = wait_ready(namespace, "second", READY);
    assert_eq!(
        condition(&second, "Ready").expect("Ready")["reason"],
        "Available"
    );

    // An object already Ready whose spec change needs a deployment while the bucket is empty:
    // Ready stays True, and says why nothing moves.
    let before = get_object(namespace, "first").expect("first");
    let ready_since = condition(&before, "Ready").expect("Ready")["lastTransitionTime"].clone();
    patch_spec(
        namespace,
        "first",
        json!({"additionalVpcEndpointIds": ["vpce-0aaaaaaaaaaaaaaa1"]}),
    );
    let waiting = wait_for(
        namespace,
        "first",
        Duration::from_secs(60),
        "Ready=True with reason WaitingForQuota",
        |o| {
            condition(o, "Ready")
                .is_some_and(|c| c["status"] == "True" && c["reason"] == "WaitingForQuota")
        },
    );
    assert_eq!(
        condition(&waiting, "Ready").expect("Ready")["lastTransitionTime"],
        ready_since,
        "Ready did not transition"
    );
    let done = wait_ready(namespace, "first", READY);
    assert_eq!(
        condition(&done, "Ready").expect("Ready")["reason"],
        "Available"
    );
    let metrics = operator.metrics();
    let waited = metrics
        .value(
            "privateapi_aws_quota_wait_seconds_total",
            &[
                ("service", "API Gateway"),
                ("operation", "CreateDeployment"),
            ],
        )
        .unwrap_or(0.0);
    assert!(waited > 10.0, "CreateDeployment waited {waited} s in all");
    delete_all(namespace, &["first".to_string(), "second".to_string()]);
}

fn counter(metrics: &Metrics, name: &str, labels: &[(&str, &str)]) -> f64 {
    metrics.find(name, labels).iter().map(|s| s.value).sum()
}

fn calls(metrics: &Metrics, service: &str, operation: &str) -> f64 {
    counter(
        metrics,
        "privateapi_aws_calls_total",
        &[("service", service), ("operation", operation)],
    )
}

/// Periodic checks of objects in sync read the shared listings: per object only the stage (and
/// the routes at deep turns); no per-object GetRestApi, GetFunction or DescribeVpcEndpoints, no
/// write. A change to the routes in AWS is still found, at the next deep turn.
#[tokio::test]
async fn periodic_checks_use_shared_listings_and_still_find_drift() {
    let resync = 6u64;
    let world = World::new("quota-steady")
        .cluster_prefix("qs")
        .vpc(94)
        .operator_with(&[
            "--resync-seconds",
            &resync.to_string(),
            "--deep-resync-every",
            "3",
        ])
        .await;
    let (namespace, aws, vpc, operator) =
        (&world.namespace, &world.aws, world.vpc(), world.operator());
    let names: Vec<String> = (0..4).map(|i| format!("steady-{i}")).collect();
    for name in &names {
        manifest(namespace, name, vpc).apply();
    }
    let mut api_ids = Vec::new();
    for name in &names {
        let object = wait_ready(namespace, name, READY);
        api_ids.push(
            object["status"]["restApiId"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
        );
    }
    // Let every object pass its first check (the listings start), then measure three periods.
    std::thread::sleep(Duration::from_secs(2 * resync));
    let before = operator.metrics();
    let window = Instant::now();
    std::thread::sleep(Duration::from_secs(3 * resync + 1));
    let after = operator.metrics();
    let elapsed = window.elapsed().as_secs_f64();
    let delta = |f: &dyn Fn(&Metrics) -> f64| f(&after) - f(&before);
    let checks = delta(&|m| counter(m, "privateapi_resyncs_total", &[]));
    let deep = delta(&|m| counter(m, "privateapi_resyncs_total", &[("outcome", "deep")]));
    let drift = delta(&|m| counter(m, "privateapi_resyncs_total", &[("outcome", "drift")]));
    let writes = delta(&|m| counter(m, "privateapi_aws_calls_total", &[("kind", "write")]));
    let op = |service: &'static str, operation: &'static str| {
        delta(&move |m: &Metrics| calls(m, service, operation))
    };
    let listings_bound = (elapsed / (resync as f64 / 2.0)).ceil() + 1.0;
    let report = format!(
        "{checks} checks ({deep} deep, {drift} drift) in {elapsed:.1} s: GetStages {}, GetResources {}, GetRestApis {}, GetRestApi {}, ListFunctions {}, GetFunction {}, GetPolicy {}, DescribeVpcEndpoints {}, DescribeSecurityGroups {}, writes {writes}",
        op("API Gateway", "GetStages"),
        op("API Gateway", "GetResources"),
        op("API Gateway", "GetRestApis"),
        op("API Gateway", "GetRestApi"),
        op("Lambda", "ListFunctions"),
        op("Lambda", "GetFunction"),
        op("Lambda", "GetPolicy"),
        op("EC2", "DescribeVpcEndpoints"),
        op("EC2", "DescribeSecurityGroups"),
    );
    eprintln!("{report}");
    assert!(checks >= 8.0, "{report}");
    assert_eq!(drift, 0.0, "{report}");
    assert_eq!(writes, 0.0, "{report}");
    // A check under way when a snapshot is taken counts its reads in one window and its outcome
    // in the other: at most one at each edge.
    let about = |reads: f64, checks: f64| (reads - checks).abs() <= 1.0;
    assert!(
        about(op("API Gateway", "GetStages"), checks),
        "one stage read per check: {report}"
    );
    assert!(
        about(op("API Gateway", "GetResources"), deep),
        "routes only at deep turns: {report}"
    );
    assert_eq!(op("API Gateway", "GetRestApi"), 0.0, "{report}");
    // The function is read (GetFunction) only at deep turns: its RevisionId in the listing says
    // it did not change.
    assert!(op("Lambda", "GetFunction") <= deep + 1.0, "{report}");
    for (service, operation) in [
        ("API Gateway", "GetRestApis"),
        ("Lambda", "ListFunctions"),
        ("EC2", "DescribeVpcEndpoints"),
        ("EC2", "DescribeSecurityGroups"),
    ] {
        assert!(
            op(service, operation) <= listings_bound,
            "{service} {operation}: one listing per window for all four objects: {report}"
        );
    }
    assert!(op("Lambda", "GetPolicy") <= deep + 1.0, "{report}");

    // Drift in the routes (not deployed: the stage still serves the old deployment) is found
    // at the object's next deep turn: within 3 periods and a window.
    let rest_api_id = &api_ids[0];
    let proxy = inspect::resources(aws, rest_api_id)
        .await
        .iter()
        .find(|r| r.path() == Some("/{proxy+}"))
        .and_then(|r| r.id())
        .expect("the proxy resource")
        .to_string();
    aws.apigateway
        .delete_method()
        .rest_api_id(rest_api_id)
        .resource_id(&proxy)
        .http_method("ANY")
        .send()
        .await
        .expect("DeleteMethod");
    poll::until_async(
        "the deleted method restored by a deep check",
        Duration::from_secs(5 * resync + 30),
        Duration::from_millis(500),
        async || {
            aws.apigateway
                .get_method()
                .rest_api_id(rest_api_id)
                .resource_id(&proxy)
                .http_method("ANY")
                .send()
                .await
                .is_ok()
        },
    )
    .await;
    wait_ready(namespace, &names[0], READY);
    let end = operator.metrics();
    assert!(
        counter(&end, "privateapi_resyncs_total", &[("outcome", "drift")]) >= 1.0,
        "the check that found it fell back to a fresh reconcile"
    );
    delete_all(namespace, &names);
}

/// Watch `objects` (namespace, name) until all are Ready: the order in which they first were,
/// with the time since the watch began. One listing per namespace and look (not one `kubectl`
/// per object: thirteen of those every look would take the machine's CPU from the operator).
fn ready_order(objects: &[(String, String)], timeout: Duration) -> Vec<((String, String), f64)> {
    let started = Instant::now();
    let mut order: Vec<((String, String), f64)> = Vec::new();
    let namespaces: BTreeSet<&str> = objects.iter().map(|(ns, _)| ns.as_str()).collect();
    poll::until(
        "every object Ready",
        timeout,
        Duration::from_millis(250),
        || {
            let ready: BTreeSet<(String, String)> = namespaces
                .iter()
                .flat_map(|namespace| crate::support::list_objects(namespace))
                .filter(crate::support::is_ready)
                .map(|o| {
                    let name =
                        |field: &str| o["metadata"][field].as_str().unwrap_or("").to_string();
                    (name("namespace"), name("name"))
                })
                .collect();
            for object in objects {
                if !order.iter().any(|(o, _)| o == object) && ready.contains(object) {
                    order.push((object.clone(), started.elapsed().as_secs_f64()));
                }
            }
            if order.len() == objects.len() {
                Ok(())
            } else {
                Err(format!("{order:?}"))
            }
        },
    );
    order
}

/// One reconcile at a time, one deployment every 2 s, and one namespace applies twelve objects
/// together with another's one: the slots go to the namespaces in turn, so the quiet
/// namespace's object is among the first Ready. (kube-runtime's own limit takes the held
/// reconciles in no particular order, a hash set's: that object would come anywhere in the 13.)
#[tokio::test]
async fn a_busy_namespace_does_not_hold_back_a_quiet_one() {
    crate::support::require_testbed();
    install_crd();
    let aws = crate::support::aws().await;
    let run = unique("fair");
    let (busy, quiet) = (unique("fair-busy"), unique("fair-quiet"));
    create_namespace(&busy);
    create_namespace(&quiet);
    let vpc = make_vpc(&aws.ec2, 95).await;
    let operator = Operator::start_selecting(
        &busy,
        &format!("papi-test/run={run}"),
        &unique("qf"),
        &[
            "--concurrency",
            "1",
            // One deployment every 2 s: a reconcile holds its slot while it waits for one.
            "--aws-quota",
            "API Gateway:CreateDeployment=1/100s",
            "--aws-quota-share",
            "1",
        ],
    );
    let mut objects: Vec<(String, String)> = (0..12)
        .map(|i| (busy.clone(), format!("busy-{i}")))
        .collect();
    objects.push((quiet.clone(), "only".to_string()));
    // One apply, busy's first: no object gets a head start from the time kubectl takes.
    let manifests: Vec<String> = objects
        .iter()
        .map(|(namespace, name)| {
            manifest(namespace, name, &vpc)
                .label("papi-test/run", &run)
                .yaml()
        })
        .collect();
    apply(&manifests.join("\n---\n"));
    let order = ready_order(&objects, READY);
    // Its rank: the objects seen Ready before it (those seen at the same look are ties).
    let quiet_ready = order
        .iter()
        .find(|((namespace, _), _)| namespace == &quiet)
        .map(|(_, at)| *at)
        .expect("the quiet object is in the order");
    let quiet_rank = order.iter().filter(|(_, at)| *at < quiet_ready).count();
    eprintln!("Ready in this order (s): {order:?}");
    // An object whose deployment is done waits only for AWS (its endpoint pending): its recheck
    // goes before the creates, so the objects become Ready one after another, not all at the
    // end behind the last deployment.
    // Counted from the first Ready, so that a slow start (a loaded machine) does not count.
    let first = order[0].1;
    let (middle, last) = (
        order[order.len() / 2].1 - first,
        order[order.len() - 1].1 - first,
    );
    assert!(
        middle < 0.75 * last,
        "half were Ready only {middle:.1} s of {last:.1} s after the first: {order:?}"
    );
    // In turn, the quiet object gets every other slot of its class: it is among the first.
    assert!(
        quiet_rank <= 3,
        "the quiet namespace's object was Ready {}th of 13: {order:?}",
        quiet_rank + 1
    );
    let metrics = operator.metrics();
    assert!(
        counter(
            &metrics,
            "privateapi_admission_wait_seconds_total",
            &[("class", "foreground")]
        ) > 0.0,
        "reconciles waited for their slot"
    );
    delete_objects(&objects);
}

/// A restarted operator checks every object it finds (it has confirmed none yet): with one
/// reconcile at a time and one stage read every 1.5 s, sixteen checks take about 24 s. New
/// objects applied meanwhile do not wait for them: the first reconcile of each (which adds the
/// finalizer) gets one of the next slots, and the checks still all happen. (Without classes, the
/// held reconciles are taken in no particular order: the three would come anywhere among the 19.)
#[tokio::test]
async fn after_a_restart_new_objects_go_before_the_checks_of_the_others() {
    let world = World::new("quota-first")
        .cluster_prefix("qp")
        .vpc(96)
        .build()
        .await;
    let (namespace, cluster, vpc) = (&world.namespace, &world.cluster, world.vpc());
    let names: Vec<String> = (0..16).map(|i| format!("old-{i}")).collect();
    {
        let _first = Operator::start_with(namespace, cluster, &["--leader-election=false"]);
        for name in &names {
            manifest(namespace, name, vpc).apply();
        }
        for name in &names {
            wait_ready(namespace, name, READY);
        }
    }
    let operator = Operator::start_with(
        namespace,
        cluster,
        &[
            "--leader-election=false",
            "--concurrency",
            "1",
            "--aws-quota",
            "API Gateway:GetStages=1/75s",
            "--aws-quota-share",
            "1",
        ],
    );
    // Every object was triggered by the restart's first list; once the first check is done the
    // others are held behind it.
    poll::until(
        "the first check",
        Duration::from_secs(60),
        Duration::from_millis(200),
        || (counter(&operator.metrics(), "privateapi_resyncs_total", &[]) >= 1.0).then_some(()),
    );
    let new: Vec<String> = (0..3).map(|i| format!("new-{i}")).collect();
    for name in &new {
        manifest(namespace, name, vpc).apply();
    }
    let mut checks_before = Vec::new();
    let mut pending = new.clone();
    poll::until(
        "the new objects' finalizers",
        Duration::from_secs(90),
        Duration::from_millis(200),
        || {
            let checks = counter(&operator.metrics(), "privateapi_resyncs_total", &[]);
            pending.retain(|name| {
                let finalized = get_object(namespace, name).is_some_and(|o| {
                    o["metadata"]["finalizers"]
                        .as_array()
                        .is_some_and(|f| f.iter().any(|f| f == "privateapi.io/cleanup"))
                });
                if finalized {
                    checks_before.push(checks);
                }
                !finalized
            });
            pending.is_empty().then_some(())
        },
    );
    eprintln!(
        "the new objects got their first slots after {checks_before:?} of the {} checks",
        names.len()
    );
    assert!(
        checks_before.iter().all(|&c| c <= 6.0),
        "the new objects waited for {checks_before:?} of {} checks",
        names.len()
    );
    for name in &new {
        wait_ready(namespace, name, READY);
    }
    poll::until(
        "every object's check",
        READY,
        Duration::from_millis(200),
        || {
            let checks = counter(&operator.metrics(), "privateapi_resyncs_total", &[]);
            (checks >= names.len() as f64).then_some(())
        },
    );
    let all: Vec<String> = names.iter().chain(&new).cloned().collect();
    delete_all(namespace, &all);
}
