//! The operator's trust policy and the transport-trust stage: is the caller a valid SPIFFE
//! workload of a trust domain we accept?
//!
//! A valid certificate is necessary, never sufficient: this stage only establishes *who* is
//! calling. Whether that workload may do what it asks is the policy stage's job.

mod error;
mod explain;

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use rustls_pki_types::{CertificateDer, TrustAnchor, UnixTime};

use crate::identity::{SpiffeId, X509Svid};
use crate::request::Peer;

pub use error::{TrustConfigError, Untrusted};
pub use explain::{TrustCheck, TrustCheckKind, TrustCheckResult};

/// What the operator configured under `trust:` in the policy, before bundles are parsed.
#[derive(Debug, Clone, Default)]
pub struct TrustSettings {
    /// Accepted trust domain names.
    pub trust_domains: Vec<String>,
    /// Per trust domain, the PEM text of its CA bundle.
    pub bundles: Vec<(String, Vec<u8>)>,
    /// Maximum notAfter − notBefore of an accepted SVID.
    pub max_svid_lifetime: Option<Duration>,
    /// Whether a request without `source.certificate` is untrusted.
    pub require_certificate: bool,
}

/// The compiled trust policy.
#[derive(Debug)]
pub struct TrustPolicy {
    trust_domains: Vec<String>,
    /// Trust anchors per trust domain. Never merged: a CA of one trust domain must not vouch
    /// for another trust domain's IDs (SPIFFE Trust Domain and Bundle spec §4).
    bundles: HashMap<String, Vec<TrustAnchor<'static>>>,
    max_svid_lifetime: Option<Duration>,
    require_certificate: bool,
}

/// A caller whose identity passed the trust stage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedPeer {
    pub spiffe_id: SpiffeId,
    /// The leaf SVID, when Envoy forwarded the certificate.
    pub svid: Option<X509Svid>,
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
        for (td, pem) in settings.bundles {
            if !settings.trust_domains.contains(&td) {
                return Err(TrustConfigError::BundleForUnlistedDomain(td));
            }
            let anchors = parse_bundle(&td, &pem)?;
            bundles.insert(td, anchors);
        }
        Ok(Self {
            trust_domains: settings.trust_domains,
            bundles,
            max_svid_lifetime: settings.max_svid_lifetime,
            require_certificate: settings.require_certificate,
        })
    }

    /// The accepted trust domains.
    pub fn trust_domains(&self) -> &[String] {
        &self.trust_domains
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
            return Ok(VerifiedPeer {
                spiffe_id,
                svid: None,
            });
        }
        let svid = X509Svid::from_url_encoded_pem(&source.certificate)?;
        if svid.spiffe_id() != &spiffe_id {
            return Err(Untrusted::PrincipalMismatch {
                principal: spiffe_id.to_string(),
                uri_san: svid.spiffe_id().to_string(),
            });
        }
        self.check_validity(&svid, now)?;
        if let Some(anchors) = self.bundles.get(trust_domain) {
            verify_chain(&svid, anchors, now).map_err(|error| Untrusted::ChainInvalid {
                trust_domain: trust_domain.to_owned(),
                reason: error.to_string(),
            })?;
        }
        Ok(VerifiedPeer {
            spiffe_id,
            svid: Some(svid),
        })
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

fn parse_bundle(td: &str, pem: &[u8]) -> Result<Vec<TrustAnchor<'static>>, TrustConfigError> {
    let mut anchors = Vec::new();
    for block in x509_parser::pem::Pem::iter_from_buffer(pem) {
        let block = block.map_err(|e| TrustConfigError::Bundle {
            trust_domain: td.to_owned(),
            reason: e.to_string(),
        })?;
        if block.label != "CERTIFICATE" {
            continue;
        }
        let der = CertificateDer::from(block.contents);
        let anchor =
            webpki::anchor_from_trusted_cert(&der).map_err(|e| TrustConfigError::Bundle {
                trust_domain: td.to_owned(),
                reason: e.to_string(),
            })?;
        anchors.push(anchor.to_owned());
    }
    if anchors.is_empty() {
        return Err(TrustConfigError::Bundle {
            trust_domain: td.to_owned(),
            reason: "no CERTIFICATE in the bundle".to_owned(),
        });
    }
    Ok(anchors)
}

/// X509-SVID.md §5: the leaf must chain to a CA of its own trust domain's bundle. Envoy
/// forwards only the leaf, so bundles must hold the issuing CAs.
fn verify_chain(
    svid: &X509Svid,
    anchors: &[TrustAnchor<'static>],
    now: SystemTime,
) -> Result<(), webpki::Error> {
    let der = CertificateDer::from(svid.der());
    let leaf = webpki::EndEntityCert::try_from(&der)?;
    let since_epoch = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    leaf.verify_for_usage(
        webpki::ALL_VERIFICATION_ALGS,
        anchors,
        &[],
        UnixTime::since_unix_epoch(since_epoch),
        // The caller is the TLS client: an EKU, when present, must allow clientAuth.
        webpki::KeyUsage::client_auth(),
        None,
        None,
    )?;
    Ok(())
}
