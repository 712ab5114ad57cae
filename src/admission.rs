//! Which reconciles run: at most `--concurrency` at a time; rechecks of objects that wait for AWS
//! first, then creates, spec changes, repairs and deletes, then periodic checks; within a class,
//! namespaces in turn.
//!
//! Why not the controller's own limit: at capacity, kube-runtime's scheduler holds the triggered
//! reconciles in a hash set and starts them in no particular order, with no notion of class.
//! Under AWS's quotas a reconcile holds its slot while it waits for a token, so the order of the
//! slots decides who waits: a namespace's one object lands anywhere among the 1,000 another
//! namespace applied just before, a new create anywhere in the wave of periodic checks that came
//! due (every object, after a restart), and an object that only waits for its endpoint to turn
//! available behind every deployment still to make. The pacer's fair queues ([`crate::pacer`])
//! only order the calls of the reconciles that are already running. So the controller runs
//! every triggered reconcile at once (concurrency 0), and each first waits here, before it has
//! read anything, for a slot handed out by class and then round-robin by
//! namespace. A waiting reconcile is a small future; the controller still never runs two
//! reconciles of one object at a time.

use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::oneshot;
use tokio::time::Instant;

use crate::metrics::Metrics;
use crate::pacer::{Priority, WaitQueue};

/// The slots of all reconciles.
pub struct Admission {
    capacity: usize,
    state: Mutex<State>,
    metrics: Arc<Metrics>,
}

struct State {
    running: usize,
    waiting: WaitQueue,
    /// Shutting down: nothing more is admitted, and the waiters give up.
    closed: bool,
}

/// A slot; dropping it hands the slot to the next waiter.
#[must_use = "the slot is released when the permit is dropped"]
pub struct Permit<'a> {
    admission: &'a Admission,
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        self.admission.release();
    }
}

/// A place in the queue. Dropped before it was served (the reconcile was cancelled), it gives
/// back a slot that was handed to it in the meantime.
struct Waiting<'a> {
    admission: &'a Admission,
    receiver: Option<oneshot::Receiver<()>>,
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        if let Some(mut receiver) = self.receiver.take() {
            receiver.close();
            if receiver.try_recv().is_ok() {
                self.admission.release();
            }
        }
    }
}

