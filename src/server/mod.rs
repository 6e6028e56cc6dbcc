//! The gRPC edge: `envoy.service.auth.v3.Authorization/Check`. It only translates
//! (`convert`: proto → domain, `response`: decision → proto); the policy decides.

mod authorization;
mod bound;
mod calls;
pub mod convert;
pub mod deciders;
mod drain;
mod limits;
pub mod listener;
pub mod live;
mod reload;
pub mod response;
pub mod tls;
pub(crate) mod wire;
mod workload_api;
mod write_batching;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use envoy_types::ext_authz::v3::pb::{CheckRequest, CheckResponse};
use prost::Message as _;
use tokio::net::TcpListener;
use tonic::{Request, Response, Status};

use crate::audit::{AuditError, Auditor, Metrics, Refusal, TraceParent};
use crate::config::Config;
use crate::loader::load_policy;
use crate::policy::{Policy, PolicyErrors};

use live::LivePolicy;
use response::CheckAnswer;

/// How long shutdown waits for the audit sinks to write and export what is queued.
pub use bound::{BoundServer, bind, run};

const SHUTDOWN_FLUSH: Duration = Duration::from_secs(5);

/// The descriptor set of `envoy.service.auth.v3` and its dependencies, compiled by `build.rs`
/// from the protos in `proto/`: for reading CheckRequests in JSON and for gRPC reflection.
pub const EXT_AUTHZ_DESCRIPTORS: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/ext_authz_descriptors.binpb"));

/// The gRPC name of the ext_authz service, as health checks name it.
pub const AUTHORIZATION_SERVICE: &str = "envoy.service.auth.v3.Authorization";

