//! Shared observation for the periodic check of objects that are in sync.
//!
//! A controller that reads every AWS object of every `PrivateApi` at each resync makes ~7 reads
//! per object per period (REST API, resources, stages, endpoint, security group, function,
//! policy), and at a few hundred objects uses the account's whole API Gateway budget. Here one
//! listing per account-region and window serves all objects:
//!
//! - `GetRestApis` (pages of 500: policy, endpoint configuration, tags of every API);
//! - `DescribeVpcEndpoints` and `DescribeSecurityGroups` by lists of IDs (the IDs the objects'
//!   checks asked for);
//! - `ListFunctions` (pages of 50), whose `RevisionId` tells whether a function (its
//!   configuration, code or resource policy) changed since the operator last read it with
//!   `GetFunction`/`GetPolicy`: unchanged, the last reads are reused.
//!
//! What has no listing is read per object: the stage (which deployment it serves) at every check;
//! resources, methods and integrations only at every Nth check (`--deep-resync-every`), or when
//! the operator has not read them yet. A change to routes that was not deployed does not change
//! what the stage serves; one that was deployed changes the stage's deployment, which every check
//! sees.
//!
//! The listings are only used to *confirm* that nothing changed: a check that would change
//! anything (any write to AWS or to the status) is abandoned and the object is reconciled again
//! with fresh reads (see the reconciler).

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_sdk_ec2::types::{Filter, SecurityGroup, VpcEndpoint};
use tokio::time::Instant;

use crate::aws::RegionClients;
use crate::error::{AwsResultExt, Result};
use crate::parts::api::LiveApi;
use crate::parts::backend::LiveFunction;
use crate::parts::routes::LiveResource;

/// EC2 accepts up to 200 values per filter.
const IDS_PER_CALL: usize = 200;

/// One listing, with when it was taken.
struct Listing<T> {
    taken: Instant,
    items: Arc<T>,
}

/// A listing served to everyone for `window`, fetched by one caller at a time (the others wait
/// for its result instead of listing too).
struct SingleFlight<T> {
    slot: tokio::sync::Mutex<Option<Listing<T>>>,
}

impl<T> Default for SingleFlight<T> {
    fn default() -> Self {
        Self {
            slot: tokio::sync::Mutex::new(None),
        }
    }
}

impl<T> SingleFlight<T> {
    async fn get<F, Fut>(&self, window: Duration, fetch: F) -> Result<Arc<T>>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<T>>,
    {
        let mut slot = self.slot.lock().await;
        if let Some(listing) = slot.as_ref()
            && listing.taken.elapsed() < window
        {
            return Ok(listing.items.clone());
        }
        let taken = Instant::now();
        let items = Arc::new(fetch().await?);
        *slot = Some(Listing {
            taken,
            items: items.clone(),
        });
        Ok(items)
    }
}

/// EC2 objects by ID, listed for the IDs the checks asked for.
struct ById<T> {
    taken: Option<Instant>,
    /// Every ID asked for recently, listed together at the next refresh.
    wanted: BTreeSet<String>,
    /// The IDs the current listing covers, and what it found.
    covered: BTreeSet<String>,
    found: HashMap<String, T>,
}

impl<T> Default for ById<T> {
    fn default() -> Self {
        Self {
            taken: None,
            wanted: BTreeSet::new(),
            covered: BTreeSet::new(),
            found: HashMap::new(),
        }
    }
}

/// The last direct reads of what has a revision (functions, their policies) or no listing
/// (routes), reused while nothing says they changed.
#[derive(Default)]
struct Remembered {
    /// By ARN: (RevisionId, the function as GetFunction returned it).
    functions: HashMap<String, (String, LiveFunction)>,
    /// Function name (or ARN, as the parts ask for it) → ARN.
    function_arns: HashMap<String, String>,
    /// By function name: (RevisionId, policy).
    policies: HashMap<String, (String, Option<String>)>,
    /// By REST API ID.
    routes: HashMap<String, Vec<LiveResource>>,
}

