//! The built `bootstrap` under the AWS Lambda Runtime Interface Emulator (RIE): the same Runtime
//! API protocol Lambda speaks. RIE execs `bootstrap` on the first invocation, with
//! `AWS_LAMBDA_RUNTIME_API` pointing at its own Runtime API; both of its listeners are bound to
//! 127.0.0.1 on free ports.
//!
//! Needs the test bed: `PAPI_RIE` names the emulator binary (testbed/rie/install.sh builds it).
//! Run it through `make test` (testbed/with-testbed.sh), or by hand:
//!
//! ```sh
//! testbed/rie/install.sh
//! PAPI_RIE=$HOME/.cache/privateapi-operator/bin/aws-lambda-rie PAPI_TESTBED=1 \
//!   CARGO_TARGET_DIR=$HOME/.cache/privateapi-operator/handler-target \
//!   cargo test -p privateapi-handler --test handler rie::
//! ```

use crate::fixture;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

const INVOKE_PATH: &str = "/2015-03-31/functions/function/invocations";

fn rie_binary() -> PathBuf {
    match std::env::var_os("PAPI_RIE") {
        Some(path) if !path.is_empty() => PathBuf::from(path),
        _ => panic!(
            "PAPI_RIE is not set: run through `make test` (testbed/with-testbed.sh), which builds \
             the Lambda Runtime Interface Emulator and sets it"
        ),
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// A running emulator; dropping it stops it (SIGTERM, which makes RIE kill the runtime's
/// process group too; SIGKILL if it lingers), also when the test panics.
struct Rie {
    child: Child,
    port: u16,
    runtime_api_port: u16,
    dir: PathBuf,
}

impl Rie {
    /// Starts RIE for the built bootstrap with exactly `env` (plus PATH) as the function's
    /// environment: RIE passes its own environment on to the function.
    fn start(name: &str, env: &[(&str, &str)]) -> Rie {
        let rie = rie_binary();
        let bootstrap = env!("CARGO_BIN_EXE_bootstrap");
        let dir =
            std::env::temp_dir().join(format!("papi-handler-rie-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("scratch dir");
        // Picking free ports and handing them over is racy: retry with others if RIE dies.
        for _attempt in 0..5 {
            let (port, runtime_api_port) = (free_port(), free_port());
            if port == runtime_api_port {
                continue;
            }
            let log = std::fs::File::create(dir.join("rie.log")).expect("log file");
            let mut cmd = Command::new(&rie);
            cmd.arg("--runtime-interface-emulator-address")
                .arg(format!("127.0.0.1:{port}"))
                .arg("--runtime-api-address")
                .arg(format!("127.0.0.1:{runtime_api_port}"))
                .arg("--log-level")
                .arg("info")
                .arg(bootstrap)
                .current_dir(&dir)
                .env_clear()
                .env("PATH", std::env::var_os("PATH").unwrap_or_default())
                .env("AWS_LAMBDA_FUNCTION_NAME", "privateapi-handler")
                .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
                .env("AWS_LAMBDA_FUNCTION_TIMEOUT", "30")
                .env("AWS_REGION", "us-east-1")
                .stdin(Stdio::null())
                .stdout(log.try_clone().expect("log file"))
                .stderr(log);
            for (k, v) in env {
                cmd.env(k, v);
            }
            let child = cmd
                .spawn()
                .unwrap_or_else(|e| panic!("cannot start {}: {e}", rie.display()));
            let mut rie = Rie {
                child,
                port,
                runtime_api_port,
                dir: dir.clone(),
            };
            if rie.wait_listening(Duration::from_secs(10)) {
                return rie;
            }
            eprintln!("RIE did not come up on port {port}:\n{}", rie.log());
            // Dropping `rie` stops it; try other ports.
        }
        panic!("the emulator did not start (see the logs above)");
    }

    fn wait_listening(&mut self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return false;
            }
            // Listening, and by this emulator: a free port handed over can be taken by another
            // test's emulator in between, and then a connect would reach that one.
            if listened_on_by(self.child.id(), self.port)
                && TcpStream::connect(("127.0.0.1", self.port)).is_ok()
            {
                return true;
            }
            sleep(Duration::from_millis(20));
        }
        false
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("rie.log")).unwrap_or_default()
    }

    /// Posts `payload` to RIE's invoke endpoint.
    fn invoke(&self, payload: &str) -> HttpResponse {
        post(self.port, INVOKE_PATH, payload)
            .unwrap_or_else(|e| panic!("invoke failed: {e}\nRIE log:\n{}", self.log()))
    }
}

impl Drop for Rie {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(self.child.id().to_string())
                .status();
            let deadline = Instant::now() + Duration::from_secs(5);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = self.child.try_wait() {
                    break;
                }
                sleep(Duration::from_millis(20));
            }
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// An HTTP response: status, headers (names lowercased), body.
struct HttpResponse {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

/// A minimal HTTP/1.1 POST (Connection: close), enough for RIE's invoke endpoint.
fn post(port: u16, path: &str, body: &str) -> std::io::Result<HttpResponse> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(60)))?;
    write!(
        stream,
        "POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    let bad = |what: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_owned());
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| bad("no end of headers"))?;
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut payload = raw[split + 4..].to_vec();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| bad("bad status line"))?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    if headers
        .iter()
        .any(|(k, v)| k == "transfer-encoding" && v.eq_ignore_ascii_case("chunked"))
    {
        payload = dechunk(&payload).ok_or_else(|| bad("bad chunked body"))?;
    }
    Ok(HttpResponse {
        status,
        headers,
        body: String::from_utf8_lossy(&payload).into_owned(),
    })
}

