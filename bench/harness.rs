//! The benchmark harness (see bench/README.md): inside a test bed, it runs the operator as a
//! separate process, creates N `PrivateApi` objects, and measures time to Ready, AWS calls per
//! object during the create and during one steady-state reconcile of every object, and the
//! operator's memory and CPU. `run` measures one (N, latency) pair; `report` turns a list of runs
//! into the results JSON and its markdown table.
//!
//! Shared by the `bench` example (`bench/main.rs`, what `make bench` runs) and by
//! `tests/e2e/bench_harness.rs` (N = 2, so that this file does not rot).
#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::runtime::{WatchStreamExt, watcher};
use privateapi_operator::aws::{AwsClients, RegionClients};
use privateapi_operator::crd::PrivateApi;
use privateapi_operator::metrics::Metrics;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

pub const REGION: &str = "us-east-1";
/// The label every object of one run carries; the operator watches only these
/// (`--label-selector`), so a run is not disturbed by other objects in the same API server.
pub const RUN_LABEL: &str = "papi-bench/run";
/// Objects created (and Ready-checked) at the same time by the harness.
const CLIENT_PARALLELISM: usize = 16;

#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error("{0}")]
    Setup(String),
    #[error("Kubernetes: {0}")]
    Kube(#[from] kube::Error),
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("AWS {operation}: {message}")]
    Aws {
        operation: &'static str,
        message: String,
    },
    #[error("timed out: {0}")]
    Timeout(String),
    #[error("the operator: {0}")]
    Operator(String),
}

pub type Result<T> = std::result::Result<T, BenchError>;

fn aws_err(operation: &'static str) -> impl FnOnce(String) -> BenchError {
    move |message| BenchError::Aws { operation, message }
}

/// What one run does.
#[derive(Debug, Clone)]
pub struct RunConfig {
    /// Objects created.
    pub n: usize,
    /// Latency added to every AWS call of the operator, by the fault proxy at `faults_url`.
    pub latency_ms: u64,
    pub operator_binary: PathBuf,
    /// The built-in handler package (x86_64) the operator deploys.
    pub handler_zip: PathBuf,
    /// Objects are spread over this many namespaces (round robin).
    pub namespaces: usize,
    /// Every `create_every`-th object creates its own VPC endpoint (`endpoint.create`, private DNS
    /// off, so they can share one VPC); the others use their namespace's shared endpoint
    /// (`endpoint.id`).
    pub create_every: usize,
    /// The operator's `--concurrency` (None: its default).
    pub concurrency: Option<u16>,
    /// How long to wait for every object to be Ready.
    pub ready_timeout: Duration,
    /// Operator log and scratch files.
    pub work_dir: PathBuf,
    /// Unique per run: label value, namespace prefix, operator cluster name.
    pub run_id: String,
    /// The AWS endpoint the operator uses (the fault proxy in front of moto); None: the
    /// harness's own `AWS_ENDPOINT_URL` (moto directly).
    pub operator_aws_endpoint: Option<String>,
    /// The fault proxy's base URL, for `PUT /__faults/latency`.
    pub faults_url: Option<String>,
    /// More operator flags.
    pub extra_operator_args: Vec<String>,
    /// Free-form run options recorded in the result.
    pub mode: BTreeMap<String, Value>,
    /// AWS quota enforcement: the body of the fault proxy's `PUT /__faults/quotas` (token buckets
    /// per service and operation), recorded in the result's `setup.quotas`.
    pub quotas: Option<Value>,
}

impl RunConfig {
    pub fn new(n: usize, latency_ms: u64, operator_binary: PathBuf, handler_zip: PathBuf) -> Self {
        let run_id = format!("b{}-{n}-{latency_ms}", short_unique());
        Self {
            n,
            latency_ms,
            operator_binary,
            handler_zip,
            namespaces: 4,
            create_every: 5,
            concurrency: None,
            ready_timeout: Duration::from_secs(1800),
            work_dir: std::env::temp_dir().join(format!("papi-bench-{run_id}")),
            run_id,
            operator_aws_endpoint: None,
            faults_url: None,
            extra_operator_args: Vec::new(),
            mode: BTreeMap::new(),
            quotas: None,
        }
    }
}

fn short_unique() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("{:x}", (nanos ^ u128::from(std::process::id())) % 0xff_ffff)
}

/// Reads and writes per object.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq)]
pub struct PerObject {
    pub reads: f64,
    pub writes: f64,
}

