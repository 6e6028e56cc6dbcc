use crate::identity::{SpiffeIdError, SvidError};

/// Why a caller failed the trust stage. Every variant denies the request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Untrusted {
    /// Envoy sent no peer principal: the caller presented no client certificate.
    #[error("no peer principal: the connection did not present a client certificate")]
    NoPrincipal,
    /// The peer principal is not a SPIFFE ID (e.g. Envoy fell back to a DNS SAN or the
    /// Subject because the certificate has no URI SAN).
    #[error("peer principal {principal:?} is not a SPIFFE ID: {reason}")]
    InvalidSpiffeId {
        /// The principal Envoy sent (`source.principal`).
        principal: String,
        /// Why it is not a SPIFFE ID.
        reason: SpiffeIdError,
    },
    /// The principal is a trust domain's own ID, without a path; holds it.
    #[error("peer principal {0} names a trust domain, not a workload")]
    NotAWorkload(String),
    /// The caller's trust domain is not in `trust.trust_domains`; holds it.
    #[error("trust domain {0:?} is not accepted")]
    TrustDomainNotAccepted(String),
    /// `trust.require_certificate` is set and Envoy sent no peer certificate.
    #[error(
        "a peer certificate is required but Envoy sent none (set include_peer_certificate: true)"
    )]
    CertificateRequired,
    /// The caller's trust domain has a bundle to chain to, but Envoy sent no peer certificate;
    /// holds the trust domain.
    #[error(
        "trust domain {0:?} has a CA bundle, so its callers must present their certificate, but Envoy sent none (set include_peer_certificate: true)"
    )]
    CertificateRequiredByBundle(String),
    /// The peer certificate Envoy sent is not a valid leaf X509-SVID.
    #[error("peer certificate: {0}")]
    Svid(#[from] SvidError),
    /// The peer principal is not the certificate's URI SAN.
    #[error("peer principal {principal} differs from the certificate's URI SAN {uri_san}")]
    PrincipalMismatch {
        /// The principal Envoy sent, as a SPIFFE ID.
        principal: String,
        /// The certificate's URI SAN, as a SPIFFE ID.
        uri_san: String,
    },
    /// The peer certificate is not valid yet.
    #[error("peer certificate is not valid before {not_before} (unix seconds)")]
    NotYetValid {
        /// Its notBefore, in Unix seconds.
        not_before: i64,
    },
    /// The peer certificate has expired.
    #[error("peer certificate expired at {not_after} (unix seconds)")]
    Expired {
        /// Its notAfter, in Unix seconds.
        not_after: i64,
    },
    /// The peer certificate's lifetime (notAfter − notBefore) exceeds
    /// `trust.max_svid_lifetime`.
    #[error("peer certificate lifetime {lifetime_secs}s exceeds max_svid_lifetime {max_secs}s")]
    LifetimeTooLong {
        /// Its lifetime, in seconds.
        lifetime_secs: i64,
        /// `trust.max_svid_lifetime`, in seconds.
        max_secs: u64,
    },
    /// The peer certificate does not chain to its trust domain's bundle (X509-SVID §5).
    #[error(
        "peer certificate does not chain to the bundle of trust domain {trust_domain:?}: {reason}"
    )]
    ChainInvalid {
        /// The caller's trust domain.
        trust_domain: String,
        /// Why the chain does not verify.
        reason: String,
    },
    /// The caller's SPIFFE ID or certificate serial is revoked (`trust.revoked`); holds the
    /// message naming it.
    #[error("{0}")]
    Revoked(String),
    /// The trust domain's bundle comes from the Workload API and has not arrived yet; holds
    /// the trust domain.
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
    /// `trust.trust_domains` is empty.
    #[error("trust.trust_domains is empty: list at least one accepted trust domain")]
    NoTrustDomains,
    /// A `trust.trust_domains` entry is not a valid trust domain name (SPIFFE ID §2.1).
    #[error("trust domain {trust_domain:?} is invalid: {source}")]
    InvalidTrustDomain {
        /// The entry as written.
        trust_domain: String,
        /// Why it is not valid.
        source: SpiffeIdError,
    },
    /// A bundle is given for a trust domain missing from `trust.trust_domains`; holds it.
    #[error("bundle given for trust domain {0:?}, which is not in trust.trust_domains")]
    BundleForUnlistedDomain(String),
    /// A trust domain's bundle or intermediates cannot be used.
    #[error("bundle of trust domain {trust_domain:?}: {reason}")]
    Bundle {
        /// The trust domain the bundle is for.
        trust_domain: String,
        /// Why, e.g. a malformed key or a certificate that is not a CA.
        reason: String,
    },
    /// A `trust.revoked` entry is neither a SPIFFE ID (or pattern) nor a hex serial.
    #[error(transparent)]
    Revocation(#[from] super::RevocationError),
    /// A `trust.forwarders` entry is not a SPIFFE ID or pattern; holds the message.
    #[error("{0}")]
    Forwarders(String),
    /// `trust.workload_tokens` is invalid; holds what is wrong.
    #[error("{0}")]
    WorkloadTokens(String),
}
