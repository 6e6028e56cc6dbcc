//! Trust bundles from a SPIRE agent's Workload API (`trust.bundles_from.workload_api`),
//! against a fake agent in this test: bundles stream in, rotate and reload the policy; a
//! trust domain is untrusted until its bundle arrives; a broken bundle is refused whole.

// Test code: a failed unwrap, expect or assertion is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

use common::jwt::JwtSigner;
use tokio::sync::watch;
use tokio_stream::Stream;
use warrant::policy::{Stage, Verdict};
use warrant::server::live::LivePolicy;

const PAYMENTS: &str = "spiffe://prod.example.org/ns/shop/sa/payments";
const AUDIENCE: &str = "spiffe://prod.example.org/ns/shop/sa/orders";

#[derive(Clone, PartialEq, prost::Message)]
struct X509BundlesRequest {}

#[derive(Clone, PartialEq, prost::Message)]
struct X509BundlesResponse {
    #[prost(bytes = "vec", repeated, tag = "1")]
    crl: Vec<Vec<u8>>,
    #[prost(map = "string, bytes", tag = "2")]
    bundles: HashMap<String, Vec<u8>>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct JwtBundlesRequest {}

#[derive(Clone, PartialEq, prost::Message)]
struct JwtBundlesResponse {
    #[prost(map = "string, bytes", tag = "1")]
    bundles: HashMap<String, Vec<u8>>,
}

/// What the fake agent serves: X.509 bundles (DER, by trust domain SPIFFE ID) and JWT
/// bundles (JWK Sets); `None` until the test publishes them.
type Bundles = Option<BundleMaps>;

/// X.509 bundles and JWT bundles, by trust domain SPIFFE ID.
type BundleMaps = (HashMap<String, Vec<u8>>, HashMap<String, Vec<u8>>);

/// The Workload API's bundle streams (SPIFFE Workload API §5.2, §6.2), as a SPIRE agent
/// serves them: the current bundles, then every change. Refuses calls without the
/// `workload.spiffe.io: true` header, as the spec requires.
#[derive(Clone)]
struct FakeAgent(watch::Receiver<Bundles>, bool);

type BoxStream<T> = Pin<Box<dyn Stream<Item = Result<T, tonic::Status>> + Send>>;

fn updates<T: Send + 'static>(
    rx: watch::Receiver<Bundles>,
    pick: fn(&BundleMaps) -> T,
) -> BoxStream<T> {
    let stream = tokio_stream::wrappers::WatchStream::new(rx);
    Box::pin(tokio_stream::StreamExt::filter_map(
        stream,
        move |bundles| bundles.as_ref().map(|b| Ok(pick(b))),
    ))
}

struct X509Svc(watch::Receiver<Bundles>);
impl tonic::server::ServerStreamingService<X509BundlesRequest> for X509Svc {
    type Response = X509BundlesResponse;
    type ResponseStream = BoxStream<X509BundlesResponse>;
    type Future = Pin<
        Box<
            dyn Future<Output = Result<tonic::Response<Self::ResponseStream>, tonic::Status>>
                + Send,
        >,
    >;
    fn call(&mut self, request: tonic::Request<X509BundlesRequest>) -> Self::Future {
        let rx = self.0.clone();
        Box::pin(async move {
            check_header(&request)?;
            Ok(tonic::Response::new(updates(rx, |(x509, _)| {
                X509BundlesResponse {
                    crl: Vec::new(),
                    bundles: x509.clone(),
                }
            })))
        })
    }
}

