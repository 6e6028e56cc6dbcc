//! The operator's trust policy and the transport-trust stage: is the caller a valid SPIFFE
//! workload of a trust domain we accept?
//!
//! A valid certificate is necessary, never sufficient: this stage only establishes *who* is
//! calling. Whether that workload may do what it asks is the policy stage's job.

mod certificate_cache;
mod error;
mod explain;
pub mod provenance;
pub mod revocation;
pub mod workload;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use rustls_pki_types::{CertificateDer, TrustAnchor, UnixTime};

use crate::identity::{BundleFormat, JwtAuthority, SpiffeId, TrustBundle, X509Authority, X509Svid};
use crate::request::Peer;

pub use error::{TrustConfigError, Untrusted};
pub use explain::{TrustCheck, TrustCheckKind, TrustCheckResult};
pub use provenance::{Forwarders, Hop, Provenance, Via, XFCC_HEADER, Xfcc};
pub use revocation::{Revocation, RevocationError};
pub use workload::{Workload, WorkloadTokenSettings};

/// What the operator configured under `trust:` in the policy, before bundles are parsed.
#[derive(Debug, Clone, Default)]
pub struct TrustSettings {
    /// Accepted trust domain names.
    pub trust_domains: Vec<String>,
    /// Per trust domain, its bundle file's contents.
    pub bundles: Vec<BundleSettings>,
    /// Maximum notAfter − notBefore of an accepted SVID.
    pub max_svid_lifetime: Option<Duration>,
    /// Whether a request without `source.certificate` is untrusted.
    pub require_certificate: bool,
    /// `trust.revoked` entries (SPIFFE IDs, patterns, serials), each with where it was written.
    pub revoked: Vec<(String, String)>,
    /// `trust.forwarders`: the SPIFFE IDs (exact or glob) whose XFCC header is believed.
    pub forwarders: Vec<String>,
    /// `trust.workload_tokens`: JWT-SVIDs the requests carry.
    pub workload_tokens: Option<WorkloadTokenSettings>,
    /// `trust.bundles_from.workload_api`: the endpoint bundles not given as files come from.
    pub workload_api: Option<String>,
    /// Trust domains waiting for their bundle from the Workload API: untrusted until it comes.
    pub pending_bundles: Vec<String>,
}

/// One trust domain's bundle, as read from its files.
#[derive(Debug, Clone)]
pub struct BundleSettings {
    /// The trust domain the bundle is for, e.g. `prod.example.org`.
    pub trust_domain: String,
    /// How the bundle file is written: PEM CA certificates or a SPIFFE bundle (JWK Set).
    pub format: BundleFormat,
    /// The bundle file's contents.
    pub bytes: Vec<u8>,
    /// PEM intermediate CAs between the bundle's authorities and the leaves (SPIRE with an
    /// upstream authority signs leaf → intermediate → root, and Envoy forwards only the leaf).
    pub intermediates: Option<Vec<u8>>,
}

impl BundleSettings {
    /// A PEM bundle without intermediates.
    pub fn pem(trust_domain: &str, pem: impl Into<Vec<u8>>) -> Self {
        Self {
            trust_domain: trust_domain.to_owned(),
            format: BundleFormat::Pem,
            bytes: pem.into(),
            intermediates: None,
        }
    }
}

