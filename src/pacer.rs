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

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fmt;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use crate::metrics::Metrics;

/// One published quota: `rate_per_s` tokens per second into a bucket of `burst` tokens.
#[derive(Debug, Clone, PartialEq)]
pub struct Quota {
    /// The SDK's service name (`API Gateway`, `Lambda`, `EC2`), as in the metrics.
    pub service: String,
    /// `None`: the service's total over all operations.
    pub operation: Option<String>,
    pub rate_per_s: f64,
    pub burst: f64,
    /// Where the figure comes from.
    pub source: &'static str,
}

const APIGW_QUOTAS: &str = "https://docs.aws.amazon.com/apigateway/latest/developerguide/limits.html#api-gateway-control-service-limits-table";
const LAMBDA_QUOTAS: &str =
    "https://docs.aws.amazon.com/lambda/latest/dg/gettingstarted-limits.html#api-requests";
const EC2_THROTTLING: &str = "https://docs.aws.amazon.com/ec2/latest/devguide/ec2-api-throttling.html#throttling-limits-rate-based";

/// The published quotas, per account and region.
///
/// EC2 has no service-wide bucket: each API has its own, sized by its category (non-mutating,
/// unfiltered-and-unpaginated non-mutating, mutating, and a few resource-intensive actions with
/// smaller buckets). The operator's EC2 calls are listed one by one; an EC2 operation missing
/// here falls back to the mutating bucket (the smallest of the general categories) per operation.
pub fn published_quotas() -> Vec<Quota> {
    let q = |service: &str, operation: Option<&str>, rate_per_s: f64, burst: f64, source| Quota {
        service: service.to_string(),
        operation: operation.map(str::to_string),
        rate_per_s,
        burst,
        source,
    };
    let mut quotas = vec![
        // API Gateway: "API Gateway quotas for creating, deploying and managing an API".
        q("API Gateway", None, 10.0, 40.0, APIGW_QUOTAS),
        q(
            "API Gateway",
            Some("CreateRestApi"),
            1.0 / 3.0,
            1.0,
            APIGW_QUOTAS,
        ),
        q(
            "API Gateway",
            Some("ImportRestApi"),
            1.0 / 3.0,
            1.0,
            APIGW_QUOTAS,
        ),
        q("API Gateway", Some("PutRestApi"), 1.0, 1.0, APIGW_QUOTAS),
        q(
            "API Gateway",
            Some("CreateDeployment"),
            1.0 / 5.0,
            1.0,
            APIGW_QUOTAS,
        ),
        q(
            "API Gateway",
            Some("DeleteRestApi"),
            1.0 / 30.0,
            1.0,
            APIGW_QUOTAS,
        ),
        q(
            "API Gateway",
            Some("GetResources"),
            5.0 / 2.0,
            5.0,
            APIGW_QUOTAS,
        ),
        q(
            "API Gateway",
            Some("CreateResource"),
            5.0,
            5.0,
            APIGW_QUOTAS,
        ),
        // Lambda: "API request rate quotas". The control-plane total excludes GetFunction and
        // GetPolicy, which have their own.
        q("Lambda", None, 15.0, 15.0, LAMBDA_QUOTAS),
        q("Lambda", Some("GetFunction"), 100.0, 100.0, LAMBDA_QUOTAS),
        q("Lambda", Some("GetPolicy"), 15.0, 15.0, LAMBDA_QUOTAS),
    ];
    // EC2: request token limits per API (bucket size, refill per second).
    for operation in [
        "DescribeVpcEndpoints",
        "DescribeSecurityGroups",
        "DescribeSubnets",
        "DescribeVpcs",
        "DescribeNetworkInterfaces",
    ] {
        quotas.push(q("EC2", Some(operation), 20.0, 100.0, EC2_THROTTLING));
    }
    for operation in [
        "CreateSecurityGroup",
        "DeleteSecurityGroup",
        "AuthorizeSecurityGroupIngress",
        "RevokeSecurityGroupIngress",
        "AuthorizeSecurityGroupEgress",
        "RevokeSecurityGroupEgress",
        "DeleteTags",
    ] {
        quotas.push(q("EC2", Some(operation), 5.0, 50.0, EC2_THROTTLING));
    }
    quotas.push(q("EC2", Some("CreateTags"), 10.0, 100.0, EC2_THROTTLING));
    for operation in [
        "CreateVpcEndpoint",
        "ModifyVpcEndpoint",
        "DeleteVpcEndpoints",
    ] {
        quotas.push(q("EC2", Some(operation), 0.3, 4.0, EC2_THROTTLING));
    }
    quotas
}

