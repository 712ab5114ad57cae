//! Token buckets, with AIMD on throttling answers.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::oneshot;
use tokio::time::Instant;

use super::{Priority, WaitQueue};

/// AIMD: a throttling answer multiplies the rate by this ...
const DECREASE: f64 = 0.5;
/// ... never below this fraction of the configured rate ...
const FLOOR: f64 = 0.05;
/// ... and each success adds this fraction of the configured rate back.
const INCREASE: f64 = 0.02;

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
        let needed = self.queue.len() as f64 + 1.0 - self.tokens;
        Duration::from_secs_f64((needed.max(0.0) / self.rate).min(86_400.0))
    }
}

/// One token bucket with its waiters.
pub struct Bucket {
    state: Mutex<BucketState>,
}

impl Bucket {
    pub(super) fn new(rate: f64, burst: f64) -> Arc<Self> {
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
    pub(super) fn take_or_queue(
        self: &Arc<Self>,
        priority: Priority,
        namespace: &str,
    ) -> Option<oneshot::Receiver<()>> {
        let mut state = self.lock();
        state.refill(Instant::now());
        if state.queue.len() == 0 && state.tokens >= 1.0 {
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
                if state.queue.len() == 0 {
                    state.dispatching = false;
                    return;
                }
                Duration::from_secs_f64(((1.0 - state.tokens) / state.rate).max(0.001))
            };
            tokio::time::sleep(pause).await;
        }
    }

    pub(super) fn on_throttled(&self) {
        let mut state = self.lock();
        state.refill(Instant::now());
        state.rate = (state.rate * DECREASE).max(state.max_rate * FLOOR);
        // What the bucket held was evidently not there at AWS.
        state.tokens = state.tokens.min(0.0);
    }

    pub(super) fn on_success(&self) {
        let mut state = self.lock();
        if state.rate < state.max_rate {
            state.refill(Instant::now());
            state.rate = (state.rate + state.max_rate * INCREASE).min(state.max_rate);
        }
    }

    pub(super) fn estimate(&self) -> Duration {
        self.lock().estimate()
    }

    /// (current rate, configured rate) per second.
    pub fn rates(&self) -> (f64, f64) {
        let state = self.lock();
        (state.rate, state.max_rate)
    }
}

#[cfg(test)]
mod tests;
