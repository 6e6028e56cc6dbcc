//! Workload tokens (issue 9 §3): JWT-SVIDs verified against the JWT bundle of their trust
//! domain, exposed to rules as `workload`, required when the operator says so, and recorded.

// Test code: a failed unwrap, expect or assertion is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use base64::Engine as _;
use common::jwt::{JwtSigner, bundle, now};
use serde_json::json;
use warrant::policy::{Decision, Policy, PolicySource, Stage, Verdict};
use warrant::trust::Workload;

const PROD: &str = "prod.example.org";
const PAYMENTS: &str = "spiffe://prod.example.org/ns/shop/sa/payments";
const FRONTEND: &str = "spiffe://prod.example.org/ns/shop/sa/frontend";
const GATEWAY: &str = "spiffe://prod.example.org/ns/istio-system/sa/ingressgateway";
const AUDIENCE: &str = "spiffe://prod.example.org/ns/shop/sa/orders";

/// A trust domain with an X.509 CA (for the transport) and JWT authorities.
struct Domain {
    ca: common::Ca,
    signers: Vec<JwtSigner>,
}

impl Domain {
    fn new(algs: &[&'static str]) -> Self {
        Self {
            ca: common::Ca::new("prod"),
            signers: algs
                .iter()
                .enumerate()
                .map(|(i, alg)| JwtSigner::new(alg, &format!("k{i}")))
                .collect(),
        }
    }

    fn bundle(&self) -> String {
        let mut keys = vec![self.ca.jwk()];
        keys.extend(self.signers.iter().map(JwtSigner::jwk));
        bundle(&keys)
    }

    fn policy(&self, tokens: &str, rules: &str) -> Policy {
        let text = format!(
            "trust:\n  trust_domains: [{PROD}, other.example.org]\n  bundles: {{{PROD}: bundle.json}}\n  revoked: [spiffe://prod.example.org/ns/shop/sa/revoked]\n  workload_tokens: {tokens}\nrules:\n{rules}"
        );
        let bundle = self.bundle();
        Policy::compile(
            &[PolicySource {
                path: PathBuf::from("policy.yaml"),
                text,
            }],
            &mut |path: &Path, _| {
                if path.ends_with("bundle.json") {
                    Ok(bundle.clone().into_bytes())
                } else {
                    Err(std::io::Error::from(std::io::ErrorKind::NotFound))
                }
            },
        )
        .unwrap_or_else(|e| panic!("{e}"))
    }

    /// A request from the mTLS peer `transport` (with its certificate) carrying `header`.
    fn request(
        &self,
        transport: &str,
        header: Option<(&str, String)>,
    ) -> warrant::request::AuthzRequest {
        let mut request = common::policy::request(transport, "GET", "/orders");
        request.source.certificate = self.ca.svid(transport).url_encoded();
        if let (Some(http), Some((name, value))) = (request.http.as_mut(), header) {
            http.headers.push((name.to_owned(), value));
        }
        request
    }
}

const TOKENS: &str = "{audiences: [spiffe://prod.example.org/ns/shop/sa/orders]}";

/// Allows what the rule says, and otherwise denies with the workload's error as the reason.
const RULES: &str = r#"  - id: workload
    effect: allow
    when: workload.verified && workload.bound
"#;

fn bearer(token: &str) -> Option<(&'static str, String)> {
    Some(("authorization", format!("Bearer {token}")))
}

fn workload_of(decision: &Decision) -> &Workload {
    &decision.identity.as_ref().expect("identities").workload
}

fn rejection(domain: &Domain, token: &str) -> (String, &'static str) {
    let policy = domain.policy(TOKENS, RULES);
    let decision = policy.decide(&domain.request(PAYMENTS, bearer(token)), SystemTime::now());
    match workload_of(&decision) {
        Workload::Invalid(error) => (error.to_string(), error.class()),
        other => panic!("expected a rejected token, got {other:?}"),
    }
}

#[test]
fn every_algorithm_jwt_svid_allows_verifies() {
    let algs = [
        "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512",
    ];
    let domain = Domain::new(&algs);
    let policy = domain.policy(TOKENS, RULES);
    for signer in &domain.signers {
        let token = signer.token(PAYMENTS, AUDIENCE);
        let decision = policy.decide(&domain.request(PAYMENTS, bearer(&token)), SystemTime::now());
        assert_eq!(
            decision.verdict,
            Verdict::Allow,
            "{}: {}",
            signer.alg,
            decision.reason
        );
        let svid = workload_of(&decision).verified().unwrap();
        assert_eq!(svid.spiffe_id.as_str(), PAYMENTS);
        assert_eq!(svid.audience, vec![AUDIENCE.to_owned()]);
    }
}

#[test]
fn each_invalid_token_is_rejected_with_its_class() {
    let domain = Domain::new(&["ES256", "RS256"]);
    let es = &domain.signers[0];
    let sign = |claims: serde_json::Value| es.sign_with(json!({"typ": "JWT"}), &claims);
    let t = now();
    let valid = json!({"sub": PAYMENTS, "aud": AUDIENCE, "exp": t + 600});
    let with = |key: &str, value: serde_json::Value| {
        let mut claims = valid.clone();
        claims[key] = value;
        claims
    };
    let cases: Vec<(&str, String, &str, &str)> = vec![
        (
            "expired",
            sign(with("exp", json!(t - 120))),
            "expired",
            "expired at",
        ),
        (
            "expired within leeway is still valid",
            String::new(),
            "",
            "",
        ),
        (
            "not yet valid",
            sign(with("nbf", json!(t + 600))),
            "not_yet_valid",
            "not valid before",
        ),
        (
            "issued in the future",
            sign(with("iat", json!(t + 600))),
            "not_yet_valid",
            "not valid before",
        ),
        (
            "no exp",
            sign(json!({"sub": PAYMENTS, "aud": AUDIENCE})),
            "expired",
            "no exp",
        ),
        (
            "wrong audience",
            sign(with("aud", json!(["spiffe://prod.example.org/other"]))),
            "audience",
            "names no accepted audience",
        ),
        (
            "no audience",
            sign(json!({"sub": PAYMENTS, "exp": t + 600})),
            "audience",
            "no aud",
        ),
        (
            "sub not a SPIFFE ID",
            sign(with("sub", json!("payments"))),
            "subject",
            "is not a SPIFFE ID",
        ),
        (
            "sub a trust domain",
            sign(with("sub", json!("spiffe://prod.example.org"))),
            "subject",
            "not a workload",
        ),
        (
            "sub of an unlisted trust domain",
            sign(with("sub", json!("spiffe://evil.example.org/x"))),
            "subject",
            "is not accepted",
        ),
        (
            "key of another trust domain",
            sign(with("sub", json!("spiffe://other.example.org/ns/a/sa/b"))),
            "unknown_key",
            "has no JWT authority",
        ),
        (
            "unknown kid",
            es.sign_with(json!({"kid": "nope"}), &valid),
            "unknown_key",
            "kid \"nope\"",
        ),
        (
            "no kid",
            es.sign_with(json!({"kid": ""}), &valid),
            "unknown_key",
            "no kid",
        ),
        (
            "typ wrong",
            es.sign_with(json!({"typ": "at+jwt"}), &valid),
            "type",
            "typ \"at+jwt\"",
        ),
        (
            "ES256 token naming the RSA key",
            es.sign_with(json!({"kid": "k1"}), &valid),
            "signature",
            "cannot verify ES256",
        ),
        (
            "revoked subject",
            sign(with(
                "sub",
                json!("spiffe://prod.example.org/ns/shop/sa/revoked"),
            )),
            "revoked",
            "is revoked",
        ),
        (
            "not three parts",
            "abc.def".to_owned(),
            "malformed",
            "not three",
        ),
        (
            "not base64",
            "!!.!!.!!".to_owned(),
            "malformed",
            "not base64url",
        ),
        (
            "crit header",
            es.sign_with(json!({"crit": ["exp"]}), &valid),
            "malformed",
            "crit extensions",
        ),
        (
            "exp not a number",
            sign(with("exp", json!("soon"))),
            "malformed",
            "claim \"exp\" is not a NumericDate",
        ),
        (
            "exp past the year 9999",
            sign(with("exp", json!(i64::MAX))),
            "malformed",
            "is not a NumericDate",
        ),
        (
            "negative iat",
            sign(with("iat", json!(-5))),
            "malformed",
            "claim \"iat\"",
        ),
        (
            "aud not strings",
            sign(with("aud", json!([AUDIENCE, 5]))),
            "audience",
            "not a string or a list of strings",
        ),
        (
            "aud a number",
            sign(with("aud", json!(5))),
            "audience",
            "not a string or a list of strings",
        ),
    ];
    for (name, token, class, message) in cases {
        if token.is_empty() {
            continue;
        }
        let (error, got) = rejection(&domain, &token);
        assert_eq!(got, class, "{name}: {error}");
        assert!(error.contains(message), "{name}: {error}");
        assert!(!error.contains(&token), "{name}: the error holds the token");
    }
    // Within the default leeway of 30 s, an expired token still verifies.
    let late = sign(with("exp", json!(t - 10)));
    let policy = domain.policy(TOKENS, RULES);
    let decision = policy.decide(&domain.request(PAYMENTS, bearer(&late)), SystemTime::now());
    assert!(
        workload_of(&decision).verified().is_some(),
        "{:?}",
        workload_of(&decision)
    );
}

#[test]
fn forged_tokens_are_refused() {
    let domain = Domain::new(&["ES256", "RS256"]);
    let es = &domain.signers[0];
    let token = es.token(PAYMENTS, AUDIENCE);
    let parts: Vec<&str> = token.split('.').collect();
    let b64 = |v: &serde_json::Value| {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
    };
    // alg none, with and without a signature.
    let none = format!(
        "{}.{}.",
        b64(&json!({"alg": "none", "kid": "k0"})),
        parts[1]
    );
    let (error, class) = rejection(&domain, &none);
    assert_eq!(class, "algorithm", "{error}");
    // HS256 with the RSA public key (its JWK's n) as the HMAC secret.
    let header = b64(&json!({"alg": "HS256", "kid": "k1", "typ": "JWT"}));
    let input = format!("{header}.{}", parts[1]);
    let secret = domain.signers[1].jwk()["n"].as_str().unwrap().to_owned();
    let mac = ring::hmac::sign(
        &ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret.as_bytes()),
        input.as_bytes(),
    );
    let hs = format!(
        "{input}.{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(mac.as_ref())
    );
    let (error, class) = rejection(&domain, &hs);
    assert_eq!(class, "algorithm", "{error}");
    // A tampered payload: another subject, the original signature.
    let tampered_claims = b64(&json!({"sub": FRONTEND, "aud": AUDIENCE, "exp": now() + 600}));
    let tampered = format!("{}.{tampered_claims}.{}", parts[0], parts[2]);
    let (error, class) = rejection(&domain, &tampered);
    assert_eq!(class, "signature", "{error}");
    // Signed by a key that is not in the bundle, under a kid that is.
    let impostor = JwtSigner::new("ES256", "k0").token(PAYMENTS, AUDIENCE);
    let (error, class) = rejection(&domain, &impostor);
    assert_eq!(class, "signature", "{error}");
    // Oversized.
    let (error, class) = rejection(&domain, &"a".repeat(20_000));
    assert_eq!(class, "malformed", "{error}");
    // A claim named twice, or a header member: one meaning per token.
    let twice = format!(
        "{}.{}.{}",
        parts[0],
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!(
            r#"{{"sub":"{FRONTEND}","sub":"{PAYMENTS}","aud":"{AUDIENCE}","exp":{}}}"#,
            now() + 60
        )),
        parts[2]
    );
    let (error, class) = rejection(&domain, &twice);
    assert_eq!(class, "malformed", "{error}");
    assert!(error.contains("duplicate key \"sub\""), "{error}");
}

