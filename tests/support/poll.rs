//! Polling until something holds: one look every `interval`, a panic naming what was awaited and
//! the last look after `timeout`.
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

/// Look with `check` every `interval` until it holds; panic after `timeout`.
pub fn until<L: Look>(
    what: &str,
    timeout: Duration,
    interval: Duration,
    mut check: impl FnMut() -> L,
) -> L::Value {
    let deadline = Instant::now() + timeout;
    loop {
        match check().look() {
            Ok(value) => return value,
            Err(last) if Instant::now() >= deadline => timed_out(what, timeout, &last),
            Err(_) => std::thread::sleep(interval),
        }
    }
}

/// [`until`] with an async look, sleeping on the runtime between looks.
pub async fn until_async<L: Look>(
    what: &str,
    timeout: Duration,
    interval: Duration,
    mut check: impl AsyncFnMut() -> L,
) -> L::Value {
    let deadline = Instant::now() + timeout;
    loop {
        match check().await.look() {
            Ok(value) => return value,
            Err(last) if Instant::now() >= deadline => timed_out(what, timeout, &last),
            Err(_) => tokio::time::sleep(interval).await,
        }
    }
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
