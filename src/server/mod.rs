//! The gRPC edge: `envoy.service.auth.v3.Authorization/Check`. It only translates
//! (`convert`: proto → domain, `response`: decision → proto); the policy decides.

pub mod convert;
pub mod response;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::SystemTime;

use envoy_types::ext_authz::v3::pb::{
    Authorization, AuthorizationServer, CheckRequest, CheckResponse,
};
use tokio::net::TcpListener;
use tonic::{Request, Response, Status};

use crate::config::Config;
use crate::loader::load_policy;
use crate::policy::{Policy, PolicyErrors};

/// Why the server could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServerError {
    #[error("policy {}:\n{errors}", path.display())]
    Policy {
        path: std::path::PathBuf,
        errors: PolicyErrors,
    },
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("gRPC server failed: {0}")]
    Transport(#[from] tonic::transport::Error),
}

/// The ext_authz service.
#[derive(Debug, Clone)]
pub struct AuthzService {
    policy: Arc<Policy>,
    identity_header: Option<Arc<str>>,
}

impl AuthzService {
    /// `identity_header`: the upstream header set to the verified SPIFFE ID on allow; empty
    /// disables it.
    pub fn new(policy: Arc<Policy>, identity_header: &str) -> Self {
        Self {
            policy,
            identity_header: (!identity_header.is_empty()).then(|| Arc::from(identity_header)),
        }
    }

    /// Decides one CheckRequest. Public so tests and benchmarks can call the handler directly.
    pub fn check_request(&self, request: CheckRequest) -> CheckResponse {
        let request = convert::authz_request(request);
        let decision = self.policy.decide(&request, SystemTime::now());
        tracing::debug!(
            decision_id = %decision.id,
            decision = %decision.verdict,
            stage = %decision.stage,
            rule = decision.rule.as_deref().unwrap_or(""),
            spiffe_id = decision.identity.as_ref().map(|id| id.as_str()).unwrap_or(""),
            principal = %request.source.principal,
            reason = %decision.reason,
            "check"
        );
        response::check_response(&decision, self.identity_header.as_deref())
    }
}

#[tonic::async_trait]
impl Authorization for AuthzService {
    async fn check(
        &self,
        request: Request<CheckRequest>,
    ) -> Result<Response<CheckResponse>, Status> {
        Ok(Response::new(self.check_request(request.into_inner())))
    }
}

/// Serves `service` on `listener` until `shutdown` completes.
pub async fn serve(
    listener: TcpListener,
    service: AuthzService,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ServerError> {
    let incoming = tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
    tonic::transport::Server::builder()
        .add_service(AuthorizationServer::new(service))
        .serve_with_incoming_shutdown(incoming, shutdown)
        .await?;
    Ok(())
}

/// Loads the policy named by `config`, binds its listener and serves until `shutdown`.
pub async fn run(config: Config, shutdown: impl Future<Output = ()>) -> Result<(), ServerError> {
    let (policy, files) = load_policy(std::slice::from_ref(&config.policy)).map_err(|errors| {
        ServerError::Policy {
            path: config.policy.clone(),
            errors,
        }
    })?;
    tracing::info!(
        policy = %config.policy.display(),
        files,
        rules = policy.rule_count(),
        trust_domains = ?policy.trust().trust_domains(),
        "policy loaded"
    );
    let listener = TcpListener::bind(config.listen)
        .await
        .map_err(|source| ServerError::Bind {
            addr: config.listen,
            source,
        })?;
    let local = listener.local_addr().unwrap_or(config.listen);
    tracing::info!(listen = %local, "warrant ext_authz gRPC server listening");
    let service = AuthzService::new(Arc::new(policy), &config.identity_header);
    serve(listener, service, shutdown).await
}