#[test]
fn rules_see_the_workload_and_whether_it_is_bound() {
    let domain = Domain::new(&["ES256"]);
    let rules = r#"  - id: relay
    effect: deny
    when: source.spiffe_id == "spiffe://prod.example.org/ns/shop/sa/payments" && !workload.bound
  - id: gateway-carries-shop
    effect: allow
    when: >
      source.spiffe_id == "spiffe://prod.example.org/ns/istio-system/sa/ingressgateway"
      && workload.verified && workload.namespace == "shop"
      && workload.claims.team == "web" && workload.expires_at > now
      && "spiffe://prod.example.org/ns/shop/sa/orders" in workload.audience
  - id: bound
    effect: allow
    when: workload.bound && workload.present && workload.error == ""
"#;
    let policy = domain.policy(TOKENS, rules);
    let signer = &domain.signers[0];
    let decide = |transport: &str, token: Option<String>| {
        policy.decide(
            &domain.request(transport, token.and_then(|t| bearer(&t))),
            SystemTime::now(),
        )
    };
    // The payments sidecar with its own token.
    let own = decide(PAYMENTS, Some(signer.token(PAYMENTS, AUDIENCE)));
    assert_eq!(own.rule.as_deref(), Some("bound"), "{}", own.reason);
    assert!(own.identity.as_ref().unwrap().bound());
    // Relay: the payments sidecar carrying the frontend's token, or none.
    let relayed = decide(PAYMENTS, Some(signer.token(FRONTEND, AUDIENCE)));
    assert_eq!(
        (relayed.verdict, relayed.rule.as_deref()),
        (Verdict::Deny, Some("relay"))
    );
    let bare = decide(PAYMENTS, None);
    assert_eq!(bare.rule.as_deref(), Some("relay"));
    assert_eq!(workload_of(&bare), &Workload::Absent);
    // The gateway carrying a shop workload's token with a custom claim.
    let claims = json!({"sub": FRONTEND, "aud": [AUDIENCE], "exp": now() + 600, "team": "web"});
    let carried = decide(GATEWAY, Some(signer.sign_with(json!({}), &claims)));
    assert_eq!(
        carried.rule.as_deref(),
        Some("gateway-carries-shop"),
        "{}",
        carried.reason
    );
    assert!(!carried.identity.as_ref().unwrap().bound());
}