/// Why the server could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServerError {
    /// The policy failed to load at start.
    #[error("policy {}:\n{errors}", path.display())]
    Policy {
        /// The policy path from the config (`policy:`).
        path: std::path::PathBuf,
        /// Every problem found, each as `FILE:LINE: …`.
        errors: PolicyErrors,
    },
    /// A listener (gRPC or admin) cannot listen on its address.
    #[error("cannot listen on {addr}: {reason}")]
    Bind {
        /// The address: `HOST:PORT`, or `unix:/path/to/socket`.
        addr: String,
        /// Why it cannot.
        reason: std::io::Error,
    },
    /// The gRPC server failed.
    #[error("gRPC server failed: {0}")]
    Transport(#[from] tonic::transport::Error),
    /// Audit (the decision log or the span exporter) could not start.
    #[error("audit: {0}")]
    Audit(#[from] AuditError),
    /// The audit settings the config and `OTEL_*` variables give are invalid (e.g. an OTLP
    /// endpoint that is not `http://`).
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// The gRPC reflection service cannot be built from the ext_authz descriptors.
    #[error("gRPC reflection: {0}")]
    Reflection(String),
    /// The listener's TLS settings cannot be used.
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
}

/// The ext_authz service.
#[derive(Debug, Clone)]
pub struct AuthzService {
    policy: Arc<LivePolicy>,
    identity_header: Option<Arc<str>>,
    auditor: Arc<Auditor>,
    limits: limits::Limits,
    /// Started at the first Check served over gRPC; `None` inside when the threads could not
    /// be started (then Checks are decided on the async workers).
    deciders: Arc<std::sync::OnceLock<Option<deciders::Deciders>>>,
}

impl AuthzService {
    /// A service deciding with `policy`, which never reloads (tests, benchmarks).
    /// `identity_header`: the upstream header set to the verified SPIFFE ID on allow; empty
    /// disables it. Audits into metrics only until [`AuthzService::with_auditor`].
    pub fn new(policy: Policy, identity_header: &str) -> Self {
        let metrics = Arc::new(Metrics::default());
        Self::serving(
            Arc::new(LivePolicy::fixed(policy, Arc::clone(&metrics))),
            identity_header,
        )
    }

    /// A service deciding with whatever policy `policy` serves at each Check.
    pub fn serving(policy: Arc<LivePolicy>, identity_header: &str) -> Self {
        let metrics = Arc::clone(policy.metrics());
        Self {
            policy,
            identity_header: (!identity_header.is_empty()).then(|| Arc::from(identity_header)),
            auditor: Arc::new(Auditor::metrics_only(metrics)),
            limits: limits::Limits::default(),
            deciders: Arc::default(),
        }
    }

    /// With these limits (the defaults until then).
    pub fn with_limits(self, config: &crate::config::LimitsConfig) -> Self {
        Self {
            limits: limits::Limits::new(config),
            ..self
        }
    }

    /// Audits every decision with `auditor`.
    pub fn with_auditor(self, auditor: Arc<Auditor>) -> Self {
        Self { auditor, ..self }
    }

    /// Decides and audits one CheckRequest. `metadata_parent` is the trace context of the
    /// Check call itself (gRPC metadata); the request's own HTTP headers are the fallback.
    pub fn check_request(
        &self,
        request: CheckRequest,
        metadata_parent: Option<TraceParent>,
    ) -> CheckResponse {
        // Without a deadline there is no error; were there one, it would still be a deny
        // (never an empty CheckResponse, which Envoy reads as OK).
        let policy = self.policy.current();
        // The server's own reading of the same bytes.
        let request =
            wire::CheckRequest::decode(request.encode_to_vec().as_slice()).unwrap_or_default();
        self.check_within(&policy, request, metadata_parent, |_| Ok(()))
            .map_or_else(
                |status| response::refused(&status),
                |answer| answer.to_check_response(),
            )
    }

    /// Decides and audits one CheckRequest; then `answered(elapsed)` says whether the decision
    /// is still what the caller gets, or how it was answered instead (the audit's error). When
    /// it is not, the decision is audited as unanswered and an error returned.
    fn check_within(
        &self,
        policy: &Policy,
        request: wire::CheckRequest,
        metadata_parent: Option<TraceParent>,
        answered: impl FnOnce(Duration) -> Result<(), String>,
    ) -> Result<CheckAnswer, Status> {
        let start = SystemTime::now();
        let timer = Instant::now();
        let malformed = request.attributes.is_none();
        let request = convert::from_wire(request);
        let decision = policy.decide(&request, start);
        let elapsed = timer.elapsed();
        let late = answered(elapsed).err();
        let problem = match (&late, malformed) {
            (Some(late), _) => Some(late.as_str()),
            (None, true) => Some("malformed CheckRequest: no attributes"),
            (None, false) => None,
        };
        let parent = metadata_parent.or_else(|| {
            request
                .http
                .as_ref()
                .and_then(|http| TraceParent::extract(|name| http.header(name)))
        });
        self.auditor
            .record(&decision, &request, problem, start, elapsed, parent);
        if late.is_some() {
            return Err(Status::deadline_exceeded(format!(
                "{} decided after the Check was answered",
                decision.id
            )));
        }
        Ok(CheckAnswer::new(&decision, self.identity_header.as_deref()))
    }

    /// Answers one `envoy.service.auth.v3.Authorization/Check` call: admitted within
    /// `limits.max_concurrent_checks`, decided on this async worker (a cheap policy) or a decider
    /// thread, and answered within its deadline (`grpc-timeout`, else the configured one).
    async fn check(
        &self,
        request: Request<wire::CheckRequest>,
    ) -> Result<Response<CheckAnswer>, Status> {
        let metrics = self.auditor.metrics();
        // Deadlines count from when the call arrived, not from when its body was decoded.
        let marker = request
            .extensions()
            .get::<Arc<calls::CallMarker>>()
            .cloned();
        if let Some(marker) = &marker {
            marker.handled();
        }
        let arrived = marker.map_or_else(Instant::now, |m| m.arrived);
        let Some(permit) = self.limits.admit() else {
            metrics.refused(Refusal::Overloaded);
            return Err(Status::resource_exhausted(
                "warrant is deciding limits.max_concurrent_checks Checks already; this one was not decided",
            ));
        };
        // Envoy's tracer injects the ext_authz call's span context into the gRPC metadata. One
        // pass over its few entries finds the deadline and whether there is trace context,
        // rather than six lookups that mostly miss.
        let metadata = request.metadata();
        // The first `grpc-timeout`, as `get` would give it.
        let mut grpc_timeout: Option<Option<&str>> = None;
        let mut traced = false;
        for entry in metadata.iter() {
            if let tonic::metadata::KeyAndValueRef::Ascii(key, value) = entry {
                match key.as_str() {
                    "grpc-timeout" => {
                        grpc_timeout.get_or_insert(value.to_str().ok());
                    }
                    name => traced |= TraceParent::is_trace_header(name),
                }
            }
        }
        let parent = if traced {
            TraceParent::extract(|name| metadata.get(name).and_then(|v| v.to_str().ok()))
        } else {
            None
        };
        let deadline = self.limits.deadline(grpc_timeout.flatten());
        let request = request.into_inner();
        let slot = (permit, metrics.check_in_flight());
        let policy = self.policy.current();
        // A cheap policy's Checks are decided here: the hand-off would cost more.
        let deciders = if policy.is_cheap() {
            None
        } else {
            self.deciders()
        };
        let Some(deciders) = deciders else {
            let _slot = slot;
            let result = self.check_within(&policy, request, parent, |_| {
                let since = arrived.elapsed();
                if since <= deadline {
                    Ok(())
                } else {
                    Err(late(since, deadline))
                }
            });
            if result.is_err() {
                metrics.refused(Refusal::Timeout);
            }
            return result.map(Response::new);
        };
        let answer = deciders::Answer::pending(slot);
        // Dropped unfinished when the caller cancels (Envoy's timeout, a reset stream).
        let mut cancel = CancelOnDrop {
            answer: Arc::clone(&answer),
            metrics,
        };
        let (sender, mut receiver) = tokio::sync::oneshot::channel();
        let service = self.clone();
        let policy = arc_swap::Guard::into_inner(policy);
        let claim = Arc::clone(&answer);
        let submitted = deciders.submit(move || {
            // Answered at its deadline, or cancelled, while queued: refused, never decided
            // (its slot is free already).
            if !claim.start() {
                return;
            }
            // The slot is freed when deciding ends, even by a panic.
            let _release = ReleaseOnDrop(&claim);
            let result = service.check_within(&policy, request, parent, |_| {
                let since = arrived.elapsed();
                claim.claim_decided().map_err(|preempted| match preempted {
                    deciders::Preempted::TimedOut => late(since, deadline),
                    deciders::Preempted::Cancelled => format!(
                        "the caller cancelled the Check while it was being decided (decided {since:?} after it arrived): {} nothing (Envoy's own timeout or a reset stream), not this decision",
                        crate::audit::UNANSWERED
                    ),
                })
            });
            let _ = sender.send(result);
        });
        if !submitted {
            cancel.abandon();
            return Err(Status::unavailable(
                "warrant's deciders have stopped; this Check was not decided",
            ));
        }
        // What is left of the deadline, less a margin for the time the call took to arrive:
        // the caller's clock started first, and a decision must not reach it after it gave up.
        let remaining = deadline
            .saturating_sub(arrived.elapsed())
            .saturating_sub((deadline / 20).min(DEADLINE_MARGIN));
        match tokio::time::timeout(remaining, &mut receiver).await {
            Ok(Ok(result)) => result.map(Response::new),
            Ok(Err(_)) => {
                cancel.abandon();
                Err(Status::internal(
                    "this Check's decider failed; it was not decided",
                ))
            }
            Err(_) => match answer.time_out() {
                Some(_) => {
                    metrics.refused(Refusal::Timeout);
                    Err(Status::deadline_exceeded(format!(
                        "not decided within its deadline of {deadline:?} after it arrived"
                    )))
                }
                // The decider answered first: its result is on its way.
                None => match receiver.await {
                    Ok(result) => result.map(Response::new),
                    Err(_) => {
                        cancel.abandon();
                        Err(Status::internal(
                            "this Check's decider failed; it was not decided",
                        ))
                    }
                },
            },
        }
    }
}

/// Where `policy`'s Checks are decided, for the log: on the async worker that received them
/// when every rule is cheap ([`Policy::is_cheap`]), else on the decider threads.
pub(crate) fn decided_on(policy: &Policy) -> &'static str {
    if policy.is_cheap() {
        "async workers"
    } else {
        "deciders"
    }
}

