use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;

use super::*;

pub(super) fn tag(service: &str, operation: &str) -> CallTag {
    CallTag {
        scope: "123456789012/us-east-1".into(),
        service: service.into(),
        operation: operation.into(),
    }
}

pub(super) fn pacer(share: f64, scale: f64) -> Pacer {
    Pacer::new(
        PacerConfig {
            share,
            scale,
            ..PacerConfig::default()
        },
        Arc::new(Metrics::default()),
    )
}

fn caller(namespace: &str, priority: Priority) -> Caller {
    Caller {
        object: format!("{namespace}/o"),
        namespace: namespace.into(),
        priority,
        on_wait: None,
    }
}

// Timings below run the published quotas scaled up (×100 to ×1000), so that they take
// milliseconds; they check the spacing the buckets impose, with room for a busy machine
// above (never below: a bucket must not release early).

#[tokio::test]
async fn calls_are_spaced_by_the_operation_quota_and_share() {
    // CreateDeployment: 1 every 5 s; at a share of 50 % and ×100, one every ~103 ms after
    // the first (a full bucket holds one).
    let p = pacer(0.5, 100.0);
    let t = tag("API Gateway", "CreateDeployment");
    let start = Instant::now();
    let mut at = Vec::new();
    for _ in 0..4 {
        p.acquire(&t).await;
        at.push(start.elapsed().as_secs_f64());
    }
    let interval = 5.0 / (0.5 * 100.0 * JITTER_HEADROOM) + SINGLE_TOKEN_SLACK.as_secs_f64();
    assert!(at[0] < interval / 2.0, "{at:?}");
    for (i, t) in at.iter().enumerate().skip(1) {
        let expected = interval * i as f64;
        assert!(*t >= expected - 0.005 && *t < expected + 0.5, "{at:?}");
    }
}

#[tokio::test]
async fn the_service_total_bounds_all_operations() {
    // API Gateway at ×100: burst 40, then ~970/s for every operation together.
    let p = pacer(1.0, 100.0);
    let start = Instant::now();
    for i in 0..240 {
        let op = if i % 2 == 0 {
            "GetStages"
        } else {
            "GetRestApi"
        };
        p.acquire(&tag("API Gateway", op)).await;
    }
    let elapsed = start.elapsed().as_secs_f64();
    let expected = 200.0 / (10.0 * 100.0 * JITTER_HEADROOM);
    assert!(
        elapsed >= expected - 0.01 && elapsed < expected + 1.0,
        "{elapsed} vs {expected}"
    );
}

#[test]
fn lambda_reads_with_their_own_quota_stay_outside_the_total() {
    let p = pacer(1.0, 1.0);
    assert_eq!(p.buckets_of(&tag("Lambda", "GetFunction")).len(), 1);
    assert_eq!(p.buckets_of(&tag("Lambda", "GetPolicy")).len(), 1);
    // ListFunctions has no quota of its own: the total only.
    assert_eq!(p.buckets_of(&tag("Lambda", "ListFunctions")).len(), 1);
    assert_eq!(p.buckets_of(&tag("Lambda", "CreateFunction")).len(), 1);
    // API Gateway: CreateDeployment's own and the total; GetStages the total only.
    assert_eq!(
        p.buckets_of(&tag("API Gateway", "CreateDeployment")).len(),
        2
    );
    assert_eq!(p.buckets_of(&tag("API Gateway", "GetStages")).len(), 1);
}

#[tokio::test]
async fn a_long_wait_is_reported_on_the_caller() {
    // DeleteRestApi: 1 every 30 s; ×100: ~0.31 s. Reported after 0.1 s.
    let p = Pacer::new(
        PacerConfig {
            share: 1.0,
            scale: 100.0,
            report_after: Duration::from_millis(100),
            ..PacerConfig::default()
        },
        Arc::new(Metrics::default()),
    );
    let t = tag("API Gateway", "DeleteRestApi");
    p.acquire(&t).await;
    let (sender, mut received) = mpsc::channel(4);
    let mut c = caller("ns", Priority::Foreground);
    c.on_wait = Some(sender);
    as_caller(c, p.acquire(&t)).await;
    // The caller (and its sender) is gone with the reconcile: the channel ends.
    let mut reports = Vec::new();
    while let Some(report) = received.recv().await {
        reports.push(report);
    }
    // Reported once (the repeat would come 30 s later).
    assert_eq!(reports.len(), 1, "{reports:?}");
    assert_eq!(reports[0].operation, "DeleteRestApi");
    assert!(
        reports[0].estimate > Duration::from_millis(100),
        "{reports:?}"
    );
    assert!(
        reports[0]
            .to_string()
            .contains("API Gateway DeleteRestApi quota")
    );
}

#[tokio::test]
async fn disabled_never_waits() {
    let p = Pacer::disabled(Arc::new(Metrics::default()));
    let start = Instant::now();
    // DeleteRestApi, 1 every 30 s: ten would take minutes if paced.
    for _ in 0..10 {
        p.acquire(&tag("API Gateway", "DeleteRestApi")).await;
    }
    assert!(start.elapsed() < Duration::from_secs(5));
}