#[test]
fn a_required_token_is_enforced_at_the_trust_stage() {
    let domain = Domain::new(&["ES256"]);
    let allow_all = "  - id: all\n    effect: allow\n    when: \"true\"\n";
    let policy = domain.policy(
        "{audiences: [spiffe://prod.example.org/ns/shop/sa/orders], required: true, header: X-Workload-Token, leeway: 5s}",
        allow_all,
    );
    let signer = &domain.signers[0];
    let decide = |header: Option<(&str, String)>| {
        policy.decide(&domain.request(PAYMENTS, header), SystemTime::now())
    };
    let missing = decide(None);
    assert_eq!(
        (missing.verdict, missing.stage),
        (Verdict::Deny, Stage::Trust)
    );
    assert!(
        missing
            .reason
            .contains("no workload token in the x-workload-token header"),
        "{}",
        missing.reason
    );
    // The record still names the transport identity.
    assert_eq!(
        missing
            .identity
            .as_ref()
            .unwrap()
            .transport
            .spiffe_id
            .as_str(),
        PAYMENTS
    );
    let token = signer.token(PAYMENTS, "spiffe://prod.example.org/elsewhere");
    let wrong = decide(Some(("x-workload-token", token.clone())));
    assert_eq!(wrong.stage, Stage::Trust);
    assert!(
        wrong.reason.contains("names no accepted audience"),
        "{}",
        wrong.reason
    );
    assert!(!wrong.reason.contains(&token));
    // The custom header holds the bare token; `Bearer` is only stripped from authorization.
    let good = signer.token(PAYMENTS, AUDIENCE);
    assert_eq!(
        decide(Some(("x-workload-token", good.clone()))).verdict,
        Verdict::Allow
    );
    let prefixed = decide(Some(("x-workload-token", format!("Bearer {good}"))));
    assert_eq!(prefixed.verdict, Verdict::Deny);
    // A 5 s leeway: a token expired a minute ago is refused.
    let old = signer.sign_with(
        json!({}),
        &json!({"sub": PAYMENTS, "aud": AUDIENCE, "exp": now() - 60}),
    );
    assert!(
        decide(Some(("x-workload-token", old)))
            .reason
            .contains("expired")
    );
}

