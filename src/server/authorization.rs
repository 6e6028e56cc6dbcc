//! The `envoy.service.auth.v3.Authorization` gRPC service: routes `Check` to
//! [`AuthzService::check`] and answers with a [`CheckAnswer`], encoded straight from the
//! decision. This is what envoy-types' generated `AuthorizationServer` does, with Warrant's own
//! messages — the CheckRequest decoded with its maps as lists ([`super::wire`]), the answer
//! encoded without building a CheckResponse — and one boxed future fewer (no `async_trait`).

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tonic::server::{Grpc, NamedService, UnaryService};

use super::AuthzService;
use super::response::CheckAnswer;
use super::wire::CheckRequest;

/// The gRPC path of `Check` (external_auth.proto).
const CHECK_PATH: &str = "/envoy.service.auth.v3.Authorization/Check";

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// The Authorization service (tower) over an [`AuthzService`].
#[derive(Debug, Clone)]
pub(super) struct AuthorizationService {
    checks: Arc<AuthzService>,
    /// The largest CheckRequest decoded, in bytes (`limits.max_request_bytes`); a larger one is
    /// answered OUT_OF_RANGE by tonic.
    max_request_bytes: usize,
}

impl AuthorizationService {
    pub(super) fn new(checks: AuthzService, max_request_bytes: usize) -> Self {
        Self {
            checks: Arc::new(checks),
            max_request_bytes,
        }
    }
}

impl NamedService for AuthorizationService {
    const NAME: &'static str = super::AUTHORIZATION_SERVICE;
}

impl<B> tower::Service<http::Request<B>> for AuthorizationService
where
    B: http_body::Body + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>> + Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = BoxFuture<Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        if request.uri().path() != CHECK_PATH {
            return Box::pin(std::future::ready(Ok(unimplemented())));
        }
        let method = CheckMethod(Arc::clone(&self.checks));
        let max_request_bytes = self.max_request_bytes;
        Box::pin(async move {
            let codec = tonic_prost::ProstCodec::<CheckAnswer, CheckRequest>::default();
            let mut grpc =
                Grpc::new(codec).apply_max_message_size_config(Some(max_request_bytes), None);
            Ok(grpc.unary(method, request).await)
        })
    }
}

/// UNIMPLEMENTED, for any other method of the service (gRPC status codes, google.rpc.Code).
fn unimplemented() -> http::Response<tonic::body::Body> {
    let mut response = http::Response::new(tonic::body::Body::default());
    let headers = response.headers_mut();
    headers.insert(
        tonic::Status::GRPC_STATUS,
        http::HeaderValue::from(tonic::Code::Unimplemented as i32),
    );
    headers.insert(
        http::header::CONTENT_TYPE,
        tonic::metadata::GRPC_CONTENT_TYPE,
    );
    response
}

/// The `Check` method.
struct CheckMethod(Arc<AuthzService>);

impl UnaryService<CheckRequest> for CheckMethod {
    type Response = CheckAnswer;
    type Future = BoxFuture<Result<tonic::Response<CheckAnswer>, tonic::Status>>;

    fn call(&mut self, request: tonic::Request<CheckRequest>) -> Self::Future {
        let checks = Arc::clone(&self.0);
        Box::pin(async move { checks.check(request).await })
    }
}