/// Operations with a quota of their own that does not count towards their service's total:
/// Lambda's 15/s control-plane total excludes GetFunction and GetPolicy ("API request rate
/// quotas"). API Gateway's per-operation quotas count towards its 10/s as well.
fn outside_service_total(service: &str, operation: &str) -> bool {
    service == "Lambda" && ["GetFunction", "GetPolicy"].contains(&operation)
}

/// Services whose operations each have their own bucket (no service-wide total): an operation
/// missing from the table gets this default.
fn per_operation_default(service: &str) -> Option<(f64, f64)> {
    (service == "EC2").then_some((5.0, 50.0))
}

/// Parse `--aws-quota` overrides: `SERVICE[:OPERATION]=RATE[/BURST]`, RATE per second (`0.2`) or
/// as `1/5s`, e.g. `API Gateway:CreateDeployment=1/5s`, `Lambda=10/10`.
pub fn parse_override(text: &str) -> Result<Quota, String> {
    let (target, value) = text
        .split_once('=')
        .ok_or_else(|| format!("{text:?}: expected SERVICE[:OPERATION]=RATE[/BURST]"))?;
    let (service, operation) = match target.split_once(':') {
        Some((service, operation)) => (service.trim(), Some(operation.trim().to_string())),
        None => (target.trim(), None),
    };
    if !["API Gateway", "Lambda", "EC2"].contains(&service) {
        return Err(format!(
            "{text:?}: the service is one of \"API Gateway\", \"Lambda\", \"EC2\""
        ));
    }
    let value = value.trim();
    // `1/5s`: one request every five seconds.
    let (rate_per_s, burst) = if let Some((count, period)) = value
        .split_once('/')
        .filter(|(_, period)| period.ends_with('s'))
    {
        let count: f64 = count
            .trim()
            .parse()
            .map_err(|_| format!("{text:?}: bad count"))?;
        let seconds: f64 = period
            .trim_end_matches('s')
            .trim()
            .parse()
            .map_err(|_| format!("{text:?}: bad period"))?;
        (count / seconds, count.max(1.0))
    } else {
        let (rate, burst) = match value.split_once('/') {
            Some((rate, burst)) => (rate, Some(burst)),
            None => (value, None),
        };
        let rate: f64 = rate
            .trim()
            .parse()
            .map_err(|_| format!("{text:?}: bad rate"))?;
        let burst = match burst {
            Some(burst) => burst
                .trim()
                .parse()
                .map_err(|_| format!("{text:?}: bad burst"))?,
            None => rate.max(1.0),
        };
        (rate, burst)
    };
    if !(rate_per_s > 0.0 && rate_per_s.is_finite()) || burst < 1.0 {
        return Err(format!("{text:?}: the rate must be > 0 and the burst >= 1"));
    }
    Ok(Quota {
        service: service.to_string(),
        operation,
        rate_per_s,
        burst,
        source: "--aws-quota",
    })
}

/// Who is calling: set by the reconciler around each reconcile (a task-local), read by the
/// connector when a call waits.
#[derive(Clone)]
pub struct Caller {
    /// `namespace/name` of the object.
    pub object: String,
    pub namespace: String,
    pub priority: Priority,
    /// Told when a call of this reconcile has waited for quota longer than the report threshold,
    /// and again every [`REPORT_EVERY`] while it waits. The reconciler writes the report on its
    /// object; the pacer only sends it (never blocking: a report the reconciler has not taken
    /// yet is not queued behind, the next one comes soon enough).
    pub on_wait: Option<mpsc::Sender<WaitReport>>,
}