/// Everything observed in one account-region.
#[derive(Default)]
pub struct RegionObservations {
    rest_apis: SingleFlight<HashMap<String, LiveApi>>,
    /// Function name → RevisionId.
    functions: SingleFlight<HashMap<String, String>>,
    endpoints: tokio::sync::Mutex<ById<VpcEndpoint>>,
    groups: tokio::sync::Mutex<ById<SecurityGroup>>,
    remembered: Mutex<Remembered>,
}

/// The observations of every account-region, shared by all reconciles.
pub struct Observations {
    window: Duration,
    deep_every: u32,
    regions: Mutex<HashMap<String, Arc<RegionObservations>>>,
    /// Periodic checks made per object, for the deep-check turn.
    turns: Mutex<HashMap<String, u32>>,
}

impl Observations {
    pub fn new(window: Duration, deep_every: u32) -> Self {
        Self {
            window,
            deep_every: deep_every.max(1),
            regions: Mutex::new(HashMap::new()),
            turns: Mutex::new(HashMap::new()),
        }
    }

    pub fn window(&self) -> Duration {
        self.window
    }

    pub fn region(&self, region: &str) -> Arc<RegionObservations> {
        self.regions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(region.to_string())
            .or_default()
            .clone()
    }

    /// Whether this periodic check of `object` is a deep one. Each object has its own phase (a
    /// hash of its key), so deep checks of objects created together are spread over N periods.
    pub fn next_check_is_deep(&self, object: &str) -> bool {
        let mut turns = self.turns.lock().unwrap_or_else(|p| p.into_inner());
        let turn = turns.entry(object.to_string()).or_insert(0);
        *turn = turn.wrapping_add(1);
        let phase = u32::from_str_radix(&crate::identity::short_hash(&[object], 8), 16)
            .unwrap_or(0)
            % self.deep_every;
        *turn % self.deep_every == phase
    }

    pub fn forget(&self, object: &str) {
        self.turns
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(object);
    }

    /// Forget what is remembered of objects, REST APIs and functions that no live object names:
    /// objects deleted while this process did not run their cleanup (another leader, a removed
    /// finalizer) would otherwise stay remembered for good.
    pub fn retain(&self, live: &LiveNames) {
        self.turns
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|object, _| live.objects.contains(object));
        let regions: Vec<Arc<RegionObservations>> = self
            .regions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .collect();
        for region in regions {
            region.retain(live);
        }
    }

    /// How many objects and remembered reads are kept (objects with a check turn; REST APIs
    /// with routes and functions with a configuration, over all regions).
    pub fn remembered_counts(&self) -> (usize, usize, usize) {
        let objects = self.turns.lock().unwrap_or_else(|p| p.into_inner()).len();
        let regions = self.regions.lock().unwrap_or_else(|p| p.into_inner());
        let (apis, functions) = regions.values().fold((0, 0), |(apis, functions), region| {
            let remembered = region.remembered();
            (
                apis + remembered.routes.len(),
                functions + remembered.functions.len(),
            )
        });
        (objects, apis, functions)
    }
}

/// What the live objects name: their `namespace/name` keys, and the REST APIs and functions their
/// statuses hold (current or retiring).
#[derive(Debug, Default, Clone)]
pub struct LiveNames {
    pub objects: std::collections::HashSet<String>,
    pub rest_api_ids: std::collections::HashSet<String>,
    pub function_arns: std::collections::HashSet<String>,
}

impl LiveNames {
    /// Whether `name_or_arn` (as the parts ask for a function) is one of the live functions.
    fn names_function(&self, name_or_arn: &str) -> bool {
        self.function_arns.contains(name_or_arn)
            || self
                .function_arns
                .iter()
                .any(|arn| arn.rsplit(':').next() == Some(name_or_arn))
    }
}

