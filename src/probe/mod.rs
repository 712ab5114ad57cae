//! The prober (`spec.probe`): the operator's own HTTPS request to each Ready object's URL, from
//! where the operator runs, reported as the `Reachable` condition.
//!
//! - `request`: one `GET`, step by step (name, connection, TLS, answer);
//! - `diagnosis`: what the outcome means for a user (pure);
//! - `schedule`: when each object is due, within the prober's own budget (pure);
//! - here: the loop over the controller's store, and the condition's writes.
//!
//! It never calls AWS: what it knows of an object is its status. It writes only the `Reachable`
//! condition, under its own field manager, and only when the condition changes (the latency in a
//! coarse class); the reconciler neither owns that condition nor is woken by it (see
//! `status::operator_view` and `watch_cache`).

mod diagnosis;
mod request;
mod schedule;
#[cfg(test)]
mod tests;

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, Patch, PatchParams};
use kube::core::DeserializeGuard;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Client, ResourceExt};
use serde_json::json;
use tokio::task::JoinSet;
use tracing::{debug, info, warn};

use crate::conditions::{self, REACHABLE};
use crate::crd::PrivateApi;
use crate::metrics::Metrics;

pub use diagnosis::{Reachability, diagnose, latency_class, reason};
pub use request::{HttpsGet, Outcome, probe_url, split_url};
pub use schedule::{Candidate, Schedule};

/// The field manager of the `Reachable` condition.
pub const FIELD_MANAGER: &str = "privateapi-operator-probe";

/// How often the prober looks at the store for objects due.
const TICK: Duration = Duration::from_secs(1);
/// After a failed write of an object's condition, how long before it is written again.
const WRITE_RETRY: Duration = Duration::from_secs(30);

/// The prober's flags (`--probe-*`).
#[derive(Debug, Clone)]
pub struct ProbeSettings {
    /// Probes per second, all objects together.
    pub rate: f64,
    /// Probes in flight at most.
    pub concurrency: usize,
    /// Certificates trusted besides the platform's (a PEM file).
    pub extra_ca: Option<PathBuf>,
}

/// One probe's result, on its way to the condition.
struct Probed {
    key: String,
    generation: Option<i64>,
    reachability: Reachability,
    latency: Option<Duration>,
}

pub struct Prober {
    client: Client,
    store: Store<DeserializeGuard<PrivateApi>>,
    https: HttpsGet,
    metrics: Arc<Metrics>,
    schedule: Schedule,
    concurrency: usize,
    /// Objects whose condition could not be written, and when to try again.
    write_failed: HashMap<String, Instant>,
}

impl Prober {
    pub fn new(
        client: Client,
        store: Store<DeserializeGuard<PrivateApi>>,
        metrics: Arc<Metrics>,
        https: HttpsGet,
        settings: &ProbeSettings,
    ) -> Self {
        Self {
            client,
            store,
            https,
            metrics,
            schedule: Schedule::new(settings.rate, Instant::now()),
            concurrency: settings.concurrency.max(1),
            write_failed: HashMap::new(),
        }
    }

    /// Probe until the task is dropped (the controller stops).
    pub async fn run(mut self) {
        let mut ticker = tokio::time::interval(TICK);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut in_flight: JoinSet<Probed> = JoinSet::new();
        loop {
            tokio::select! {
                _ = ticker.tick() => self.start_due(&mut in_flight).await,
                Some(done) = in_flight.join_next() => match done {
                    Ok(probed) => self.report(probed).await,
                    Err(e) => warn!(error = %e, "a probe task failed"),
                },
            }
        }
    }

    /// Start the probes that are due; mark the objects that cannot be probed.
    async fn start_due(&mut self, in_flight: &mut JoinSet<Probed>) {
        let mut candidates = Vec::new();
        let mut urls = HashMap::new();
        let mut with_probe = HashSet::new();
        for guard in self.store.state() {
            let Ok(object) = &guard.0 else { continue };
            if object.metadata.deletion_timestamp.is_some() {
                continue;
            }
            let key = key_of(object);
            let current = current_condition(object);
            let Some(probe) = &object.spec.probe else {
                // The probe left the spec: so does its condition.
                if current.is_some() {
                    self.write(object, None).await;
                }
                continue;
            };
            with_probe.insert(key.clone());
            let url = object.status.as_ref().and_then(|s| s.url.as_deref());
            match url {
                Some(url) if conditions::ready_now(object) => {
                    candidates.push(Candidate {
                        key: key.clone(),
                        interval: Duration::from_secs(u64::from(probe.interval_seconds)),
                    });
                    let timeout = Duration::from_secs(u64::from(probe.timeout_seconds));
                    urls.insert(
                        key,
                        (
                            probe_url(url, &probe.path),
                            probe.expected_status,
                            timeout,
                            object.metadata.generation,
                        ),
                    );
                }
                _ => {
                    let why = if url.is_none() {
                        "not probed: the object has no URL yet"
                    } else {
                        "not probed while Ready is not True for the current generation"
                    };
                    let desired = Reachability::not_probed(why);
                    if !same(current, &desired, object.metadata.generation) {
                        self.write(object, Some(&desired)).await;
                    }
                }
            }
        }
        self.schedule.retain(|key| with_probe.contains(key));
        let slots = self.concurrency.saturating_sub(in_flight.len());
        for key in self.schedule.take_due(&candidates, slots, Instant::now()) {
            let Some((url, expected, timeout, generation)) = urls.remove(&key) else {
                continue;
            };
            let https = self.https.clone();
            in_flight.spawn(async move {
                let outcome = https.get(&url, timeout).await;
                let latency = match &outcome {
                    Outcome::Answered { latency, .. } => Some(*latency),
                    _ => None,
                };
                debug!(object = %key, %url, ?outcome, "probed");
                Probed {
                    reachability: diagnose(&outcome, &url, expected),
                    key,
                    generation,
                    latency,
                }
            });
        }
    }

