//! In-process metrics: every AWS call (recorded by an SDK interceptor), reconcile results and
//! durations, objects by readiness. Rendered in the Prometheus text format on `/metrics`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::time::Duration;

/// Whether an AWS operation changes anything. Every read operation the operator uses starts with one
/// of these verbs; anything else counts as a write.
pub fn is_read_operation(operation: &str) -> bool {
    ["Describe", "Get", "List"]
        .iter()
        .any(|verb| operation.starts_with(verb))
}

/// Outcome label of one HTTP attempt.
pub fn outcome_label(status: Option<u16>) -> &'static str {
    match status {
        None => "network_error",
        Some(429) => "throttled",
        Some(s) if (200..300).contains(&s) => "ok",
        Some(s) if s >= 500 => "server_error",
        Some(_) => "client_error",
    }
}

const DURATION_BUCKETS: [f64; 10] = [0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];

#[derive(Default)]
struct Histogram {
    buckets: [u64; DURATION_BUCKETS.len()],
    count: u64,
    sum: f64,
}

#[derive(Default)]
struct Inner {
    aws_calls: BTreeMap<(String, String, &'static str), u64>,
    reconciles: BTreeMap<&'static str, u64>,
    reconcile_duration: Histogram,
    ready_objects: BTreeMap<String, (bool, bool)>,
    /// Seconds AWS calls waited for quota, and how many waited, by service and operation.
    quota_waits: BTreeMap<(String, String), (f64, u64)>,
    /// Background resyncs by how they ended (`in_sync` from the shared observation, `deep`,
    /// `drift` when they fell back to a full reconcile).
    resyncs: BTreeMap<&'static str, u64>,
    /// Seconds reconciles waited for a slot, and how many were admitted, by class.
    admissions: BTreeMap<&'static str, (f64, u64)>,
    /// Reconciles holding a slot, and waiting for one, now.
    reconciles_running: usize,
    reconciles_waiting: usize,
}

/// Shared by the AWS interceptor, the reconciler and the admin server.
#[derive(Default)]
pub struct Metrics {
    inner: Mutex<Inner>,
}

/// AWS call counts by service and operation.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct CallCounts {
    pub reads: u64,
    pub writes: u64,
    pub throttled: u64,
    pub by_operation: BTreeMap<String, u64>,
}

impl Metrics {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves plain counters behind: still usable.
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub fn record_aws_call(&self, service: &str, operation: &str, status: Option<u16>) {
        let key = (
            service.to_string(),
            operation.to_string(),
            outcome_label(status),
        );
        *self.lock().aws_calls.entry(key).or_default() += 1;
    }

    pub fn record_quota_wait(&self, service: &str, operation: &str, waited: Duration) {
        let mut inner = self.lock();
        let entry = inner
            .quota_waits
            .entry((service.to_string(), operation.to_string()))
            .or_default();
        entry.0 += waited.as_secs_f64();
        entry.1 += 1;
    }

    /// A reconcile of class `class` got its slot after `waited`.
    pub fn record_admission(&self, class: &'static str, waited: Duration) {
        let mut inner = self.lock();
        let entry = inner.admissions.entry(class).or_default();
        entry.0 += waited.as_secs_f64();
        entry.1 += 1;
    }

    pub fn set_reconciles_in_flight(&self, running: usize, waiting: usize) {
        let mut inner = self.lock();
        inner.reconciles_running = running;
        inner.reconciles_waiting = waiting;
    }

    pub fn record_resync(&self, outcome: &'static str) {
        *self.lock().resyncs.entry(outcome).or_default() += 1;
    }

    pub fn record_reconcile(&self, result: &'static str, duration: Duration) {
        let mut inner = self.lock();
        *inner.reconciles.entry(result).or_default() += 1;
        let secs = duration.as_secs_f64();
        let histogram = &mut inner.reconcile_duration;
        histogram.count += 1;
        histogram.sum += secs;
        for (i, bound) in DURATION_BUCKETS.iter().enumerate() {
            if secs <= *bound {
                histogram.buckets[i] += 1;
            }
        }
    }

