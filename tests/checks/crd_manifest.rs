//! The committed CRD is exactly what the Rust types generate.

use crate::support::repo_path;

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
