//! The CheckRequest as the server decodes it off the wire: envoy-types' messages, except that
//! its two string maps (`AttributeContext.context_extensions` and `HttpRequest.headers`) are
//! decoded as the lists of entries they are on the wire (protobuf encoding guide: "Maps") —
//! not into hash maps keyed with SipHash that [`super::convert`] would then take apart again
//! to sort. Field numbers follow `envoy/service/auth/v3/attribute_context.proto` and
//! `external_auth.proto` (vendored in `proto/`); fields Warrant does not read (`query`,
//! `fragment`, `Request`'s other fields) are skipped as unknown. A test decodes the same bytes
//! both ways and compares every field that is read.

use envoy_types::pb::envoy::config::core::v3::{HeaderMap, Metadata};
use envoy_types::pb::envoy::service::auth::v3::attribute_context::{Peer, TlsSession};
use envoy_types::pb::google::protobuf::Timestamp;

/// `envoy.service.auth.v3.CheckRequest`.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct CheckRequest {
    #[prost(message, optional, tag = "1")]
    pub(crate) attributes: Option<AttributeContext>,
}

/// `envoy.service.auth.v3.AttributeContext`.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct AttributeContext {
    #[prost(message, optional, tag = "1")]
    pub(crate) source: Option<Peer>,
    #[prost(message, optional, tag = "2")]
    pub(crate) destination: Option<Peer>,
    #[prost(message, optional, tag = "4")]
    pub(crate) request: Option<Request>,
    /// `map<string, string> context_extensions = 10`, entry by entry.
    #[prost(message, repeated, tag = "10")]
    pub(crate) context_extensions: Vec<MapEntry>,
    #[prost(message, optional, tag = "11")]
    pub(crate) metadata_context: Option<Metadata>,
    #[prost(message, optional, tag = "12")]
    pub(crate) tls_session: Option<TlsSession>,
    #[prost(message, optional, tag = "13")]
    pub(crate) route_metadata_context: Option<Metadata>,
}

/// `AttributeContext.Request`.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct Request {
    #[prost(message, optional, tag = "1")]
    pub(crate) time: Option<Timestamp>,
    #[prost(message, optional, tag = "2")]
    pub(crate) http: Option<HttpRequest>,
}

/// `AttributeContext.HttpRequest`.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct HttpRequest {
    #[prost(string, tag = "1")]
    pub(crate) id: String,
    #[prost(string, tag = "2")]
    pub(crate) method: String,
    /// `map<string, string> headers = 3`, entry by entry, as they arrived.
    #[prost(message, repeated, tag = "3")]
    pub(crate) headers: Vec<MapEntry>,
    #[prost(string, tag = "4")]
    pub(crate) path: String,
    #[prost(string, tag = "5")]
    pub(crate) host: String,
    #[prost(string, tag = "6")]
    pub(crate) scheme: String,
    #[prost(int64, tag = "9")]
    pub(crate) size: i64,
    #[prost(string, tag = "10")]
    pub(crate) protocol: String,
    #[prost(string, tag = "11")]
    pub(crate) body: String,
    #[prost(bytes = "vec", tag = "12")]
    pub(crate) raw_body: Vec<u8>,
    #[prost(message, optional, tag = "13")]
    pub(crate) header_map: Option<HeaderMap>,
}

/// One entry of a `map<string, string>` (the entry message protobuf defines for a map: `key`
/// 1, `value` 2).
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct MapEntry {
    #[prost(string, tag = "1")]
    pub(crate) key: String,
    #[prost(string, tag = "2")]
    pub(crate) value: String,
}

