//! [`CheckAnswer`] against the CheckResponse Envoy must read.

use std::collections::HashMap;
use std::sync::Arc;

use envoy_types::ext_authz::v3::pb::OkHttpResponse;
use envoy_types::pb::google::protobuf::{Value, value::Kind};

use super::*;
use crate::identity::{JwtSvid, SpiffeId};
use crate::trust::{Hop, Identities, Provenance, VerifiedPeer, Workload, Xfcc};

const FRONTEND: &str = "spiffe://prod.example.org/ns/shop/sa/frontend";
const GATEWAY: &str = "spiffe://prod.example.org/ns/edge/sa/gateway";

fn id(s: &str) -> SpiffeId {
    SpiffeId::parse(s).unwrap()
}

fn decision(verdict: Verdict, stage: Stage, identity: Option<Identities>) -> Decision {
    Decision {
        id: "0190b6c4-1e1b-7a3c-8f00-000000000001".into(),
        verdict,
        stage,
        rule: (stage == Stage::Rules).then(|| Arc::from("frontend-reads-payments")),
        reason: "why".into(),
        http_status: if verdict == Verdict::Allow { 200 } else { 403 },
        identity,
        headers: Arc::from(vec![("x-tenant".to_owned(), "shop".to_owned())]),
        response_headers: Arc::from(vec![("x-why".to_owned(), "policy".to_owned())]),
        remove_headers: Arc::from(vec!["authorization".to_owned()]),
        failures: Vec::new(),
        shadow: Vec::new(),
        policy_revision: Arc::from("r1-3f9a"),
    }
}

fn hop(uri: &str) -> Hop {
    Hop {
        by: GATEWAY.into(),
        uri: uri.into(),
        hash: "ab".into(),
        subject: String::new(),
        dns: Vec::new(),
        spiffe_id: None,
        revoked: false,
    }
}

/// Identities of every shape the metadata reads: plain, a proxy chain of two hops with a
/// spoofed header, and a verified workload token bound to the peer or naming another.
fn identities() -> Vec<Identities> {
    let plain = Identities {
        transport: VerifiedPeer {
            spiffe_id: id(FRONTEND),
            svid: None,
        },
        provenance: Provenance::NONE,
        workload: Workload::Unchecked,
    };
    let token = |sub: &str| {
        Workload::Verified(Arc::new(JwtSvid {
            spiffe_id: id(sub),
            audience: vec!["payments".into()],
            expires_at: 2_000_000_000,
            valid_from: None,
            claims: serde_json::Map::new(),
        }))
    };
    let mut chained = plain.clone();
    chained.transport.spiffe_id = id(GATEWAY);
    chained.provenance.proxy_chain = vec![hop(FRONTEND), hop("spiffe://other.org/x")];
    chained.provenance.xfcc = Xfcc::Spoofed;
    chained.workload = token(FRONTEND);
    let mut bound = plain.clone();
    bound.workload = token(FRONTEND);
    vec![plain, chained, bound]
}