/// The measurements of one run. Fields added later (e.g. quota figures) go to `extra`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RunResult {
    pub n: usize,
    pub latency_ms: u64,
    /// From the first apply to the last object Ready.
    pub ready_all_s: f64,
    /// Per object, from its apply to its first Ready=True.
    pub ready_p50_s: f64,
    pub ready_p95_s: f64,
    pub ready_max_s: f64,
    pub create_calls_per_object: PerObject,
    /// `Service:Operation` → calls per object.
    pub create_calls_by_operation: BTreeMap<String, f64>,
    /// Service → calls per object.
    pub create_calls_by_service: BTreeMap<String, f64>,
    pub steady_calls_per_object: PerObject,
    pub steady_calls_by_operation: BTreeMap<String, f64>,
    pub steady_calls_by_service: BTreeMap<String, f64>,
    /// Throttling answers seen by the operator over the whole run.
    pub throttled_calls: u64,
    /// Reconciles counted during the create phase and the steady-state phase.
    pub create_reconciles: u64,
    pub steady_reconciles: u64,
    /// Operator resident memory: after start-up with no object, peak (VmHWM) and at the end.
    pub idle_rss_mib: f64,
    pub peak_rss_mib: f64,
    pub final_rss_mib: f64,
    /// (peak − idle) / n and (final − idle) / n.
    pub rss_per_object_kib: f64,
    pub final_rss_per_object_kib: f64,
    /// Operator CPU (user + system) over the whole run, and the part until every object was Ready.
    pub cpu_s: f64,
    pub create_cpu_s: f64,
    /// Seconds the steady-state reconcile of every object took (poke to quiet).
    pub steady_s: f64,
    /// The steady-state calls per object by service (the quota issue's figures).
    #[serde(default)]
    pub apigw_calls_per_object: f64,
    #[serde(default)]
    pub lambda_calls_per_object: f64,
    #[serde(default)]
    pub ec2_calls_per_object: f64,
    /// Throttling answers over the whole run: the fault proxy's count when it enforces quotas
    /// (every call it refused), else the operator's.
    #[serde(default)]
    pub throttles: u64,
    /// With quotas enforced: the least time N creates can take under them (the slowest of the
    /// per-operation quotas the creates need, see `quota_bound_s`), and `ready_all_s` over it.
    #[serde(default)]
    pub quota_bound_s: Option<f64>,
    #[serde(default)]
    pub ready_over_bound: Option<f64>,
    /// The run's shape: namespaces, endpoint mix, operator flags, test-bed knobs, machine load.
    pub setup: BTreeMap<String, Value>,
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

// ---------------------------------------------------------------------------------------------
// Operator metrics
// ---------------------------------------------------------------------------------------------

/// One line of `privateapi_aws_calls_total`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CallKey {
    pub service: String,
    pub operation: String,
    pub read: bool,
    pub outcome: String,
}

/// What /metrics says at one moment.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Snapshot {
    pub calls: BTreeMap<CallKey, u64>,
    pub reconciles: u64,
}

impl Snapshot {
    pub fn parse(text: &str) -> Self {
        let mut snapshot = Snapshot::default();
        for line in text.lines() {
            let Some((series, value)) = line.rsplit_once(' ') else {
                continue;
            };
            let Ok(value) = value.trim().parse::<f64>() else {
                continue;
            };
            let value = value as u64;
            if let Some(labels) = series.strip_prefix("privateapi_aws_calls_total{") {
                let label = |name: &str| -> String {
                    labels
                        .split(&format!("{name}=\""))
                        .nth(1)
                        .and_then(|rest| rest.split('"').next())
                        .unwrap_or_default()
                        .to_string()
                };
                let key = CallKey {
                    service: label("service"),
                    operation: label("operation"),
                    read: label("kind") == "read",
                    outcome: label("outcome"),
                };
                *snapshot.calls.entry(key).or_default() += value;
            } else if series.starts_with("privateapi_reconciles_total{") {
                snapshot.reconciles += value;
            }
        }
        snapshot
    }

    /// What happened between `earlier` and `self`.
    pub fn since(&self, earlier: &Snapshot) -> Snapshot {
        let calls = self
            .calls
            .iter()
            .filter_map(|(key, n)| {
                let delta = n.saturating_sub(earlier.calls.get(key).copied().unwrap_or(0));
                (delta > 0).then(|| (key.clone(), delta))
            })
            .collect();
        Snapshot {
            calls,
            reconciles: self.reconciles.saturating_sub(earlier.reconciles),
        }
    }

    pub fn total_calls(&self) -> u64 {
        self.calls.values().sum()
    }

    pub fn per_object(&self, n: usize) -> PerObject {
        let (mut reads, mut writes) = (0, 0);
        for (key, count) in &self.calls {
            if key.read {
                reads += count;
            } else {
                writes += count;
            }
        }
        PerObject {
            reads: per(reads, n),
            writes: per(writes, n),
        }
    }

    pub fn by_operation(&self, n: usize) -> BTreeMap<String, f64> {
        let mut counts: BTreeMap<String, u64> = BTreeMap::new();
        for (key, count) in &self.calls {
            *counts
                .entry(format!("{}:{}", key.service, key.operation))
                .or_default() += count;
        }
        counts.into_iter().map(|(k, v)| (k, per(v, n))).collect()
    }

    pub fn by_service(&self, n: usize) -> BTreeMap<String, f64> {
        let mut counts: BTreeMap<String, u64> = BTreeMap::new();
        for (key, count) in &self.calls {
            *counts.entry(key.service.clone()).or_default() += count;
        }
        counts.into_iter().map(|(k, v)| (k, per(v, n))).collect()
    }

    pub fn throttled(&self) -> u64 {
        self.calls
            .iter()
            .filter(|(key, _)| key.outcome == "throttled")
            .map(|(_, n)| n)
            .sum()
    }
}

fn per(count: u64, n: usize) -> f64 {
    round(count as f64 / n.max(1) as f64, 3)
}

fn round(value: f64, digits: i32) -> f64 {
    let scale = 10f64.powi(digits);
    (value * scale).round() / scale
}

