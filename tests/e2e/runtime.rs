//! The operator as it runs in a cluster: leader election between replicas on a Lease, graceful
//! shutdown on SIGTERM, the admin server (/healthz, /readyz, /metrics) and JSON logs. Each test runs
//! operator processes against the real API server and the AWS fake.

use std::time::Duration;

use crate::support::runtime::*;
use crate::support::*;
use serde_json::Value;

const READY_TIMEOUT: Duration = Duration::from_secs(120);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_leader_reconciles_and_a_killed_leader_is_replaced() {
    let world = World::new("lead").vpc(110).build().await;
    let (namespace, cluster) = (&world.namespace, &world.cluster);
    let vpc_two = world.make_vpc(111).await;
    let flags = ["--lease-duration-seconds", "6"];

    let mut first = Operator::start_with(namespace, cluster, &flags);
    wait_leader(namespace, &first, Duration::from_secs(30));
    let second = Operator::start_with(namespace, cluster, &flags);
    wait_standby(&second);
    let lease = get_lease(namespace, LEASE).expect("lease");
    assert_eq!(lease["spec"]["leaseDurationSeconds"], 6, "{lease}");

    world.seed("one").apply();
    wait_ready(namespace, "one", READY_TIMEOUT);
    assert!(first.reconciles() > 0);
    assert!(first.aws_calls().writes > 0);
    let standby = second.metrics();
    assert_eq!(standby.sum("privateapi_reconciles_total"), 0.0);
    assert_eq!(standby.sum("privateapi_aws_calls_total"), 0.0);
    assert_eq!(standby.value("privateapi_leader", &[]), Some(0.0));
    assert_eq!(
        lease_holder(namespace, LEASE).as_deref(),
        Some(first.identity().as_str())
    );

    // A crash: the standby takes over once the lease expires (6 s after the last renewal).
    first.kill();
    wait_leader(namespace, &second, Duration::from_secs(6 + 30));
    PrivateApiManifest::seed(namespace, "two", &vpc_two).apply();
    wait_ready(namespace, "two", READY_TIMEOUT);
    assert!(second.reconciles() > 0);
    assert!(second.aws_calls().writes > 0);
    // The old leader comes back (same identity, as a restarted container): it waits as standby.
    first.start_again();
    wait_standby(&first);
    assert_eq!(
        lease_holder(namespace, LEASE).as_deref(),
        Some(second.identity().as_str())
    );
    assert_eq!(first.metrics().sum("privateapi_reconciles_total"), 0.0);
}

