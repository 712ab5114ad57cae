//! The benchmark harness (bench/harness.rs) on N = 2 with the debug operator, so that it keeps
//! working between benchmark runs. It checks that a run produces every field with sane values, not
//! how fast anything is: performance is measured by `make bench` only.

#[path = "../../bench/harness.rs"]
mod harness;

use std::path::PathBuf;

use serde_json::Value;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn harness_measures_two_objects_and_writes_the_results_files() {
    crate::support::require_testbed();
    let zip = std::env::var("PAPI_HANDLER_ZIP_X86_64")
        .expect("PAPI_HANDLER_ZIP_X86_64 (scripts/test.sh builds the handler package)");
    let work = tempfile::tempdir().expect("temp dir");
    let mut config = harness::RunConfig::new(
        2,
        0,
        PathBuf::from(env!("CARGO_BIN_EXE_privateapi-operator")),
        PathBuf::from(zip),
    );
    // Object 0 creates its endpoint, object 1 uses its namespace's shared one.
    config.namespaces = 2;
    config.create_every = 2;
    config.work_dir = work.path().join("run");
    config
        .mode
        .insert("purpose".into(), Value::String("harness test".into()));
    let run = match harness::run(&config).await {
        Ok(run) => run,
        Err(err) => {
            let log =
                std::fs::read_to_string(config.work_dir.join("operator.log")).unwrap_or_default();
            panic!("bench run failed: {err}\n---- operator log ----\n{log}");
        }
    };

    assert_eq!((run.n, run.latency_ms), (2, 0));
    assert_eq!(run.setup["endpoint_create_objects"], 1);
    assert_eq!(run.setup["endpoint_id_objects"], 1);
    assert_eq!(run.setup["purpose"], "harness test");
    // Times: ordered and positive.
    assert!(run.ready_p50_s > 0.0, "{run:?}");
    assert!(run.ready_p50_s <= run.ready_p95_s && run.ready_p95_s <= run.ready_max_s);
    assert!(run.ready_max_s <= run.ready_all_s + 0.5, "{run:?}");
    // A create writes (endpoint, API, function, routes, deployment) and reads; each object was
    // reconciled at least once in each phase.
    assert!(run.create_calls_per_object.writes >= 8.0, "{run:?}");
    assert!(run.create_calls_per_object.reads >= 3.0, "{run:?}");
    for operation in [
        "EC2:CreateVpcEndpoint",
        "API Gateway:CreateRestApi",
        "Lambda:CreateFunction",
        "API Gateway:CreateDeployment",
    ] {
        assert!(
            run.create_calls_by_operation.contains_key(operation),
            "{operation} missing: {:?}",
            run.create_calls_by_operation
        );
    }
    assert!(
        run.create_reconciles >= 2 && run.steady_reconciles >= 2,
        "{run:?}"
    );
    // The steady state reads and never writes.
    assert!(run.steady_calls_per_object.reads >= 1.0, "{run:?}");
    assert_eq!(run.steady_calls_per_object.writes, 0.0, "{run:?}");
    let steady_total: f64 = run.steady_calls_by_service.values().sum();
    assert!(
        (steady_total - run.steady_calls_per_object.reads).abs() < 0.01,
        "{run:?}"
    );
    // Memory and CPU of a live process.
    assert!(
        run.idle_rss_mib > 1.0 && run.peak_rss_mib >= run.idle_rss_mib,
        "{run:?}"
    );
    assert!(run.final_rss_mib > 1.0 && run.final_rss_mib <= run.peak_rss_mib + 0.1);
    assert!(run.cpu_s > 0.0 && run.create_cpu_s <= run.cpu_s, "{run:?}");

    // The results files.
    let results =
        harness::report("abc1234", "2026-01-02", std::slice::from_ref(&run)).expect("report");
    let dir = work.path().join("results");
    let (json_path, md_path) = harness::write_results(&dir, &results).expect("write results");
    assert_eq!(
        json_path.file_name().and_then(|n| n.to_str()),
        Some("2026-01-02-abc1234.json")
    );
    let written: Value =
        serde_json::from_str(&std::fs::read_to_string(&json_path).expect("json")).expect("parses");
    assert_eq!(written["commit"], "abc1234");
    assert!(written["machine"]["cpus"].as_u64().is_some_and(|c| c >= 1));
    assert!(written["machine"]["model"].is_string());
    assert!(written["machine"]["memory"].is_string());
    let first = &written["runs"][0];
    for field in [
        "n",
        "latency_ms",
        "ready_all_s",
        "ready_p50_s",
        "ready_p95_s",
        "ready_max_s",
        "create_calls_per_object",
        "create_calls_by_operation",
        "steady_calls_per_object",
        "steady_calls_by_operation",
        "peak_rss_mib",
        "rss_per_object_kib",
        "cpu_s",
        "apigw_calls_per_object",
        "lambda_calls_per_object",
        "ec2_calls_per_object",
        "throttles",
    ] {
        assert!(!first[field].is_null(), "{field} missing in {first}");
    }
    for phase in ["create_calls_per_object", "steady_calls_per_object"] {
        assert!(first[phase]["reads"].is_number() && first[phase]["writes"].is_number());
    }
    // Without quotas enforced there is no bound.
    assert!(first["quota_bound_s"].is_null(), "{first}");
    // Fields added later land next to the others and survive a round trip.
    let mut extended = run.clone();
    extended
        .extra
        .insert("later_figure".into(), Value::from(0u64));
    let round_trip: harness::RunResult =
        serde_json::from_value(serde_json::to_value(&extended).expect("serializes"))
            .expect("parses back");
    assert_eq!(round_trip.extra["later_figure"], 0);
    let table = std::fs::read_to_string(&md_path).expect("markdown");
    assert!(table.contains("| 2 | 0 |"), "{table}");
}

