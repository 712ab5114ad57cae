//! The reconciler: orders the parts, folds their outcomes into conditions and status, reports what
//! changed as Events, and decides when to look again. It holds no AWS logic of its own.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kube::api::Api;
use kube::core::DeserializeGuard;
use kube::runtime::controller::Action;
use kube::runtime::events::{Event as KubeEvent, EventType, Recorder};
use kube::runtime::finalizer::{Event as FinalizerEvent, finalizer};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Resource, ResourceExt};
use tracing::{info, warn};

use crate::admission::Admission;
use crate::aws::AwsClients;
use crate::conditions::{self, PartState, reason};
use crate::crd::{DeletionPolicy, PrivateApi, PrivateApiStatus};
use crate::error::{Error, Result};
use crate::identity::Owner;
use crate::metrics::Metrics;
use crate::observed::{LiveNames, Observations, Reads};
use crate::pacer::{self, Caller, Priority, WaitReport};
use crate::parts::api::DesiredApi;
use crate::parts::backend::BackendInfo;
use crate::parts::deployment::FingerprintCache;
use crate::parts::endpoint::EndpointInfo;
use crate::parts::{
    Change, Outcome, PartContext, Settings, api, backend, deployment, endpoint, routes,
};
use crate::retiring;
use crate::status;

/// Reconciles at a time unless `with_concurrency` says otherwise (`--concurrency`'s default).
pub const DEFAULT_CONCURRENCY: usize = 8;

/// Keeps AWS resources until the operator has deleted them.
pub const FINALIZER: &str = "privateapi.io/cleanup";

/// How soon to look again at an object that waits for AWS (endpoint pending, function updating).
const PENDING_RECHECK: Duration = Duration::from_secs(3);
/// How soon to look again at an object with an invalid spec while another of its parts still
/// waits for AWS: slow, since part of each look is the request AWS rejected.
const INVALID_SPEC_RECHECK: Duration = Duration::from_secs(30);
/// How soon a deletion blocked by another user of the endpoint looks again.
const IN_USE_RECHECK: Duration = Duration::from_secs(10);
/// Backoff after errors: base doubling per consecutive failure, capped.
const BACKOFF_BASE: Duration = Duration::from_secs(2);
const BACKOFF_CAP: Duration = Duration::from_secs(300);
/// A reference that does not exist yet (`ReferenceNotFound`) is looked at again on the same
/// doubling backoff, capped lower: GitOps tools make the missing object within minutes.
const REFERENCE_BACKOFF_CAP: Duration = Duration::from_secs(120);

/// How often the per-object records of objects gone from the store are forgotten.
pub const PRUNE_EVERY: Duration = Duration::from_secs(60);

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
    store: Option<Store<DeserializeGuard<PrivateApi>>>,
    /// Consecutive failures per object, for backoff.
    failures: Mutex<HashMap<String, u32>>,
    /// Objects whose last reconcile did all it could and waits for AWS (their next one is a
    /// recheck, first in line for a slot).
    waiting_for_aws: Mutex<HashSet<String>>,
    /// Per object, the last outcome confirmed in sync with AWS: the generation and status it
    /// was for, and when.
    confirmed: Mutex<HashMap<String, Confirmed>>,
    /// The status the operator last wrote per object: a store copy older than that is read
    /// again before a status is built on it.
    last_writes: status::LastWrites,
}

#[derive(Clone)]
struct Confirmed {
    generation: Option<i64>,
    /// A digest of the status (the whole status per object would cost kilobytes each).
    status: u64,
    at: Instant,
    /// The resourceVersion of the status write that recorded it, if it wrote: the watch event
    /// of that write (the echo) needs no look at AWS.
    written: Option<String>,
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

