//! The Argo CD health check (`deploy/argocd/health.lua`) run the way Argo CD runs it: a Lua 5.1
//! interpreter with only the libraries Argo CD opens (base, table, package and an `os` with only
//! `time` and `date`; no string library), the object as the global `obj`, the script's returned
//! table as the health. Over the fixtures of `deploy/argocd/health_test.yaml` (Argo CD's format),
//! and over the real operator's objects as it creates, updates, rejects and deletes them.

mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use mlua::{Lua, LuaOptions, StdLib, Table};
use serde_json::{Value, json};
use support::deploy::repo_path;
use support::*;

const READY_TIMEOUT: Duration = Duration::from_secs(120);

#[derive(Debug, Clone, PartialEq, Eq)]
struct Health {
    status: String,
    message: String,
}

/// Argo CD's Lua environment (util/lua: OpenPackage, OpenBase, OpenTable, and its "safe" os).
fn argocd_lua() -> Lua {
    let lua = Lua::new_with(
        StdLib::TABLE | StdLib::PACKAGE | StdLib::OS,
        LuaOptions::default(),
    )
    .expect("Lua 5.1 state");
    let globals = lua.globals();
    let os: Table = globals.get("os").expect("os library");
    let safe_os = lua.create_table().expect("table");
    for function in ["time", "date"] {
        safe_os
            .set(
                function,
                os.get::<mlua::Function>(function).expect("os function"),
            )
            .expect("set");
    }
    globals.set("os", safe_os).expect("safe os");
    for absent in ["string", "io", "debug"] {
        globals.set(absent, mlua::Nil).expect("unset");
    }
    drop(globals);
    lua
}

/// The object as Argo CD hands it to Lua: objects and arrays become tables (arrays 1-based),
/// JSON null is nil.
fn to_lua(lua: &Lua, value: &Value) -> mlua::Value {
    match value {
        Value::Null => mlua::Value::Nil,
        Value::Bool(b) => mlua::Value::Boolean(*b),
        Value::Number(n) => mlua::Value::Number(n.as_f64().unwrap_or_default()),
        Value::String(s) => mlua::Value::String(lua.create_string(s).expect("string")),
        Value::Array(items) => {
            let table = lua.create_table().expect("table");
            for (i, item) in items.iter().enumerate() {
                table.set(i + 1, to_lua(lua, item)).expect("set");
            }
            mlua::Value::Table(table)
        }
        Value::Object(map) => {
            let table = lua.create_table().expect("table");
            for (key, item) in map {
                table.set(key.as_str(), to_lua(lua, item)).expect("set");
            }
            mlua::Value::Table(table)
        }
    }
}

fn health_script() -> String {
    std::fs::read_to_string(repo_path("deploy/argocd/health.lua")).expect("health.lua")
}

/// Run the health script on `object`, checking the result as Argo CD does.
fn health(object: &Value) -> Health {
    let lua = argocd_lua();
    lua.globals().set("obj", to_lua(&lua, object)).expect("obj");
    let result: Table = lua
        .load(health_script())
        .set_name("health.lua")
        .eval()
        .unwrap_or_else(|err| panic!("health.lua failed: {err}"));
    let status: String = result.get("status").expect("status is a string");
    let message: Option<String> = result.get("message").expect("message");
    assert!(
        [
            "Healthy",
            "Progressing",
            "Degraded",
            "Suspended",
            "Missing",
            "Unknown"
        ]
        .contains(&status.as_str()),
        "not an Argo CD health status: {status}"
    );
    Health {
        status,
        message: message.unwrap_or_default(),
    }
}

#[test]
fn every_fixture_gets_its_expected_health() {
    let dir = repo_path("deploy/argocd");
    let tests: Value = serde_yaml::from_str(
        &std::fs::read_to_string(dir.join("health_test.yaml")).expect("health_test.yaml"),
    )
    .expect("health_test.yaml parses");
    let tests = tests["tests"].as_array().expect("tests");
    assert!(tests.len() >= 8, "fixtures cover every state");
    let mut statuses = std::collections::BTreeSet::new();
    for test in tests {
        let input = test["inputPath"].as_str().expect("inputPath");
        let object: Value = serde_yaml::from_str(
            &std::fs::read_to_string(dir.join(input)).expect("fixture exists"),
        )
        .expect("fixture parses");
        let expected = Health {
            status: test["healthStatus"]["status"]
                .as_str()
                .expect("status")
                .into(),
            message: test["healthStatus"]["message"]
                .as_str()
                .unwrap_or_default()
                .into(),
        };
        assert_eq!(health(&object), expected, "{input}");
        statuses.insert(expected.status);
    }
    assert_eq!(
        statuses.into_iter().collect::<Vec<_>>(),
        ["Degraded", "Healthy", "Progressing"]
    );
}

#[test]
fn the_argocd_cm_patch_carries_the_same_script() {
    let patch: Value = serde_yaml::from_str(
        &std::fs::read_to_string(repo_path("deploy/argocd/argocd-cm-patch.yaml"))
            .expect("argocd-cm-patch.yaml"),
    )
    .expect("YAML");
    assert_eq!(
        patch["data"]["resource.customizations.health.privateapi.io_PrivateApi"]
            .as_str()
            .expect("the health key"),
        health_script()
    );
    let application: Value = serde_yaml::from_str(
        &std::fs::read_to_string(repo_path("deploy/argocd/application.yaml"))
            .expect("application.yaml"),
    )
    .expect("YAML");
    let path = application["spec"]["source"]["path"]
        .as_str()
        .expect("path");
    assert!(
        repo_path(path).join("Chart.yaml").is_file(),
        "the Application points at the chart"
    );
}