    /// A probe's result to the metrics, and to the condition when it changed and the object
    /// is still the one probed.
    async fn report(&mut self, probed: Probed) {
        self.metrics
            .record_probe(probed.reachability.reason, probed.latency);
        let Some((namespace, name)) = probed.key.split_once('/') else {
            return;
        };
        let reference = ObjectRef::<DeserializeGuard<PrivateApi>>::new(name).within(namespace);
        let Some(guard) = self.store.get(&reference) else {
            return;
        };
        let Ok(object) = &guard.0 else { return };
        // A newer spec is probed on its own turn.
        if object.metadata.generation != probed.generation || object.spec.probe.is_none() {
            return;
        }
        if !same(
            current_condition(object),
            &probed.reachability,
            probed.generation,
        ) {
            self.write(object, Some(&probed.reachability)).await;
        }
    }

    /// Write `reachability` as the object's `Reachable` condition (`None`: remove it), unless
    /// a write of this object failed moments ago.
    async fn write(&mut self, object: &PrivateApi, reachability: Option<&Reachability>) {
        let key = key_of(object);
        if self
            .write_failed
            .get(&key)
            .is_some_and(|until| Instant::now() < *until)
        {
            return;
        }
        let status = match reachability {
            Some(reachability) => json!({
                "conditions": [condition(current_condition(object), reachability, object.metadata.generation, Timestamp::now())]
            }),
            // Applying nothing under this manager takes the condition away.
            None => json!({}),
        };
        let patch = json!({
            "apiVersion": "privateapi.io/v1alpha1",
            "kind": "PrivateApi",
            "status": status,
        });
        let api: Api<PrivateApi> =
            Api::namespaced(self.client.clone(), &object.namespace().unwrap_or_default());
        match api
            .patch_status(
                &object.name_any(),
                &PatchParams::apply(FIELD_MANAGER).force(),
                &Patch::Apply(&patch),
            )
            .await
        {
            Ok(_) => {
                self.write_failed.remove(&key);
                match reachability {
                    Some(r) => {
                        info!(object = %key, status = r.status, reason = r.reason, message = %r.message, "Reachable")
                    }
                    None => info!(object = %key, "Reachable condition removed (no spec.probe)"),
                }
            }
            Err(e) => {
                warn!(object = %key, error = %e, "cannot write the Reachable condition");
                self.write_failed.insert(key, Instant::now() + WRITE_RETRY);
            }
        }
    }
}

fn key_of(object: &PrivateApi) -> String {
    format!(
        "{}/{}",
        object.namespace().unwrap_or_default(),
        object.name_any()
    )
}

fn current_condition(object: &PrivateApi) -> Option<&Condition> {
    object
        .status
        .as_ref()
        .and_then(|s| conditions::find(&s.conditions, REACHABLE))
}

/// Whether the object's condition already says `desired` for `generation`.
pub fn same(current: Option<&Condition>, desired: &Reachability, generation: Option<i64>) -> bool {
    current.is_some_and(|c| {
        c.status == desired.status
            && c.reason == desired.reason
            && c.message == desired.message
            && c.observed_generation == generation
    })
}

/// The condition for `desired`, its transition time kept unless its status changes.
pub fn condition(
    current: Option<&Condition>,
    desired: &Reachability,
    generation: Option<i64>,
    now: Timestamp,
) -> Condition {
    let last_transition_time = match current {
        Some(c) if c.status == desired.status => c.last_transition_time.clone(),
        _ => Time(now),
    };
    Condition {
        type_: REACHABLE.to_string(),
        status: desired.status.to_string(),
        reason: desired.reason.to_string(),
        message: desired.message.clone(),
        observed_generation: generation,
        last_transition_time,
    }
}
