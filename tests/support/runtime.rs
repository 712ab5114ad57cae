//! Helpers for the runtime tests: signals and exit codes of the operator process, its metrics and
//! readiness, the Lease, and a connection gate in front of the API server.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Command, ExitStatus};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde_json::Value;

use super::{Operator, kubectl_raw, poll};

/// The operator's Lease (its default name).
pub const LEASE: &str = "privateapi-operator";

/// Wait until `operator` holds the lease: the Lease names it and its leader gauge is 1.
pub fn wait_leader(namespace: &str, operator: &Operator, timeout: Duration) {
    let identity = operator.identity();
    poll::until(
        &format!("{identity} to hold the lease"),
        timeout,
        Duration::from_millis(200),
        || {
            lease_holder(namespace, LEASE).as_deref() == Some(identity.as_str())
                && operator.is_leader()
        },
    );
}

/// Wait until `operator` is a ready standby (healthy, not leading).
pub fn wait_standby(operator: &Operator) {
    poll::until(
        "the standby to be ready",
        Duration::from_secs(60),
        Duration::from_millis(200),
        || {
            let (code, body) = operator.admin_status("/readyz");
            code == 200 && body.contains("standby")
        },
    );
    assert!(!operator.is_leader());
    assert_eq!(operator.admin_status("/healthz").0, 200);
}

impl Operator {
    /// Its working directory (log, admin address file).
    pub fn dir(&self) -> &std::path::Path {
        &self.dir
    }

    /// Its identity in the Lease (tests/support gives each Operator its own, kept across restarts,
    /// as a pod keeps its name when its container restarts).
    pub fn identity(&self) -> String {
        self.dir
            .file_name()
            .map(|name| name.to_string_lossy().into_owned())
            .unwrap_or_default()
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(|c| c.id()).expect("running")
    }

    /// Send SIGTERM (as the kubelet does to stop a pod) and wait for the exit, at most `timeout`.
    pub fn terminate(&mut self, timeout: Duration) -> ExitStatus {
        let pid = self.pid().to_string();
        let sent = Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill runs");
        assert!(sent.success(), "kill -TERM {pid} failed");
        let mut child = self.child.take().expect("running");
        match poll::within(timeout, Duration::from_millis(100), || {
            child.try_wait().expect("try_wait")
        }) {
            Ok(status) => status,
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "the operator did not exit within {timeout:?} of SIGTERM: {}",
                    self.log()
                );
            }
        }
    }

    /// Start the process again after `kill` or `terminate` (same flags, same identity).
    pub fn start_again(&mut self) {
        assert!(self.child.is_none(), "still running");
        self.spawn();
    }

    /// HTTP status code and body of an admin path.
    pub fn admin_status(&self, path: &str) -> (u16, String) {
        let response = self.admin_get(path);
        let code = response
            .split_whitespace()
            .nth(1)
            .and_then(|code| code.parse().ok())
            .unwrap_or(0);
        let body = response
            .split_once("\r\n\r\n")
            .map(|(_, body)| body.to_string())
            .unwrap_or_default();
        (code, body)
    }

    pub fn metrics(&self) -> Metrics {
        Metrics::parse(&self.admin_status("/metrics").1)
    }

    /// The leader gauge.
    pub fn is_leader(&self) -> bool {
        self.metrics().value("privateapi_leader", &[]) == Some(1.0)
    }
}

/// One sample line of the Prometheus / OpenMetrics text format.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

/// A parsed `/metrics` page: HELP and TYPE per family, and the samples in order.
#[derive(Debug, Default)]
pub struct Metrics {
    pub help: BTreeMap<String, String>,
    pub types: BTreeMap<String, String>,
    pub samples: Vec<Sample>,
}

impl Metrics {
    /// Parse the text format; panics on a line it cannot read (the test wants a valid page).
    pub fn parse(text: &str) -> Self {
        Self::try_parse(text).unwrap_or_else(|why| panic!("{why}"))
    }

