//! The fair wait queue: by class, then round-robin by namespace.

use std::collections::{BTreeMap, HashMap, VecDeque};

use tokio::sync::oneshot;

use super::Priority;

/// Waiters (of one bucket, or for a reconcile slot: [`crate::admission`]): by class, then
/// round-robin by namespace.
#[derive(Default)]
pub(crate) struct WaitQueue {
    classes: BTreeMap<Priority, FairQueue>,
    len: usize,
}

#[derive(Default)]
struct FairQueue {
    by_namespace: HashMap<String, VecDeque<oneshot::Sender<()>>>,
    /// Namespaces with waiters, in the order they are served next.
    turn: VecDeque<String>,
}

impl WaitQueue {
    pub(crate) fn push(
        &mut self,
        priority: Priority,
        namespace: &str,
        waiter: oneshot::Sender<()>,
    ) {
        let class = self.classes.entry(priority).or_default();
        let waiters = class.by_namespace.entry(namespace.to_string()).or_default();
        if waiters.is_empty() {
            class.turn.push_back(namespace.to_string());
        }
        waiters.push_back(waiter);
        self.len += 1;
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// The next waiter: the first class with waiters, its next namespace in turn.
    pub(crate) fn pop(&mut self) -> Option<oneshot::Sender<()>> {
        for class in self.classes.values_mut() {
            while let Some(namespace) = class.turn.pop_front() {
                let Some(waiters) = class.by_namespace.get_mut(&namespace) else {
                    continue;
                };
                let Some(waiter) = waiters.pop_front() else {
                    class.by_namespace.remove(&namespace);
                    continue;
                };
                if waiters.is_empty() {
                    class.by_namespace.remove(&namespace);
                } else {
                    class.turn.push_back(namespace);
                }
                self.len -= 1;
                return Some(waiter);
            }
        }
        None
    }
}

#[cfg(test)]
mod tests;
