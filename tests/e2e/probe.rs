//! `spec.probe` and the `Reachable` condition: the operator runs inside a VPC of the test bed
//! (`Operator::start_in`: a network namespace, as a pod on a node of that VPC) and sends real
//! HTTPS requests through the bed's DNS and execute-api data plane. Each failure class a user can
//! act on gets its reason; `Ready` does not depend on it; the prober never calls AWS, wakes no
//! reconcile and owns its condition alone.

use std::time::Duration;

use serde_json::{Value, json};

use crate::support::netns::From;
use crate::support::*;

const READY_WITHIN: Duration = Duration::from_secs(120);
/// A few probe intervals (5 s) and a probe's time-out (3 s).
const PROBED_WITHIN: Duration = Duration::from_secs(40);

fn reachable(object: &Value) -> Option<(String, String, String)> {
    condition(object, "Reachable").map(|c| {
        let field = |name: &str| c[name].as_str().unwrap_or_default().to_string();
        (field("status"), field("reason"), field("message"))
    })
}

/// Wait until `name`'s `Reachable` condition has `reason`; returns the object.
fn wait_reachable(world: &World, name: &str, reason: &str) -> Value {
    world.wait_for(
        name,
        PROBED_WITHIN,
        &format!("Reachable reason {reason}"),
        |o| reachable(o).is_some_and(|(_, r, _)| r == reason),
    )
}

