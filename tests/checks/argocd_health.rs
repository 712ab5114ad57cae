//! The Argo CD health check (`deploy/argocd/health.lua`) run the way Argo CD runs it, by two
//! harnesses that must agree:
//!
//! - `argocd-lua` (testbed/argocd-lua, built into `$PAPI_CACHE/bin` by the test bed's install):
//!   Argo CD's own interpreter, gopher-lua, set up as argo-cd's util/lua does it: package, base
//!   and table libraries, its "safe" os (time, date) only through `require("os")`, the object
//!   converted by its decodeValue, a 1 s timeout, the result checked as Argo CD checks it. It
//!   reads TZ like the Argo CD controller, so it runs in several zones.
//! - mlua (Lua 5.1, in this process): the same libraries and the same safe os through
//!   `require("os")`, the object converted the same way (a null inside an array is dropped).
//!
//! Over the fixtures of `deploy/argocd/health_test.yaml` (Argo CD's format), over objects whose
//! Ready turned False just under and just over 300 s ago (in every zone), and over the real
//! operator's objects as it creates, updates, rejects and deletes them.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::deploy::repo_path;
use crate::support::*;
use chrono::{DateTime, SecondsFormat, Timelike, Utc};
use mlua::{Lua, LuaOptions, StdLib};
use serde_json::{Value, json};

const READY_TIMEOUT: Duration = Duration::from_secs(120);

/// The controller's time zone matters to Argo CD's os.time(table) and os.date: every verdict is
/// checked in these (UTC, east and west of it, and an offset that is not whole hours).
const ZONES: [&str; 4] = ["UTC", "Asia/Tokyo", "America/Los_Angeles", "Asia/Kathmandu"];

/// The reasons that turn Degraded when Ready has been False for 300 s.
const PERSISTENT_REASONS: [&str; 3] = ["AwsError", "KubernetesError", "ReferenceNotFound"];

const STATUSES: [&str; 6] = [
    "Healthy",
    "Progressing",
    "Degraded",
    "Suspended",
    "Missing",
    "Unknown",
];

#[derive(Debug, Clone, PartialEq, Eq)]
struct Health {
    status: String,
    message: String,
}

impl Health {
    fn new(status: &str, message: &str) -> Health {
        Health {
            status: status.into(),
            message: message.into(),
        }
    }

    fn from_json(value: &Value) -> Health {
        Health::new(
            value["status"].as_str().expect("status"),
            value["message"].as_str().expect("message"),
        )
    }

    fn to_json(&self) -> Value {
        json!({"status": self.status, "message": self.message})
    }
}

fn health_script_path() -> PathBuf {
    repo_path("deploy/argocd/health.lua")
}

fn health_script() -> String {
    std::fs::read_to_string(health_script_path()).expect("health.lua")
}

// ---- mlua ------------------------------------------------------------------------------------

/// Argo CD's Lua environment in Lua 5.1 (util/lua: OpenPackage, OpenBase, OpenTable; its safe os,
/// time and date only, is package.preload.os: the global os is nil).
fn argocd_lua() -> Lua {
    let lua = Lua::new_with(
        StdLib::TABLE | StdLib::PACKAGE | StdLib::OS,
        LuaOptions::default(),
    )
    .expect("Lua 5.1 state");
    lua.load(
        r#"
        local time, date = os.time, os.date
        package.preload.os = function() return { time = time, date = date } end
        for _, name in ipairs({ "os", "string", "math", "io", "debug", "coroutine" }) do
          _G[name] = nil
          package.loaded[name] = nil
        end
        "#,
    )
    .set_name("argocd environment")
    .exec()
    .expect("Argo CD's environment");
    lua
}

