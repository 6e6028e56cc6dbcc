//! Who originated a request, beyond the mTLS peer: the `x-forwarded-client-cert` chain, believed
//! only from trusted forwarders.
//!
//! The mTLS peer is often a proxy (an ingress gateway, a sidecar). When it is listed in
//! `trust.forwarders`, its XFCC header is believed: each element's URI SAN is validated as a
//! SPIFFE ID of an accepted, non-revoked trust domain (`trusted`), and the **origin** is the
//! oldest hop when it is trusted. From any other peer the header is not believed: the chain is
//! empty, the origin is the peer itself, and a present header is flagged as spoofed — a
//! workload cannot claim to speak for someone else by writing a header.

use super::{Revocation, TrustPolicy, VerifiedPeer};
use crate::glob::Glob;
use crate::identity::SpiffeId;
use crate::identity::xfcc::{self, XfccElement};
use crate::request::AuthzRequest;

/// The request header Envoy writes forwarded client certificate details into.
pub const XFCC_HEADER: &str = "x-forwarded-client-cert";

/// One believed hop of the XFCC chain: what a proxy said about the client it saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hop {
    /// `By`: the proxy that added the element.
    pub by: String,
    /// The client certificate's URI SAN; `""` unless it had exactly one.
    pub uri: String,
    /// `Hash`: SHA-256 of the client certificate, hex.
    pub hash: String,
    /// `Subject` of the client certificate.
    pub subject: String,
    /// Its DNS SANs.
    pub dns: Vec<String>,
    /// `uri` parsed, when it is a SPIFFE ID of a workload of an accepted trust domain and
    /// not revoked: then the hop is trusted.
    pub spiffe_id: Option<SpiffeId>,
}

impl Hop {
    /// Whether the hop names a valid, accepted, non-revoked workload.
    pub fn trusted(&self) -> bool {
        self.spiffe_id.is_some()
    }
}

/// What happened to the request's XFCC header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Xfcc {
    /// The request carried none.
    Absent,
    /// Sent by a trusted forwarder and parsed: the chain holds its hops.
    Believed,
    /// Present, but the mTLS peer is not a trusted forwarder: ignored.
    Spoofed,
    /// Only the calling Envoy's own element about its mTLS peer (`By` its own identity,
    /// `URI` the peer's): what a sidecar with `APPEND_FORWARD` or `SANITIZE_SET` — Istio's
    /// default — adds to every request. It states nothing beyond the transport identity.
    Local,
    /// Sent by a trusted forwarder but malformed or over the limits: ignored, with why.
    Malformed(String),
}

/// How the origin was established.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    /// The mTLS peer itself.
    Mtls,
    /// The oldest hop of a believed XFCC chain.
    Xfcc,
}

impl Via {
    /// `mtls` or `xfcc`.
    pub fn as_str(self) -> &'static str {
        match self {
            Via::Mtls => "mtls",
            Via::Xfcc => "xfcc",
        }
    }
}

/// The request's provenance beyond its transport identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Provenance {
    /// The believed chain, oldest hop first; empty unless believed.
    pub proxy_chain: Vec<Hop>,
    pub xfcc: Xfcc,
}

impl Provenance {
    /// A request with no forwarded identity.
    pub const NONE: Provenance = Provenance {
        proxy_chain: Vec::new(),
        xfcc: Xfcc::Absent,
    };

    /// The originating identity and how it was established: the oldest hop of a believed
    /// chain when it is trusted, else `transport`.
    pub fn origin<'a>(&'a self, transport: &'a SpiffeId) -> (&'a SpiffeId, Via) {
        match self
            .proxy_chain
            .first()
            .and_then(|hop| hop.spiffe_id.as_ref())
        {
            Some(id) => (id, Via::Xfcc),
            None => (transport, Via::Mtls),
        }
    }

    /// Whether an XFCC header came from a peer that may not forward one.
    pub fn xfcc_spoofed(&self) -> bool {
        self.xfcc == Xfcc::Spoofed
    }
}

