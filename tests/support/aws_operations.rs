//! The AWS operations the operator performed during a test run: each `Operator` appends the
//! operations of its /metrics to `$PAPI_TESTBED_DIR/aws-operations.txt` when it stops, so that
//! `tests/checks/iam_policy.rs` can check every one against the IAM policy.

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::time::Duration;

pub fn operations_file() -> Option<PathBuf> {
    std::env::var_os("PAPI_TESTBED_DIR").map(|dir| PathBuf::from(dir).join("aws-operations.txt"))
}

/// GET /metrics without panicking (this runs from `Drop`, maybe while a test panics).
fn fetch_metrics(admin_addr: &str) -> Option<String> {
    let mut stream = TcpStream::connect(admin_addr).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(stream, "GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n").ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    Some(response)
}

/// Append the `Service:Operation` names the operator at `admin_addr` called (successfully or not).
pub fn record_from(admin_addr: &str) {
    let (Some(path), Some(metrics)) = (operations_file(), fetch_metrics(admin_addr)) else {
        return;
    };
    // In `Drop` too: an unreadable page records nothing rather than panicking.
    let Some(calls) = super::parse_aws_calls(&metrics) else {
        return;
    };
    let operations = calls.by_operation;
    if operations.is_empty() {
        return;
    }
    let text: String = operations.keys().map(|op| format!("{op}\n")).collect();
    // One write of a few hundred bytes with O_APPEND: concurrent tests do not interleave lines.
    if let Ok(mut file) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
    {
        let _ = file.write_all(text.as_bytes());
    }
}

/// Every operation recorded so far in this test bed run.
pub fn recorded() -> BTreeSet<String> {
    operations_file()
        .and_then(|path| std::fs::read_to_string(path).ok())
        .map(|text| text.lines().map(str::to_string).collect())
        .unwrap_or_default()
}