impl Admission {
    /// `capacity` reconciles at a time (at least one).
    pub fn new(capacity: usize, metrics: Arc<Metrics>) -> Self {
        Self {
            capacity: capacity.max(1),
            state: Mutex::new(State {
                running: 0,
                waiting: WaitQueue::default(),
                closed: false,
            }),
            metrics,
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn report(&self, state: &State) {
        self.metrics
            .set_reconciles_in_flight(state.running, state.waiting.len());
    }

    /// Wait for a slot as a reconcile of `priority` in `namespace`. `None` once the operator
    /// shuts down: the reconcile should end without doing anything.
    pub async fn admit(&self, priority: Priority, namespace: &str) -> Option<Permit<'_>> {
        let started = Instant::now();
        let receiver = {
            let mut state = self.lock();
            if state.closed {
                return None;
            }
            if state.running < self.capacity && state.waiting.len() == 0 {
                state.running += 1;
                self.report(&state);
                drop(state);
                self.metrics
                    .record_admission(priority.label(), started.elapsed());
                return Some(Permit { admission: self });
            }
            let (sender, receiver) = oneshot::channel();
            state.waiting.push(priority, namespace, sender);
            self.report(&state);
            receiver
        };
        let mut waiting = Waiting {
            admission: self,
            receiver: Some(receiver),
        };
        let served = match waiting.receiver.as_mut() {
            Some(receiver) => receiver.await.is_ok(),
            None => false,
        };
        // Served or closed: either way nothing is left to give back.
        waiting.receiver = None;
        if !served {
            return None;
        }
        self.metrics
            .record_admission(priority.label(), started.elapsed());
        Some(Permit { admission: self })
    }

    fn release(&self) {
        let mut state = self.lock();
        state.running = state.running.saturating_sub(1);
        while state.running < self.capacity && !state.closed {
            let Some(next) = state.waiting.pop() else {
                break;
            };
            // A waiter that is gone (its reconcile was dropped) does not take the slot.
            if next.send(()).is_ok() {
                state.running += 1;
            }
        }
        self.report(&state);
    }

    /// Shutting down: every waiter gives up at once (the reconciles in flight that hold a slot
    /// finish), and nothing more is admitted.
    pub fn close(&self) {
        let mut state = self.lock();
        state.closed = true;
        // Dropping the senders wakes their receivers with an error.
        state.waiting = WaitQueue::default();
        self.report(&state);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn admission(capacity: usize) -> Arc<Admission> {
        Arc::new(Admission::new(capacity, Arc::new(Metrics::default())))
    }

    /// Queues `callers` behind a full admission (one slot, held), then releases it and returns
    /// the order in which they got their slots.
    async fn order_served(callers: &[(&'static str, Priority)]) -> Vec<usize> {
        let admission = admission(1);
        let held = admission.admit(Priority::Foreground, "x").await;
        assert!(held.is_some());
        let order = Arc::new(Mutex::new(Vec::new()));
        let mut tasks = Vec::new();
        for (i, (namespace, priority)) in callers.iter().copied().enumerate() {
            let (task_admission, order) = (admission.clone(), order.clone());
            tasks.push(tokio::spawn(async move {
                let permit = task_admission.admit(priority, namespace).await;
                assert!(permit.is_some(), "served");
                order.lock().expect("lock").push(i);
                // Hold the slot a moment, as a reconcile does.
                tokio::time::sleep(Duration::from_millis(5)).await;
            }));
            // Queue in this order.
            while admission.lock().waiting.len() < i + 1 {
                tokio::task::yield_now().await;
            }
        }
        drop(held);
        for task in tasks {
            task.await.expect("task");
        }
        order.lock().expect("lock").clone()
    }

    #[tokio::test]
    async fn changes_go_before_periodic_checks_and_namespaces_take_turns() {
        let order = order_served(&[
            ("busy", Priority::Background),
            ("busy", Priority::Foreground),
            ("busy", Priority::Foreground),
            ("busy", Priority::Foreground),
            ("quiet", Priority::Foreground),
            ("quiet", Priority::Background),
            ("busy", Priority::Recheck),
        ])
        .await;
        // The recheck first; busy's first change, then quiet's (its turn) before busy's others;
        // the checks last, in turn too.
        assert_eq!(order, vec![6, 1, 4, 2, 3, 0, 5]);
    }

    #[tokio::test]
    async fn at_most_capacity_run_at_once() {
        let admission = admission(3);
        let running = Arc::new(Mutex::new((0usize, 0usize)));
        let mut tasks = Vec::new();
        for i in 0..20 {
            let (admission, running) = (admission.clone(), running.clone());
            tasks.push(tokio::spawn(async move {
                let namespace = if i % 2 == 0 { "a" } else { "b" };
                let _permit = admission
                    .admit(Priority::Foreground, namespace)
                    .await
                    .expect("served");
                {
                    let mut r = running.lock().expect("lock");
                    r.0 += 1;
                    r.1 = r.1.max(r.0);
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
                running.lock().expect("lock").0 -= 1;
            }));
        }
        for task in tasks {
            task.await.expect("task");
        }
        let (now, peak) = *running.lock().expect("lock");
        assert_eq!((now, peak), (0, 3));
        let state = admission.lock();
        assert_eq!((state.running, state.waiting.len()), (0, 0));
    }

    #[tokio::test]
    async fn a_cancelled_waiter_gives_its_slot_on() {
        let admission = admission(1);
        let held = admission.admit(Priority::Foreground, "a").await;
        // A waiter that is dropped while it waits ...
        let cancelled = tokio::time::timeout(
            Duration::from_millis(20),
            admission.admit(Priority::Foreground, "a"),
        )
        .await;
        assert!(cancelled.is_err(), "still waiting when dropped");
        // ... and one that is served and dropped before it ran.
        {
            let mut served_unpolled = Box::pin(admission.admit(Priority::Foreground, "b"));
            assert!(
                futures::poll!(served_unpolled.as_mut()).is_pending(),
                "queued"
            );
            drop(held);
            assert_eq!(admission.lock().running, 1, "the slot went to it");
        }
        assert_eq!(
            admission.lock().running,
            0,
            "and came back when it was dropped"
        );
        let again = tokio::time::timeout(
            Duration::from_millis(200),
            admission.admit(Priority::Foreground, "c"),
        )
        .await;
        assert!(matches!(again, Ok(Some(_))));
    }

    #[tokio::test]
    async fn closing_sends_the_waiters_away() {
        let admission = admission(1);
        let held = admission.admit(Priority::Foreground, "a").await;
        let waiter = {
            let admission = admission.clone();
            tokio::spawn(async move { admission.admit(Priority::Background, "b").await.is_some() })
        };
        while admission.lock().waiting.len() == 0 {
            tokio::task::yield_now().await;
        }
        admission.close();
        assert!(!waiter.await.expect("task"), "a waiter gives up on close");
        assert!(admission.admit(Priority::Foreground, "c").await.is_none());
        drop(held);
        assert_eq!(admission.lock().running, 0);
    }
}
