//! The end of a graceful shutdown: when the gRPC listener may stop waiting for its calls.
//!
//! Calls are counted from the moment a stream's headers are dispatched until its response
//! (headers) is ready — so a Check whose body is still uploading counts, and a gRPC health
//! `Watch`, whose response is a stream that never ends on its own, counts only until it starts
//! answering. Once no call has been in flight for two polls in a row, the drain is over.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

/// How often, while draining, the calls in flight are counted.
const DRAIN_POLL: Duration = Duration::from_millis(50);

/// Counts the calls of the services it wraps (a tower layer for the gRPC server).
#[derive(Debug, Clone, Default)]
pub(super) struct CallsInFlight(Arc<AtomicUsize>);

impl CallsInFlight {
    /// Calls dispatched and not yet answered.
    pub(super) fn count(&self) -> usize {
        self.0.load(Ordering::Acquire)
    }

    /// Waits until no call has been in flight for two polls in a row (`false`), or until
    /// `grace` has passed (`true`: calls are cut off).
    pub(super) async fn drained(&self, grace: Duration) -> bool {
        let deadline = tokio::time::sleep(grace);
        tokio::pin!(deadline);
        let mut idle = 0;
        loop {
            tokio::select! {
                () = &mut deadline => return true,
                () = tokio::time::sleep(DRAIN_POLL) => {
                    idle = if self.count() == 0 { idle + 1 } else { 0 };
                    if idle >= 2 {
                        return false;
                    }
                }
            }
        }
    }
}

impl<S> tower::Layer<S> for CallsInFlight {
    type Service = Counted<S>;

    fn layer(&self, inner: S) -> Counted<S> {
        Counted {
            inner,
            calls: self.clone(),
        }
    }
}

/// A service whose calls are counted in [`CallsInFlight`].
#[derive(Debug, Clone)]
pub(super) struct Counted<S> {
    inner: S,
    calls: CallsInFlight,
}

impl<S, R> tower::Service<R> for Counted<S>
where
    S: tower::Service<R>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = CountedCall<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: R) -> Self::Future {
        self.calls.0.fetch_add(1, Ordering::AcqRel);
        CountedCall {
            inner: self.inner.call(request),
            call: Call(self.calls.clone()),
        }
    }
}

/// One call counted while it lives.
#[derive(Debug)]
struct Call(CallsInFlight);

impl Drop for Call {
    fn drop(&mut self) {
        (self.0).0.fetch_sub(1, Ordering::AcqRel);
    }
}

pin_project_lite::pin_project! {
    /// The response future of a counted call.
    #[derive(Debug)]
    pub struct CountedCall<F> {
        #[pin]
        inner: F,
        call: Call,
    }
}

impl<F: Future> Future for CountedCall<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        self.project().inner.poll(cx)
    }
}
