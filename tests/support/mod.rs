//! Shared by the end-to-end tests: they act as users do (kubectl against the real API server), run
//! the operator as a separate process, and check AWS (the moto server) through the real SDK.
//!
//! The fixtures:
//! - [`World`] (`world`): a test's held bed, namespace, cluster name, AWS clients, VPC, operator;
//! - [`PrivateApiManifest`] (`manifest`): manifests built from the CRD's own types;
//! - `poll`: waiting until something holds, with the last look in the panic;
//! - `inspect`: the AWS reads the tests check (an endpoint, a group's rules, a stage…);
//! - `make`: AWS resources made as a user or another tool makes them.
#![allow(dead_code)]

pub mod aws_operations;
pub mod deploy;
pub mod iam;
pub mod in_process;
pub mod inspect;
pub mod make;
pub mod manifest;
pub mod netns;
pub mod poll;
pub mod runtime;
pub mod world;

#[allow(unused_imports)]
pub use manifest::PrivateApiManifest;
#[allow(unused_imports)]
pub use world::World;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::sync::Arc;
use std::time::Duration;

use privateapi_operator::aws::{AwsClients, RegionClients};
use privateapi_operator::metrics::Metrics;
use serde_json::Value;

pub mod control_plane;
pub mod faults;
pub mod invariant;

pub const REGION: &str = "us-east-1";

pub fn require_testbed() {
    if std::env::var("PAPI_TESTBED").is_err() {
        panic!("run through `make test` (testbed/with-testbed.sh): this test needs the test bed");
    }
}

/// A name unique in this test run: `prefix`, the process, the clock and a counter (tests of one
/// binary run in parallel and may ask within the same instant).
pub fn unique(prefix: &str) -> String {
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!(
        "{prefix}-{}-{:05x}{}",
        std::process::id(),
        nanos % 0xfffff,
        N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    )
}

/// Run kubectl with `args` (and `stdin`), returning its output whatever the exit code.
pub fn kubectl_raw(args: &[&str], stdin: Option<&str>) -> Output {
    let mut command = Command::new("kubectl");
    if let Some(kubeconfig) = control_plane::kubeconfig_override() {
        command.arg("--kubeconfig").arg(kubeconfig);
    }
    command
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command
        .spawn()
        .expect("kubectl runs (PATH from the test bed)");
    if let Some(input) = stdin {
        child
            .stdin
            .take()
            .expect("stdin piped")
            .write_all(input.as_bytes())
            .expect("write kubectl stdin");
    }
    child.wait_with_output().expect("kubectl finishes")
}

/// Run kubectl and return stdout; panic with stderr on failure.
pub fn kubectl(args: &[&str]) -> String {
    kubectl_stdin(args, None)
}

pub fn kubectl_stdin(args: &[&str], stdin: Option<&str>) -> String {
    let out = kubectl_raw(args, stdin);
    assert!(
        out.status.success(),
        "kubectl {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn apply(manifest: &str) {
    kubectl_stdin(&["apply", "-f", "-"], Some(manifest));
}

/// `kubectl patch --type=merge` of a PrivateApi's spec, as a user edits it.
pub fn patch_spec(namespace: &str, name: &str, patch: Value) {
    kubectl(&[
        "patch",
        "privateapi",
        name,
        "-n",
        namespace,
        "--type=merge",
        "-p",
        &serde_json::json!({ "spec": patch }).to_string(),
    ]);
}

/// The package's directory, read when the test runs: cargo sets `CARGO_MANIFEST_DIR` for the
/// test process. The compile-time value is only a fallback, because a test binary built from a
/// checkout at another path (a shared `CARGO_TARGET_DIR`, where cargo counts it as fresh) still
/// holds that other path.
pub fn repo_path(relative: &str) -> PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")))
        .join(relative)
}

/// The Python of the test bed's moto install (it has boto3), else the system's.
pub fn testbed_python() -> PathBuf {
    let cache = std::env::var("PAPI_CACHE").unwrap_or_else(|_| {
        format!(
            "{}/.cache/privateapi-operator",
            std::env::var("HOME").unwrap_or_default()
        )
    });
    let venv_python = PathBuf::from(cache).join("moto-venv/bin/python");
    if venv_python.exists() {
        venv_python
    } else {
        PathBuf::from("python3")
    }
}

