//! One HTTPS `GET`, step by step (name, connection, TLS, answer), so that when it fails the step
//! that failed is known: each step fails for a different reason a user can act on.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Limited};
use hyper::Request;
use hyper::header::{HOST, USER_AGENT};
use hyper_util::rt::TokioIo;
use rustls::ClientConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::net::TcpStream;
use tokio::time::{Instant, timeout_at};
use tokio_rustls::TlsConnector;

use crate::error::{Error, Result};

/// How much of an answer's body is kept (the diagnosis quotes API Gateway's message).
const BODY_LIMIT: usize = 4096;

/// What one probe found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// An HTTP answer; `latency` from the start to its status line.
    Answered {
        status: u16,
        body: String,
        latency: Duration,
    },
    /// The host name has no address from here.
    NotResolved { host: String, error: String },
    /// No address of the host accepted a connection in time (a dropped SYN: a security group or
    /// a network ACL that does not admit this caller).
    ConnectTimeout { addresses: Vec<SocketAddr> },
    /// Every connection was refused or unreachable.
    ConnectFailed { address: SocketAddr, error: String },
    /// Connected, but the TLS handshake failed (certificate, protocol).
    TlsFailed { host: String, error: String },
    /// Connected, but no answer in time.
    NoAnswer { after: Duration },
    /// Connected, but not an HTTP answer.
    ProtocolError { error: String },
    /// `status.url` + `spec.probe.path` is not an `https://` URL.
    BadUrl { url: String },
}

/// The HTTPS client of the probes: the platform's roots (`SSL_CERT_FILE` and `SSL_CERT_DIR`
/// honoured) plus, optionally, the certificates of one PEM file.
#[derive(Clone)]
pub struct HttpsGet {
    tls: TlsConnector,
    user_agent: String,
}

impl HttpsGet {
    pub fn new(extra_ca: Option<&Path>) -> Result<Self> {
        let mut roots = rustls::RootCertStore::empty();
        let native = rustls_native_certs::load_native_certs();
        for cert in native.certs {
            // A platform certificate rustls cannot use is skipped, as the platform would.
            let _ = roots.add(cert);
        }
        if let Some(path) = extra_ca {
            let certs = CertificateDer::pem_file_iter(path)
                .and_then(|certs| certs.collect::<std::result::Result<Vec<_>, _>>())
                .map_err(|e| Error::Config(format!("--probe-ca-file {}: {e}", path.display())))?;
            if certs.is_empty() {
                return Err(Error::Config(format!(
                    "--probe-ca-file {}: no certificate in it",
                    path.display()
                )));
            }
            for cert in certs {
                roots.add(cert).map_err(|e| {
                    Error::Config(format!("--probe-ca-file {}: {e}", path.display()))
                })?;
            }
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| Error::Config(format!("TLS for probes: {e}")))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(Self {
            tls: TlsConnector::from(Arc::new(config)),
            user_agent: format!("privateapi-operator-probe/{}", env!("CARGO_PKG_VERSION")),
        })
    }

