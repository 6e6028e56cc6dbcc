//! Trust bundles held to the SPIFFE specs: SPIFFE bundle (JWK Set) parsing, authorities only
//! within their validity window, only CA certificates as authorities, and intermediates.

// Test code: a failed unwrap, expect or assertion is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::{Duration, SystemTime};

use common::{Ca, LeafSpec};
use serde_json::json;
use warrant::identity::{BundleError, BundleFormat, TrustBundle};
use warrant::request::Peer;
use warrant::trust::{BundleSettings, TrustConfigError, TrustPolicy, TrustSettings, Untrusted};

const PROD: &str = "prod.example.org";
const FRONTEND: &str = "spiffe://prod.example.org/ns/shop/sa/frontend";

fn peer(certificate: &str) -> Peer {
    Peer {
        principal: FRONTEND.into(),
        certificate: certificate.into(),
        ..Peer::default()
    }
}

fn spiffe_bundle(keys: serde_json::Value) -> Vec<u8> {
    json!({"keys": keys, "spiffe_sequence": 7, "spiffe_refresh_hint": 300})
        .to_string()
        .into_bytes()
}

fn policy(bundle: BundleSettings) -> Result<TrustPolicy, TrustConfigError> {
    TrustPolicy::new(TrustSettings {
        trust_domains: vec![PROD.into()],
        bundles: vec![bundle],
        ..TrustSettings::default()
    })
}

fn spiffe(bytes: Vec<u8>) -> BundleSettings {
    BundleSettings {
        format: BundleFormat::Spiffe,
        ..BundleSettings::pem(PROD, bytes)
    }
}

/// A public EC P-256 JWK of the right shape (its point is not checked at load).
fn jwt_key(kid: &str) -> serde_json::Value {
    json!({"use": "jwt-svid", "kid": kid, "kty": "EC", "crv": "P-256",
           "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
           "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"})
}

fn key_error(keys: serde_json::Value) -> String {
    TrustBundle::from_spiffe_json(&spiffe_bundle(keys))
        .unwrap_err()
        .to_string()
}

#[test]
fn a_spiffe_bundle_verifies_like_a_pem_one() {
    let ca = Ca::new("prod");
    let leaf = ca.svid(FRONTEND);
    let bundle = spiffe_bundle(json!([ca.jwk(), jwt_key("k1")]));
    let parsed = TrustBundle::from_spiffe_json(&bundle).unwrap();
    assert_eq!(parsed.x509_authorities.len(), 1);
    assert_eq!(parsed.jwt_authorities[0].key_id, "k1");
    assert_eq!(
        (parsed.sequence, parsed.refresh_hint_secs),
        (Some(7), Some(300))
    );
    let trust = policy(spiffe(bundle)).unwrap();
    let verified = trust
        .verify(&peer(&leaf.url_encoded()), SystemTime::now())
        .unwrap();
    assert_eq!(verified.spiffe_id.as_str(), FRONTEND);
    let summary = &trust.bundle_summaries()[0];
    assert_eq!((summary.x509_authorities, summary.jwt_authorities), (1, 1));
    assert_eq!(summary.sequence, Some(7));
    // Another CA's leaf does not chain.
    let other = Ca::new("other").svid(FRONTEND);
    assert!(matches!(
        trust.verify(&peer(&other.url_encoded()), SystemTime::now()),
        Err(Untrusted::ChainInvalid { .. })
    ));
}

#[test]
fn a_bundle_with_no_keys_trusts_no_svid_of_its_domain() {
    let trust = policy(spiffe(spiffe_bundle(json!([])))).unwrap();
    let leaf = Ca::new("prod").svid(FRONTEND);
    let refused = trust
        .verify(&peer(&leaf.url_encoded()), SystemTime::now())
        .unwrap_err();
    assert!(
        refused.to_string().contains("holds no X.509 authority"),
        "{refused}"
    );
    // Nor a bare principal: the bundle asks for the certificate.
    assert_eq!(
        trust.verify(&peer(""), SystemTime::now()),
        Err(Untrusted::CertificateRequiredByBundle(PROD.into()))
    );
}