/// A plain HTTP/1.0 request to a loopback server; returns (status, body).
pub fn http(addr: &str, method: &str, path: &str, body: Option<&str>) -> Result<(u16, String)> {
    let mut stream = TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    let body = body.unwrap_or("");
    write!(
        stream,
        "{method} {path} HTTP/1.0\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| BenchError::Setup(format!("no HTTP status from {addr}{path}")))?;
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Ok((status, body))
}

/// `http://127.0.0.1:1234/x` → `127.0.0.1:1234`.
fn host_port(url: &str) -> &str {
    let rest = url.split_once("://").map(|(_, r)| r).unwrap_or(url);
    rest.split('/').next().unwrap_or(rest)
}

// ---------------------------------------------------------------------------------------------
// /proc
// ---------------------------------------------------------------------------------------------

/// A `kB` field of /proc/<pid>/status, in MiB.
pub fn proc_status_mib(pid: u32, field: &str) -> Result<f64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    text.lines()
        .find_map(|line| line.strip_prefix(&format!("{field}:")))
        .and_then(|rest| rest.split_whitespace().next()?.parse::<f64>().ok())
        .map(|kib| kib / 1024.0)
        .ok_or_else(|| BenchError::Setup(format!("no {field} in /proc/{pid}/status")))
}

fn clock_ticks_per_second() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

/// User + system CPU seconds of a process so far.
pub fn proc_cpu_seconds(pid: u32) -> Result<f64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // The command name (field 2) may hold spaces and parentheses: count from the last ')'.
    let after = text
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .ok_or_else(|| BenchError::Setup(format!("unexpected /proc/{pid}/stat")))?;
    let fields: Vec<&str> = after.split_whitespace().collect();
    // After the name: state is field 3, so utime (14) and stime (15) are at 11 and 12.
    let ticks = |i: usize| -> Result<f64> {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .ok_or_else(|| BenchError::Setup(format!("unexpected /proc/{pid}/stat")))
    };
    Ok((ticks(11)? + ticks(12)?) / clock_ticks_per_second())
}

/// The machine the run happens on.
pub fn machine() -> Value {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .and_then(|rest| rest.split_once(':'))
        .map(|(_, m)| m.trim().to_string())
        .unwrap_or_else(|| "unknown".into());
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let memory_gib = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|rest| rest.split_whitespace().next()?.parse::<f64>().ok())
        .map(|kib| round(kib / 1024.0 / 1024.0, 1))
        .unwrap_or(0.0);
    json!({
        "cpus": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        "model": model,
        "memory": format!("{memory_gib} GiB"),
    })
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

// ---------------------------------------------------------------------------------------------
// The operator process
// ---------------------------------------------------------------------------------------------

pub struct OperatorProcess {
    child: Child,
    pub admin_addr: String,
    pub log: PathBuf,
}

