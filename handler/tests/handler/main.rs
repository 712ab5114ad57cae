//! The handler's tests, one binary: its logic on API Gateway proxy events, the deterministic
//! packager, and the `bootstrap` binary under the Lambda Runtime Interface Emulator (the last needs
//! the test bed: `make test`).

mod events;
mod package;
mod rie;

/// A path inside the handler crate, read when the test runs: cargo sets `CARGO_MANIFEST_DIR` for
/// the test process. The compile-time value is only a fallback, because a test binary built from a
/// checkout at another path (a shared `CARGO_TARGET_DIR`, where cargo counts it as fresh) still
/// holds that other path.
fn repo_path(relative: &str) -> std::path::PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")))
        .join(relative)
}

/// The proxy event fixture `name` (tests/fixtures).
fn fixture(name: &str) -> String {
    let path = repo_path("tests/fixtures").join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}
