//! The chart's RBAC is enough and no more: its ServiceAccount, roles and bindings are applied to
//! the real API server, then the operator runs the end-to-end scenario (create, Ready, update,
//! Ready again, delete, finalizer removed) with a kubeconfig that impersonates that ServiceAccount,
//! and everything outside the roles is refused.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::support::deploy::*;
use crate::support::*;
use serde_json::{Value, json};

const READY_TIMEOUT: Duration = Duration::from_secs(120);

/// What the chart installs for the operator's identity, applied for real.
struct Installed {
    operator_namespace: String,
    user: String,
    lease_name: String,
    kubeconfig: PathBuf,
}

fn install_identity(release: &str, extra_sets: &[&str]) -> Installed {
    let operator_namespace = unique("papi-sys");
    let mut sets = vec!["clusterName=rbac-test"];
    sets.extend_from_slice(extra_sets);
    let objects = parse_objects(&render_helm(release, &operator_namespace, &sets));
    let identity: Vec<&Value> = objects
        .iter()
        .filter(|o| {
            [
                "Namespace",
                "ServiceAccount",
                "ClusterRole",
                "ClusterRoleBinding",
                "Role",
                "RoleBinding",
            ]
            .contains(&kind(o))
        })
        .collect();
    assert!(identity.len() >= 5, "{identity:?}");
    apply(&to_yaml_stream(&identity));
    let service_account = name(the(&objects, "ServiceAccount")).to_string();
    let lease_name = the(&objects, "ConfigMap")["data"]["PAPI_LEASE_NAME"]
        .as_str()
        .expect("lease name")
        .to_string();
    let user = format!("system:serviceaccount:{operator_namespace}:{service_account}");
    let kubeconfig = impersonating_kubeconfig(&user, &std::env::temp_dir().join(unique("rbac")));
    Installed {
        operator_namespace,
        user,
        lease_name,
        kubeconfig,
    }
}