/// Install the CRD (idempotent; other tests may do it at the same time) and wait until the API
/// serves it.
pub fn install_crd() {
    let crd = repo_path("crds/privateapi.yaml");
    let crd = crd.to_string_lossy();
    kubectl(&["apply", "--server-side", "--force-conflicts", "-f", &crd]);
    kubectl(&[
        "wait",
        "--for=condition=established",
        "crd/privateapis.privateapi.io",
        "--timeout=60s",
    ]);
    poll::until(
        "the API server to serve privateapis",
        Duration::from_secs(60),
        Duration::from_millis(500),
        || {
            kubectl_raw(&["get", "privateapis", "-A"], None)
                .status
                .success()
        },
    );
}

pub fn create_namespace(name: &str) {
    kubectl(&["create", "namespace", name]);
}

/// The object as JSON.
pub fn get_object(namespace: &str, name: &str) -> Option<Value> {
    let out = kubectl_raw(
        &["get", "privateapi", name, "-n", namespace, "-o", "json"],
        None,
    );
    if !out.status.success() {
        return None;
    }
    serde_json::from_slice(&out.stdout).ok()
}

pub fn condition<'a>(object: &'a Value, type_: &str) -> Option<&'a Value> {
    object["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == type_)
}

/// The message of condition `type_` ("" when there is none).
pub fn condition_message(object: &Value, type_: &str) -> String {
    condition(object, type_)
        .and_then(|c| c["message"].as_str())
        .unwrap_or_default()
        .to_string()
}

/// Wait until `check(object)` holds, polling; panic after `timeout` with the last object's status.
/// How often a test waiting for an object reads it again. Each read is a `kubectl` process
/// (about 50 ms of CPU): at 300 ms, four waiting tests took a third of this 2-core machine.
pub const OBJECT_POLL: Duration = Duration::from_secs(1);

pub fn wait_for(
    namespace: &str,
    name: &str,
    timeout: Duration,
    what: &str,
    check: impl Fn(&Value) -> bool,
) -> Value {
    poll::until(
        &format!("{namespace}/{name}: {what}"),
        timeout,
        OBJECT_POLL,
        || match get_object(namespace, name) {
            Some(object) if check(&object) => Ok(object),
            Some(object) => {
                Err(serde_json::to_string_pretty(&object["status"]).unwrap_or_default())
            }
            None => Err("not found".to_string()),
        },
    )
}

/// `status.<field>` of an object, which must be a string.
pub fn status_str(object: &Value, field: &str) -> String {
    object["status"][field]
        .as_str()
        .unwrap_or_else(|| panic!("status.{field} missing: {}", object["status"]))
        .to_string()
}

/// Ready=True for the current generation.
pub fn wait_ready(namespace: &str, name: &str, timeout: Duration) -> Value {
    wait_for(
        namespace,
        name,
        timeout,
        "Ready=True for the current generation",
        is_ready,
    )
}

/// Ready=True, and both it and the status observed the current generation.
pub fn is_ready(o: &Value) -> bool {
    let generation = o["metadata"]["generation"].as_i64();
    o["status"]["observedGeneration"].as_i64() == generation
        && condition(o, "Ready").is_some_and(|c| {
            c["status"] == "True" && c["observedGeneration"].as_i64() == generation
        })
}

pub fn wait_gone(namespace: &str, name: &str, timeout: Duration) {
    poll::until(
        &format!("{namespace}/{name} to be gone"),
        timeout,
        OBJECT_POLL,
        || get_object(namespace, name).is_none(),
    );
}

/// `kubectl delete` a PrivateApi without waiting for it to go.
pub fn delete_object(namespace: &str, name: &str) {
    kubectl(&[
        "delete",
        "privateapi",
        name,
        "-n",
        namespace,
        "--wait=false",
    ]);
}

/// Delete a PrivateApi and wait until it is gone.
pub fn delete_and_wait_gone(namespace: &str, name: &str, timeout: Duration) {
    delete_object(namespace, name);
    wait_gone(namespace, name, timeout);
}

/// The PrivateApis of a namespace, as JSON.
pub fn list_objects(namespace: &str) -> Vec<Value> {
    let out = kubectl(&["get", "privateapis", "-n", namespace, "-o", "json"]);
    let list: Value = serde_json::from_str(&out).expect("kubectl JSON");
    list["items"].as_array().cloned().unwrap_or_default()
}

