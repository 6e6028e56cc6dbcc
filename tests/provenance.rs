//! Provenance (issue 9 §2): `x-forwarded-client-cert` believed only from trusted forwarders;
//! `proxy_chain`, `origin` and `source.xfcc_spoofed` for rules, and in the decision.

// Test code: a failed unwrap, expect or assertion is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::SystemTime;

use common::policy::{compile_files, request};
use warrant::identity::SpiffeId;
use warrant::policy::Verdict;
use warrant::trust::{Via, Xfcc};

const GATEWAY: &str = "spiffe://prod.example.org/ns/istio-system/sa/ingressgateway";
const FRONTEND: &str = "spiffe://prod.example.org/ns/shop/sa/frontend";
const SIDECAR: &str = "spiffe://prod.example.org/ns/shop/sa/payments";

/// What Envoy 1.40 writes with `APPEND_FORWARD` at the sidecar: the gateway's element (its
/// client, the frontend) and the sidecar's own (its client, the gateway).
fn two_hops(client: &str) -> String {
    format!(
        "By={GATEWAY};Hash=6b1a;Subject=\"\";URI={client},By={SIDECAR};Hash=9f3c;Subject=\"\";URI={GATEWAY}"
    )
}

const POLICY: &str = r#"trust:
  trust_domains: [prod.example.org]
  forwarders: ["spiffe://prod.example.org/ns/istio-system/sa/*"]
  revoked: [spiffe://prod.example.org/ns/shop/sa/revoked]
rules:
  - id: spoofed
    effect: deny
    when: source.xfcc_spoofed
  - id: gateway-carries-shop
    effect: allow
    when: >
      origin.via == "xfcc" && origin.namespace == "shop"
      && proxy_chain.size() == 2 && proxy_chain[0].trusted && proxy_chain[1].uri == source.spiffe_id
  - id: direct
    effect: allow
    when: origin.via == "mtls" && origin.spiffe_id == source.spiffe_id && request.path == "/direct"
"#;

fn decide(principal: &str, path: &str, xfcc: Option<&str>) -> warrant::policy::Decision {
    let policy = compile_files(&[("policy.yaml", POLICY)]).unwrap_or_else(|e| panic!("{e}"));
    let mut request = request(principal, "GET", path);
    if let (Some(http), Some(xfcc)) = (request.http.as_mut(), xfcc) {
        http.headers
            .push(("x-forwarded-client-cert".into(), xfcc.to_owned()));
    }
    policy.decide(&request, SystemTime::now())
}

#[test]
fn a_forwarders_chain_is_believed_and_names_the_origin() {
    let decision = decide(GATEWAY, "/x", Some(&two_hops(FRONTEND)));
    assert_eq!(decision.verdict, Verdict::Allow, "{}", decision.reason);
    assert_eq!(decision.rule.as_deref(), Some("gateway-carries-shop"));
    let identities = decision.identity.unwrap();
    assert_eq!(identities.transport.spiffe_id.as_str(), GATEWAY);
    let (origin, via) = identities.origin();
    assert_eq!((origin.as_str(), via), (FRONTEND, Via::Xfcc));
    assert_eq!(identities.provenance.xfcc, Xfcc::Believed);
    assert_eq!(identities.provenance.proxy_chain[0].by, GATEWAY);
}

#[test]
fn anyone_elses_header_is_spoofed_and_not_believed() {
    let decision = decide(FRONTEND, "/direct", Some(&two_hops(SIDECAR)));
    assert_eq!(decision.rule.as_deref(), Some("spoofed"));
    let identities = decision.identity.unwrap();
    assert!(identities.provenance.proxy_chain.is_empty());
    assert_eq!(
        identities.origin(),
        (&identities.transport.spiffe_id, Via::Mtls)
    );
    // Without a header: the peer is the origin.
    let decision = decide(FRONTEND, "/direct", None);
    assert_eq!(decision.rule.as_deref(), Some("direct"));
}

/// Istio's sidecars (APPEND_FORWARD) and SANITIZE_SET add their own element about the peer
/// to every request: from any peer, that alone is no claim. Any other element is.
#[test]
fn the_calling_envoys_own_element_is_not_spoofing() {
    let own = format!("By={SIDECAR};Hash=9f3c;Subject=\"O=demo\";URI={FRONTEND}");
    let decision = decide(FRONTEND, "/direct", Some(&own));
    assert_eq!(
        decision.rule.as_deref(),
        Some("direct"),
        "{}",
        decision.reason
    );
    let identities = decision.identity.unwrap();
    assert_eq!(identities.provenance.xfcc, Xfcc::Local);
    assert!(identities.provenance.proxy_chain.is_empty());
    assert_eq!(
        identities.origin(),
        (&identities.transport.spiffe_id, Via::Mtls)
    );
    for claim in [
        // Written by someone else than the Envoy calling Warrant.
        format!("By={GATEWAY};Hash=9f3c;URI={FRONTEND}"),
        // About someone else than the peer.
        format!("By={SIDECAR};Hash=9f3c;URI={GATEWAY}"),
        // Two URIs, one of them the peer's.
        format!("By={SIDECAR};Hash=9f3c;URI={FRONTEND};URI={GATEWAY}"),
        // The peer's own claim before the Envoy's element.
        format!("By={GATEWAY};URI=spiffe://prod.example.org/ns/shop/sa/checkout,{own}"),
        // Malformed.
        format!("{own};Subject=\"unterminated"),
    ] {
        let decision = decide(FRONTEND, "/direct", Some(&claim));
        assert_eq!(decision.rule.as_deref(), Some("spoofed"), "{claim}");
    }
}

#[test]
fn an_untrusted_first_hop_leaves_the_peer_as_origin() {
    for client in [
        "spiffe://dev.example.org/ns/shop/sa/frontend",
        "spiffe://prod.example.org/ns/shop/sa/revoked",
        "https://not-a-spiffe-id.example",
        "",
    ] {
        let decision = decide(GATEWAY, "/x", Some(&two_hops(client)));
        let identities = decision.identity.clone().unwrap();
        assert_eq!(identities.origin().1, Via::Mtls, "{client}");
        assert!(!identities.provenance.proxy_chain[0].trusted(), "{client}");
        assert_eq!(decision.verdict, Verdict::Deny, "{client}");
        // The client of an untrusted hop is not a forwarder: nothing older is believed.
    }
}

#[test]
fn a_malformed_header_from_a_forwarder_is_ignored_with_why() {
    for xfcc in [
        "By=a;Subject=\"unterminated",
        &vec!["By=a;URI=spiffe://prod.example.org/ns/a/sa/b"; 17].join(","),
        &format!("Cert=\"{}\"", "a".repeat(70_000)),
    ] {
        let decision = decide(GATEWAY, "/x", Some(xfcc));
        let identities = decision.identity.unwrap();
        assert!(matches!(identities.provenance.xfcc, Xfcc::Malformed(_)));
        assert_eq!(identities.origin().1, Via::Mtls);
    }
}

#[test]
fn forwarders_must_be_spiffe_ids() {
    let errors = common::policy::errors(&[(
        "policy.yaml",
        "trust:\n  trust_domains: [prod.example.org]\n  forwarders: [ingressgateway]\n",
    )]);
    assert!(
        errors[0].contains("trust.forwarders \"ingressgateway\" is not a SPIFFE ID"),
        "{errors:?}"
    );
}

/// Behind a forwarder that appends (APPEND_FORWARD) instead of sanitizing, a client can put
/// elements before the forwarder's: only what each forwarder wrote itself is believed.
#[test]
fn only_what_a_forwarder_wrote_is_believed() {
    let checkout = "spiffe://prod.example.org/ns/shop/sa/checkout";
    let admin = "spiffe://prod.example.org/ns/ops/sa/admin";
    let local = format!("By={SIDECAR};Hash=9f3c;URI={GATEWAY}");
    // A client's injected element before the gateway's own.
    let injected =
        format!("By=spiffe://x/y;URI={admin},By={GATEWAY};Hash=1;URI={checkout},{local}");
    let decision = decide(GATEWAY, "/x", Some(&injected));
    let identities = decision.identity.unwrap();
    // The gateway's own element cannot be told from one a SAN forged: nothing is believed.
    assert_eq!(
        identities.origin(),
        (&identities.transport.spiffe_id, Via::Mtls)
    );
    assert!(
        identities.provenance.xfcc_spoofed(),
        "the injected element is flagged"
    );
    assert_eq!(identities.provenance.ignored, 1);
    assert!(identities.provenance.proxy_chain.is_empty());
    // An element the peer did not write is not believed, even as the newest.
    let forged = format!("By={admin};URI={checkout},{local}");
    let identities = decide(GATEWAY, "/x", Some(&forged)).identity.unwrap();
    assert_eq!(
        identities.origin(),
        (&identities.transport.spiffe_id, Via::Mtls)
    );
    assert!(identities.provenance.xfcc_spoofed());
    // Two forwarders in a row: the edge proxy's element is believed because the gateway,
    // itself a forwarder, vouched for the edge as its client.
    let edge = "spiffe://prod.example.org/ns/istio-system/sa/edge";
    let two = format!("By={edge};URI={FRONTEND},By={GATEWAY};URI={edge},{local}");
    let identities = decide(GATEWAY, "/x", Some(&two)).identity.unwrap();
    assert_eq!(
        identities.origin(),
        (&SpiffeId::parse(FRONTEND).unwrap(), Via::Xfcc)
    );
    assert_eq!(identities.provenance.proxy_chain.len(), 3);
    assert!(!identities.provenance.xfcc_spoofed());
    // Without the local element (the sidecar forwards only), the same holds.
    let bare = format!("By={GATEWAY};URI={FRONTEND}");
    let identities = decide(GATEWAY, "/x", Some(&bare)).identity.unwrap();
    assert_eq!(identities.origin().1, Via::Xfcc);
    // A gateway calling on its own: only the local element, the origin is the gateway.
    let identities = decide(GATEWAY, "/x", Some(&local)).identity.unwrap();
    assert_eq!(
        identities.origin(),
        (&identities.transport.spiffe_id, Via::Mtls)
    );
    assert!(!identities.provenance.xfcc_spoofed());
}

#[test]
fn a_revoked_forwarded_client_is_untrusted() {
    let decision = decide(
        GATEWAY,
        "/x",
        Some(&two_hops("spiffe://prod.example.org/ns/shop/sa/revoked")),
    );
    assert_eq!(decision.stage, warrant::policy::Stage::Trust);
    assert!(
        decision
            .reason
            .contains("forwarded client spiffe://prod.example.org/ns/shop/sa/revoked is revoked"),
        "{}",
        decision.reason
    );
}

/// Envoy writes no URI (or an empty one) unless `set_current_client_cert_details.uri` is on.
#[test]
fn the_calling_envoys_element_without_a_uri_is_not_spoofing() {
    for own in [
        format!("By={SIDECAR};Hash=9f3c;Subject=\"O=demo\""),
        format!("By={SIDECAR};Hash=9f3c;URI=;DNS=frontend.shop"),
    ] {
        let decision = decide(FRONTEND, "/direct", Some(&own));
        assert_eq!(
            decision.rule.as_deref(),
            Some("direct"),
            "{own}: {}",
            decision.reason
        );
    }
}

/// Envoy does not quote URI and DNS values: a client certificate whose SAN holds
/// `,By=<gateway>;URI=<victim>` splits the gateway's element in two. Nothing is believed.
#[test]
fn a_san_holding_xfcc_syntax_is_not_believed() {
    let admin = "spiffe://prod.example.org/ns/ops/sa/admin";
    let local = format!("By={SIDECAR};Hash=9f3c;URI={GATEWAY}");
    for injected in [
        format!(
            "By={GATEWAY};Hash=1;Subject=\"O=p\";URI=https://partner.example/c,By={GATEWAY};URI={admin},{local}"
        ),
        // Three pieces: a middle one by someone else avoids the "same By twice" check.
        format!(
            "By={GATEWAY};Hash=aa;URI=https://partner.example/x,By=x;URI=https://a,By={GATEWAY};URI={admin},{local}"
        ),
        format!(
            "By={GATEWAY};Hash=1;DNS=partner.example,By={GATEWAY};Hash=2;URI={admin};DNS=x,{local}"
        ),
    ] {
        let decision = decide(GATEWAY, "/x", Some(&injected));
        assert_eq!(decision.rule.as_deref(), Some("spoofed"), "{injected}");
        let identities = decision.identity.unwrap();
        assert_eq!(
            identities.origin(),
            (&identities.transport.spiffe_id, Via::Mtls)
        );
        assert!(matches!(identities.provenance.xfcc, Xfcc::Malformed(_)));
    }
}

/// A forwarder's header that cannot be read hides the forwarder's own element: flagged, so a
/// deny rule on `source.xfcc_spoofed` catches a client erasing its origin that way.
#[test]
fn an_unreadable_header_from_a_forwarder_is_flagged() {
    let prefix_broken = format!("Subject=\"unterminated,By={GATEWAY};URI={FRONTEND}");
    let decision = decide(GATEWAY, "/x", Some(&prefix_broken));
    assert_eq!(decision.rule.as_deref(), Some("spoofed"));
}
