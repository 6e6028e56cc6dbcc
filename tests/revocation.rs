//! `trust.revoked`: the kill switch. A revoked SPIFFE ID (exact or pattern) or certificate
//! serial is untrusted at the trust stage, with or without the certificate.

// Test code: a failed unwrap, expect or assertion is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use common::Ca;
use warrant::identity::X509Svid;
use warrant::policy::{Policy, PolicySource};
use warrant::trust::{TrustCheckKind, TrustCheckResult, TrustPolicy, TrustSettings, Untrusted};

const FRONTEND: &str = "spiffe://prod.example.org/ns/shop/sa/frontend";
const PAYMENTS: &str = "spiffe://prod.example.org/ns/shop/sa/payments";

fn trust(revoked: &[&str]) -> TrustPolicy {
    TrustPolicy::new(TrustSettings {
        trust_domains: vec!["prod.example.org".into()],
        revoked: revoked
            .iter()
            .map(|e| ((*e).to_owned(), "trust.revoked".to_owned()))
            .collect(),
        ..TrustSettings::default()
    })
    .unwrap()
}

use common::fixtures::peer;

/// A request from `principal`, without its certificate.
fn request(principal: &str) -> warrant::request::AuthzRequest {
    warrant::request::AuthzRequest {
        source: peer(principal, ""),
        ..Default::default()
    }
}

#[test]
fn revoked_ids_are_untrusted_with_or_without_a_certificate() {
    let ca = Ca::new("prod");
    let leaf = ca.svid(FRONTEND);
    let policy = trust(&[FRONTEND, "spiffe://prod.example.org/ns/legacy/**"]);
    let now = SystemTime::now();
    for certificate in [String::new(), leaf.url_encoded()] {
        let refused = policy
            .verify(&peer(FRONTEND, &certificate), now)
            .unwrap_err();
        assert!(matches!(refused, Untrusted::Revoked(_)), "{refused}");
        assert!(refused.to_string().contains("is revoked"), "{refused}");
    }
    let legacy = "spiffe://prod.example.org/ns/legacy/sa/batch";
    let refused = policy.verify(&peer(legacy, ""), now).unwrap_err();
    assert!(
        refused
            .to_string()
            .contains("(trust.revoked: spiffe://prod.example.org/ns/legacy/**)"),
        "{refused}"
    );
    assert!(policy.verify(&peer(PAYMENTS, ""), now).is_ok());
    // explain names the check that failed.
    let checks = policy.explain(&request(FRONTEND), now);
    let revocation = checks
        .iter()
        .find(|c| c.kind == TrustCheckKind::Revocation)
        .unwrap();
    assert!(matches!(revocation.result, TrustCheckResult::Failed(_)));
    let clean = trust(&[]).explain(&request(FRONTEND), now);
    assert_eq!(
        clean
            .iter()
            .find(|c| c.kind == TrustCheckKind::Revocation)
            .map(|c| &c.result),
        Some(&TrustCheckResult::Skipped("the policy revokes nothing"))
    );
}

#[test]
fn revoked_serials_match_in_any_notation() {
    let ca = Ca::new("prod");
    let leaf = ca.svid(FRONTEND);
    let other = ca.svid(FRONTEND);
    let serial = X509Svid::from_url_encoded_pem(&leaf.url_encoded())
        .unwrap()
        .serial()
        .to_owned();
    let plain = serial.replace(':', "").to_ascii_uppercase();
    for written in [serial.as_str(), plain.as_str()] {
        let policy = trust(&[written]);
        let refused = policy
            .verify(&peer(FRONTEND, &leaf.url_encoded()), SystemTime::now())
            .unwrap_err();
        assert!(
            refused.to_string().contains("is revoked (trust.revoked)"),
            "{refused}"
        );
        // The same workload with another certificate (rotated) is not.
        assert!(
            policy
                .verify(&peer(FRONTEND, &other.url_encoded()), SystemTime::now())
                .is_ok()
        );
    }
}

#[test]
fn policy_files_revoke_inline_and_from_files() {
    let files: HashMap<PathBuf, Vec<u8>> = [
        (
            PathBuf::from("p/revoked.txt"),
            format!("# offboarded 2026-11-30\n\n{PAYMENTS}   # ticket SEC-1\n").into_bytes(),
        ),
        (
            PathBuf::from("p/bad.txt"),
            format!("{PAYMENTS}\nnot-a-serial\n").into_bytes(),
        ),
    ]
    .into_iter()
    .collect();
    let compile = |trust: &str| {
        Policy::compile(
            &[PolicySource {
                path: PathBuf::from("p/policy.yaml"),
                text: format!("trust:\n  trust_domains: [prod.example.org]\n{trust}rules: []\n"),
            }],
            &mut |path: &Path, _| {
                files
                    .get(path)
                    .cloned()
                    .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::NotFound, "no file"))
            },
        )
    };
    let policy = compile(&format!(
        "  revoked: [\"{FRONTEND}\"]\n  revoked_files: [revoked.txt]\n"
    ))
    .unwrap();
    assert_eq!(policy.trust().revoked_entries(), 2);
    assert!(policy.files().contains(&PathBuf::from("p/revoked.txt")));
    for id in [FRONTEND, PAYMENTS] {
        assert!(matches!(
            policy.trust().verify(&peer(id, ""), SystemTime::now()),
            Err(Untrusted::Revoked(_))
        ));
    }
    let errors = compile("  revoked: [frontend]\n").unwrap_err().to_string();
    assert!(
        errors.contains("revoked entry \"frontend\" (trust.revoked): neither a SPIFFE ID"),
        "{errors}"
    );
    let errors = compile("  revoked_files: [bad.txt]\n")
        .unwrap_err()
        .to_string();
    assert!(
        errors.contains("revoked entry \"not-a-serial\" (p/bad.txt:2)"),
        "{errors}"
    );
    let errors = compile("  revoked_files: [missing.txt]\n")
        .unwrap_err()
        .to_string();
    assert!(
        errors.contains("trust.revoked_files: cannot read p/missing.txt"),
        "{errors}"
    );
}
