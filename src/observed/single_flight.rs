//! A listing served to everyone for a window, fetched by one caller at a time.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use crate::error::Result;

/// One listing, with when it was taken.
struct Listing<T> {
    taken: Instant,
    items: Arc<T>,
}

/// A listing served to everyone for `window`, fetched by one caller at a time (the others wait
/// for its result instead of listing too).
pub(super) struct SingleFlight<T> {
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
    pub(super) async fn get<F, Fut>(&self, window: Duration, fetch: F) -> Result<Arc<T>>
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

#[cfg(test)]
mod tests;
