//! One check through the domain core: CheckRequest → AuthzRequest → Decision, with a 20-rule
//! policy and a realistic Envoy request (headers, query, optionally the peer certificate).

// Test code: a failed unwrap, expect or assertion is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../tests/common/mod.rs"]
mod common;

#[path = "../bench/check_request.rs"]
mod check_request;

#[path = "../bench/counting_collector.rs"]
mod counting_collector;

use std::hint::black_box;
use std::path::Path;
use std::sync::Arc;
use std::time::SystemTime;

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use envoy_types::ext_authz::v3::pb::CheckRequest;
use warrant::audit::{
    AuditSettings, Auditor, DecisionLogTarget, Metrics, OtlpProtocol, OtlpTarget, Sink, TraceParent,
};
use warrant::policy::{Policy, PolicySource, Verdict};
use warrant::server::live::LivePolicy;
use warrant::server::{AuthzService, convert};

use check_request::{FRONTEND, check_request};
use counting_collector::CountingCollector;

/// 2 deny rules and 18 allow rules; the request matches the last allow rule, so every rule
/// is evaluated.
/// `with_bundle`: verify forwarded certificates against the prod CA (which then requires
/// them); without, the principal alone is trusted.
/// With `allowlist`, the same 20 rules, they use Warrant's functions and `data` (an
/// allowlist of that many SPIFFE IDs, the caller last, and networks): `glob` instead of
/// `startsWith`, and the deciding rule also checks `in data.allow`, `in_cidr` and a
/// `longest_prefix` sensitivity map.
fn policy_text_with(with_bundle: bool, allowlist: Option<usize>) -> String {
    let bundle = if with_bundle {
        "  bundles: {prod.example.org: prod.pem}\n"
    } else {
        ""
    };
    let mut text = format!(
        "trust:\n  trust_domains: [prod.example.org]\n{bundle}  max_svid_lifetime: 24h\nrules:\n"
    );
    text.push_str("  - id: no-admin\n    effect: deny\n    when: request.path.startsWith(\"/admin\") && source.namespace != \"ops\"\n");
    text.push_str("  - id: no-debug-in-prod\n    effect: deny\n    when: '\"x-debug\" in request.headers && request.headers[\"x-env\"] == \"prod\"'\n");
    let Some(entries) = allowlist else {
        for i in 0..17 {
            text.push_str(&format!(
                "  - id: svc-{i}\n    effect: allow\n    when: source.spiffe_id == \"spiffe://prod.example.org/ns/team{i}/sa/svc{i}\" && request.method in [\"GET\", \"HEAD\"] && request.path.startsWith(\"/api/v{i}/\")\n"
            ));
        }
        text.push_str(FRONTEND_RULE);
        return text;
    };
    for i in 0..17 {
        text.push_str(&format!(
            "  - id: svc-{i}\n    effect: allow\n    when: source.spiffe_id == \"spiffe://prod.example.org/ns/team{i}/sa/svc{i}\" && request.method in [\"GET\", \"HEAD\"] && request.path.glob(\"/api/v{i}/**\")\n"
        ));
    }
    text.push_str("  - id: frontend-reads-payments\n    effect: allow\n    when: source.namespace == \"shop\" && source.service_account == \"frontend\" && request.method == \"GET\" && request.path.glob(\"/payments/**\") && request.query[\"expand\"] == \"1\" && context.service == \"payments\" && source.spiffe_id in data.allow && in_cidr(source.address, data.networks) && longest_prefix(request.path, data.sensitivity) == \"internal\"\n    headers: {x-tenant: shop}\n");
    let mut ids: Vec<String> = (1..entries)
        .map(|i| format!("'spiffe://prod.example.org/ns/n{i}/sa/s'"))
        .collect();
    ids.push(format!("'{FRONTEND}'"));
    text.push_str(&format!(
        "data:\n  networks: [10.0.0.0/8, 192.168.0.0/16]\n  sensitivity: {{/: public, /payments/: internal, /payments/admin/: restricted}}\n  allow: [{}]\n",
        ids.join(", ")
    ));
    text
}

const FRONTEND_RULE: &str = "  - id: frontend-reads-payments\n    effect: allow\n    when: source.namespace == \"shop\" && source.service_account == \"frontend\" && request.method == \"GET\" && request.path.startsWith(\"/payments/\") && request.query[\"expand\"] == \"1\" && context.service == \"payments\"\n    headers: {x-tenant: shop}\n";

/// The 20-rule policy, trusting prod's CA when `with_bundle`.
fn compile_policy(ca: &common::Ca, with_bundle: bool) -> Policy {
    compile_policy_with(ca, with_bundle, None)
}

fn compile_policy_with(ca: &common::Ca, with_bundle: bool, allowlist: Option<usize>) -> Policy {
    let bundle = ca.pem.clone().into_bytes();
    let policy = Policy::compile(
        &[PolicySource {
            path: "bench.yaml".into(),
            text: policy_text_with(with_bundle, allowlist),
        }],
        &mut |_: &Path, _| Ok(bundle.clone()),
    )
    .unwrap();
    assert_eq!(policy.rule_count(), 20);
    policy
}