/// How the parts read AWS in one reconcile.
#[derive(Clone, Copy)]
pub struct Reads<'a> {
    pub region: &'a RegionObservations,
    pub window: Duration,
    /// Serve from the listings and the remembered reads (a periodic check); otherwise every
    /// read goes to AWS, and what it finds is remembered.
    pub shared: bool,
    /// Read routes and policies directly even in a shared check.
    pub deep: bool,
}

impl RegionObservations {
    fn remembered(&self) -> std::sync::MutexGuard<'_, Remembered> {
        self.remembered.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn retain(&self, live: &LiveNames) {
        let mut remembered = self.remembered();
        remembered
            .routes
            .retain(|rest_api_id, _| live.rest_api_ids.contains(rest_api_id));
        remembered
            .functions
            .retain(|arn, _| live.function_arns.contains(arn));
        remembered
            .function_arns
            .retain(|_, arn| live.function_arns.contains(arn));
        remembered
            .policies
            .retain(|name, _| live.names_function(name));
    }

    /// The REST API `id` from the region's listing (None: not in it, i.e. gone).
    pub async fn rest_api(
        &self,
        aws: &RegionClients,
        window: Duration,
        id: &str,
    ) -> Result<Option<LiveApi>> {
        let apis = self
            .rest_apis
            .get(window, || async {
                Ok(crate::parts::api::list_rest_apis(aws)
                    .await?
                    .into_iter()
                    .map(|api| (api.id.clone(), api))
                    .collect())
            })
            .await?;
        Ok(apis.get(id).cloned())
    }

    /// The RevisionId of function `name_or_arn` in the region's listing (None: not listed).
    async fn function_revision(
        &self,
        aws: &RegionClients,
        window: Duration,
        name_or_arn: &str,
    ) -> Result<Option<String>> {
        let revisions = self
            .functions
            .get(window, || async {
                let functions: std::result::Result<Vec<_>, _> = aws
                    .lambda
                    .list_functions()
                    .into_paginator()
                    .page_size(50)
                    .items()
                    .send()
                    .collect()
                    .await;
                let mut all = HashMap::new();
                for function in functions.aws("Lambda", "ListFunctions")? {
                    if let (Some(name), Some(revision)) =
                        (function.function_name(), function.revision_id())
                    {
                        all.insert(name.to_string(), revision.to_string());
                        if let Some(arn) = function.function_arn() {
                            all.insert(arn.to_string(), revision.to_string());
                        }
                    }
                }
                Ok(all)
            })
            .await?;
        Ok(revisions.get(name_or_arn).cloned())
    }

    /// The function as last read, if the listing shows the same revision.
    pub async fn unchanged_function(
        &self,
        aws: &RegionClients,
        window: Duration,
        name_or_arn: &str,
    ) -> Result<Option<LiveFunction>> {
        let Some(revision) = self.function_revision(aws, window, name_or_arn).await? else {
            return Ok(None);
        };
        let remembered = self.remembered();
        let arn = remembered
            .function_arns
            .get(name_or_arn)
            .map_or(name_or_arn, String::as_str);
        Ok(remembered
            .functions
            .get(arn)
            .filter(|(known, _)| *known == revision)
            .map(|(_, function)| function.clone()))
    }

    /// Remember a function read by GetFunction at `revision`.
    pub fn remember_function(
        &self,
        name_or_arn: &str,
        revision: Option<&str>,
        function: &LiveFunction,
    ) {
        let mut remembered = self.remembered();
        let arn = function.arn.clone();
        match revision {
            Some(revision) if !arn.is_empty() => {
                for key in [name_or_arn, function.name.as_str()] {
                    if !key.is_empty() && key != arn {
                        remembered
                            .function_arns
                            .insert(key.to_string(), arn.clone());
                    }
                }
                remembered
                    .functions
                    .insert(arn, (revision.to_string(), function.clone()));
            }
            _ => {
                let arn = remembered
                    .function_arns
                    .get(name_or_arn)
                    .cloned()
                    .unwrap_or_else(|| name_or_arn.to_string());
                remembered.functions.remove(&arn);
            }
        }
    }

