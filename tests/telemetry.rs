//! Audit end to end in process: the real server (`server::bind`) exporting spans to an
//! in-test OTLP collector, writing the decision log to a file and serving metrics.

// Test code: a failed unwrap, expect or assertion is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use envoy_types::ext_authz::v3::pb::{CheckRequest, CheckResponse, HttpResponse};
use envoy_types::pb::envoy::service::auth::v3::authorization_client::AuthorizationClient;
use envoy_types::pb::envoy::service::auth::v3::{AttributeContext, attribute_context};
use envoy_types::pb::google::protobuf::value::Kind;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value;
use opentelemetry_proto::tonic::trace::v1::Span;
use tokio::net::TcpListener;
use warrant::audit::Sink;
use warrant::config::Config;

const FRONTEND: &str = "spiffe://prod.example.org/ns/shop/sa/frontend";
const SECRET: &str = "Bearer s3cr3t-token";
const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT_SPAN: &str = "00f067aa0ba902b7";

/// An OTLP/gRPC trace collector that keeps what it receives.
#[derive(Clone, Default)]
struct Collector {
    received: Arc<Mutex<Vec<ExportTraceServiceRequest>>>,
    /// Exports answered UNAVAILABLE before the next one is accepted.
    unavailable: Arc<std::sync::atomic::AtomicUsize>,
    /// Spans each accepted export says it rejected (OTLP partial success).
    rejecting: Arc<std::sync::atomic::AtomicI64>,
}

#[tonic::async_trait]
impl TraceService for Collector {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        use std::sync::atomic::Ordering::SeqCst;
        let unavailable = self.unavailable.load(SeqCst);
        if unavailable > 0 {
            self.unavailable.store(unavailable - 1, SeqCst);
            return Err(tonic::Status::unavailable("warming up"));
        }
        self.received.lock().unwrap().push(request.into_inner());
        let rejected_spans = self.rejecting.load(SeqCst);
        Ok(tonic::Response::new(ExportTraceServiceResponse {
            partial_success: (rejected_spans > 0).then(|| {
                opentelemetry_proto::tonic::collector::trace::v1::ExportTracePartialSuccess {
                    rejected_spans,
                    error_message: "too many attributes".into(),
                }
            }),
        }))
    }
}

impl Collector {
    async fn start() -> (Self, SocketAddr) {
        let collector = Collector::default();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let service = TraceServiceServer::new(collector.clone());
        tokio::spawn(async move {
            tonic::transport::Server::builder()
                .add_service(service)
                .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener))
                .await
                .unwrap();
        });
        (collector, addr)
    }

    fn spans(&self) -> Vec<Span> {
        self.received
            .lock()
            .unwrap()
            .iter()
            .flat_map(|r| &r.resource_spans)
            .flat_map(|rs| &rs.scope_spans)
            .flat_map(|ss| ss.spans.clone())
            .collect()
    }

    fn service_names(&self) -> Vec<String> {
        self.received
            .lock()
            .unwrap()
            .iter()
            .flat_map(|r| &r.resource_spans)
            .filter_map(|rs| rs.resource.as_ref())
            .flat_map(|r| &r.attributes)
            .filter(|kv| kv.key == "service.name")
            .filter_map(|kv| string_value(kv.value.as_ref()))
            .collect()
    }
}

fn string_value(
    value: Option<&opentelemetry_proto::tonic::common::v1::AnyValue>,
) -> Option<String> {
    match value?.value.as_ref()? {
        any_value::Value::StringValue(s) => Some(s.clone()),
        _ => None,
    }
}

