//! Every Check call, from the moment its headers arrive: when it arrived (deadlines count from
//! then, not from when its body was decoded), and whether the Check handler ever saw it. A call
//! tonic answers before the handler — over `max_request_bytes` (OUT_OF_RANGE), an undecodable
//! message (INTERNAL), an unsupported compression (UNIMPLEMENTED), a body cut off by a reset
//! stream or a closed connection (CANCELLED, UNKNOWN) — is counted in
//! `warrant_checks_refused_total` (`too_large`, `malformed`, `cancelled`) and logged (the 1st,
//! 2nd, 4th, 8th… time since start), so no Check goes unseen.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Instant;

use crate::audit::{Metrics, Refusal};

/// What a Check call carries in its request extensions.
#[derive(Debug)]
pub(super) struct CallMarker {
    /// When its headers arrived.
    pub arrived: Instant,
    handled: AtomicBool,
    /// Reading its body failed: the stream was reset or the connection closed mid-body.
    body_failed: AtomicBool,
}

impl CallMarker {
    /// The Check handler has the call: whatever it answers, it counts.
    pub(super) fn handled(&self) {
        self.handled.store(true, Ordering::Release);
    }
}

/// Wraps the Authorization service (tower), marking and counting its calls.
#[derive(Debug, Clone)]
pub(super) struct CheckCalls<S> {
    inner: S,
    metrics: Arc<Metrics>,
}

impl<S> CheckCalls<S> {
    pub(super) fn new(inner: S, metrics: Arc<Metrics>) -> Self {
        Self { inner, metrics }
    }
}

impl<S: tonic::server::NamedService> tonic::server::NamedService for CheckCalls<S> {
    const NAME: &'static str = S::NAME;
}

impl<S, B, R> tower::Service<http::Request<B>> for CheckCalls<S>
where
    S: tower::Service<http::Request<MarkedBody<B>>, Response = http::Response<R>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = CheckCall<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let marker = Arc::new(CallMarker {
            arrived: Instant::now(),
            handled: AtomicBool::new(false),
            body_failed: AtomicBool::new(false),
        });
        let mut request = request.map(|inner| MarkedBody {
            inner,
            marker: Arc::clone(&marker),
        });
        request.extensions_mut().insert(Arc::clone(&marker));
        CheckCall {
            inner: self.inner.call(request),
            marker,
            metrics: Arc::clone(&self.metrics),
        }
    }
}

pin_project_lite::pin_project! {
    /// A Check call's request body, noting in its [`CallMarker`] when reading it fails.
    #[derive(Debug)]
    pub struct MarkedBody<B> {
        #[pin]
        inner: B,
        marker: Arc<CallMarker>,
    }
}

impl<B: http_body::Body> http_body::Body for MarkedBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        let this = self.project();
        let polled = this.inner.poll_frame(cx);
        if let Poll::Ready(Some(Err(_))) = &polled {
            this.marker.body_failed.store(true, Ordering::Release);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

pin_project_lite::pin_project! {
    /// The response future of a marked Check call.
    #[derive(Debug)]
    pub struct CheckCall<F> {
        #[pin]
        inner: F,
        marker: Arc<CallMarker>,
        metrics: Arc<Metrics>,
    }
}

/// Why tonic answered a Check call before the handler saw it, from the `grpc-status` it
/// answered with (gRPC status codes, google.rpc.Code) and whether reading the body failed,
/// and what to log.
fn refusal_of(grpc_status: &[u8], body_failed: bool) -> (Refusal, &'static str) {
    const ABANDONED: (Refusal, &str) = (
        Refusal::Cancelled,
        "a Check call was abandoned before its CheckRequest arrived in full (the stream was reset or the connection closed)",
    );
    match grpc_status {
        // OUT_OF_RANGE, RESOURCE_EXHAUSTED: over `max_decoding_message_size`.
        b"11" | b"8" => (
            Refusal::TooLarge,
            "a CheckRequest over limits.max_request_bytes was refused (OUT_OF_RANGE) before it was decided; keep the limit above Envoy's with_request_body.max_request_bytes plus headers and certificate",
        ),
        // Whatever tonic made of it, a body cut off is the caller going away.
        _ if body_failed => ABANDONED,
        // CANCELLED (a reset stream), UNKNOWN (the body could not be read: the connection
        // closed or failed mid-body): the caller went away before its CheckRequest arrived.
        b"1" | b"2" => ABANDONED,
        // INTERNAL: the message did not decode; UNIMPLEMENTED: an unsupported compression.
        _ => (
            Refusal::Malformed,
            "a Check call that is not a CheckRequest Warrant can read (undecodable, or compressed) was refused before it was decided",
        ),
    }
}

impl<F, R, E> Future for CheckCall<F>
where
    F: Future<Output = Result<http::Response<R>, E>>,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        let result = std::task::ready!(this.inner.poll(cx));
        let refused_before_handler = !this.marker.handled.load(Ordering::Acquire);
        if refused_before_handler
            && let Ok(response) = &result
            && let Some(status) = response.headers().get("grpc-status")
        {
            let body_failed = this.marker.body_failed.load(Ordering::Acquire);
            let (refusal, what) = refusal_of(status.as_bytes(), body_failed);
            let refused = this.metrics.refused(refusal);
            if refused.is_power_of_two() {
                tracing::warn!(refused, grpc_status = ?status, "{what}");
            }
        }
        Poll::Ready(result)
    }
}