#[test]
fn keys_of_unknown_use_are_ignored() {
    let ca = Ca::new("prod");
    let bundle = spiffe_bundle(json!([
        {"use": "enc", "kty": "RSA", "n": "AQAB", "e": "AQAB"},
        {"use": "something-new"},
        ca.jwk(),
    ]));
    let parsed = TrustBundle::from_spiffe_json(&bundle).unwrap();
    assert_eq!((parsed.x509_authorities.len(), parsed.ignored_keys), (1, 2));
}

#[test]
fn malformed_bundles_name_what_is_wrong() {
    let ca = Ca::new("prod");
    let other = Ca::new("other");
    use base64::Engine as _;
    let b64 = |der: &[u8]| base64::engine::general_purpose::STANDARD.encode(der);
    let two = json!([{"use": "x509-svid", "kty": "EC", "x5c": [b64(&ca.der), b64(&other.der)]}]);
    assert!(
        key_error(two).contains("keys[0]: an x509-svid key holds exactly one certificate"),
        "two certificates"
    );
    let dup = key_error(json!([jwt_key("k1"), ca.jwk(), jwt_key("k1")]));
    assert!(dup.contains("two jwt-svid keys have kid \"k1\""), "{dup}");
    let cases = [
        (json!([{"kty": "EC"}]), "keys[0]: has no \"use\""),
        (json!([42]), "keys[0]: is not a JSON object"),
        (
            json!([{"use": "jwt-svid", "kty": "EC", "crv": "P-256", "x": "AA", "y": "AA"}]),
            "keys[0]: a jwt-svid key needs a non-empty \"kid\"",
        ),
        (
            json!([ca.jwk(), {"use": "jwt-svid", "kid": "small", "kty": "RSA", "n": "AQAB", "e": "AQAB"}]),
            "keys[1] (kid \"small\"): an RSA key of 17 bits is too short",
        ),
        (
            json!([{"use": "jwt-svid", "kid": "secret", "kty": "oct", "k": "c2VjcmV0"}]),
            "keys[0] (kid \"secret\"): holds private key material",
        ),
        (
            json!([{"use": "jwt-svid", "kid": "hs", "kty": "oct"}]),
            "keys[0] (kid \"hs\"): kty \"oct\" is not one JWT-SVIDs use",
        ),
        (
            json!([{"use": "jwt-svid", "kid": "ed", "kty": "OKP", "crv": "Ed25519", "x": "AA"}]),
            "keys[0] (kid \"ed\"): kty \"OKP\"",
        ),
        (
            json!([{"use": "jwt-svid", "kid": "c", "kty": "EC", "crv": "P-256", "x": "AA", "y": "AA"}]),
            "keys[0] (kid \"c\"): \"x\" is not 32 bytes long",
        ),
        (
            json!([{"use": "x509-svid", "x5c": ["not base64!"]}]),
            "keys[0]: x5c is not base64",
        ),
        (
            json!([{"use": "x509-svid", "x5c": [b64(b"not a certificate")]}]),
            "keys[0]: x5c certificate:",
        ),
    ];
    for (keys, expected) in cases {
        let error = key_error(keys.clone());
        assert!(error.contains(expected), "{keys}: {error}");
    }
    for (text, expected) in [
        ("[]", "a SPIFFE bundle is a JSON object"),
        ("{}", "no \"keys\" array"),
        ("{\"keys\": [], \"keys\": []}", "duplicate key"),
        (
            "{\"keys\": [], \"spiffe_sequence\": -1}",
            "spiffe_sequence must be",
        ),
        (
            "{\"keys\": [], \"spiffe_refresh_hint\": \"5m\"}",
            "spiffe_refresh_hint must be",
        ),
        ("not json", "not valid JSON"),
    ] {
        let error = TrustBundle::from_spiffe_json(text.as_bytes())
            .unwrap_err()
            .to_string();
        assert!(error.contains(expected), "{text}: {error}");
    }
}