/// One trust domain's verified trust material.
#[derive(Debug)]
struct DomainTrust {
    /// The X.509 authorities, each with its trust anchor. Never merged across trust domains:
    /// a CA of one trust domain must not vouch for another's IDs (SPIFFE Trust Domain and
    /// Bundle §4).
    authorities: Vec<(X509Authority, TrustAnchor<'static>)>,
    /// Every authority's anchor, for the usual case where all are within their validity.
    anchors: Vec<TrustAnchor<'static>>,
    intermediates: Vec<CertificateDer<'static>>,
    /// The intermediates' validity windows (Unix seconds).
    intermediate_windows: Vec<(i64, i64)>,
    /// For JWT-SVIDs.
    jwt_authorities: Vec<JwtAuthority>,
    sequence: Option<u64>,
    refresh_hint_secs: Option<u64>,
    ignored_keys: usize,
}

/// What the status page and `warrant check` tell of a trust domain's bundle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BundleSummary {
    /// The trust domain, e.g. `prod.example.org`.
    pub trust_domain: String,
    /// How many X.509 authorities (CA certificates) the bundle holds.
    pub x509_authorities: usize,
    /// How many JWT authorities (JWT-SVID signing keys) it holds.
    pub jwt_authorities: usize,
    /// How many intermediate CA certificates are configured for it.
    pub intermediates: usize,
    /// `spiffe_sequence` of a SPIFFE bundle, when it has one.
    pub sequence: Option<u64>,
    /// `spiffe_refresh_hint` of a SPIFFE bundle, in seconds, when it has one.
    pub refresh_hint_secs: Option<u64>,
    /// The earliest notAfter of the X.509 authorities (Unix seconds).
    pub first_expiry: Option<i64>,
    /// Keys of a `use` other than `x509-svid` and `jwt-svid`, ignored (SPIFFE bundle §4.2.1).
    pub ignored_keys: usize,
}

/// The compiled trust policy.
#[derive(Debug)]
pub struct TrustPolicy {
    trust_domains: Vec<String>,
    bundles: HashMap<String, DomainTrust>,
    max_svid_lifetime: Option<Duration>,
    require_certificate: bool,
    revocation: Revocation,
    forwarders: Forwarders,
    workload_tokens: Option<WorkloadTokenSettings>,
    workload_api: Option<String>,
    pending_bundles: Vec<String>,
    /// Forwarded certificates parsed and verified: new with every policy, so a new bundle
    /// is seen at once.
    certificates: certificate_cache::CertificateCache,
    /// Workload tokens validated, likewise.
    tokens: certificate_cache::TokenCache,
}

/// The identities of one request, as the trust stage established them: the transport
/// identity (the mTLS peer, `source`), who originated the request beyond it (`proxy_chain`,
/// `origin`) and the workload token's identity (`workload`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identities {
    /// The mTLS peer: the transport identity.
    pub transport: VerifiedPeer,
    /// Who originated the request beyond the peer.
    pub provenance: Provenance,
    /// The workload token's identity.
    pub workload: Workload,
}

impl Identities {
    /// The originating identity and how it was established (see [`Provenance::origin`]).
    pub fn origin(&self) -> (&SpiffeId, Via) {
        self.provenance.origin(&self.transport.spiffe_id)
    }

    /// Whether a verified workload token names the transport identity itself.
    pub fn bound(&self) -> bool {
        self.workload.bound_to(&self.transport.spiffe_id)
    }
}

/// A caller whose identity passed the trust stage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedPeer {
    /// The caller's SPIFFE ID, e.g. `spiffe://prod.example.org/ns/shop/sa/frontend`.
    pub spiffe_id: SpiffeId,
    /// The leaf SVID, when Envoy forwarded the certificate (shared with the certificate cache).
    pub svid: Option<Arc<X509Svid>>,
}