/// The condition types in `manager`'s share of the status (server-side apply's managedFields).
fn conditions_owned_by(namespace: &str, name: &str, manager: &str) -> Vec<String> {
    let out = kubectl(&[
        "-n",
        namespace,
        "get",
        "privateapi",
        name,
        "-o",
        "json",
        "--show-managed-fields",
    ]);
    let object: Value = serde_json::from_str(&out).expect("JSON");
    let mut types = Vec::new();
    for entry in object["metadata"]["managedFields"]
        .as_array()
        .into_iter()
        .flatten()
    {
        if entry["manager"] != manager || entry["subresource"] != "status" {
            continue;
        }
        let conditions = &entry["fieldsV1"]["f:status"]["f:conditions"];
        for key in conditions.as_object().into_iter().flatten().map(|(k, _)| k) {
            if let Some(item) = key.strip_prefix("k:")
                && let Ok(item) = serde_json::from_str::<Value>(item)
            {
                types.push(item["type"].as_str().unwrap_or_default().to_string());
            }
        }
    }
    types
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reachable_says_what_the_operators_network_gets_and_why() {
    let mut world = World::new("probe").vpc(120).build().await;
    let (vpc_id, client_sg, extra_sg) = {
        let vpc = world.vpc();
        (
            vpc.vpc_id.clone(),
            vpc.client_sg_id.clone(),
            vpc.extra_sg_id.clone(),
        )
    };
    let other_vpc = world.make_vpc(121).await;
    // The operator as a pod on a node in the client group of the VPC.
    world.start_operator_in(From::vpc(&vpc_id, &[&client_sg]), &[]);
    // The reference stack: its endpoint has private DNS and admits the client group.
    world.seed("open").probe_every(5).apply();
    // An endpoint without private DNS (its alias URL resolves from anywhere) whose group admits
    // only another group: the operator's SYNs are dropped.
    world
        .seed("closed")
        .private_dns(false)
        .allowed_security_groups([&extra_sg])
        .probe_every(5)
        .apply();
    // An API in another VPC: its private name resolves, inside the operator's VPC, to that VPC's
    // own endpoint ("open"'s), which its resource policy does not admit.
    PrivateApiManifest::seed(&world.namespace, "elsewhere", &other_vpc)
        .probe_every(5)
        .apply();

    for name in ["open", "closed", "elsewhere"] {
        world.wait_ready(name, READY_WITHIN);
    }
    let open = wait_reachable(&world, "open", "Answered");
    let (status, _, message) = reachable(&open).expect("Reachable");
    assert_eq!(status, "True");
    let url = status_str(&open, "url");
    assert!(
        message.starts_with(&format!("GET {url} answered 200 in under ")),
        "{message}"
    );
    assert!(is_ready(&open));

    let closed = wait_reachable(&world, "closed", "ConnectTimeout");
    assert!(is_ready(&closed), "Ready does not depend on Reachable");
    let (status, _, message) = reachable(&closed).expect("Reachable");
    assert_eq!(status, "False");
    assert!(
        message.contains("security groups do not admit"),
        "{message}"
    );

    let elsewhere = wait_reachable(&world, "elsewhere", "Forbidden");
    assert!(is_ready(&elsewhere));
    let (_, _, message) = reachable(&elsewhere).expect("Reachable");
    assert!(
        message.contains("answered 403") && message.contains("not authorized"),
        "{message}"
    );

    // The reconciler owns every condition but this one; the prober this one only.
    assert_eq!(
        conditions_owned_by(&world.namespace, "open", "privateapi-operator-probe"),
        vec!["Reachable".to_string()]
    );
    let reconciler_owns = conditions_owned_by(&world.namespace, "open", "privateapi-operator");
    assert!(
        reconciler_owns.contains(&"Ready".to_string()),
        "{reconciler_owns:?}"
    );
    assert!(
        !reconciler_owns.contains(&"Reachable".to_string()),
        "{reconciler_owns:?}"
    );

    // The invoke permission removed behind the operator's back: API Gateway cannot call the
    // function (500), until the operator's next reconcile puts the permission back (its drift
    // check is 10 minutes away: a poke stands for it, so that the probe sees the 500 first).
    let function_arn = status_str(&open, "functionArn");
    make::remove_invoke_permissions(&world.aws, &function_arn).await;
    let broken = wait_reachable(&world, "open", "BackendError");
    let (_, _, message) = reachable(&broken).expect("Reachable");
    assert!(
        message.contains("answered 500") && message.contains("invoke permission"),
        "{message}"
    );
    world.poke("open");
    let repaired = wait_reachable(&world, "open", "Answered");
    assert!(
        !inspect::lambda_statements(&world.aws, &function_arn)
            .await
            .is_empty()
    );
    assert!(is_ready(&repaired));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_private_name_does_not_resolve_outside_its_vpc_and_probing_calls_no_aws() {
    let mut world = World::new("probe-dns").vpc(122).build().await;
    // The operator's VPC has no execute-api endpoint: the private name resolves nowhere in it.
    let outside = world.make_vpc(123).await;
    world.start_operator_in(From::vpc(&outside.vpc_id, &[]), &[]);
    world.seed("inside").probe_every(5).apply();
    world.wait_ready("inside", READY_WITHIN);
    let object = wait_reachable(&world, "inside", "NameNotResolved");
    let (status, _, message) = reachable(&object).expect("Reachable");
    assert_eq!(status, "False");
    assert!(message.contains("does not resolve"), "{message}");

    // Settled: the probes go on, without an AWS call or a reconcile.
    let operator = world.operator();
    let probes = || operator.metrics().sum("privateapi_probes_total");
    let (probes_before, reconciles_before) = (probes(), operator.reconciles());
    let calls = operator.calls_during("12 s of probes", || {
        std::thread::sleep(Duration::from_secs(12))
    });
    assert!(probes() - probes_before >= 2.0, "the probes went on");
    assert_eq!(
        (calls.reads, calls.writes),
        (0, 0),
        "{:?}",
        calls.by_operation
    );
    assert_eq!(operator.reconciles(), reconciles_before);

    // An object that is never Ready is not probed, and says so.
    world
        .referencing("waiting", "vpce-0123456789abcdef0")
        .probe_every(5)
        .apply();
    let waiting = wait_reachable(&world, "waiting", "NotProbed");
    assert_eq!(reachable(&waiting).expect("Reachable").0, "Unknown");

    // The probe leaves the spec: so does its condition.
    world.patch("inside", json!({"probe": null}));
    world.wait_for("inside", PROBED_WITHIN, "no Reachable condition", |o| {
        reachable(o).is_none()
    });
}
