//! The Lambda backend: the function (`builtin`, `code`, or a referenced `functionArn`) and the
//! invoke permission that lets this API call it.
//!
//! How the part reads, in the order the reconciler calls it:
//! - `function`: observe (`GetFunction`), diff against the spec (pure: `desired`, `live`,
//!   `diff`), apply the smallest change (`apply`: at most one `UpdateFunctionCode` and one
//!   `UpdateFunctionConfiguration`). Its module docs say how code changes are detected.
//! - `permission`: observe the function's resource policy (`GetPolicy`), diff its statements
//!   against the one this API needs (pure, matched with `crate::policy`), apply
//!   (`RemovePermission`, `AddPermission`).
//! - `release`: functions an earlier spec used, and everything on delete.
//! - `names`: Lambda function ARNs.

mod function;
mod names;
mod permission;
mod release;
#[cfg(test)]
mod test_support;

pub use function::{BackendInfo, FunctionConfig, LiveFunction, reconcile_function};
pub use permission::{reconcile_permission, remove_statements};
pub use release::{cleanup, release_retired};

use crate::conditions::{PartState, reason};
use crate::error::{AwsErrorKind, Error};

const SERVICE: &str = "Lambda";

/// Lambda refuses writes while the function is Pending or being updated: report that as a
/// not-ready state (the reconciler requeues) rather than an error.
fn conflict_state(err: &Error, function: &str) -> Option<PartState> {
    if err.aws_kind() != Some(AwsErrorKind::Conflict) {
        return None;
    }
    let message = err.to_string();
    let reason = if message.contains("Pending") {
        reason::PENDING
    } else {
        reason::UPDATING
    };
    Some(PartState::not_ready(
        reason,
        format!("function {function} is busy, will retry: {message}"),
    ))
}
