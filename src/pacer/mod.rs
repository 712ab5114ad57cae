//! Pacing of AWS calls within the account's control-plane quotas.
//!
//! AWS throttles management APIs per account and region, for every caller together (this
//! operator, Terraform, the console, CI), and most of those quotas cannot be raised. So every AWS
//! call of the operator takes a token from a bucket first: one bucket per account-region and
//! operation where the operation has its own quota (API Gateway's `CreateDeployment`: 1 every
//! 5 s), and one per account-region and service for the service's total (API Gateway: 10/s).
//! The buckets run at `--aws-quota-share` (default 50 %) of the published rates, so the other
//! tools of the account keep the rest.
//!
//! Waiting callers are served by class (creates, spec changes and deletes before background
//! resyncs) and, within a class, round-robin by namespace, so one namespace with many objects
//! does not starve another. A throttling answer (other tools used the budget) halves the bucket's
//! rate; each success adds back a little of it (AIMD).
//!
//! The pacer sits in the HTTP connector of the SDK clients ([`crate::aws`]), so every attempt,
//! retries included, is paced, and the wait does not count against the attempt timeout.
//!
//! Here: [`Pacer`] and its settings; the quota table and overrides in `quotas`, the caller's
//! task-local and class in `caller`, the fair wait queue in `queue`, the token buckets in `bucket`.

mod bucket;
mod caller;
mod queue;
mod quotas;

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use crate::metrics::Metrics;

pub use bucket::Bucket;
use caller::current_caller;
pub use caller::{Caller, Priority, REPORT_EVERY, WaitReport, as_caller};
pub(crate) use queue::WaitQueue;
pub use quotas::{Quota, parse_override, published_quotas};
use quotas::{outside_service_total, per_operation_default};

/// Pacer settings (flags).
#[derive(Debug, Clone)]
pub struct PacerConfig {
    /// Pacing on at all (`--aws-pacing=false` turns it off, for comparison).
    pub enabled: bool,
    /// The share of each published quota the operator may use, in (0, 1].
    pub share: f64,
    /// Multiplies every rate (test beds that enforce scaled quotas).
    pub scale: f64,
    /// Overrides of the table (`--aws-quota`).
    pub overrides: Vec<Quota>,
    /// A call that waited this long is reported on its object.
    pub report_after: Duration,
}

impl Default for PacerConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            share: 0.5,
            scale: 1.0,
            overrides: Vec::new(),
            report_after: Duration::from_secs(5),
        }
    }
}

/// Headroom below the configured rate, for jitter between our clock and AWS's: at a share of
/// 100 %, requests released exactly one interval apart can arrive slightly closer.
const JITTER_HEADROOM: f64 = 0.97;
/// A bucket of one token (AWS's one-per-N-seconds quotas) cannot absorb a request that arrives
/// early at all, whatever the rate: its spacing gets this much more, for the variation in the
/// time between our release of a request and its arrival at AWS.
const SINGLE_TOKEN_SLACK: Duration = Duration::from_millis(25);

#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct BucketKey {
    /// `account/region`.
    scope: String,
    service: String,
    operation: Option<String>,
}

/// What a call is, for the pacer: put on each request by the SDK interceptor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallTag {
    pub scope: String,
    pub service: String,
    pub operation: String,
}

/// The buckets of every account-region, shared by all reconciles.
pub struct Pacer {
    config: PacerConfig,
    quotas: Vec<Quota>,
    buckets: Mutex<HashMap<BucketKey, Arc<Bucket>>>,
    metrics: Arc<Metrics>,
}