impl TrustPolicy {
    /// Validates the settings and parses every bundle.
    pub fn new(settings: TrustSettings) -> Result<Self, TrustConfigError> {
        if settings.trust_domains.is_empty() {
            return Err(TrustConfigError::NoTrustDomains);
        }
        for td in &settings.trust_domains {
            let id = SpiffeId::parse(&format!("spiffe://{td}")).map_err(|source| {
                TrustConfigError::InvalidTrustDomain {
                    trust_domain: td.clone(),
                    source,
                }
            })?;
            if id.is_workload() {
                return Err(TrustConfigError::InvalidTrustDomain {
                    trust_domain: td.clone(),
                    source: crate::identity::SpiffeIdError::BadTrustDomainChar,
                });
            }
        }
        let mut bundles = HashMap::new();
        for source in settings.bundles {
            let td = source.trust_domain.clone();
            if !settings.trust_domains.contains(&td) {
                return Err(TrustConfigError::BundleForUnlistedDomain(td));
            }
            let domain = DomainTrust::new(source)?;
            bundles.insert(td, domain);
        }
        let revocation = Revocation::new(
            settings
                .revoked
                .iter()
                .map(|(entry, origin)| (entry.as_str(), origin.clone())),
        )?;
        let forwarders =
            Forwarders::new(&settings.forwarders).map_err(TrustConfigError::Forwarders)?;
        if let Some(tokens) = &settings.workload_tokens {
            workload::check_settings(tokens).map_err(TrustConfigError::WorkloadTokens)?;
        }
        Ok(Self {
            trust_domains: settings.trust_domains,
            bundles,
            max_svid_lifetime: settings.max_svid_lifetime,
            require_certificate: settings.require_certificate,
            revocation,
            forwarders,
            workload_tokens: settings.workload_tokens,
            workload_api: settings.workload_api,
            pending_bundles: settings.pending_bundles,
            certificates: certificate_cache::CertificateCache::default(),
            tokens: certificate_cache::TokenCache::default(),
        })
    }

    /// The accepted trust domains.
    pub fn trust_domains(&self) -> &[String] {
        &self.trust_domains
    }

    /// `trust.bundles_from.workload_api`: the Workload API endpoint, when bundles come from one.
    pub fn workload_api(&self) -> Option<&str> {
        self.workload_api.as_deref()
    }

    /// Trust domains whose bundle the Workload API has not delivered yet (their SVIDs are
    /// untrusted meanwhile).
    pub fn pending_bundles(&self) -> &[String] {
        &self.pending_bundles
    }

    /// Each bundle's contents, by trust domain name.
    pub fn bundle_summaries(&self) -> Vec<BundleSummary> {
        let mut summaries: Vec<BundleSummary> = self
            .bundles
            .iter()
            .map(|(trust_domain, domain)| BundleSummary {
                trust_domain: trust_domain.clone(),
                x509_authorities: domain.authorities.len(),
                jwt_authorities: domain.jwt_authorities.len(),
                intermediates: domain.intermediates.len(),
                sequence: domain.sequence,
                refresh_hint_secs: domain.refresh_hint_secs,
                ignored_keys: domain.ignored_keys,
                first_expiry: domain
                    .authorities
                    .iter()
                    .map(|(authority, _)| authority.validity().1)
                    .min(),
            })
            .collect();
        summaries.sort_by(|a, b| a.trust_domain.cmp(&b.trust_domain));
        summaries
    }

