//! The trust stage against real certificates generated here.

// Test code: a failed unwrap, expect or assertion is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::{Duration, SystemTime};

use common::{Ca, LeafSpec};
use rcgen::KeyUsagePurpose;
use warrant::identity::SvidError;
use warrant::request::Peer;
use warrant::trust::{BundleSettings, TrustConfigError, TrustPolicy, TrustSettings, Untrusted};

const PROD: &str = "prod.example.org";
const DEV: &str = "dev.example.org";
const FRONTEND: &str = "spiffe://prod.example.org/ns/shop/sa/frontend";

struct Fixture {
    prod: Ca,
    dev: Ca,
    policy: TrustPolicy,
}

fn fixture() -> Fixture {
    let prod = Ca::new("prod CA");
    let dev = Ca::new("dev CA");
    let policy = TrustPolicy::new(TrustSettings {
        trust_domains: vec![PROD.into(), DEV.into()],
        bundles: vec![
            BundleSettings::pem(PROD, prod.pem.clone()),
            BundleSettings::pem(DEV, dev.pem.clone()),
        ],
        max_svid_lifetime: Some(Duration::from_secs(24 * 3600)),
        require_certificate: false,
        revoked: Vec::new(),
        forwarders: Vec::new(),
        workload_tokens: None,
        workload_api: None,
        pending_bundles: Vec::new(),
    })
    .unwrap();
    Fixture { prod, dev, policy }
}

fn peer(principal: &str, certificate: String) -> Peer {
    Peer {
        principal: principal.into(),
        certificate,
        ..Peer::default()
    }
}

#[test]
fn valid_svid_is_trusted() {
    let f = fixture();
    let leaf = f.prod.svid(FRONTEND);
    let verified = f
        .policy
        .verify(&peer(FRONTEND, leaf.url_encoded()), SystemTime::now())
        .unwrap();
    assert_eq!(verified.spiffe_id.as_str(), FRONTEND);
    let svid = verified.svid.unwrap();
    assert!(svid.lifetime_secs() == 24 * 3600);
    assert!(!svid.serial().is_empty());
}

#[test]
fn plain_pem_is_accepted_too() {
    let f = fixture();
    let leaf = f.prod.svid(FRONTEND);
    assert!(
        f.policy
            .verify(&peer(FRONTEND, leaf.pem), SystemTime::now())
            .is_ok()
    );
}

#[test]
fn expired_and_not_yet_valid() {
    let f = fixture();
    let leaf = f.prod.svid(FRONTEND);
    let later = SystemTime::now() + Duration::from_secs(48 * 3600);
    assert!(matches!(
        f.policy.verify(&peer(FRONTEND, leaf.url_encoded()), later),
        Err(Untrusted::Expired { .. })
    ));
    let earlier = SystemTime::now() - Duration::from_secs(2 * 3600);
    assert!(matches!(
        f.policy
            .verify(&peer(FRONTEND, leaf.url_encoded()), earlier),
        Err(Untrusted::NotYetValid { .. })
    ));
}

#[test]
fn too_long_lived() {
    let f = fixture();
    let mut spec = LeafSpec::svid(FRONTEND);
    spec.not_after = SystemTime::now() + Duration::from_secs(30 * 24 * 3600);
    let leaf = f.prod.leaf(spec);
    let result = f
        .policy
        .verify(&peer(FRONTEND, leaf.url_encoded()), SystemTime::now());
    assert!(
        matches!(
            result,
            Err(Untrusted::LifetimeTooLong {
                max_secs: 86400,
                ..
            })
        ),
        "{result:?}"
    );
}

#[test]
fn two_uri_sans() {
    let f = fixture();
    let mut spec = LeafSpec::svid(FRONTEND);
    spec.uris
        .push("spiffe://prod.example.org/ns/shop/sa/other".into());
    let leaf = f.prod.leaf(spec);
    assert_eq!(
        f.policy
            .verify(&peer(FRONTEND, leaf.url_encoded()), SystemTime::now()),
        Err(Untrusted::Svid(SvidError::UriSanCount(2)))
    );
}

