//! The fault suite: the operator under the faults AWS and Kubernetes really produce, each scenario
//! ending with the invariant of `crate::support::invariant` (no duplicate, no orphan, every status ID
//! exists) and every live object Ready.
//!
//! Each scenario runs its own operator process whose AWS calls go through its own fault proxy
//! (`testbed/faultproxy/`), on its own namespace, cluster name and VPC; faults are seeded. The CI
//! form is bounded (a few minutes on 2 cores); `PAPI_FAULT_SOAK=1` runs the long form (more
//! objects, more seeds):
//!
//! ```sh
//! PAPI_FAULT_SOAK=1 PAPI_FAULT_RESULTS=/tmp/faults.jsonl bash testbed/with-testbed.sh bash -c \
//!   'export PAPI_HANDLER_ZIP_X86_64=$(bash scripts/build-handler.sh); cargo test --test e2e fault_suite:: -- --nocapture'
//! ```
//!
//! Each scenario prints one `FAULT-SUITE {json}` line (scenario, runs, faults injected, duplicates,
//! orphans, seconds to converge) and appends it to `$PAPI_FAULT_RESULTS` (default
//! `$PAPI_TESTBED_DIR/fault-suite.jsonl`); tests/FAULTS.md holds the table of a real run.

use std::time::{Duration, Instant};

use crate::support::control_plane::ControlPlane;
use crate::support::faults::FaultProxy;
use crate::support::invariant::{self, Report, Scope};
use crate::support::runtime::{LEASE, lease_holder, wait_leader, wait_standby};
use crate::support::{Operator, PrivateApiManifest, World, poll};
use serde_json::{Value, json};

/// Generous: the machine is shared and slow; never a speed assertion.
const CONVERGE: Duration = Duration::from_secs(600);

fn soak() -> bool {
    std::env::var("PAPI_FAULT_SOAK").is_ok_and(|v| v == "1")
}

/// One scenario's world: a namespace, a VPC, a fault proxy and an operator behind it.
struct Bed {
    world: World,
    proxy: FaultProxy,
    operator: Operator,
    /// One VPC has room for one endpoint with private DNS for execute-api: beds with several
    /// objects turn it off.
    private_dns: bool,
}

/// The bed's namespace, cluster, AWS clients and VPC are its world's.
impl std::ops::Deref for Bed {
    type Target = World;
    fn deref(&self) -> &World {
        &self.world
    }
}

impl Bed {
    async fn new(tag: &str, seed: u64, vpc_octet: u8, extra: &[&str]) -> Self {
        let world = World::new(&format!("faults-{tag}"))
            .cluster_prefix(&format!("fc-{tag}"))
            .vpc(vpc_octet)
            .build()
            .await;
        let proxy = FaultProxy::start(seed);
        let operator = proxy.start_operator(&world.namespace, &world.cluster, extra);
        Self {
            world,
            proxy,
            operator,
            private_dns: false,
        }
    }

    fn manifest(&self, name: &str) -> PrivateApiManifest {
        self.seed(name).private_dns(self.private_dns)
    }

    fn create(&self, name: &str) {
        self.manifest(name).apply();
    }

    fn scope(&self) -> Scope {
        Scope::new(&self.cluster, &[&self.namespace])
    }