struct JwtSvc(watch::Receiver<Bundles>);
impl tonic::server::ServerStreamingService<JwtBundlesRequest> for JwtSvc {
    type Response = JwtBundlesResponse;
    type ResponseStream = BoxStream<JwtBundlesResponse>;
    type Future = Pin<
        Box<
            dyn Future<Output = Result<tonic::Response<Self::ResponseStream>, tonic::Status>>
                + Send,
        >,
    >;
    fn call(&mut self, request: tonic::Request<JwtBundlesRequest>) -> Self::Future {
        let rx = self.0.clone();
        Box::pin(async move {
            check_header(&request)?;
            Ok(tonic::Response::new(updates(rx, |(_, jwt)| {
                JwtBundlesResponse {
                    bundles: jwt.clone(),
                }
            })))
        })
    }
}

fn check_header<T>(request: &tonic::Request<T>) -> Result<(), tonic::Status> {
    match request.metadata().get("workload.spiffe.io") {
        Some(value) if value == "true" => Ok(()),
        _ => Err(tonic::Status::invalid_argument(
            "security header missing from request",
        )),
    }
}

impl tonic::server::NamedService for FakeAgent {
    const NAME: &'static str = "SpiffeWorkloadAPI";
}

impl tower::Service<http::Request<tonic::body::Body>> for FakeAgent {
    type Response = http::Response<tonic::body::Body>;
    type Error = std::convert::Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<tonic::body::Body>) -> Self::Future {
        let rx = self.0.clone();
        let serves_jwt = self.1;
        Box::pin(async move {
            Ok(match request.uri().path() {
                "/SpiffeWorkloadAPI/FetchX509Bundles" => {
                    tonic::server::Grpc::new(tonic_prost::ProstCodec::default())
                        .server_streaming(X509Svc(rx), request)
                        .await
                }
                "/SpiffeWorkloadAPI/FetchJWTBundles" if serves_jwt => {
                    tonic::server::Grpc::new(tonic_prost::ProstCodec::default())
                        .server_streaming(JwtSvc(rx), request)
                        .await
                }
                _ => tonic::Status::unimplemented("").into_http(),
            })
        })
    }
}

/// Serves the fake agent on a Unix socket; returns the sender that publishes bundles.
async fn start_agent(socket: &std::path::Path) -> watch::Sender<Bundles> {
    start_agent_serving(socket, true).await
}

/// The fake agent; without `jwt`, FetchJWTBundles is UNIMPLEMENTED.
async fn start_agent_serving(socket: &std::path::Path, jwt: bool) -> watch::Sender<Bundles> {
    let (tx, rx) = watch::channel(None);
    let listener = tokio::net::UnixListener::bind(socket).unwrap();
    let incoming = tokio_stream::wrappers::UnixListenerStream::new(listener);
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(FakeAgent(rx, jwt))
            .serve_with_incoming(incoming),
    );
    tx
}

fn publish(tx: &watch::Sender<Bundles>, ca: &common::Ca, signer: &JwtSigner) {
    let x509 = HashMap::from([("spiffe://prod.example.org".to_owned(), ca.der.clone())]);
    let jwks = common::jwt::bundle(&[signer.jwk()]).into_bytes();
    let jwt = HashMap::from([("spiffe://prod.example.org".to_owned(), jwks)]);
    tx.send_replace(Some((x509, jwt)));
}

/// Writes `policy` to `dir/policy.yaml` and serves it (any port, no decision log, plus the
/// `config` lines); returns the serving policy and the admin address, if any.
async fn serve(
    dir: &std::path::Path,
    policy: &str,
    config: &str,
) -> (Arc<LivePolicy>, Option<std::net::SocketAddr>) {
    let path = dir.join("policy.yaml");
    std::fs::write(&path, policy).unwrap();
    let config = warrant::config::Config::parse(
        &dir.join("warrant.yaml"),
        &format!(
            "listen: 127.0.0.1:0\npolicy: {}\ndecision_log: {{to: off}}\n{config}",
            path.display()
        ),
    )
    .unwrap();
    let bound = warrant::server::bind(config).await.unwrap();
    let live = Arc::clone(bound.policy());
    let admin = bound.admin_addr();
    tokio::spawn(async move { bound.serve(std::future::pending()).await.unwrap() });
    (live, admin)
}