#[test]
fn metrics_are_parsed_and_compared() {
    let before = harness::Snapshot::parse(
        "privateapi_aws_calls_total{service=\"EC2\",operation=\"DescribeVpcEndpoints\",kind=\"read\",outcome=\"ok\"} 4\n\
         privateapi_reconciles_total{result=\"ok\"} 2\n",
    );
    let after = harness::Snapshot::parse(
        "# HELP privateapi_aws_calls_total AWS API calls\n\
         privateapi_aws_calls_total{service=\"EC2\",operation=\"DescribeVpcEndpoints\",kind=\"read\",outcome=\"ok\"} 10\n\
         privateapi_aws_calls_total{service=\"API Gateway\",operation=\"CreateRestApi\",kind=\"write\",outcome=\"ok\"} 2\n\
         privateapi_aws_calls_total{service=\"API Gateway\",operation=\"GetRestApi\",kind=\"read\",outcome=\"throttled\"} 1\n\
         privateapi_reconciles_total{result=\"ok\"} 5\n\
         privateapi_reconciles_total{result=\"aws_error\"} 1\n",
    );
    let delta = after.since(&before);
    assert_eq!(delta.reconciles, 4);
    assert_eq!(delta.total_calls(), 9);
    assert_eq!(delta.throttled(), 1);
    let per = delta.per_object(2);
    assert_eq!((per.reads, per.writes), (3.5, 1.0));
    assert_eq!(delta.by_operation(2)["EC2:DescribeVpcEndpoints"], 3.0);
    assert_eq!(delta.by_service(2)["API Gateway"], 1.5);
}

#[test]
fn the_quota_bound_is_the_slowest_create_quota() {
    // N = 200 (40 with their own endpoint) at 4× the published quotas, all of them ours:
    // CreateDeployment, 1 every 5 s → 0.8/s, 199 after the first token: 248.75 s (CreateRestApi
    // would take 149.25 s, CreateVpcEndpoint 30 s).
    let bound = harness::quota_bound_s(200, 40, 4.0, 1.0);
    assert!((bound - 248.75).abs() < 1e-9, "{bound}");
    // At half the quotas, twice as long.
    let half = harness::quota_bound_s(200, 40, 4.0, 0.5);
    assert!((half - 2.0 * 248.75).abs() < 1e-9, "{half}");
}
