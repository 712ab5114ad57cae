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
//!
//! Here: [`Observations`] (every account-region) and the [`Reader`] the reconciler hands the
//! parts (`reader`, over the direct reads in `direct`); one
//! account-region's listings and remembered reads in `region`, the shared listings in
//! `single_flight`, the EC2 listings by ID in `by_id`.

mod by_id;
mod direct;
mod domains;
mod reader;
mod region;
mod single_flight;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub use reader::Reader;
pub use region::RegionObservations;

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

#[cfg(test)]
mod tests;