    /// Parse the text format; `Err` says which line it cannot read. Never panics (it also runs in
    /// `Drop`, where a second panic aborts the test binary).
    pub fn try_parse(text: &str) -> Result<Self, String> {
        let mut metrics = Metrics::default();
        let mut ended = false;
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            let bad = |what: &str| format!("{what} in: {line}");
            if ended {
                return Err(bad("a line after # EOF"));
            }
            if let Some(rest) = line.strip_prefix("# HELP ") {
                let (name, help) = rest.split_once(' ').ok_or_else(|| bad("HELP name text"))?;
                metrics.help.insert(name.to_string(), help.to_string());
            } else if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (name, kind) = rest.split_once(' ').ok_or_else(|| bad("TYPE name type"))?;
                metrics.types.insert(name.to_string(), kind.to_string());
            } else if line == "# EOF" {
                ended = true;
            } else if line.starts_with("# UNIT ") {
                // OpenMetrics: a family's unit; the name says it already.
            } else if line.starts_with('#') {
                return Err(bad("unexpected comment"));
            } else {
                let (series, value) = line
                    .rsplit_once(' ')
                    .ok_or_else(|| bad("sample: series value"))?;
                let value: f64 = value.parse().map_err(|_| bad("not a number"))?;
                let (name, labels) = match series.split_once('{') {
                    Some((name, labels)) => {
                        let labels = labels
                            .strip_suffix('}')
                            .ok_or_else(|| bad("labels end with }"))?;
                        let labels = labels
                            .split("\",")
                            .filter(|pair| !pair.is_empty())
                            .map(|pair| {
                                let (key, value) = pair
                                    .split_once("=\"")
                                    .ok_or_else(|| bad("label=\"value\""))?;
                                Ok((key.to_string(), value.trim_end_matches('"').to_string()))
                            })
                            .collect::<Result<BTreeMap<_, _>, String>>()?;
                        (name.to_string(), labels)
                    }
                    None => (series.to_string(), BTreeMap::new()),
                };
                metrics.samples.push(Sample {
                    name,
                    labels,
                    value,
                });
            }
        }
        Ok(metrics)
    }

    /// The declared family a sample belongs to: its own name, or the counter it is the `_total`
    /// of, or the histogram it is a `_bucket`, `_sum` or `_count` of (OpenMetrics names).
    pub fn family_of(&self, sample: &str) -> Option<&str> {
        if let Some((name, _)) = self.types.get_key_value(sample) {
            return Some(name);
        }
        [
            ("_total", "counter"),
            ("_bucket", "histogram"),
            ("_sum", "histogram"),
            ("_count", "histogram"),
        ]
        .iter()
        .find_map(|(suffix, kind)| {
            let base = sample.strip_suffix(suffix)?;
            let (name, declared) = self.types.get_key_value(base)?;
            (declared == kind).then_some(name.as_str())
        })
    }

    /// Samples of `name` whose labels include every pair of `labels`.
    pub fn find(&self, name: &str, labels: &[(&str, &str)]) -> Vec<&Sample> {
        self.samples
            .iter()
            .filter(|s| s.name == name)
            .filter(|s| {
                labels
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
            })
            .collect()
    }

    /// The single sample of `name` with exactly these labels.
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        self.find(name, labels)
            .into_iter()
            .find(|s| s.labels.len() == labels.len())
            .map(|s| s.value)
    }

    /// Sum of every sample of `name` (e.g. all results of a counter).
    pub fn sum(&self, name: &str) -> f64 {
        self.find(name, &[]).iter().map(|s| s.value).sum()
    }
}

/// The Lease as JSON, if it exists.
pub fn get_lease(namespace: &str, name: &str) -> Option<Value> {
    let out = kubectl_raw(&["get", "lease", name, "-n", namespace, "-o", "json"], None);
    if !out.status.success() {
        return None;
    }
    serde_json::from_slice(&out.stdout).ok()
}

/// `spec.holderIdentity` of the Lease.
pub fn lease_holder(namespace: &str, name: &str) -> Option<String> {
    get_lease(namespace, name)?["spec"]["holderIdentity"]
        .as_str()
        .map(str::to_string)
}

/// A TCP gate on 127.0.0.1 in front of an address: connections wait (unanswered) until the gate
/// opens, then are relayed byte for byte (TLS passes through). Stopped when dropped.
pub struct Gate {
    pub port: u16,
    open: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
}

impl Gate {
    pub fn new(upstream: &str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind gate");
        listener.set_nonblocking(true).expect("nonblocking");
        let port = listener.local_addr().expect("addr").port();
        let open = Arc::new(AtomicBool::new(false));
        let stop = Arc::new(AtomicBool::new(false));
        let upstream = upstream.to_string();
        let (gate_open, gate_stop) = (open.clone(), stop.clone());
        std::thread::spawn(move || {
            while !gate_stop.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((client, _)) => {
                        let (open, stop, upstream) =
                            (gate_open.clone(), gate_stop.clone(), upstream.clone());
                        std::thread::spawn(move || relay(client, &upstream, &open, &stop));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(20)),
                }
            }
        });
        Self { port, open, stop }
    }

    pub fn open(&self) {
        self.open.store(true, Ordering::Relaxed);
    }
}

impl Drop for Gate {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn relay(client: TcpStream, upstream: &str, open: &AtomicBool, stop: &AtomicBool) {
    while !open.load(Ordering::Relaxed) {
        if stop.load(Ordering::Relaxed) {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let Ok(server) = TcpStream::connect(upstream) else {
        return;
    };
    let _ = client.set_nonblocking(false);
    let pipe = |mut from: TcpStream, mut to: TcpStream| {
        std::thread::spawn(move || {
            let mut buffer = [0u8; 16 * 1024];
            loop {
                match from.read(&mut buffer) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        if to.write_all(&buffer[..n]).is_err() {
                            break;
                        }
                    }
                }
            }
            let _ = to.shutdown(std::net::Shutdown::Write);
        })
    };
    let (Ok(client2), Ok(server2)) = (client.try_clone(), server.try_clone()) else {
        return;
    };
    let upstream_to_client = pipe(server, client2);
    let client_to_upstream = pipe(client, server2);
    let _ = upstream_to_client.join();
    let _ = client_to_upstream.join();
}

/// A copy of the test bed's kubeconfig whose server is `127.0.0.1:port` (e.g. a [`Gate`]); the API
/// server's certificate names 127.0.0.1, so TLS still verifies.
pub fn kubeconfig_via(port: u16, dir: &std::path::Path) -> PathBuf {
    let original = std::env::var("KUBECONFIG").expect("KUBECONFIG from the test bed");
    let server = std::env::var("PAPI_KUBE_APISERVER_URL").expect("PAPI_KUBE_APISERVER_URL");
    let text = std::fs::read_to_string(&original).expect("read kubeconfig");
    assert!(text.contains(&server), "kubeconfig names {server}");
    let path = dir.join("kubeconfig-via-gate");
    std::fs::write(
        &path,
        text.replace(&server, &format!("https://127.0.0.1:{port}")),
    )
    .expect("write kubeconfig");
    path
}

/// `host:port` of the API server.
pub fn apiserver_address() -> String {
    let server = std::env::var("PAPI_KUBE_APISERVER_URL").expect("PAPI_KUBE_APISERVER_URL");
    server.trim_start_matches("https://").to_string()
}
