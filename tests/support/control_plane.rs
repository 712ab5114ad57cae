//! Control planes of a test's own (etcd + kube-apiserver, started by the test bed's scripts), for
//! the tests that lose, rebuild or restart a cluster: doing that to the shared test bed would stop
//! every other test, so they do it to their own.
//!
//! [`ControlPlane::talk_to`] makes the support helpers of the calling thread (`kubectl`, `apply`,
//! the operators started by [`super::Operator`]) use this control plane until the guard is
//! dropped. A test that uses it runs on one thread (`#[tokio::test]`, current-thread flavour).

use std::cell::RefCell;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use serde_json::Value;

use super::{repo_path, unique};

thread_local! {
    static KUBECONFIG: RefCell<Option<PathBuf>> = const { RefCell::new(None) };
}

/// The kubeconfig this thread's support helpers use instead of the test bed's, if any.
pub fn kubeconfig_override() -> Option<PathBuf> {
    KUBECONFIG.with(|k| k.borrow().clone())
}

/// While alive, this thread's support helpers talk to another control plane.
pub struct TalkingTo {
    previous: Option<PathBuf>,
}

impl Drop for TalkingTo {
    fn drop(&mut self) {
        let previous = self.previous.take();
        KUBECONFIG.with(|k| *k.borrow_mut() = previous);
    }
}

/// A control plane of the test's own, with the CRD installed; stopped and removed on drop.
pub struct ControlPlane {
    pub dir: PathBuf,
    pub kubeconfig: PathBuf,
    running: bool,
}

impl ControlPlane {
    pub fn start() -> Self {
        let dir = std::env::temp_dir().join(unique("papi-cp"));
        let status = Command::new("bash")
            .arg(repo_path("testbed/k8s/start.sh"))
            .arg(&dir)
            .status()
            .expect("start.sh runs");
        assert!(status.success(), "testbed/k8s/start.sh {}", dir.display());
        let plane = Self {
            kubeconfig: dir.join("kubeconfig"),
            dir,
            running: true,
        };
        plane.kubectl(&[
            "apply",
            "--server-side",
            "-f",
            &repo_path("crds/privateapi.yaml").to_string_lossy(),
        ]);
        plane.kubectl(&[
            "wait",
            "--for=condition=established",
            "crd/privateapis.privateapi.io",
            "--timeout=60s",
        ]);
        plane
    }

    /// Make this thread's support helpers use this control plane until the guard is dropped.
    pub fn talk_to(&self) -> TalkingTo {
        let previous = KUBECONFIG.with(|k| k.borrow_mut().replace(self.kubeconfig.clone()));
        TalkingTo { previous }
    }

    /// Stop kube-apiserver alone for `down_seconds` and start it again on the same port (etcd
    /// keeps the data): `testbed/k8s/restart-apiserver.sh`.
    pub fn restart_apiserver(&self, down_seconds: u32) {
        let status = Command::new("bash")
            .arg(repo_path("testbed/k8s/restart-apiserver.sh"))
            .arg(&self.dir)
            .arg(down_seconds.to_string())
            .status()
            .expect("restart-apiserver.sh runs");
        assert!(status.success(), "restart-apiserver.sh failed");
    }

    pub fn kubectl_stdin(&self, args: &[&str], stdin: Option<&str>) -> String {
        let mut child = Command::new("kubectl")
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("kubectl runs");
        if let Some(input) = stdin {
            use std::io::Write;
            child
                .stdin
                .take()
                .expect("stdin")
                .write_all(input.as_bytes())
                .expect("write stdin");
        }
        drop(child.stdin.take());
        let out = child.wait_with_output().expect("kubectl finishes");
        assert!(
            out.status.success(),
            "kubectl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    pub fn kubectl(&self, args: &[&str]) -> String {
        self.kubectl_stdin(args, None)
    }

    pub fn object(&self, namespace: &str, name: &str) -> Value {
        serde_json::from_str(&self.kubectl(&[
            "get",
            "privateapi",
            name,
            "-n",
            namespace,
            "-o",
            "json",
        ]))
        .expect("object JSON")
    }

    pub fn stop(&mut self) {
        if self.running {
            let _ = Command::new("bash")
                .arg(repo_path("testbed/k8s/stop.sh"))
                .arg(&self.dir)
                .status();
            self.running = false;
        }
    }
}

impl Drop for ControlPlane {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
