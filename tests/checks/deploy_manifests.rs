//! The install manifests (`deploy/` kustomize base, `deploy/helm/privateapi-operator` chart): both
//! are accepted by the real API server (`kubectl apply --dry-run=server`), render the same objects
//! with the same RBAC rules and pod spec, carry the CRD exactly as generated, and the chart refuses
//! to render without a cluster name.

use std::collections::BTreeSet;

use crate::support::deploy::*;
use crate::support::*;
use serde_json::Value;

const NAMESPACE: &str = "privateapi-system";
const RELEASE: &str = "privateapi-operator";

fn helm_default() -> Vec<Value> {
    parse_objects(&render_helm(RELEASE, NAMESPACE, &["clusterName=dev"]))
}

/// (kind, namespace, name), the ConfigMap's hash suffix removed.
fn identities(objects: &[Value]) -> BTreeSet<(String, String, String)> {
    objects
        .iter()
        .map(|o| {
            let name = if kind(o) == "ConfigMap" {
                without_hash_suffix(name(o))
            } else {
                name(o)
            };
            (
                kind(o).to_string(),
                o["metadata"]["namespace"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
                name.to_string(),
            )
        })
        .collect()
}

/// Every number as a float, so that 29 and 29.0 compare equal.
fn numbers_as_floats(value: &Value) -> Value {
    match value {
        Value::Number(n) => n.as_f64().map(Value::from).unwrap_or(Value::Null),
        Value::Array(items) => Value::Array(items.iter().map(numbers_as_floats).collect()),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), numbers_as_floats(v)))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// The pod spec with the ConfigMap reference's hash suffix removed.
fn pod_spec(objects: &[Value]) -> Value {
    let mut spec = the(objects, "Deployment")["spec"]["template"]["spec"].clone();
    for container in spec["containers"].as_array_mut().expect("containers") {
        if let Some(sources) = container["envFrom"].as_array_mut() {
            for source in sources {
                if let Some(name) = source["configMapRef"]["name"].as_str() {
                    source["configMapRef"]["name"] = without_hash_suffix(name).into();
                }
            }
        }
    }
    spec
}

#[test]
fn crd_copies_are_the_generated_crd() {
    let generated = privateapi_operator::crd_yaml().expect("the CRD serializes");
    for copy in [
        "deploy/crds/privateapi.yaml",
        "deploy/helm/privateapi-operator/crds/privateapi.yaml",
    ] {
        let committed = std::fs::read_to_string(repo_path(copy)).expect("CRD copy exists");
        assert!(
            committed == generated,
            "{copy} is stale: run `make crds` and commit the result"
        );
    }
}

#[test]
fn kustomize_and_helm_render_the_same_objects() {
    require_testbed();
    let kustomize = parse_objects(&render_kustomize());
    let helm = helm_default();
    let expected: BTreeSet<(String, String, String)> = [
        ("CustomResourceDefinition", "", "privateapis.privateapi.io"),
        ("Namespace", "", NAMESPACE),
        ("ServiceAccount", NAMESPACE, "privateapi-operator"),
        ("ConfigMap", NAMESPACE, "privateapi-operator-config"),
        ("ClusterRole", "", "privateapi-operator"),
        ("ClusterRoleBinding", "", "privateapi-operator"),
        ("Role", NAMESPACE, "privateapi-operator-leader-election"),
        (
            "RoleBinding",
            NAMESPACE,
            "privateapi-operator-leader-election",
        ),
        ("Deployment", NAMESPACE, "privateapi-operator"),
        ("Service", NAMESPACE, "privateapi-operator-metrics"),
        ("PodDisruptionBudget", NAMESPACE, "privateapi-operator"),
    ]
    .iter()
    .map(|(k, ns, n)| (k.to_string(), ns.to_string(), n.to_string()))
    .collect();
    assert_eq!(identities(&kustomize), expected, "kustomize objects");
    assert_eq!(identities(&helm), expected, "helm objects");

    // Same CRD, RBAC rules, bindings, pod spec, Service and PDB specs (kustomize writes the CRD's
    // `maximum: 29.0` as 29: numbers compare by value).
    for kind_ in ["CustomResourceDefinition", "Service", "PodDisruptionBudget"] {
        assert_eq!(
            numbers_as_floats(&the(&kustomize, kind_)["spec"]),
            numbers_as_floats(&the(&helm, kind_)["spec"]),
            "{kind_} spec"
        );
    }
    for kind_ in ["ClusterRole", "Role"] {
        assert_eq!(
            the(&kustomize, kind_)["rules"],
            the(&helm, kind_)["rules"],
            "{kind_} rules"
        );
    }
    for kind_ in ["ClusterRoleBinding", "RoleBinding"] {
        for field in ["roleRef", "subjects"] {
            assert_eq!(
                the(&kustomize, kind_)[field],
                the(&helm, kind_)[field],
                "{kind_} {field}"
            );
        }
    }
    assert_eq!(pod_spec(&kustomize), pod_spec(&helm), "pod spec");
    assert_eq!(
        the(&kustomize, "Deployment")["spec"]["selector"],
        the(&helm, "Deployment")["spec"]["selector"]
    );
    // The settings: the same keys; the values differ only where the user must choose.
    let mut kustomize_config = the(&kustomize, "ConfigMap")["data"].clone();
    let mut helm_config = the(&helm, "ConfigMap")["data"].clone();
    assert_eq!(kustomize_config["PAPI_CLUSTER_NAME"], "");
    assert_eq!(helm_config["PAPI_CLUSTER_NAME"], "dev");
    kustomize_config["PAPI_CLUSTER_NAME"] = Value::Null;
    helm_config["PAPI_CLUSTER_NAME"] = Value::Null;
    assert_eq!(kustomize_config, helm_config, "operator settings");

    // The CRD is the generated one.
    let generated: Value =
        serde_yaml::from_str(&privateapi_operator::crd_yaml().expect("CRD")).expect("CRD YAML");
    assert_eq!(
        the(&helm, "CustomResourceDefinition")["spec"],
        generated["spec"]
    );
}