#[test]
fn no_uri_san_dns_principal() {
    // Envoy falls back to the first DNS SAN for `principal`; it is not a SPIFFE ID.
    let f = fixture();
    let mut spec = LeafSpec::svid(FRONTEND);
    spec.uris.clear();
    spec.dns.push("frontend.shop.svc".into());
    let leaf = f.prod.leaf(spec);
    let result = f.policy.verify(
        &peer("frontend.shop.svc", leaf.url_encoded()),
        SystemTime::now(),
    );
    assert!(
        matches!(result, Err(Untrusted::InvalidSpiffeId { .. })),
        "{result:?}"
    );
    // Even with a SPIFFE principal, a certificate without URI SAN is not an SVID.
    let result = f
        .policy
        .verify(&peer(FRONTEND, leaf.url_encoded()), SystemTime::now());
    assert_eq!(result, Err(Untrusted::Svid(SvidError::UriSanCount(0))));
}

#[test]
fn subject_principal_is_untrusted() {
    let f = fixture();
    let result = f.policy.verify(
        &peer("CN=frontend,O=shop", String::new()),
        SystemTime::now(),
    );
    assert!(matches!(result, Err(Untrusted::InvalidSpiffeId { .. })));
}

#[test]
fn ca_leaf() {
    let f = fixture();
    let mut spec = LeafSpec::svid(FRONTEND);
    spec.ca = true;
    let leaf = f.prod.leaf(spec);
    assert_eq!(
        f.policy
            .verify(&peer(FRONTEND, leaf.url_encoded()), SystemTime::now()),
        Err(Untrusted::Svid(SvidError::IsCa))
    );
}

#[test]
fn key_cert_sign_leaf() {
    let f = fixture();
    let mut spec = LeafSpec::svid(FRONTEND);
    spec.key_usages.push(KeyUsagePurpose::KeyCertSign);
    let leaf = f.prod.leaf(spec);
    assert_eq!(
        f.policy
            .verify(&peer(FRONTEND, leaf.url_encoded()), SystemTime::now()),
        Err(Untrusted::Svid(SvidError::SigningKeyUsage))
    );
    let mut spec = LeafSpec::svid(FRONTEND);
    spec.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::CrlSign];
    let leaf = f.prod.leaf(spec);
    assert_eq!(
        f.policy
            .verify(&peer(FRONTEND, leaf.url_encoded()), SystemTime::now()),
        Err(Untrusted::Svid(SvidError::SigningKeyUsage))
    );
}

#[test]
fn missing_digital_signature() {
    let f = fixture();
    let mut spec = LeafSpec::svid(FRONTEND);
    spec.key_usages = vec![KeyUsagePurpose::KeyEncipherment];
    let leaf = f.prod.leaf(spec);
    assert_eq!(
        f.policy
            .verify(&peer(FRONTEND, leaf.url_encoded()), SystemTime::now()),
        Err(Untrusted::Svid(SvidError::NoDigitalSignature))
    );
    let mut spec = LeafSpec::svid(FRONTEND);
    spec.key_usages.clear();
    let leaf = f.prod.leaf(spec);
    assert_eq!(
        f.policy
            .verify(&peer(FRONTEND, leaf.url_encoded()), SystemTime::now()),
        Err(Untrusted::Svid(SvidError::NoKeyUsage))
    );
}

#[test]
fn wrong_trust_domain() {
    let f = fixture();
    let id = "spiffe://evil.example.org/ns/shop/sa/frontend";
    let leaf = f.prod.svid(id);
    assert_eq!(
        f.policy
            .verify(&peer(id, leaf.url_encoded()), SystemTime::now()),
        Err(Untrusted::TrustDomainNotAccepted("evil.example.org".into()))
    );
}