/// `trust.forwarders`: the mTLS peers whose XFCC header is believed.
#[derive(Debug, Clone, Default)]
pub struct Forwarders(Vec<Glob>);

impl Forwarders {
    /// Compiles SPIFFE IDs and glob patterns.
    ///
    /// # Errors
    /// An entry that is not a SPIFFE ID or pattern (with the entry and why).
    pub fn new(entries: &[String]) -> Result<Self, String> {
        entries
            .iter()
            .map(|entry| {
                if !entry.contains('*') {
                    SpiffeId::parse(entry).map_err(|e| {
                        format!("trust.forwarders {entry:?} is not a SPIFFE ID: {e}")
                    })?;
                } else if !entry.starts_with("spiffe://") {
                    return Err(format!(
                        "trust.forwarders {entry:?} is not a SPIFFE ID pattern (spiffe://…)"
                    ));
                }
                Glob::new(entry).map_err(|e| format!("trust.forwarders {entry:?}: {e}"))
            })
            .collect::<Result<_, _>>()
            .map(Self)
    }

    fn includes(&self, spiffe_id: &SpiffeId) -> bool {
        self.0.iter().any(|glob| glob.matches(spiffe_id.as_str()))
    }

    /// How many entries there are.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether no peer may forward.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl TrustPolicy {
    /// The provenance of a request from the verified `peer`: its XFCC header (Envoy joins
    /// repeated headers with `,`), and the calling Envoy's own identity
    /// (`destination.principal`, what Envoy writes as `By`).
    pub fn provenance(&self, peer: &VerifiedPeer, request: &AuthzRequest) -> Provenance {
        let Some(header) = request.xfcc() else {
            return Provenance::NONE;
        };
        if !self.forwarders.includes(&peer.spiffe_id) {
            // The calling Envoy's own element about its peer is no claim; anything else in
            // the header came from the peer, which may not forward.
            let local = only_local(header, peer, &request.destination.principal);
            return Provenance {
                proxy_chain: Vec::new(),
                xfcc: if local { Xfcc::Local } else { Xfcc::Spoofed },
            };
        }
        match xfcc::parse(header) {
            Ok(elements) => Provenance {
                proxy_chain: elements
                    .into_iter()
                    .map(|element| self.hop(element))
                    .collect(),
                xfcc: Xfcc::Believed,
            },
            Err(error) => Provenance {
                proxy_chain: Vec::new(),
                xfcc: Xfcc::Malformed(error.to_string()),
            },
        }
    }

    fn hop(&self, element: XfccElement) -> Hop {
        let XfccElement {
            by,
            hash,
            subject,
            uris,
            dns,
            ..
        } = element;
        let uri = match <[String; 1]>::try_from(uris) {
            Ok([uri]) => uri,
            Err(_) => String::new(),
        };
        let spiffe_id = SpiffeId::parse(&uri).ok().filter(|id| {
            id.is_workload()
                && self.trust_domains.iter().any(|td| td == id.trust_domain())
                && !revoked(&self.revocation, id)
        });
        Hop {
            by,
            uri,
            hash,
            subject,
            dns,
            spiffe_id,
        }
    }
}

/// Whether `header` is one element only, the calling Envoy's (`By` = `local_envoy`, when
/// Envoy said who it is) about `peer` (its one `URI` the peer's SPIFFE ID).
fn only_local(header: &str, peer: &VerifiedPeer, local_envoy: &str) -> bool {
    match xfcc::parse(header).as_deref() {
        Ok([element]) => {
            element.uris.len() == 1
                && element.uris[0] == peer.spiffe_id.as_str()
                && (local_envoy.is_empty() || element.by == local_envoy)
        }
        _ => false,
    }
}

fn revoked(revocation: &Revocation, id: &SpiffeId) -> bool {
    revocation.revoking_id(id.as_str()).is_some()
}