fn attributes(span: &Span) -> HashMap<String, String> {
    span.attributes
        .iter()
        .filter_map(|kv| Some((kv.key.clone(), string_value(kv.value.as_ref())?)))
        .collect()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

struct Running {
    client: AuthorizationClient<tonic::transport::Channel>,
    auditor: Arc<warrant::audit::Auditor>,
    admin: Option<SocketAddr>,
    log: PathBuf,
    _dir: common::fixtures::ScratchDir,
}

/// Starts the real server with the test policy, a decision log in a file and an admin
/// listener. `telemetry` is the `telemetry:` section's body.
async fn start_warrant(name: &str, telemetry: &str) -> Running {
    start_warrant_logging_to(name, telemetry, None).await
}

async fn start_warrant_logging_to(
    name: &str,
    telemetry: &str,
    decision_log: Option<&str>,
) -> Running {
    let dir = common::fixtures::temp_dir("telemetry", name);
    let policy = dir.join("policy.yaml");
    std::fs::write(
        &policy,
        r#"
trust:
  trust_domains: [prod.example.org]
rules:
  - id: no-admin
    effect: deny
    when: request.path.startsWith("/admin")
  - id: frontend-reads
    effect: allow
    when: source.service_account == "frontend" && request.method == "GET"
  - id: leaks-if-logged
    effect: allow
    when: request.headers["authorization"]
  - id: leaks-if-compared
    effect: allow
    when: request.headers["authorization"] > 5
  - id: leaks-if-parsed
    effect: allow
    when: duration(request.headers["x-api-key"]) > duration("1s")
  - id: leaks-if-used-as-key
    effect: allow
    when: request.headers[request.headers["x-api-key"]] == "x"
  - id: shadow-payments
    effect: deny
    mode: audit
    when: request.path.startsWith("/payments")
"#,
    )
    .unwrap();
    let log = decision_log.map_or_else(|| dir.join("decisions.jsonl"), PathBuf::from);
    let config = Config::parse(
        &dir.join("warrant.yaml"),
        &format!(
            "listen: 127.0.0.1:0\npolicy: {}\ntelemetry:\n  service_name: warrant-test\n{telemetry}\ndecision_log: {{to: {}}}\nadmin: {{listen: 127.0.0.1:0}}\nsensitive_headers: [X-Api-Key]\n",
            policy.display(),
            log.display()
        ),
    )
    .unwrap();
    let bound = warrant::server::bind(config).await.unwrap();
    let grpc = bound.grpc_addr().unwrap();
    let admin = bound.admin_addr();
    let auditor = Arc::clone(bound.auditor());
    tokio::spawn(async move { bound.serve(std::future::pending()).await.unwrap() });
    let client = AuthorizationClient::connect(format!("http://{grpc}"))
        .await
        .unwrap();
    Running {
        client,
        auditor,
        admin,
        log,
        _dir: dir,
    }
}

fn check_request(method: &str, path: &str, headers: &[(&str, &str)]) -> CheckRequest {
    CheckRequest {
        attributes: Some(AttributeContext {
            source: Some(attribute_context::Peer {
                principal: FRONTEND.into(),
                ..Default::default()
            }),
            destination: Some(attribute_context::Peer {
                principal: "spiffe://prod.example.org/ns/shop/sa/payments".into(),
                ..Default::default()
            }),
            request: Some(attribute_context::Request {
                time: None,
                http: Some(attribute_context::HttpRequest {
                    method: method.into(),
                    path: path.into(),
                    host: "payments.shop".into(),
                    headers: headers
                        .iter()
                        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                        .collect(),
                    ..Default::default()
                }),
            }),
            ..Default::default()
        }),
    }
}

async fn check(
    client: &mut AuthorizationClient<tonic::transport::Channel>,
    request: CheckRequest,
    metadata: &[(&'static str, &str)],
) -> CheckResponse {
    let mut request = tonic::Request::new(request);
    for (k, v) in metadata {
        request.metadata_mut().insert(*k, v.parse().unwrap());
    }
    client.check(request).await.unwrap().into_inner()
}

/// Waits until every queued record is written and exported.
async fn flush(w: &Running) {
    let auditor = Arc::clone(&w.auditor);
    let flushed = tokio::task::spawn_blocking(move || auditor.flush(Duration::from_secs(15)))
        .await
        .unwrap();
    assert!(flushed, "audit sinks did not flush in time");
}

fn decision_id(response: &CheckResponse) -> String {
    match &response.dynamic_metadata.as_ref().unwrap().fields["decision_id"].kind {
        Some(Kind::StringValue(s)) => s.clone(),
        other => panic!("{other:?}"),
    }
}

fn span_for<'a>(spans: &'a [Span], decision_id: &str) -> &'a Span {
    spans
        .iter()
        .find(|s| attributes(s).get("authz.decision_id").map(String::as_str) == Some(decision_id))
        .unwrap_or_else(|| panic!("no span for decision {decision_id} in {spans:#?}"))
}

fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
    let (status, _, body) = http_request(addr, "GET", path);
    (status, body)
}