/// Most of a deadline kept back for the time a call takes to arrive (5% of it, at most this).
const DEADLINE_MARGIN: Duration = Duration::from_millis(20);

/// A Check's slot and its count in `warrant_checks_in_flight`.
type Slot = (tokio::sync::OwnedSemaphorePermit, crate::audit::InFlight);

/// Frees a started Check's slot when its decider is done with it.
struct ReleaseOnDrop<'a>(&'a deciders::Answer<Slot>);

impl Drop for ReleaseOnDrop<'_> {
    fn drop(&mut self) {
        self.0.release();
    }
}

/// The audit's error for a Check decided after its deadline answered it.
fn late(took: Duration, deadline: Duration) -> String {
    format!(
        "the Check was decided {took:?} after it arrived, past its deadline of {deadline:?}: {} DEADLINE_EXCEEDED, not this decision",
        crate::audit::UNANSWERED
    )
}

/// Marks a Check cancelled, and counts it, when its handler is dropped before it answered.
struct CancelOnDrop<'a> {
    answer: Arc<deciders::Answer<Slot>>,
    metrics: &'a Metrics,
}

impl CancelOnDrop<'_> {
    /// Warrant failed to decide the Check (its decider is gone): counted as an error, not as
    /// a cancellation, and its slot freed.
    fn abandon(&mut self) {
        self.answer.abandon();
        self.metrics.refused(Refusal::Error);
    }
}

