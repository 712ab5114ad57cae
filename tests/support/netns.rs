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

    fn args(&self) -> Vec<String> {
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