/// The operator, running as a separate process with the test bed's kubeconfig.
pub struct Operator {
    child: Option<Child>,
    pub namespace: String,
    pub cluster: String,
    pub admin_addr: String,
    dir: PathBuf,
    extra: Vec<String>,
    /// Environment variables set for the operator process (e.g. `AWS_ENDPOINT_URL` of a proxy).
    env: Vec<(String, String)>,
    /// Watch every namespace, only objects with these labels (`--label-selector`), instead of
    /// `namespace` alone (which then holds only the Lease).
    selector: Option<String>,
    /// Run inside this network of the test bed (its probes leave from there).
    network: Option<netns::From>,
}

impl Operator {
    /// Start an operator that watches only `namespace`, with its own cluster name.
    pub fn start(namespace: &str, cluster: &str) -> Self {
        Self::start_with(namespace, cluster, &[])
    }

    pub fn start_with(namespace: &str, cluster: &str, extra: &[&str]) -> Self {
        Self::start_with_env(namespace, cluster, extra, &[])
    }

    pub fn start_with_env(
        namespace: &str,
        cluster: &str,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> Self {
        let mut operator = Self::new(namespace, cluster, extra, env);
        operator.spawn();
        operator
    }

    fn new(namespace: &str, cluster: &str, extra: &[&str], env: &[(&str, &str)]) -> Self {
        let dir = std::env::temp_dir().join(unique("papi-operator"));
        std::fs::create_dir_all(&dir).expect("temp dir");
        Self {
            child: None,
            namespace: namespace.to_string(),
            cluster: cluster.to_string(),
            admin_addr: String::new(),
            dir,
            extra: extra.iter().map(|s| s.to_string()).collect(),
            selector: None,
            network: None,
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                // A test that talks to a control plane of its own starts its operators there.
                .chain(control_plane::kubeconfig_override().map(|kubeconfig| {
                    (
                        "KUBECONFIG".to_string(),
                        kubeconfig.to_string_lossy().into_owned(),
                    )
                }))
                .collect(),
        }
    }

    /// Start an operator that watches every namespace, but only objects labelled `selector`
    /// (`--label-selector`); its Lease lives in `lease_namespace`.
    pub fn start_selecting(
        lease_namespace: &str,
        selector: &str,
        cluster: &str,
        extra: &[&str],
    ) -> Self {
        let mut operator = Self::new(lease_namespace, cluster, extra, &[]);
        operator.selector = Some(selector.to_string());
        operator.spawn();
        operator
    }

    /// Start an operator that watches only `namespace`, running inside `network` of the test
    /// bed, as a pod on a node of that VPC: it still reaches the API server and the AWS fake (see
    /// `testbed/netns/run.sh --forward`), its admin server listens on the namespace's address,
    /// and its probes trust the bed's CA.
    pub fn start_in(namespace: &str, cluster: &str, network: netns::From, extra: &[&str]) -> Self {
        let mut operator = Self::new(namespace, cluster, extra, &[]);
        operator.network = Some(network);
        operator.spawn();
        operator
    }

    /// The operator's command: the binary, or the binary inside its network.
    fn command(&self) -> (Command, String) {
        let binary = env!("CARGO_BIN_EXE_privateapi-operator");
        let Some(network) = &self.network else {
            return (Command::new(binary), "127.0.0.1:0".to_string());
        };
        let kube = runtime::apiserver_address();
        let aws = std::env::var("AWS_ENDPOINT_URL").expect("AWS_ENDPOINT_URL");
        let port_of = |address: &str| {
            address
                .trim_end_matches('/')
                .rsplit_once(':')
                .map(|(_, port)| port.to_string())
                .expect("host:port")
        };
        let address = netns::address_of(network);
        let mut command = Command::new(repo_path("testbed/netns/run.sh"));
        command
            .args(network.args())
            .args(["--forward", &port_of(&kube), "--forward", &port_of(&aws)])
            .arg("--")
            .arg(binary)
            .arg("--probe-ca-file")
            .arg(netns::ca());
        (command, format!("{address}:0"))
    }

    fn spawn(&mut self) {
        let addr_file = self.dir.join("admin-addr");
        let _ = std::fs::remove_file(&addr_file);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("operator.log"))
            .expect("operator log");
        let (mut command, admin_addr) = self.command();
        command
            .arg("--cluster-name")
            .arg(&self.cluster)
            .args(match &self.selector {
                Some(selector) => ["--label-selector", selector.as_str()],
                None => ["--namespace", self.namespace.as_str()],
            })
            .arg("--admin-addr")
            .arg(admin_addr)
            .arg("--admin-addr-file")
            .arg(&addr_file)
            // The default resync by environment, so `start_with(.., &["--resync-seconds", "5"])`
            // overrides it (the flag given twice is a clap error).
            .env("PAPI_RESYNC_SECONDS", "600")
            // The test bed is not AWS: pace at 50× the published quotas (a test that enforces
            // quotas in the fault proxy sets the same scale on both sides).
            .env("PAPI_AWS_QUOTA_SCALE", "50")
            .env("RUST_LOG", "info,privateapi_operator=debug")
            // Leader election stays on (the default) with a Lease in the test's namespace, so the
            // tests' operators, one per namespace, never contend. The identity is the Operator's
            // own and survives restart(), as a pod's name survives a container restart: a
            // restarted operator takes its lease back at once.
            .env("PAPI_LEASE_NAMESPACE", &self.namespace)
            .env("POD_NAME", self.dir.file_name().unwrap_or_default())
            .stdout(Stdio::from(log.try_clone().expect("log handle")))
            .stderr(Stdio::from(log));
        if let Ok(zip) = std::env::var("PAPI_HANDLER_ZIP_X86_64") {
            command.arg("--handler-zip-x86-64").arg(zip);
        }
        if let Ok(role) = std::env::var("PAPI_LAMBDA_ROLE_ARN") {
            command.arg("--default-execution-role-arn").arg(role);
        }
        command.args(&self.extra);
        command.envs(self.env.iter().map(|(k, v)| (k, v)));
        self.child = Some(command.spawn().expect("the operator starts"));
        let log = || std::fs::read_to_string(self.dir.join("operator.log")).unwrap_or_default();
        self.admin_addr = poll::until(
            "the operator to start",
            Duration::from_secs(30),
            Duration::from_millis(100),
            || {
                if let Some(child) = self.child.as_mut()
                    && let Ok(Some(status)) = child.try_wait()
                {
                    panic!("the operator exited with {status}: {}", log());
                }
                std::fs::read_to_string(&addr_file)
                    .ok()
                    .filter(|addr| !addr.is_empty())
                    .ok_or_else(log)
            },
        );
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("operator.log")).unwrap_or_default()
    }

    /// The process has ended (or was never started): a zombie counts as ended.
    pub fn exited(&self) -> bool {
        let Some(child) = &self.child else {
            return true;
        };
        match std::fs::read_to_string(format!("/proc/{}/stat", child.id())) {
            // The state follows the command name in parentheses: "pid (comm) S ...".
            Ok(stat) => stat
                .rsplit_once(')')
                .is_some_and(|(_, rest)| rest.trim_start().starts_with(['Z', 'X'])),
            Err(_) => true,
        }
    }

    /// SIGKILL, as a crash.
    pub fn kill(&mut self) {
        if self.child.is_some() {
            aws_operations::record_from(&self.admin_addr);
        }
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    /// GET an admin path.
    pub fn admin_get(&self, path: &str) -> String {
        let mut stream = TcpStream::connect(&self.admin_addr).expect("admin server reachable");
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        write!(stream, "GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").expect("request");
        let mut response = String::new();
        stream.read_to_string(&mut response).expect("response");
        response
    }

    /// AWS calls so far by the operator, from /metrics: (reads, writes, by operation).
    pub fn aws_calls(&self) -> AwsCalls {
        aws_calls_in(&self.metrics())
    }

    /// The AWS calls made while `action` ran, printed as `what`.
    pub fn calls_during(&self, what: &str, action: impl FnOnce()) -> AwsCalls {
        let before = self.aws_calls();
        action();
        let calls = before.since(&self.aws_calls());
        eprintln!(
            "{what}: {} reads, {} writes: {:?}",
            calls.reads, calls.writes, calls.by_operation
        );
        calls
    }

    /// Reconciles finished so far.
    pub fn reconciles(&self) -> u64 {
        self.metrics().sum("privateapi_reconciles_total") as u64
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "---- operator log ({}) ----\n{}",
                self.namespace,
                self.log()
            );
        }
        self.kill();
    }
}

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct AwsCalls {
    pub reads: u64,
    pub writes: u64,
    pub by_operation: BTreeMap<String, u64>,
}