impl OperatorProcess {
    fn start(config: &RunConfig, role_arn: &str) -> Result<Self> {
        std::fs::create_dir_all(&config.work_dir)?;
        let addr_file = config.work_dir.join("admin-addr");
        let _ = std::fs::remove_file(&addr_file);
        let log = config.work_dir.join("operator.log");
        let log_file = std::fs::File::create(&log)?;
        let mut command = Command::new(&config.operator_binary);
        command
            .arg("--cluster-name")
            .arg(&config.run_id)
            .arg("--label-selector")
            .arg(format!("{RUN_LABEL}={}", config.run_id))
            .arg("--admin-addr")
            .arg("127.0.0.1:0")
            .arg("--admin-addr-file")
            .arg(&addr_file)
            .arg("--handler-zip-x86-64")
            .arg(&config.handler_zip)
            .arg("--default-execution-role-arn")
            .arg(role_arn)
            // The steady-state reconcile is triggered by the harness, not by the timer.
            .arg("--resync-seconds")
            .arg("3600")
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::from(log_file.try_clone()?))
            .stderr(Stdio::from(log_file));
        if let Some(concurrency) = config.concurrency {
            command.arg("--concurrency").arg(concurrency.to_string());
        }
        if let Some(endpoint) = &config.operator_aws_endpoint {
            command.env("AWS_ENDPOINT_URL", endpoint);
        }
        command.args(pacing_args(config));
        command.args(&config.extra_operator_args);
        let child = command.spawn().map_err(|e| {
            BenchError::Operator(format!(
                "cannot start {}: {e}",
                config.operator_binary.display()
            ))
        })?;
        let mut operator = Self {
            child,
            admin_addr: String::new(),
            log,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            operator.check_alive()?;
            if operator.admin_addr.is_empty()
                && let Ok(addr) = std::fs::read_to_string(&addr_file)
                && !addr.trim().is_empty()
            {
                operator.admin_addr = addr.trim().to_string();
            }
            if !operator.admin_addr.is_empty()
                && matches!(
                    http(&operator.admin_addr, "GET", "/readyz", None),
                    Ok((200, _))
                )
            {
                return Ok(operator);
            }
            if Instant::now() > deadline {
                return Err(BenchError::Timeout(format!(
                    "the operator was not ready after 60 s; log: {}",
                    operator.log.display()
                )));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    fn check_alive(&mut self) -> Result<()> {
        match self.child.try_wait()? {
            None => Ok(()),
            Some(status) => Err(BenchError::Operator(format!(
                "exited with {status}; log: {}",
                self.log.display()
            ))),
        }
    }

    pub fn metrics(&self) -> Result<Snapshot> {
        let (status, body) = http(&self.admin_addr, "GET", "/metrics", None)?;
        if status != 200 {
            return Err(BenchError::Operator(format!("/metrics answered {status}")));
        }
        Ok(Snapshot::parse(&body))
    }
}

impl Drop for OperatorProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---------------------------------------------------------------------------------------------
// Kubernetes and AWS set-up
// ---------------------------------------------------------------------------------------------

async fn install_crd(client: &kube::Client) -> Result<()> {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let crd = PrivateApi::crd();
    let name = crd.metadata.name.clone().unwrap_or_default();
    crds.patch(
        &name,
        &PatchParams::apply("papi-bench").force(),
        &Patch::Apply(&crd),
    )
    .await?;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let established = crds
            .get(&name)
            .await?
            .status
            .and_then(|s| s.conditions)
            .unwrap_or_default()
            .iter()
            .any(|c| c.type_ == "Established" && c.status == "True");
        let served = established
            && Api::<PrivateApi>::all(client.clone())
                .list(&Default::default())
                .await
                .is_ok();
        if served {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(BenchError::Timeout("the CRD was never established".into()));
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

async fn create_namespace(client: &kube::Client, name: &str) -> Result<()> {
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let namespace: Namespace = serde_json::from_value(json!({"metadata": {"name": name}}))?;
    match namespaces.create(&PostParams::default(), &namespace).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.code == 409 => Ok(()),
        Err(err) => Err(err.into()),
    }
}

/// What the objects reference in AWS: one VPC with two subnets and a client security group, and
/// one shared execute-api endpoint per namespace (made here, as a platform team would).
#[derive(Debug, Clone)]
pub struct Fixtures {
    pub vpc_id: String,
    pub subnet_ids: Vec<String>,
    pub client_sg_id: String,
    pub shared_endpoints: Vec<String>,
}

async fn make_fixtures(aws: &RegionClients, namespaces: usize) -> Result<Fixtures> {
    use aws_sdk_ec2::types::VpcEndpointType;
    let ec2 = &aws.ec2;
    let vpc_id = ec2
        .create_vpc()
        .cidr_block("10.200.0.0/16")
        .send()
        .await
        .map_err(|e| aws_err("CreateVpc")(format!("{e:?}")))?
        .vpc
        .and_then(|v| v.vpc_id)
        .ok_or_else(|| aws_err("CreateVpc")("no VpcId".into()))?;
    let mut subnet_ids = Vec::new();
    for (i, az) in ["us-east-1a", "us-east-1b"].iter().enumerate() {
        let id = ec2
            .create_subnet()
            .vpc_id(&vpc_id)
            .cidr_block(format!("10.200.{i}.0/24"))
            .availability_zone(*az)
            .send()
            .await
            .map_err(|e| aws_err("CreateSubnet")(format!("{e:?}")))?
            .subnet
            .and_then(|s| s.subnet_id)
            .ok_or_else(|| aws_err("CreateSubnet")("no SubnetId".into()))?;
        subnet_ids.push(id);
    }
    let client_sg_id = ec2
        .create_security_group()
        .group_name(format!("bench-client-{}", short_unique()))
        .description("bench client instances")
        .vpc_id(&vpc_id)
        .send()
        .await
        .map_err(|e| aws_err("CreateSecurityGroup")(format!("{e:?}")))?
        .group_id
        .ok_or_else(|| aws_err("CreateSecurityGroup")("no GroupId".into()))?;
    let mut shared_endpoints = Vec::new();
    for _ in 0..namespaces {
        let id = ec2
            .create_vpc_endpoint()
            .vpc_endpoint_type(VpcEndpointType::Interface)
            .vpc_id(&vpc_id)
            .service_name(format!("com.amazonaws.{REGION}.execute-api"))
            .set_subnet_ids(Some(subnet_ids.clone()))
            .private_dns_enabled(false)
            .send()
            .await
            .map_err(|e| aws_err("CreateVpcEndpoint")(format!("{e:?}")))?
            .vpc_endpoint
            .and_then(|e| e.vpc_endpoint_id)
            .ok_or_else(|| aws_err("CreateVpcEndpoint")("no VpcEndpointId".into()))?;
        shared_endpoints.push(id);
    }
    // The shared endpoints exist before the objects, as they would: wait until available.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let out = ec2
            .describe_vpc_endpoints()
            .set_vpc_endpoint_ids(Some(shared_endpoints.clone()))
            .send()
            .await
            .map_err(|e| aws_err("DescribeVpcEndpoints")(format!("{e:?}")))?;
        let available = out
            .vpc_endpoints()
            .iter()
            .filter(|e| {
                e.state()
                    .is_some_and(|s| s.as_str().eq_ignore_ascii_case("available"))
            })
            .count();
        if available == shared_endpoints.len() {
            break;
        }
        if Instant::now() > deadline {
            return Err(BenchError::Timeout(
                "the shared endpoints never became available".into(),
            ));
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    Ok(Fixtures {
        vpc_id,
        subnet_ids,
        client_sg_id,
        shared_endpoints,
    })
}

/// The i-th object of a run.
pub fn manifest(config: &RunConfig, fixtures: &Fixtures, i: usize) -> Value {
    let namespace_index = i % config.namespaces.max(1);
    let endpoint = if i.is_multiple_of(config.create_every.max(1)) {
        json!({"create": {
            "vpcId": fixtures.vpc_id,
            "subnetIds": fixtures.subnet_ids,
            // Off, so that many endpoints fit one VPC (one private-DNS endpoint per VPC).
            "privateDns": false,
            "allowedSecurityGroupIds": [fixtures.client_sg_id],
        }})
    } else {
        json!({"id": fixtures.shared_endpoints[namespace_index % fixtures.shared_endpoints.len()]})
    };
    json!({
        "apiVersion": "privateapi.io/v1alpha1",
        "kind": "PrivateApi",
        "metadata": {
            "name": format!("api-{i:05}"),
            "namespace": namespace_name(config, namespace_index),
            "labels": {RUN_LABEL: config.run_id},
        },
        "spec": {
            "region": REGION,
            "endpoint": endpoint,
            "backend": {
                "builtin": {"message": format!("bench object {i}")},
                "architecture": "x86_64",
                "memoryMiB": 128,
            },
            "stageName": "prod",
            "tags": {"bench": config.run_id},
        },
    })
}

fn namespace_name(config: &RunConfig, index: usize) -> String {
    format!("{}-ns{index}", config.run_id)
}

fn object_key(object: &PrivateApi) -> String {
    format!(
        "{}/{}",
        object.metadata.namespace.as_deref().unwrap_or_default(),
        object.metadata.name.as_deref().unwrap_or_default()
    )
}

/// Ready=True for the current generation.
pub fn is_ready(object: &PrivateApi) -> bool {
    let generation = object.metadata.generation;
    let Some(status) = &object.status else {
        return false;
    };
    status.observed_generation == generation
        && status.conditions.iter().any(|c| {
            c.type_ == "Ready" && c.status == "True" && c.observed_generation == generation
        })
}

/// Create one object the way `kubectl apply` (client-side, its default) does: a POST carrying
/// the manifest in the last-applied annotation, field manager `kubectl-client-side-apply`.
async fn kubectl_style_create(client: &kube::Client, manifest: &Value) -> Result<()> {
    let mut object = manifest.clone();
    let applied = serde_json::to_string(manifest)?;
    object["metadata"]["annotations"] = json!({
        "kubectl.kubernetes.io/last-applied-configuration": applied,
    });
    let object: PrivateApi = serde_json::from_value(object)?;
    let namespace = object.metadata.namespace.clone().unwrap_or_default();
    let api: Api<PrivateApi> = Api::namespaced(client.clone(), &namespace);
    let params = PostParams {
        field_manager: Some("kubectl-client-side-apply".into()),
        ..Default::default()
    };
    api.create(&params, &object).await?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// A run
// ---------------------------------------------------------------------------------------------

/// When each object was applied and first seen Ready.
#[derive(Default)]
struct Timeline {
    applied: HashMap<String, Instant>,
    ready: HashMap<String, Instant>,
}

/// Wait until the operator's AWS calls and reconciles stay unchanged for `quiet`, at most `limit`.
async fn wait_quiet(operator: &OperatorProcess, quiet: Duration, limit: Duration) -> Result<()> {
    let deadline = Instant::now() + limit;
    let mut last = operator.metrics()?;
    let mut stable_since = Instant::now();
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let now = operator.metrics()?;
        if now != last {
            last = now;
            stable_since = Instant::now();
        } else if stable_since.elapsed() >= quiet {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(BenchError::Timeout(format!(
                "the operator did not go quiet within {limit:?}"
            )));
        }
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    // Nearest rank.
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// The least time `n` creates (`endpoint_creates` of them with their own endpoint) take under
/// AWS's published quotas (src/pacer/quotas.rs) at `scale`, with the operator using `share` of them:
/// for each operation a create needs once, (count − burst) / rate; the slowest of them.
pub fn quota_bound_s(n: usize, endpoint_creates: usize, scale: f64, share: f64) -> f64 {
    let quotas = privateapi_operator::pacer::published_quotas();
    [
        ("API Gateway", "CreateDeployment", n),
        ("API Gateway", "CreateRestApi", n),
        ("EC2", "CreateVpcEndpoint", endpoint_creates),
    ]
    .into_iter()
    .filter_map(|(service, operation, count)| {
        let quota = quotas
            .iter()
            .find(|q| q.service == service && q.operation.as_deref() == Some(operation))?;
        let burst = (quota.burst * share).max(1.0);
        Some((count as f64 - burst).max(0.0) / (quota.rate_per_s * scale * share))
    })
    .fold(0.0, f64::max)
}

/// The operator's pacing in a run, unless the extra operator arguments say otherwise. With
/// quotas enforced, the operator paces at their scale and may use all of them (the run measures
/// against the bound they set); without, at 1000× the published quotas: the run measures the
/// operator, not AWS's quotas (which the fake does not enforce).
pub fn pacing_args(config: &RunConfig) -> Vec<String> {
    let given = |flag: &str| {
        config
            .extra_operator_args
            .iter()
            .any(|a| a == flag || a.starts_with(&format!("{flag}=")))
    };
    let mut args = Vec::new();
    let scale = config
        .quotas
        .as_ref()
        .map(|q| q["scale"].as_f64().unwrap_or(1.0))
        .unwrap_or(1000.0);
    if !given("--aws-quota-scale") {
        args.extend(["--aws-quota-scale".to_string(), scale.to_string()]);
    }
    if config.quotas.is_some() && !given("--aws-quota-share") {
        args.extend(["--aws-quota-share".to_string(), "1".to_string()]);
    }
    args
}

/// `GET /__faults/stats` of the fault proxy.
fn fault_stats(faults_url: &str) -> Result<Value> {
    let (status, answer) = http(host_port(faults_url), "GET", "/__faults/stats", None)?;
    if !(200..300).contains(&status) {
        return Err(BenchError::Setup(format!(
            "GET /__faults/stats answered {status}: {answer}"
        )));
    }
    Ok(serde_json::from_str(&answer)?)
}

/// `PUT /__faults/<what>` to the fault proxy.
fn put_fault(faults_url: &str, what: &str, body: &Value) -> Result<()> {
    let path = format!("/__faults/{what}");
    let (status, answer) = http(host_port(faults_url), "PUT", &path, Some(&body.to_string()))?;
    if !(200..300).contains(&status) {
        return Err(BenchError::Setup(format!(
            "PUT {path} answered {status}: {answer}"
        )));
    }
    Ok(())
}

/// One run: set up, create N objects, wait for Ready, one steady-state reconcile of each, measure.
pub async fn run(config: &RunConfig) -> Result<RunResult> {
    let n = config.n;
    let load_at_start = load_average();
    let role_arn = std::env::var("PAPI_LAMBDA_ROLE_ARN").map_err(|_| {
        BenchError::Setup(
            "PAPI_LAMBDA_ROLE_ARN is not set: run inside the test bed (testbed/with-testbed.sh)"
                .into(),
        )
    })?;
    if (config.latency_ms > 0 || config.quotas.is_some())
        && (config.faults_url.is_none() || config.operator_aws_endpoint.is_none())
    {
        return Err(BenchError::Setup(
            "an injected latency or quotas need the operator to call AWS through the fault proxy (--faults-url and --operator-aws-endpoint)".into(),
        ));
    }
    if let Some(faults) = &config.faults_url {
        put_fault(faults, "latency", &json!({"latency_ms": config.latency_ms}))?;
        if let Some(quotas) = &config.quotas {
            put_fault(faults, "quotas", quotas)?;
        }
    }

    let client = kube::Client::try_default().await?;
    install_crd(&client).await?;
    let namespaces = config.namespaces.clamp(1, n.max(1));
    for index in 0..namespaces {
        create_namespace(&client, &namespace_name(config, index)).await?;
    }
    let aws = AwsClients::load(Some(REGION.to_string()), Arc::new(Metrics::default()))
        .await
        .map_err(|e| BenchError::Setup(format!("AWS clients: {e}")))?
        .for_region(REGION)
        .await
        .map_err(|e| BenchError::Setup(format!("AWS clients: {e}")))?;
    let fixtures = make_fixtures(&aws, namespaces).await?;
    let run_config = RunConfig {
        namespaces,
        ..config.clone()
    };
    let manifests: Vec<Value> = (0..n)
        .map(|i| manifest(&run_config, &fixtures, i))
        .collect();
    let creates = manifests
        .iter()
        .filter(|m| m["spec"]["endpoint"]["create"].is_object())
        .count();

    let operator = OperatorProcess::start(config, &role_arn)?;
    let pid = operator.pid();
    // Let start-up finish (first list, AWS clients) before the idle figure.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let idle_rss_mib = proc_status_mib(pid, "VmRSS")?;
    let started = operator.metrics()?;

    // Watch for Ready before the first create.
    let timeline = Arc::new(Mutex::new(Timeline::default()));
    let objects: Api<PrivateApi> = Api::all(client.clone());
    let watch_config = watcher::Config::default().labels(&format!("{RUN_LABEL}={}", config.run_id));
    let watch_timeline = timeline.clone();
    let watch_task = tokio::spawn(async move {
        let mut stream = watcher(objects, watch_config).applied_objects().boxed();
        while let Some(item) = stream.next().await {
            let Ok(object) = item else { continue };
            if is_ready(&object) {
                let mut timeline = watch_timeline.lock().unwrap_or_else(|p| p.into_inner());
                timeline
                    .ready
                    .entry(object_key(&object))
                    .or_insert_with(Instant::now);
            }
        }
    });

    // Create the objects, CLIENT_PARALLELISM at a time.
    let create_results: Vec<Result<()>> = futures::stream::iter(manifests.iter())
        .map(|manifest| {
            let client = client.clone();
            let timeline = timeline.clone();
            async move {
                let key = format!(
                    "{}/{}",
                    manifest["metadata"]["namespace"]
                        .as_str()
                        .unwrap_or_default(),
                    manifest["metadata"]["name"].as_str().unwrap_or_default()
                );
                timeline
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .applied
                    .insert(key, Instant::now());
                kubectl_style_create(&client, manifest).await
            }
        })
        .buffer_unordered(CLIENT_PARALLELISM)
        .collect()
        .await;
    for result in create_results {
        result?;
    }

    // Every object Ready.
    let deadline = Instant::now() + config.ready_timeout;
    let mut operator = operator;
    loop {
        let ready = timeline
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .ready
            .len();
        if ready >= n {
            break;
        }
        operator.check_alive()?;
        if Instant::now() > deadline {
            return Err(BenchError::Timeout(format!(
                "{ready} of {n} objects Ready after {:?}; operator log: {}",
                config.ready_timeout,
                operator.log.display()
            )));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let at_ready = operator.metrics()?;
    let create_cpu_s = proc_cpu_seconds(pid)?;
    let create = at_ready.since(&started);

    let (ready_all_s, mut per_object_s) = {
        let timeline = timeline.lock().unwrap_or_else(|p| p.into_inner());
        let first_apply = timeline.applied.values().min().copied();
        let last_ready = timeline.ready.values().max().copied();
        let all = match (first_apply, last_ready) {
            (Some(first), Some(last)) => last.saturating_duration_since(first).as_secs_f64(),
            _ => 0.0,
        };
        let each: Vec<f64> = timeline
            .ready
            .iter()
            .filter_map(|(key, ready)| {
                let applied = timeline.applied.get(key)?;
                Some(ready.saturating_duration_since(*applied).as_secs_f64())
            })
            .collect();
        (all, each)
    };
    per_object_s.sort_by(|a, b| a.total_cmp(b));

    // Whatever the create left queued (e.g. the reconcile after the last status write) finishes.
    wait_quiet(&operator, Duration::from_secs(3), Duration::from_secs(300)).await?;

    // One steady-state reconcile of every object: a metadata change (an annotation) makes the
    // controller reconcile it, with nothing to change in AWS.
    let before_steady = operator.metrics()?;
    let steady_started = Instant::now();
    let poke = short_unique();
    let poke_results: Vec<Result<()>> = futures::stream::iter(manifests.iter())
        .map(|manifest| {
            let client = client.clone();
            let poke = poke.clone();
            async move {
                let namespace = manifest["metadata"]["namespace"]
                    .as_str()
                    .unwrap_or_default();
                let name = manifest["metadata"]["name"].as_str().unwrap_or_default();
                let api: Api<PrivateApi> = Api::namespaced(client, namespace);
                let patch = json!({"metadata": {"annotations": {"papi-bench/poke": poke}}});
                api.patch(name, &PatchParams::default(), &Patch::Merge(&patch))
                    .await?;
                Ok(())
            }
        })
        .buffer_unordered(CLIENT_PARALLELISM)
        .collect()
        .await;
    for result in poke_results {
        result?;
    }
    let steady_deadline = Instant::now() + config.ready_timeout;
    loop {
        let now = operator.metrics()?;
        if now.reconciles >= before_steady.reconciles + n as u64 {
            break;
        }
        operator.check_alive()?;
        if Instant::now() > steady_deadline {
            return Err(BenchError::Timeout(format!(
                "{} of {n} objects reconciled after the poke",
                now.reconciles - before_steady.reconciles
            )));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    wait_quiet(&operator, Duration::from_secs(3), Duration::from_secs(300)).await?;
    let after_steady = operator.metrics()?;
    let steady = after_steady.since(&before_steady);
    // The quiet period at the end is not part of the steady-state reconcile.
    let steady_s = steady_started.elapsed().as_secs_f64() - 3.0;

    let peak_rss_mib = proc_status_mib(pid, "VmHWM")?;
    let final_rss_mib = proc_status_mib(pid, "VmRSS")?;
    let cpu_s = proc_cpu_seconds(pid)?;
    let whole = after_steady.since(&started);
    watch_task.abort();
    drop(operator);

    let kib_per_object = |mib: f64| round((mib - idle_rss_mib) * 1024.0 / n.max(1) as f64, 1);
    let mut setup = BTreeMap::new();
    setup.insert("namespaces".into(), json!(namespaces));
    setup.insert("endpoint_create_objects".into(), json!(creates));
    setup.insert("endpoint_id_objects".into(), json!(n - creates));
    setup.insert(
        "operator_concurrency".into(),
        json!(config.concurrency.map(u64::from)),
    );
    setup.insert(
        "operator_extra_args".into(),
        json!(
            pacing_args(config)
                .into_iter()
                .chain(config.extra_operator_args.iter().cloned())
                .collect::<Vec<_>>()
        ),
    );
    for (key, var) in [
        (
            "moto_endpoint_pending_s",
            "PAPI_MOTO_ENDPOINT_PENDING_SECONDS",
        ),
        (
            "moto_function_pending_s",
            "PAPI_MOTO_FUNCTION_PENDING_SECONDS",
        ),
    ] {
        setup.insert(
            key.into(),
            json!(std::env::var(var).ok().and_then(|v| v.parse::<f64>().ok())),
        );
    }
    setup.insert("load_average_at_start".into(), json!(load_at_start));
    setup.insert(
        "through_fault_proxy".into(),
        json!(config.operator_aws_endpoint.is_some()),
    );
    setup.insert(
        "quotas".into(),
        config.quotas.clone().unwrap_or(Value::Null),
    );
    for (key, value) in &config.mode {
        setup.insert(key.clone(), value.clone());
    }

    let steady_by_service = steady.by_service(n);
    let service = |name: &str| steady_by_service.get(name).copied().unwrap_or(0.0);
    let throttles = match (&config.faults_url, &config.quotas) {
        (Some(faults), Some(_)) => fault_stats(faults)?["throttled_by_quota_total"]
            .as_u64()
            .unwrap_or(0),
        _ => whole.throttled(),
    };
    let quota_bound = config.quotas.as_ref().map(|quotas| {
        let scale = quotas["scale"].as_f64().unwrap_or(1.0);
        // The quotas bound the operator at the share it was given.
        let args: Vec<String> = pacing_args(config)
            .into_iter()
            .chain(config.extra_operator_args.iter().cloned())
            .collect();
        let share = args
            .iter()
            .position(|a| a == "--aws-quota-share")
            .and_then(|i| args.get(i + 1))
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(1.0);
        round(quota_bound_s(n, creates, scale, share), 1)
    });
    Ok(RunResult {
        apigw_calls_per_object: service("API Gateway"),
        lambda_calls_per_object: service("Lambda"),
        ec2_calls_per_object: service("EC2"),
        throttles,
        quota_bound_s: quota_bound,
        ready_over_bound: quota_bound
            .filter(|bound| *bound > 0.0)
            .map(|bound| round(ready_all_s / bound, 3)),
        n,
        latency_ms: config.latency_ms,
        ready_all_s: round(ready_all_s, 3),
        ready_p50_s: round(percentile(&per_object_s, 50.0), 3),
        ready_p95_s: round(percentile(&per_object_s, 95.0), 3),
        ready_max_s: round(per_object_s.last().copied().unwrap_or(0.0), 3),
        create_calls_per_object: create.per_object(n),
        create_calls_by_operation: create.by_operation(n),
        create_calls_by_service: create.by_service(n),
        steady_calls_per_object: steady.per_object(n),
        steady_calls_by_operation: steady.by_operation(n),
        steady_calls_by_service: steady_by_service.clone(),
        throttled_calls: whole.throttled(),
        create_reconciles: create.reconciles,
        steady_reconciles: steady.reconciles,
        idle_rss_mib: round(idle_rss_mib, 1),
        peak_rss_mib: round(peak_rss_mib, 1),
        final_rss_mib: round(final_rss_mib, 1),
        rss_per_object_kib: kib_per_object(peak_rss_mib),
        final_rss_per_object_kib: kib_per_object(final_rss_mib),
        cpu_s: round(cpu_s, 2),
        create_cpu_s: round(create_cpu_s, 2),
        steady_s: round(steady_s.max(0.0), 3),
        setup,
        extra: BTreeMap::new(),
    })
}

// ---------------------------------------------------------------------------------------------
// Report
// ---------------------------------------------------------------------------------------------

/// The results file: commit, date, machine, runs.
pub fn report(commit: &str, date: &str, runs: &[RunResult]) -> Result<Value> {
    Ok(json!({
        "commit": commit,
        "date": date,
        "machine": machine(),
        "runs": serde_json::to_value(runs)?,
    }))
}

/// The markdown table of a results file.
pub fn markdown(results: &Value) -> String {
    let mut out = String::new();
    let machine = &results["machine"];
    out.push_str(&format!(
        "# Benchmark {} (commit {})\n\nMachine: {} CPUs, {}, {}. Method: [bench/README.md](../README.md).\n\n",
        results["date"].as_str().unwrap_or_default(),
        results["commit"].as_str().unwrap_or_default(),
        machine["cpus"],
        machine["model"].as_str().unwrap_or_default(),
        machine["memory"].as_str().unwrap_or_default(),
    ));
    out.push_str("| N | latency ms | all Ready s | p50 s | p95 s | max s | create reads/obj | create writes/obj | steady reads/obj | steady writes/obj | peak RSS MiB | RSS/obj KiB | CPU s |\n");
    out.push_str("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    let empty = Vec::new();
    let runs = results["runs"].as_array().unwrap_or(&empty);
    for run in runs {
        let num = |v: &Value| match v.as_f64() {
            Some(x) => format!("{x}"),
            None => "–".into(),
        };
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |\n",
            num(&run["n"]),
            num(&run["latency_ms"]),
            num(&run["ready_all_s"]),
            num(&run["ready_p50_s"]),
            num(&run["ready_p95_s"]),
            num(&run["ready_max_s"]),
            num(&run["create_calls_per_object"]["reads"]),
            num(&run["create_calls_per_object"]["writes"]),
            num(&run["steady_calls_per_object"]["reads"]),
            num(&run["steady_calls_per_object"]["writes"]),
            num(&run["peak_rss_mib"]),
            num(&run["rss_per_object_kib"]),
            num(&run["cpu_s"]),
        ));
    }
    out.push_str("\nQuotas (steady-state calls per object by service; throttling answers; time to Ready against the bound the quotas set):\n\n");
    out.push_str("| N | latency ms | API Gateway/obj | Lambda/obj | EC2/obj | throttles | bound s | all Ready / bound |\n");
    out.push_str("|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    for run in runs {
        let num = |v: &Value| match v.as_f64() {
            Some(x) => format!("{x}"),
            None => "–".into(),
        };
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} | {} |\n",
            num(&run["n"]),
            num(&run["latency_ms"]),
            num(&run["apigw_calls_per_object"]),
            num(&run["lambda_calls_per_object"]),
            num(&run["ec2_calls_per_object"]),
            num(&run["throttles"]),
            num(&run["quota_bound_s"]),
            num(&run["ready_over_bound"]),
        ));
    }
    out.push_str("\nSteady-state calls per object by operation:\n\n");
    for run in runs {
        let ops = run["steady_calls_by_operation"]
            .as_object()
            .map(|m| {
                m.iter()
                    .map(|(k, v)| format!("{k} {v}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .unwrap_or_default();
        out.push_str(&format!(
            "- N={} latency {} ms: {ops}\n",
            run["n"], run["latency_ms"]
        ));
    }
    out.push_str("\nCreate calls per object by operation:\n\n");
    for run in runs {
        let ops = run["create_calls_by_operation"]
            .as_object()
            .map(|m| {
                m.iter()
                    .map(|(k, v)| format!("{k} {v}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .unwrap_or_default();
        out.push_str(&format!(
            "- N={} latency {} ms: {ops}\n",
            run["n"], run["latency_ms"]
        ));
    }
    out
}

/// Write `<dir>/<date>-<commit>.json` and `.md`; returns both paths.
pub fn write_results(dir: &Path, results: &Value) -> Result<(PathBuf, PathBuf)> {
    std::fs::create_dir_all(dir)?;
    let stem = format!(
        "{}-{}",
        results["date"].as_str().unwrap_or("undated"),
        results["commit"].as_str().unwrap_or("unknown")
    );
    let json_path = dir.join(format!("{stem}.json"));
    let md_path = dir.join(format!("{stem}.md"));
    std::fs::write(&json_path, serde_json::to_string_pretty(results)? + "\n")?;
    std::fs::write(&md_path, markdown(results))?;
    Ok((json_path, md_path))
}