/// `dynamic_metadata` as a Struct built field by field: what Envoy must read.
fn expected_metadata(decision: &Decision) -> HashMap<String, Value> {
    let string = |s: &str| Kind::StringValue(s.to_owned());
    let identity = decision.identity.as_ref();
    let fields = [
        ("decision", string(decision.verdict.as_str())),
        ("stage", string(decision.stage.as_str())),
        ("rule", string(decision.rule.as_deref().unwrap_or(""))),
        (
            "spiffe_id",
            string(identity.map_or("", |i| i.transport.spiffe_id.as_str())),
        ),
        (
            "origin_spiffe_id",
            string(identity.map_or("", |i| i.origin().0.as_str())),
        ),
        (
            "origin_via",
            string(identity.map_or("", |i| i.origin().1.as_str())),
        ),
        (
            "proxy_chain",
            string(&identity.map_or(String::new(), |i| {
                let uris: Vec<&str> = i
                    .provenance
                    .proxy_chain
                    .iter()
                    .map(|h| h.uri.as_str())
                    .collect();
                uris.join(",")
            })),
        ),
        (
            "xfcc_spoofed",
            Kind::BoolValue(identity.is_some_and(|i| i.provenance.xfcc_spoofed())),
        ),
        (
            "workload_spiffe_id",
            string(
                identity
                    .and_then(|i| i.workload.verified())
                    .map_or("", |s| s.spiffe_id.as_str()),
            ),
        ),
        (
            "workload_verified",
            Kind::BoolValue(identity.is_some_and(|i| i.workload.verified().is_some())),
        ),
        (
            "identity_bound",
            Kind::BoolValue(identity.is_some_and(Identities::bound)),
        ),
        ("decision_id", string(&decision.id)),
        ("policy_revision", string(&decision.policy_revision)),
    ];
    fields
        .into_iter()
        .map(|(k, kind)| (k.to_owned(), Value { kind: Some(kind) }))
        .collect()
}

/// `status` and `http_response` Envoy must read for `decision`, built as messages: an allow's
/// OkHttpResponse field by field (the server writes its bytes by hand), a deny's as the server
/// builds it.
fn expected_status_and_response(
    decision: &Decision,
    identity_header: Option<&str>,
) -> (rpc::Status, HttpResponse) {
    match decision.verdict {
        Verdict::Allow => (
            rpc::Status {
                code: GRPC_OK,
                ..Default::default()
            },
            HttpResponse::OkResponse(OkHttpResponse {
                headers: upstream_headers(decision, identity_header)
                    .into_iter()
                    .map(|(key, value)| overwrite_header(key, value))
                    .collect(),
                headers_to_remove: removed_headers(decision, identity_header),
                response_headers_to_add: decision
                    .response_headers
                    .iter()
                    .map(|(key, value)| overwrite_header(key.clone(), value.clone()))
                    .collect(),
                ..Default::default()
            }),
        ),
        Verdict::Deny => denied_status_and_response(decision),
    }
}