    /// Remember whether an object is Ready (`known` false: not reconciled yet / deleted).
    /// Drop the readiness of objects for which `live` does not hold (deleted without a cleanup
    /// by this process).
    pub fn retain_ready(&self, live: impl Fn(&str) -> bool) {
        self.lock().ready_objects.retain(|key, _| live(key));
    }

    pub fn set_ready(&self, object: &str, ready: Option<bool>) {
        let mut inner = self.lock();
        match ready {
            Some(ready) => {
                inner
                    .ready_objects
                    .insert(object.to_string(), (true, ready));
            }
            None => {
                inner.ready_objects.remove(object);
            }
        }
    }

    pub fn aws_call_counts(&self) -> CallCounts {
        let inner = self.lock();
        let mut counts = CallCounts::default();
        for ((service, operation, outcome), n) in &inner.aws_calls {
            if is_read_operation(operation) {
                counts.reads += n;
            } else {
                counts.writes += n;
            }
            if *outcome == "throttled" {
                counts.throttled += n;
            }
            *counts
                .by_operation
                .entry(format!("{service}:{operation}"))
                .or_default() += n;
        }
        counts
    }

    /// The Prometheus text exposition of everything.
    pub fn render(&self, leader: bool) -> String {
        let inner = self.lock();
        let mut out = String::new();
        let _ = writeln!(
            out,
            "# HELP privateapi_aws_calls_total AWS API calls (HTTP attempts) by service, operation and outcome."
        );
        let _ = writeln!(out, "# TYPE privateapi_aws_calls_total counter");
        for ((service, operation, outcome), n) in &inner.aws_calls {
            let kind = if is_read_operation(operation) {
                "read"
            } else {
                "write"
            };
            let _ = writeln!(
                out,
                "privateapi_aws_calls_total{{service=\"{service}\",operation=\"{operation}\",kind=\"{kind}\",outcome=\"{outcome}\"}} {n}"
            );
        }
        let _ = writeln!(
            out,
            "# HELP privateapi_reconciles_total Reconciles by result."
        );
        let _ = writeln!(out, "# TYPE privateapi_reconciles_total counter");
        for (result, n) in &inner.reconciles {
            let _ = writeln!(
                out,
                "privateapi_reconciles_total{{result=\"{result}\"}} {n}"
            );
        }
        let _ = writeln!(
            out,
            "# HELP privateapi_reconcile_duration_seconds Duration of one reconcile."
        );
        let _ = writeln!(
            out,
            "# TYPE privateapi_reconcile_duration_seconds histogram"
        );
        let histogram = &inner.reconcile_duration;
        for (i, bound) in DURATION_BUCKETS.iter().enumerate() {
            let _ = writeln!(
                out,
                "privateapi_reconcile_duration_seconds_bucket{{le=\"{bound}\"}} {}",
                histogram.buckets[i]
            );
        }
        let _ = writeln!(
            out,
            "privateapi_reconcile_duration_seconds_bucket{{le=\"+Inf\"}} {}",
            histogram.count
        );
        let _ = writeln!(
            out,
            "privateapi_reconcile_duration_seconds_sum {}",
            histogram.sum
        );
        let _ = writeln!(
            out,
            "privateapi_reconcile_duration_seconds_count {}",
            histogram.count
        );
        let _ = writeln!(
            out,
            "# HELP privateapi_aws_quota_wait_seconds_total Time AWS calls waited for the pacer's quota tokens."
        );
        let _ = writeln!(
            out,
            "# TYPE privateapi_aws_quota_wait_seconds_total counter"
        );
        for ((service, operation), (seconds, _)) in &inner.quota_waits {
            let _ = writeln!(
                out,
                "privateapi_aws_quota_wait_seconds_total{{service=\"{service}\",operation=\"{operation}\"}} {seconds:.3}"
            );
        }
        let _ = writeln!(
            out,
            "# HELP privateapi_aws_quota_waits_total AWS calls that waited for a quota token."
        );
        let _ = writeln!(out, "# TYPE privateapi_aws_quota_waits_total counter");
        for ((service, operation), (_, n)) in &inner.quota_waits {
            let _ = writeln!(
                out,
                "privateapi_aws_quota_waits_total{{service=\"{service}\",operation=\"{operation}\"}} {n}"
            );
        }
        let _ = writeln!(
            out,
            "# HELP privateapi_resyncs_total Periodic checks of objects in sync, by outcome."
        );
        let _ = writeln!(out, "# TYPE privateapi_resyncs_total counter");
        for (outcome, n) in &inner.resyncs {
            let _ = writeln!(out, "privateapi_resyncs_total{{outcome=\"{outcome}\"}} {n}");
        }
        let _ = writeln!(
            out,
            "# HELP privateapi_admission_wait_seconds_total Time reconciles waited for a slot (--concurrency), by class."
        );
        let _ = writeln!(
            out,
            "# TYPE privateapi_admission_wait_seconds_total counter"
        );
        for (class, (seconds, _)) in &inner.admissions {
            let _ = writeln!(
                out,
                "privateapi_admission_wait_seconds_total{{class=\"{class}\"}} {seconds:.3}"
            );
        }
        let _ = writeln!(
            out,
            "# HELP privateapi_admissions_total Reconciles admitted to a slot, by class."
        );
        let _ = writeln!(out, "# TYPE privateapi_admissions_total counter");
        for (class, (_, n)) in &inner.admissions {
            let _ = writeln!(out, "privateapi_admissions_total{{class=\"{class}\"}} {n}");
        }
        let _ = writeln!(
            out,
            "# HELP privateapi_reconciles_in_flight Reconciles holding a slot (running) or waiting for one."
        );
        let _ = writeln!(out, "# TYPE privateapi_reconciles_in_flight gauge");
        let _ = writeln!(
            out,
            "privateapi_reconciles_in_flight{{state=\"running\"}} {}",
            inner.reconciles_running
        );
        let _ = writeln!(
            out,
            "privateapi_reconciles_in_flight{{state=\"waiting\"}} {}",
            inner.reconciles_waiting
        );
        let ready = inner.ready_objects.values().filter(|(_, r)| *r).count();
        let not_ready = inner.ready_objects.len() - ready;
        let _ = writeln!(
            out,
            "# HELP privateapi_objects PrivateApi objects by Ready status."
        );
        let _ = writeln!(out, "# TYPE privateapi_objects gauge");
        let _ = writeln!(out, "privateapi_objects{{ready=\"true\"}} {ready}");
        let _ = writeln!(out, "privateapi_objects{{ready=\"false\"}} {not_ready}");
        let _ = writeln!(
            out,
            "# HELP privateapi_leader Whether this process is the leader."
        );
        let _ = writeln!(out, "# TYPE privateapi_leader gauge");
        let _ = writeln!(out, "privateapi_leader {}", u8::from(leader));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_and_writes_are_told_apart() {
        let metrics = Metrics::default();
        metrics.record_aws_call("EC2", "DescribeVpcEndpoints", Some(200));
        metrics.record_aws_call("EC2", "CreateVpcEndpoint", Some(200));
        metrics.record_aws_call("APIGateway", "GetRestApi", Some(429));
        let counts = metrics.aws_call_counts();
        assert_eq!((counts.reads, counts.writes, counts.throttled), (2, 1, 1));
        let text = metrics.render(true);
        assert!(text.contains(
            "privateapi_aws_calls_total{service=\"APIGateway\",operation=\"GetRestApi\",kind=\"read\",outcome=\"throttled\"} 1"
        ));
        assert!(text.contains("privateapi_leader 1"));
    }

    #[test]
    fn histogram_counts_every_observation() {
        let metrics = Metrics::default();
        metrics.record_reconcile("ok", Duration::from_millis(30));
        metrics.record_reconcile("error", Duration::from_secs(60));
        let text = metrics.render(false);
        assert!(text.contains("privateapi_reconcile_duration_seconds_bucket{le=\"0.05\"} 1"));
        assert!(text.contains("privateapi_reconcile_duration_seconds_bucket{le=\"+Inf\"} 2"));
        assert!(text.contains("privateapi_reconciles_total{result=\"error\"} 1"));
    }
}