    /// `GET url`, all steps within `limit`.
    pub async fn get(&self, url: &str, limit: Duration) -> Outcome {
        let started = Instant::now();
        let deadline = started + limit;
        let Some((host, port, path)) = split_url(url) else {
            return Outcome::BadUrl {
                url: url.to_string(),
            };
        };
        let addresses = match timeout_at(deadline, tokio::net::lookup_host((host, port))).await {
            Ok(Ok(addresses)) => addresses.collect::<Vec<_>>(),
            Ok(Err(e)) => {
                return Outcome::NotResolved {
                    host: host.to_string(),
                    error: e.to_string(),
                };
            }
            Err(_) => {
                return Outcome::NotResolved {
                    host: host.to_string(),
                    error: "the resolver did not answer in time".into(),
                };
            }
        };
        if addresses.is_empty() {
            return Outcome::NotResolved {
                host: host.to_string(),
                error: "no address".into(),
            };
        }
        let tcp = match connect(&addresses, deadline).await {
            Ok(tcp) => tcp,
            Err(outcome) => return outcome,
        };
        let Ok(server_name) = ServerName::try_from(host.to_string()) else {
            return Outcome::BadUrl {
                url: url.to_string(),
            };
        };
        let tls = match timeout_at(deadline, self.tls.connect(server_name, tcp)).await {
            Ok(Ok(tls)) => tls,
            Ok(Err(e)) => {
                return Outcome::TlsFailed {
                    host: host.to_string(),
                    error: e.to_string(),
                };
            }
            Err(_) => return Outcome::NoAnswer { after: limit },
        };
        let answer = async {
            let (mut sender, connection) =
                hyper::client::conn::http1::handshake(TokioIo::new(tls)).await?;
            // The connection is driven until the answer is read, and stopped (closed) when this
            // future ends or is dropped at the deadline: a server that never answers holds
            // nothing after the probe.
            let _driver = AbortOnDrop(tokio::spawn(connection));
            let request = Request::get(path)
                .header(HOST, host)
                .header(USER_AGENT, &self.user_agent)
                .body(Empty::<Bytes>::new())
                .map_err(|e| ProbeHttpError::Request(e.to_string()))?;
            let response = sender.send_request(request).await?;
            let latency = started.elapsed();
            let status = response.status().as_u16();
            let body = Limited::new(response.into_body(), BODY_LIMIT)
                .collect()
                .await
                .map(|b| String::from_utf8_lossy(&b.to_bytes()).into_owned())
                // An answer longer than the limit is still an answer: its status is what counts.
                .unwrap_or_default();
            Ok::<_, ProbeHttpError>((status, body, latency))
        };
        match timeout_at(deadline, answer).await {
            Ok(Ok((status, body, latency))) => Outcome::Answered {
                status,
                body,
                latency,
            },
            Ok(Err(e)) => Outcome::ProtocolError {
                error: e.to_string(),
            },
            Err(_) => Outcome::NoAnswer { after: limit },
        }
    }
}

struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[derive(Debug, thiserror::Error)]
enum ProbeHttpError {
    #[error("{0}")]
    Hyper(#[from] hyper::Error),
    #[error("cannot build the request: {0}")]
    Request(String),
}

/// Each address in turn (as a client library does), each given an equal share of the time left,
/// until one connects.
async fn connect(
    addresses: &[SocketAddr],
    deadline: Instant,
) -> std::result::Result<TcpStream, Outcome> {
    let mut failed = None;
    for (i, address) in addresses.iter().enumerate() {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        let share = left / u32::try_from(addresses.len() - i).unwrap_or(u32::MAX);
        match tokio::time::timeout(share, TcpStream::connect(address)).await {
            Ok(Ok(tcp)) => return Ok(tcp),
            Ok(Err(e)) => {
                failed = Some(Outcome::ConnectFailed {
                    address: *address,
                    error: e.to_string(),
                })
            }
            Err(_) => {}
        }
    }
    // A refusal says more than a time-out (something answered); time-outs only: dropped SYNs.
    Err(failed.unwrap_or_else(|| Outcome::ConnectTimeout {
        addresses: addresses.to_vec(),
    }))
}

/// `https://host[:port]/path` -> (host, port, path). `None` for anything else.
pub fn split_url(url: &str) -> Option<(&str, u16, &str)> {
    let rest = url.strip_prefix("https://")?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let (host, port) = match authority.rsplit_once(':') {
        Some((host, port)) => (host, port.parse().ok()?),
        None => (authority, 443),
    };
    (!host.is_empty() && !host.contains('@')).then_some((host, port, path))
}

/// The URL a probe requests: the object's invoke URL (which ends with the stage and `/`) and the
/// probe's path.
pub fn probe_url(invoke_url: &str, path: &str) -> String {
    format!(
        "{}/{}",
        invoke_url.trim_end_matches('/'),
        path.trim_start_matches('/')
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_split_and_joined() {
        assert_eq!(
            split_url("https://abc.execute-api.us-east-1.amazonaws.com/prod/"),
            Some(("abc.execute-api.us-east-1.amazonaws.com", 443, "/prod/"))
        );
        assert_eq!(split_url("https://h:8443"), Some(("h", 8443, "/")));
        assert_eq!(split_url("http://h/"), None);
        assert_eq!(split_url("https://user@h/"), None);
        assert_eq!(probe_url("https://h/prod/", "/"), "https://h/prod/");
        assert_eq!(
            probe_url("https://h/prod/", "/health?x=1"),
            "https://h/prod/health?x=1"
        );
    }
}