#[test]
fn the_deployment_is_hardened_and_wired_for_leader_election() {
    require_testbed();
    let objects = helm_default();
    let deployment = the(&objects, "Deployment");
    assert_eq!(deployment["spec"]["replicas"], 2);
    let pod = &deployment["spec"]["template"]["spec"];
    assert_eq!(pod["serviceAccountName"], "privateapi-operator");
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_eq!(pod["securityContext"]["runAsUser"], 65532);
    assert_eq!(
        pod["securityContext"]["seccompProfile"]["type"],
        "RuntimeDefault"
    );
    let container = &pod["containers"][0];
    let security = &container["securityContext"];
    assert_eq!(security["readOnlyRootFilesystem"], true);
    assert_eq!(security["allowPrivilegeEscalation"], false);
    assert_eq!(security["capabilities"]["drop"], serde_json::json!(["ALL"]));
    for (probe, path) in [("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")] {
        assert_eq!(container[probe]["httpGet"]["path"], path);
        assert_eq!(container[probe]["httpGet"]["port"], "admin");
    }
    assert_eq!(container["ports"][0]["containerPort"], 8080);
    for kind_ in ["requests", "limits"] {
        for resource in ["cpu", "memory"] {
            assert!(
                container["resources"][kind_][resource].is_string(),
                "resources.{kind_}.{resource}"
            );
        }
    }
    let args: Vec<&str> = container["args"]
        .as_array()
        .expect("args")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(args.contains(&"--admin-addr=0.0.0.0:8080"), "{args:?}");
    assert!(args.contains(&"--handler-zip-arm64=/opt/privateapi/handler-arm64.zip"));
    assert!(args.contains(&"--handler-zip-x86-64=/opt/privateapi/handler-x86_64.zip"));
    // The grace period leaves the operator its shutdown timeout and some.
    let shutdown: u64 = args
        .iter()
        .find_map(|a| a.strip_prefix("--shutdown-timeout-seconds="))
        .and_then(|v| v.parse().ok())
        .expect("--shutdown-timeout-seconds");
    let grace = pod["terminationGracePeriodSeconds"]
        .as_u64()
        .expect("grace");
    assert!(grace > shutdown, "grace {grace} > shutdown {shutdown}");
    // Lease namespace and identity from the downward API.
    let env = container["env"].as_array().expect("env");
    let field = |name: &str| {
        env.iter()
            .find(|e| e["name"] == name)
            .map(|e| e["valueFrom"]["fieldRef"]["fieldPath"].clone())
    };
    assert_eq!(
        field("PAPI_LEASE_NAMESPACE"),
        Some("metadata.namespace".into())
    );
    assert_eq!(field("POD_NAME"), Some("metadata.name".into()));
    // The Role names the Lease the operator is told to use.
    let config = &the(&objects, "ConfigMap")["data"];
    let role = the(&objects, "Role");
    assert_eq!(
        role["rules"][1]["resourceNames"][0], config["PAPI_LEASE_NAME"],
        "the Role covers the operator's Lease"
    );
    // The metrics Service reaches the admin port of the operator's pods.
    let service = the(&objects, "Service");
    assert_eq!(service["spec"]["ports"][0]["targetPort"], "admin");
    for (key, value) in service["spec"]["selector"].as_object().expect("selector") {
        assert_eq!(
            &deployment["spec"]["template"]["metadata"]["labels"][key], value,
            "Service selector {key}"
        );
    }
}