    /// The function's policy as last read, if the listing shows the same revision.
    pub async fn unchanged_policy(
        &self,
        aws: &RegionClients,
        window: Duration,
        function: &str,
    ) -> Result<Option<Option<String>>> {
        let Some(revision) = self.function_revision(aws, window, function).await? else {
            return Ok(None);
        };
        Ok(self
            .remembered()
            .policies
            .get(function)
            .filter(|(known, _)| *known == revision)
            .map(|(_, policy)| policy.clone()))
    }

    /// Remember a policy read by GetPolicy (its RevisionId is the function's).
    pub fn remember_policy(&self, function: &str, revision: Option<&str>, policy: Option<&String>) {
        let mut remembered = self.remembered();
        match revision {
            Some(revision) => {
                remembered.policies.insert(
                    function.to_string(),
                    (revision.to_string(), policy.cloned()),
                );
            }
            None => {
                remembered.policies.remove(function);
            }
        }
    }

    /// The RevisionId the function's policy was last read at.
    pub fn policy_revision(&self, function: &str) -> Option<String> {
        self.remembered()
            .policies
            .get(function)
            .map(|(revision, _)| revision.clone())
    }

    /// The RevisionId the function (ARN) was last read at.
    pub fn remembered_function_revision(&self, function: &str) -> Option<String> {
        self.remembered()
            .functions
            .get(function)
            .map(|(revision, _)| revision.clone())
    }

    /// The function (ARN `function`) changed from revision `before` to `after` by a change the
    /// operator made itself to its policy: its remembered configuration still holds.
    pub fn move_function_revision(&self, function: &str, before: &str, after: &str) {
        if let Some((revision, _)) = self.remembered().functions.get_mut(function)
            && revision == before
        {
            *revision = after.to_string();
        }
    }

    /// Drop what was remembered of a deleted object's API and function.
    pub fn forget(&self, rest_api_id: Option<&str>, function_arn: Option<&str>) {
        let mut remembered = self.remembered();
        if let Some(id) = rest_api_id {
            remembered.routes.remove(id);
        }
        if let Some(arn) = function_arn {
            remembered.functions.remove(arn);
            remembered.policies.remove(arn);
            remembered.function_arns.retain(|_, target| target != arn);
        }
    }

    pub fn remembered_routes(&self, rest_api_id: &str) -> Option<Vec<LiveResource>> {
        self.remembered().routes.get(rest_api_id).cloned()
    }

    pub fn remember_routes(&self, rest_api_id: &str, routes: &[LiveResource]) {
        self.remembered()
            .routes
            .insert(rest_api_id.to_string(), routes.to_vec());
    }

    /// Include endpoint `id` in the next listing (an object's endpoint, read directly).
    pub async fn want_endpoint(&self, id: &str) {
        self.endpoints.lock().await.wanted.insert(id.to_string());
    }

    /// Include security group `id` in the next listing.
    pub async fn want_group(&self, id: &str) {
        self.groups.lock().await.wanted.insert(id.to_string());
    }

    /// The VPC endpoint `id` (None: gone).
    pub async fn vpc_endpoint(
        &self,
        aws: &RegionClients,
        window: Duration,
        id: &str,
    ) -> Result<Option<VpcEndpoint>> {
        let mut by_id = self.endpoints.lock().await;
        refresh(&mut by_id, window, id, |ids| async move {
            let endpoints: std::result::Result<Vec<_>, _> = aws
                .ec2
                .describe_vpc_endpoints()
                .filters(id_filter("vpc-endpoint-id", &ids))
                .into_paginator()
                .items()
                .send()
                .collect()
                .await;
            Ok(endpoints
                .aws("EC2", "DescribeVpcEndpoints")?
                .into_iter()
                .filter_map(|e| e.vpc_endpoint_id().map(|id| (id.to_string(), e.clone())))
                .collect())
        })
        .await
    }

