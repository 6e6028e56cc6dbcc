use crate::identity::{SpiffeIdError, SvidError};

/// Why a caller failed the trust stage. Every variant denies the request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Untrusted {
    #[error("no peer principal: the connection did not present a client certificate")]
    NoPrincipal,
    #[error("peer principal {principal:?} is not a SPIFFE ID: {reason}")]
    InvalidSpiffeId {
        principal: String,
        reason: SpiffeIdError,
    },
    #[error("peer principal {0} names a trust domain, not a workload")]
    NotAWorkload(String),
    #[error("trust domain {0:?} is not accepted")]
    TrustDomainNotAccepted(String),
    #[error(
        "a peer certificate is required but Envoy sent none (set include_peer_certificate: true)"
    )]
    CertificateRequired,
    #[error(
        "trust domain {0:?} has a CA bundle, so its callers must present their certificate, but Envoy sent none (set include_peer_certificate: true)"
    )]
    CertificateRequiredByBundle(String),
    #[error("peer certificate: {0}")]
    Svid(#[from] SvidError),
    #[error("peer principal {principal} differs from the certificate's URI SAN {uri_san}")]
    PrincipalMismatch { principal: String, uri_san: String },
    #[error("peer certificate is not valid before {not_before} (unix seconds)")]
    NotYetValid { not_before: i64 },
    #[error("peer certificate expired at {not_after} (unix seconds)")]
    Expired { not_after: i64 },
    #[error("peer certificate lifetime {lifetime_secs}s exceeds max_svid_lifetime {max_secs}s")]
    LifetimeTooLong { lifetime_secs: i64, max_secs: u64 },
    #[error(
        "peer certificate does not chain to the bundle of trust domain {trust_domain:?}: {reason}"
    )]
    ChainInvalid {
        trust_domain: String,
        reason: String,
    },
    #[error("{0}")]
    Revoked(String),
    #[error(
        "trust domain {0:?} takes its bundle from the Workload API (trust.bundles_from), and none has arrived yet"
    )]
    BundlePending(String),
    /// `trust.workload_tokens.required` and no valid JWT-SVID (the reason never holds the
    /// token).
    #[error("{0}")]
    WorkloadToken(String),
}

/// A trust policy that cannot be compiled.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TrustConfigError {
    #[error("trust.trust_domains is empty: list at least one accepted trust domain")]
    NoTrustDomains,
    #[error("trust domain {trust_domain:?} is invalid: {source}")]
    InvalidTrustDomain {
        trust_domain: String,
        source: SpiffeIdError,
    },
    #[error("bundle given for trust domain {0:?}, which is not in trust.trust_domains")]
    BundleForUnlistedDomain(String),
    #[error("bundle of trust domain {trust_domain:?}: {reason}")]
    Bundle {
        trust_domain: String,
        reason: String,
    },
    #[error(transparent)]
    Revocation(#[from] super::RevocationError),
    #[error("{0}")]
    Forwarders(String),
    #[error("{0}")]
    WorkloadTokens(String),
}
