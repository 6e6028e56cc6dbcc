//! The certificate cache (issue 10 §3): a hit decides exactly as a miss would — the
//! principal, the validity window, the lifetime and revocation are checked on every Check —
//! and a new bundle (a new policy) is seen at once.

// Test code: a failed unwrap, expect or assertion is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::{Duration, SystemTime};

use common::{Ca, LeafSpec};
use warrant::request::Peer;
use warrant::trust::{BundleSettings, TrustPolicy, TrustSettings};

const PROD: &str = "prod.example.org";
const FRONTEND: &str = "spiffe://prod.example.org/ns/shop/sa/frontend";
const CHECKOUT: &str = "spiffe://prod.example.org/ns/shop/sa/checkout";

fn policy(ca: &Ca, revoked: &[&str]) -> TrustPolicy {
    TrustPolicy::new(TrustSettings {
        trust_domains: vec![PROD.into()],
        bundles: vec![BundleSettings::pem(PROD, ca.pem.clone())],
        max_svid_lifetime: Some(Duration::from_secs(48 * 3600)),
        revoked: revoked
            .iter()
            .map(|entry| ((*entry).to_owned(), "test".to_owned()))
            .collect(),
        ..TrustSettings::default()
    })
    .unwrap()
}

use common::fixtures::peer;

/// The outcome as a comparable string: the SPIFFE ID, or the reason.
fn outcome(policy: &TrustPolicy, peer: &Peer, now: SystemTime) -> String {
    match policy.verify(peer, now) {
        Ok(verified) => format!("ok {}", verified.spiffe_id),
        Err(untrusted) => format!("untrusted: {untrusted}"),
    }
}

#[test]
fn a_hit_decides_exactly_as_a_miss() {
    let ca = Ca::new("prod");
    let now = SystemTime::now();
    let leaf = ca.svid(FRONTEND).url_encoded();
    let expired = ca
        .leaf(LeafSpec {
            not_before: now - Duration::from_secs(7200),
            not_after: now - Duration::from_secs(3600),
            ..LeafSpec::svid(FRONTEND)
        })
        .url_encoded();
    let cases = [
        ("valid", peer(FRONTEND, &leaf), now),
        // The same certificate under another principal: a mismatch, hit or not.
        ("other principal", peer(CHECKOUT, &leaf), now),
        // The same certificate later than its notAfter: expired, hit or not.
        (
            "later",
            peer(FRONTEND, &leaf),
            now + Duration::from_secs(3 * 86_400),
        ),
        ("expired", peer(FRONTEND, &expired), now),
        ("garbage", peer(FRONTEND, "not%20a%20certificate"), now),
    ];
    let fresh: Vec<String> = cases
        .iter()
        .map(|(_, peer, at)| outcome(&policy(&ca, &[]), peer, *at))
        .collect();
    let warm = policy(&ca, &[]);
    for _ in 0..3 {
        for ((name, peer, at), expected) in cases.iter().zip(&fresh) {
            assert_eq!(&outcome(&warm, peer, *at), expected, "{name}");
        }
    }
    let (hits, misses) = warm.certificate_cache_counts();
    assert!(
        hits >= 5,
        "the valid certificate was remembered: {hits} hits, {misses} misses"
    );
    assert!(fresh[0].starts_with("ok"), "{}", fresh[0]);
    assert!(fresh[1].contains("differs"), "{}", fresh[1]);
    assert!(fresh[2].contains("expired"), "{}", fresh[2]);
}

#[test]
fn revocation_and_a_new_bundle_are_seen_at_once() {
    let ca = Ca::new("prod");
    let now = SystemTime::now();
    let leaf = ca.svid(FRONTEND).url_encoded();
    let first = policy(&ca, &[]);
    assert!(outcome(&first, &peer(FRONTEND, &leaf), now).starts_with("ok"));
    assert!(outcome(&first, &peer(FRONTEND, &leaf), now).starts_with("ok"));
    // A reload compiles a new policy: revoked now, whatever the cache of the old one held.
    let revoked = policy(&ca, &[FRONTEND]);
    assert!(outcome(&revoked, &peer(FRONTEND, &leaf), now).contains("is revoked"));
    // A new bundle without the old CA: the certificate no longer chains.
    let rotated = policy(&Ca::new("rotated"), &[]);
    let result = outcome(&rotated, &peer(FRONTEND, &leaf), now);
    assert!(result.contains("does not chain"), "{result}");
}

/// Within one policy, the cached verification holds only within the authorities' validity:
/// past the CA's notAfter, the certificate is verified again (and fails).
#[test]
fn a_hit_is_used_only_while_its_chain_holds() {
    let now = SystemTime::now();
    let ca = Ca::valid(
        "short",
        now - Duration::from_secs(3600),
        now + Duration::from_secs(3600),
    );
    let leaf = ca
        .leaf(LeafSpec {
            not_before: now - Duration::from_secs(60),
            not_after: now + Duration::from_secs(3 * 3600),
            ..LeafSpec::svid(FRONTEND)
        })
        .url_encoded();
    let policy = policy(&ca, &[]);
    assert!(outcome(&policy, &peer(FRONTEND, &leaf), now).starts_with("ok"));
    let later = now + Duration::from_secs(2 * 3600);
    let result = outcome(&policy, &peer(FRONTEND, &leaf), later);
    assert!(result.contains("does not chain"), "{result}");
}