/// The lease's `renewTime` (RFC 3339, microseconds) as seconds since the epoch.
fn lease_time(lease: &Value, field: &str) -> f64 {
    let text = lease["spec"][field]
        .as_str()
        .unwrap_or_else(|| panic!("{field} in {lease}"));
    chrono::DateTime::parse_from_rfc3339(text)
        .unwrap_or_else(|e| panic!("{field} {text}: {e}"))
        .timestamp_micros() as f64
        / 1e6
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_finishes_reconciles_releases_the_lease_and_exits_zero() {
    let world = World::new("term").build().await;
    let (namespace, cluster, aws) = (&world.namespace, &world.cluster, &world.aws);
    let vpcs = [world.make_vpc(112).await, world.make_vpc(113).await];
    // A lease far longer than the test's waits: a takeover within them can only come from the
    // leader releasing the lease.
    let flags = ["--lease-duration-seconds", "300"];
    let mut first = Operator::start_with(namespace, cluster, &flags);
    wait_leader(namespace, &first, Duration::from_secs(30));
    let second = Operator::start_with(namespace, cluster, &flags);
    wait_standby(&second);

    // SIGTERM while the leader is in the middle of creating both objects.
    let baseline = first.aws_calls().writes;
    for (i, vpc) in vpcs.iter().enumerate() {
        PrivateApiManifest::seed(namespace, &format!("obj-{i}"), vpc).apply();
    }
    poll::until(
        "the first AWS writes",
        Duration::from_secs(60),
        Duration::from_millis(200),
        || first.aws_calls().writes > baseline,
    );
    let before = get_lease(namespace, LEASE).expect("lease");
    let last_renewal_seen = lease_time(&before, "renewTime");
    let status = first.terminate(Duration::from_secs(60));
    assert_eq!(status.code(), Some(0), "{}", first.log());
    let log = first.log();
    for line in [
        "shutdown requested",
        "controller stopped: no reconcile in flight",
        "lease released",
    ] {
        assert!(log.contains(line), "no {line:?} in the log:\n{log}");
    }
    assert!(!log.contains("reconciles still running"), "{log}");

    // The standby takes over long before the released lease would have expired.
    wait_leader(namespace, &second, Duration::from_secs(60));
    let after = get_lease(namespace, LEASE).expect("lease");
    let acquired = lease_time(&after, "acquireTime");
    assert!(
        acquired < last_renewal_seen + 300.0,
        "acquired at {acquired}, the old lease held until {}",
        last_renewal_seen + 300.0
    );
    // Both objects converge under the new leader, with nothing created twice.
    for i in 0..vpcs.len() {
        wait_ready(namespace, &format!("obj-{i}"), READY_TIMEOUT);
    }
    let owned = owned_resources(aws, cluster).await;
    for kind in ["vpc-endpoint", "security-group", "rest-api", "function"] {
        assert_eq!(
            owned.iter().filter(|(k, _)| k == kind).count(),
            vpcs.len(),
            "{kind}: {owned:?}"
        );
    }
    assert!(second.reconciles() > 0);

    // A standby told to stop exits 0 at once, and does not touch the lease.
    let mut third = Operator::start_with(namespace, cluster, &flags);
    wait_standby(&third);
    assert_eq!(third.terminate(Duration::from_secs(30)).code(), Some(0));
    assert_eq!(
        lease_holder(namespace, LEASE).as_deref(),
        Some(second.identity().as_str())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_waits_for_the_first_list_and_metrics_has_every_family() {
    let world = World::new("admin").vpc(114).build().await;
    let (namespace, cluster) = (&world.namespace, &world.cluster);

    // The operator reaches the API server through a gate that holds every connection: it runs
    // (healthz) but has not listed its objects (readyz).
    let gate = Gate::new(&apiserver_address());
    let dir = tempfile::tempdir().expect("temp dir");
    let kubeconfig = kubeconfig_via(gate.port, dir.path());
    let operator = Operator::start_with_env(
        namespace,
        cluster,
        &[
            "--leader-election=false",
            "--log-level",
            "info,privateapi_operator=debug,kube=debug",
        ],
        &[("KUBECONFIG", kubeconfig.to_str().expect("utf-8 path"))],
    );
    assert_eq!(operator.admin_status("/healthz").0, 200);
    std::thread::sleep(Duration::from_secs(2));
    let (code, body) = operator.admin_status("/readyz");
    assert_eq!(code, 503, "{body}");
    assert!(body.contains("first list"), "{body}");
    // Without leader election the process is the leader from the start.
    assert_eq!(
        operator.metrics().value("privateapi_leader", &[]),
        Some(1.0)
    );
    gate.open();
    let through_gate = kubectl(&[
        "--kubeconfig",
        kubeconfig.to_str().expect("utf-8 path"),
        "get",
        "namespace",
        namespace,
        "-o",
        "name",
    ]);
    assert_eq!(through_gate.trim(), format!("namespace/{namespace}"));
    poll::until(
        "/readyz 200",
        Duration::from_secs(60),
        Duration::from_millis(200),
        || operator.admin_status("/readyz").0 == 200,
    );
    assert!(
        get_lease(namespace, LEASE).is_none(),
        "no election, no Lease"
    );

    world.seed("metered").apply();
    wait_ready(namespace, "metered", READY_TIMEOUT);
    poke_and_wait(&operator, namespace, "metered");
    let metrics = operator.metrics();
    let families = [
        ("privateapi_reconciles", "counter"),
        ("privateapi_reconcile_duration_seconds", "histogram"),
        ("privateapi_aws_calls", "counter"),
        ("privateapi_objects", "gauge"),
        ("privateapi_leader", "gauge"),
    ];
    for (family, kind) in families {
        assert_eq!(
            metrics.types.get(family).map(String::as_str),
            Some(kind),
            "TYPE of {family}"
        );
        assert!(
            metrics.help.get(family).is_some_and(|h| !h.is_empty()),
            "HELP of {family}"
        );
    }
    // Every sample belongs to a declared family.
    for sample in &metrics.samples {
        assert!(
            metrics.family_of(&sample.name).is_some(),
            "{sample:?} undeclared"
        );
    }

    let ok = metrics
        .value("privateapi_reconciles_total", &[("result", "ok")])
        .expect("reconciles ok");
    assert!(ok >= 2.0, "{ok}");
    for sample in metrics.find("privateapi_reconciles_total", &[]) {
        assert_eq!(
            sample.labels.keys().collect::<Vec<_>>(),
            ["result"],
            "{sample:?}"
        );
    }

    let buckets = metrics.find("privateapi_reconcile_duration_seconds_bucket", &[]);
    assert!(buckets.len() >= 2);
    assert_eq!(
        buckets.last().map(|b| b.labels["le"].as_str()),
        Some("+Inf")
    );
    let counts: Vec<f64> = buckets.iter().map(|b| b.value).collect();
    assert!(
        counts.windows(2).all(|w| w[0] <= w[1]),
        "cumulative: {counts:?}"
    );
    let count = metrics
        .value("privateapi_reconcile_duration_seconds_count", &[])
        .expect("count");
    assert_eq!(counts.last().copied(), Some(count));
    assert_eq!(count, metrics.sum("privateapi_reconciles_total"));
    assert!(
        metrics
            .value("privateapi_reconcile_duration_seconds_sum", &[])
            .expect("sum")
            > 0.0
    );

    for sample in metrics.find("privateapi_aws_calls_total", &[]) {
        assert_eq!(
            sample.labels.keys().collect::<Vec<_>>(),
            ["kind", "operation", "outcome", "service"],
            "{sample:?}"
        );
    }
    for (service, operation, kind) in [
        ("EC2", "CreateVpcEndpoint", "write"),
        ("EC2", "DescribeVpcEndpoints", "read"),
        ("API Gateway", "CreateRestApi", "write"),
        ("Lambda", "CreateFunction", "write"),
    ] {
        let found = metrics.find(
            "privateapi_aws_calls_total",
            &[
                ("service", service),
                ("operation", operation),
                ("kind", kind),
                ("outcome", "ok"),
            ],
        );
        assert!(
            found.iter().any(|s| s.value >= 1.0),
            "{service} {operation}: {:?}",
            metrics.find("privateapi_aws_calls_total", &[])
        );
    }

    assert_eq!(
        metrics.value("privateapi_objects", &[("ready", "true")]),
        Some(1.0)
    );
    assert_eq!(
        metrics.value("privateapi_objects", &[("ready", "false")]),
        Some(0.0)
    );
    assert_eq!(metrics.value("privateapi_leader", &[]), Some(1.0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_logs_with_the_level_from_the_flag() {
    let world = World::new("logs").build().await;
    let (namespace, cluster) = (&world.namespace, &world.cluster);
    // The flag wins over RUST_LOG (which tests/support sets to info,privateapi_operator=debug).
    let mut operator = Operator::start_with(
        namespace,
        cluster,
        &["--log-format", "json", "--log-level", "debug"],
    );
    wait_leader(namespace, &operator, Duration::from_secs(30));
    assert_eq!(operator.terminate(Duration::from_secs(30)).code(), Some(0));
    let log = operator.log();
    let lines: Vec<Value> = log
        .lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}")))
        .collect();
    for line in &lines {
        assert!(line["level"].is_string(), "{line}");
        assert!(line["message"].is_string(), "{line}");
        assert!(line["timestamp"].is_string(), "{line}");
    }
    let has = |message: &str| lines.iter().any(|l| l["message"] == message);
    assert!(
        has("acquired the lease: this process is the leader"),
        "{log}"
    );
    assert!(has("lease released"), "{log}");
    // Debug lines of a dependency: the level came from --log-level, not from RUST_LOG.
    assert!(
        lines.iter().any(|l| l["level"] == "DEBUG"
            && l["target"]
                .as_str()
                .is_some_and(|t| !t.starts_with("privateapi_operator"))),
        "{log}"
    );
    let acquired = lines
        .iter()
        .find(|l| l["message"] == "acquired the lease: this process is the leader")
        .expect("acquired line");
    assert_eq!(acquired["identity"], operator.identity().as_str());
    assert_eq!(acquired["level"], "INFO");
}

// ---------------------------------------------------------------------------------------------
// Bookkeeping of the reconciler, run in the test's process on a store the test feeds
// ---------------------------------------------------------------------------------------------

/// A reconcile that starts from a store copy older than the operator's own last status write (a
/// watch that lags) must not build on that copy: the status it wrote, with its
/// `lastTransitionTime`s, stays as it is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watch_lagging_behind_the_last_status_write_does_not_roll_it_back() {
    use crate::support::in_process::{InProcess, ready};
    let world = World::new("lag").vpc(112).build().await;
    let (namespace, cluster, aws) = (&world.namespace, &world.cluster, &world.aws);
    let mut operator = InProcess::new(namespace, cluster).await;
    world.seed("lag").apply();
    let copies = operator.reconcile_until("lag", READY_TIMEOUT, ready).await;
    let written = copies.last().expect("the Ready copy").clone();
    // The copy a lagging watch could still hold: the finalizer added, no status written yet.
    let stale = copies
        .iter()
        .find(|copy| {
            copy.metadata
                .finalizers
                .iter()
                .flatten()
                .any(|f| f == privateapi_operator::reconciler::FINALIZER)
                && copy.status.is_none()
        })
        .expect("a copy between the finalizer and the first status write")
        .clone();
    // A status rebuilt now would carry other lastTransitionTimes (whole seconds).
    tokio::time::sleep(Duration::from_millis(1_100)).await;

    operator.feed(&stale);
    operator
        .reconcile(&stale)
        .await
        .expect("the reconcile from the stale copy");

    let after = operator.get("lag").await.expect("the object");
    assert_eq!(
        after.status, written.status,
        "the status written before is kept"
    );
    assert_eq!(
        after.metadata.resource_version, written.metadata.resource_version,
        "nothing was written from the stale copy"
    );
    let ready_since = |o: &privateapi_operator::crd::PrivateApi| {
        o.status
            .as_ref()
            .and_then(|s| s.conditions.iter().find(|c| c.type_ == "Ready"))
            .map(|c| c.last_transition_time.0)
    };
    eprintln!(
        "lagging watch: Ready since {:?}, kept after a reconcile from a copy without status",
        ready_since(&after)
    );

    kubectl(&[
        "delete",
        "privateapis.privateapi.io",
        "lag",
        "-n",
        namespace,
        "--wait=false",
    ]);
    operator
        .reconcile_until("lag", READY_TIMEOUT, |o| o.is_none())
        .await;
    let left = owned_resources(aws, cluster).await;
    assert!(left.is_empty(), "left behind: {left:?}");
}

/// An object deleted while this process did not run its cleanup (another replica led) leaves no
/// record behind in this process once it is gone from the store; a live object keeps its records.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_of_an_object_deleted_elsewhere_are_forgotten() {
    use crate::support::in_process::{InProcess, ready};
    let world = World::new("prune").vpc(113).build().await;
    let (namespace, cluster, aws) = (&world.namespace, &world.cluster, &world.aws);
    let key = format!("{namespace}/gone");
    let mut first = InProcess::new(namespace, cluster).await;
    world.seed("gone").apply();
    let copies = first.reconcile_until("gone", READY_TIMEOUT, ready).await;
    let last = copies.last().expect("the Ready copy").clone();

    first.ctx.prune_forgotten();
    let kept = first.ctx.bookkeeping();
    eprintln!("records of a live object: {kept:?}");
    assert!(kept.objects.contains(&key), "{kept:?}");
    assert_eq!(kept.last_writes, 1, "{kept:?}");
    assert!(
        kept.fingerprints >= 1 && kept.remembered_apis >= 1 && kept.remembered_functions >= 1,
        "{kept:?}"
    );

    // Another replica deletes it (the cleanup runs there), then this one's watch sees it go.
    let mut second = InProcess::new(namespace, cluster).await;
    kubectl(&[
        "delete",
        "privateapis.privateapi.io",
        "gone",
        "-n",
        namespace,
        "--wait=false",
    ]);
    second
        .reconcile_until("gone", READY_TIMEOUT, |o| o.is_none())
        .await;
    assert!(owned_resources(aws, cluster).await.is_empty());
    first.feed_deleted(&last);
    first.ctx.prune_forgotten();
    let after = first.ctx.bookkeeping();
    eprintln!("records after the object is gone from the store: {after:?}");
    assert!(after.objects.is_empty(), "{after:?}");
    assert_eq!(
        (
            after.last_writes,
            after.checked_objects,
            after.remembered_apis,
            after.remembered_functions,
            after.fingerprints
        ),
        (0, 0, 0, 0, 0),
        "{after:?}"
    );
}