    /// The trust stage. `now` is the evaluation clock (fixed by `warrant eval --now`).
    pub fn verify(&self, source: &Peer, now: SystemTime) -> Result<VerifiedPeer, Untrusted> {
        if source.principal.is_empty() {
            return Err(Untrusted::NoPrincipal);
        }
        // Envoy puts the first DNS SAN or the Subject into `principal` when the certificate
        // has no URI SAN; neither parses as a SPIFFE ID, so such callers are untrusted here.
        let spiffe_id =
            SpiffeId::parse(&source.principal).map_err(|reason| Untrusted::InvalidSpiffeId {
                principal: source.principal.clone(),
                reason,
            })?;
        if !spiffe_id.is_workload() {
            return Err(Untrusted::NotAWorkload(spiffe_id.to_string()));
        }
        let trust_domain = spiffe_id.trust_domain();
        if !self.trust_domains.iter().any(|td| td == trust_domain) {
            return Err(Untrusted::TrustDomainNotAccepted(trust_domain.to_owned()));
        }
        if self.pending_bundles.iter().any(|td| td == trust_domain) {
            return Err(Untrusted::BundlePending(trust_domain.to_owned()));
        }
        if source.certificate.is_empty() {
            if self.require_certificate {
                return Err(Untrusted::CertificateRequired);
            }
            // A bundle the operator configured must be enforced: without the certificate
            // there is nothing to chain, and a principal alone is only Envoy's word for what
            // a certificate of *some* CA it trusts said.
            if self.bundles.contains_key(trust_domain) {
                return Err(Untrusted::CertificateRequiredByBundle(
                    trust_domain.to_owned(),
                ));
            }
            self.check_revocation(&spiffe_id, None)?;
            return Ok(VerifiedPeer {
                spiffe_id,
                svid: None,
            });
        }
        // Parsing and chain verification are remembered per certificate; the checks that
        // depend on the request or the clock run on every Check, in the same order.
        let now_secs = unix_secs(now);
        let key = certificate_cache::key(&source.certificate);
        let cached = self.certificates.get(&key, now_secs);
        let svid = match &cached {
            Some(verified) => Arc::clone(&verified.svid),
            None => Arc::new(X509Svid::from_url_encoded_pem(&source.certificate)?),
        };
        if svid.spiffe_id() != &spiffe_id {
            return Err(Untrusted::PrincipalMismatch {
                principal: spiffe_id.to_string(),
                uri_san: svid.spiffe_id().to_string(),
            });
        }
        self.check_validity(&svid, now)?;
        if cached.is_none() {
            let (from, until) = match self.bundles.get(trust_domain) {
                Some(domain) => {
                    domain
                        .verify_chain(&svid, now)
                        .map_err(|reason| Untrusted::ChainInvalid {
                            trust_domain: trust_domain.to_owned(),
                            reason,
                        })?;
                    domain.verified_window(&svid, now_secs)
                }
                None => (i64::MIN, i64::MAX),
            };
            self.certificates.insert(
                key,
                Arc::new(certificate_cache::Verified {
                    svid: Arc::clone(&svid),
                    from,
                    until,
                }),
            );
        }
        self.check_revocation(&spiffe_id, Some(svid.serial()))?;
        Ok(VerifiedPeer {
            spiffe_id,
            svid: Some(svid),
        })
    }

    /// The certificate cache's (hits, misses) so far (see `certificate_cache`).
    pub fn certificate_cache_counts(&self) -> (u64, u64) {
        self.certificates.counts()
    }

    /// How many `trust.revoked` entries the policy holds.
    pub fn revoked_entries(&self) -> usize {
        self.revocation.len()
    }

    /// Whether `spiffe_id`, or the certificate with `serial`, is revoked (`trust.revoked`).
    fn check_revocation(
        &self,
        spiffe_id: &SpiffeId,
        serial: Option<&str>,
    ) -> Result<(), Untrusted> {
        if self.revocation.is_empty() {
            return Ok(());
        }
        if let Some(entry) = self.revocation.revoking_id(spiffe_id.as_str()) {
            return Err(Untrusted::Revoked(format!(
                "{spiffe_id} is revoked (trust.revoked: {entry})"
            )));
        }
        if let Some(serial) = serial.filter(|s| self.revocation.revokes_serial(s)) {
            return Err(Untrusted::Revoked(format!(
                "the certificate with serial {serial} is revoked (trust.revoked)"
            )));
        }
        Ok(())
    }

    fn check_validity(&self, svid: &X509Svid, now: SystemTime) -> Result<(), Untrusted> {
        let now_secs = unix_secs(now);
        if now_secs < svid.not_before() {
            return Err(Untrusted::NotYetValid {
                not_before: svid.not_before(),
            });
        }
        if now_secs > svid.not_after() {
            return Err(Untrusted::Expired {
                not_after: svid.not_after(),
            });
        }
        if let Some(max) = self.max_svid_lifetime {
            let lifetime = svid.lifetime_secs();
            if u64::try_from(lifetime).map_or(true, |l| l > max.as_secs()) {
                return Err(Untrusted::LifetimeTooLong {
                    lifetime_secs: lifetime,
                    max_secs: max.as_secs(),
                });
            }
        }
        Ok(())
    }
}

/// Seconds since the Unix epoch, negative before it.
fn unix_secs(time: SystemTime) -> i64 {
    match time.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        Err(e) => i64::try_from(e.duration().as_secs()).map_or(i64::MIN, |s| -s),
    }
}