#[test]
fn an_answer_is_the_check_response_envoy_must_read() {
    let mut decisions = Vec::new();
    for identity in identities() {
        decisions.push(decision(
            Verdict::Allow,
            Stage::Rules,
            Some(identity.clone()),
        ));
        decisions.push(decision(
            Verdict::Deny,
            Stage::Rules,
            Some(identity.clone()),
        ));
        decisions.push(decision(Verdict::Deny, Stage::Default, Some(identity)));
    }
    decisions.push(decision(Verdict::Deny, Stage::Trust, None));
    let mut long = decision(Verdict::Allow, Stage::Rules, identities().pop());
    long.policy_revision = Arc::from("r".repeat(300));
    decisions.push(long);
    // Headers of every shape the hand-written allow path meets: none; empty values and
    // names; long ones (lengths past one varint byte); many; the identity header's own name
    // among a rule's headers and removals (left out).
    for verdict in [Verdict::Allow, Verdict::Deny] {
        let mut bare = decision(verdict, Stage::Rules, identities().pop());
        bare.headers = Arc::from(Vec::new());
        bare.response_headers = Arc::from(Vec::new());
        bare.remove_headers = Arc::from(Vec::new());
        decisions.push(bare);
        let mut odd = decision(verdict, Stage::Rules, identities().pop());
        let pair = |name: &str, value: &str| (name.to_owned(), value.to_owned());
        odd.headers = Arc::from(vec![
            pair("x-empty", ""),
            pair("", "no-name"),
            pair("x-spiffe-id", "spiffe://forged.example.org/admin"),
            pair("x-long", &"v".repeat(200)),
            pair(&"n".repeat(130), "x"),
        ]);
        odd.response_headers = Arc::from(vec![
            pair("x-empty", ""),
            pair("x-long", &"w".repeat(20_000)),
        ]);
        odd.remove_headers = Arc::from(vec![
            String::new(),
            "x-spiffe-id".to_owned(),
            "c".repeat(128),
        ]);
        decisions.push(odd);
        let mut many = decision(verdict, Stage::Rules, identities().pop());
        many.headers = (0..300)
            .map(|i| (format!("x-h{i}"), format!("value-{i}")))
            .collect();
        many.remove_headers = (0..300).map(|i| format!("x-r{i}")).collect();
        decisions.push(many);
    }
    for header in [None, Some("x-spiffe-id")] {
        for decision in &decisions {
            let answer = CheckAnswer::new(decision, header);
            let (status, http_response) = expected_status_and_response(decision, header);
            let bytes = answer.encode_to_vec();
            assert_eq!(bytes.len(), answer.encoded_len(), "{decision:?}");
            // Byte for byte what prost writes for `status` and `http_response` (the metadata
            // follows; prost would write its map in hash order).
            let mut prefix = Vec::new();
            prost::encoding::message::encode(1, &status, &mut prefix);
            http_response.encode(&mut prefix);
            assert!(bytes.starts_with(&prefix), "{decision:?}");
            let response = CheckResponse::decode(bytes.as_slice()).unwrap();
            assert_eq!(
                response.dynamic_metadata.as_ref().unwrap().fields,
                expected_metadata(decision),
                "{decision:?}"
            );
            assert_eq!(response.status.as_ref(), Some(&status));
            assert_eq!(response.http_response, Some(http_response));
            let code = response.status.unwrap().code;
            match decision.verdict {
                Verdict::Allow => assert_eq!(code, GRPC_OK),
                Verdict::Deny if decision.stage == Stage::Trust => {
                    assert_eq!(code, GRPC_UNAUTHENTICATED);
                }
                Verdict::Deny => assert_eq!(code, GRPC_PERMISSION_DENIED),
            }
        }
    }
}

#[test]
fn an_allow_overwrites_the_identity_header_and_a_deny_carries_its_body() {
    let [plain, ..] = &identities()[..] else {
        unreachable!()
    };
    let allow = check_response(
        &decision(Verdict::Allow, Stage::Rules, Some(plain.clone())),
        Some("x-spiffe-id"),
    );
    let Some(HttpResponse::OkResponse(ok)) = allow.http_response else {
        panic!("{allow:?}")
    };
    let headers: Vec<(&str, &str)> = ok
        .headers
        .iter()
        .map(|h| h.header.as_ref().unwrap())
        .map(|h| (h.key.as_str(), h.value.as_str()))
        .collect();
    assert_eq!(
        headers,
        [("x-tenant", "shop"), ("x-spiffe-id", FRONTEND)],
        "the identity comes last"
    );
    assert_eq!(ok.headers_to_remove, ["authorization"]);
    let deny = check_response(&decision(Verdict::Deny, Stage::Trust, None), None);
    let Some(HttpResponse::DeniedResponse(denied)) = deny.http_response else {
        panic!("{deny:?}")
    };
    assert_eq!(denied.status.unwrap().code, 403);
    assert!(
        denied.body.contains("\"stage\":\"trust\""),
        "{}",
        denied.body
    );
    assert!(
        !denied.body.contains("why"),
        "the reason stays out of the body"
    );
}

#[test]
fn a_refusal_is_never_ok_and_carries_no_decision() {
    for status in [
        tonic::Status::deadline_exceeded("late"),
        tonic::Status::ok("not really"),
    ] {
        let answer = CheckAnswer::refused(&status);
        assert_eq!(answer.encode_to_vec().len(), answer.encoded_len());
        let response = answer.to_check_response();
        assert_ne!(response.status.as_ref().unwrap().code, GRPC_OK);
        assert_eq!(response.dynamic_metadata, None);
        assert_eq!(response.http_response, None);
        assert_eq!(response, refused(&status));
    }
}