#[test]
fn signed_by_another_trust_domains_ca() {
    // Both trust domains are accepted, but dev's CA must not vouch for a prod ID.
    let f = fixture();
    let leaf = f.dev.svid(FRONTEND);
    let result = f
        .policy
        .verify(&peer(FRONTEND, leaf.url_encoded()), SystemTime::now());
    assert!(
        matches!(&result, Err(Untrusted::ChainInvalid { trust_domain, .. }) if trust_domain == PROD),
        "{result:?}"
    );
    // The same CA is fine for its own trust domain.
    let dev_id = "spiffe://dev.example.org/ns/shop/sa/frontend";
    let leaf = f.dev.svid(dev_id);
    assert!(
        f.policy
            .verify(&peer(dev_id, leaf.url_encoded()), SystemTime::now())
            .is_ok()
    );
}

#[test]
fn principal_must_equal_uri_san() {
    let f = fixture();
    let leaf = f.prod.svid("spiffe://prod.example.org/ns/shop/sa/other");
    assert!(matches!(
        f.policy
            .verify(&peer(FRONTEND, leaf.url_encoded()), SystemTime::now()),
        Err(Untrusted::PrincipalMismatch { .. })
    ));
}

#[test]
fn garbage_pem() {
    let f = fixture();
    for garbage in [
        "not a certificate",
        "-----BEGIN%20CERTIFICATE-----%0AAAAA%0A-----END%20CERTIFICATE-----%0A",
        "%FF%FE",
        "-----BEGIN CERTIFICATE-----\nnot base64!\n-----END CERTIFICATE-----\n",
    ] {
        let result = f
            .policy
            .verify(&peer(FRONTEND, garbage.into()), SystemTime::now());
        assert!(
            matches!(result, Err(Untrusted::Svid(_))),
            "{garbage:?}: {result:?}"
        );
    }
}

#[test]
fn two_certificates() {
    let f = fixture();
    let leaf = f.prod.svid(FRONTEND);
    let both = format!("{}{}", leaf.pem, f.prod.pem);
    assert_eq!(
        f.policy.verify(&peer(FRONTEND, both), SystemTime::now()),
        Err(Untrusted::Svid(SvidError::NotExactlyOne(2)))
    );
}

#[test]
fn principal_only() {
    let f = fixture();
    // prod has a bundle: its callers' certificates must be checked against it.
    assert_eq!(
        f.policy
            .verify(&peer(FRONTEND, String::new()), SystemTime::now()),
        Err(Untrusted::CertificateRequiredByBundle(PROD.into()))
    );
    let no_bundles = TrustPolicy::new(TrustSettings {
        trust_domains: vec![PROD.into()],
        ..TrustSettings::default()
    })
    .unwrap();
    assert!(
        no_bundles
            .verify(&peer(FRONTEND, String::new()), SystemTime::now())
            .is_ok()
    );
    assert_eq!(
        f.policy.verify(&peer("", String::new()), SystemTime::now()),
        Err(Untrusted::NoPrincipal)
    );
    assert!(matches!(
        f.policy.verify(
            &peer("spiffe://prod.example.org", String::new()),
            SystemTime::now()
        ),
        Err(Untrusted::NotAWorkload(_))
    ));
    let strict = TrustPolicy::new(TrustSettings {
        trust_domains: vec![PROD.into()],
        require_certificate: true,
        ..TrustSettings::default()
    })
    .unwrap();
    assert_eq!(
        strict.verify(&peer(FRONTEND, String::new()), SystemTime::now()),
        Err(Untrusted::CertificateRequired)
    );
}

#[test]
fn no_bundle_means_no_chain_check() {
    let other = Ca::new("unconfigured CA");
    let policy = TrustPolicy::new(TrustSettings {
        trust_domains: vec![PROD.into()],
        ..TrustSettings::default()
    })
    .unwrap();
    let leaf = other.svid(FRONTEND);
    assert!(
        policy
            .verify(&peer(FRONTEND, leaf.url_encoded()), SystemTime::now())
            .is_ok()
    );
}

