//! [`ExportBatch`] against the OpenTelemetry SDK's own conversion of the same spans.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use opentelemetry::KeyValue;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::transform::trace::tonic::group_spans_by_resource_and_scope;
use prost::Message;

use super::*;
use crate::audit::record::{ProvenanceLine, ShadowLine};
use crate::audit::trace_context::TraceParent;
use crate::policy::{Stage, Verdict};

fn base() -> DecisionRecord {
    DecisionRecord {
        start: SystemTime::UNIX_EPOCH + Duration::from_nanos(1_764_000_000_123_456_789),
        duration: Duration::from_micros(87),
        decision_id: "0190b6c4-1e1b-7a3c-8f00-000000000001".into(),
        verdict: Verdict::Allow,
        stage: Stage::Rules,
        rule: Some(Arc::from("frontend-reads-payments")),
        reason: "allow rule 'frontend-reads-payments' matched".into(),
        spiffe_id: Some("spiffe://prod.example.org/ns/shop/sa/frontend".into()),
        trust_domain: Some("prod.example.org".into()),
        principal: "spiffe://prod.example.org/ns/shop/sa/frontend".into(),
        method: "GET".into(),
        path: "/payments/42".into(),
        host: "payments.shop".into(),
        destination: "spiffe://prod.example.org/ns/shop/sa/payments".into(),
        request_id: "req-1".into(),
        trace_id: [7; 16],
        span_id: [9; 8],
        parent: None,
        sampled: true,
        error: None,
        shadow: Vec::new(),
        policy_revision: Arc::from("3f9a0c1d2e4b"),
        provenance: None,
        answered: true,
    }
}

/// Records of every shape a span takes: with and without a parent (and its tracestate), an
/// error status, unanswered, shadow matches, provenance of every kind, an untrusted caller,
/// empty strings, non-ASCII text, a start at the epoch.
fn records() -> Vec<DecisionRecord> {
    let parent = |trace_state: &str| TraceParent {
        trace_id: [7; 16],
        span_id: [3; 8],
        sampled: Some(true),
        trace_state: trace_state.into(),
    };
    let provenance = ProvenanceLine {
        origin_spiffe_id: "spiffe://prod.example.org/ns/web/sa/app".into(),
        origin_via: "xfcc",
        proxy_chain: vec![
            "spiffe://prod.example.org/ns/web/sa/app".into(),
            String::new(),
        ],
        xfcc_spoofed: true,
        xfcc_error: Some("bad".into()),
        workload_spiffe_id: Some("spiffe://prod.example.org/ns/web/sa/app".into()),
        workload_verified: Some(true),
        workload_error: Some("the token expired at 7 (Unix seconds)".into()),
        identity_bound: Some(false),
    };
    let mut out = vec![base()];
    let mut child = base();
    child.parent = Some(parent("vendor=a,other=b"));
    out.push(child);
    let mut bad_state = base();
    bad_state.parent = Some(parent("not a tracestate"));
    out.push(bad_state);
    let mut failed = base();
    failed.verdict = Verdict::Deny;
    failed.stage = Stage::Trust;
    failed.rule = None;
    failed.spiffe_id = None;
    failed.trust_domain = None;
    failed.error = Some("malformed CheckRequest: no attributes".into());
    failed.answered = false;
    failed.parent = Some(parent(""));
    out.push(failed);
    let mut shadowed = base();
    shadowed.shadow = vec![
        ShadowLine {
            rule: Arc::from("would-deny"),
            effect: "deny",
            matched: true,
            error: None,
        },
        ShadowLine {
            rule: Arc::from("quiet"),
            effect: "allow",
            matched: false,
            error: Some("no such key".into()),
        },
        ShadowLine {
            rule: Arc::from("also"),
            effect: "deny",
            matched: true,
            error: None,
        },
    ];
    shadowed.provenance = Some(provenance.clone());
    out.push(shadowed);
    let mut plain = base();
    plain.provenance = Some(ProvenanceLine {
        proxy_chain: Vec::new(),
        xfcc_spoofed: false,
        workload_spiffe_id: None,
        workload_verified: None,
        workload_error: None,
        identity_bound: None,
        ..provenance
    });
    plain.start = SystemTime::UNIX_EPOCH;
    plain.duration = Duration::ZERO;
    plain.path = "/zahlungen/ü/…".into();
    plain.reason = "x".repeat(300);
    plain.host = String::new();
    out.push(plain);
    out
}

fn resource() -> Resource {
    Resource::builder()
        .with_service_name("warrant-test")
        .with_attribute(KeyValue::new("k8s.pod.name", "warrant-0"))
        .build()
}

fn scope() -> InstrumentationScope {
    InstrumentationScope::builder("warrant")
        .with_version("9.9.9")
        .build()
}

/// What the SDK's exporter sends for `records` from `resource` (a resource's attributes are a
/// hash map: one resource, one order).
fn sdk_request(resource: &Resource, records: &[DecisionRecord]) -> ExportTraceServiceRequest {
    let scope = scope();
    let spans = records.iter().map(|r| r.to_span(&scope)).collect();
    ExportTraceServiceRequest {
        resource_spans: group_spans_by_resource_and_scope(
            spans,
            &ResourceAttributesWithSchema::from(resource),
        ),
    }
}

#[test]
fn a_batch_is_what_the_sdk_would_send() {
    let records = records();
    let resource = resource();
    let mut batch = ExportBatch::new(&resource, &scope());
    assert!(batch.is_empty());
    for record in &records {
        batch.push(record);
    }
    assert_eq!(batch.len(), records.len());
    let request = batch.take_request();
    let decoded = ExportTraceServiceRequest::decode(request.clone()).unwrap();
    assert!(decoded == sdk_request(&resource, &records), "{decoded:#?}");
    // Taken: the batch starts over, resource and scope kept.
    assert!(batch.is_empty());
    batch.push(&records[1]);
    let again = ExportTraceServiceRequest::decode(batch.take_request()).unwrap();
    assert!(
        again == sdk_request(&resource, &records[1..2]),
        "{again:#?}"
    );
}

#[test]
fn each_span_is_the_sdks_span() {
    for record in records() {
        let resource = resource();
        let mut batch = ExportBatch::new(&resource, &scope());
        batch.push(&record);
        let decoded = ExportTraceServiceRequest::decode(batch.take_request()).unwrap();
        let expected = sdk_request(&resource, std::slice::from_ref(&record));
        assert_eq!(
            decoded.resource_spans[0].scope_spans[0].spans,
            expected.resource_spans[0].scope_spans[0].spans,
            "{record:?}"
        );
    }
}