impl AwsCalls {
    /// What happened between `self` (earlier) and `later`.
    pub fn since(&self, later: &AwsCalls) -> AwsCalls {
        let mut by_operation = BTreeMap::new();
        for (op, n) in &later.by_operation {
            let before = self.by_operation.get(op).copied().unwrap_or(0);
            if *n > before {
                by_operation.insert(op.clone(), n - before);
            }
        }
        AwsCalls {
            reads: later.reads - self.reads,
            writes: later.writes - self.writes,
            by_operation,
        }
    }
}

/// The AWS call counts of a `/metrics` page (its body, or the whole HTTP response); `None` when
/// the page cannot be read.
pub fn parse_aws_calls(page: &str) -> Option<AwsCalls> {
    runtime::Metrics::try_parse(http_body(page))
        .ok()
        .map(|metrics| aws_calls_in(&metrics))
}

/// The body of an HTTP response (the whole text when it is not one).
fn http_body(page: &str) -> &str {
    if page.starts_with("HTTP/") {
        page.split_once("\r\n\r\n").map_or("", |(_, body)| body)
    } else {
        page
    }
}

/// The AWS call counts of a parsed `/metrics` page.
pub fn aws_calls_in(metrics: &runtime::Metrics) -> AwsCalls {
    let mut calls = AwsCalls::default();
    for sample in metrics.find("privateapi_aws_calls_total", &[]) {
        // Counters: whole numbers.
        let n = sample.value as u64;
        let label = |name: &str| sample.labels.get(name).cloned().unwrap_or_default();
        if label("kind") == "read" {
            calls.reads += n;
        } else {
            calls.writes += n;
        }
        *calls
            .by_operation
            .entry(format!("{}:{}", label("service"), label("operation")))
            .or_default() += n;
    }
    calls
}

