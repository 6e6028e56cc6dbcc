//! Who originated a request, beyond the mTLS peer: the `x-forwarded-client-cert` chain, believed
//! only from trusted forwarders.
//!
//! The mTLS peer is often a proxy (an ingress gateway, a sidecar). When it is listed in
//! `trust.forwarders`, the part of its XFCC header it vouches for is believed: walking from the
//! newest element back, past the calling Envoy's own element about the peer, each forwarder
//! vouches for the element it wrote (`By` = its SPIFFE ID) about its client; when that client is
//! a forwarder too, for the element before, and so on. Older elements were written by clients
//! and are ignored (and flagged, like a spoofed header). Each believed element's URI SAN is
//! validated as a SPIFFE ID of an accepted trust domain (`trusted`); one naming a revoked
//! workload makes the request untrusted. The **origin** is the oldest believed hop when it is
//! trusted. From any other peer the header is not believed: the chain is empty, the origin is
//! the peer itself, and a header claiming anything beyond the calling Envoy's own element is
//! flagged as spoofed — a workload cannot speak for someone else by writing a header.

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
    /// Whether `uri` names a revoked workload.
    pub revoked: bool,
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
    /// The believed chain, oldest hop first (the calling Envoy's own element, when it wrote
    /// one, last); empty unless the peer is a forwarder.
    pub proxy_chain: Vec<Hop>,
    /// What happened to the request's XFCC header: absent, believed, spoofed, local or
    /// malformed.
    pub xfcc: Xfcc,
    /// Elements older than the believed chain, which no forwarder vouched for: ignored.
    pub ignored: usize,
    /// A believed hop names a revoked workload: why (the request is untrusted).
    pub revoked: Option<String>,
    /// The index in `proxy_chain` of the originating hop, when there is a trusted one.
    origin: Option<usize>,
}

impl Provenance {
    /// A request with no forwarded identity.
    pub const NONE: Provenance = Provenance::unbelieved(Xfcc::Absent);

    /// No chain believed, for `why`.
    const fn unbelieved(why: Xfcc) -> Self {
        Provenance {
            proxy_chain: Vec::new(),
            xfcc: why,
            ignored: 0,
            revoked: None,
            origin: None,
        }
    }

    /// The originating identity and how it was established: the oldest believed hop (other
    /// than the calling Envoy's own) when it is trusted, else `transport`.
    pub fn origin<'a>(&'a self, transport: &'a SpiffeId) -> (&'a SpiffeId, Via) {
        match self
            .origin
            .and_then(|index| self.proxy_chain.get(index)?.spiffe_id.as_ref())
        {
            Some(id) => (id, Via::Xfcc),
            None => (transport, Via::Mtls),
        }
    }

    /// Whether the header claims what no forwarder vouched for: sent by a peer that may not
    /// forward, elements a forwarder's client wrote, or a header from a forwarder that cannot
    /// be read (a client's malformed prefix would otherwise hide the forwarder's own element).
    pub fn xfcc_spoofed(&self) -> bool {
        matches!(self.xfcc, Xfcc::Spoofed | Xfcc::Malformed(_)) || self.ignored > 0
    }
}