#[test]
fn both_renderings_pass_server_side_dry_run() {
    require_testbed();
    // Namespaced objects need their namespace to exist even in a dry run.
    let namespace = serde_json::json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}});
    apply(&serde_json::to_string(&namespace).expect("JSON"));
    let renderings = [
        ("kustomize", render_kustomize()),
        (
            "helm",
            render_helm(RELEASE, NAMESPACE, &["clusterName=dev"]),
        ),
    ];
    for (what, yaml) in renderings {
        let out = kubectl_stdin(&["apply", "--dry-run=server", "-f", "-"], Some(&yaml));
        eprintln!("{what}:\n{out}");
        assert_eq!(
            out.lines()
                .filter(|l| l.contains("(server dry run)"))
                .count(),
            parse_objects(&yaml).len(),
            "{what}: every object accepted: {out}"
        );
    }
}

#[test]
fn chart_options_namespace_scoping_sharding_aws_and_service_monitor() {
    require_testbed();
    let watched = unique("watched");
    create_namespace(&watched);
    let namespace_value = format!("watchNamespace={watched}");
    let yaml = render_helm(
        "shard-a",
        "papi-shard-a",
        &[
            "clusterName=prod-eu",
            &namespace_value,
            "labelSelector=shard=a",
            "resyncSeconds=120",
            "concurrency=4",
            "aws.region=eu-west-1",
            "aws.endpointUrl=https://aws-proxy.internal:8443",
            "defaultExecutionRoleArn=arn:aws:iam::123456789012:role/papi-backend",
            "log.format=text",
            "log.level=debug",
            "serviceAccount.annotations.eks\\.amazonaws\\.com/role-arn=arn:aws:iam::123456789012:role/papi",
            "serviceMonitor.enabled=true",
        ],
    );
    let objects = parse_objects(&yaml);
    let config = &the(&objects, "ConfigMap")["data"];
    for (key, value) in [
        ("PAPI_CLUSTER_NAME", "prod-eu"),
        ("PAPI_NAMESPACE", watched.as_str()),
        ("PAPI_LABEL_SELECTOR", "shard=a"),
        ("PAPI_RESYNC_SECONDS", "120"),
        ("PAPI_CONCURRENCY", "4"),
        ("PAPI_REGION", "eu-west-1"),
        ("AWS_ENDPOINT_URL", "https://aws-proxy.internal:8443"),
        (
            "PAPI_DEFAULT_EXECUTION_ROLE_ARN",
            "arn:aws:iam::123456789012:role/papi-backend",
        ),
        ("PAPI_LOG_FORMAT", "text"),
        ("RUST_LOG", "debug"),
        ("PAPI_LEASE_NAME", "shard-a-privateapi-operator"),
    ] {
        assert_eq!(config[key], value, "{key}");
    }
    assert_eq!(
        the(&objects, "ServiceAccount")["metadata"]["annotations"]["eks.amazonaws.com/role-arn"],
        "arn:aws:iam::123456789012:role/papi"
    );
    // One namespace watched: a Role there instead of a ClusterRole.
    assert!(
        !objects
            .iter()
            .any(|o| kind(o) == "ClusterRole" || kind(o) == "ClusterRoleBinding"),
        "no cluster-wide RBAC when one namespace is watched"
    );
    let roles: Vec<&Value> = objects.iter().filter(|o| kind(o) == "Role").collect();
    assert_eq!(
        roles.len(),
        2,
        "the watched namespace's Role and the Lease Role"
    );
    let watch_role = roles
        .iter()
        .find(|r| r["metadata"]["namespace"] == watched.as_str())
        .expect("Role in the watched namespace");
    assert_eq!(
        watch_role["rules"],
        the(&helm_default(), "ClusterRole")["rules"],
        "same rules as the ClusterRole"
    );
    // The ServiceMonitor selects the metrics Service.
    let monitor = the(&objects, "ServiceMonitor");
    let service = the(&objects, "Service");
    for (key, value) in monitor["spec"]["selector"]["matchLabels"]
        .as_object()
        .expect("matchLabels")
    {
        assert_eq!(&service["metadata"]["labels"][key], value, "label {key}");
    }
    assert_eq!(
        monitor["spec"]["endpoints"][0]["port"],
        service["spec"]["ports"][0]["name"]
    );

    // The API server accepts it (without the ServiceMonitor, whose CRD the test bed lacks).
    apply(r#"{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"papi-shard-a"}}"#);
    let accepted: Vec<&Value> = objects
        .iter()
        .filter(|o| kind(o) != "ServiceMonitor")
        .collect();
    let out = kubectl_stdin(
        &["apply", "--dry-run=server", "-f", "-"],
        Some(&to_yaml_stream(&accepted)),
    );
    assert_eq!(
        out.lines()
            .filter(|l| l.contains("(server dry run)"))
            .count(),
        accepted.len(),
        "{out}"
    );
}

#[test]
fn chart_refuses_to_render_without_a_cluster_name() {
    require_testbed();
    for sets in [&[][..], &["clusterName="][..], &["clusterName=  "][..]] {
        let err = try_render_helm(RELEASE, NAMESPACE, sets).expect_err("rendering fails");
        assert!(
            err.contains("clusterName is required"),
            "clear message for {sets:?}: {err}"
        );
    }
}