impl Drop for CancelOnDrop<'_> {
    fn drop(&mut self) {
        if self.answer.cancel().is_some() {
            self.metrics.refused(Refusal::Cancelled);
        }
    }
}

impl AuthzService {
    /// The decider threads, started at the first call.
    fn deciders(&self) -> Option<&deciders::Deciders> {
        self.deciders
            .get_or_init(|| match deciders::Deciders::per_cpu() {
                Ok(deciders) => Some(deciders),
                Err(error) => {
                    tracing::error!(%error, "cannot start the decider threads; deciding Checks on the async workers");
                    None
                }
            })
            .as_ref()
    }
}

/// Serves `service` on `listener` until `shutdown` completes, with gRPC health checking and
/// a drain of at most 10 s (no reflection): for embedding and tests.
pub async fn serve(
    listener: TcpListener,
    service: AuthzService,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ServerError> {
    let options = ServeOptions {
        reflection: false,
        delay: Duration::ZERO,
        grace: Duration::from_secs(10),
        max_request_bytes: crate::config::LimitsConfig::default().max_request_bytes,
    };
    let incoming = tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
    serve_with(incoming, service, options, shutdown)
        .await
        .map(|_| ())
}

/// How the gRPC listener's drain ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Drained {
    /// Every call finished (or only endless streams such as health watches were left).
    Done,
    /// `shutdown_grace` passed with this many calls in flight: they are cut off.
    CutOff(usize),
}