/// `trust.forwarders`: the mTLS peers whose XFCC header is believed.
#[derive(Debug, Clone, Default)]
pub struct Forwarders(Vec<(String, Glob)>);

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
                Glob::new(entry)
                    .map(|glob| (entry.clone(), glob))
                    .map_err(|e| format!("trust.forwarders {entry:?}: {e}"))
            })
            .collect::<Result<_, _>>()
            .map(Self)
    }

    fn includes(&self, spiffe_id: &SpiffeId) -> bool {
        self.0
            .iter()
            .any(|(_, glob)| glob.matches(spiffe_id.as_str()))
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
    /// `trust.forwarders` as written.
    pub fn forwarder_entries(&self) -> impl Iterator<Item = &str> {
        self.forwarders.0.iter().map(|(entry, _)| entry.as_str())
    }

    /// The provenance of a request from the verified `peer`: its XFCC header (Envoy joins
    /// repeated headers with `,`), and the calling Envoy's own identity
    /// (`destination.principal`, what Envoy writes as `By`).
    pub fn provenance(&self, peer: &VerifiedPeer, request: &AuthzRequest) -> Provenance {
        let Some(header) = request.xfcc() else {
            return Provenance::NONE;
        };
        let local_envoy = request.destination.principal.as_str();
        if !self.forwarders.includes(&peer.spiffe_id) {
            // The calling Envoy's own element about its peer is no claim; anything else in
            // the header came from the peer, which may not forward.
            let local = matches!(
                xfcc::parse(header).as_deref(),
                Ok([element]) if is_local(element, peer, local_envoy)
            );
            return Provenance::unbelieved(if local { Xfcc::Local } else { Xfcc::Spoofed });
        }
        let elements = match xfcc::parse(header) {
            Ok(elements) => elements,
            Err(error) => return Provenance::unbelieved(Xfcc::Malformed(error.to_string())),
        };
        let local = elements
            .last()
            .is_some_and(|element| is_local(element, peer, local_envoy));
        let claims = elements.len() - usize::from(local);
        // Newest first: each forwarder vouches for the element it wrote about its client.
        let mut hops: Vec<Hop> = Vec::new();
        let mut vouching = Some(peer.spiffe_id.clone());
        for (at, element) in elements[..claims].iter().enumerate().rev() {
            let Some(forwarder) = vouching.take().filter(|id| self.forwarders.includes(id)) else {
                break;
            };
            if element.by != forwarder.as_str() {
                break;
            }
            // A proxy writes one element per request. Two in a row by the same forwarder
            // mean a client's SAN carried XFCC syntax (Envoy does not quote URI and DNS
            // values) or a forged prefix: nothing in this header can be believed.
            if at > 0 && elements[at - 1].by == element.by {
                return Provenance::unbelieved(Xfcc::Malformed(format!(
                    "two consecutive elements written by {}: a client certificate SAN holding x-forwarded-client-cert syntax, or a forged element",
                    element.by
                )));
            }
            let hop = self.hop(element);
            vouching.clone_from(&hop.spiffe_id);
            hops.push(hop);
        }
        let ignored = claims - hops.len();
        if ignored > 0 {
            // Elements no forwarder vouched for precede the forwarder's own: a client's header
            // passed on by an appending forwarder, or a certificate SAN holding XFCC syntax
            // (Envoy does not quote URI and DNS values), which can forge any number of pieces.
            // The two cannot be told apart: nothing in the header is believed.
            return Provenance {
                ignored,
                ..Provenance::unbelieved(Xfcc::Malformed(
                    "elements no forwarder vouched for precede the forwarder's own (a client's header passed on by an appending forwarder, or a certificate SAN holding x-forwarded-client-cert syntax): nothing in the header is believed"
                        .to_owned(),
                ))
            };
        }
        let origin = (!hops.is_empty()).then_some(0);
        hops.reverse();
        if local && let Some(element) = elements.last() {
            hops.push(self.hop(element));
        }
        let revoked = hops
            .iter()
            .filter(|hop| hop.revoked)
            .map(|hop| {
                format!(
                    "the forwarded client {} is revoked (trust.revoked)",
                    hop.uri
                )
            })
            .next();
        Provenance {
            proxy_chain: hops,
            xfcc: Xfcc::Believed,
            ignored,
            revoked,
            origin,
        }
    }

    fn hop(&self, element: &XfccElement) -> Hop {
        let uri = match element.uris.as_slice() {
            [uri] => uri.clone(),
            _ => String::new(),
        };
        let parsed = SpiffeId::parse(&uri).ok().filter(|id| {
            id.is_workload() && self.trust_domains.iter().any(|td| td == id.trust_domain())
        });
        let revoked = parsed
            .as_ref()
            .is_some_and(|id| revoked(&self.revocation, id));
        Hop {
            by: element.by.clone(),
            uri,
            hash: element.hash.clone(),
            subject: element.subject.clone(),
            dns: element.dns.clone(),
            spiffe_id: parsed.filter(|_| !revoked),
            revoked,
        }
    }
}

/// Whether `element` is the calling Envoy's own, about its peer: written by `local_envoy`
/// (when Envoy said who it is) and naming no URI but the peer's (Envoy writes none, or an
/// empty one, unless `set_current_client_cert_details.uri` is on).
fn is_local(element: &XfccElement, peer: &VerifiedPeer, local_envoy: &str) -> bool {
    if local_envoy.is_empty() {
        // Without Envoy's own identity, only an element naming exactly the peer restates it.
        return element.uris.len() == 1 && element.uris[0] == peer.spiffe_id.as_str();
    }
    element.by == local_envoy
        && element
            .uris
            .iter()
            .all(|uri| uri.is_empty() || uri == peer.spiffe_id.as_str())
}

fn revoked(revocation: &Revocation, id: &SpiffeId) -> bool {
    revocation.revoking_id(id.as_str()).is_some()
}
