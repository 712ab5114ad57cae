//! Curl "from" a VPC or the internet: `testbed/netns/run.sh` around `curl`, in the test bed's
//! network namespaces (see testbed/CONTRACT.md, "Networks"), with the bed's CA.

use std::path::PathBuf;
use std::process::Command;

use super::{repo_path, require_testbed};

/// Where a request comes from.
#[derive(Clone, Debug)]
pub enum From {
    /// An instance in `vpc` with these security groups (none: the VPC's default group).
    Vpc { vpc: String, groups: Vec<String> },
    /// The internet namespace.
    Internet,
}

impl From {
    pub fn vpc(vpc: &str, groups: &[&str]) -> Self {
        From::Vpc {
            vpc: vpc.to_string(),
            groups: groups.iter().map(|g| g.to_string()).collect(),
        }
    }

    pub fn args(&self) -> Vec<String> {
        match self {
            From::Internet => vec!["--internet".into()],
            From::Vpc { vpc, groups } => {
                let mut a = vec!["--vpc".to_string(), vpc.clone()];
                for g in groups {
                    a.push("--security-group".into());
                    a.push(g.clone());
                }
                a
            }
        }
    }
}

/// What curl did: its exit code (0, 6 for a name that does not resolve, 28 for a time-out...),
/// the HTTP status (0 when there was no answer), the body and curl's own messages.
#[derive(Debug)]
pub struct Curl {
    pub exit: i32,
    pub status: u16,
    pub body: String,
    pub stderr: String,
}

/// The test bed's CA ($PAPI_TESTBED_DIR/ca.pem), written by the data plane. Panics with a
/// message when this test bed has no networks (not root, or PAPI_NETNS=0).
pub fn ca() -> PathBuf {
    require_testbed();
    let dir = std::env::var("PAPI_TESTBED_DIR").expect("PAPI_TESTBED_DIR");
    let env = PathBuf::from(&dir).join("netns.env");
    assert!(
        env.exists(),
        "this test bed has no networks ({} missing): run as root through testbed/with-testbed.sh without PAPI_NETNS=0",
        env.display()
    );
    PathBuf::from(dir).join("ca.pem")
}

/// The address of the namespace of `from` (made if it does not exist yet), on its veth pair:
/// reachable from the host.
pub fn address_of(from: &From) -> String {
    require_testbed();
    let out = Command::new(repo_path("testbed/netns/run.sh"))
        .args(from.args())
        .arg("--print-name")
        .output()
        .expect("testbed/netns/run.sh");
    assert!(
        out.status.success(),
        "run.sh --print-name: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let name = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let dir = std::env::var("PAPI_TESTBED_DIR").expect("PAPI_TESTBED_DIR");
    let record = std::fs::read_to_string(PathBuf::from(dir).join(format!("netns/ns/{name}.json")))
        .expect("the namespace's record");
    let record: serde_json::Value = serde_json::from_str(&record).expect("JSON");
    record["address"].as_str().expect("address").to_string()
}

/// `curl -sS --cacert CA -m 10 --connect-timeout 3 EXTRA... URL` from `from`.
pub fn curl(from: &From, url: &str, extra: &[&str]) -> Curl {
    let ca = ca();
    let mut cmd = Command::new(repo_path("testbed/netns/run.sh"));
    cmd.args(from.args())
        .arg("--")
        .arg("curl")
        .args(["-sS", "-m", "10", "--connect-timeout", "3", "--cacert"])
        .arg(&ca)
        .args(["-w", "\n%{http_code}"])
        .args(extra)
        .arg(url);
    let out = cmd.output().expect("testbed/netns/run.sh");
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let (body, code) = stdout.rsplit_once('\n').unwrap_or(("", stdout.as_str()));
    Curl {
        exit: out.status.code().unwrap_or(-1),
        status: code.trim().parse().unwrap_or(0),
        body: body.to_string(),
        stderr: String::from_utf8_lossy(&out.stderr).to_string(),
    }
}

/// [`curl`] on a tokio worker that may block.
pub async fn curl_async(from: &From, url: &str, extra: &[&str]) -> Curl {
    let (from, url) = (from.clone(), url.to_string());
    let extra: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
    tokio::task::spawn_blocking(move || {
        let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
        curl(&from, &url, &extra)
    })
    .await
    .expect("curl task")
}

/// A client calling an API in a loop from a namespace, as an application in the VPC does
/// (`testbed/netns/traffic.py`): a new connection per request, `rate` requests a second, each
/// answer recorded with its time. Dropping it stops the client.
pub struct Traffic {
    child: Option<std::process::Child>,
    url_file: PathBuf,
    out: PathBuf,
    _dir: tempfile::TempDir,
}

/// What the client got in a window of time.
#[derive(Debug, Default, Clone)]
pub struct TrafficReport {
    pub sent: usize,
    pub failed: usize,
    /// The first few failures: status and error.
    pub failures: Vec<String>,
}

/// Seconds since the epoch, as the client stamps its requests.
pub fn epoch_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or_default()
}

impl Traffic {
    pub fn start(from: &From, url: &str, rate: f64) -> Self {
        let ca = ca();
        let dir = tempfile::tempdir().expect("temp dir");
        let url_file = dir.path().join("url");
        let out = dir.path().join("samples.jsonl");
        std::fs::write(&url_file, url).expect("url file");
        let child = Command::new(repo_path("testbed/netns/run.sh"))
            .args(from.args())
            .arg("--")
            .arg("python3")
            .arg(repo_path("testbed/netns/traffic.py"))
            .arg("--url-file")
            .arg(&url_file)
            .arg("--out")
            .arg(&out)
            .arg("--cacert")
            .arg(&ca)
            .arg("--rate")
            .arg(rate.to_string())
            .spawn()
            .expect("testbed/netns/traffic.py");
        Self {
            child: Some(child),
            url_file,
            out,
            _dir: dir,
        }
    }

    /// Call `url` from now on (a client that follows `status.url`).
    pub fn follow(&self, url: &str) {
        let next = self.url_file.with_extension("next");
        std::fs::write(&next, url).expect("url file");
        std::fs::rename(&next, &self.url_file).expect("url file");
    }

    /// The requests started in [from, to) (epoch seconds): sent, and failed (not 2xx).
    pub fn between(&self, from: f64, to: f64) -> TrafficReport {
        let text = std::fs::read_to_string(&self.out).unwrap_or_default();
        let mut report = TrafficReport::default();
        for line in text.lines() {
            let Ok(sample) = serde_json::from_str::<serde_json::Value>(line) else {
                continue;
            };
            let t = sample["t"].as_f64().unwrap_or_default();
            if t < from || t >= to {
                continue;
            }
            report.sent += 1;
            let status = sample["status"].as_u64().unwrap_or_default();
            if !(200..300).contains(&status) {
                report.failed += 1;
                if report.failures.len() < 5 {
                    report.failures.push(format!(
                        "{status} {}",
                        sample["error"].as_str().unwrap_or_default()
                    ));
                }
            }
        }
        report
    }
}

impl Drop for Traffic {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.url_file);
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