#[test]
fn an_authority_outside_its_validity_vouches_for_nothing() {
    let now = SystemTime::now();
    let day = Duration::from_secs(86_400);
    // Expired yesterday; its leaf outlives it (go-spiffe's verifier refuses this chain).
    let expired = Ca::valid("expired", now - 30 * day, now - day);
    let mut spec = LeafSpec::svid(FRONTEND);
    spec.not_after = now + day;
    let orphan = expired.leaf(spec);
    let current = Ca::new("current");
    let leaf = current.svid(FRONTEND);
    let pem = format!("{}{}", expired.pem, current.pem);
    for bundle in [
        BundleSettings::pem(PROD, pem.clone()),
        spiffe(spiffe_bundle(json!([expired.jwk(), current.jwk()]))),
    ] {
        let trust = policy(bundle).unwrap();
        assert!(trust.verify(&peer(&leaf.url_encoded()), now).is_ok());
        let refused = trust.verify(&peer(&orphan.url_encoded()), now).unwrap_err();
        assert!(
            matches!(refused, Untrusted::ChainInvalid { .. }),
            "{refused}"
        );
    }
    // Not yet valid: the same.
    let future = Ca::valid("future", now + day, now + 30 * day);
    let early = future.svid(FRONTEND);
    let trust = policy(BundleSettings::pem(PROD, future.pem.clone())).unwrap();
    let refused = trust.verify(&peer(&early.url_encoded()), now).unwrap_err();
    assert!(
        refused
            .to_string()
            .contains("no authority of the bundle is within its validity"),
        "{refused}"
    );
}