#[test]
fn the_authorization_header_needs_a_bearer_token() {
    let domain = Domain::new(&["ES256"]);
    let policy = domain.policy(TOKENS, RULES);
    let token = domain.signers[0].token(PAYMENTS, AUDIENCE);
    let decide = |value: String| {
        policy.decide(
            &domain.request(PAYMENTS, Some(("authorization", value))),
            SystemTime::now(),
        )
    };
    assert_eq!(decide(format!("bearer {token}")).verdict, Verdict::Allow);
    let basic = decide("Basic dXNlcjpwYXNz".to_owned());
    assert_eq!(basic.verdict, Verdict::Deny);
    assert!(
        workload_of(&basic)
            .error()
            .contains("not hold a Bearer token")
    );
}

#[test]
fn workload_tokens_settings_are_checked_at_load() {
    let domain = Domain::new(&["ES256"]);
    let bundle = domain.bundle();
    let compile = |tokens: &str| {
        Policy::compile(
            &[PolicySource {
                path: PathBuf::from("policy.yaml"),
                text: format!("trust:\n  trust_domains: [{PROD}]\n  bundles: {{{PROD}: bundle.json}}\n  workload_tokens: {tokens}\nrules: []\n"),
            }],
            &mut |_: &Path, _| Ok(bundle.clone().into_bytes()),
        )
        .map(|_| ())
        .map_err(|e| e.to_string())
    };
    assert!(
        compile("{audiences: []}")
            .unwrap_err()
            .contains("needs at least one audience")
    );
    assert!(
        compile("{audiences: [a], leeway: soon}")
            .unwrap_err()
            .contains("trust.workload_tokens.leeway")
    );
    assert!(
        compile("{audiences: [a], leeway: 3650d}")
            .unwrap_err()
            .contains("is over 10m")
    );
    assert!(
        compile("{audiences: [a], header: \"bad header\"}")
            .unwrap_err()
            .contains("is not a header name")
    );
    assert!(
        compile("{audiences: [a], requird: true}")
            .unwrap_err()
            .contains("requird")
    );
    compile("{audiences: [a]}").unwrap();
}