/// `kubectl auth can-i` as `user` (the admin asks on its behalf).
fn can_i(user: &str, args: &[&str]) -> bool {
    let mut all = vec!["auth", "can-i", "--as", user];
    all.extend_from_slice(args);
    let out = kubectl_raw(&all, None);
    let answer = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert!(
        answer == "yes" || answer == "no",
        "kubectl {all:?}: {answer} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    answer == "yes"
}

fn assert_allowed_exactly(installed: &Installed, workload: &str) {
    let user = installed.user.as_str();
    let lease = format!("leases.coordination.k8s.io/{}", installed.lease_name);
    let ns = installed.operator_namespace.as_str();
    let allowed: &[&[&str]] = &[
        &["list", "privateapis.privateapi.io", "-n", workload],
        &["watch", "privateapis.privateapi.io", "-n", workload],
        &["get", "privateapis.privateapi.io", "-n", workload],
        &["patch", "privateapis.privateapi.io", "-n", workload],
        &[
            "patch",
            "privateapis.privateapi.io",
            "--subresource=status",
            "-n",
            workload,
        ],
        &[
            "update",
            "privateapis.privateapi.io",
            "--subresource=finalizers",
            "-n",
            workload,
        ],
        &["create", "events.events.k8s.io", "-n", workload],
        &["patch", "events.events.k8s.io", "-n", workload],
        &["create", "leases.coordination.k8s.io", "-n", ns],
        &["get", &lease, "-n", ns],
        &["update", &lease, "-n", ns],
        &["patch", &lease, "-n", ns],
    ];
    for args in allowed {
        assert!(can_i(user, args), "{user} can {args:?}");
    }
    let refused: &[&[&str]] = &[
        &["list", "secrets", "-A"],
        &["list", "secrets", "-n", workload],
        &["get", "secrets", "-n", ns],
        &["get", "configmaps", "-n", workload],
        &["list", "pods", "-A"],
        &["create", "privateapis.privateapi.io", "-n", workload],
        &["update", "privateapis.privateapi.io", "-n", workload],
        &["delete", "privateapis.privateapi.io", "-n", workload],
        &[
            "update",
            "privateapis.privateapi.io",
            "--subresource=status",
            "-n",
            workload,
        ],
        &["create", "events", "-n", workload],
        &["delete", "events.events.k8s.io", "-n", workload],
        &["create", "leases.coordination.k8s.io", "-n", workload],
        &["get", "leases.coordination.k8s.io/someone-else", "-n", ns],
        &["delete", &lease, "-n", ns],
        &["list", "leases.coordination.k8s.io", "-n", ns],
        &["create", "customresourcedefinitions.apiextensions.k8s.io"],
        &["create", "clusterroles.rbac.authorization.k8s.io"],
        &["create", "serviceaccounts", "--subresource=token", "-n", ns],
    ];
    for args in refused {
        assert!(!can_i(user, args), "{user} must not {args:?}");
    }
    // A real request with the operator's kubeconfig outside its roles is refused by the server.
    let kubeconfig = installed.kubeconfig.to_str().expect("utf-8 path");
    let out = kubectl_raw(
        &["--kubeconfig", kubeconfig, "get", "secrets", "-n", workload],
        None,
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && stderr.contains("forbidden") && stderr.contains(user),
        "listing secrets as the operator is forbidden: {stderr}"
    );
}

/// Create, Ready, update, Ready at the new generation, Events published, delete, finalizer gone,
/// nothing left in AWS; the operator never met a refusal.
async fn end_to_end_as(installed: &Installed, workload: &str, second_octet: u8) {
    let aws = aws().await;
    let vpc = make_vpc(&aws.ec2, second_octet).await;
    let cluster = unique("rbac");
    let kubeconfig = installed.kubeconfig.to_str().expect("utf-8 path");
    let operator = Operator::start_with_env(
        workload,
        &cluster,
        &[],
        &[
            ("KUBECONFIG", kubeconfig),
            // As the Deployment sets them (leader election uses the chart's Lease).
            (
                "PAPI_LEASE_NAMESPACE",
                installed.operator_namespace.as_str(),
            ),
            ("PAPI_LEASE_NAME", installed.lease_name.as_str()),
            ("POD_NAME", "privateapi-operator-rbac-test"),
        ],
    );
    let name = "orders";
    PrivateApiManifest::seed(workload, name, &vpc).apply();
    let started = Instant::now();
    let ready = wait_ready(workload, name, READY_TIMEOUT);
    eprintln!("Ready as {} in {:?}", installed.user, started.elapsed());
    assert!(
        ready["metadata"]["finalizers"]
            .as_array()
            .is_some_and(|f| f.iter().any(|f| f == "privateapi.io/cleanup")),
        "the finalizer was added"
    );
    assert!(ready["status"]["url"].is_string(), "{}", ready["status"]);

    patch_spec(
        workload,
        name,
        json!({"backend": {"builtin": {"message": "updated through the chart's RBAC"}}}),
    );
    let updated = wait_ready(workload, name, READY_TIMEOUT);
    assert!(updated["metadata"]["generation"].as_i64() > ready["metadata"]["generation"].as_i64());

    let events: Value = serde_json::from_str(&kubectl(&[
        "get",
        "events.events.k8s.io",
        "-n",
        workload,
        "-o",
        "json",
    ]))
    .expect("events JSON");
    let ours = events["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter(|e| {
            e["reportingController"] == "privateapi-operator" && e["regarding"]["name"] == name
        })
        .count();
    assert!(ours > 0, "the operator published Events: {events}");

    delete_and_wait_gone(workload, name, READY_TIMEOUT);
    let left = owned_resources(&aws, &cluster).await;
    assert!(left.is_empty(), "nothing left in AWS: {left:?}");

    let log = operator.log();
    for refusal in ["forbidden", "Forbidden", "cannot publish event"] {
        assert!(
            !log.contains(refusal),
            "the operator met a refusal ({refusal}):\n{log}"
        );
    }
    drop(operator);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_wide_rbac_is_enough_and_no_more() {
    crate::support::require_testbed();
    install_crd();
    let installed = install_identity(&unique("rbac"), &[]);
    let workload = unique("rbac-wl");
    create_namespace(&workload);
    assert_allowed_exactly(&installed, &workload);
    end_to_end_as(&installed, &workload, 41).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn namespace_scoped_rbac_is_enough_and_no_more() {
    crate::support::require_testbed();
    install_crd();
    let workload = unique("rbac-ns");
    create_namespace(&workload);
    let watch = format!("watchNamespace={workload}");
    let installed = install_identity(&unique("rbns"), &[&watch]);
    assert_allowed_exactly(&installed, &workload);
    // Nothing in any other namespace.
    let elsewhere = unique("rbac-other");
    create_namespace(&elsewhere);
    for args in [
        &[
            "list",
            "privateapis.privateapi.io",
            "-n",
            elsewhere.as_str(),
        ][..],
        &["list", "privateapis.privateapi.io", "-A"][..],
        &["create", "events.events.k8s.io", "-n", elsewhere.as_str()][..],
    ] {
        assert!(!can_i(&installed.user, args), "must not {args:?}");
    }
    // The operator really runs as the ServiceAccount (kube-rs honours the kubeconfig's `as`):
    // pointed at a namespace outside its Role, it cannot even list.
    let kubeconfig = installed.kubeconfig.to_str().expect("utf-8 path");
    let outsider = Operator::start_with_env(
        &elsewhere,
        &unique("rbac"),
        &[],
        &[("KUBECONFIG", kubeconfig)],
    );
    poll::until(
        "the operator outside its Role to be refused",
        Duration::from_secs(30),
        Duration::from_millis(300),
        || {
            let log = outsider.log();
            if log.contains("forbidden") {
                Ok(())
            } else {
                Err(log)
            }
        },
    );
    assert!(
        outsider
            .admin_get("/readyz")
            .lines()
            .next()
            .is_some_and(|status| status.contains(" 503 ")),
        "not ready without its list"
    );
    drop(outsider);

    end_to_end_as(&installed, &workload, 42).await;
}
