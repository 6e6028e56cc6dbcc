//! The trust stage as a list of checks, for `warrant explain`: what each step concluded for
//! one caller. Derived from [`TrustPolicy::verify`]'s outcome (the one implementation of the
//! stage), so the explanation cannot disagree with the decision.

use std::time::SystemTime;

use super::{TrustPolicy, Untrusted};
use crate::identity::SpiffeId;
use crate::request::{AuthzRequest, Peer};

/// One check of the trust stage, in the order the stage runs them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrustCheckKind {
    /// The connection presented a client certificate (Envoy sent a principal).
    Principal,
    /// The principal is a SPIFFE ID of a workload (SPIFFE ID §2).
    SpiffeId,
    /// Its trust domain is one the policy accepts.
    TrustDomain,
    /// Envoy forwarded the certificate when the policy requires it.
    Certificate,
    /// The certificate is an X.509-SVID whose URI SAN is the principal (X509-SVID §2, §4).
    Svid,
    /// The certificate is within its validity period.
    Validity,
    /// Its lifetime is within `max_svid_lifetime`.
    Lifetime,
    /// It chains to its trust domain's bundle (X509-SVID §5).
    Chain,
    /// Neither its SPIFFE ID nor its certificate is revoked (`trust.revoked`).
    Revocation,
    /// The request carries a valid JWT-SVID, when `trust.workload_tokens.required`.
    WorkloadToken,
}

impl TrustCheckKind {
    /// Every check, in the order the trust stage runs them.
    pub const ALL: [TrustCheckKind; 10] = [
        TrustCheckKind::Principal,
        TrustCheckKind::SpiffeId,
        TrustCheckKind::TrustDomain,
        TrustCheckKind::Certificate,
        TrustCheckKind::Svid,
        TrustCheckKind::Validity,
        TrustCheckKind::Lifetime,
        TrustCheckKind::Chain,
        TrustCheckKind::Revocation,
        TrustCheckKind::WorkloadToken,
    ];

    /// The check's name in `explain` output.
    pub fn as_str(self) -> &'static str {
        match self {
            TrustCheckKind::Principal => "principal",
            TrustCheckKind::SpiffeId => "spiffe_id",
            TrustCheckKind::TrustDomain => "trust_domain",
            TrustCheckKind::Certificate => "certificate",
            TrustCheckKind::Svid => "svid",
            TrustCheckKind::Validity => "validity",
            TrustCheckKind::Lifetime => "lifetime",
            TrustCheckKind::Chain => "chain",
            TrustCheckKind::Revocation => "revocation",
            TrustCheckKind::WorkloadToken => "workload_token",
        }
    }

    /// The check that `untrusted` failed.
    fn failed_by(untrusted: &Untrusted) -> Self {
        match untrusted {
            Untrusted::NoPrincipal => TrustCheckKind::Principal,
            Untrusted::InvalidSpiffeId { .. } | Untrusted::NotAWorkload(_) => {
                TrustCheckKind::SpiffeId
            }
            Untrusted::TrustDomainNotAccepted(_) | Untrusted::BundlePending(_) => {
                TrustCheckKind::TrustDomain
            }
            Untrusted::CertificateRequired | Untrusted::CertificateRequiredByBundle(_) => {
                TrustCheckKind::Certificate
            }
            Untrusted::Svid(_) | Untrusted::PrincipalMismatch { .. } => TrustCheckKind::Svid,
            Untrusted::NotYetValid { .. } | Untrusted::Expired { .. } => TrustCheckKind::Validity,
            Untrusted::LifetimeTooLong { .. } => TrustCheckKind::Lifetime,
            Untrusted::ChainInvalid { .. } => TrustCheckKind::Chain,
            Untrusted::Revoked(_) => TrustCheckKind::Revocation,
            Untrusted::WorkloadToken(_) => TrustCheckKind::WorkloadToken,
        }
    }
}

/// What one check concluded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TrustCheckResult {
    /// The check passed.
    Passed,
    /// The check failed; holds the trust stage's reason.
    Failed(String),
    /// Not applicable to this caller or policy (why).
    Skipped(&'static str),
    /// An earlier check failed.
    NotEvaluated,
}

/// One check and its result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustCheck {
    /// Which check.
    pub kind: TrustCheckKind,
    /// What it concluded for this caller.
    pub result: TrustCheckResult,
}

impl TrustPolicy {
    /// The trust stage's checks for `request` at `now`, each with its result.
    pub fn explain(&self, request: &AuthzRequest, now: SystemTime) -> Vec<TrustCheck> {
        let source = &request.source;
        let failed = match self.establish(request, now) {
            Ok((_, admitted)) => admitted.err(),
            Err(untrusted) => Some(untrusted),
        };
        let failed_at = failed.as_ref().map(TrustCheckKind::failed_by);
        let trust_domain = SpiffeId::parse(&source.principal)
            .ok()
            .map(|id| id.trust_domain().to_owned());
        let has_bundle = trust_domain
            .as_deref()
            .is_some_and(|td| self.bundles.contains_key(td));
        let mut reached_failure = false;
        TrustCheckKind::ALL
            .into_iter()
            .map(|kind| {
                let result = if reached_failure {
                    TrustCheckResult::NotEvaluated
                } else if Some(kind) == failed_at {
                    reached_failure = true;
                    TrustCheckResult::Failed(
                        failed.as_ref().map(ToString::to_string).unwrap_or_default(),
                    )
                } else {
                    self.skipped(kind, source, has_bundle)
                        .map_or(TrustCheckResult::Passed, TrustCheckResult::Skipped)
                };
                TrustCheck { kind, result }
            })
            .collect()
    }

    /// Why `kind` does not apply, if it does not.
    fn skipped(
        &self,
        kind: TrustCheckKind,
        source: &Peer,
        has_bundle: bool,
    ) -> Option<&'static str> {
        let no_certificate = source.certificate.is_empty();
        match kind {
            TrustCheckKind::Certificate if no_certificate => {
                Some("Envoy sent no certificate, and the policy does not require one")
            }
            TrustCheckKind::Svid | TrustCheckKind::Validity | TrustCheckKind::Chain
                if no_certificate =>
            {
                Some("Envoy sent no certificate")
            }
            TrustCheckKind::Lifetime if no_certificate => Some("Envoy sent no certificate"),
            TrustCheckKind::Lifetime if self.max_svid_lifetime.is_none() => {
                Some("the policy sets no max_svid_lifetime")
            }
            TrustCheckKind::Chain if !has_bundle => {
                Some("the policy has no bundle for this trust domain")
            }
            TrustCheckKind::Revocation if self.revocation.is_empty() => {
                Some("the policy revokes nothing")
            }
            TrustCheckKind::WorkloadToken => match self.workload_tokens() {
                None => Some("the policy sets no trust.workload_tokens"),
                Some(settings) if !settings.required => Some(
                    "trust.workload_tokens.required is false: rules decide with `workload` (a revoked subject fails the revocation check)",
                ),
                Some(_) => None,
            },
            _ => None,
        }
    }
}
