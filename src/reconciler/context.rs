//! The context every reconcile shares: clients, settings, the slots, and the records this process
//! keeps per object (failures, waits for AWS, confirmations, last status writes), with the pruning
//! that forgets the records of objects gone from the store.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kube::ResourceExt;
use kube::core::DeserializeGuard;
use kube::runtime::events::Recorder;
use kube::runtime::reflector::Store;

use super::{DEFAULT_CONCURRENCY, object_key};
use crate::admission::Admission;
use crate::aws::AwsClients;
use crate::crd::{PrivateApi, PrivateApiStatus};
use crate::identity::Owner;
use crate::metrics::Metrics;
use crate::observed::{LiveNames, Observations};
use crate::parts::Settings;
use crate::parts::deployment::FingerprintCache;
use crate::retiring;
use crate::status;

/// Shared by every reconcile.
pub struct Context {
    pub client: kube::Client,
    pub aws: AwsClients,
    pub settings: Settings,
    pub metrics: Arc<Metrics>,
    pub recorder: Recorder,
    pub fingerprints: FingerprintCache,
    /// Period of the drift check of objects that are in sync.
    pub resync: Duration,
    /// Shared listings for the periodic checks.
    pub observations: Observations,
    /// The slots of the reconciles (`--concurrency`), handed out by class and namespace.
    pub admission: Admission,
    /// The controller's store: the newest copy of each object, read once a reconcile has its
    /// slot. `None` only where no controller runs (tests of single reconciles).
    pub(super) store: Option<Store<DeserializeGuard<PrivateApi>>>,
    /// Consecutive failures per object, for backoff.
    pub(super) failures: Mutex<HashMap<String, u32>>,
    /// Objects whose last reconcile did all it could and waits for AWS (their next one is a
    /// recheck, first in line for a slot).
    pub(super) waiting_for_aws: Mutex<HashSet<String>>,
    /// Per object, the last outcome confirmed in sync with AWS: the generation and status it
    /// was for, and when.
    pub(super) confirmed: Mutex<HashMap<String, Confirmed>>,
    /// The status the operator last wrote per object: a store copy older than that is read
    /// again before a status is built on it.
    pub(super) last_writes: status::LastWrites,
}

#[derive(Clone)]
pub(super) struct Confirmed {
    pub(super) generation: Option<i64>,
    /// A digest of the status (the whole status per object would cost kilobytes each).
    pub(super) status: u64,
    pub(super) at: Instant,
    /// The resourceVersion of the status write that recorded it, if it wrote: the watch event
    /// of that write (the echo) needs no look at AWS.
    pub(super) written: Option<String>,
}

impl Context {
    pub fn new(
        client: kube::Client,
        aws: AwsClients,
        settings: Settings,
        metrics: Arc<Metrics>,
        recorder: Recorder,
        resync: Duration,
    ) -> Self {
        let admission = Admission::new(DEFAULT_CONCURRENCY, metrics.clone());
        Self {
            client,
            aws,
            settings,
            metrics,
            recorder,
            fingerprints: FingerprintCache::default(),
            resync,
            // A listing serves at most half a resync period, so drift is seen within 1.5
            // periods at worst.
            observations: Observations::new(resync / 2, 1),
            admission,
            store: None,
            failures: Mutex::new(HashMap::new()),
            waiting_for_aws: Mutex::new(HashSet::new()),
            confirmed: Mutex::new(HashMap::new()),
            last_writes: status::LastWrites::default(),
        }
    }

    /// Observation window and deep-check period (`--observation-window-seconds`,
    /// `--deep-resync-every`); the window is capped at half the resync period.
    pub fn with_observation(mut self, window: Duration, deep_every: u32) -> Self {
        self.observations = Observations::new(window.min(self.resync / 2), deep_every);
        self
    }

    /// `concurrency` reconciles at a time (`--concurrency`).
    pub fn with_concurrency(mut self, concurrency: usize) -> Self {
        self.admission = Admission::new(concurrency, self.metrics.clone());
        self
    }

    /// Reconciles read the newest copy of their object from the controller's `store`.
    pub fn with_store(mut self, store: Store<DeserializeGuard<PrivateApi>>) -> Self {
        self.store = Some(store);
        self
    }

    pub(super) fn confirmed(&self) -> std::sync::MutexGuard<'_, HashMap<String, Confirmed>> {
        self.confirmed.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(super) fn set_waiting_for_aws(&self, key: &str, waiting: bool) {
        let mut set = self
            .waiting_for_aws
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if waiting {
            set.insert(key.to_string());
        } else {
            set.remove(key);
        }
    }

