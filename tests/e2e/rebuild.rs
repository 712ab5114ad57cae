//! Identity that outlives a cluster, end to end: objects made in one control plane are re-applied
//! into a brand-new one (new etcd, so new UIDs) and become Ready on the same AWS resources, with
//! no new deployment; meanwhile an operator with another cluster name manages objects of the same
//! namespace/name in a third control plane without touching either set.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::support::*;
use privateapi_operator::crd::Architecture;
use serde_json::Value;

const READY_TIMEOUT: Duration = Duration::from_secs(180);

/// A control plane of the test's own (etcd + kube-apiserver by the test bed's scripts).
struct ControlPlane {
    dir: PathBuf,
    kubeconfig: PathBuf,
    running: bool,
}

fn testbed_script(path: &str) -> PathBuf {
    crate::support::repo_path("testbed").join(path)
}

impl ControlPlane {
    fn start() -> Self {
        let dir = std::env::temp_dir().join(unique("papi-cp"));
        let status = Command::new("bash")
            .arg(testbed_script("k8s/start.sh"))
            .arg(&dir)
            .status()
            .expect("start.sh runs");
        assert!(status.success(), "testbed/k8s/start.sh {}", dir.display());
        let plane = Self {
            kubeconfig: dir.join("kubeconfig"),
            dir,
            running: true,
        };
        plane.kubectl(&[
            "apply",
            "--server-side",
            "-f",
            &crate::support::repo_path("crds/privateapi.yaml").to_string_lossy(),
        ]);
        plane.kubectl(&[
            "wait",
            "--for=condition=established",
            "crd/privateapis.privateapi.io",
            "--timeout=60s",
        ]);
        plane
    }

