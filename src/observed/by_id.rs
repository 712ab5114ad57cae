//! The EC2 listings by ID (VPC endpoints, security groups): one `Describe…` for all the IDs wanted.

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use aws_sdk_ec2::types::Filter;
use tokio::time::Instant;

use crate::error::Result;

/// EC2 accepts up to 200 values per filter.
const IDS_PER_CALL: usize = 200;

/// EC2 objects by ID, listed for the IDs the checks asked for.
pub(super) struct ById<T> {
    taken: Option<Instant>,
    /// Every ID asked for recently, listed together at the next refresh.
    pub(super) wanted: BTreeSet<String>,
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

pub(super) fn id_filter(name: &str, ids: &[String]) -> Filter {
    Filter::builder()
        .name(name)
        .set_values(Some(ids.to_vec()))
        .build()
}

/// `id` from the listing: listed again (every wanted ID at once) when the listing is older than
/// `window`; when only `id` is new, just `id` is listed and added.
pub(super) async fn refresh<T, F, Fut>(
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
mod tests;
