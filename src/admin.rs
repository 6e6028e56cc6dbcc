//! The admin HTTP listener: `/` (status page) and `/status` (the same in JSON, see
//! [`crate::status`]), `/metrics` (Prometheus text), `/healthz` (process up) and
//! `/readyz` (a policy serving: 200 with its revision and the last reload error, if any; 503
//! while shutting down). Plain HTTP/1.1; keep it on loopback or a private interface.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use crate::server::live::LivePolicy;
use crate::status::{self, ServerInfo};

/// Serves the admin endpoints on `listener` until `shutdown` completes.
pub async fn serve(
    listener: TcpListener,
    policy: Arc<LivePolicy>,
    info: Arc<ServerInfo>,
    shutdown: impl Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    loop {
        let (stream, _) = tokio::select! {
            _ = &mut shutdown => return,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of file descriptors, say: back off instead of spinning.
                    tracing::warn!(%error, "admin listener accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let policy = Arc::clone(&policy);
        let info = Arc::clone(&info);
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request| {
                let policy = Arc::clone(&policy);
                let info = Arc::clone(&info);
                async move { Ok::<_, Infallible>(respond(&request, &policy, &info)) }
            });
            // A client that never finishes its request head is dropped.
            let _ = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(std::time::Duration::from_secs(10))
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

fn respond(
    request: &Request<Incoming>,
    policy: &LivePolicy,
    info: &ServerInfo,
) -> Response<Full<Bytes>> {
    let text = |status: StatusCode, content_type: &'static str, body: String| {
        let mut response = Response::new(Full::new(Bytes::from(body)));
        *response.status_mut() = status;
        response.headers_mut().insert(
            hyper::header::CONTENT_TYPE,
            hyper::header::HeaderValue::from_static(content_type),
        );
        response
    };
    if request.method() != Method::GET && request.method() != Method::HEAD {
        return text(
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain",
            "GET only\n".into(),
        );
    }
    match request.uri().path() {
        "/metrics" => text(
            StatusCode::OK,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
            policy.metrics().encode(),
        ),
        "/healthz" => text(StatusCode::OK, "text/plain", "ok\n".into()),
        "/status" => text(
            StatusCode::OK,
            "application/json",
            status::json(info, policy).to_string(),
        ),
        "/" => text(
            StatusCode::OK,
            "text/html; charset=utf-8",
            status::html(&status::json(info, policy)),
        ),
        "/readyz" => match policy.readiness() {
            Ok(revision) => {
                let mut body = format!("ready: policy revision {revision}\n");
                if let Some((_, error)) = policy.status().last_error {
                    body.push_str("the last reload failed; the revision above keeps serving:\n");
                    body.push_str(&error);
                    body.push('\n');
                }
                text(StatusCode::OK, "text/plain", body)
            }
            Err(reason) => text(
                StatusCode::SERVICE_UNAVAILABLE,
                "text/plain",
                format!("not ready: {reason}\n"),
            ),
        },
        _ => text(StatusCode::NOT_FOUND, "text/plain", "not found\n".into()),
    }
}