/// How often a report is repeated while the same call still waits.
pub const REPORT_EVERY: Duration = Duration::from_secs(30);

/// A call that waits for quota.
#[derive(Debug, Clone, PartialEq)]
pub struct WaitReport {
    pub service: String,
    pub operation: String,
    /// How long it has waited so far.
    pub waited: Duration,
    /// The pacer's estimate of the remaining wait.
    pub estimate: Duration,
}

impl fmt::Display for WaitReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "waiting for the {} {} quota: {} s so far, about {} s more",
            self.service,
            self.operation,
            self.waited.as_secs(),
            self.estimate.as_secs().max(1)
        )
    }
}

tokio::task_local! {
    static CALLER: Caller;
}

/// Run `future` (one reconcile) as `caller`: its AWS calls wait in `caller`'s class and namespace.
pub async fn as_caller<F: Future>(caller: Caller, future: F) -> F::Output {
    CALLER.scope(caller, future).await
}

fn current_caller() -> Option<Caller> {
    CALLER.try_with(Clone::clone).ok()
}

/// The class of a call: background resyncs wait behind everything else.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Priority {
    /// Reconcile slots only ([`crate::admission`]): the next look at an object that waits for
    /// AWS to finish what it started (an endpoint pending, a function updating). It is cheap and
    /// its object is nearly done; behind the creates it would wait for all of them.
    Recheck = 0,
    /// Creates, spec changes, drift repair and deletes.
    Foreground = 1,
    /// The periodic check of objects that are in sync.
    Background = 2,
}

impl Priority {
    /// The metric label.
    pub fn label(self) -> &'static str {
        match self {
            Priority::Recheck => "recheck",
            Priority::Foreground => "foreground",
            Priority::Background => "background",
        }
    }
}

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
/// AIMD: a throttling answer multiplies the rate by this ...
const DECREASE: f64 = 0.5;
/// ... never below this fraction of the configured rate ...
const FLOOR: f64 = 0.05;
/// ... and each success adds this fraction of the configured rate back.
const INCREASE: f64 = 0.02;

/// Waiters (of one bucket, or for a reconcile slot: [`crate::admission`]): by class, then
/// round-robin by namespace.
#[derive(Default)]
pub(crate) struct WaitQueue {
    classes: BTreeMap<Priority, FairQueue>,
    len: usize,
}

#[derive(Default)]
struct FairQueue {
    by_namespace: HashMap<String, VecDeque<oneshot::Sender<()>>>,
    /// Namespaces with waiters, in the order they are served next.
    turn: VecDeque<String>,
}

impl WaitQueue {
    pub(crate) fn push(
        &mut self,
        priority: Priority,
        namespace: &str,
        waiter: oneshot::Sender<()>,
    ) {
        let class = self.classes.entry(priority).or_default();
        let waiters = class.by_namespace.entry(namespace.to_string()).or_default();
        if waiters.is_empty() {
            class.turn.push_back(namespace.to_string());
        }
        waiters.push_back(waiter);
        self.len += 1;
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// The next waiter: the first class with waiters, its next namespace in turn.
    pub(crate) fn pop(&mut self) -> Option<oneshot::Sender<()>> {
        for class in self.classes.values_mut() {
            while let Some(namespace) = class.turn.pop_front() {
                let Some(waiters) = class.by_namespace.get_mut(&namespace) else {
                    continue;
                };
                let Some(waiter) = waiters.pop_front() else {
                    class.by_namespace.remove(&namespace);
                    continue;
                };
                if waiters.is_empty() {
                    class.by_namespace.remove(&namespace);
                } else {
                    class.turn.push_back(namespace);
                }
                self.len -= 1;
                return Some(waiter);
            }
        }
        None
    }
}

struct BucketState {
    /// The configured rate (quota × share × scale); AIMD moves `rate` below it.
    max_rate: f64,
    rate: f64,
    burst: f64,
    tokens: f64,
    stamp: Instant,
    queue: WaitQueue,
    dispatching: bool,
}

impl BucketState {
    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.stamp).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        self.stamp = now;
    }

    fn estimate(&self) -> Duration {
        let needed = self.queue.len as f64 + 1.0 - self.tokens;
        Duration::from_secs_f64((needed.max(0.0) / self.rate).min(86_400.0))
    }
}