/// The entries of a decoded map as the map would hold them: one per key, the last one on the
/// wire winning (protobuf: "When parsing from the wire … the last key seen is used"), in key
/// order.
pub(crate) fn map_entries(mut entries: Vec<MapEntry>) -> Vec<(String, String)> {
    // Stable: entries with one key stay in wire order, so the last is the later one.
    entries.sort_by(|a, b| a.key.cmp(&b.key));
    entries.dedup_by(|later, earlier| {
        if later.key != earlier.key {
            return false;
        }
        std::mem::swap(&mut later.value, &mut earlier.value);
        true
    });
    entries.into_iter().map(|e| (e.key, e.value)).collect()
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use envoy_types::ext_authz::v3::pb as envoy;
    use envoy_types::pb::envoy::config::core::v3::HeaderValue;
    use prost::Message;

    use super::*;

    fn entries(pairs: &[(String, String)]) -> Vec<MapEntry> {
        pairs
            .iter()
            .map(|(key, value)| MapEntry {
                key: key.clone(),
                value: value.clone(),
            })
            .collect()
    }

    /// A CheckRequest written with every field Warrant reads, maps entry by entry (repeated
    /// and mixed-case keys included, which envoy-types' maps cannot write).
    fn request(headers: &[(String, String)], context: &[(String, String)]) -> CheckRequest {
        let peer = |principal: &str| Peer {
            principal: principal.into(),
            certificate: "-----BEGIN%20CERTIFICATE-----".into(),
            ..Peer::default()
        };
        CheckRequest {
            attributes: Some(AttributeContext {
                source: Some(peer("spiffe://prod.example.org/ns/shop/sa/frontend")),
                destination: Some(peer("spiffe://prod.example.org/ns/shop/sa/payments")),
                request: Some(Request {
                    time: Some(Timestamp {
                        seconds: 1_800_000_000,
                        nanos: 7,
                    }),
                    http: Some(HttpRequest {
                        id: "req-1".into(),
                        method: "GET".into(),
                        headers: entries(headers),
                        path: "/payments/42?expand=1".into(),
                        host: "payments.shop".into(),
                        scheme: "https".into(),
                        size: 12,
                        protocol: "HTTP/2".into(),
                        body: "{}".into(),
                        raw_body: b"\x00\x01".to_vec(),
                        header_map: Some(HeaderMap {
                            headers: vec![HeaderValue {
                                key: "x-raw".into(),
                                raw_value: b"1".to_vec(),
                                ..HeaderValue::default()
                            }],
                        }),
                    }),
                }),
                context_extensions: entries(context),
                metadata_context: Some(Metadata::default()),
                tls_session: Some(TlsSession {
                    sni: "payments.shop".into(),
                }),
                route_metadata_context: None,
            }),
        }
    }

    proptest::proptest! {
        /// The same bytes, decoded as envoy-types' CheckRequest and as the server's, hold the
        /// same values in every field Warrant reads; each map holds what `map_entries` gives.
        #[test]
        fn the_wire_request_reads_as_envoys(
            headers in proptest::collection::vec(("[a-cA-C]{1,2}", "[a-z0-9]{0,3}"), 0..10),
            context in proptest::collection::vec(("[a-c]{1,2}", "[a-z0-9]{0,3}"), 0..4),
        ) {
            let ours = request(&headers, &context);
            let bytes = ours.encode_to_vec();
            let theirs = envoy::CheckRequest::decode(bytes.as_slice()).unwrap();
            let ours = CheckRequest::decode(bytes.as_slice()).unwrap();
            let (a, b) = (theirs.attributes.unwrap(), ours.attributes.unwrap());
            proptest::prop_assert_eq!(a.source, b.source);
            proptest::prop_assert_eq!(a.destination, b.destination);
            proptest::prop_assert_eq!(a.metadata_context, b.metadata_context);
            proptest::prop_assert_eq!(a.route_metadata_context, b.route_metadata_context);
            proptest::prop_assert_eq!(a.tls_session, b.tls_session);
            let as_map = |pairs: Vec<(String, String)>| pairs.into_iter().collect::<HashMap<_, _>>();
            let context_map = as_map(map_entries(b.context_extensions));
            proptest::prop_assert_eq!(a.context_extensions, context_map);
            let (a, b) = (a.request.unwrap(), b.request.unwrap());
            proptest::prop_assert_eq!(a.time, b.time);
            let (a, b) = (a.http.unwrap(), b.http.unwrap());
            proptest::prop_assert_eq!(
                (&a.id, &a.method, &a.path, &a.host, &a.scheme, a.size),
                (&b.id, &b.method, &b.path, &b.host, &b.scheme, b.size)
            );
            proptest::prop_assert_eq!((&a.protocol, &a.body), (&b.protocol, &b.body));
            proptest::prop_assert_eq!(&a.raw_body, &b.raw_body);
            proptest::prop_assert_eq!(a.header_map, b.header_map);
            let header_map = as_map(map_entries(b.headers.clone()));
            let sorted = map_entries(b.headers);
            proptest::prop_assert!(sorted.windows(2).all(|w| w[0].0 < w[1].0), "one entry per key, in order");
            proptest::prop_assert_eq!(a.headers, header_map);
        }
    }
}
