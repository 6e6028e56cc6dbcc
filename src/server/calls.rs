//! Every Check call, from the moment its headers arrive: when it arrived (deadlines count from
//! then, not from when its body was decoded), and whether the Check handler ever saw it. A call
//! tonic answers before the handler — over `max_request_bytes` (OUT_OF_RANGE), an undecodable
//! message (INTERNAL), an unsupported compression (UNIMPLEMENTED) — is counted in
//! `warrant_checks_refused_total` (`too_large`, `malformed`) and logged (the 1st, 2nd, 4th,
//! 8th… time since start), so no Check goes unseen.

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
    S: tower::Service<http::Request<B>, Response = http::Response<R>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = CheckCall<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<B>) -> Self::Future {
        let marker = Arc::new(CallMarker {
            arrived: Instant::now(),
            handled: AtomicBool::new(false),
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
    /// The response future of a marked Check call.
    #[derive(Debug)]
    pub struct CheckCall<F> {
        #[pin]
        inner: F,
        marker: Arc<CallMarker>,
        metrics: Arc<Metrics>,
    }
}

/// `grpc-status` OUT_OF_RANGE: tonic's `max_decoding_message_size`.
const OUT_OF_RANGE: &[u8] = b"11";

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
            let (refusal, what) = if status.as_bytes() == OUT_OF_RANGE {
                (
                    Refusal::TooLarge,
                    "a CheckRequest over limits.max_request_bytes was refused (OUT_OF_RANGE) before it was decided; keep the limit above Envoy's with_request_body.max_request_bytes plus headers and certificate",
                )
            } else {
                (
                    Refusal::Malformed,
                    "a Check call that is not a CheckRequest Warrant can read (undecodable, or compressed) was refused before it was decided",
                )
            };
            let refused = this.metrics.refused(refusal);
            if refused.is_power_of_two() {
                tracing::warn!(refused, grpc_status = ?status, "{what}");
            }
        }
        Poll::Ready(result)
    }
}