    fn kubectl_stdin(&self, args: &[&str], stdin: Option<&str>) -> String {
        let mut command = Command::new("kubectl");
        command
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command.spawn().expect("kubectl runs");
        if let Some(input) = stdin {
            use std::io::Write;
            child
                .stdin
                .take()
                .expect("stdin")
                .write_all(input.as_bytes())
                .expect("write stdin");
        }
        drop(child.stdin.take());
        let out = child.wait_with_output().expect("kubectl finishes");
        assert!(
            out.status.success(),
            "kubectl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn kubectl(&self, args: &[&str]) -> String {
        self.kubectl_stdin(args, None)
    }

    fn object(&self, namespace: &str, name: &str) -> Value {
        serde_json::from_str(&self.kubectl(&[
            "get",
            "privateapi",
            name,
            "-n",
            namespace,
            "-o",
            "json",
        ]))
        .expect("object JSON")
    }

    fn wait_ready(&self, namespace: &str, name: &str, operator: &ProcessOperator) -> Value {
        poll::until(
            &format!("{namespace}/{name} Ready"),
            READY_TIMEOUT,
            Duration::from_millis(500),
            || {
                let object = self.object(namespace, name);
                if condition(&object, "Ready").is_some_and(|c| c["status"] == "True")
                    && object["status"]["observedGeneration"] == object["metadata"]["generation"]
                {
                    Ok(object)
                } else {
                    Err(format!(
                        "{}\noperator log:\n{}",
                        object["status"],
                        operator.log()
                    ))
                }
            },
        )
    }

    fn stop(&mut self) {
        if self.running {
            let _ = Command::new("bash")
                .arg(testbed_script("k8s/stop.sh"))
                .arg(&self.dir)
                .status();
            self.running = false;
        }
    }
}

impl Drop for ControlPlane {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The operator as a process against a given kubeconfig.
struct ProcessOperator {
    child: Child,
    log: PathBuf,
}

impl ProcessOperator {
    fn start(kubeconfig: &Path, namespace: &str, cluster: &str) -> Self {
        let log = std::env::temp_dir().join(format!("{}.log", unique("papi-rebuild-operator")));
        let file = std::fs::File::create(&log).expect("log file");
        let mut command = Command::new(env!("CARGO_BIN_EXE_privateapi-operator"));
        command
            .env("KUBECONFIG", kubeconfig)
            .env("RUST_LOG", "info,privateapi_operator=debug")
            .args(["--cluster-name", cluster, "--namespace", namespace])
            .args(["--admin-addr", "127.0.0.1:0"])
            .stdout(Stdio::from(file.try_clone().expect("log handle")))
            .stderr(Stdio::from(file));
        if let Ok(zip) = std::env::var("PAPI_HANDLER_ZIP_X86_64") {
            command.arg("--handler-zip-x86-64").arg(zip);
        }
        if let Ok(role) = std::env::var("PAPI_LAMBDA_ROLE_ARN") {
            command.arg("--default-execution-role-arn").arg(role);
        }
        Self {
            child: command.spawn().expect("the operator starts"),
            log,
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for ProcessOperator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn manifest(namespace: &str, name: &str, vpc: &TestVpc) -> String {
    PrivateApiManifest::new(namespace, name)
        .region(REGION)
        .endpoint_create(vpc)
        .builtin_default()
        .architecture(Architecture::X86_64)
        .tag("team", "rebuild")
        .yaml()
}

/// The IDs a Ready object's status names.
fn ids(object: &Value) -> Vec<String> {
    [
        "vpcEndpointId",
        "securityGroupId",
        "restApiId",
        "functionArn",
        "deploymentId",
    ]
    .iter()
    .map(|field| {
        object["status"][field]
            .as_str()
            .unwrap_or_else(|| panic!("status.{field}: {}", object["status"]))
            .to_string()
    })
    .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rebuilt_cluster_takes_over_the_same_resources_and_other_clusters_are_untouched() {
    let _bed = crate::support::hold_testbed();
    let aws = aws().await;
    let namespace = "payments";
    let names = ["alpha", "beta"];
    let cluster = unique("prod");
    let other_cluster = unique("staging");
    let vpcs = [make_vpc(&aws.ec2, 71).await, make_vpc(&aws.ec2, 72).await];
    let other_vpcs = [make_vpc(&aws.ec2, 73).await, make_vpc(&aws.ec2, 74).await];

    // The first life of the cluster.
    let mut first = ControlPlane::start();
    first.kubectl(&["create", "namespace", namespace]);
    let operator = ProcessOperator::start(&first.kubeconfig, namespace, &cluster);
    for (name, vpc) in names.iter().zip(&vpcs) {
        first.kubectl_stdin(&["apply", "-f", "-"], Some(&manifest(namespace, name, vpc)));
    }
    let before: Vec<(String, Vec<String>)> = names
        .iter()
        .map(|name| {
            let object = first.wait_ready(namespace, name, &operator);
            (
                object["metadata"]["uid"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
                ids(&object),
            )
        })
        .collect();
    let owned_before = owned_resources(&aws, &cluster).await;
    assert_eq!(
        owned_before.len(),
        8,
        "4 resources per object: {owned_before:?}"
    );

    // Another cluster, same namespace and names, its own resources.
    let other = ControlPlane::start();
    other.kubectl(&["create", "namespace", namespace]);
    let other_operator = ProcessOperator::start(&other.kubeconfig, namespace, &other_cluster);
    for (name, vpc) in names.iter().zip(&other_vpcs) {
        other.kubectl_stdin(&["apply", "-f", "-"], Some(&manifest(namespace, name, vpc)));
    }
    let other_ids: Vec<Vec<String>> = names
        .iter()
        .map(|name| ids(&other.wait_ready(namespace, name, &other_operator)))
        .collect();
    let other_owned = owned_resources(&aws, &other_cluster).await;
    assert_eq!(other_owned.len(), 8, "{other_owned:?}");
    for (_, first_ids) in &before {
        for id in first_ids {
            assert!(
                !other_ids.iter().flatten().any(|other| other == id),
                "{id} is shared between clusters"
            );
        }
    }

    // The cluster is lost: operator and control plane gone, etcd data with them.
    drop(operator);
    first.stop();
    drop(first);

    // A new control plane, the same manifests (GitOps re-applies them), the same cluster name.
    let second = ControlPlane::start();
    second.kubectl(&["create", "namespace", namespace]);
    for (name, vpc) in names.iter().zip(&vpcs) {
        second.kubectl_stdin(&["apply", "-f", "-"], Some(&manifest(namespace, name, vpc)));
    }
    let operator = ProcessOperator::start(&second.kubeconfig, namespace, &cluster);
    for (name, (old_uid, old_ids)) in names.iter().zip(&before) {
        let object = second.wait_ready(namespace, name, &operator);
        assert_ne!(object["metadata"]["uid"].as_str(), Some(old_uid.as_str()));
        assert_eq!(
            &ids(&object),
            old_ids,
            "{name}: the same endpoint, group, API, function and deployment (no redeploy)\n{}",
            operator.log()
        );
        let adopted = object["status"]["adopted"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let kinds: Vec<&str> = adopted.iter().filter_map(|a| a["kind"].as_str()).collect();
        assert_eq!(
            kinds,
            vec!["Function", "RestApi", "SecurityGroup", "VpcEndpoint"],
            "{}",
            object["status"]
        );
        assert!(adopted.iter().all(|a| a["source"] == "previousObject"
            && a["previousUid"].as_str() == Some(old_uid.as_str())));
    }
    assert_eq!(
        owned_resources(&aws, &cluster).await,
        owned_before,
        "no duplicate, no orphan"
    );
    assert_eq!(
        owned_resources(&aws, &other_cluster).await,
        other_owned,
        "the other cluster's resources are untouched"
    );
    for name in names {
        assert_eq!(
            ids(&other.object(namespace, name)),
            other_ids[names.iter().position(|n| *n == name).unwrap_or(0)]
        );
    }

    // Both clusters clean up what they own.
    for plane in [&second, &other] {
        plane.kubectl(&[
            "delete",
            "privateapi",
            "--all",
            "-n",
            namespace,
            "--wait=true",
            "--timeout=180s",
        ]);
    }
    poll::until_async(
        "no resources left after delete",
        Duration::from_secs(120),
        Duration::from_secs(1),
        async || {
            let left = owned_resources(&aws, &cluster).await.len()
                + owned_resources(&aws, &other_cluster).await.len();
            if left == 0 {
                Ok(())
            } else {
                Err(format!("{left} resources left"))
            }
        },
    )
    .await;
}
