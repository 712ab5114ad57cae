//! When each object is probed: never more often than its interval, and all objects together
//! within the prober's own budget (a rate and a number in flight), so that a thousand objects with
//! probes never send a thousand requests at once. Pure: the caller passes the time.

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// An object that may be probed now (Ready, with a URL and `spec.probe`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    pub key: String,
    pub interval: Duration,
}

/// The probes' own token bucket.
#[derive(Debug)]
struct Budget {
    rate: f64,
    burst: f64,
    tokens: f64,
    stamp: Instant,
}

impl Budget {
    fn new(rate: f64, now: Instant) -> Self {
        let burst = rate.max(1.0);
        Self {
            rate,
            burst,
            tokens: burst,
            stamp: now,
        }
    }

    fn take(&mut self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.stamp).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        self.stamp = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[derive(Debug)]
pub struct Schedule {
    /// When each object was last probed.
    last: HashMap<String, Instant>,
    budget: Budget,
}

impl Schedule {
    /// `rate`: probes per second, all objects together.
    pub fn new(rate: f64, now: Instant) -> Self {
        Self {
            last: HashMap::new(),
            budget: Budget::new(rate, now),
        }
    }

    /// Of `candidates`, the keys to probe now: those never probed or probed at least their
    /// interval ago, the longest waiting first, at most `slots` and as many as the budget
    /// allows. They count as probed at `now`; the others stay due for the next call.
    pub fn take_due(
        &mut self,
        candidates: &[Candidate],
        slots: usize,
        now: Instant,
    ) -> Vec<String> {
        let mut due: Vec<(Option<Instant>, &Candidate)> = candidates
            .iter()
            .filter_map(|c| match self.last.get(&c.key) {
                None => Some((None, c)),
                Some(at) if now.saturating_duration_since(*at) >= c.interval => {
                    Some((Some(*at), c))
                }
                Some(_) => None,
            })
            .collect();
        // Never probed first (None sorts first), then the oldest probe.
        due.sort_by_key(|(at, c)| (*at, c.key.clone()));
        let mut taken = Vec::new();
        for (_, candidate) in due {
            if taken.len() >= slots || !self.budget.take(now) {
                break;
            }
            self.last.insert(candidate.key.clone(), now);
            taken.push(candidate.key.clone());
        }
        taken
    }

    /// Forget the objects for which `keep` does not hold (deleted, or without a probe).
    pub fn retain(&mut self, keep: impl Fn(&str) -> bool) {
        self.last.retain(|key, _| keep(key));
    }

    pub fn len(&self) -> usize {
        self.last.len()
    }

    pub fn is_empty(&self) -> bool {
        self.last.is_empty()
    }
}