    pub(super) fn is_waiting_for_aws(&self, key: &str) -> bool {
        self.waiting_for_aws
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(key)
    }

    pub(super) fn failures(&self) -> std::sync::MutexGuard<'_, HashMap<String, u32>> {
        self.failures.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Forget every per-object record of objects that are no longer in the controller's store.
    /// `cleanup` forgets an object it deletes; this catches the others (deleted while another
    /// replica led, or after someone removed the finalizer), which would otherwise be kept for
    /// the life of the process. Without a store (tests of single reconciles) it keeps everything.
    pub fn prune_forgotten(&self) {
        let Some(store) = &self.store else {
            return;
        };
        let mut live = LiveNames::default();
        for guard in store.state() {
            match &guard.0 {
                Ok(object) => {
                    live.objects.insert(object_key(&object.metadata));
                    if let Some(status) = &object.status {
                        live.rest_api_ids.extend(status.rest_api_id.clone());
                        live.function_arns.extend(status.function_arn.clone());
                        for retiring in &status.retiring {
                            match retiring.kind.as_str() {
                                retiring::REST_API => {
                                    live.rest_api_ids.insert(retiring.id.clone());
                                }
                                retiring::FUNCTION => {
                                    live.function_arns.insert(retiring.id.clone());
                                }
                                _ => {}
                            }
                        }
                    }
                }
                Err(invalid) => {
                    live.objects.insert(object_key(&invalid.metadata));
                }
            }
        }
        let is_live = |key: &str| live.objects.contains(key);
        self.failures().retain(|key, _| is_live(key));
        self.waiting_for_aws
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|key| is_live(key));
        self.confirmed().retain(|key, _| is_live(key));
        self.last_writes.retain(is_live);
        self.metrics.retain_ready(is_live);
        self.observations.retain(&live);
        self.fingerprints
            .retain_apis(|id| live.rest_api_ids.contains(id));
    }

    /// What this process keeps per object, for tests and diagnostics: the objects with any
    /// record, and how many REST APIs and functions have remembered reads or deployment
    /// fingerprints.
    pub fn bookkeeping(&self) -> Bookkeeping {
        let mut objects: std::collections::BTreeSet<String> =
            self.failures().keys().cloned().collect();
        objects.extend(
            self.waiting_for_aws
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .iter()
                .cloned(),
        );
        objects.extend(self.confirmed().keys().cloned());
        let (checked, remembered_apis, remembered_functions) =
            self.observations.remembered_counts();
        Bookkeeping {
            objects,
            last_writes: self.last_writes.len(),
            checked_objects: checked,
            remembered_apis,
            remembered_functions,
            fingerprints: self.fingerprints.len(),
        }
    }
}

/// See [`Context::bookkeeping`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bookkeeping {
    /// Objects with a failure count, a wait for AWS or a confirmation.
    pub objects: std::collections::BTreeSet<String>,
    /// Objects whose last status write is remembered.
    pub last_writes: usize,
    /// Objects with a periodic-check turn.
    pub checked_objects: usize,
    pub remembered_apis: usize,
    pub remembered_functions: usize,
    /// Deployments whose fingerprint is remembered.
    pub fingerprints: usize,
}

/// Every `every`, [`Context::prune_forgotten`]; runs as long as the process.
pub async fn prune_forgotten_every(ctx: Arc<Context>, every: Duration) {
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        ctx.prune_forgotten();
    }
}

pub(super) fn owner_of(object: &PrivateApi, ctx: &Context) -> Owner {
    Owner {
        cluster: ctx.settings.cluster_name.clone(),
        namespace: object.namespace().unwrap_or_default(),
        name: object.name_any(),
        uid: object.uid().unwrap_or_default(),
    }
}

/// The region of an object: the spec's, else the one resolved before (kept even if the operator's
/// default changes), else the operator's.
pub(super) fn region_of(object: &PrivateApi, ctx: &Context) -> String {
    object
        .spec
        .region
        .clone()
        .or_else(|| object.status.as_ref().and_then(|s| s.region.clone()))
        .unwrap_or_else(|| ctx.aws.default_region().to_string())
}

pub(super) fn confirm(
    ctx: &Context,
    key: &str,
    generation: Option<i64>,
    status: &PrivateApiStatus,
    written: Option<String>,
) {
    ctx.confirmed().insert(
        key.to_string(),
        Confirmed {
            generation,
            status: status::digest(Some(status)),
            at: Instant::now(),
            written,
        },
    );
}