#[test]
fn without_workload_tokens_nothing_is_checked() {
    let domain = Domain::new(&["ES256"]);
    let policy = Policy::compile(
        &[PolicySource {
            path: PathBuf::from("policy.yaml"),
            text: "trust:\n  trust_domains: [prod.example.org]\nrules:\n  - id: w\n    effect: allow\n    when: \"!workload.present && !workload.verified && workload.spiffe_id == ''\"\n".into(),
        }],
        &mut |_: &Path, _| Err(std::io::Error::from(std::io::ErrorKind::NotFound)),
    )
    .unwrap();
    let token = domain.signers[0].token(PAYMENTS, AUDIENCE);
    let mut request = common::policy::request(PAYMENTS, "GET", "/");
    if let Some(http) = request.http.as_mut() {
        http.headers
            .push(("authorization".into(), format!("Bearer {token}")));
    }
    let decision = policy.decide(&request, SystemTime::now());
    assert_eq!(decision.verdict, Verdict::Allow, "{}", decision.reason);
    assert_eq!(workload_of(&decision), &Workload::Unchecked);
}

#[test]
fn tokens_are_counted_and_reach_envoys_dynamic_metadata() {
    use envoy_types::pb::google::protobuf::value::Kind;
    let domain = Domain::new(&["ES256"]);
    let policy = domain.policy(TOKENS, RULES);
    let metrics = warrant::audit::Metrics::default();
    let signer = &domain.signers[0];
    let expired = signer.sign_with(
        json!({}),
        &json!({"sub": PAYMENTS, "aud": AUDIENCE, "exp": now() - 600}),
    );
    let mut relayed = None;
    for header in [
        bearer(&signer.token(PAYMENTS, AUDIENCE)),
        bearer(&signer.token(FRONTEND, AUDIENCE)),
        bearer(&expired),
        None,
    ] {
        let decision = policy.decide(&domain.request(PAYMENTS, header), SystemTime::now());
        metrics.observe(&decision, std::time::Duration::from_micros(10), true);
        if relayed.is_none() && decision.verdict == Verdict::Deny {
            relayed = Some(decision);
        }
    }
    let text = metrics.encode();
    for (result, n) in [
        ("verified", 2),
        ("expired", 1),
        ("absent", 1),
        ("signature", 0),
    ] {
        let series = format!("warrant_workload_tokens_total{{result=\"{result}\"}} {n}");
        assert!(text.contains(&series), "{series} in\n{text}");
    }
    let relayed = relayed.unwrap();
    let response = warrant::server::response::check_response(&relayed, None);
    let fields = response.dynamic_metadata.unwrap().fields;
    let field = |name: &str| fields[name].kind.clone();
    assert_eq!(field("spiffe_id"), Some(Kind::StringValue(PAYMENTS.into())));
    assert_eq!(
        field("workload_spiffe_id"),
        Some(Kind::StringValue(FRONTEND.into()))
    );
    assert_eq!(field("workload_verified"), Some(Kind::BoolValue(true)));
    assert_eq!(field("identity_bound"), Some(Kind::BoolValue(false)));
    assert_eq!(field("xfcc_spoofed"), Some(Kind::BoolValue(false)));
    assert_eq!(field("proxy_chain"), Some(Kind::StringValue(String::new())));
}