#[test]
fn only_ca_certificates_may_be_authorities() {
    let ca = Ca::new("prod");
    let leaf = ca.svid(FRONTEND);
    let mut spec = LeafSpec::svid("spiffe://prod.example.org/ns/x/sa/signer");
    spec.ca = true;
    spec.key_usages = vec![rcgen::KeyUsagePurpose::DigitalSignature];
    let no_cert_sign = ca.leaf(spec);
    for (pem, expected) in [
        (&leaf.pem, "not a CA certificate"),
        (&no_cert_sign.pem, "lacks keyCertSign"),
    ] {
        let error = policy(BundleSettings::pem(PROD, pem.clone()))
            .unwrap_err()
            .to_string();
        assert!(error.contains(expected), "{error}");
        assert!(
            error.starts_with("bundle of trust domain \"prod.example.org\": certificate 0"),
            "{error}"
        );
    }
    use base64::Engine as _;
    let der = rustls_pki_types::pem::PemObject::from_pem_slice(leaf.pem.as_bytes())
        .map(|c: rustls_pki_types::CertificateDer<'static>| c.to_vec())
        .unwrap();
    let as_key = json!([{"use": "x509-svid", "x5c": [base64::engine::general_purpose::STANDARD.encode(der)]}]);
    assert!(key_error(as_key).contains("keys[0]: x5c certificate: not a CA certificate"));
}

#[test]
fn configured_intermediates_complete_the_chain() {
    let root = Ca::new("root");
    let intermediate = root.intermediate("intermediate");
    let leaf = intermediate.svid(FRONTEND);
    let without = policy(BundleSettings::pem(PROD, root.pem.clone())).unwrap();
    assert!(matches!(
        without.verify(&peer(&leaf.url_encoded()), SystemTime::now()),
        Err(Untrusted::ChainInvalid { .. })
    ));
    let with = policy(BundleSettings {
        intermediates: Some(intermediate.pem.clone().into_bytes()),
        ..BundleSettings::pem(PROD, root.pem.clone())
    })
    .unwrap();
    assert!(
        with.verify(&peer(&leaf.url_encoded()), SystemTime::now())
            .is_ok()
    );
    assert_eq!(with.bundle_summaries()[0].intermediates, 1);
    // An intermediate does not stand in for the root: only the bundle's authorities anchor.
    let only_intermediate = policy(BundleSettings::pem(PROD, intermediate.pem.clone())).unwrap();
    assert!(
        only_intermediate
            .verify(&peer(&leaf.url_encoded()), SystemTime::now())
            .is_ok(),
        "an intermediate put in the bundle is an authority of its own"
    );
    // A leaf passed as an intermediate is refused at load.
    let error = policy(BundleSettings {
        intermediates: Some(leaf.pem.clone().into_bytes()),
        ..BundleSettings::pem(PROD, root.pem.clone())
    })
    .unwrap_err()
    .to_string();
    assert!(error.contains("intermediates: certificate 0"), "{error}");
    assert!(matches!(
        TrustBundle::parse(b"", BundleFormat::Pem),
        Err(BundleError::NoCertificate)
    ));
}

/// `trust.bundles` in a policy file: a path (format by extension) or a map with the path,
/// its format and intermediates.
#[test]
fn policy_files_name_bundles_by_path_or_in_full() {
    use std::collections::HashMap;
    use std::path::{Path, PathBuf};
    use warrant::policy::{Policy, PolicySource};
    let root = Ca::new("root");
    let intermediate = root.intermediate("intermediate");
    let files: HashMap<PathBuf, Vec<u8>> = [
        ("p/bundle.json", spiffe_bundle(json!([root.jwk()]))),
        ("p/bundle.txt", spiffe_bundle(json!([root.jwk()]))),
        ("p/root.pem", root.pem.clone().into_bytes()),
        ("p/inter.pem", intermediate.pem.clone().into_bytes()),
    ]
    .into_iter()
    .map(|(path, bytes)| (PathBuf::from(path), bytes))
    .collect();
    let compile = |bundle: &str| {
        let text = format!(
            "trust:\n  trust_domains: [prod.example.org]\n  bundles:\n    prod.example.org: {bundle}\nrules: []\n"
        );
        Policy::compile(
            &[PolicySource {
                path: PathBuf::from("p/policy.yaml"),
                text,
            }],
            &mut |path: &Path, _| {
                files.get(path).cloned().ok_or_else(|| {
                    std::io::Error::new(std::io::ErrorKind::NotFound, "no such file")
                })
            },
        )
    };
    let leaf = intermediate.svid(FRONTEND);
    for good in [
        "bundle.json",
        "{path: bundle.txt, format: spiffe}",
        "{path: root.pem, format: pem}",
    ] {
        let policy = compile(good).unwrap_or_else(|e| panic!("{good}: {e}"));
        assert_eq!(policy.trust().bundle_summaries()[0].x509_authorities, 1);
        assert!(policy.files().iter().any(|f| f.starts_with("p/")));
    }
    // The intermediate is needed for this leaf, and its file is one the policy loads.
    let policy = compile("{path: bundle.json, intermediates: inter.pem}").unwrap();
    assert!(policy.files().contains(&PathBuf::from("p/inter.pem")));
    assert!(
        policy
            .trust()
            .verify(&peer(&leaf.url_encoded()), SystemTime::now())
            .is_ok()
    );
    for (bad, expected) in [
        ("bundle.txt", "no CERTIFICATE in the PEM bundle"),
        (
            "{path: bundle.json, format: jwks}",
            "format \"jwks\" is neither pem nor spiffe",
        ),
        (
            "{path: bundle.json, intermediates: none.pem}",
            "intermediates of trust domain",
        ),
        ("{path: root.pem, colour: red}", "colour"),
    ] {
        let errors = compile(bad).unwrap_err().to_string();
        assert!(errors.contains(expected), "{bad}: {errors}");
    }
}

/// Keys that could never verify a signature are refused at load, naming the key.
#[test]
fn unusable_jwt_keys_are_refused_at_load() {
    let b64 = |bytes: &[u8]| {
        use base64::Engine as _;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    };
    let zero32 = b64(&[0; 32]);
    let zero48 = b64(&[0; 48]);
    let modulus = b64(&[0xc5; 256]);
    for (key, expected) in [
        (
            json!({"use": "jwt-svid", "kid": "p", "kty": "EC", "crv": "P-256", "x": zero32, "y": zero32}),
            "not a point of P-256",
        ),
        (
            json!({"use": "jwt-svid", "kid": "q", "kty": "EC", "crv": "P-384", "x": zero48, "y": zero48}),
            "not a point of P-384",
        ),
        (
            json!({"use": "jwt-svid", "kid": "e", "kty": "RSA", "n": modulus, "e": "AQ"}),
            "exponent",
        ),
        (
            json!({"use": "jwt-svid", "kid": "k", "kty": "EC", "crv": "secp256k1", "x": zero32, "y": zero32}),
            "EC curve \"secp256k1\"",
        ),
        (
            json!({"use": "jwt-svid", "kid": "m", "kty": "EC", "x": zero32, "y": zero32}),
            "EC curve missing",
        ),
    ] {
        let error = key_error(json!([key]));
        assert!(error.contains(expected), "{error}");
    }
    // A modulus with a leading zero byte is accepted (and verifies, as without it).
    let padded = [&[0u8][..], &[0xc5; 256]].concat();
    TrustBundle::from_spiffe_json(&spiffe_bundle(json!([
        {"use": "jwt-svid", "kid": "z", "kty": "RSA", "n": b64(&padded), "e": "AQAB"}
    ])))
    .unwrap();
}