#[test]
fn config_errors() {
    assert_eq!(
        TrustPolicy::new(TrustSettings::default()).unwrap_err(),
        TrustConfigError::NoTrustDomains
    );
    assert!(matches!(
        TrustPolicy::new(TrustSettings {
            trust_domains: vec!["Prod.Example.org".into()],
            ..TrustSettings::default()
        }),
        Err(TrustConfigError::InvalidTrustDomain { .. })
    ));
    assert!(matches!(
        TrustPolicy::new(TrustSettings {
            trust_domains: vec![PROD.into()],
            bundles: vec![BundleSettings::pem(DEV, Vec::new())],
            ..TrustSettings::default()
        }),
        Err(TrustConfigError::BundleForUnlistedDomain(_))
    ));
    assert!(matches!(
        TrustPolicy::new(TrustSettings {
            trust_domains: vec![PROD.into()],
            bundles: vec![BundleSettings::pem(PROD, b"junk".to_vec())],
            ..TrustSettings::default()
        }),
        Err(TrustConfigError::Bundle { .. })
    ));
}

#[test]
fn certificate_fields_in_cel() {
    use warrant::policy::{Policy, PolicySource, Verdict};
    use warrant::request::AuthzRequest;

    let ca = Ca::new("prod CA");
    let mut spec = LeafSpec::svid(FRONTEND);
    spec.dns = vec!["frontend.shop.svc".into(), "frontend".into()];
    let not_before = spec.not_before;
    let leaf = ca.leaf(spec);
    let rfc3339 = |t: SystemTime| {
        let secs = t.duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs();
        time::OffsetDateTime::from_unix_timestamp(secs as i64)
            .unwrap()
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap()
    };
    let when = format!(
        "source.certificate.not_before == timestamp(\"{}\") && source.certificate.not_after - source.certificate.not_before == duration(\"24h\") && source.certificate.dns_names == [\"frontend.shop.svc\", \"frontend\"] && source.certificate.serial.matches(\"^[0-9a-f]{{2}}(:[0-9a-f]{{2}})*$\")",
        rfc3339(not_before)
    );
    let policy = Policy::compile(
        &[PolicySource {
            path: "p.yaml".into(),
            text: format!(
                "trust: {{trust_domains: [prod.example.org]}}\nrules:\n  - id: cert\n    effect: allow\n    when: '{}'\n",
                when.replace('\'', "''")
            ),
        }],
        &mut |_, _| unreachable!("no bundles"),
    )
    .unwrap();
    let request = AuthzRequest {
        source: peer(FRONTEND, leaf.url_encoded()),
        ..AuthzRequest::default()
    };
    let d = policy.decide(&request, SystemTime::now());
    assert_eq!(d.verdict, Verdict::Allow, "{} {:?}", d.reason, d.failures);
}

#[test]
fn validity_window_is_inclusive_at_both_ends() {
    // RFC 5280 §4.1.2.5: valid from notBefore through notAfter, both included; the chain
    // check (with a bundle) must agree with the window check.
    let f = fixture();
    let whole_secs = |t: SystemTime| {
        SystemTime::UNIX_EPOCH
            + Duration::from_secs(t.duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs())
    };
    let mut spec = LeafSpec::svid(FRONTEND);
    spec.not_before = whole_secs(spec.not_before);
    spec.not_after = spec.not_before + Duration::from_secs(3600);
    let (not_before, not_after) = (spec.not_before, spec.not_after);
    let certificate = f.prod.leaf(spec).url_encoded();
    let at = |t| f.policy.verify(&peer(FRONTEND, certificate.clone()), t);
    assert!(at(not_before).is_ok());
    assert!(at(not_after).is_ok());
    assert!(matches!(
        at(not_before - Duration::from_secs(1)),
        Err(Untrusted::NotYetValid { .. })
    ));
    assert!(matches!(
        at(not_after + Duration::from_secs(1)),
        Err(Untrusted::Expired { .. })
    ));
}
