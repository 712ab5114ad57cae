//! The admin HTTP server: `/healthz` (the process runs), `/readyz`, `/metrics` (Prometheus text
//! format).
//!
//! `/readyz` is 200 for a leader whose first watch list synced, and for a standby that reached the
//! API server (it read or created the Lease) and waits for the lease. A standby counts as ready so
//! that a rolling update can proceed: it is exactly what should take over when the leader goes. A
//! process still connecting, or a new leader listing its objects, is not ready.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::Bytes;
use http_body_util::Full;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tracing::{debug, info};

use crate::metrics::Metrics;

/// What the admin server reports.
#[derive(Default)]
pub struct AdminState {
    /// The leader's first list of objects synced.
    pub ready: AtomicBool,
    pub leader: AtomicBool,
    /// Waiting for the lease another replica holds.
    pub standby: AtomicBool,
    pub metrics: Arc<Metrics>,
}

fn respond(status: StatusCode, content_type: &str, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    if let Ok(value) = content_type.parse() {
        response
            .headers_mut()
            .insert(hyper::header::CONTENT_TYPE, value);
    }
    response
}

fn route(state: &AdminState, path: &str) -> Response<Full<Bytes>> {
    match path {
        "/healthz" => respond(StatusCode::OK, "text/plain", "ok\n".into()),
        "/readyz" if state.ready.load(Ordering::Relaxed) => {
            respond(StatusCode::OK, "text/plain", "ready\n".into())
        }
        "/readyz" if state.standby.load(Ordering::Relaxed) => respond(
            StatusCode::OK,
            "text/plain",
            "standby: waiting for the lease\n".into(),
        ),
        "/readyz" if state.leader.load(Ordering::Relaxed) => respond(
            StatusCode::SERVICE_UNAVAILABLE,
            "text/plain",
            "waiting for the first list of PrivateApi objects\n".into(),
        ),
        "/readyz" => respond(
            StatusCode::SERVICE_UNAVAILABLE,
            "text/plain",
            "connecting to the API server\n".into(),
        ),
        "/metrics" => respond(
            StatusCode::OK,
            crate::metrics::CONTENT_TYPE,
            state.metrics.render(state.leader.load(Ordering::Relaxed)),
        ),
        _ => respond(StatusCode::NOT_FOUND, "text/plain", "not found\n".into()),
    }
}

/// Bind `addr` and return the bound address (port 0 picks a free port) and the serving task.
pub async fn serve(
    addr: SocketAddr,
    state: Arc<AdminState>,
) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let listener = TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    info!(address = %bound, "admin server listening");
    let task = tokio::spawn(async move {
        loop {
            let (stream, _) = match listener.accept().await {
                Ok(conn) => conn,
                Err(err) => {
                    debug!(error = %err, "admin accept failed");
                    continue;
                }
            };
            let state = state.clone();
            tokio::spawn(async move {
                let service = service_fn(move |request: Request<hyper::body::Incoming>| {
                    let response = route(&state, request.uri().path());
                    async move { Ok::<_, Infallible>(response) }
                });
                if let Err(err) = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await
                {
                    debug!(error = %err, "admin connection failed");
                }
            });
        }
    });
    Ok((bound, task))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readyz_follows_the_flag() {
        let state = AdminState::default();
        assert_eq!(
            route(&state, "/readyz").status(),
            StatusCode::SERVICE_UNAVAILABLE
        );
        state.standby.store(true, Ordering::Relaxed);
        assert_eq!(route(&state, "/readyz").status(), StatusCode::OK);
        state.standby.store(false, Ordering::Relaxed);
        state.leader.store(true, Ordering::Relaxed);
        assert_eq!(
            route(&state, "/readyz").status(),
            StatusCode::SERVICE_UNAVAILABLE
        );
        state.ready.store(true, Ordering::Relaxed);
        assert_eq!(route(&state, "/readyz").status(), StatusCode::OK);
        assert_eq!(route(&state, "/healthz").status(), StatusCode::OK);
        assert_eq!(route(&state, "/nope").status(), StatusCode::NOT_FOUND);
        assert_eq!(route(&state, "/metrics").status(), StatusCode::OK);
    }
}