    /// The security group `id` (None: gone).
    pub async fn security_group(
        &self,
        aws: &RegionClients,
        window: Duration,
        id: &str,
    ) -> Result<Option<SecurityGroup>> {
        let mut by_id = self.groups.lock().await;
        refresh(&mut by_id, window, id, |ids| async move {
            let groups: std::result::Result<Vec<_>, _> = aws
                .ec2
                .describe_security_groups()
                .filters(id_filter("group-id", &ids))
                .into_paginator()
                .items()
                .send()
                .collect()
                .await;
            Ok(groups
                .aws("EC2", "DescribeSecurityGroups")?
                .into_iter()
                .filter_map(|g| g.group_id().map(|id| (id.to_string(), g.clone())))
                .collect())
        })
        .await
    }
}

fn id_filter(name: &str, ids: &[String]) -> Filter {
    Filter::builder()
        .name(name)
        .set_values(Some(ids.to_vec()))
        .build()
}

/// `id` from the listing: listed again (every wanted ID at once) when the listing is older than
/// `window`; when only `id` is new, just `id` is listed and added.
async fn refresh<T, F, Fut>(
    by_id: &mut ById<T>,
    window: Duration,
    id: &str,
    list: F,
) -> Result<Option<T>>
where
    T: Clone,
    F: Fn(Vec<String>) -> Fut,
    Fut: std::future::Future<Output = Result<Vec<(String, T)>>>,
{
    by_id.wanted.insert(id.to_string());
    let fresh = by_id.taken.is_some_and(|taken| taken.elapsed() < window);
    if !fresh {
        let taken = Instant::now();
        let ids: Vec<String> = by_id.wanted.iter().cloned().collect();
        let mut found = HashMap::new();
        for chunk in ids.chunks(IDS_PER_CALL) {
            found.extend(list(chunk.to_vec()).await?);
        }
        // IDs that are gone are not asked for again until a check wants them.
        by_id.wanted.retain(|id| found.contains_key(id));
        by_id.covered = ids.into_iter().collect();
        by_id.found = found;
        by_id.taken = Some(taken);
    } else if !by_id.covered.contains(id) {
        let found = list(vec![id.to_string()]).await?;
        by_id.covered.insert(id.to_string());
        by_id.found.extend(found);
    }
    Ok(by_id.found.get(id).cloned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deep_checks_come_every_nth_turn_at_each_objects_phase() {
        let observations = Observations::new(Duration::from_secs(60), 5);
        let mut deep_turns_per_object = Vec::new();
        let mut first_deep = BTreeSet::new();
        for i in 0..40 {
            let key = format!("ns/o{i}");
            let deep: Vec<u32> = (1..=20)
                .filter(|_| observations.next_check_is_deep(&key))
                .collect();
            deep_turns_per_object.push(deep.len());
            first_deep.insert(
                (1..=5)
                    .find(|turn| {
                        let observations = Observations::new(Duration::from_secs(60), 5);
                        (1..*turn).for_each(|_| {
                            observations.next_check_is_deep(&key);
                        });
                        observations.next_check_is_deep(&key)
                    })
                    .unwrap_or(0),
            );
        }
        // 20 checks at N = 5: 4 deep ones for every object ...
        assert!(
            deep_turns_per_object.iter().all(|n| *n == 4),
            "{deep_turns_per_object:?}"
        );
        // ... not all at the same turn.
        assert!(first_deep.len() > 1, "{first_deep:?}");
        let every = Observations::new(Duration::from_secs(60), 1);
        assert!((0..3).all(|_| every.next_check_is_deep("ns/x")));
    }

    #[test]
    fn what_is_remembered_of_a_deleted_object_is_forgotten() {
        let region = RegionObservations::default();
        let arn = "arn:aws:lambda:us-east-1:123456789012:function:papi-f";
        let function = LiveFunction {
            arn: arn.into(),
            name: "papi-f".into(),
            ..LiveFunction::default()
        };
        region.remember_function("papi-f", Some("r1"), &function);
        region.remember_policy(arn, Some("r1"), Some(&"{}".to_string()));
        region.remember_routes("api1", &[]);
        assert_eq!(
            region.remembered_function_revision(arn).as_deref(),
            Some("r1")
        );
        region.move_function_revision(arn, "r1", "r2");
        assert_eq!(
            region.remembered_function_revision(arn).as_deref(),
            Some("r2")
        );
        // Only from the revision it was read at.
        region.move_function_revision(arn, "r1", "r3");
        assert_eq!(
            region.remembered_function_revision(arn).as_deref(),
            Some("r2")
        );
        region.forget(Some("api1"), Some(arn));
        assert_eq!(region.remembered_function_revision(arn), None);
        assert_eq!(region.policy_revision(arn), None);
        assert!(region.remembered_routes("api1").is_none());
        assert!(region.remembered().function_arns.is_empty());
    }

    #[tokio::test]
    async fn by_id_lists_lists_all_wanted_ids_once_per_window() {
        let calls = Arc::new(Mutex::new(Vec::<Vec<String>>::new()));
        let list = |ids: Vec<String>| {
            let calls = calls.clone();
            async move {
                calls.lock().expect("lock").push(ids.clone());
                Ok(ids
                    .into_iter()
                    .filter(|id| id != "gone")
                    .map(|id| (id.clone(), format!("item {id}")))
                    .collect())
            }
        };
        // Long enough for the calls below to fall inside it on a busy machine.
        let window = Duration::from_secs(3);
        let mut by_id = ById::<String>::default();
        assert_eq!(
            refresh(&mut by_id, window, "a", list).await.expect("ok"),
            Some("item a".into())
        );
        // A new ID within the window: listed alone.
        assert_eq!(
            refresh(&mut by_id, window, "b", list).await.expect("ok"),
            Some("item b".into())
        );
        assert_eq!(
            refresh(&mut by_id, window, "gone", list).await.expect("ok"),
            None
        );
        // Known IDs within the window: no call.
        refresh(&mut by_id, window, "a", list).await.expect("ok");
        refresh(&mut by_id, window, "b", list).await.expect("ok");
        assert_eq!(calls.lock().expect("lock").len(), 3);
        // After the window: one call for everything wanted.
        tokio::time::sleep(window).await;
        refresh(&mut by_id, window, "a", list).await.expect("ok");
        refresh(&mut by_id, window, "b", list).await.expect("ok");
        let calls = calls.lock().expect("lock");
        assert_eq!(calls.len(), 4, "{calls:?}");
        assert_eq!(calls[3], vec!["a".to_string(), "b".into(), "gone".into()]);
        // What was gone is not asked for again.
        assert!(!by_id.wanted.contains("gone"));
    }

    #[tokio::test]
    async fn single_flight_serves_one_listing_per_window() {
        let flight = Arc::new(SingleFlight::<u32>::default());
        let fetches = Arc::new(Mutex::new(0u32));
        let window = Duration::from_secs(3);
        let mut tasks = Vec::new();
        for _ in 0..10 {
            let (flight, fetches) = (flight.clone(), fetches.clone());
            tasks.push(tokio::spawn(async move {
                flight
                    .get(window, || async {
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        let mut n = fetches.lock().expect("lock");
                        *n += 1;
                        Ok(*n)
                    })
                    .await
                    .expect("ok")
            }));
        }
        for task in tasks {
            assert_eq!(*task.await.expect("task"), 1);
        }
        tokio::time::sleep(window).await;
        let again = flight.get(window, || async { Ok(99) }).await.expect("ok");
        assert_eq!(*again, 99);
    }
}