/// With PAPI_ARGOCD_CAPTURE=DIR, the live objects are written there as fixtures (that is how
/// the operator-made fixtures in deploy/argocd/testdata were produced).
fn capture(object: &Value, file: &str) {
    let Some(dir) = std::env::var_os("PAPI_ARGOCD_CAPTURE") else {
        return;
    };
    let mut object = object.clone();
    if let Some(metadata) = object["metadata"].as_object_mut() {
        metadata.remove("managedFields");
        metadata.remove("annotations");
    }
    let path = Path::new(&dir).join(file);
    std::fs::write(&path, serde_yaml::to_string(&object).expect("YAML")).expect("capture");
}

fn live_health(namespace: &str, name: &str) -> (Value, Health) {
    let object = get_object(namespace, name).expect("object exists");
    let health = health(&object);
    (object, health)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_real_operators_objects_get_the_right_health() {
    require_testbed();
    install_crd();
    let namespace = unique("argocd");
    create_namespace(&namespace);
    let cluster = unique("argo");
    let aws = aws().await;
    let vpc = make_vpc(&aws.ec2, 43).await;

    // Before the operator saw it: Progressing.
    apply(&seed_manifest(&namespace, "web", &vpc, ""));
    let (object, h) = live_health(&namespace, "web");
    capture(&object, "progressing_not_reconciled.yaml");
    assert_eq!(h.status, "Progressing", "{h:?}");

    // While the operator creates it: Progressing at every look, then Healthy.
    let mut operator = Operator::start(&namespace, &cluster);
    let deadline = Instant::now() + READY_TIMEOUT;
    let mut seen_not_ready = None;
    let healthy = loop {
        let (object, h) = live_health(&namespace, "web");
        let ready = condition(&object, "Ready").cloned();
        if h.status == "Healthy" {
            break (object, h);
        }
        assert_eq!(h.status, "Progressing", "while creating: {h:?}");
        if ready.is_some_and(|r| r["status"] == "False") && seen_not_ready.is_none() {
            eprintln!("creating: {h:?}");
            seen_not_ready = Some(object);
        }
        assert!(Instant::now() < deadline, "never Healthy: {h:?}");
        std::thread::sleep(Duration::from_millis(100));
    };
    if let Some(object) = &seen_not_ready {
        capture(object, "progressing_creating.yaml");
    }
    let (object, h) = healthy;
    capture(&object, "healthy.yaml");
    let url = object["status"]["url"].as_str().expect("url");
    assert!(h.message.ends_with(url), "{h:?}");
    // Ready=True for the current generation, as Argo CD shows it.
    wait_ready(&namespace, "web", READY_TIMEOUT);

    // A spec change the operator has not reconciled yet (it is stopped): Progressing.
    operator.kill();
    patch_spec(
        &namespace,
        "web",
        json!({"backend": {"builtin": {"message": "v2"}}}),
    );
    let (object, h) = live_health(&namespace, "web");
    capture(&object, "progressing_generation_behind.yaml");
    let generation = object["metadata"]["generation"]
        .as_i64()
        .expect("generation");
    assert!(
        object["status"]["observedGeneration"].as_i64() < Some(generation),
        "the operator has not seen it"
    );
    assert_eq!(
        h,
        Health {
            status: "Progressing".into(),
            message: format!("Waiting for the operator to reconcile generation {generation}"),
        }
    );
    operator.restart();
    wait_ready(&namespace, "web", READY_TIMEOUT);
    assert_eq!(live_health(&namespace, "web").1.status, "Healthy");

    // A function that does not exist: InvalidSpec, Degraded.
    let mut spec_object: Value =
        serde_yaml::from_str(&seed_manifest(&namespace, "nofunction", &vpc, "")).expect("YAML");
    // Private DNS is the first object's: one per VPC.
    spec_object["spec"]["endpoint"]["create"]["privateDns"] = json!(false);
    spec_object["spec"]["backend"] = json!({
        "functionArn": "arn:aws:lambda:us-east-1:123456789012:function:papi-does-not-exist"
    });
    apply(&serde_json::to_string(&spec_object).expect("JSON"));
    let object = wait_for(
        &namespace,
        "nofunction",
        READY_TIMEOUT,
        "Ready=False InvalidSpec",
        |o| condition(o, "Ready").is_some_and(|r| r["reason"] == "InvalidSpec"),
    );
    capture(&object, "degraded_invalid_spec.yaml");
    let h = health(&object);
    assert_eq!(h.status, "Degraded", "{h:?}");
    assert!(
        h.message.starts_with("InvalidSpec: ") && h.message.contains("functionArn"),
        "{h:?}"
    );

    // Deleting while the operator is stopped (the finalizer holds it): Progressing.
    operator.kill();
    kubectl(&[
        "delete",
        "privateapi",
        "web",
        "-n",
        &namespace,
        "--wait=false",
    ]);
    let (object, h) = live_health(&namespace, "web");
    assert!(object["metadata"]["deletionTimestamp"].is_string());
    capture(&object, "progressing_deleting.yaml");
    assert_eq!(h.status, "Progressing", "{h:?}");
    assert!(h.message.starts_with("Deleting"), "{h:?}");
    operator.restart();
    wait_gone(&namespace, "web", READY_TIMEOUT);
    kubectl(&[
        "delete",
        "privateapi",
        "nofunction",
        "-n",
        &namespace,
        "--wait=false",
    ]);
    wait_gone(&namespace, "nofunction", READY_TIMEOUT);
    drop(operator);
}