fn bundle_error(trust_domain: &str, reason: impl std::fmt::Display) -> TrustConfigError {
    TrustConfigError::Bundle {
        trust_domain: trust_domain.to_owned(),
        reason: reason.to_string(),
    }
}

impl DomainTrust {
    fn new(source: BundleSettings) -> Result<Self, TrustConfigError> {
        let td = source.trust_domain.as_str();
        let bundle =
            TrustBundle::parse(&source.bytes, source.format).map_err(|e| bundle_error(td, e))?;
        let mut authorities = Vec::with_capacity(bundle.x509_authorities.len());
        for authority in bundle.x509_authorities {
            let der = CertificateDer::from(authority.der());
            let anchor = webpki::anchor_from_trusted_cert(&der)
                .map_err(|e| bundle_error(td, format!("{}: {e}", authority.subject())))?
                .to_owned();
            authorities.push((authority, anchor));
        }
        let intermediates = match &source.intermediates {
            None => Vec::new(),
            Some(pem) => {
                TrustBundle::from_pem(pem)
                    .map_err(|e| bundle_error(td, format!("intermediates: {e}")))?
                    .x509_authorities
            }
        };
        let intermediate_windows = intermediates.iter().map(X509Authority::validity).collect();
        let intermediates = intermediates
            .into_iter()
            .map(|ca| CertificateDer::from(ca.der().to_vec()))
            .collect();
        Ok(Self {
            anchors: authorities
                .iter()
                .map(|(_, anchor)| anchor.clone())
                .collect(),
            authorities,
            intermediates,
            intermediate_windows,
            jwt_authorities: bundle.jwt_authorities,
            sequence: bundle.sequence,
            refresh_hint_secs: bundle.refresh_hint_secs,
            ignored_keys: bundle.ignored_keys,
        })
    }

    /// The window (Unix seconds) in which a chain verified at `now` for `svid` stays verified:
    /// the latest notBefore and earliest notAfter of the leaf, the intermediates and the
    /// authorities valid at `now` (any of them may be on the path).
    fn verified_window(&self, svid: &X509Svid, now: i64) -> (i64, i64) {
        self.authorities
            .iter()
            .map(|(authority, _)| authority.validity())
            .filter(|(from, until)| (*from..=*until).contains(&now))
            .chain(self.intermediate_windows.iter().copied())
            .fold(
                (svid.not_before(), svid.not_after()),
                |(from, until), (f, u)| (from.max(f), until.min(u)),
            )
    }

    /// X509-SVID §5: the leaf must chain, through the configured intermediates, to an
    /// authority of its own trust domain's bundle that is within its validity window now.
    fn verify_chain(&self, svid: &X509Svid, now: SystemTime) -> Result<(), String> {
        let now_secs = unix_secs(now);
        let valid_now: Vec<TrustAnchor<'static>>;
        let anchors = if self
            .authorities
            .iter()
            .all(|(authority, _)| authority.valid_at(now_secs))
        {
            self.anchors.as_slice()
        } else {
            valid_now = self
                .authorities
                .iter()
                .filter(|(authority, _)| authority.valid_at(now_secs))
                .map(|(_, anchor)| anchor.clone())
                .collect();
            valid_now.as_slice()
        };
        if anchors.is_empty() {
            return Err(if self.authorities.is_empty() {
                "the bundle holds no X.509 authority, so no X.509-SVID of this trust domain is trusted".to_owned()
            } else {
                "no authority of the bundle is within its validity period now".to_owned()
            });
        }
        let der = CertificateDer::from(svid.der());
        let leaf = webpki::EndEntityCert::try_from(&der).map_err(|e| e.to_string())?;
        let since_epoch = now
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default();
        leaf.verify_for_usage(
            webpki::ALL_VERIFICATION_ALGS,
            anchors,
            &self.intermediates,
            UnixTime::since_unix_epoch(since_epoch),
            // The caller is the TLS client: an EKU, when present, must allow clientAuth.
            webpki::KeyUsage::client_auth(),
            None,
            None,
        )
        .map(|_| ())
        .map_err(|e| e.to_string())
    }
}
