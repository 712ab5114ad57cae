//! The fault-injecting proxy (`testbed/faultproxy/`), one per test on its own port, between the
//! operator (or the test's own SDK clients) and the test bed's moto server; and what goes with it:
//! an operator started through the proxy, SDK clients through the proxy.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};

use super::{Operator, poll, unique};

/// A running `testbed/faultproxy/faultproxy.py`, stopped (SIGKILL) when dropped.
pub struct FaultProxy {
    child: Option<Child>,
    /// `http://127.0.0.1:PORT`: give it to clients as their `AWS_ENDPOINT_URL`.
    pub url: String,
    addr: String,
    dir: PathBuf,
}

impl FaultProxy {
    /// A proxy in front of the test bed's moto server (`AWS_ENDPOINT_URL`), RNG seeded with `seed`.
    pub fn start(seed: u64) -> Self {
        let upstream = std::env::var("AWS_ENDPOINT_URL")
            .expect("AWS_ENDPOINT_URL (the moto server): run through the test bed");
        Self::start_in_front_of(&upstream, seed)
    }

    pub fn start_in_front_of(upstream: &str, seed: u64) -> Self {
        let dir = std::env::temp_dir().join(unique("papi-faultproxy"));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let port_file = dir.join("port");
        let log = std::fs::File::create(dir.join("faultproxy.log")).expect("proxy log");
        let python = super::testbed_python();
        let script = super::repo_path("testbed/faultproxy/faultproxy.py");
        let child = Command::new(python)
            .arg(script)
            .arg("--upstream")
            .arg(upstream)
            .arg("--host")
            .arg("127.0.0.1")
            .arg("--port")
            .arg("0")
            .arg("--port-file")
            .arg(&port_file)
            .arg("--seed")
            .arg(seed.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::from(log.try_clone().expect("log handle")))
            .stderr(Stdio::from(log))
            .spawn()
            .expect("the fault proxy starts");
        let mut proxy = Self {
            child: Some(child),
            url: String::new(),
            addr: String::new(),
            dir,
        };
        let log = || std::fs::read_to_string(proxy.dir.join("faultproxy.log")).unwrap_or_default();
        let addr = poll::until(
            "the fault proxy to listen",
            Duration::from_secs(30),
            Duration::from_millis(50),
            || {
                if let Some(child) = proxy.child.as_mut()
                    && let Ok(Some(status)) = child.try_wait()
                {
                    panic!("the fault proxy exited with {status}: {}", log());
                }
                std::fs::read_to_string(&port_file)
                    .ok()
                    .map(|port| port.trim().to_string())
                    .filter(|port| !port.is_empty())
                    .map(|port| format!("127.0.0.1:{port}"))
                    .ok_or_else(log)
            },
        );
        proxy.url = format!("http://{addr}");
        proxy.addr = addr;
        proxy
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("faultproxy.log")).unwrap_or_default()
    }

    /// One control request; the JSON answer. Panics on a non-200 answer (a malformed rule is a
    /// test bug).
    pub fn control(&self, method: &str, path: &str, body: Option<&Value>) -> Value {
        let (status, answer) = self.control_raw(method, path, body);
        assert_eq!(
            status, 200,
            "fault proxy {method} {path} answered {status}: {answer}"
        );
        answer
    }

    pub fn control_raw(&self, method: &str, path: &str, body: Option<&Value>) -> (u16, Value) {
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        let mut stream = TcpStream::connect(&self.addr).expect("fault proxy reachable");
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .expect("timeout");
        write!(
            stream,
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            self.addr,
            body.len()
        )
        .expect("control request");
        let mut response = String::new();
        stream
            .read_to_string(&mut response)
            .expect("control response");
        let status = response
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse::<u16>().ok())
            .unwrap_or(0);
        let answer = response
            .split_once("\r\n\r\n")
            .and_then(|(_, body)| serde_json::from_str(body).ok())
            .unwrap_or(Value::Null);
        (status, answer)
    }

    /// `PUT /__faults/rules`: replaces the rules (see testbed/faultproxy/README.md).
    pub fn set_rules(&self, rules: Value) {
        self.control("PUT", "/__faults/rules", Some(&rules));
    }

    pub fn clear_rules(&self) {
        self.set_rules(json!([]));
    }

    pub fn set_seed(&self, seed: u64) {
        self.control("PUT", "/__faults/seed", Some(&json!({ "seed": seed })));
    }

    /// `PUT /__faults/quotas`: token buckets `[{"service", "operation", "rate_per_s", "burst"}]`,
    /// rates multiplied by `scale`.
    pub fn set_quotas(&self, scale: f64, buckets: Value) {
        self.control(
            "PUT",
            "/__faults/quotas",
            Some(&json!({ "scale": scale, "buckets": buckets })),
        );
    }

    pub fn set_latency(&self, latency_ms: u64) {
        self.control(
            "PUT",
            "/__faults/latency",
            Some(&json!({ "latency_ms": latency_ms })),
        );
    }

    /// Forward the `k`-th successful mutating call from now on, then hold its response (and every
    /// later mutating call) until [`FaultProxy::release`].
    pub fn freeze_after_mutating(&self, k: u64) {
        self.control(
            "PUT",
            "/__faults/freeze_after_mutating",
            Some(&json!({ "k": k })),
        );
    }

    /// `DELETE /__faults/freeze`: held requests go on (those whose client is gone are dropped).
    pub fn release(&self) {
        self.control("DELETE", "/__faults/freeze", None);
    }

    pub fn stats(&self) -> Value {
        self.control("GET", "/__faults/stats", None)
    }

    /// The last calls seen (oldest first): `{"service", "operation", "mutating", "outcome"}`.
    pub fn calls(&self) -> Vec<Value> {
        self.control("GET", "/__faults/calls", None)["calls"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// `POST /__faults/reset`: no rules, quotas, latency or freeze; counters zeroed.
    pub fn reset(&self) {
        self.control("POST", "/__faults/reset", None);
    }

    /// Successful mutating calls forwarded since the last reset.
    pub fn mutating_forwarded(&self) -> u64 {
        self.stats()["mutating_forwarded"].as_u64().unwrap_or(0)
    }

    /// Injected faults since the last reset, all kinds.
    pub fn injected_total(&self) -> u64 {
        self.stats()["injected_total"]
            .as_object()
            .map(|kinds| kinds.values().filter_map(Value::as_u64).sum())
            .unwrap_or(0)
    }

    /// Wait until the proxy holds `n` calls; panic after `timeout`.
    pub async fn wait_held(&self, n: u64, timeout: Duration) {
        poll::until_async(
            &format!("the proxy to hold {n} calls"),
            timeout,
            Duration::from_millis(100),
            async || {
                let stats = self.stats();
                if stats["held"] == n {
                    Ok(())
                } else {
                    Err(stats.to_string())
                }
            },
        )
        .await;
    }

    /// Wait until a freeze took hold; false after `timeout`.
    pub fn wait_frozen(&self, timeout: Duration) -> bool {
        poll::within(timeout, Duration::from_millis(100), || {
            self.stats()["frozen"] == Value::Bool(true)
        })
        .is_ok()
    }

    /// SDK clients (the real ones, with the SDK's default retries) whose calls go through the
    /// proxy.
    pub async fn sdk_config(&self) -> aws_config::SdkConfig {
        super::sdk_config_loader()
            .endpoint_url(&self.url)
            .region(aws_config::Region::new(super::REGION))
            .load()
            .await
    }

    /// An operator watching `namespace` whose AWS calls all go through this proxy.
    pub fn start_operator(&self, namespace: &str, cluster: &str, extra: &[&str]) -> Operator {
        Operator::start_with_env(
            namespace,
            cluster,
            extra,
            &[("AWS_ENDPOINT_URL", self.url.as_str())],
        )
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let log = self.log();
            if !log.trim().is_empty() {
                eprintln!("---- fault proxy log ----\n{log}");
            }
        }
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Operator {
    /// SIGKILL the operator right after its `k`-th successful mutating AWS call from now on (the
    /// proxy holds that call's response so the operator never sees it), then start it again with
    /// the same arguments. Returns false (operator left running, nothing frozen) when the operator
    /// made fewer than `k` mutating calls within `timeout`.
    pub fn kill_after_mutating_call(
        &mut self,
        proxy: &FaultProxy,
        k: u64,
        timeout: Duration,
    ) -> bool {
        proxy.freeze_after_mutating(k);
        self.kill_when_frozen(proxy, timeout)
    }

    /// With a freeze armed (`proxy.freeze_after_mutating(k)` before the action whose k-th write
    /// matters): wait for it, SIGKILL the operator, end the freeze (its held calls never reach
    /// AWS) and start the operator again. False, operator untouched, when nothing froze.
    pub fn kill_when_frozen(&mut self, proxy: &FaultProxy, timeout: Duration) -> bool {
        let frozen = proxy.wait_frozen(timeout);
        if frozen {
            self.kill();
        }
        proxy.release();
        if frozen {
            self.spawn();
        }
        frozen
    }
}