/// Trigger a reconcile of an unchanged spec (a metadata change) and wait until it finished.
pub fn poke_and_wait(operator: &Operator, namespace: &str, name: &str) {
    let before = operator.reconciles();
    let value = format!("papi-test/poke={}", unique("p"));
    kubectl(&[
        "annotate",
        "privateapi",
        name,
        "-n",
        namespace,
        &value,
        "--overwrite",
    ]);
    poll::until(
        "a reconcile after the poke",
        Duration::from_secs(30),
        Duration::from_millis(200),
        || operator.reconciles() > before,
    );
    // Let any reconcile the first one queued (e.g. its own status write) finish too.
    std::thread::sleep(Duration::from_millis(1500));
}

/// The SDK's config loader with the tests' HTTPS client: the SDK crates are built without
/// `default-https-client`, so bring our own (rustls with ring, as the operator's).
pub fn sdk_config_loader() -> aws_config::ConfigLoader {
    let http = aws_smithy_http_client::Builder::new()
        .tls_provider(aws_smithy_http_client::tls::Provider::Rustls(
            aws_smithy_http_client::tls::rustls_provider::CryptoMode::Ring,
        ))
        .build_https();
    aws_config::defaults(aws_config::BehaviorVersion::latest()).http_client(http)
}

pub async fn aws() -> Arc<RegionClients> {
    aws_counted().await.0
}

/// [`aws`], and the metrics its calls are recorded in (a test counts the calls a part makes).
pub async fn aws_counted() -> (Arc<RegionClients>, Arc<Metrics>) {
    require_testbed();
    assert!(
        std::env::var_os("AWS_ENDPOINT_URL").is_some(),
        "AWS_ENDPOINT_URL is not set: source $PAPI_TESTBED_DIR/moto.env (testbed/with-testbed.sh does)"
    );
    let metrics = Arc::new(Metrics::default());
    let clients = AwsClients::load(Some(REGION.to_string()), metrics.clone())
        .await
        .expect("AWS clients");
    let aws = clients.for_region(REGION).await.expect("region clients");
    (aws, metrics)
}

/// A VPC of the test's own, as the reference stack has: DNS enabled (for private DNS), subnets in
/// different AZs, a "client" security group (the instances allowed in) and an "extra" one (for
/// tests that attach a group as it is).
pub struct TestVpc {
    pub vpc_id: String,
    pub subnet_ids: Vec<String>,
    pub client_sg_id: String,
    pub extra_sg_id: String,
    /// Its CIDR is 10.`second_octet`.0.0/16; subnet i is 10.`second_octet`.i.0/24.
    pub second_octet: u8,
}