    fn confirmed(&self) -> std::sync::MutexGuard<'_, HashMap<String, Confirmed>> {
        self.confirmed.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn set_waiting_for_aws(&self, key: &str, waiting: bool) {
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

    fn is_waiting_for_aws(&self, key: &str) -> bool {
        self.waiting_for_aws
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(key)
    }

    fn failures(&self) -> std::sync::MutexGuard<'_, HashMap<String, u32>> {
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

fn object_key(meta: &kube::core::ObjectMeta) -> String {
    format!(
        "{}/{}",
        meta.namespace.as_deref().unwrap_or_default(),
        meta.name.as_deref().unwrap_or_default()
    )
}

/// A delay with up to 10 % jitter, so objects created together do not resync together.
fn with_jitter(delay: Duration, key: &str) -> Duration {
    let seed =
        crate::identity::short_hash(&[key, &format!("{:?}", std::time::SystemTime::now())], 8);
    let fraction = u64::from_str_radix(&seed, 16).unwrap_or(0) % 1000;
    delay + delay.mul_f64(fraction as f64 / 10_000.0)
}

/// Entry point of the controller: waits for a slot, then only the finalizer decides between
/// apply and cleanup.
pub async fn reconcile(
    guard: Arc<DeserializeGuard<PrivateApi>>,
    ctx: Arc<Context>,
) -> Result<Action> {
    let mut object = match latest(&guard, &ctx) {
        Some(Ok(object)) => object,
        Some(Err(())) => return Ok(Action::await_change()),
        // Deleted from the store since it was triggered: nothing left to do.
        None => return Ok(Action::await_change()),
    };
    let key = object_key(&object.metadata);
    let namespace = object
        .namespace()
        .ok_or_else(|| Error::Config("PrivateApi without namespace".into()))?;
    let mut decision = background(&object, &ctx, &key);
    // A slot first (see `admission`), before anything is read; the echo of our own status
    // write reads nothing and needs none.
    let class = match decision.class() {
        Some(Priority::Foreground) if ctx.is_waiting_for_aws(&key) => Some(Priority::Recheck),
        class => class,
    };
    let _permit = match class {
        None => None,
        Some(class) => {
            let Some(permit) = ctx.admission.admit(class, &namespace).await else {
                // Shutting down.
                return Ok(Action::await_change());
            };
            // The object as it is now: the copy it was triggered with can be old after a wait
            // (a newer spec, a deletion); and not older than the operator's own last write.
            object = match latest(&guard, &ctx) {
                Some(Ok(object)) => match not_behind_last_write(object, &ctx).await? {
                    Some(object) => object,
                    None => return Ok(Action::await_change()),
                },
                _ => return Ok(Action::await_change()),
            };
            decision = background(&object, &ctx, &key);
            Some(permit)
        }
    };
    // Boxed: a waiting reconcile stays a small future (the controller holds one per object
    // that waits for a slot).
    Box::pin(admitted(object, decision, &key, &namespace, &ctx)).await
}

/// One reconcile that holds its slot.
async fn admitted(
    object: Arc<PrivateApi>,
    decision: Background,
    key: &str,
    namespace: &str,
    ctx: &Context,
) -> Result<Action> {
    let api: Api<PrivateApi> = Api::namespaced(ctx.client.clone(), namespace);
    let started = Instant::now();
    let result = finalizer(&api, FINALIZER, object, |event| async {
        match event {
            FinalizerEvent::Apply(object) => Box::pin(apply(object, ctx, decision)).await,
            FinalizerEvent::Cleanup(object) => Box::pin(cleanup(object, ctx)).await,
        }
    })
    .await
    .map_err(|err| Error::Finalizer(Box::new(err)));
    let label = match &result {
        Ok(_) => "ok",
        Err(err) => inner_error(err).metric_label(),
    };
    ctx.metrics.record_reconcile(label, started.elapsed());
    if result.is_ok() {
        ctx.failures().remove(key);
    }
    result
}

/// The newest copy of the triggered object: from the controller's store (the watch's latest)
/// when the context has it, else the trigger's own. `None`: no longer in the store; `Err`: an
/// object our types cannot read (a newer or older CRD), skipped without breaking the watch of
/// the others.
fn latest(
    guard: &Arc<DeserializeGuard<PrivateApi>>,
    ctx: &Context,
) -> Option<std::result::Result<Arc<PrivateApi>, ()>> {
    let current = match &ctx.store {
        Some(store) => store.get(&ObjectRef::from_obj(guard.as_ref()))?,
        None => guard.clone(),
    };
    Some(match &current.0 {
        Ok(object) => Ok(Arc::new(object.clone())),
        Err(invalid) => {
            warn!(object = %object_key(&invalid.metadata), error = %invalid.error, "cannot read object, skipping it");
            Err(())
        }
    })
}

/// `object` (a store copy), or the object read again from the API server when the copy's status
/// is not the one the operator last wrote: the watch lags behind that write, and a status built
/// on the older copy would roll it back (`adopted`, `retiring`, `lastTransitionTime`s).
/// `None`: the object is gone.
async fn not_behind_last_write(
    object: Arc<PrivateApi>,
    ctx: &Context,
) -> Result<Option<Arc<PrivateApi>>> {
    if !ctx.last_writes.is_behind(&object) {
        return Ok(Some(object));
    }
    let api: Api<PrivateApi> =
        Api::namespaced(ctx.client.clone(), &object.namespace().unwrap_or_default());
    let fresh = api.get_opt(&object.name_any()).await.map_err(Error::Kube)?;
    if let Some(fresh) = &fresh {
        info!(
            object = %object_key(&object.metadata),
            store = ?object.metadata.resource_version,
            read = ?fresh.metadata.resource_version,
            "the watch is behind the last status write: read the object again"
        );
        ctx.last_writes.record(fresh);
    }
    Ok(fresh.map(Arc::new))
}

/// The error inside the finalizer's wrapper.
fn inner_error(err: &Error) -> &Error {
    use kube::runtime::finalizer::Error as F;
    match err {
        Error::Finalizer(boxed) => match boxed.as_ref() {
            F::ApplyFailed(inner) | F::CleanupFailed(inner) => inner,
            _ => err,
        },
        other => other,
    }
}

/// Exponential backoff per object, capped; other objects are not affected.
pub fn error_policy(
    guard: Arc<DeserializeGuard<PrivateApi>>,
    err: &Error,
    ctx: Arc<Context>,
) -> Action {
    let key = match &guard.0 {
        Ok(object) => object_key(&object.metadata),
        Err(invalid) => object_key(&invalid.metadata),
    };
    let inner = inner_error(err);
    if matches!(inner, Error::CleanupInProgress(_)) {
        return Action::requeue(PENDING_RECHECK);
    }
    if matches!(inner, Error::InUse(_)) {
        // Others may use the endpoint for a long time: look again slowly.
        return Action::requeue(IN_USE_RECHECK);
    }
    let failures = {
        let mut all = ctx.failures();
        let n = all.entry(key.clone()).or_insert(0);
        *n = n.saturating_add(1);
        *n
    };
    let cap = if inner.is_reference_not_found() {
        REFERENCE_BACKOFF_CAP
    } else {
        BACKOFF_CAP
    };
    let delay = BACKOFF_BASE
        .saturating_mul(2u32.saturating_pow(failures.saturating_sub(1).min(16)))
        .min(cap);
    warn!(object = %key, error = %inner, failures, retry_in = ?delay, "reconcile failed");
    Action::requeue(with_jitter(delay, &key))
}

fn owner_of(object: &PrivateApi, ctx: &Context) -> Owner {
    Owner {
        cluster: ctx.settings.cluster_name.clone(),
        namespace: object.namespace().unwrap_or_default(),
        name: object.name_any(),
        uid: object.uid().unwrap_or_default(),
    }
}

/// The region of an object: the spec's, else the one resolved before (kept even if the operator's
/// default changes), else the operator's.
fn region_of(object: &PrivateApi, ctx: &Context) -> String {
    object
        .spec
        .region
        .clone()
        .or_else(|| object.status.as_ref().and_then(|s| s.region.clone()))
        .unwrap_or_else(|| ctx.aws.default_region().to_string())
}

fn state_of(err: &Error) -> PartState {
    PartState::not_ready(err.reason(), err.to_string())
}

/// A part that is not ready only because AWS has not finished (endpoint pending, function
/// updating), as opposed to failed or blocked by another part.
fn waits_for_aws(state: &PartState) -> bool {
    !state.ready
        && [reason::PENDING, reason::CREATING, reason::UPDATING].contains(&state.reason.as_str())
}

fn dependency(message: &str) -> PartState {
    PartState::not_ready(reason::DEPENDENCY_NOT_READY, message)
}

/// During a switch the deployment waits until what it switches to can serve (the new function
/// Active, the new endpoint available): until then the stage keeps serving the old one.
/// `detaching`: the API has endpoints attached that the spec no longer names.
fn switch_hold(
    retiring: &[crate::crd::RetiringResource],
    detaching: bool,
    endpoint: &EndpointInfo,
    function: &BackendInfo,
) -> Option<PartState> {
    if retiring::switching(retiring, retiring::FUNCTION) && !function.active {
        return Some(PartState::not_ready(
            reason::PENDING,
            format!(
                "the stage keeps serving the previous function until {} is Active",
                function.function_name
            ),
        ));
    }
    if (retiring::switching(retiring, retiring::VPC_ENDPOINT) || detaching) && !endpoint.available {
        return Some(PartState::not_ready(
            reason::PENDING,
            format!(
                "the stage keeps serving the previous policy until VPC endpoint {} is available",
                endpoint.vpc_endpoint_id
            ),
        ));
    }
    None
}

/// The first state that is not ready, else the last (all ready).
fn combine(states: &[PartState]) -> PartState {
    states
        .iter()
        .find(|s| !s.ready)
        .or(states.last())
        .cloned()
        .unwrap_or_else(|| dependency("nothing reconciled"))
}

async fn publish(ctx: &Context, object: &PrivateApi, changes: &[Change], errors: &[Error]) {
    let reference = object.object_ref(&());
    for change in changes {
        info!(object = %object_key(&object.metadata), action = change.action, resource = %change.resource, detail = %change.detail, "changed AWS");
        let note = if change.detail.is_empty() {
            change.resource.clone()
        } else {
            format!("{}: {}", change.resource, change.detail)
        };
        let event = KubeEvent {
            type_: EventType::Normal,
            reason: change.action.to_string(),
            note: Some(note.chars().take(1000).collect()),
            action: "Reconcile".into(),
            secondary: None,
        };
        if let Err(err) = ctx.recorder.publish(&event, &reference).await {
            warn!(error = %err, "cannot publish event");
        }
    }
    for error in errors {
        let event = KubeEvent {
            type_: EventType::Warning,
            reason: error.reason().to_string(),
            note: Some(error.to_string().chars().take(1000).collect()),
            action: "Reconcile".into(),
            secondary: None,
        };
        if let Err(err) = ctx.recorder.publish(&event, &reference).await {
            warn!(error = %err, "cannot publish event");
        }
    }
}

/// How a reconcile reads and writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Read everything from AWS, change what differs, write the status.
    Fresh,
    /// The periodic check of an object in sync: read from the shared observations, change
    /// nothing; anything that differs sends the object to a fresh reconcile.
    Check { deep: bool },
}

/// What a reconcile came to.
enum Converged {
    Done(Action),
    /// A check found something to change (the reason, for the log).
    Differs(String),
}

/// What to do with an object whose spec is unchanged since it was last confirmed in sync.
enum Background {
    /// Not the case: reconcile fresh.
    No,
    /// Confirmed moments ago (this is the echo of our own status write, or a metadata edit):
    /// nothing to read, look again when the period is over.
    Recent(Duration),
    /// In sync as far as we know, and due for its periodic check.
    Due,
}

impl Background {
    /// The class of the slot a reconcile of this kind waits for (`None`: it needs none).
    fn class(&self) -> Option<Priority> {
        match self {
            Background::No => Some(Priority::Foreground),
            Background::Due => Some(Priority::Background),
            Background::Recent(_) => None,
        }
    }
}

fn ready_now(object: &PrivateApi) -> bool {
    let generation = object.metadata.generation;
    object.status.as_ref().is_some_and(|status| {
        status.observed_generation == generation
            && status.conditions.iter().any(|c| {
                c.type_ == conditions::READY
                    && c.status == "True"
                    && c.observed_generation == generation
            })
    })
}

fn background(object: &PrivateApi, ctx: &Context, key: &str) -> Background {
    if object.metadata.deletion_timestamp.is_some() || !ready_now(object) {
        return Background::No;
    }
    let confirmed = ctx.confirmed().get(key).cloned();
    match confirmed {
        // Someone else changed the status since (or we never confirmed it in this process: a
        // check confirms it against AWS).
        Some(confirmed)
            if confirmed.generation != object.metadata.generation
                || confirmed.status != status::digest(object.status.as_ref()) =>
        {
            Background::No
        }
        Some(confirmed)
            if confirmed.written.is_some()
                && confirmed.written == object.metadata.resource_version
                && confirmed.at.elapsed() < ctx.resync / 2 =>
        {
            Background::Recent(ctx.resync.saturating_sub(confirmed.at.elapsed()))
        }
        _ => Background::Due,
    }
}

fn confirm(
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

/// Writes a long wait for quota on the object: `Ready` keeps its status and says why nothing
/// moves (reason `WaitingForQuota`). Written with its own field manager, and only this one
/// condition; the reconciler's next status write replaces it.
async fn report_quota_wait(object: &PrivateApi, ctx: &Context, report: WaitReport) {
    let api: Api<PrivateApi> =
        Api::namespaced(ctx.client.clone(), &object.namespace().unwrap_or_default());
    let name = object.name_any();
    let ready = object
        .status
        .as_ref()
        .and_then(|s| s.conditions.iter().find(|c| c.type_ == conditions::READY));
    let condition = serde_json::json!({
        "type": conditions::READY,
        "status": ready.map_or("False", |c| c.status.as_str()),
        "reason": reason::WAITING_FOR_QUOTA,
        "message": report.to_string(),
        "observedGeneration": ready.and_then(|c| c.observed_generation).or(object.metadata.generation),
        "lastTransitionTime": ready
            .map(|c| c.last_transition_time.0)
            .unwrap_or_else(k8s_openapi::jiff::Timestamp::now)
            .to_string(),
    });
    let patch = serde_json::json!({
        "apiVersion": "privateapi.io/v1alpha1",
        "kind": "PrivateApi",
        "status": { "conditions": [condition] },
    });
    let params = kube::api::PatchParams::apply(status::QUOTA_FIELD_MANAGER).force();
    match api
        .patch_status(&name, &params, &kube::api::Patch::Apply(&patch))
        .await
    {
        Ok(written) => {
            ctx.last_writes.record(&written);
            info!(object = %name, wait = %report, "waiting for quota");
        }
        Err(err) => warn!(object = %name, error = %err, "cannot report the wait for quota"),
    }
}

/// Runs `reconcile` (one foreground reconcile of `object`) as its object's caller, and writes the
/// pacer's reports of long waits for quota on the object meanwhile. `reconcile` is told, through
/// the flag it is given, whether a report was written: its own status write then replaces it.
///
/// The reports are written between polls of `reconcile`, never during one: the reconcile's last
/// status write cannot be overtaken by a report of an earlier wait.
async fn reporting_quota_waits<F, T>(
    object: &PrivateApi,
    ctx: &Context,
    reconcile: impl FnOnce(Arc<AtomicBool>) -> F,
) -> T
where
    F: std::future::Future<Output = T>,
{
    let (reports, mut waits) = tokio::sync::mpsc::channel(1);
    let reported = Arc::new(AtomicBool::new(false));
    let caller = Caller {
        on_wait: Some(reports),
        ..caller(object, Priority::Foreground)
    };
    let mut running = std::pin::pin!(pacer::as_caller(caller, reconcile(reported.clone())));
    loop {
        tokio::select! {
            biased;
            done = &mut running => return done,
            Some(report) = waits.recv() => {
                reported.store(true, Ordering::SeqCst);
                report_quota_wait(object, ctx, report).await;
            }
        }
    }
}

/// Who calls AWS for `object`, for the pacer: its class and namespace. A periodic check of an
/// object in sync has nothing to tell its users while it waits (and writing would make every slow
/// check a status write), so only [`reporting_quota_waits`] adds a report channel.
fn caller(object: &PrivateApi, priority: Priority) -> Caller {
    Caller {
        object: object_key(&object.metadata),
        namespace: object.namespace().unwrap_or_default(),
        priority,
        on_wait: None,
    }
}

/// Make AWS match the spec: a cheap check on shared observations for objects in sync, a fresh
/// reconcile for everything else (and for a check that finds something to change).
async fn apply(object: Arc<PrivateApi>, ctx: &Context, decision: Background) -> Result<Action> {
    let key = object_key(&object.metadata);
    match decision {
        Background::Recent(remaining) => return Ok(Action::requeue(remaining)),
        Background::Due => {
            let deep = ctx.observations.next_check_is_deep(&key);
            let not_reported = Arc::new(AtomicBool::new(false));
            // Boxed: the reconcile's future is large, and debug builds overflow a worker's
            // stack when it lives there.
            let check = pacer::as_caller(
                caller(&object, Priority::Background),
                Box::pin(converge(
                    object.clone(),
                    ctx,
                    Mode::Check { deep },
                    not_reported,
                )),
            );
            match check.await {
                Ok(Converged::Done(action)) => {
                    ctx.metrics
                        .record_resync(if deep { "deep" } else { "in_sync" });
                    return Ok(action);
                }
                Ok(Converged::Differs(why)) => {
                    info!(object = %key, why = %why, "periodic check found a difference: reconciling fresh");
                }
                Err(err) => {
                    info!(object = %key, error = %err, "periodic check failed: reconciling fresh");
                }
            }
            ctx.metrics.record_resync("drift");
        }
        Background::No => {}
    }
    let fresh = reporting_quota_waits(&object, ctx, |reported| {
        Box::pin(converge(object.clone(), ctx, Mode::Fresh, reported))
    });
    match fresh.await? {
        Converged::Done(action) => Ok(action),
        Converged::Differs(why) => Err(Error::Unexpected {
            operation: "reconcile",
            message: format!("a fresh reconcile reported a difference: {why}"),
        }),
    }
}

/// Make AWS match the spec, part by part (`Mode::Check`: only compare, through clients that
/// refuse every write). `quota_reported`: a wait for quota was reported on the object meanwhile
/// (see [`reporting_quota_waits`]), so the status is written even if it looks unchanged.
async fn converge(
    object: Arc<PrivateApi>,
    ctx: &Context,
    mode: Mode,
    quota_reported: Arc<AtomicBool>,
) -> Result<Converged> {
    let key = object_key(&object.metadata);
    let name = object.name_any();
    let kube_api: Api<PrivateApi> =
        Api::namespaced(ctx.client.clone(), &object.namespace().unwrap_or_default());
    let owner = owner_of(&object, ctx);
    let region = region_of(&object, ctx);
    let generation = object.metadata.generation;
    let previous = object.status.clone().unwrap_or_default();
    let mut status = PrivateApiStatus {
        region: Some(region.clone()),
        ..previous.clone()
    };
    let writable = ctx.aws.for_region(&region).await?;
    // A check is given clients that cannot write: whatever path a part takes, it changes nothing.
    let read_only = (mode != Mode::Fresh).then(|| writable.read_only());
    let clients = read_only.as_ref().map_or(&*writable, |r| r.clients());
    let observed = ctx.observations.region(&region);
    let pctx = PartContext {
        aws: clients,
        owner: &owner,
        spec: &object.spec,
        status: &previous,
        settings: &ctx.settings,
        reads: Some(Reads {
            region: &observed,
            window: ctx.observations.window(),
            shared: mode != Mode::Fresh,
            deep: matches!(mode, Mode::Check { deep: true }),
        }),
    };
    let mut changes: Vec<Change> = Vec::new();
    let mut errors: Vec<Error> = Vec::new();
    // The object's status on the API server as far as this reconcile knows (it writes the new
    // IDs as soon as they exist).
    let mut on_server = object.status.clone();

    // 1. The endpoint and the function do not depend on each other: in parallel.
    let (endpoint_result, function_result) = tokio::join!(
        endpoint::reconcile(&pctx),
        backend::reconcile_function(&pctx)
    );
    let (endpoint_state, endpoint) = match endpoint_result {
        Ok(outcome) => {
            changes.extend(outcome.changes);
            status.vpc_endpoint_id = Some(outcome.value.vpc_endpoint_id.clone());
            status.security_group_id = outcome.value.security_group_id.clone();
            // `endpoint.id` has no managed group: keep the one an earlier `endpoint.create` made
            // until step 5 has deleted it. Dropping it here (written to status just below) made
            // the reconcile after a DependencyViolation skip step 5, orphaning the group.
            if object.spec.endpoint.id.is_some() && status.security_group_id.is_none() {
                status.security_group_id = previous.security_group_id.clone();
            }
            (outcome.state, Some(outcome.value))
        }
        Err(err) => {
            let state = state_of(&err);
            errors.push(err);
            (state, None)
        }
    };
    let (function_state, function) = match function_result {
        Ok(outcome) => {
            changes.extend(outcome.changes);
            status.function_arn = Some(outcome.value.function_arn.clone());
            (outcome.state, Some(outcome.value))
        }
        Err(err) => {
            let state = state_of(&err);
            errors.push(err);
            (state, None)
        }
    };
    // Make-before-break: what status named before stays, recorded in `retiring`, until the stage
    // serves a deployment that no longer uses it. Written together with the new IDs, before
    // anything is wired to them.
    if let Some(endpoint) = &endpoint {
        retiring::replaced(
            &mut status.retiring,
            retiring::VPC_ENDPOINT,
            previous.vpc_endpoint_id.as_deref(),
            &endpoint.vpc_endpoint_id,
        );
    }
    if let Some(function) = &function {
        retiring::replaced(
            &mut status.retiring,
            retiring::FUNCTION,
            previous.function_arn.as_deref(),
            &function.function_arn,
        );
    }
    // IDs go to status as soon as the resources exist.
    if status != previous {
        if mode != Mode::Fresh {
            return Ok(Converged::Differs(
                "the endpoint's or function's ID changed".into(),
            ));
        }
        status::write_if_changed(
            &kube_api,
            &name,
            object.status.as_ref(),
            &status,
            &ctx.last_writes,
        )
        .await?;
        on_server = Some(status.clone());
    }

    // 2. The REST API needs the endpoint's ID (not its availability).
    let (api_state, rest_api) = match &endpoint {
        Some(endpoint) => match api::reconcile(&pctx, &endpoint.vpc_endpoint_id).await {
            Ok(outcome) => {
                changes.extend(outcome.changes);
                retiring::replaced(
                    &mut status.retiring,
                    retiring::REST_API,
                    previous.rest_api_id.as_deref(),
                    &outcome.value.rest_api_id,
                );
                status.rest_api_id = Some(outcome.value.rest_api_id.clone());
                (outcome.state, Some(outcome.value))
            }
            Err(err) => {
                let state = state_of(&err);
                errors.push(err);
                (state, None)
            }
        },
        None => (dependency("waiting for the VPC endpoint"), None),
    };

    // 3. Routes and the invoke permission need both the API and the function: in parallel.
    let mut backend_states = vec![function_state];
    let mut wired = false;
    let mut routes_changed = false;
    // This object's invoke statements for REST APIs it no longer uses: removed after deploying.
    let mut stale_statements: Vec<String> = Vec::new();
    if let (Some(rest_api), Some(function)) = (&rest_api, &function) {
        let (routes_result, permission_result) = tokio::join!(
            routes::reconcile(&pctx, rest_api, &function.function_arn),
            backend::reconcile_permission(&pctx, function, &rest_api.rest_api_id)
        );
        wired = true;
        routes_changed = routes_result
            .as_ref()
            .map_or(true, |outcome| !outcome.changes.is_empty());
        let permission_result = permission_result.map(|outcome| {
            stale_statements = outcome.value;
            Outcome {
                value: (),
                state: outcome.state,
                changes: outcome.changes,
            }
        });
        for result in [routes_result, permission_result] {
            match result {
                Ok(outcome) => {
                    changes.extend(outcome.changes);
                    wired &= outcome.state.ready;
                    backend_states.push(outcome.state);
                }
                Err(err) => {
                    wired = false;
                    backend_states.push(state_of(&err));
                    errors.push(err);
                }
            }
        }
    } else if function.is_some() {
        backend_states.push(dependency(
            "waiting for the REST API to wire the function to it",
        ));
    }
    let backend_state = combine(&backend_states);

    // 4. A deployment of what the API now is. During a switch, not before the new function or
    // endpoint can serve: the stage keeps serving the old one until then.
    let stale_endpoints = match (&rest_api, &endpoint) {
        (Some(rest_api), Some(endpoint)) => api::stale_endpoint_ids(
            &rest_api.vpc_endpoint_ids,
            &DesiredApi::new(&pctx, &endpoint.vpc_endpoint_id),
        ),
        _ => Vec::new(),
    };
    let hold = match (&endpoint, &function) {
        (Some(endpoint), Some(function)) => switch_hold(
            &status.retiring,
            !stale_endpoints.is_empty(),
            endpoint,
            function,
        ),
        _ => None,
    };
    let mut old_stages = None;
    let deployed_state = match (&rest_api, &endpoint, &function, hold) {
        (_, _, _, Some(hold)) => hold,
        (Some(rest_api), Some(endpoint), Some(function), None) if wired => {
            let desired = DesiredApi::new(&pctx, &endpoint.vpc_endpoint_id);
            let uri = routes::integration_uri(&clients.region, &function.function_arn);
            let fingerprint = deployment::fingerprint(&desired, &uri);
            // An adopted API that needed no change keeps serving its deployment (see there).
            let adopt_current = rest_api.adopted_unchanged && !routes_changed;
            match deployment::reconcile(
                &pctx,
                &ctx.fingerprints,
                rest_api,
                &fingerprint,
                adopt_current,
            )
            .await
            {
                Ok(outcome) => {
                    changes.extend(outcome.changes);
                    status.deployment_id = Some(outcome.value.deployment_id.clone());
                    status.stage_name = Some(outcome.value.stage_name.clone());
                    old_stages = Some(outcome.value).filter(|d| !d.old_stages.is_empty());
                    outcome.state
                }
                Err(err) => {
                    let state = state_of(&err);
                    errors.push(err);
                    state
                }
            }
        }
        _ => dependency("waiting for the REST API, its routes and the function"),
    };

    // The URL of what serves now.
    if let (Some(rest_api), Some(endpoint), Some(stage)) =
        (&rest_api, &endpoint, &status.stage_name)
    {
        let (url, urls) = status::invoke_urls(
            &clients.region,
            &rest_api.rest_api_id,
            stage,
            &endpoint.vpc_endpoint_id,
            endpoint.private_dns,
            &endpoint.dns_names,
        );
        status.url = Some(url);
        status.urls = Some(urls);
    }

    // 5. Make-before-break: once the stage serves a deployment of the current spec, what it no
    // longer needs goes: the stages of an earlier stageName, endpoints detached from the API,
    // this object's statements for other APIs, the retired function, API and endpoint, and after
    // a move from `endpoint.create` to `endpoint.id` the endpoint and security group the
    // operator owned.
    let serving_current = deployed_state.ready;
    let release_pending = !status.retiring.is_empty()
        || !stale_endpoints.is_empty()
        || !stale_statements.is_empty()
        || old_stages.is_some()
        || (object.spec.endpoint.id.is_some() && previous.security_group_id.is_some());
    if mode != Mode::Fresh && release_pending {
        return Ok(Converged::Differs(
            "resources of an earlier spec to release".into(),
        ));
    }
    // Clients follow status.url: it names what serves now before what it named before (a stage,
    // a REST API, the endpoint of its alias) goes.
    if serving_current && release_pending && status.url != previous.url {
        status::write_if_changed(
            &kube_api,
            &name,
            on_server.as_ref(),
            &status,
            &ctx.last_writes,
        )
        .await?;
        on_server = Some(status.clone());
    }
    let mut cleanup_pending = false;
    if serving_current
        && let (Some(rest_api), Some(endpoint), Some(function)) = (&rest_api, &endpoint, &function)
    {
        if let Some(deployed) = &old_stages {
            match deployment::delete_old_stages(&pctx, &rest_api.rest_api_id, deployed).await {
                Ok(deleted) => changes.extend(deleted),
                Err(err) => errors.push(err),
            }
        }
        match api::detach_stale(&pctx, rest_api, &endpoint.vpc_endpoint_id).await {
            Ok(detached) => changes.extend(detached),
            Err(err) => errors.push(err),
        }
        if !stale_statements.is_empty() {
            match backend::remove_statements(&pctx, &function.function_arn, &stale_statements).await
            {
                Ok(removed) => changes.extend(removed),
                Err(err) => errors.push(err),
            }
        }
        let current = retiring::Current {
            function_arn: &function.function_arn,
            rest_api_id: &rest_api.rest_api_id,
            vpc_endpoint_id: &endpoint.vpc_endpoint_id,
        };
        let released = retiring::release(&pctx, &status.retiring, &current).await;
        changes.extend(released.changes);
        errors.extend(released.errors);
        status.retiring = released.remaining;
    }
    if serving_current && object.spec.endpoint.id.is_some() && previous.security_group_id.is_some()
    {
        match endpoint::cleanup_owned(&pctx).await {
            Ok(cleanup) => {
                changes.extend(cleanup.changes);
                if cleanup.done {
                    status.security_group_id = None;
                }
                // The group waits for the endpoint's network interfaces: look again soon, not
                // after a full resync period.
                cleanup_pending = !cleanup.done;
            }
            Err(err) => errors.push(err),
        }
    }

    // 6. Conditions and status.
    let now = k8s_openapi::jiff::Timestamp::now();
    let parts = [
        (conditions::ENDPOINT_READY, &endpoint_state),
        (conditions::API_READY, &api_state),
        (conditions::BACKEND_READY, &backend_state),
        (conditions::DEPLOYED, &deployed_state),
    ];
    for (type_, state) in parts {
        conditions::set_condition(&mut status.conditions, type_, state, generation, now);
    }
    let ready = conditions::ready_state(&parts);
    conditions::set_condition(
        &mut status.conditions,
        conditions::READY,
        &ready,
        generation,
        now,
    );
    status.observed_generation = generation;
    record_adoptions(&mut status.adopted, &changes);
    if mode != Mode::Fresh {
        let differs = if read_only.as_ref().is_some_and(|r| r.write_attempted()) {
            Some("a part would change AWS".to_string())
        } else if !changes.is_empty() {
            Some(format!("{} change(s) to make", changes.len()))
        } else if let Some(err) = errors.first() {
            Some(err.to_string())
        } else if !ready.ready || cleanup_pending || release_pending {
            Some(format!("not ready: {}", ready.message))
        } else if Some(&status) != object.status.as_ref() {
            Some("the status would change".to_string())
        } else {
            None
        };
        return Ok(match differs {
            Some(why) => Converged::Differs(why),
            None => {
                confirm(ctx, &key, generation, &status, None);
                Converged::Done(Action::requeue(with_jitter(ctx.resync, &key)))
            }
        });
    }
    // Compared with the object's status: an unchanged outcome writes nothing. After a report
    // of a wait for quota (written meanwhile, see `reporting_quota_waits`) it is written in any
    // case.
    let current = if quota_reported.load(Ordering::SeqCst) {
        None
    } else {
        on_server.as_ref()
    };
    let written =
        status::write_if_changed(&kube_api, &name, current, &status, &ctx.last_writes).await?;
    ctx.metrics.set_ready(&key, Some(ready.ready));
    publish(ctx, &object, &changes, &errors).await;
    if ready.ready && !cleanup_pending && errors.is_empty() {
        confirm(ctx, &key, generation, &status, written);
    } else {
        ctx.confirmed().remove(&key);
    }

    // 7. When to look again.
    if !errors.is_empty() {
        ctx.set_waiting_for_aws(&key, false);
    }
    if let Some(invalid) = errors.iter().find(|e| e.is_invalid_spec()) {
        // Fix the manifest: retrying would only hammer AWS with the same request. But while
        // another part still waits for AWS (an endpoint pending), look again now and then so
        // its condition does not stay stale; once nothing waits, wait for a spec change.
        if parts.iter().any(|(_, state)| waits_for_aws(state)) {
            info!(object = %key, error = %invalid, "invalid spec; another part still waits for AWS");
            return Ok(Converged::Done(Action::requeue(INVALID_SPEC_RECHECK)));
        }
        info!(object = %key, error = %invalid, "invalid spec, waiting for a change");
        return Ok(Converged::Done(Action::await_change()));
    }
    if let Some(err) = errors.into_iter().next() {
        return Err(err);
    }
    let waiting = !ready.ready || cleanup_pending;
    ctx.set_waiting_for_aws(&key, waiting);
    if waiting {
        Ok(Converged::Done(Action::requeue(PENDING_RECHECK)))
    } else {
        Ok(Converged::Done(Action::requeue(with_jitter(
            ctx.resync, &key,
        ))))
    }
}

/// What the parts took over goes into `status.adopted`, replacing the record of the same kind.
fn record_adoptions(adopted: &mut Vec<crate::crd::AdoptedResource>, changes: &[Change]) {
    for record in changes.iter().filter_map(|c| c.adopted.as_ref()) {
        adopted.retain(|a| a.kind != record.kind);
        adopted.push(record.clone());
    }
    adopted.sort_by(|a, b| a.kind.cmp(&b.kind));
}

/// Remove what the operator created, in dependency order, unless the policy is Retain.
async fn cleanup(object: Arc<PrivateApi>, ctx: &Context) -> Result<Action> {
    let key = object_key(&object.metadata);
    ctx.confirmed().remove(&key);
    ctx.set_waiting_for_aws(&key, false);
    ctx.observations.forget(&key);
    if let Some(status) = &object.status {
        ctx.observations.region(&region_of(&object, ctx)).forget(
            status.rest_api_id.as_deref(),
            status.function_arn.as_deref(),
        );
    }
    ctx.last_writes.forget(&key);
    reporting_quota_waits(&object, ctx, |_| {
        Box::pin(remove_all(object.clone(), ctx, key))
    })
    .await
}

async fn remove_all(object: Arc<PrivateApi>, ctx: &Context, key: String) -> Result<Action> {
    ctx.metrics.set_ready(&key, None);
    if object.spec.deletion_policy == DeletionPolicy::Retain {
        let change = Change::new("Retained", "all AWS resources", "deletionPolicy is Retain");
        publish(ctx, &object, &[change], &[]).await;
        return Ok(Action::await_change());
    }
    let owner = owner_of(&object, ctx);
    let region = region_of(&object, ctx);
    let clients = ctx.aws.for_region(&region).await?;
    let previous = object.status.clone().unwrap_or_default();
    let pctx = PartContext {
        aws: &clients,
        owner: &owner,
        spec: &object.spec,
        status: &previous,
        settings: &ctx.settings,
        reads: None,
    };
    let mut changes = Vec::new();
    // The API first (its stages and deployments go with it), so nothing invokes the function or
    // references the endpoint any more; then the function's permission and the function; then the
    // endpoint and its security group.
    let result = async {
        changes.extend(api::cleanup(&pctx).await?.changes);
        changes.extend(backend::cleanup(&pctx).await?.changes);
        let endpoint = endpoint::cleanup_owned(&pctx).await?;
        changes.extend(endpoint.changes);
        Ok::<bool, Error>(endpoint.done)
    }
    .await;
    match &result {
        Err(err) => {
            publish(ctx, &object, &changes, std::slice::from_ref(err)).await;
            // Say on the object why it is not gone yet.
            let mut status = previous.clone();
            let state = PartState::not_ready(reason::DELETING, err.to_string());
            let now = k8s_openapi::jiff::Timestamp::now();
            let generation = object.metadata.generation;
            conditions::set_condition(
                &mut status.conditions,
                conditions::READY,
                &state,
                generation,
                now,
            );
            let kube_api: Api<PrivateApi> =
                Api::namespaced(ctx.client.clone(), &object.namespace().unwrap_or_default());
            if let Err(write_err) = status::write_if_changed(
                &kube_api,
                &object.name_any(),
                object.status.as_ref(),
                &status,
                &ctx.last_writes,
            )
            .await
            {
                warn!(object = %key, error = %write_err, "cannot write status while deleting");
            }
        }
        Ok(_) => publish(ctx, &object, &changes, &[]).await,
    }
    match result {
        Ok(true) => Ok(Action::await_change()),
        Ok(false) => Err(Error::CleanupInProgress(
            "waiting for the endpoint's network interfaces to go away before deleting its security group".into(),
        )),
        Err(err) => Err(err),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn combine_reports_the_first_problem() {
        let ok = PartState::ready("Available", "fine");
        let updating = PartState::not_ready("Updating", "function updating");
        assert_eq!(
            combine(&[ok.clone(), updating.clone(), ok.clone()]),
            updating
        );
        assert_eq!(combine(&[ok.clone(), ok.clone()]), ok);
    }

    #[test]
    fn only_parts_waiting_for_aws_count_as_waiting() {
        assert!(waits_for_aws(&PartState::not_ready(
            reason::PENDING,
            "vpce pending"
        )));
        assert!(waits_for_aws(&PartState::not_ready(
            reason::UPDATING,
            "function updating"
        )));
        assert!(!waits_for_aws(&PartState::not_ready(
            reason::INVALID_SPEC,
            "bad"
        )));
        assert!(!waits_for_aws(&dependency("waiting for the REST API")));
        assert!(!waits_for_aws(&PartState::ready(reason::AVAILABLE, "ok")));
    }

    #[test]
    fn jitter_stays_within_ten_percent() {
        for i in 0..50 {
            let d = with_jitter(Duration::from_secs(100), &format!("ns/o{i}"));
            assert!(
                d >= Duration::from_secs(100) && d <= Duration::from_secs(110),
                "{d:?}"
            );
        }
    }
}
