//! The install manifests as users render them: `kubectl kustomize deploy` and `helm template` of
//! `deploy/helm/privateapi-operator`, parsed into JSON objects.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::Value;

pub use super::repo_path;

pub const CHART: &str = "deploy/helm/privateapi-operator";

/// `kubectl kustomize deploy`.
pub fn render_kustomize() -> String {
    let out = Command::new("kubectl")
        .arg("kustomize")
        .arg(repo_path("deploy"))
        .stdin(Stdio::null())
        .output()
        .expect("kubectl runs (PATH from the test bed)");
    assert!(
        out.status.success(),
        "kubectl kustomize deploy failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `helm template RELEASE CHART --namespace NAMESPACE --include-crds --set S...`: the rendering, or
/// helm's error output.
pub fn try_render_helm(release: &str, namespace: &str, sets: &[&str]) -> Result<String, String> {
    let mut command = Command::new("helm");
    command
        .arg("template")
        .arg(release)
        .arg(repo_path(CHART))
        .args(["--namespace", namespace, "--include-crds"])
        .stdin(Stdio::null());
    for set in sets {
        command.args(["--set", set]);
    }
    let out = command
        .output()
        .expect("helm runs (PATH from the test bed)");
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

pub fn render_helm(release: &str, namespace: &str, sets: &[&str]) -> String {
    try_render_helm(release, namespace, sets)
        .unwrap_or_else(|err| panic!("helm template {release} failed: {err}"))
}

/// Every object of a multi-document YAML stream (empty documents dropped).
pub fn parse_objects(yaml: &str) -> Vec<Value> {
    let mut objects = Vec::new();
    for document in serde_yaml::Deserializer::from_str(yaml) {
        let value: Value = serde::Deserialize::deserialize(document).expect("valid YAML");
        if !value.is_null() {
            objects.push(value);
        }
    }
    objects
}

/// Objects back to a YAML stream (for kubectl).
pub fn to_yaml_stream(objects: &[&Value]) -> String {
    objects
        .iter()
        .map(|o| serde_yaml::to_string(o).expect("serializable"))
        .collect::<Vec<_>>()
        .join("---\n")
}

pub fn kind(object: &Value) -> &str {
    object["kind"].as_str().unwrap_or_default()
}

pub fn name(object: &Value) -> &str {
    object["metadata"]["name"].as_str().unwrap_or_default()
}

/// kustomize's configMapGenerator appends `-<10 character hash>` to a ConfigMap's name.
pub fn without_hash_suffix(name: &str) -> &str {
    match name.rsplit_once('-') {
        Some((base, hash))
            if hash.len() == 10 && hash.chars().all(|c| c.is_ascii_alphanumeric()) =>
        {
            base
        }
        _ => name,
    }
}

/// The one object of `kind` (panics when there is not exactly one).
pub fn the<'a>(objects: &'a [Value], kind_: &str) -> &'a Value {
    let found: Vec<&Value> = objects.iter().filter(|o| kind(o) == kind_).collect();
    assert_eq!(found.len(), 1, "exactly one {kind_} in the rendering");
    found[0]
}

/// A kubeconfig that is the test bed's admin kubeconfig impersonating `user` (kubectl and kube-rs
/// both honour a user's `as`).
pub fn impersonating_kubeconfig(user: &str, dir: &Path) -> PathBuf {
    let admin = std::env::var("KUBECONFIG").expect("KUBECONFIG from the test bed");
    let text = std::fs::read_to_string(&admin).expect("admin kubeconfig");
    let mut config: serde_yaml::Value = serde_yaml::from_str(&text).expect("kubeconfig YAML");
    let users = config["users"]
        .as_sequence_mut()
        .expect("kubeconfig has users");
    for entry in users {
        entry["user"]["as"] = serde_yaml::Value::String(user.to_string());
    }
    std::fs::create_dir_all(dir).expect("kubeconfig dir");
    let path = dir.join("kubeconfig");
    std::fs::write(&path, serde_yaml::to_string(&config).expect("YAML")).expect("write kubeconfig");
    path
}
