//! Identity that outlives a cluster, end to end: objects made in one control plane are re-applied
//! into a brand-new one (new etcd, so new UIDs) and become Ready on the same AWS resources, with
//! no new deployment; meanwhile an operator with another cluster name manages objects of the same
//! namespace/name in a third control plane without touching either set.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::support::control_plane::ControlPlane;
use crate::support::*;
use privateapi_operator::crd::Architecture;
use serde_json::Value;

const READY_TIMEOUT: Duration = Duration::from_secs(180);

/// Wait until `namespace/name` in `plane` is Ready for its generation; the operator's log on
/// timeout.
fn wait_ready(
    plane: &ControlPlane,
    namespace: &str,
    name: &str,
    operator: &ProcessOperator,
) -> Value {
    poll::until(
        &format!("{namespace}/{name} Ready"),
        READY_TIMEOUT,
        Duration::from_millis(500),
        || {
            let object = plane.object(namespace, name);
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
            // As `support::Operator`: the fake is not AWS, pace it as one fifty times as large
            // (at AWS's own quotas the four deletions alone wait a minute for DeleteRestApi).
            .env("PAPI_AWS_QUOTA_SCALE", "50")
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
    crate::support::require_testbed();
    let aws = aws().await;
    let namespace = "payments";
    let names = ["alpha", "beta"];
    let cluster = unique("prod");
    let other_cluster = unique("staging");
    let (a, b, c, d) = tokio::join!(
        make_vpc(&aws.ec2, 71),
        make_vpc(&aws.ec2, 72),
        make_vpc(&aws.ec2, 73),
        make_vpc(&aws.ec2, 74)
    );
    let (vpcs, other_vpcs) = ([a, b], [c, d]);

    let started = std::time::Instant::now();
    let phase = |what: &str| {
        eprintln!(
            "rebuild: {what} at {:.1} s",
            started.elapsed().as_secs_f64()
        )
    };
    // The three control planes of the story (the first life of the cluster, another cluster, the
    // rebuilt one), started together: each start takes seconds of waiting for etcd and /readyz.
    let (mut first, other, second) = std::thread::scope(|threads| {
        let planes = [(); 3].map(|()| threads.spawn(ControlPlane::start));
        let [first, other, second] = planes.map(|plane| plane.join().expect("a control plane"));
        (first, other, second)
    });
    for plane in [&first, &other, &second] {
        plane.kubectl(&["create", "namespace", namespace]);
    }

    phase("control planes up");
    // The first life of the cluster and another cluster with the same namespace and names (its
    // own resources), converging at the same time.
    let operator = ProcessOperator::start(&first.kubeconfig, namespace, &cluster);
    let other_operator = ProcessOperator::start(&other.kubeconfig, namespace, &other_cluster);
    for (name, (vpc, other_vpc)) in names.iter().zip(vpcs.iter().zip(&other_vpcs)) {
        first.kubectl_stdin(&["apply", "-f", "-"], Some(&manifest(namespace, name, vpc)));
        other.kubectl_stdin(
            &["apply", "-f", "-"],
            Some(&manifest(namespace, name, other_vpc)),
        );
    }
    let before: Vec<(String, Vec<String>)> = names
        .iter()
        .map(|name| {
            let object = wait_ready(&first, namespace, name, &operator);
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
    let other_ids: Vec<Vec<String>> = names
        .iter()
        .map(|name| ids(&wait_ready(&other, namespace, name, &other_operator)))
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

    phase("both clusters Ready");
    // The cluster is lost: operator and control plane gone, etcd data with them.
    drop(operator);
    first.stop();
    drop(first);

    // A new control plane, the same manifests (GitOps re-applies them), the same cluster name.
    for (name, vpc) in names.iter().zip(&vpcs) {
        second.kubectl_stdin(&["apply", "-f", "-"], Some(&manifest(namespace, name, vpc)));
    }
    let operator = ProcessOperator::start(&second.kubeconfig, namespace, &cluster);
    for (name, (old_uid, old_ids)) in names.iter().zip(&before) {
        let object = wait_ready(&second, namespace, name, &operator);
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

    phase("the rebuilt cluster Ready on the same resources");
    // Both clusters clean up what they own, at the same time.
    for plane in [&second, &other] {
        plane.kubectl(&[
            "delete",
            "privateapi",
            "--all",
            "-n",
            namespace,
            "--wait=false",
        ]);
    }
    poll::until(
        "both clusters' objects gone (finalizers done)",
        READY_TIMEOUT,
        Duration::from_secs(1),
        || {
            let left: Vec<String> = [&second, &other]
                .iter()
                .map(|plane| plane.kubectl(&["get", "privateapi", "-n", namespace, "-o", "name"]))
                .filter(|out| !out.trim().is_empty())
                .collect();
            if left.is_empty() {
                Ok(())
            } else {
                Err(left.join(" "))
            }
        },
    );
    phase("both clusters' objects gone");
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
    phase("both clusters deleted, nothing left in AWS");
}
