//! In-process metrics: every AWS call (recorded by an SDK interceptor), reconcile results and
//! durations, objects by readiness. Exposed on `/metrics` in the OpenMetrics text format by the
//! `prometheus-client` crate.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

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

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AwsCallLabels {
    service: String,
    operation: String,
    kind: &'static str,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OperationLabels {
    service: String,
    operation: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabel {
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabel {
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ClassLabel {
    class: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabel {
    state: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReadyLabel {
    ready: &'static str,
}

type SecondsCounter = Counter<f64, AtomicU64>;

/// The exposed families (`/metrics`, OpenMetrics text by `prometheus-client`).
struct Families {
    registry: Registry,
    aws_calls: Family<AwsCallLabels, Counter>,
    reconciles: Family<ResultLabel, Counter>,
    reconcile_duration: Histogram,
    quota_wait_seconds: Family<OperationLabels, SecondsCounter>,
    quota_waits: Family<OperationLabels, Counter>,
    resyncs: Family<OutcomeLabel, Counter>,
    admission_wait_seconds: Family<ClassLabel, SecondsCounter>,
    admissions: Family<ClassLabel, Counter>,
    reconciles_in_flight: Family<StateLabel, Gauge>,
    objects: Family<ReadyLabel, Gauge>,
    leader: Gauge,
    probes: Family<ResultLabel, Counter>,
    probe_duration: Histogram,
}

impl Default for Families {
    fn default() -> Self {
        // The metrics are handles on shared values: the registry gets clones of them.
        let families = Self {
            registry: Registry::default(),
            aws_calls: Family::default(),
            reconciles: Family::default(),
            reconcile_duration: Histogram::new(DURATION_BUCKETS),
            quota_wait_seconds: Family::default(),
            quota_waits: Family::default(),
            resyncs: Family::default(),
            admission_wait_seconds: Family::default(),
            admissions: Family::default(),
            reconciles_in_flight: Family::default(),
            objects: Family::default(),
            leader: Gauge::default(),
            probes: Family::default(),
            probe_duration: Histogram::new(DURATION_BUCKETS),
        };
        let mut registry = Registry::default();
        // Counters are registered without `_total`: the encoder appends it to the samples.
        registry.register(
            "privateapi_aws_calls",
            "AWS API calls (HTTP attempts) by service, operation and outcome",
            families.aws_calls.clone(),
        );
        registry.register(
            "privateapi_reconciles",
            "Reconciles by result",
            families.reconciles.clone(),
        );
        registry.register(
            "privateapi_reconcile_duration_seconds",
            "Duration of one reconcile",
            families.reconcile_duration.clone(),
        );
        registry.register(
            "privateapi_aws_quota_wait_seconds",
            "Time AWS calls waited for the pacer's quota tokens",
            families.quota_wait_seconds.clone(),
        );
        registry.register(
            "privateapi_aws_quota_waits",
            "AWS calls that waited for a quota token",
            families.quota_waits.clone(),
        );
        registry.register(
            "privateapi_resyncs",
            "Periodic checks of objects in sync, by outcome",
            families.resyncs.clone(),
        );
        registry.register(
            "privateapi_admission_wait_seconds",
            "Time reconciles waited for a slot (--concurrency), by class",
            families.admission_wait_seconds.clone(),
        );
        registry.register(
            "privateapi_admissions",
            "Reconciles admitted to a slot, by class",
            families.admissions.clone(),
        );
        registry.register(
            "privateapi_reconciles_in_flight",
            "Reconciles holding a slot (running) or waiting for one",
            families.reconciles_in_flight.clone(),
        );
        registry.register(
            "privateapi_objects",
            "PrivateApi objects by Ready status",
            families.objects.clone(),
        );
        registry.register(
            "privateapi_leader",
            "Whether this process is the leader",
            families.leader.clone(),
        );
        registry.register(
            "privateapi_probes",
            "Probes of objects with spec.probe, by the reason of their Reachable condition",
            families.probes.clone(),
        );
        registry.register(
            "privateapi_probe_duration_seconds",
            "Time from a probe's start to its answer's status line (answered probes)",
            families.probe_duration.clone(),
        );
        // Present from the start, at zero.
        for state in ["running", "waiting"] {
            families
                .reconciles_in_flight
                .get_or_create(&StateLabel { state })
                .set(0);
        }
        for ready in ["true", "false"] {
            families.objects.get_or_create(&ReadyLabel { ready }).set(0);
        }
        Self {
            registry,
            ..families
        }
    }
}

/// Shared by the AWS interceptor, the reconciler and the admin server.
#[derive(Default)]
pub struct Metrics {
    families: Families,
    /// AWS calls by (service, operation, outcome): what [`Metrics::aws_call_counts`] answers
    /// (the families can be encoded, not queried).
    aws_calls: Mutex<BTreeMap<(String, String, &'static str), u64>>,
    /// Objects known to this process: whether each is Ready.
    ready_objects: Mutex<BTreeMap<String, bool>>,
}

/// AWS call counts by service and operation.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct CallCounts {
    pub reads: u64,
    pub writes: u64,
    pub throttled: u64,
    pub by_operation: BTreeMap<String, u64>,
}

/// A lock on plain maps: a panic while holding it leaves them usable.
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Metrics {
    pub fn record_aws_call(&self, service: &str, operation: &str, status: Option<u16>) {
        let outcome = outcome_label(status);
        let kind = if is_read_operation(operation) {
            "read"
        } else {
            "write"
        };
        self.families
            .aws_calls
            .get_or_create(&AwsCallLabels {
                service: service.to_string(),
                operation: operation.to_string(),
                kind,
                outcome,
            })
            .inc();
        *lock(&self.aws_calls)
            .entry((service.to_string(), operation.to_string(), outcome))
            .or_default() += 1;
    }

    pub fn record_quota_wait(&self, service: &str, operation: &str, waited: Duration) {
        let labels = OperationLabels {
            service: service.to_string(),
            operation: operation.to_string(),
        };
        self.families
            .quota_wait_seconds
            .get_or_create(&labels)
            .inc_by(waited.as_secs_f64());
        self.families.quota_waits.get_or_create(&labels).inc();
    }

    /// A reconcile of class `class` got its slot after `waited`.
    pub fn record_admission(&self, class: &'static str, waited: Duration) {
        let labels = ClassLabel { class };
        self.families
            .admission_wait_seconds
            .get_or_create(&labels)
            .inc_by(waited.as_secs_f64());
        self.families.admissions.get_or_create(&labels).inc();
    }

    pub fn set_reconciles_in_flight(&self, running: usize, waiting: usize) {
        for (state, n) in [("running", running), ("waiting", waiting)] {
            self.families
                .reconciles_in_flight
                .get_or_create(&StateLabel { state })
                .set(i64::try_from(n).unwrap_or(i64::MAX));
        }
    }

    pub fn record_resync(&self, outcome: &'static str) {
        self.families
            .resyncs
            .get_or_create(&OutcomeLabel { outcome })
            .inc();
    }

    pub fn record_reconcile(&self, result: &'static str, duration: Duration) {
        self.families
            .reconciles
            .get_or_create(&ResultLabel { result })
            .inc();
        self.families
            .reconcile_duration
            .observe(duration.as_secs_f64());
    }

    /// One probe: the reason of its `Reachable` condition, and its latency when it was answered.
    pub fn record_probe(&self, reason: &'static str, latency: Option<Duration>) {
        self.families
            .probes
            .get_or_create(&ResultLabel { result: reason })
            .inc();
        if let Some(latency) = latency {
            self.families.probe_duration.observe(latency.as_secs_f64());
        }
    }

    /// Drop the readiness of objects for which `live` does not hold (deleted without a cleanup
    /// by this process).
    pub fn retain_ready(&self, live: impl Fn(&str) -> bool) {
        let mut ready_objects = lock(&self.ready_objects);
        ready_objects.retain(|key, _| live(key));
        self.publish_ready(&ready_objects);
    }

    /// Remember whether an object is Ready (None: not reconciled yet, or deleted).
    pub fn set_ready(&self, object: &str, ready: Option<bool>) {
        let mut ready_objects = lock(&self.ready_objects);
        match ready {
            Some(ready) => {
                ready_objects.insert(object.to_string(), ready);
            }
            None => {
                ready_objects.remove(object);
            }
        }
        self.publish_ready(&ready_objects);
    }

    fn publish_ready(&self, ready_objects: &BTreeMap<String, bool>) {
        let ready = ready_objects.values().filter(|r| **r).count();
        let not_ready = ready_objects.len() - ready;
        for (label, n) in [("true", ready), ("false", not_ready)] {
            self.families
                .objects
                .get_or_create(&ReadyLabel { ready: label })
                .set(i64::try_from(n).unwrap_or(i64::MAX));
        }
    }

    pub fn aws_call_counts(&self) -> CallCounts {
        let aws_calls = lock(&self.aws_calls);
        let mut counts = CallCounts::default();
        for ((service, operation, outcome), n) in aws_calls.iter() {
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

    /// The OpenMetrics text exposition of everything ([`CONTENT_TYPE`]).
    pub fn render(&self, leader: bool) -> String {
        self.families.leader.set(i64::from(leader));
        let mut out = String::new();
        if let Err(error) = encode(&mut out, &self.families.registry) {
            // Writing to a String does not fail; if the encoder ever does, say so on the page.
            tracing::error!(%error, "encoding the metrics failed");
        }
        out
    }
}

/// The content type of [`Metrics::render`]'s page.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

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

    #[test]
    fn the_page_is_openmetrics_with_every_family_declared() {
        let metrics = Metrics::default();
        // A labelled family appears with its first sample.
        metrics.record_aws_call("EC2", "DescribeVpcEndpoints", Some(200));
        metrics.record_reconcile("ok", Duration::from_millis(30));
        metrics.record_resync("in_sync");
        metrics.record_admission("new", Duration::from_millis(5));
        metrics.record_quota_wait("EC2", "DescribeVpcEndpoints", Duration::from_millis(1500));
        metrics.set_ready("default/a", Some(true));
        metrics.set_ready("default/b", Some(false));
        metrics.set_ready("default/b", None);
        let text = metrics.render(false);
        for (family, kind) in [
            ("privateapi_aws_calls", "counter"),
            ("privateapi_reconciles", "counter"),
            ("privateapi_reconcile_duration_seconds", "histogram"),
            ("privateapi_aws_quota_wait_seconds", "counter"),
            ("privateapi_aws_quota_waits", "counter"),
            ("privateapi_resyncs", "counter"),
            ("privateapi_admission_wait_seconds", "counter"),
            ("privateapi_admissions", "counter"),
            ("privateapi_reconciles_in_flight", "gauge"),
            ("privateapi_objects", "gauge"),
            ("privateapi_leader", "gauge"),
        ] {
            assert!(
                text.contains(&format!("# TYPE {family} {kind}\n")),
                "{family}: {text}"
            );
        }
        assert!(text.contains(
            "privateapi_aws_quota_wait_seconds_total{service=\"EC2\",operation=\"DescribeVpcEndpoints\"} 1.5\n"
        ));
        assert!(text.contains("privateapi_objects{ready=\"true\"} 1\n"));
        assert!(text.contains("privateapi_objects{ready=\"false\"} 0\n"));
        assert!(text.contains("privateapi_reconciles_in_flight{state=\"waiting\"} 0\n"));
        assert!(text.ends_with("# EOF\n"), "{text}");
    }
}