/// One HTTP/1.1 request: (status, lower-cased head, body).
fn http_request(addr: SocketAddr, method: &str, path: &str) -> (u16, String, String) {
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nhost: admin\r\nconnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let status = response[9..12].parse().unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    (status, head.to_ascii_lowercase(), body.to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_decision_log_and_metrics() {
    let (collector, collector_addr) = Collector::start().await;
    let mut w = start_warrant(
        "ok",
        &format!("  otlp: {{endpoint: \"http://{collector_addr}\"}}"),
    )
    .await;

    // 1. Trace context in the gRPC metadata (as Envoy's tracer injects it): parent of our span.
    let traceparent = format!("00-{TRACE_ID}-{PARENT_SPAN}-01");
    let allowed = check(
        &mut w.client,
        check_request(
            "GET",
            "/payments/1?x=1",
            &[("authorization", SECRET), ("x-request-id", "req-42")],
        ),
        &[("traceparent", &traceparent), ("tracestate", "vendor=abc")],
    )
    .await;
    // 2. No metadata: fall back to the trace headers inside the HTTP request.
    let header_trace = "0af7651916cd43dd8448eb211c80319c";
    let denied = check(
        &mut w.client,
        check_request(
            "GET",
            "/admin",
            &[
                (
                    "traceparent",
                    &format!("00-{header_trace}-b7ad6b7169203331-01"),
                ),
                ("cookie", "session=s3cr3t-token"),
            ],
        ),
        &[],
    )
    .await;
    // 3. B3 in the metadata.
    let b3 = check(
        &mut w.client,
        check_request("DELETE", "/payments/1", &[]),
        &[
            ("x-b3-traceid", "463ac35c9f6413ad48485a3953bb6124"),
            ("x-b3-spanid", "a2fb4a1d1a96d312"),
            ("x-b3-sampled", "1"),
        ],
    )
    .await;
    // 4. Rules that fail on secret headers — one evaluates to the authorization header, one
    // compares it, one parses a configured sensitive header, one uses it as a map key: the
    // engine's messages quote operands, inputs and keys — and a malformed request.
    let leaky = check(
        &mut w.client,
        check_request(
            "POST",
            "/payments/1",
            &[("authorization", SECRET), ("x-api-key", "k3y-s3cr3t-value")],
        ),
        &[],
    )
    .await;
    let malformed = check(&mut w.client, CheckRequest::default(), &[]).await;
    // 5. Unsampled parent: no span, but a log line.
    let unsampled = check(
        &mut w.client,
        check_request("GET", "/payments/2", &[]),
        &[("traceparent", &format!("00-{TRACE_ID}-{PARENT_SPAN}-00"))],
    )
    .await;

    flush(&w).await;

    let spans = collector.spans();
    assert_eq!(spans.len(), 5, "{spans:#?}");
    let services = collector.service_names();
    assert!(!services.is_empty());
    assert!(services.iter().all(|n| n == "warrant-test"), "{services:?}");
    for span in &spans {
        let text = format!("{span:?}");
        assert!(
            !text.contains("s3cr3t"),
            "secret leaked into a span: {text}"
        );
        assert_eq!(span.name, "authz.check");
        assert_eq!(span.kind, 2, "SERVER");
    }

    let span = span_for(&spans, &decision_id(&allowed));
    assert_eq!(hex(&span.trace_id), TRACE_ID);
    assert_eq!(hex(&span.parent_span_id), PARENT_SPAN);
    assert_eq!(span.trace_state, "vendor=abc");
    let a = attributes(span);
    assert_eq!(a["spiffe.id"], FRONTEND);
    assert_eq!(a["spiffe.trust_domain"], "prod.example.org");
    assert_eq!(a["authz.decision"], "allow");
    assert_eq!(a["authz.stage"], "rules");
    assert_eq!(a["authz.rule"], "frontend-reads");
    assert_eq!(a["authz.shadow"], "shadow-payments");
    let revision = a["authz.policy_revision"].clone();
    assert!(
        revision.len() == 12 && revision.bytes().all(|b| b.is_ascii_hexdigit()),
        "{revision}"
    );
    assert_eq!(a["authz.reason"], "allow rule 'frontend-reads' matched");
    assert_eq!(a["http.request.method"], "GET");
    assert_eq!(a["url.path"], "/payments/1");
    assert_eq!(a["server.address"], "payments.shop");
    assert_eq!(
        a["destination.principal"],
        "spiffe://prod.example.org/ns/shop/sa/payments"
    );
    assert_eq!(a["peer.principal"], FRONTEND);
    assert_eq!(a["request.id"], "req-42");
    assert_eq!(
        span.status.as_ref().map_or(0, |s| s.code),
        0,
        "allow: status unset"
    );

    // One decision id joins the denied body, Envoy's dynamic metadata and the span (and, below,
    // the decision-log line).
    let denied_body = match &denied.http_response {
        Some(HttpResponse::DeniedResponse(response)) => response.body.clone(),
        other => panic!("{other:?}"),
    };
    let denied_body: serde_json::Value = serde_json::from_str(&denied_body).unwrap();
    assert_eq!(denied_body["decision_id"], decision_id(&denied).as_str());
    let span = span_for(&spans, &decision_id(&denied));
    assert_eq!(hex(&span.trace_id), header_trace);
    assert_eq!(hex(&span.parent_span_id), "b7ad6b7169203331");
    assert_eq!(attributes(span)["authz.decision"], "deny");
    assert_eq!(attributes(span)["authz.rule"], "no-admin");
    assert!(!attributes(span).contains_key("authz.shadow"));
    assert_eq!(
        span.status.as_ref().map_or(0, |s| s.code),
        0,
        "a deny is not an error"
    );

    let span = span_for(&spans, &decision_id(&b3));
    assert_eq!(hex(&span.trace_id), "463ac35c9f6413ad48485a3953bb6124");
    assert_eq!(hex(&span.parent_span_id), "a2fb4a1d1a96d312");
    assert_eq!(attributes(span)["authz.stage"], "default");

    let span = span_for(&spans, &decision_id(&leaky));
    assert_eq!(
        span.status.as_ref().unwrap().code,
        2,
        "evaluation failure: ERROR"
    );
    let message = &span.status.as_ref().unwrap().message;
    for rule in [
        "leaks-if-logged",
        "leaks-if-compared",
        "leaks-if-parsed",
        "leaks-if-used-as-key",
    ] {
        assert!(message.contains(rule), "{message}");
    }
    // A missing key computed from the request is not named.
    assert!(
        message.contains("no such key (a key computed from the request)"),
        "{message}"
    );
    assert!(
        span.parent_span_id.is_empty(),
        "no caller trace: a root span"
    );

    let span = span_for(&spans, &decision_id(&malformed));
    assert_eq!(span.status.as_ref().unwrap().code, 2, "malformed: ERROR");
    assert_eq!(attributes(span)["authz.stage"], "trust");

    // Decision log: one line per decision, joined to spans and responses by decision_id.
    let log = std::fs::read_to_string(&w.log).unwrap();
    assert!(
        !log.contains("s3cr3t"),
        "secret leaked into the decision log"
    );
    let lines: Vec<serde_json::Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 6);
    let line = lines
        .iter()
        .find(|l| l["decision_id"] == decision_id(&allowed).as_str())
        .unwrap();
    for field in [
        "time",
        "decision_id",
        "trace_id",
        "span_id",
        "spiffe_id",
        "trust_domain",
        "principal",
        "method",
        "path",
        "host",
        "destination",
        "decision",
        "stage",
        "rule",
        "reason",
        "duration_us",
    ] {
        assert!(
            line.get(field).is_some(),
            "decision log lacks {field}: {line}"
        );
    }
    let span = span_for(&spans, &decision_id(&allowed));
    assert_eq!(line["trace_id"], TRACE_ID);
    assert_eq!(line["span_id"], hex(&span.span_id));
    assert_eq!(line["spiffe_id"], FRONTEND);
    assert_eq!(line["decision"], "allow");
    assert_eq!(line["path"], "/payments/1");
    assert_eq!(line["policy_revision"], revision.as_str());
    assert_eq!(
        line["shadow"],
        serde_json::json!([{"rule": "shadow-payments", "effect": "deny", "matched": true}])
    );
    assert!(line["duration_us"].as_u64().is_some());
    assert!(
        lines
            .iter()
            .any(|l| l["decision_id"] == decision_id(&unsampled).as_str())
    );
    let denied_line = lines
        .iter()
        .find(|l| l["decision_id"] == decision_id(&denied).as_str())
        .unwrap();
    assert_eq!(
        denied_line["span_id"],
        hex(&span_for(&spans, &decision_id(&denied)).span_id)
    );
    assert_eq!(denied_line["rule"], "no-admin");
    assert_eq!(denied_line["shadow"][0]["matched"], false);

    // Metrics and health on the admin listener.
    let admin = w.admin.unwrap();
    let (status, metrics) = tokio::task::spawn_blocking(move || http_get(admin, "/metrics"))
        .await
        .unwrap();
    assert_eq!(status, 200);
    assert!(
        metrics.contains(
            r#"warrant_checks_total{decision="allow",stage="rules",rule="frontend-reads"} 2"#
        ),
        "{metrics}"
    );
    assert!(
        metrics
            .contains(r#"warrant_checks_total{decision="deny",stage="rules",rule="no-admin"} 1"#)
    );
    assert!(metrics.contains("warrant_policy_rules 7"), "{metrics}");
    assert!(
        metrics.contains(r#"warrant_shadow_matches_total{rule="shadow-payments",effect="deny"} "#),
        "{metrics}"
    );
    assert!(
        metrics.contains("warrant_check_duration_seconds_count 6"),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"warrant_audit_dropped_total{sink="otlp"} 0"#),
        "{metrics}"
    );
    assert!(!metrics.contains("/payments"), "paths are never labels");
    for path in ["/healthz", "/readyz"] {
        let (status, _) = tokio::task::spawn_blocking(move || http_get(admin, path))
            .await
            .unwrap();
        assert_eq!(status, 200, "{path}");
    }
    let admin_requests = tokio::task::spawn_blocking(move || {
        [
            http_request(admin, "GET", "/metrics"),
            http_request(admin, "HEAD", "/metrics"),
            http_request(admin, "GET", "/nope"),
            http_request(admin, "POST", "/metrics"),
        ]
    })
    .await
    .unwrap();
    let [
        (_, head, _),
        (head_status, _, head_body),
        (missing, ..),
        (post, ..),
    ] = admin_requests;
    assert!(
        head.contains("content-type: application/openmetrics-text; version=1.0.0"),
        "{head}"
    );
    assert!(
        metrics.ends_with("# EOF\n"),
        "OpenMetrics text ends with # EOF"
    );
    assert_eq!((head_status, head_body.as_str()), (200, ""));
    assert_eq!((missing, post), (404, 405));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checks_go_on_when_the_collector_is_down() {
    // A port with nothing listening.
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let mut w = start_warrant("down", &format!("  otlp: {{endpoint: \"http://{dead}\"}}")).await;
    for _ in 0..20 {
        let response = check(&mut w.client, check_request("GET", "/payments/1", &[]), &[]).await;
        assert_eq!(response.status.unwrap().code, 0, "checks still decided");
    }
    flush(&w).await;
    assert_eq!(w.auditor.metrics().dropped_count(Sink::Otlp), 20);
    assert_eq!(std::fs::read_to_string(&w.log).unwrap().lines().count(), 20);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_briefly_unavailable_collector_gets_every_span_and_rejected_spans_are_counted() {
    use std::sync::atomic::Ordering::SeqCst;
    let (collector, addr) = Collector::start().await;
    // Two UNAVAILABLE answers: the export is retried with backoff (100 ms, 200 ms) and lands.
    collector.unavailable.store(2, SeqCst);
    let mut w = start_warrant("retry", &format!("  otlp: {{endpoint: \"http://{addr}\"}}")).await;
    for _ in 0..5 {
        check(&mut w.client, check_request("GET", "/payments/1", &[]), &[]).await;
    }
    flush(&w).await;
    assert_eq!(
        collector.unavailable.load(SeqCst),
        0,
        "both failures were seen"
    );
    assert_eq!(
        collector.spans().len(),
        5,
        "every span arrived after the retries"
    );
    assert_eq!(w.auditor.metrics().dropped_count(Sink::Otlp), 0);
    // A partial success: the spans the collector rejected are counted as dropped.
    collector.rejecting.store(2, SeqCst);
    for _ in 0..3 {
        check(&mut w.client, check_request("GET", "/payments/1", &[]), &[]).await;
    }
    flush(&w).await;
    assert_eq!(collector.spans().len(), 8);
    assert_eq!(w.auditor.metrics().dropped_count(Sink::Otlp), 2);
}

/// A TCP relay to `target` whose connections can be reset (RST), as a collector restarting
/// or a proxy dropping an idle connection does to the exporter's pooled connection.
struct Relay {
    addr: SocketAddr,
    connections: Arc<Mutex<Vec<tokio::task::JoinHandle<()>>>>,
}

impl Relay {
    async fn start(target: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let connections: Arc<Mutex<Vec<tokio::task::JoinHandle<()>>>> = Arc::default();
        let accepted = Arc::clone(&connections);
        tokio::spawn(async move {
            loop {
                let (mut inbound, _) = listener.accept().await.unwrap();
                // Closed with a reset, not a FIN.
                inbound.set_zero_linger().unwrap();
                accepted.lock().unwrap().push(tokio::spawn(async move {
                    let mut outbound = tokio::net::TcpStream::connect(target).await.unwrap();
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                }));
            }
        });
        Self { addr, connections }
    }

    /// Resets every connection relayed so far.
    async fn reset(&self) {
        let connections: Vec<_> = self.connections.lock().unwrap().drain(..).collect();
        for connection in connections {
            connection.abort();
            let _ = connection.await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reset_connection_to_the_collector_loses_no_span() {
    let (collector, target) = Collector::start().await;
    let relay = Relay::start(target).await;
    let addr = relay.addr;
    let mut w = start_warrant("reset", &format!("  otlp: {{endpoint: \"http://{addr}\"}}")).await;
    for round in 1..=3 {
        for _ in 0..5 {
            check(&mut w.client, check_request("GET", "/payments/1", &[]), &[]).await;
        }
        flush(&w).await;
        assert_eq!(collector.spans().len(), 5 * round, "round {round}");
        relay.reset().await;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(w.auditor.metrics().dropped_count(Sink::Otlp), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn decision_log_write_failures_are_counted() {
    // /dev/full accepts the open and fails every write with ENOSPC.
    let mut w = start_warrant_logging_to("full", "", Some("/dev/full")).await;
    for _ in 0..5 {
        check(&mut w.client, check_request("GET", "/payments/1", &[]), &[]).await;
    }
    flush(&w).await;
    assert_eq!(w.auditor.metrics().dropped_count(Sink::DecisionLog), 5);
    let admin = w.admin.unwrap();
    let (_, metrics) = tokio::task::spawn_blocking(move || http_get(admin, "/metrics"))
        .await
        .unwrap();
    assert!(
        metrics.contains(r#"warrant_audit_dropped_total{sink="decision_log"} 5"#),
        "{metrics}"
    );
}

/// An OTLP/HTTP (protobuf) trace receiver: keeps (path, content type, request).
#[derive(Clone, Default)]
struct HttpCollector {
    received: Arc<Mutex<Vec<(String, String, ExportTraceServiceRequest)>>>,
}

impl HttpCollector {
    async fn start() -> (Self, SocketAddr) {
        use http_body_util::BodyExt as _;
        use prost::Message as _;

        let collector = HttpCollector::default();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let received = Arc::clone(&collector.received);
        tokio::spawn(async move {
            loop {
                let (stream, _) = listener.accept().await.unwrap();
                let received = Arc::clone(&received);
                let service = hyper::service::service_fn(
                    move |request: hyper::Request<hyper::body::Incoming>| {
                        let received = Arc::clone(&received);
                        async move {
                            let path = request.uri().path().to_owned();
                            let content_type = request
                                .headers()
                                .get("content-type")
                                .and_then(|v| v.to_str().ok())
                                .unwrap_or("")
                                .to_owned();
                            let body = request.into_body().collect().await.unwrap().to_bytes();
                            let export = ExportTraceServiceRequest::decode(body).unwrap();
                            received.lock().unwrap().push((path, content_type, export));
                            let reply = ExportTraceServiceResponse::default().encode_to_vec();
                            Ok::<_, std::convert::Infallible>(
                                hyper::Response::builder()
                                    .header("content-type", "application/x-protobuf")
                                    .body(http_body_util::Full::new(hyper::body::Bytes::from(
                                        reply,
                                    )))
                                    .unwrap(),
                            )
                        }
                    },
                );
                tokio::spawn(
                    hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), service),
                );
            }
        });
        (collector, addr)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_over_otlp_http_protobuf() {
    let (collector, addr) = HttpCollector::start().await;
    let mut w = start_warrant(
        "http",
        &format!("  otlp: {{endpoint: \"http://{addr}\", protocol: http}}"),
    )
    .await;
    let traceparent = format!("00-{TRACE_ID}-{PARENT_SPAN}-01");
    let allowed = check(
        &mut w.client,
        check_request("GET", "/payments/1", &[]),
        &[("traceparent", &traceparent)],
    )
    .await;
    flush(&w).await;
    let received = collector.received.lock().unwrap().clone();
    assert_eq!(received.len(), 1, "one export request");
    let (path, content_type, export) = &received[0];
    assert_eq!(path, "/v1/traces");
    assert_eq!(content_type, "application/x-protobuf");
    let spans: Vec<Span> = export
        .resource_spans
        .iter()
        .flat_map(|rs| &rs.scope_spans)
        .flat_map(|ss| ss.spans.clone())
        .collect();
    let span = span_for(&spans, &decision_id(&allowed));
    assert_eq!(hex(&span.trace_id), TRACE_ID);
    assert_eq!(hex(&span.parent_span_id), PARENT_SPAN);
    assert_eq!(attributes(span)["spiffe.id"], FRONTEND);
    assert_eq!(w.auditor.metrics().dropped_count(Sink::Otlp), 0);
}