fn dechunk(mut data: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let line_end = data.windows(2).position(|w| w == b"\r\n")?;
        let size_field = std::str::from_utf8(&data[..line_end]).ok()?;
        let size = usize::from_str_radix(size_field.split(';').next()?.trim(), 16).ok()?;
        data = &data[line_end + 2..];
        if size == 0 {
            return Some(out);
        }
        out.extend_from_slice(data.get(..size)?);
        data = data.get(size + 2..)?;
    }
}

/// Checks one invocation's result: the API Gateway proxy response with `message`.
fn assert_proxy_response(rie: &Rie, event: &str, message: &str) {
    let HttpResponse {
        status,
        headers,
        body,
    } = rie.invoke(event);
    assert_eq!(status, 200, "{headers:?}\n{body}\nRIE log:\n{}", rie.log());
    let response: Value = serde_json::from_str(&body)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {body}\nRIE log:\n{}", rie.log()));
    assert_eq!(response["statusCode"], 200, "{body}");
    assert_eq!(
        response["headers"]["content-type"], "application/json",
        "{body}"
    );
    assert_eq!(response["isBase64Encoded"], false, "{body}");
    let inner: Value =
        serde_json::from_str(response["body"].as_str().unwrap_or_default()).expect("JSON body");
    assert_eq!(inner, json!({ "message": message }), "{body}");
}

#[test]
fn proxy_events_under_the_emulator() {
    let rie = Rie::start("default", &[]);
    for name in [
        "root.json",
        "proxy-path.json",
        "query-string.json",
        "post-json-body.json",
        "base64-body.json",
        "stage-prefix-in-path.json",
        "console-test-invoke.json",
    ] {
        assert_proxy_response(&rie, &fixture(name), "Private API executed!!");
    }

    // A malformed event: a function error naming the problem; the runtime stays up.
    let HttpResponse { status, body, .. } = rie.invoke(r#"{"version":"2.0","rawPath":"/"}"#);
    assert_eq!(status, 200, "{body}");
    let error: Value = serde_json::from_str(&body).expect("JSON error");
    assert_eq!(error["errorType"], "InvalidEvent", "{body}");
    let message = error["errorMessage"].as_str().unwrap_or_default();
    assert!(
        message.contains("missing field `httpMethod`") && message.contains("payload format 2.0"),
        "{body}"
    );
    assert_proxy_response(&rie, &fixture("root.json"), "Private API executed!!");

    let log = rie.log();
    assert!(log.contains("Init Duration"), "one cold start:\n{log}");
    assert_eq!(
        log.matches("REPORT RequestId").count(),
        9,
        "one runtime served all invocations:\n{log}"
    );
    assert!(
        log.contains("bootstrap: request"),
        "the error is logged:\n{log}"
    );
}

#[test]
fn message_env_under_the_emulator() {
    let message = "Hello from the emulator: \"quoted\", unicode ✓";
    let rie = Rie::start("message", &[("MESSAGE", message)]);
    assert_proxy_response(&rie, &fixture("proxy-path.json"), message);
    assert_proxy_response(&rie, &fixture("root.json"), message);
}

#[test]
fn the_emulator_listens_on_loopback_only() {
    let rie = Rie::start("loopback", &[]);
    assert_proxy_response(&rie, &fixture("root.json"), "Private API executed!!");
    // Read the listening sockets from /proc (no traffic to any other address): both of RIE's
    // listeners, the invoke endpoint and the Runtime API the bootstrap polls, are on 127.0.0.1.
    for port in [rie.port, rie.runtime_api_port] {
        let listeners = listening_addresses(port);
        assert!(!listeners.is_empty(), "nothing listens on port {port}");
        assert!(
            listeners.iter().all(|a| a == "0100007F"),
            "port {port} is bound to {listeners:?}, not only 127.0.0.1 (0100007F)"
        );
    }
}

/// Local addresses (hex, as /proc/net/tcp{,6} shows them) of the sockets listening on `port`.
fn listening_addresses(port: u16) -> Vec<String> {
    listening_sockets(port)
        .into_iter()
        .map(|(addr, _)| addr)
        .collect()
}

/// Whether process `pid` holds one of the sockets listening on `port` (its inode among the
/// targets of `/proc/<pid>/fd`).
fn listened_on_by(pid: u32, port: u16) -> bool {
    let inodes: Vec<String> = listening_sockets(port)
        .into_iter()
        .map(|(_, inode)| format!("socket:[{inode}]"))
        .collect();
    if inodes.is_empty() {
        return false;
    }
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return false;
    };
    fds.flatten().any(|fd| {
        std::fs::read_link(fd.path())
            .is_ok_and(|target| inodes.iter().any(|i| target.as_os_str() == i.as_str()))
    })
}

/// (local address in hex, inode) of each socket listening on `port`, from /proc/net/tcp{,6}.
fn listening_sockets(port: u16) -> Vec<(String, String)> {
    let mut found = Vec::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let text = std::fs::read_to_string(table).unwrap_or_default();
        for line in text.lines().skip(1) {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let (Some(local), Some(state), Some(inode)) =
                (fields.get(1), fields.get(3), fields.get(9))
            else {
                continue;
            };
            let Some((addr, hex_port)) = local.split_once(':') else {
                continue;
            };
            if *state == "0A" && u16::from_str_radix(hex_port, 16) == Ok(port) {
                found.push((addr.to_owned(), (*inode).to_owned()));
            }
        }
    }
    found
}