/// One token bucket with its waiters.
pub struct Bucket {
    state: Mutex<BucketState>,
}

impl Bucket {
    fn new(rate: f64, burst: f64) -> Arc<Self> {
        Arc::new(Self {
            state: Mutex::new(BucketState {
                max_rate: rate,
                rate,
                burst,
                // Full at start, as AWS's buckets are for an account that was idle.
                tokens: burst,
                stamp: Instant::now(),
                queue: WaitQueue::default(),
                dispatching: false,
            }),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BucketState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A token now, or a place in the queue to wait on.
    fn take_or_queue(
        self: &Arc<Self>,
        priority: Priority,
        namespace: &str,
    ) -> Option<oneshot::Receiver<()>> {
        let mut state = self.lock();
        state.refill(Instant::now());
        if state.queue.len == 0 && state.tokens >= 1.0 {
            state.tokens -= 1.0;
            return None;
        }
        let (sender, receiver) = oneshot::channel();
        state.queue.push(priority, namespace, sender);
        if !state.dispatching {
            state.dispatching = true;
            let bucket = self.clone();
            tokio::spawn(async move { bucket.dispatch().await });
        }
        Some(receiver)
    }

    /// Hands out tokens to waiters as they refill, until nobody waits.
    async fn dispatch(self: Arc<Self>) {
        loop {
            let pause = {
                let mut state = self.lock();
                state.refill(Instant::now());
                while state.tokens >= 1.0 {
                    match state.queue.pop() {
                        // A waiter that gave up (its reconcile was dropped) does not use the token.
                        Some(waiter) => {
                            if waiter.send(()).is_ok() {
                                state.tokens -= 1.0;
                            }
                        }
                        None => break,
                    }
                }
                if state.queue.len == 0 {
                    state.dispatching = false;
                    return;
                }
                Duration::from_secs_f64(((1.0 - state.tokens) / state.rate).max(0.001))
            };
            tokio::time::sleep(pause).await;
        }
    }

    fn on_throttled(&self) {
        let mut state = self.lock();
        state.refill(Instant::now());
        state.rate = (state.rate * DECREASE).max(state.max_rate * FLOOR);
        // What the bucket held was evidently not there at AWS.
        state.tokens = state.tokens.min(0.0);
    }

    fn on_success(&self) {
        let mut state = self.lock();
        if state.rate < state.max_rate {
            state.refill(Instant::now());
            state.rate = (state.rate + state.max_rate * INCREASE).min(state.max_rate);
        }
    }

    fn estimate(&self) -> Duration {
        self.lock().estimate()
    }

    /// (current rate, configured rate) per second.
    pub fn rates(&self) -> (f64, f64) {
        let state = self.lock();
        (state.rate, state.max_rate)
    }
}

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
mod tests {
    use super::*;

    fn tag(service: &str, operation: &str) -> CallTag {
        CallTag {
            scope: "123456789012/us-east-1".into(),
            service: service.into(),
            operation: operation.into(),
        }
    }

    fn pacer(share: f64, scale: f64) -> Pacer {
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

    #[test]
    fn table_has_the_issue_figures() {
        let p = pacer(1.0, 1.0);
        assert_eq!(p.quota("API Gateway", None), Some((10.0, 40.0)));
        assert_eq!(
            p.quota("API Gateway", Some("CreateDeployment")),
            Some((0.2, 1.0))
        );
        assert_eq!(
            p.quota("API Gateway", Some("DeleteRestApi")),
            Some((1.0 / 30.0, 1.0))
        );
        assert_eq!(p.quota("Lambda", None), Some((15.0, 15.0)));
        assert_eq!(p.quota("Lambda", Some("GetFunction")), Some((100.0, 100.0)));
        // An operation without its own API Gateway quota only takes from the total.
        assert_eq!(p.quota("API Gateway", Some("GetStages")), None);
        // EC2: every API has a bucket; unknown ones get the mutating category's.
        assert_eq!(
            p.quota("EC2", Some("DescribeVpcEndpoints")),
            Some((20.0, 100.0))
        );
        assert_eq!(p.quota("EC2", Some("SomethingNew")), Some((5.0, 50.0)));
        assert_eq!(p.quota("EC2", None), None);
        assert!(
            published_quotas()
                .iter()
                .all(|q| q.source.starts_with("https://docs.aws.amazon.com/"))
        );
    }

    #[test]
    fn overrides_parse() {
        let q = parse_override("API Gateway:CreateDeployment=1/5s").expect("parses");
        assert_eq!(q.operation.as_deref(), Some("CreateDeployment"));
        assert!((q.rate_per_s - 0.2).abs() < 1e-9 && q.burst == 1.0);
        let q = parse_override("Lambda=10/20").expect("parses");
        assert_eq!((q.operation, q.rate_per_s, q.burst), (None, 10.0, 20.0));
        let q = parse_override("EC2:CreateTags=2.5").expect("parses");
        assert_eq!((q.rate_per_s, q.burst), (2.5, 2.5));
        assert!(parse_override("S3=1").is_err());
        assert!(parse_override("Lambda=0").is_err());
        assert!(parse_override("Lambda").is_err());
        let p = Pacer::new(
            PacerConfig {
                overrides: vec![parse_override("API Gateway:CreateDeployment=1/2s").expect("ok")],
                ..PacerConfig::default()
            },
            Arc::new(Metrics::default()),
        );
        assert_eq!(
            p.quota("API Gateway", Some("CreateDeployment")),
            Some((0.5, 1.0))
        );
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

    #[tokio::test]
    async fn foreground_goes_first_and_namespaces_take_turns() {
        // CreateDeployment at ×100: one token every ~52 ms.
        let p = Arc::new(pacer(1.0, 100.0));
        let t = tag("API Gateway", "CreateDeployment");
        // Hold the bucket empty while the callers queue: take its token, then queue them all
        // before the next one comes (each queues at once, in order).
        p.acquire(&t).await;
        let order = Arc::new(Mutex::new(Vec::new()));
        let callers = [
            ("busy", Priority::Background),
            ("busy", Priority::Foreground),
            ("busy", Priority::Foreground),
            ("busy", Priority::Foreground),
            ("quiet", Priority::Foreground),
        ];
        let mut receivers = Vec::new();
        {
            let bucket = p
                .buckets_of(&t)
                .into_iter()
                .next()
                .expect("the operation's bucket");
            for (i, (namespace, priority)) in callers.into_iter().enumerate() {
                let receiver = bucket
                    .take_or_queue(priority, namespace)
                    .expect("queued: the bucket is empty");
                receivers.push((i, receiver));
            }
        }
        let mut tasks = Vec::new();
        for (i, receiver) in receivers {
            let order = order.clone();
            tasks.push(tokio::spawn(async move {
                receiver.await.expect("served");
                order.lock().expect("lock").push(i);
            }));
        }
        for task in tasks {
            task.await.expect("task");
        }
        // busy#1, then quiet (its namespace's turn) before busy's second and third; the
        // background call last.
        assert_eq!(*order.lock().expect("lock"), vec![1, 4, 2, 3, 0]);
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
    async fn throttling_halves_the_rate_and_successes_restore_it() {
        let p = pacer(1.0, 1.0);
        let t = tag("Lambda", "ListFunctions");
        p.acquire(&t).await;
        p.on_answer(&t, true);
        let rates = p.rates();
        let total = rates
            .iter()
            .find(|r| r.0 == "Lambda" && r.1 == "*")
            .expect("bucket");
        assert!((total.2 - total.3 * 0.5).abs() < 1e-9, "{rates:?}");
        for _ in 0..100 {
            p.on_answer(&t, false);
        }
        let rates = p.rates();
        let total = rates
            .iter()
            .find(|r| r.0 == "Lambda" && r.1 == "*")
            .expect("bucket");
        assert!((total.2 - total.3).abs() < 1e-9, "{rates:?}");
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
}