/// Serves `service` (with gRPC health checking, and reflection when `reflection`) on
/// `listener` until `shutdown` completes; then health turns NOT_SERVING, the listener stops
/// accepting and Checks in flight finish, for at most `grace`.
async fn serve_with<I, IO, IE>(
    incoming: I,
    service: AuthzService,
    options: ServeOptions,
    shutdown: impl Future<Output = ()>,
) -> Result<Drained, ServerError>
where
    I: tokio_stream::Stream<Item = Result<IO, IE>>,
    IO: tokio::io::AsyncRead
        + tokio::io::AsyncWrite
        + tonic::transport::server::Connected
        + Unpin
        + Send
        + 'static,
    IE: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let incoming = tokio_stream::StreamExt::map(incoming, |accepted| {
        accepted.map(write_batching::BatchedWrites)
    });
    let (health, health_service) = tonic_health::server::health_reporter();
    health
        .set_service_status(AUTHORIZATION_SERVICE, tonic_health::ServingStatus::Serving)
        .await;
    let reflection = if options.reflection {
        Some(
            tonic_reflection::server::Builder::configure()
                .register_encoded_file_descriptor_set(EXT_AUTHZ_DESCRIPTORS)
                .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
                .build_v1()
                .map_err(|e| ServerError::Reflection(e.to_string()))?,
        )
    } else {
        None
    };
    let (draining_tx, draining_rx) = tokio::sync::oneshot::channel::<()>();
    let policy = Arc::clone(&service.policy);
    let calls = drain::CallsInFlight::default();
    let metrics = Arc::clone(service.auditor.metrics());
    let refusals = Arc::clone(&metrics);
    let server = tonic::transport::Server::builder()
        // A peer that vanished (its node gone, a network partition) is found by HTTP/2 PINGs
        // and its connection closed, instead of being held open forever.
        .http2_keepalive_interval(Some(KEEPALIVE_INTERVAL))
        .http2_keepalive_timeout(Some(KEEPALIVE_TIMEOUT))
        .layer(calls.clone())
        .add_service(health_service)
        .add_optional_service(reflection)
        .add_service(calls::CheckCalls::new(
            authorization::AuthorizationService::new(service, options.max_request_bytes),
            metrics,
        ))
        .serve_with_incoming_shutdown(incoming, async move {
            shutdown.await;
            // Readiness and health turn first, so load balancers stop sending.
            policy.stop_serving();
            for name in ["", AUTHORIZATION_SERVICE] {
                health
                    .set_service_status(name, tonic_health::ServingStatus::NotServing)
                    .await;
            }
            if !options.delay.is_zero() {
                tracing::info!(delay = ?options.delay, "shutting down: not serving; still accepting for shutdown_delay");
                tokio::time::sleep(options.delay).await;
            }
            tracing::info!(grace = ?options.grace, "shutting down: draining Checks in flight");
            let _ = draining_tx.send(());
        });
    tokio::pin!(server);
    let drained = async {
        if draining_rx.await.is_err() {
            std::future::pending::<()>().await;
        }
        calls.drained(options.grace).await
    };
    tokio::select! {
        result = &mut server => {
            result?;
            Ok(Drained::Done)
        }
        cut_off = drained => if cut_off {
            let cut = calls.count();
            refusals.refused_many(Refusal::Shutdown, u64::try_from(cut).unwrap_or(u64::MAX));
            tracing::warn!(
                grace = ?options.grace,
                calls = cut,
                "calls still in flight after shutdown_grace are cut off (counted as refused: shutdown)"
            );
            Ok(Drained::CutOff(cut))
        } else {
            tracing::info!("no call in flight: open streams (gRPC health watches) closed");
            Ok(Drained::Done)
        },
    }
}

/// How often an HTTP/2 PING checks that the peer of a connection is still there.
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(60);

/// How long a PING may go unanswered before the connection is closed.
const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(20);

/// How the gRPC listener serves.
#[derive(Debug, Clone, Copy)]
struct ServeOptions {
    reflection: bool,
    delay: Duration,
    grace: Duration,
    max_request_bytes: usize,
}
