//! The Dockerfile (no container engine here, so correct by construction): hadolint finds nothing,
//! and it is the image the Deployment expects: distroless final stage, UID 65532, the operator as
//! entrypoint, the handler packages at the paths the manifests pass.

use std::process::Command;

use crate::support::deploy::{parse_objects, repo_path};

fn dockerfile() -> String {
    std::fs::read_to_string(repo_path("Dockerfile")).expect("Dockerfile")
}

#[test]
fn hadolint_finds_nothing() {
    let install = Command::new("bash")
        .arg(repo_path("scripts/install-hadolint.sh"))
        .output()
        .expect("bash runs");
    assert!(
        install.status.success(),
        "installing hadolint failed: {}",
        String::from_utf8_lossy(&install.stderr)
    );
    let hadolint = String::from_utf8_lossy(&install.stdout).trim().to_string();
    let lint = Command::new(&hadolint)
        .arg(repo_path("Dockerfile"))
        .output()
        .expect("hadolint runs");
    assert!(
        lint.status.success(),
        "hadolint: {}{}",
        String::from_utf8_lossy(&lint.stdout),
        String::from_utf8_lossy(&lint.stderr)
    );
}

/// The instructions of the last stage (from its FROM on).
fn final_stage(text: &str) -> Vec<String> {
    let lines: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_string)
        .collect();
    let start = lines
        .iter()
        .rposition(|l| l.starts_with("FROM "))
        .expect("a FROM");
    lines[start..].to_vec()
}

#[test]
fn the_image_is_what_the_deployment_runs() {
    let text = dockerfile();
    assert!(
        text.contains("ARG RUST_IMAGE=rust:1.95-bookworm"),
        "builder pinned by tag"
    );
    assert!(text.contains("ARG RUNTIME_IMAGE=gcr.io/distroless/static-debian12:nonroot"));
    let stage = final_stage(&text);
    assert_eq!(stage[0], "FROM ${RUNTIME_IMAGE}");
    assert!(stage.contains(&"USER 65532:65532".to_string()), "{stage:?}");
    assert!(stage.contains(&"ENTRYPOINT [\"/usr/local/bin/privateapi-operator\"]".to_string()));
    // Only the binary and the two zips go into the image.
    let copies: Vec<&String> = stage.iter().filter(|l| l.starts_with("COPY")).collect();
    assert_eq!(copies.len(), 3, "{copies:?}");
    assert!(
        !stage.iter().any(|l| l.starts_with("RUN ")),
        "nothing runs in the final stage"
    );
    // Both handler architectures are built and packaged with the handler's own packager.
    for target in ["x86_64-unknown-linux-musl", "aarch64-unknown-linux-musl"] {
        assert!(
            text.contains(&format!(
                "handler/package.sh release --locked --target {target}"
            )),
            "{target}"
        );
    }
    // The zips land where the Deployment's flags point.
    let objects = parse_objects(
        &std::fs::read_to_string(repo_path("deploy/deployment.yaml")).expect("deployment.yaml"),
    );
    let args = objects[0]["spec"]["template"]["spec"]["containers"][0]["args"]
        .as_array()
        .expect("args")
        .clone();
    for (flag, arch) in [
        ("--handler-zip-x86-64=", "x86_64"),
        ("--handler-zip-arm64=", "arm64"),
    ] {
        let path = args
            .iter()
            .filter_map(|a| a.as_str())
            .find_map(|a| a.strip_prefix(flag))
            .unwrap_or_else(|| panic!("{flag} in the Deployment"));
        let copy = format!("COPY --from=build /out/handler/privateapi-handler-{arch}.zip {path}");
        assert!(stage.contains(&copy), "{copy} in {stage:?}");
    }
    let ignore = std::fs::read_to_string(repo_path(".dockerignore")).expect(".dockerignore");
    for needed in ["!Cargo.toml", "!Cargo.lock", "!src/", "!handler/"] {
        assert!(ignore.lines().any(|l| l == needed), "{needed}");
    }
}