mod never_panics {
    use base64::Engine as _;
    use proptest::prelude::*;
    use warrant::identity::jwt_svid::Expectations;
    use warrant::identity::{JwtKeys, JwtPublicKey, JwtSvid};

    struct Keys(JwtPublicKey);
    impl JwtKeys for Keys {
        fn accepts(&self, _: &str) -> bool {
            true
        }
        fn key(&self, _: &str, _: &str) -> Option<&JwtPublicKey> {
            Some(&self.0)
        }
    }

    fn b64(text: &str) -> String {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(text)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1000))]

        #[test]
        fn on_any_token(
            token in "\\PC{0,200}",
            alg in prop_oneof![Just("ES256"), Just("ES384"), Just("ES512"), Just("RS256"), Just("PS512"), Just("none"), Just("HS256")],
            claims in "\\PC{0,80}",
            signature in proptest::collection::vec(any::<u8>(), 0..140),
            es in any::<bool>(),
        ) {
            let signer = super::JwtSigner::new(if es { "ES512" } else { "RS256" }, "k");
            let jwk = signer.jwk();
            let key = JwtPublicKey::from_jwk(jwk.as_object().unwrap()).unwrap();
            let keys = Keys(key);
            let expect = Expectations { audiences: &["a".to_owned()], now: 0, leeway: i64::MAX };
            let _ = JwtSvid::validate(&token, &keys, expect);
            let header = format!(r#"{{"alg":"{alg}","kid":"k"}}"#);
            let payload = format!(r#"{{"sub":"spiffe://td/w","aud":"a","exp":{claims}}}"#);
            let forged = format!(
                "{}.{}.{}",
                b64(&header),
                b64(&payload),
                base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&signature)
            );
            prop_assert!(JwtSvid::validate(&forged, &keys, expect).is_err());
        }
    }
}

#[test]
fn a_revoked_workloads_token_is_untrusted_even_when_not_required() {
    let domain = Domain::new(&["ES256"]);
    let policy = domain.policy(
        TOKENS,
        "  - id: all\n    effect: allow\n    when: \"true\"\n",
    );
    let revoked = "spiffe://prod.example.org/ns/shop/sa/revoked";
    let token = domain.signers[0].token(revoked, AUDIENCE);
    let decision = policy.decide(&domain.request(PAYMENTS, bearer(&token)), SystemTime::now());
    assert_eq!(
        (decision.verdict, decision.stage),
        (Verdict::Deny, Stage::Trust)
    );
    assert!(
        decision.reason.contains(&format!(
            "workload token: the token's subject {revoked} is revoked"
        )),
        "{}",
        decision.reason
    );
    let checks = policy.explain(&domain.request(PAYMENTS, bearer(&token)), SystemTime::now());
    let revocation = checks
        .trust
        .iter()
        .find(|c| c.kind == warrant::trust::TrustCheckKind::Revocation)
        .unwrap();
    assert!(matches!(
        revocation.result,
        warrant::trust::TrustCheckResult::Failed(_)
    ));
}