/// Waits until `done` holds, polling every 25 ms at most `attempts` times (the assertion
/// that follows says what did not happen).
async fn eventually(mut done: impl FnMut() -> bool, attempts: usize) {
    for _ in 0..attempts {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Publishes `bundle` (with a JWT key) through the fake agent, waits until no trust domain
/// of the serving policy is waiting for bundles, and returns how a Check with an SVID that
/// `issuer` signed is decided.
async fn publish_then_decide(
    agent: &watch::Sender<Bundles>,
    live: &LivePolicy,
    bundle: &common::Ca,
    issuer: &common::Ca,
) -> warrant::policy::Decision {
    publish(agent, bundle, &JwtSigner::new("ES256", "k"));
    eventually(|| live.current().trust().pending_bundles().is_empty(), 200).await;
    live.current()
        .decide(&request_with_svid(issuer), SystemTime::now())
}

/// `trust:` naming the fake agent at `socket` as the bundle source.
fn streamed(socket: &std::path::Path, extra: &str) -> String {
    format!(
        "trust:\n  trust_domains: [prod.example.org]\n  bundles_from: {{workload_api: \"unix://{}\"}}\n{extra}",
        socket.display()
    )
}

const ALLOW_PROD: &str = "rules:\n  - id: all\n    effect: allow\n    when: source.trust_domain == \"prod.example.org\"\n";

/// A request from the payments workload with a certificate `ca` issued.
fn request_with_svid(ca: &common::Ca) -> warrant::request::AuthzRequest {
    let mut request = common::policy::request(PAYMENTS, "GET", "/");
    request.source.certificate = ca.svid(PAYMENTS).url_encoded();
    request
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bundles_stream_in_rotate_and_a_broken_one_is_refused() {
    let dir = common::fixtures::temp_dir("wlapi", "stream");
    let socket = dir.join("agent.sock");
    let agent = start_agent(&socket).await;
    let policy = streamed(
        &socket,
        &format!(
            "  workload_tokens: {{audiences: [\"{AUDIENCE}\"]}}\nrules:\n  - id: verified\n    effect: allow\n    when: workload.verified\n"
        ),
    );
    let (live, _) = serve(&dir, &policy, "reload: {watch: false}\n").await;

    let first = common::Ca::new("first");
    let signer = JwtSigner::new("ES256", "k1");
    let decide = |ca: &common::Ca, signer: &JwtSigner| {
        let mut request = request_with_svid(ca);
        if let Some(http) = request.http.as_mut() {
            http.headers.push((
                "authorization".into(),
                format!("Bearer {}", signer.token(PAYMENTS, AUDIENCE)),
            ));
        }
        live.current().decide(&request, SystemTime::now())
    };

    // Before the agent sent anything: untrusted, and why.
    let pending = decide(&first, &signer);
    assert_eq!(
        (pending.verdict, pending.stage),
        (Verdict::Deny, Stage::Trust)
    );
    assert!(
        pending.reason.contains("none has arrived yet"),
        "{}",
        pending.reason
    );
    assert_eq!(
        live.current().trust().pending_bundles(),
        ["prod.example.org"]
    );

    // The bundles arrive: the X.509-SVID chains, the JWT-SVID verifies.
    publish(&agent, &first, &signer);
    // The X.509 and JWT bundles stream separately: wait until both are in.
    eventually(|| decide(&first, &signer).verdict == Verdict::Allow, 200).await;
    let allowed = decide(&first, &signer);
    assert_eq!(allowed.verdict, Verdict::Allow, "{}", allowed.reason);
    assert!(live.current().trust().pending_bundles().is_empty());

    // Rotation: a new CA and JWT key; the old ones no longer vouch.
    let second = common::Ca::new("second");
    let rotated = JwtSigner::new("ES384", "k2");
    publish(&agent, &second, &rotated);
    eventually(|| decide(&second, &rotated).verdict == Verdict::Allow, 200).await;
    assert_eq!(decide(&second, &rotated).verdict, Verdict::Allow);
    let revision = live.current().revision().to_string();
    let old = decide(&first, &signer);
    assert_eq!(old.stage, Stage::Trust, "{}", old.reason);
    let old_key = decide(&second, &signer);
    assert_eq!(old_key.verdict, Verdict::Deny, "{}", old_key.reason);

    // A JWT bundle the agent garbles is skipped: the last JWT authorities received keep
    // serving (never none).
    agent.send_replace(Some((
        HashMap::from([("spiffe://prod.example.org".to_owned(), second.der.clone())]),
        HashMap::from([("spiffe://prod.example.org".to_owned(), b"not json".to_vec())]),
    )));
    for _ in 0..8 {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let kept = decide(&second, &rotated);
        assert_eq!(kept.verdict, Verdict::Allow, "{}", kept.reason);
    }

    // A broken bundle (a leaf where a CA belongs) is refused whole: the last one serves.
    let failures = live.metrics().reload_counts().1;
    let leaf = second.svid(PAYMENTS);
    let leaf_der = x509_der(&leaf.pem);
    agent.send_replace(Some((
        HashMap::from([("spiffe://prod.example.org".to_owned(), leaf_der)]),
        HashMap::new(),
    )));
    eventually(|| live.metrics().reload_counts().1 > failures, 600).await;
    assert!(
        live.metrics().reload_counts().1 > failures,
        "the broken bundle was not refused"
    );
    assert_eq!(live.current().revision().as_ref(), revision);
    assert_eq!(decide(&second, &rotated).verdict, Verdict::Allow);
}

fn x509_der(pem: &str) -> Vec<u8> {
    use base64::Engine as _;
    let body: String = pem
        .lines()
        .filter(|line| !line.starts_with("-----"))
        .collect();
    base64::engine::general_purpose::STANDARD
        .decode(body)
        .unwrap()
}

#[test]
fn a_bad_endpoint_fails_the_load() {
    for endpoint in [
        "/run/spire/agent.sock",
        "tcp://localhost:8081",
        "tcp://127.0.0.1:0",
        "tcp://user@127.0.0.1:8081",
        "unix:///x.sock?a=1",
        "unix:///x.sock#f",
        "unix:///",
    ] {
        let errors = common::policy::errors(&[(
            "policy.yaml",
            &format!(
                "trust:\n  trust_domains: [prod.example.org]\n  bundles_from: {{workload_api: \"{endpoint}\"}}\n"
            ),
        )]);
        assert!(
            errors[0]
                .contains("is not a Workload API endpoint: write unix:///run/spire/agent.sock"),
            "{endpoint}: {errors:?}"
        );
    }
    for endpoint in [
        "unix:/run/spire/agent.sock",
        "tcp://127.0.0.1:8081",
        "tcp://[::1]:8081",
    ] {
        common::policy::compile_files(&[(
            "policy.yaml",
            &format!(
                "trust:\n  trust_domains: [prod.example.org]\n  bundles_from: {{workload_api: \"{endpoint}\"}}\n"
            ),
        )])
        .unwrap_or_else(|e| panic!("{endpoint}: {e}"));
    }
}

/// `bundles_from` added by a reload is followed: the stream starts without a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bundles_from_added_by_a_reload_is_followed() {
    let dir = common::fixtures::temp_dir("wlapi", "later");
    let socket = dir.join("agent.sock");
    let agent = start_agent(&socket).await;
    let policy = format!("trust:\n  trust_domains: [prod.example.org]\n{ALLOW_PROD}");
    let (live, _) = serve(&dir, &policy, "reload: {watch: false}\n").await;
    std::fs::write(dir.join("policy.yaml"), streamed(&socket, ALLOW_PROD)).unwrap();
    live.reload();
    assert_eq!(
        live.current().trust().pending_bundles(),
        ["prod.example.org"]
    );
    let ca = common::Ca::new("ca");
    let decision = publish_then_decide(&agent, &live, &ca, &ca).await;
    assert_eq!(decision.verdict, Verdict::Allow, "{}", decision.reason);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_waits_for_the_bundles_and_check_says_where_they_come_from() {
    let dir = common::fixtures::temp_dir("wlapi", "ready");
    let socket = dir.join("agent.sock");
    let agent = start_agent(&socket).await;
    // `unix:/path`, the other spelling of a socket endpoint.
    let policy = format!(
        "trust:\n  trust_domains: [prod.example.org]\n  bundles_from: {{workload_api: \"unix:{}\"}}\nrules: []\n",
        socket.display()
    );
    let (live, admin) = serve(&dir, &policy, "admin: {listen: 127.0.0.1:0}\n").await;
    let admin = admin.unwrap();
    let policy = dir.join("policy.yaml");
    let (status, body) = common::fixtures::http_get(admin, "/readyz");
    assert_eq!(status, 503, "{body}");
    assert!(
        body.contains("waiting for trust bundles from the Workload API"),
        "{body}"
    );
    let (_, page) = common::fixtures::http_get(admin, "/");
    assert!(
        page.contains("still waiting for: prod.example.org"),
        "{page}"
    );
    publish(
        &agent,
        &common::Ca::new("ca"),
        &JwtSigner::new("ES256", "k"),
    );
    eventually(|| live.current().trust().pending_bundles().is_empty(), 200).await;
    let (status, body) = common::fixtures::http_get(admin, "/readyz");
    assert_eq!(status, 200, "{body}");
    // Offline tools say where the bundle comes from.
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_warrant"))
        .args(["check", &policy.display().to_string()])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains("bundles of prod.example.org come from the Workload API at unix:"),
        "{stdout}"
    );
}

/// SPIRE signing through an upstream authority: the agent streams the root, the
/// intermediates come from a file, and a leaf under them verifies.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn intermediates_complete_a_streamed_bundle() {
    let dir = common::fixtures::temp_dir("wlapi", "inter");
    let socket = dir.join("agent.sock");
    let agent = start_agent(&socket).await;
    let root = common::Ca::new("upstream root");
    let intermediate = root.intermediate("spire intermediate");
    std::fs::write(dir.join("intermediates.pem"), &intermediate.pem).unwrap();
    let policy = streamed(
        &socket,
        &format!(
            "  bundles: {{prod.example.org: {{intermediates: intermediates.pem}}}}\n{ALLOW_PROD}"
        ),
    );
    let (live, _) = serve(&dir, &policy, "reload: {watch: false}\n").await;
    let decision = publish_then_decide(&agent, &live, &root, &intermediate).await;
    assert_eq!(decision.verdict, Verdict::Allow, "{}", decision.reason);
    // Without bundles_from, intermediates alone are an error that says what to do.
    let errors = common::policy::errors(&[(
        "policy.yaml",
        "trust:\n  trust_domains: [prod.example.org]\n  bundles: {prod.example.org: {intermediates: i.pem}}\n",
    )]);
    assert!(
        errors[0].contains("needs a path") || errors[0].contains("has intermediates but no path"),
        "{errors:?}"
    );
}

/// An agent that streams no JWT bundles still delivers its X.509 ones.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn x509_bundles_flow_without_jwt_bundles() {
    let dir = common::fixtures::temp_dir("wlapi", "nojwt");
    let socket = dir.join("agent.sock");
    let agent = start_agent_serving(&socket, false).await;
    let (live, _) = serve(
        &dir,
        &streamed(&socket, ALLOW_PROD),
        "reload: {watch: false}\n",
    )
    .await;
    let ca = common::Ca::new("ca");
    let decision = publish_then_decide(&agent, &live, &ca, &ca).await;
    assert_eq!(decision.verdict, Verdict::Allow, "{}", decision.reason);
}