fn bench_check(c: &mut Criterion) {
    let ca = common::Ca::new("prod");
    let now = SystemTime::now();

    for (name, certificate, policy) in [
        (
            "check/20_rules/principal_only",
            String::new(),
            compile_policy(&ca, false),
        ),
        (
            "check/20_rules/with_certificate",
            ca.svid(FRONTEND).url_encoded(),
            compile_policy(&ca, true),
        ),
        (
            "check/20_rules/functions_and_data_10",
            String::new(),
            compile_policy_with(&ca, false, Some(10)),
        ),
        (
            "check/20_rules/functions_and_data_10000",
            String::new(),
            compile_policy_with(&ca, false, Some(10_000)),
        ),
    ] {
        bench_one(c, name, &check_request(certificate), &policy, now);
    }
    // The same, the request also carrying an ES256 JWT-SVID verified against the bundle's
    // JWT authority (trust.workload_tokens).
    let signer = common::jwt::JwtSigner::new("ES256", "k1");
    let bundle = common::jwt::bundle(&[ca.jwk(), signer.jwk()]).into_bytes();
    let text = policy_text_with(true, None).replacen(
        "  max_svid_lifetime: 24h\n",
        "  max_svid_lifetime: 24h\n  workload_tokens: {audiences: [spiffe://prod.example.org/ns/shop/sa/payments]}\n",
        1,
    );
    let policy = Policy::compile(
        &[PolicySource {
            path: "bench.yaml".into(),
            text: text.replace("prod.pem", "prod.json"),
        }],
        &mut |_: &Path, _| Ok(bundle.clone()),
    )
    .unwrap();
    let mut request = check_request(ca.svid(FRONTEND).url_encoded());
    if let Some(http) = request
        .attributes
        .as_mut()
        .and_then(|a| a.request.as_mut())
        .and_then(|r| r.http.as_mut())
    {
        let token = signer.token(FRONTEND, "spiffe://prod.example.org/ns/shop/sa/payments");
        http.headers
            .insert("authorization".into(), format!("Bearer {token}"));
    }
    let decision = policy.decide(&convert::authz_request(request.clone()), now);
    assert!(
        decision
            .identity
            .as_ref()
            .is_some_and(|id| id.workload.verified().is_some()),
        "{}",
        decision.reason
    );
    bench_one(
        c,
        "check/20_rules/with_certificate_and_es256_token",
        &request,
        &policy,
        now,
    );
}

/// Benchmarks deciding `request` with `policy`, after checking it is allowed by the rule the
/// benchmarks expect.
fn bench_one(
    c: &mut Criterion,
    name: &str,
    request: &CheckRequest,
    policy: &Policy,
    now: SystemTime,
) {
    {
        let decision = policy.decide(&convert::authz_request(request.clone()), now);
        assert_eq!(decision.verdict, Verdict::Allow, "{}", decision.reason);
        assert_eq!(decision.rule.as_deref(), Some("frontend-reads-payments"));
    }
    c.bench_function(name, |b| {
        b.iter_batched(
            || request.clone(),
            |request| black_box(policy.decide(&convert::authz_request(request), now)),
            BatchSize::SmallInput,
        )
    });
}

/// The whole Check handler (convert, decide, build the response, audit) with audit off
/// (metrics only), with the decision log, and with the decision log and spans exported to a
/// live in-process OTLP collector: the differences are what telemetry costs the Check path.
/// Writing and exporting happen on other threads (which, on a small machine, compete with
/// the benchmark for cores: that is part of the real cost).
fn bench_audit(c: &mut Criterion) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let collector = CountingCollector::default();
    let collector_addr = runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        collector.serve(listener);
        addr
    });
    let ca = common::Ca::new("prod");
    let request = check_request(String::new());
    let service = |otlp: Option<OtlpTarget>, decision_log: DecisionLogTarget| {
        let metrics = Arc::new(Metrics::default());
        let live = Arc::new(LivePolicy::fixed(
            compile_policy(&ca, false),
            Arc::clone(&metrics),
        ));
        let settings = AuditSettings {
            service_name: "bench".into(),
            otlp,
            sample_ratio: 1.0,
            decision_log,
            sensitive_headers: Vec::new(),
        };
        let auditor = Arc::new(Auditor::start(&settings, metrics).unwrap());
        let service = AuthzService::serving(live, "x-spiffe-id").with_auditor(Arc::clone(&auditor));
        (service, auditor)
    };
    let live_collector = OtlpTarget {
        endpoint: format!("http://{collector_addr}"),
        protocol: OtlpProtocol::Grpc,
    };
    let sinks = [
        (
            "handler/20_rules/metrics_only",
            service(None, DecisionLogTarget::Off),
        ),
        (
            "handler/20_rules/decision_log",
            service(None, DecisionLogTarget::File("/dev/null".into())),
        ),
        (
            "handler/20_rules/decision_log_and_otlp",
            service(
                Some(live_collector),
                DecisionLogTarget::File("/dev/null".into()),
            ),
        ),
    ];
    let parent = TraceParent::extract(|name| {
        (name == "traceparent").then_some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
    });
    for (name, (service, auditor)) in &sinks {
        c.bench_function(name, |b| {
            b.iter_batched(
                || request.clone(),
                |request| black_box(service.check_request(request, parent.clone())),
                BatchSize::SmallInput,
            )
        });
        assert!(auditor.flush(std::time::Duration::from_secs(60)));
        eprintln!(
            "{name}: dropped decision_log={} otlp={}",
            auditor.metrics().dropped_count(Sink::DecisionLog),
            auditor.metrics().dropped_count(Sink::Otlp)
        );
    }
    eprintln!("collector received {} spans", collector.spans());
}

criterion_group!(benches, bench_check, bench_audit);
criterion_main!(benches);