/// The object as Argo CD's decodeValue hands it to Lua: objects and arrays become tables, arrays
/// filled with LTable.Append, which skips nil (a null item is dropped, not a hole), numbers are
/// Lua numbers, a null field is absent.
fn to_lua(lua: &Lua, value: &Value) -> mlua::Value {
    match value {
        Value::Null => mlua::Value::Nil,
        Value::Bool(b) => mlua::Value::Boolean(*b),
        Value::Number(n) => mlua::Value::Number(n.as_f64().unwrap_or_default()),
        Value::String(s) => mlua::Value::String(lua.create_string(s).expect("string")),
        Value::Array(items) => {
            let table = lua.create_table().expect("table");
            for (i, item) in items.iter().filter(|item| !item.is_null()).enumerate() {
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

/// Run `script` on `object` under mlua, with Argo CD's result handling (ExecuteHealthLua and
/// gitops-engine): an error is Unknown with the error as message; nil or a table that is not an
/// object of strings gives no status (""); any other value is Unknown; a status Argo CD does not
/// know is Unknown.
fn mlua_health(script: &str, object: &Value) -> Health {
    let lua = argocd_lua();
    lua.globals().set("obj", to_lua(&lua, object)).expect("obj");
    let values = match lua
        .load(script)
        .set_name("health.lua")
        .eval::<mlua::MultiValue>()
    {
        Ok(values) => values,
        Err(err) => return Health::new("Unknown", &err.to_string()),
    };
    let table = match values.into_iter().last().unwrap_or(mlua::Value::Nil) {
        mlua::Value::Nil => return Health::new("", ""),
        mlua::Value::Table(table) => table,
        other => {
            let type_name = match other.type_name() {
                "integer" => "number",
                name => name,
            };
            return Health::new(
                "Unknown",
                &format!("expect table output from Lua script, not {type_name}"),
            );
        }
    };
    let field = |name: &str| match table.get::<mlua::Value>(name).expect("field") {
        mlua::Value::Nil => Some(String::new()),
        mlua::Value::String(s) => Some(s.to_str().expect("UTF-8").to_string()),
        _ => None,
    };
    let (Some(status), Some(message)) = (field("status"), field("message")) else {
        return Health::new("", "");
    };
    if table.is_empty() {
        return Health::new("", "");
    }
    if !STATUSES.contains(&status.as_str()) {
        return Health::new("Unknown", "Lua returned an invalid health status");
    }
    Health { status, message }
}

/// Set by `mlua_in_zone` for its child process: the directory with request.json.
const MLUA_CHILD: &str = "PAPI_ARGOCD_MLUA_CHILD";

/// `script` over `objects` under mlua with TZ=`zone`. In a fresh process (this test binary, running
/// only `mlua_child_process`): Lua's os.date and os.time(table) call the C library's localtime and
/// mktime, which read TZ from the process environment, and setting TZ here would race with the
/// other test threads reading the environment (getenv and setenv are not thread-safe in glibc;
/// that is why std::env::set_var is unsafe), so TZ is given to a new process from its start.
fn mlua_in_zone(script: &str, objects: &[Value], zone: &str) -> Vec<Health> {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(
        dir.path().join("request.json"),
        serde_json::to_vec(&json!({"script": script, "objects": objects})).expect("JSON"),
    )
    .expect("request");
    // The test's name in this binary: its module path without the crate's name.
    let child_test = format!(
        "{}::mlua_child_process",
        module_path!()
            .split_once("::")
            .map_or("", |(_, module)| module)
    );
    let output = Command::new(std::env::current_exe().expect("this test binary"))
        .args([
            "--exact",
            child_test.as_str(),
            "--test-threads=1",
            "--quiet",
        ])
        .env(MLUA_CHILD, dir.path())
        .env("TZ", zone)
        .output()
        .expect("run the mlua child");
    assert!(
        output.status.success(),
        "mlua child (TZ={zone}) failed: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let response: Value = serde_json::from_slice(
        &std::fs::read(dir.path().join("response.json")).expect("the child's response"),
    )
    .expect("JSON");
    let verdicts: Vec<Health> = response
        .as_array()
        .expect("array")
        .iter()
        .map(Health::from_json)
        .collect();
    assert_eq!(verdicts.len(), objects.len());
    verdicts
}

/// The child side of `mlua_in_zone`; without its variable (any normal run) it does nothing.
#[test]
fn mlua_child_process() {
    let Some(dir) = std::env::var_os(MLUA_CHILD) else {
        return;
    };
    let dir = PathBuf::from(dir);
    let request: Value =
        serde_json::from_slice(&std::fs::read(dir.join("request.json")).expect("request"))
            .expect("JSON");
    let script = request["script"].as_str().expect("script");
    let verdicts: Vec<Value> = request["objects"]
        .as_array()
        .expect("objects")
        .iter()
        .map(|object| mlua_health(script, object).to_json())
        .collect();
    std::fs::write(
        dir.join("response.json"),
        serde_json::to_vec(&verdicts).expect("JSON"),
    )
    .expect("response");
}

// ---- argocd-lua (gopher-lua, as Argo CD) -----------------------------------------------------

fn argocd_lua_binary() -> PathBuf {
    let cache = std::env::var("PAPI_CACHE").unwrap_or_else(|_| {
        format!(
            "{}/.cache/privateapi-operator",
            std::env::var("HOME").unwrap_or_default()
        )
    });
    let binary = PathBuf::from(cache).join("bin/argocd-lua");
    assert!(
        binary.is_file(),
        "{} is missing: `bash testbed/install.sh` builds it (make test does)",
        binary.display()
    );
    binary
}

enum Input<'a> {
    /// A YAML or JSON file, read by argocd-lua itself.
    File(&'a Path),
    /// An object, given as JSON on stdin.
    Object(&'a Value),
}

/// The verdict of Argo CD's interpreter on one object, with TZ=`zone`.
fn argocd_health(script: &Path, input: Input, zone: &str) -> Health {
    let mut command = Command::new(argocd_lua_binary());
    command
        .arg(script)
        .env("TZ", zone)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let stdin = match input {
        Input::File(path) => {
            command.arg(path).stdin(Stdio::null());
            None
        }
        Input::Object(object) => {
            command.arg("-").stdin(Stdio::piped());
            Some(serde_json::to_vec(object).expect("JSON"))
        }
    };
    let mut child = command.spawn().expect("run argocd-lua");
    if let Some(bytes) = stdin {
        let mut pipe = child.stdin.take().expect("stdin");
        pipe.write_all(&bytes).expect("write the object");
    }
    let output = child.wait_with_output().expect("argocd-lua");
    assert!(
        output.status.success(),
        "argocd-lua failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    Health::from_json(&serde_json::from_slice(&output.stdout).expect("one JSON line"))
}

/// `script` (text) as a file for argocd-lua.
fn script_file(dir: &Path, name: &str, script: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, script).expect("script");
    path
}

// ---- every harness, every zone ---------------------------------------------------------------

/// The verdicts on `objects` of every harness in every zone, labelled: argocd-lua in each zone,
/// mlua in this process and mlua in each zone (a child process each). `files` are the objects'
/// files when they have one (argocd-lua then reads the file itself).
fn verdicts_everywhere(
    script: &str,
    objects: &[Value],
    files: Option<&[PathBuf]>,
) -> Vec<(String, Vec<Health>)> {
    let dir = tempfile::tempdir().expect("temp dir");
    let script_path = script_file(dir.path(), "health.lua", script);
    let mut all = Vec::new();
    for zone in ZONES {
        let verdicts = objects
            .iter()
            .enumerate()
            .map(|(i, object)| {
                let input = match files {
                    Some(files) => Input::File(&files[i]),
                    None => Input::Object(object),
                };
                argocd_health(&script_path, input, zone)
            })
            .collect();
        all.push((format!("argocd-lua TZ={zone}"), verdicts));
    }
    all.push((
        "mlua".into(),
        objects.iter().map(|o| mlua_health(script, o)).collect(),
    ));
    for zone in ZONES {
        all.push((
            format!("mlua TZ={zone}"),
            mlua_in_zone(script, objects, zone),
        ));
    }
    all
}

fn assert_verdicts(script: &str, cases: &[(String, Value, Health)], files: Option<&[PathBuf]>) {
    let objects: Vec<Value> = cases.iter().map(|(_, o, _)| o.clone()).collect();
    let started = Instant::now();
    let everywhere = verdicts_everywhere(script, &objects, files);
    eprintln!(
        "{} objects x {} harness runs in {:?}",
        objects.len(),
        everywhere.len(),
        started.elapsed()
    );
    for (harness, verdicts) in everywhere {
        for ((name, _, expected), verdict) in cases.iter().zip(verdicts) {
            assert_eq!(&verdict, expected, "{name} under {harness}");
        }
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
    let mut cases = Vec::new();
    let mut files = Vec::new();
    for test in tests {
        let input = test["inputPath"].as_str().expect("inputPath");
        let object: Value = serde_yaml::from_str(
            &std::fs::read_to_string(dir.join(input)).expect("fixture exists"),
        )
        .expect("fixture parses");
        let expected = Health::new(
            test["healthStatus"]["status"].as_str().expect("status"),
            test["healthStatus"]["message"].as_str().unwrap_or_default(),
        );
        statuses.insert(expected.status.clone());
        cases.push((input.to_string(), object, expected));
        files.push(dir.join(input));
    }
    assert_verdicts(&health_script(), &cases, Some(&files));
    assert_eq!(
        statuses.into_iter().collect::<Vec<_>>(),
        ["Degraded", "Healthy", "Progressing"]
    );
}

/// A fixture whose Ready is False with `reason` since `since`.
fn not_ready_since(reason: &str, since: &str) -> Value {
    let mut object: Value = serde_yaml::from_str(
        &std::fs::read_to_string(repo_path(
            "deploy/argocd/testdata/progressing_aws_error_recent.yaml",
        ))
        .expect("fixture"),
    )
    .expect("YAML");
    let conditions = object["status"]["conditions"]
        .as_array_mut()
        .expect("conditions");
    for c in conditions.iter_mut().filter(|c| c["status"] == "False") {
        c["reason"] = json!(reason);
        c["lastTransitionTime"] = json!(since);
    }
    object
}

fn timestamp(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// The cases around the 300 s cutoff at `now`: False for `degraded_after` seconds is Degraded,
/// for `progressing_after` seconds still Progressing.
fn cutoff_cases(
    now: DateTime<Utc>,
    degraded_after: i64,
    progressing_after: i64,
) -> Vec<(String, Value, Health)> {
    let message = "EndpointReady: EC2 CreateVpcEndpoint failed: InternalError: An internal error has occurred";
    let mut cases = Vec::new();
    for reason in PERSISTENT_REASONS {
        for (seconds, status, suffix) in [
            (degraded_after, "Degraded", " (not Ready for over 300 s)"),
            (progressing_after, "Progressing", ""),
        ] {
            let since = timestamp(now - chrono::Duration::seconds(seconds));
            cases.push((
                format!("{reason} since {since} (now {})", timestamp(now)),
                not_ready_since(reason, &since),
                Health::new(status, &format!("{reason}: {message}{suffix}")),
            ));
        }
    }
    cases
}

/// Against the real clock: False for 330 s is Degraded, for 270 s Progressing, in every zone (a
/// cutoff off by the zone's offset, 5 h 45 min or more here, would flip one of them).
#[test]
fn persistent_after_300_s_in_every_zone() {
    assert_verdicts(&health_script(), &cutoff_cases(Utc::now(), 330, 270), None);
}

/// With os.time() fixed (require("os") returns a stub), to the second: exactly 300 s is
/// Degraded, 299 s Progressing, at dates where the cutoff crosses a day, month, leap day, year
/// and century.
#[test]
fn persistent_from_exactly_300_s_at_any_date() {
    for now in [
        "2000-03-01T00:04:59Z",
        "2024-02-29T00:00:00Z",
        "2025-01-01T00:02:00Z",
        "2100-03-01T00:00:30Z",
        "2026-07-15T12:34:56Z",
    ] {
        let now: DateTime<Utc> = now.parse().expect("time");
        let script = format!(
            "package.loaded.os = {{ time = function() return {} end }}\n{}",
            now.timestamp(),
            health_script()
        );
        assert_verdicts(&script, &cutoff_cases(now, 300, 299), None);
    }
}

/// The environment both harnesses give a script, as Argo CD's: no global os, string or math;
/// os from require("os") with time and date only; a null inside an array dropped; errors,
/// non-table results and unknown statuses handled as Argo CD handles them.
#[test]
fn both_harnesses_give_argo_cds_environment() {
    let object = json!({"items": ["a", null, "c"]});
    let healthy = |message: &str| Health::new("Healthy", message);
    let cases = [
        (
            r#"local os = require("os")
            return { status = "Healthy", message = type(_G.os) .. " " .. type(string) .. " "
              .. type(math) .. " " .. type(io) .. " " .. type(os.time) .. " " .. type(os.date)
              .. " " .. type(os.exit) .. " " .. type(os.getenv) .. " " .. type(table.insert) }"#,
            healthy("nil nil nil nil function function nil nil function"),
        ),
        (
            r#"return { status = "Healthy", message = #obj.items .. " " .. obj.items[2] }"#,
            healthy("2 c"),
        ),
        (
            r#"return { status = "Fine" }"#,
            Health::new("Unknown", "Lua returned an invalid health status"),
        ),
        (
            r#"return "Healthy""#,
            Health::new("Unknown", "expect table output from Lua script, not string"),
        ),
        ("return nil", Health::new("", "")),
        ("return {}", Health::new("", "")),
    ];
    let dir = tempfile::tempdir().expect("temp dir");
    for (i, (script, expected)) in cases.iter().enumerate() {
        let path = script_file(dir.path(), &format!("{i}.lua"), script);
        assert_eq!(&mlua_health(script, &object), expected, "mlua: {script}");
        for zone in ZONES {
            assert_eq!(
                &argocd_health(&path, Input::Object(&object), zone),
                expected,
                "argocd-lua TZ={zone}: {script}"
            );
        }
    }
    // No string methods either: a script error is Unknown with the error.
    let script = r#"return { status = "Healthy", message = ("abc"):sub(1, 1) }"#;
    let path = script_file(dir.path(), "sub.lua", script);
    for h in [
        mlua_health(script, &object),
        argocd_health(&path, Input::Object(&object), "UTC"),
    ] {
        assert_eq!(h.status, "Unknown", "{h:?}");
        assert!(h.message.contains("attempt to index"), "{h:?}");
    }
}

/// What argocd-lua reproduces of Argo CD that Lua 5.1 does differently: its os.date formats a
/// given time in local time even with "!", its os.time(table) is local time, and a script gets
/// 1 s.
#[test]
fn argocd_lua_has_argo_cds_quirks() {
    let dir = tempfile::tempdir().expect("temp dir");
    let object = json!({});
    let script = r#"local os = require("os")
        return { status = "Healthy", message = os.date("!%H:%M", 0) .. " "
          .. os.time({ year = 1970, month = 1, day = 1, hour = 9 }) .. " " .. os.date("!*t").hour
          .. " " .. os.date("%a %x %w %% %q", 0) }"#;
    let path = script_file(dir.path(), "quirks.lua", script);
    let hour_before = Utc::now().hour();
    let tokyo = argocd_health(&path, Input::Object(&object), "Asia/Tokyo");
    let hour_after = Utc::now().hour();
    // os.date("!*t") without a time is UTC: the hour of now (which may tick between readings).
    assert!(
        [hour_before, hour_after]
            .iter()
            .any(|hour| tokyo
                == Health::new("Healthy", &format!("09:00 0 {hour} mon 09/00/00 4 % %q"))),
        "{tokyo:?}"
    );
    let path = script_file(dir.path(), "loop.lua", "while true do end");
    let started = Instant::now();
    let h = argocd_health(&path, Input::Object(&object), "UTC");
    let took = started.elapsed();
    assert_eq!(h.status, "Unknown", "{h:?}");
    assert!(h.message.contains("context deadline exceeded"), "{h:?}");
    assert!(
        took >= Duration::from_secs(1) && took < Duration::from_secs(10),
        "{took:?}"
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

/// The verdict on a live object: argocd-lua (in a zone west of UTC) and mlua must agree.
fn health(object: &Value) -> Health {
    let go = argocd_health(
        &health_script_path(),
        Input::Object(object),
        "America/Los_Angeles",
    );
    let lua51 = mlua_health(&health_script(), object);
    assert_eq!(go, lua51, "argocd-lua and mlua disagree on {object}");
    go
}

fn live_health(namespace: &str, name: &str) -> (Value, Health) {
    let object = get_object(namespace, name).expect("object exists");
    let health = health(&object);
    (object, health)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_real_operators_objects_get_the_right_health() {
    let world = World::new("argocd")
        .cluster_prefix("argo")
        .vpc(43)
        .build()
        .await;
    let (namespace, cluster) = (&world.namespace, &world.cluster);

    // Before the operator saw it: Progressing.
    world.seed("web").apply();
    let (object, h) = live_health(namespace, "web");
    capture(&object, "progressing_not_reconciled.yaml");
    assert_eq!(h.status, "Progressing", "{h:?}");

    // While the operator creates it: Progressing at every look, then Healthy.
    let mut operator = Operator::start(namespace, cluster);
    let mut seen_not_ready = None;
    let healthy = poll::until("Healthy", READY_TIMEOUT, Duration::from_millis(100), || {
        let (object, h) = live_health(namespace, "web");
        let ready = condition(&object, "Ready").cloned();
        if h.status == "Healthy" {
            return Ok((object, h));
        }
        assert_eq!(h.status, "Progressing", "while creating: {h:?}");
        if ready.is_some_and(|r| r["status"] == "False") && seen_not_ready.is_none() {
            eprintln!("creating: {h:?}");
            seen_not_ready = Some(object);
        }
        Err(format!("{h:?}"))
    });
    if let Some(object) = &seen_not_ready {
        capture(object, "progressing_creating.yaml");
    }
    let (object, h) = healthy;
    capture(&object, "healthy.yaml");
    let url = object["status"]["url"].as_str().expect("url");
    assert!(h.message.ends_with(url), "{h:?}");
    // Ready=True for the current generation, as Argo CD shows it.
    wait_ready(namespace, "web", READY_TIMEOUT);

    // A spec change the operator has not reconciled yet (it is stopped): Progressing.
    operator.kill();
    patch_spec(
        namespace,
        "web",
        json!({"backend": {"builtin": {"message": "v2"}}}),
    );
    let (object, h) = live_health(namespace, "web");
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
    wait_ready(namespace, "web", READY_TIMEOUT);
    assert_eq!(live_health(namespace, "web").1.status, "Healthy");

    // A function in another region: InvalidSpec (the manifest must change), Degraded. (A
    // function that does not exist is ReferenceNotFound, Progressing for 300 s: the operator
    // retries until it appears.)
    world
        .seed("otherregion")
        // Private DNS is the first object's: one per VPC.
        .private_dns(false)
        .function_arn("arn:aws:lambda:eu-west-1:123456789012:function:papi-x")
        .apply();
    let object = wait_for(
        namespace,
        "otherregion",
        READY_TIMEOUT,
        "Ready=False InvalidSpec",
        |o| condition(o, "Ready").is_some_and(|r| r["reason"] == "InvalidSpec"),
    );
    capture(&object, "degraded_invalid_spec.yaml");
    let h = health(&object);
    assert_eq!(h.status, "Degraded", "{h:?}");
    assert!(
        h.message.starts_with("InvalidSpec: ")
            && h.message.contains("functionArn")
            && h.message
                .contains("is in eu-west-1, but this PrivateApi is in us-east-1"),
        "{h:?}"
    );

    // Deleting while the operator is stopped (the finalizer holds it): Progressing.
    operator.kill();
    kubectl(&[
        "delete",
        "privateapi",
        "web",
        "-n",
        namespace,
        "--wait=false",
    ]);
    let (object, h) = live_health(namespace, "web");
    assert!(object["metadata"]["deletionTimestamp"].is_string());
    capture(&object, "progressing_deleting.yaml");
    assert_eq!(h.status, "Progressing", "{h:?}");
    assert!(h.message.starts_with("Deleting"), "{h:?}");
    operator.restart();
    wait_gone(namespace, "web", READY_TIMEOUT);
    kubectl(&[
        "delete",
        "privateapi",
        "otherregion",
        "-n",
        namespace,
        "--wait=false",
    ]);
    wait_gone(namespace, "otherregion", READY_TIMEOUT);
    drop(operator);
}