#[test]
fn check_warns_about_identity_settings_that_cannot_work() {
    let warnings = |text: &str| -> Vec<String> {
        Policy::compile(
            &[PolicySource {
                path: PathBuf::from("policy.yaml"),
                text: text.to_owned(),
            }],
            &mut |_: &Path, _| {
                Ok(b"-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n".to_vec())
            },
        )
        .unwrap_or_else(|e| panic!("{e}"))
        .warnings()
        .iter()
        .map(ToString::to_string)
        .collect()
    };
    let found = warnings(
        "trust:\n  trust_domains: [prod.example.org]\n  forwarders: [\"spiffe://prod.example.org\", \"spiffe://prod.example.org/**\"]\nrules:\n  - id: w\n    effect: allow\n    when: workload.verified\n",
    );
    let all = found.join("\n");
    assert!(all.contains("policy.yaml:2: warning: trust.forwarders \"spiffe://prod.example.org\" is a trust domain's own ID"), "{all}");
    assert!(
        all.contains("makes every workload of a trust domain a forwarder"),
        "{all}"
    );
    assert!(
        all.contains(
            "rule 'w': warning: the rule reads `workload`, but trust.workload_tokens is not set"
        ),
        "{all}"
    );
    let found = warnings(
        "trust:\n  trust_domains: [prod.example.org]\n  workload_tokens: {audiences: [a]}\nrules: []\n",
    );
    assert!(
        found
            .iter()
            .any(|w| w.contains("no bundle holds a jwt-svid key")),
        "{found:?}"
    );
}

#[test]
fn forwarder_lints_cover_every_shape() {
    for (entry, expected) in [
        (
            "spiffe://**",
            "makes every workload of a trust domain a forwarder",
        ),
        (
            "spiffe://prod.example.org/*/**",
            "makes every workload of a trust domain a forwarder",
        ),
        (
            "spiffe://other.example.org/ns/gw/sa/gw",
            "is not of a trust domain in trust.trust_domains",
        ),
    ] {
        let policy = common::policy::compile_files(&[(
            "policy.yaml",
            &format!("trust:\n  trust_domains: [prod.example.org]\n  forwarders: [\"{entry}\"]\n"),
        )])
        .unwrap_or_else(|e| panic!("{entry}: {e}"));
        let warnings: Vec<String> = policy.warnings().iter().map(ToString::to_string).collect();
        assert!(
            warnings.iter().any(|w| w.contains(expected)),
            "{entry}: {warnings:?}"
        );
    }
    let fine = common::policy::compile_files(&[(
        "policy.yaml",
        "trust:\n  trust_domains: [prod.example.org]\n  forwarders: [\"spiffe://prod.example.org/ns/istio-system/sa/*\"]\n",
    )])
    .unwrap();
    assert!(fine.warnings().is_empty(), "{:?}", fine.warnings());
}

#[test]
fn forwarder_lints_catch_every_istio_workload() {
    for entry in [
        "spiffe://prod.example.org/ns/*/sa/*",
        "spiffe://prod.example.org/ns/**",
    ] {
        let policy = common::policy::compile_files(&[(
            "policy.yaml",
            &format!("trust:\n  trust_domains: [prod.example.org]\n  forwarders: [\"{entry}\"]\n"),
        )])
        .unwrap_or_else(|e| panic!("{entry}: {e}"));
        assert!(
            policy
                .warnings()
                .iter()
                .any(|w| w.to_string().contains("makes every workload")),
            "{entry}"
        );
    }
}

/// Tokens are validated once per policy and remembered; a remembered token decides exactly as
/// a new one: its times are checked again on every Check.
#[test]
fn a_remembered_token_decides_as_a_new_one() {
    let domain = Domain::new(&["ES256"]);
    let signer = &domain.signers[0];
    let token = signer.sign_with(
        json!({}),
        &json!({"sub": PAYMENTS, "aud": AUDIENCE, "exp": now() + 600, "nbf": now() - 10}),
    );
    let request = domain.request(PAYMENTS, bearer(&token));
    let warm = domain.policy(TOKENS, RULES);
    let outcome = |policy: &Policy, at: SystemTime| {
        let decision = policy.decide(&request, at);
        (decision.verdict, workload_of(&decision).error())
    };
    let times = [
        SystemTime::now(),
        SystemTime::now() + std::time::Duration::from_secs(3600),
        SystemTime::now() - std::time::Duration::from_secs(3600),
        SystemTime::now(),
    ];
    for at in times {
        let fresh = domain.policy(TOKENS, RULES);
        assert_eq!(outcome(&warm, at), outcome(&fresh, at));
    }
    assert!(outcome(&warm, times[1]).1.contains("expired"));
    assert!(outcome(&warm, times[2]).1.contains("not valid before"));
}