impl fmt::Debug for Pacer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pacer")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Pacer {
    pub fn new(config: PacerConfig, metrics: Arc<Metrics>) -> Self {
        let mut quotas = published_quotas();
        for o in &config.overrides {
            quotas.retain(|q| !(q.service == o.service && q.operation == o.operation));
            quotas.push(o.clone());
        }
        Self {
            config,
            quotas,
            buckets: Mutex::new(HashMap::new()),
            metrics,
        }
    }

    /// A pacer that never waits (tools and tests that talk to AWS outside the operator).
    pub fn disabled(metrics: Arc<Metrics>) -> Self {
        Self::new(
            PacerConfig {
                enabled: false,
                ..PacerConfig::default()
            },
            metrics,
        )
    }

    pub fn enabled(&self) -> bool {
        self.config.enabled
    }

    /// The quota that applies to `service`/`operation` (`operation` None: the service total).
    fn quota(&self, service: &str, operation: Option<&str>) -> Option<(f64, f64)> {
        self.quotas
            .iter()
            .find(|q| q.service == service && q.operation.as_deref() == operation)
            .map(|q| (q.rate_per_s, q.burst))
            .or_else(|| operation.and_then(|_| per_operation_default(service)))
    }

    fn bucket(&self, key: BucketKey) -> Option<Arc<Bucket>> {
        let (rate, burst) = self.quota(&key.service, key.operation.as_deref())?;
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        let bucket = buckets.entry(key).or_insert_with(|| {
            let mut rate = rate * self.config.share * self.config.scale * JITTER_HEADROOM;
            // The share applies to the burst too (other tools burst as well), but a bucket
            // always holds at least one token.
            let burst = (burst * self.config.share).max(1.0);
            if burst < 2.0 {
                rate = 1.0 / (1.0 / rate + SINGLE_TOKEN_SLACK.as_secs_f64());
            }
            Bucket::new(rate, burst)
        });
        Some(bucket.clone())
    }

    /// The buckets a call takes a token from: its operation's, then its service's total.
    fn buckets_of(&self, tag: &CallTag) -> Vec<Arc<Bucket>> {
        let key = |operation: Option<&str>| BucketKey {
            scope: tag.scope.clone(),
            service: tag.service.clone(),
            operation: operation.map(str::to_string),
        };
        let total = (!outside_service_total(&tag.service, &tag.operation)).then_some(None);
        std::iter::once(Some(tag.operation.as_str()))
            .chain(total)
            .filter_map(|operation| self.bucket(key(operation)))
            .collect()
    }

    /// Wait until `tag` may be sent.
    pub async fn acquire(&self, tag: &CallTag) {
        if !self.config.enabled {
            return;
        }
        let caller = current_caller();
        let (priority, namespace) = caller
            .as_ref()
            .map(|c| (c.priority, c.namespace.clone()))
            .unwrap_or((Priority::Foreground, String::new()));
        let started = Instant::now();
        for bucket in self.buckets_of(tag) {
            let Some(mut receiver) = bucket.take_or_queue(priority, &namespace) else {
                continue;
            };
            let mut next_report = self.config.report_after;
            loop {
                let until_report = next_report.saturating_sub(started.elapsed());
                match tokio::time::timeout(until_report, &mut receiver).await {
                    Ok(_) => break,
                    Err(_) => {
                        next_report = started.elapsed() + REPORT_EVERY;
                        if let Some(reports) = caller.as_ref().and_then(|c| c.on_wait.as_ref()) {
                            // Full: the reconciler has a report it has not written yet.
                            let _ = reports.try_send(WaitReport {
                                service: tag.service.clone(),
                                operation: tag.operation.clone(),
                                waited: started.elapsed(),
                                estimate: bucket.estimate(),
                            });
                        }
                    }
                }
            }
        }
        let waited = started.elapsed();
        if !waited.is_zero() {
            self.metrics
                .record_quota_wait(&tag.service, &tag.operation, waited);
        }
    }

    /// The answer to a call: a throttling answer slows its buckets down, a success speeds them up.
    pub fn on_answer(&self, tag: &CallTag, throttled: bool) {
        if !self.config.enabled {
            return;
        }
        for bucket in self.buckets_of(tag) {
            if throttled {
                bucket.on_throttled();
            } else {
                bucket.on_success();
            }
        }
    }

    /// Current and configured rate of every bucket in use, for `/metrics`.
    pub fn rates(&self) -> Vec<(String, String, f64, f64)> {
        let buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        let mut rates: Vec<_> = buckets
            .iter()
            .map(|(key, bucket)| {
                let (rate, max_rate) = bucket.rates();
                (
                    key.service.clone(),
                    key.operation.clone().unwrap_or_else(|| "*".to_string()),
                    rate,
                    max_rate,
                )
            })
            .collect();
        rates.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
        rates
    }
}

#[cfg(test)]
mod tests;
