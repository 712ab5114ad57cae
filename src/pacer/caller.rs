//! Who is calling (a task-local set around each reconcile) and the class of its calls.

use std::fmt;
use std::future::Future;
use std::time::Duration;

use tokio::sync::mpsc;

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

pub(super) fn current_caller() -> Option<Caller> {
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
