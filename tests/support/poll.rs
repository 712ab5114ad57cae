//! Polling until something holds: one look every `interval`; after `timeout`, a panic naming what
//! was awaited and the last look ([`until`], [`until_async`]), or that last look as an `Err`
//! ([`within`], [`within_async`]).
//!
//! A look returns `Option<T>` (None: not yet), `Result<T, E>` (Err: not yet, and why) or `bool`.

use std::fmt::Display;
use std::time::{Duration, Instant};

/// What one look saw: the value once it holds, else what to report if time runs out.
pub trait Look {
    type Value;
    fn look(self) -> Result<Self::Value, String>;
}

impl<T> Look for Option<T> {
    type Value = T;
    fn look(self) -> Result<T, String> {
        self.ok_or_else(|| "not yet".to_string())
    }
}

impl<T, E: Display> Look for Result<T, E> {
    type Value = T;
    fn look(self) -> Result<T, String> {
        self.map_err(|e| e.to_string())
    }
}

impl Look for bool {
    type Value = ();
    fn look(self) -> Result<(), String> {
        if self { Ok(()) } else { Err("false".into()) }
    }
}

fn timed_out(what: &str, timeout: Duration, last: &str) -> ! {
    panic!("timed out after {timeout:?} waiting for {what}; last: {last}")
}

/// Look with `check` every `interval` until it holds; after `timeout`, `Err` with the last look.
pub fn within<L: Look>(
    timeout: Duration,
    interval: Duration,
    mut check: impl FnMut() -> L,
) -> Result<L::Value, String> {
    let deadline = Instant::now() + timeout;
    loop {
        match check().look() {
            Ok(value) => return Ok(value),
            Err(last) if Instant::now() >= deadline => return Err(last),
            Err(_) => std::thread::sleep(interval),
        }
    }
}

/// [`within`] with an async look, sleeping on the runtime between looks.
pub async fn within_async<L: Look>(
    timeout: Duration,
    interval: Duration,
    mut check: impl AsyncFnMut() -> L,
) -> Result<L::Value, String> {
    let deadline = Instant::now() + timeout;
    loop {
        match check().await.look() {
            Ok(value) => return Ok(value),
            Err(last) if Instant::now() >= deadline => return Err(last),
            Err(_) => tokio::time::sleep(interval).await,
        }
    }
}

/// Look with `check` every `interval` until it holds; panic after `timeout`.
pub fn until<L: Look>(
    what: &str,
    timeout: Duration,
    interval: Duration,
    check: impl FnMut() -> L,
) -> L::Value {
    within(timeout, interval, check).unwrap_or_else(|last| timed_out(what, timeout, &last))
}

/// [`until`] with an async look, sleeping on the runtime between looks.
pub async fn until_async<L: Look>(
    what: &str,
    timeout: Duration,
    interval: Duration,
    check: impl AsyncFnMut() -> L,
) -> L::Value {
    within_async(timeout, interval, check)
        .await
        .unwrap_or_else(|last| timed_out(what, timeout, &last))
}

/// [`until_async`], and how long it took.
pub async fn timed_async<L: Look>(
    what: &str,
    timeout: Duration,
    interval: Duration,
    check: impl AsyncFnMut() -> L,
) -> (L::Value, Duration) {
    let started = Instant::now();
    let value = until_async(what, timeout, interval, check).await;
    (value, started.elapsed())
}
