//! The committed CRD is exactly what the Rust types generate.

#[test]
fn committed_crd_matches_the_rust_types() {
    let generated = privateapi_operator::crd_yaml().expect("the CRD serializes");
    let path = repo_path("crds/privateapi.yaml");
    let committed = std::fs::read_to_string(path).expect("crds/privateapi.yaml exists");
    assert!(
        committed == generated,
        "crds/privateapi.yaml is stale: run `cargo run --bin crdgen crds/privateapi.yaml` and commit it"
    );
}

/// The package's directory, read when the test runs: cargo sets `CARGO_MANIFEST_DIR` for the
/// test process. The compile-time value is only a fallback, because a test binary built from a
/// checkout at another path (a shared `CARGO_TARGET_DIR`, where cargo counts it as fresh) still
/// holds that other path.
fn repo_path(relative: &str) -> std::path::PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")))
        .join(relative)
}