    /// The invariant, waited for (deletions finishing), asserted.
    async fn assert_invariant(&self, what: &str) -> Report {
        let report =
            invariant::wait_clean(&self.aws, &self.scope(), Duration::from_secs(180)).await;
        assert!(
            report.is_clean(),
            "{what}: invariant broken: {}\n---- operator log tail ----\n{}",
            report.summary(),
            tail(&self.operator.log(), 80)
        );
        report
    }
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// One row of the report table.
struct Row {
    scenario: &'static str,
    runs: u64,
    faults: u64,
    report: Report,
    converge: Duration,
    note: String,
}

fn record(row: Row) {
    let line = json!({
        "scenario": row.scenario,
        "soak": soak(),
        "runs": row.runs,
        "faults_injected": row.faults,
        "duplicates": row.report.duplicates.len(),
        "orphans": row.report.orphans.len(),
        "missing": row.report.missing.len(),
        "resources_checked": row.report.resources,
        "live_objects": row.report.live_objects,
        "converge_s": (row.converge.as_secs_f64() * 10.0).round() / 10.0,
        "note": row.note,
    });
    println!("FAULT-SUITE {line}");
    let path = std::env::var("PAPI_FAULT_RESULTS").ok().or_else(|| {
        std::env::var("PAPI_TESTBED_DIR")
            .ok()
            .map(|d| format!("{d}/fault-suite.jsonl"))
    });
    if let Some(path) = path {
        use std::io::Write;
        if let Ok(mut file) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
        {
            let _ = writeln!(file, "{line}");
        }
    }
}

/// Wait until every named object is Ready; the time it took.
fn wait_all_ready(bed: &Bed, names: &[String]) -> Duration {
    let started = Instant::now();
    for name in names {
        bed.wait_for(
            name,
            CONVERGE,
            "Ready=True for the current generation, the operator running",
            |object| {
                // Fail now rather than after CONVERGE when the operator is gone.
                assert!(
                    !bed.operator.exited(),
                    "the operator exited while {name} was not Ready:\n{}",
                    tail(&bed.operator.log(), 40)
                );
                crate::support::is_ready(object)
            },
        );
    }
    started.elapsed()
}

/// The kinds of fault of scenario 1: 5xx (500 and 503), throttling, latency and dropped
/// connections, each with the same probability, together `rate` of all calls.
fn mixed_rules(rate: f64) -> Value {
    let kinds = 5.0;
    let p = 1.0 - (1.0 - rate).powf(1.0 / kinds);
    json!([
        {"fault": "error5xx", "status": 500, "probability": p},
        {"fault": "error5xx", "status": 503, "probability": p},
        {"fault": "throttle", "probability": p},
        {"fault": "latency", "latency_ms": 300, "probability": p},
        {"fault": "drop_connection", "probability": p},
    ])
}

// ---------------------------------------------------------------------------------------------
// 1. 20 % of calls fail: N objects created, updated, half deleted

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scenario_1_a_fifth_of_all_calls_fail() {
    crate::support::require_testbed();
    let (objects, seeds): (usize, &[u64]) = if soak() {
        (20, &[11, 12, 13])
    } else {
        (6, &[11])
    };
    let mut total_faults = 0;
    let mut converge = Duration::ZERO;
    let mut last = Report::default();
    for (i, seed) in seeds.iter().enumerate() {
        let bed = Bed::new("mixed", *seed, 60 + i as u8, &["--resync-seconds", "20"]).await;
        bed.proxy.set_rules(mixed_rules(0.2));
        let names: Vec<String> = (0..objects).map(|n| format!("mixed-{n}")).collect();
        let started = Instant::now();
        for name in &names {
            bed.create(name);
        }
        wait_all_ready(&bed, &names);
        // update: new tags everywhere and a new message for the function
        for name in &names {
            bed.manifest(name)
                .tag("team", "updated")
                .builtin("updated under faults")
                .apply();
        }
        wait_all_ready(&bed, &names);
        for name in names.iter().step_by(2) {
            bed.delete(name);
        }
        for name in names.iter().step_by(2) {
            bed.wait_gone(name, CONVERGE);
        }
        converge += started.elapsed();
        let injected = bed.proxy.injected_total();
        assert!(injected > 0, "no fault injected: {}", bed.proxy.stats());
        total_faults += injected;
        // the invariant is checked with the faults off: a resync under faults may flip Ready
        bed.proxy.clear_rules();
        last = bed.assert_invariant("20 % faults").await;
        for name in names.iter().skip(1).step_by(2) {
            let object = bed.get(name).expect("kept object");
            assert!(object["status"]["urls"].is_object(), "{name}: {object}");
        }
    }
    record(Row {
        scenario: "1 mixed 20% faults",
        runs: seeds.len() as u64,
        faults: total_faults,
        report: last,
        converge,
        note: format!("{objects} objects per run: created, updated, half deleted"),
    });
}

// ---------------------------------------------------------------------------------------------
// 2. kill after the k-th mutating call of a create, for every k

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scenario_2_kill_after_every_mutating_call_of_a_create() {
    crate::support::require_testbed();
    let mut bed = Bed::new("kill", 21, 62, &[]).await;
    // how many mutating calls a create makes
    bed.create("reference");
    bed.wait_ready("reference", CONVERGE);
    let writes_per_create = bed.proxy.mutating_forwarded();
    let write_ops: Vec<String> = bed
        .proxy
        .calls()
        .iter()
        .filter(|c| c["mutating"] == true)
        .map(|c| c["operation"].as_str().unwrap_or_default().to_string())
        .collect();
    println!("a create makes {writes_per_create} mutating calls: {write_ops:?}");
    assert!(writes_per_create >= 5, "{write_ops:?}");
    let mut converge = Duration::ZERO;
    let mut kills = 0;
    for k in 1..=writes_per_create {
        let name = format!("kill-{k}");
        // armed before the create starts, so that k counts the create's own writes
        bed.proxy.freeze_after_mutating(k);
        bed.create(&name);
        let killed = bed
            .operator
            .kill_when_frozen(&bed.proxy, Duration::from_secs(300));
        assert!(killed, "the create made fewer than {k} mutating calls");
        kills += 1;
        let started = Instant::now();
        bed.wait_ready(&name, CONVERGE);
        converge += started.elapsed();
        bed.assert_invariant(&format!("killed after mutating call {k}"))
            .await;
    }
    let report = bed.assert_invariant("all kills").await;
    record(Row {
        scenario: "2 kill after k-th write",
        runs: kills,
        faults: kills,
        report,
        converge,
        note: format!("k = 1..{writes_per_create} ({})", write_ops.join(",")),
    });
}

// ---------------------------------------------------------------------------------------------
// 2b. kill after, and lose the response of, each write of a private custom domain name

/// The writes a create makes for `spec.domain`.
const DOMAIN_WRITES: [&str; 4] = [
    "CreateDomainName",
    "CreateDomainNameAccessAssociation",
    "CreateBasePathMapping",
    "ChangeResourceRecordSets",
];

/// One domain name per object, each with one association per endpoint, one mapping and one
/// record: no duplicate of what the invariant does not list.
async fn assert_one_of_each_domain_part(bed: &Bed, zone: &str, what: &str) {
    for object in bed.list() {
        let status = &object["status"];
        let (Some(name), Some(id), Some(arn)) = (
            status["domain"]["name"].as_str(),
            status["domain"]["domainNameId"].as_str(),
            status["domain"]["domainNameArn"].as_str(),
        ) else {
            panic!("{what}: no status.domain: {status}");
        };
        let associations = crate::support::inspect::domain_association_sources(&bed.aws, arn).await;
        assert_eq!(associations.len(), 1, "{what}: {name}: {associations:?}");
        let mappings = crate::support::inspect::domain_mappings(&bed.aws, name, id).await;
        assert_eq!(mappings.len(), 1, "{what}: {name}: {mappings:?}");
        let named = crate::support::inspect::records_named(&bed.aws, zone, name)
            .await
            .len();
        assert_eq!(named, 1, "{what}: records named {name}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scenario_2b_kill_after_and_lose_each_write_of_a_domain() {
    crate::support::require_testbed();
    let mut bed = Bed::new("domain", 23, 68, &[]).await;
    let zone_name = format!("{}.internal.example.com", crate::support::unique("fz"));
    let certificate =
        crate::support::make::imported_certificate(&bed.aws.acm, &format!("*.{zone_name}")).await;
    let zone =
        crate::support::make::hosted_zone(&bed.aws.route53, &zone_name, Some(&bed.vpc().vpc_id))
            .await;
    let create = |bed: &Bed, name: &str| {
        bed.manifest(name)
            .domain(&format!("{name}.{zone_name}"), &certificate, Some(&zone))
            .apply();
    };
    create(&bed, "reference");
    bed.wait_ready("reference", CONVERGE);
    let writes: Vec<(String, String)> = bed
        .proxy
        .calls()
        .iter()
        .filter(|c| c["mutating"] == true)
        .map(|c| {
            let field = |f: &str| c[f].as_str().unwrap_or_default().to_string();
            (field("service"), field("operation"))
        })
        .collect();
    for required in DOMAIN_WRITES {
        assert!(
            writes.iter().any(|(_, op)| op == required),
            "a create with a domain makes no {required}: {writes:?}"
        );
    }
    let mut converge = Duration::ZERO;
    let mut faults = 0;
    // Killed right after each of the domain's writes (k counts the create's own writes).
    for (k, (_, operation)) in writes.iter().enumerate() {
        if !DOMAIN_WRITES.contains(&operation.as_str()) {
            continue;
        }
        let name = format!("kill-{}", k + 1);
        bed.proxy.freeze_after_mutating(k as u64 + 1);
        create(&bed, &name);
        let killed = bed
            .operator
            .kill_when_frozen(&bed.proxy, Duration::from_secs(300));
        assert!(
            killed,
            "the create made fewer than {} mutating calls",
            k + 1
        );
        faults += 1;
        let started = Instant::now();
        bed.wait_ready(&name, CONVERGE);
        converge += started.elapsed();
        let what = format!("killed after {operation} (write {})", k + 1);
        bed.assert_invariant(&what).await;
        assert_one_of_each_domain_part(&bed, &zone, &what).await;
    }
    // Each domain write's first response lost: the write happened, the operator never heard.
    for (service, operation) in writes
        .iter()
        .filter(|(_, op)| DOMAIN_WRITES.contains(&op.as_str()))
    {
        bed.proxy.reset();
        bed.proxy
            .set_rules(json!([{"service": service, "operation": operation,
                                    "fault": "lose_response", "schedule": [1]}]));
        let name = format!("lost-{}", operation.to_lowercase());
        let started = Instant::now();
        create(&bed, &name);
        bed.wait_ready(&name, CONVERGE);
        converge += started.elapsed();
        assert_eq!(bed.proxy.injected_total(), 1, "{}", bed.proxy.stats());
        faults += 1;
        let what = format!("lost response of {operation}");
        bed.assert_invariant(&what).await;
        assert_one_of_each_domain_part(&bed, &zone, &what).await;
    }
    let report = bed.assert_invariant("all domain faults").await;
    record(Row {
        scenario: "2b domain writes killed / lost",
        runs: faults,
        faults,
        report,
        converge,
        note: format!("kill after and lose each of {}", DOMAIN_WRITES.join(",")),
    });
}

// ---------------------------------------------------------------------------------------------
// 3. lost responses on every create call type

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scenario_3_lost_responses_on_every_create_call() {
    crate::support::require_testbed();
    let bed = Bed::new("lost", 31, 63, &[]).await;
    bed.create("reference");
    bed.wait_ready("reference", CONVERGE);
    let mut operations: Vec<(String, String)> = Vec::new();
    for call in bed.proxy.calls() {
        if call["mutating"] == true {
            let entry = (
                call["service"].as_str().unwrap_or_default().to_string(),
                call["operation"].as_str().unwrap_or_default().to_string(),
            );
            if !operations.contains(&entry) {
                operations.push(entry);
            }
        }
    }
    for required in [
        "CreateVpcEndpoint",
        "CreateSecurityGroup",
        "CreateRestApi",
        "CreateDeployment",
        "CreateFunction",
        "AddPermission",
    ] {
        assert!(
            operations.iter().any(|(_, op)| op == required),
            "a create makes no {required}: {operations:?}"
        );
    }
    let mut converge = Duration::ZERO;
    let mut faults = 0;
    // Each operation alone (its first call loses its response), then all of them at once.
    let mut runs: Vec<Vec<(String, String)>> =
        operations.iter().map(|op| vec![op.clone()]).collect();
    runs.push(operations.clone());
    for (i, run) in runs.iter().enumerate() {
        bed.proxy.reset();
        let rules: Vec<Value> = run
            .iter()
            .map(|(service, operation)| {
                json!({"service": service, "operation": operation, "fault": "lose_response",
                       "schedule": [1]})
            })
            .collect();
        bed.proxy.set_rules(Value::Array(rules));
        let name = format!("lost-{i}");
        let started = Instant::now();
        bed.create(&name);
        bed.wait_ready(&name, CONVERGE);
        converge += started.elapsed();
        let injected = bed.proxy.injected_total();
        assert_eq!(
            injected,
            run.len() as u64,
            "every listed call lost its response once: {}",
            bed.proxy.stats()
        );
        faults += injected;
        bed.assert_invariant(&format!("lost responses of {run:?}"))
            .await;
    }
    let report = bed.assert_invariant("all lost responses").await;
    record(Row {
        scenario: "3 lost responses",
        runs: runs.len() as u64,
        faults,
        report,
        converge,
        note: format!(
            "each of {} alone, then all at once",
            operations
                .iter()
                .map(|(_, op)| op.as_str())
                .collect::<Vec<_>>()
                .join(",")
        ),
    });
}

// ---------------------------------------------------------------------------------------------
// 4. delete while the create is half-way; delete while AWS throttles

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scenario_4_delete_half_way_and_while_throttled() {
    crate::support::require_testbed();
    let bed = Bed::new("delete", 41, 64, &[]).await;
    let started = Instant::now();
    let mut faults = 0;
    let mut runs = 0;
    // (a) half-way: hold the create after some of its writes, delete, let it go on
    for k in [3, 6, 9] {
        let name = format!("halfway-{k}");
        bed.proxy.freeze_after_mutating(k);
        bed.create(&name);
        assert!(bed.proxy.wait_frozen(Duration::from_secs(300)));
        bed.delete(&name);
        bed.proxy.release();
        bed.wait_gone(&name, CONVERGE);
        bed.assert_invariant(&format!("deleted after {k} writes of its create"))
            .await;
        runs += 1;
    }
    // (b) throttled: half of every call throttled while creating and deleting
    bed.proxy
        .set_rules(json!([{"fault": "throttle", "probability": 0.5}]));
    bed.create("throttled");
    let ready = bed.wait_for("throttled", CONVERGE, "a REST API in status", |o| {
        o["status"]["restApiId"].is_string()
    });
    assert!(ready["status"]["restApiId"].is_string());
    bed.delete("throttled");
    bed.wait_gone("throttled", CONVERGE);
    faults += bed.proxy.injected_total();
    runs += 1;
    bed.proxy.clear_rules();
    let report = bed.assert_invariant("deleted while throttled").await;
    assert!(faults > 0);
    record(Row {
        scenario: "4 delete half-way / throttled",
        runs,
        faults: faults + 3,
        report,
        converge: started.elapsed(),
        note: "deleted after 3, 6, 9 writes of a create; create+delete with 50% throttled".into(),
    });
}

// ---------------------------------------------------------------------------------------------
// 5. the API server restarts mid-run

// One thread (current-thread runtime): its support helpers talk to its own control plane.
#[tokio::test]
async fn scenario_5_the_api_server_restarts() {
    crate::support::require_testbed();
    // Its own control plane: restarting the shared one would stop every other test.
    let plane = ControlPlane::start();
    let _talking = plane.talk_to();
    // The lease outlasts the outage (the restart takes 3 s down plus up to ~20 s to start on a
    // loaded machine), so the leader keeps it and goes on without a restart. An outage longer
    // than the lease makes the leader exit on purpose (tests/e2e/runtime.rs), to be restarted.
    let bed = Bed::new("apiserver", 51, 65, &["--lease-duration-seconds", "90"]).await;
    let started = Instant::now();
    for name in ["before-0", "before-1"] {
        bed.create(name);
    }
    // restart while those creates are under way
    plane.restart_apiserver(3);
    // the same operator process (never restarted) finishes them and sees new objects
    bed.create("after");
    let names: Vec<String> = ["before-0", "before-1", "after"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    wait_all_ready(&bed, &names);
    bed.delete("before-1");
    bed.wait_gone("before-1", CONVERGE);
    let converge = started.elapsed();
    let report = bed.assert_invariant("after an API server restart").await;
    record(Row {
        scenario: "5 apiserver restart",
        runs: 1,
        faults: 1,
        report,
        converge,
        note:
            "apiserver down 3 s during 2 creates; then a create and a delete, no operator restart"
                .into(),
    });
}

// ---------------------------------------------------------------------------------------------
// 6. someone deletes an owned resource behind the operator's back

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scenario_6_owned_resources_deleted_behind_its_back() {
    crate::support::require_testbed();
    let mut bed = Bed::new("behind", 61, 66, &["--resync-seconds", "5"]).await;
    // one object: with private DNS, as the reference stack (its endpoint replacement waits for
    // the deleted one to go)
    bed.private_dns = true;
    bed.create("victim");
    let before = bed.wait_ready("victim", CONVERGE);
    let mut converge = Duration::ZERO;
    let mut runs = 0;
    for (field, kind) in [
        ("restApiId", "REST API"),
        ("functionArn", "function"),
        ("vpcEndpointId", "VPC endpoint"),
    ] {
        let current = bed.get("victim").expect("object");
        let id = current["status"][field]
            .as_str()
            .expect("status ID")
            .to_string();
        match field {
            "restApiId" => {
                bed.aws
                    .apigateway
                    .delete_rest_api()
                    .rest_api_id(&id)
                    .send()
                    .await
                    .expect("DeleteRestApi");
            }
            "functionArn" => {
                bed.aws
                    .lambda
                    .delete_function()
                    .function_name(&id)
                    .send()
                    .await
                    .expect("DeleteFunction");
            }
            _ => {
                bed.aws
                    .ec2
                    .delete_vpc_endpoints()
                    .vpc_endpoint_ids(&id)
                    .send()
                    .await
                    .expect("DeleteVpcEndpoints");
            }
        }
        let started = Instant::now();
        if field == "functionArn" {
            // The function's name, hence its ARN, is deterministic: it comes back under the same ARN.
            poll::until_async(
                "the function recreated",
                CONVERGE,
                Duration::from_secs(1),
                async || {
                    bed.aws
                        .lambda
                        .get_function()
                        .function_name(&id)
                        .send()
                        .await
                        .is_ok()
                },
            )
            .await;
        } else {
            let field_name = field.to_string();
            let old = id.clone();
            bed.wait_for(
                "victim",
                CONVERGE,
                &format!("a new {kind} in status.{field}"),
                move |o| {
                    o["status"][&field_name]
                        .as_str()
                        .is_some_and(|new| new != old)
                },
            );
        }
        bed.wait_ready("victim", CONVERGE);
        converge += started.elapsed();
        runs += 1;
        bed.assert_invariant(&format!("{kind} deleted behind its back"))
            .await;
    }
    let after = bed.get("victim").expect("object");
    for field in ["restApiId", "vpcEndpointId"] {
        assert_ne!(before["status"][field], after["status"][field], "{field}");
    }
    assert_eq!(
        before["status"]["functionArn"],
        after["status"]["functionArn"]
    );
    let report = bed.assert_invariant("all recreated").await;
    record(Row {
        scenario: "6 deleted behind its back",
        runs,
        faults: runs,
        report,
        converge,
        note: "REST API, function, VPC endpoint deleted in AWS; resync 5 s".into(),
    });
}

// ---------------------------------------------------------------------------------------------
// 3b. calls that reach AWS and never get an answer (half-open connections)

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scenario_3b_hung_calls_time_out_and_converge() {
    crate::support::require_testbed();
    let bed = Bed::new("hung", 35, 67, &["--aws-attempt-timeout-seconds", "5"]).await;
    // the first call of each kind hangs after reaching AWS (a write and reads)
    bed.proxy.set_rules(json!([
        {"operation": "CreateRestApi", "fault": "hang_after_forward", "schedule": [1]},
        {"operation": "CreateFunction", "fault": "hang_after_forward", "schedule": [1]},
        {"operation": "DescribeVpcEndpoints", "fault": "hang_after_forward", "schedule": [1]},
    ]));
    let started = Instant::now();
    bed.create("hung");
    bed.wait_ready("hung", CONVERGE);
    let converge = started.elapsed();
    let faults = bed.proxy.injected_total();
    assert_eq!(faults, 3, "{}", bed.proxy.stats());
    // the hung connections are still held by the proxy: the operator went on without them
    bed.proxy.release();
    let report = bed.assert_invariant("hung calls").await;
    record(Row {
        scenario: "3b hung calls",
        runs: 1,
        faults,
        report,
        converge,
        note: "first CreateRestApi, CreateFunction, DescribeVpcEndpoints never answered; attempt timeout 5 s".into(),
    });
}

// ---------------------------------------------------------------------------------------------
// 7. two replicas with leader election: only the leader acts; the leader killed mid-create

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scenario_7_the_leader_killed_mid_create() {
    crate::support::require_testbed();
    // A short lease so the takeover is quick; the standby polls the Lease every 2 s.
    let flags = ["--lease-duration-seconds", "6"];
    let mut bed = Bed::new("leader", 77, 69, &flags).await;
    wait_leader(&bed.namespace, &bed.operator, Duration::from_secs(60));
    // The second replica: same namespace, cluster name and AWS account (through the same proxy).
    let mut standby = bed
        .proxy
        .start_operator(&bed.namespace, &bed.cluster, &flags);
    wait_standby(&standby);
    // Kill points: early (the first resources exist, their responses lost) and late.
    let kill_points: &[u64] = if soak() {
        &[1, 2, 3, 4, 5, 6, 7]
    } else {
        &[2, 5]
    };
    let mut converge = Duration::ZERO;
    for (round, k) in kill_points.iter().enumerate() {
        let name = format!("lead-{round}");
        bed.proxy.freeze_after_mutating(*k);
        bed.create(&name);
        assert!(
            bed.proxy.wait_frozen(Duration::from_secs(300)),
            "the create made fewer than {k} mutating calls"
        );
        // Until now the standby has not touched AWS nor reconciled anything.
        let idle = standby.metrics();
        assert_eq!(idle.sum("privateapi_aws_calls_total"), 0.0, "round {round}");
        assert_eq!(
            idle.sum("privateapi_reconciles_total"),
            0.0,
            "round {round}"
        );
        // Its metrics count a call when its answer arrives: the k-th is still held.
        assert!(bed.operator.aws_calls().writes >= k - 1, "round {round}");
        // SIGKILL the leader with its k-th write done at AWS and its answer lost; the calls it
        // had in flight never reach AWS.
        bed.operator.kill();
        bed.proxy.release();
        let started = Instant::now();
        wait_leader(&bed.namespace, &standby, Duration::from_secs(6 + 60));
        bed.wait_ready(&name, CONVERGE);
        converge += started.elapsed();
        assert!(
            standby.aws_calls().writes > 0,
            "the new leader finished the create"
        );
        bed.assert_invariant(&format!("leader killed after write {k}"))
            .await;
        // The killed replica comes back as a restarted container does (same identity): it
        // waits as the standby, and the roles swap for the next round.
        bed.operator.start_again();
        std::mem::swap(&mut bed.operator, &mut standby);
        wait_standby(&standby);
        assert_eq!(
            lease_holder(&bed.namespace, LEASE).as_deref(),
            Some(bed.operator.identity().as_str())
        );
    }
    // Every object survives a resync by the current leader, and the set of resources holds.
    let report = bed.assert_invariant("leader kills").await;
    assert_eq!(
        report.live_objects,
        kill_points.len(),
        "{}",
        report.summary()
    );
    record(Row {
        scenario: "7 leader killed mid-create",
        runs: kill_points.len() as u64,
        faults: kill_points.len() as u64,
        report,
        converge,
        note: format!(
            "2 replicas, lease 6 s; leader SIGKILLed after write k = {kill_points:?} (its answer lost), standby took over; standby made 0 AWS calls while not leading"
        ),
    });
    drop(standby);
}

// ---------------------------------------------------------------------------------------------
// The checker itself: it sees what it must see

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_invariant_sees_duplicates_orphans_and_missing_ids() {
    crate::support::require_testbed();
    let bed = Bed::new("checker", 71, 68, &[]).await;
    bed.create("watched");
    let object = bed.wait_ready("watched", CONVERGE);
    let clean = bed.assert_invariant("before tampering").await;
    assert_eq!(clean.resources, 4, "{}", clean.summary());
    let uid = object["metadata"]["uid"].as_str().expect("uid").to_string();
    let tags = |uid: &str| {
        std::collections::HashMap::from([
            ("privateapi.io/cluster".to_string(), bed.cluster.clone()),
            ("privateapi.io/uid".to_string(), uid.to_string()),
        ])
    };
    // a second REST API of the live object: a duplicate (and not the one its status names)
    let twin = bed
        .aws
        .apigateway
        .create_rest_api()
        .name("twin")
        .set_tags(Some(tags(&uid)))
        .send()
        .await
        .expect("CreateRestApi")
        .id
        .expect("id");
    // a REST API of an object that no longer exists: an orphan
    let stray = bed
        .aws
        .apigateway
        .create_rest_api()
        .name("stray")
        .set_tags(Some(tags("00000000-0000-0000-0000-000000000000")))
        .send()
        .await
        .expect("CreateRestApi")
        .id
        .expect("id");
    // the deployment the status names, gone: missing (the stage goes with it first)
    let rest_api_id = object["status"]["restApiId"].as_str().expect("restApiId");
    bed.aws
        .apigateway
        .delete_stage()
        .rest_api_id(rest_api_id)
        .stage_name("prod")
        .send()
        .await
        .expect("DeleteStage");
    bed.aws
        .apigateway
        .delete_deployment()
        .rest_api_id(rest_api_id)
        .deployment_id(object["status"]["deploymentId"].as_str().expect("id"))
        .send()
        .await
        .expect("DeleteDeployment");
    let report = invariant::check(&bed.aws, &bed.scope()).await;
    assert_eq!(report.duplicates.len(), 1, "{}", report.summary());
    assert!(report.duplicates[0].contains(&twin), "{}", report.summary());
    assert_eq!(report.orphans.len(), 2, "{}", report.summary());
    assert!(report.orphans.iter().any(|o| o.contains(&stray)));
    assert!(report.orphans.iter().any(|o| o.contains(&twin)));
    assert_eq!(report.missing.len(), 1, "{}", report.summary());
    assert!(report.missing[0].contains("deploymentId"));
    for id in [&twin, &stray] {
        bed.aws
            .apigateway
            .delete_rest_api()
            .rest_api_id(id)
            .send()
            .await
            .expect("DeleteRestApi");
    }
    // the operator puts the stage back at its next reconcile
    crate::support::poke_and_wait(&bed.operator, &bed.namespace, "watched");
    bed.wait_ready("watched", CONVERGE);
    bed.assert_invariant("after cleaning up").await;
}