/// [`make_vpc_in_azs`] with two subnets, in us-east-1a and us-east-1b.
pub async fn make_vpc(ec2: &aws_sdk_ec2::Client, second_octet: u8) -> TestVpc {
    make_vpc_in_azs(ec2, second_octet, &["us-east-1a", "us-east-1b"]).await
}

/// A VPC 10.`second_octet`.0.0/16 with one subnet in each of `azs`.
pub async fn make_vpc_in_azs(ec2: &aws_sdk_ec2::Client, second_octet: u8, azs: &[&str]) -> TestVpc {
    let vpc = ec2
        .create_vpc()
        .cidr_block(format!("10.{second_octet}.0.0/16"))
        .send()
        .await
        .expect("CreateVpc");
    let vpc_id = vpc.vpc.and_then(|v| v.vpc_id).expect("vpc id");
    for attribute in ["hostnames", "support"] {
        let mut request = ec2.modify_vpc_attribute().vpc_id(&vpc_id);
        let value = aws_sdk_ec2::types::AttributeBooleanValue::builder()
            .value(true)
            .build();
        request = if attribute == "hostnames" {
            request.enable_dns_hostnames(value)
        } else {
            request.enable_dns_support(value)
        };
        request.send().await.expect("ModifyVpcAttribute");
    }
    let mut subnet_ids = Vec::new();
    for (i, az) in azs.iter().enumerate() {
        let cidr = format!("10.{second_octet}.{i}.0/24");
        subnet_ids.push(add_subnet(ec2, &vpc_id, &cidr, az).await);
    }
    let group = async |what: &str| {
        make::security_group(
            ec2,
            &vpc_id,
            &unique(what),
            &format!("test {what} instances"),
        )
        .await
    };
    let client_sg_id = group("client").await;
    let extra_sg_id = group("extra").await;
    TestVpc {
        vpc_id,
        subnet_ids,
        client_sg_id,
        extra_sg_id,
        second_octet,
    }
}

/// A subnet `cidr` of `vpc` in `az`.
pub async fn add_subnet(ec2: &aws_sdk_ec2::Client, vpc: &str, cidr: &str, az: &str) -> String {
    ec2.create_subnet()
        .vpc_id(vpc)
        .cidr_block(cidr)
        .availability_zone(az)
        .send()
        .await
        .expect("CreateSubnet")
        .subnet
        .and_then(|s| s.subnet_id)
        .expect("subnet ID")
}

/// Every resource in the AWS fake tagged with `privateapi.io/cluster=cluster`: (kind, id).
pub async fn owned_resources(aws: &RegionClients, cluster: &str) -> Vec<(String, String)> {
    let mut found = Vec::new();
    let filter = aws_sdk_ec2::types::Filter::builder()
        .name("tag:privateapi.io/cluster")
        .values(cluster)
        .build();
    let endpoints = aws
        .ec2
        .describe_vpc_endpoints()
        .filters(filter.clone())
        .send()
        .await
        .expect("DescribeVpcEndpoints");
    for endpoint in endpoints.vpc_endpoints.unwrap_or_default() {
        let state = inspect::endpoint_state(&endpoint);
        if state != "deleted" && state != "deleting" {
            found.push((
                "vpc-endpoint".to_string(),
                endpoint.vpc_endpoint_id.unwrap_or_default(),
            ));
        }
    }
    let groups = aws
        .ec2
        .describe_security_groups()
        .filters(filter)
        .send()
        .await
        .expect("DescribeSecurityGroups");
    for group in groups.security_groups.unwrap_or_default() {
        found.push((
            "security-group".to_string(),
            group.group_id.unwrap_or_default(),
        ));
    }
    for api in inspect::rest_apis(aws).await {
        if api
            .tags
            .as_ref()
            .and_then(|t| t.get("privateapi.io/cluster"))
            .map(String::as_str)
            == Some(cluster)
        {
            found.push(("rest-api".to_string(), api.id.unwrap_or_default()));
        }
    }
    for (function, tags) in inspect::functions_with_tags(aws).await {
        if tags.get("privateapi.io/cluster").map(String::as_str) == Some(cluster)
            && let Some(arn) = function.function_arn
        {
            found.push(("function".to_string(), arn));
        }
    }
    found.sort();
    found
}
