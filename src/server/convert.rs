//! CheckRequest (proto) → [`AuthzRequest`] (domain). Moves strings out of the proto rather
//! than copying them. A request missing any part yields empty fields, which the trust stage
//! then denies: malformed input is a deny, never a crash.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use envoy_types::ext_authz::v3::pb::CheckRequest;
use envoy_types::pb::envoy::config::core::v3::Metadata;
use envoy_types::pb::envoy::config::core::v3::address::Address as AddressKind;
use envoy_types::pb::envoy::config::core::v3::socket_address::PortSpecifier;
use envoy_types::pb::envoy::service::auth::v3::attribute_context;
use envoy_types::pb::google::protobuf::value::Kind;
use envoy_types::pb::google::protobuf::{Struct, Value as ProtoValue};

use prost::Message as _;

use super::wire;
use crate::request::{AuthzRequest, HttpRequest, Peer};

/// Translates a CheckRequest (its protobuf bytes, read as the server reads them off the wire:
/// one translation for both).
pub fn authz_request(request: CheckRequest) -> AuthzRequest {
    // Bytes prost just wrote decode; were they not to, the empty request is denied.
    from_wire(wire::CheckRequest::decode(request.encode_to_vec().as_slice()).unwrap_or_default())
}

/// Translates a CheckRequest as the server decoded it.
pub(crate) fn from_wire(request: wire::CheckRequest) -> AuthzRequest {
    let Some(attributes) = request.attributes else {
        return AuthzRequest::default();
    };
    let (time, http) = match attributes.request {
        Some(request) => (
            request.time.and_then(|t| {
                let secs = u64::try_from(t.seconds).ok()?;
                let nanos = u32::try_from(t.nanos).ok()?;
                SystemTime::UNIX_EPOCH.checked_add(Duration::new(secs, nanos))
            }),
            request.http.map(http_request),
        ),
        None => (None, None),
    };
    AuthzRequest {
        source: attributes.source.map(peer).unwrap_or_default(),
        destination: attributes.destination.map(peer).unwrap_or_default(),
        http,
        time,
        // A map: the last entry of a key wins, as in the map Envoy's message holds.
        context_extensions: attributes
            .context_extensions
            .into_iter()
            .map(|entry| (entry.key, entry.value))
            .collect(),
        metadata: attributes
            .metadata_context
            .map(filter_metadata)
            .unwrap_or_default(),
        route_metadata: attributes
            .route_metadata_context
            .map(filter_metadata)
            .unwrap_or_default(),
        // Host names compare case-insensitively (RFC 4343), as Envoy matches SNI.
        tls_sni: attributes
            .tls_session
            .map(|tls| tls.sni.to_ascii_lowercase())
            .unwrap_or_default(),
    }
}

/// `filter_metadata` (filter name → `Struct`) as JSON objects. `typed_filter_metadata`
/// (`Any`, which needs each filter's own proto to read) is not read.
fn filter_metadata(metadata: Metadata) -> BTreeMap<String, serde_json::Value> {
    metadata
        .filter_metadata
        .into_iter()
        .map(|(filter, fields)| (filter, object(fields)))
        .collect()
}

fn object(fields: Struct) -> serde_json::Value {
    serde_json::Value::Object(
        fields
            .fields
            .into_iter()
            .map(|(k, v)| (k, json(v)))
            .collect(),
    )
}

/// A `google.protobuf.Value` as JSON: numbers are doubles (NaN and infinities, which JSON
/// cannot hold, become null).
fn json(value: ProtoValue) -> serde_json::Value {
    use serde_json::Value as Json;
    match value.kind {
        None | Some(Kind::NullValue(_)) => Json::Null,
        Some(Kind::NumberValue(n)) => {
            serde_json::Number::from_f64(n).map_or(Json::Null, Json::Number)
        }
        Some(Kind::StringValue(s)) => Json::String(s),
        Some(Kind::BoolValue(b)) => Json::Bool(b),
        Some(Kind::StructValue(fields)) => object(fields),
        Some(Kind::ListValue(list)) => Json::Array(list.values.into_iter().map(json).collect()),
    }
}

fn peer(peer: attribute_context::Peer) -> Peer {
    let (address, port) = match peer.address.and_then(|a| a.address) {
        Some(AddressKind::SocketAddress(socket)) => {
            let port = match socket.port_specifier {
                Some(PortSpecifier::PortValue(port)) => port,
                _ => 0,
            };
            (socket.address, port)
        }
        Some(AddressKind::Pipe(pipe)) => (pipe.path, 0),
        _ => (String::new(), 0),
    };
    Peer {
        principal: peer.principal,
        certificate: peer.certificate,
        address,
        port,
    }
}

fn http_request(http: wire::HttpRequest) -> HttpRequest {
    // Envoy sends `headers`, or `header_map` when the filter sets `encode_raw_headers`.
    let mut headers: Vec<(String, String)> = if http.headers.is_empty() {
        let mut headers: Vec<(String, String)> = http
            .header_map
            .map(|map| {
                map.headers
                    .into_iter()
                    .map(|h| {
                        let value = if h.raw_value.is_empty() {
                            h.value
                        } else {
                            String::from_utf8_lossy(&h.raw_value).into_owned()
                        };
                        (lowercase(h.key), value)
                    })
                    .collect()
            })
            .unwrap_or_default();
        // By name; repeated names (`header_map` lists each occurrence) kept in arrival order.
        headers.sort_by(|a, b| a.0.cmp(&b.0));
        headers
    } else {
        // One entry per name, as in the map Envoy's message holds, in name order. A name sent
        // in two cases is two entries, ordered by value once lower-cased.
        let mut headers = wire::map_entries(http.headers);
        let mut recased = false;
        for (name, _) in &mut headers {
            if name.bytes().any(|b| b.is_ascii_uppercase()) {
                name.make_ascii_lowercase();
                recased = true;
            }
        }
        if recased {
            headers.sort_unstable();
        }
        headers
    };
    join_repeated(&mut headers);
    // Envoy sends `body`, or `raw_body` when the filter sets `pack_as_bytes`.
    let body = if http.body.is_empty() {
        String::from_utf8(http.raw_body).unwrap_or_default()
    } else {
        http.body
    };
    HttpRequest {
        id: http.id,
        method: http.method,
        path: http.path,
        host: http.host,
        scheme: http.scheme,
        protocol: http.protocol,
        headers,
        body,
        size: http.size,
    }
    .canonical()
}

/// `name` in ASCII lower case, in place (header names are compared in lower case).
fn lowercase(mut name: String) -> String {
    name.make_ascii_lowercase();
    name
}

/// Joins repeated header names into one entry, values separated by `,` in arrival order, as
/// Envoy itself does for the `headers` map. `header_map` lists each occurrence separately;
/// left apart, a rule would see one value and the others would slip past it
/// (`x-role: guest` then `x-role: admin`). `headers` must be sorted by name.
fn join_repeated(headers: &mut Vec<(String, String)>) {
    headers.dedup_by(|later, earlier| {
        if later.0 != earlier.0 {
            return false;
        }
        earlier.1.push(',');
        earlier.1.push_str(&later.1);
        true
    });
}

#[cfg(test)]
mod tests {
    use envoy_types::pb::envoy::config::core::v3::{HeaderMap, HeaderValue};

    use super::*;

    proptest::proptest! {
        /// Joining keeps one entry per name, in name order, whose value is every value of
        /// that name in arrival order, separated by `,`.
        #[test]
        fn repeated_headers_join_in_arrival_order(
            arrivals in proptest::collection::vec(("[a-c]{1,2}", "[a-z0-9, ]{0,4}"), 0..12),
        ) {
            let mut headers: Vec<(String, String)> = arrivals.clone();
            headers.sort_by(|a, b| a.0.cmp(&b.0));
            join_repeated(&mut headers);
            let mut names: Vec<&String> = arrivals.iter().map(|(n, _)| n).collect();
            names.sort();
            names.dedup();
            proptest::prop_assert_eq!(headers.iter().map(|(n, _)| n).collect::<Vec<_>>(), names);
            for (name, value) in &headers {
                let values: Vec<&str> = arrivals
                    .iter()
                    .filter(|(n, _)| n == name)
                    .map(|(_, v)| v.as_str())
                    .collect();
                proptest::prop_assert_eq!(value, &values.join(","));
            }
        }
    }

    #[test]
    fn raw_header_map_repeats_are_joined() {
        let header = |key: &str, value: &str, raw: &[u8]| HeaderValue {
            key: key.to_owned(),
            value: value.to_owned(),
            raw_value: raw.to_vec(),
        };
        let http = http_request(wire::HttpRequest {
            header_map: Some(HeaderMap {
                headers: vec![
                    header("X-Role", "", b"guest"),
                    header("accept", "*/*", b""),
                    header("x-role", "", b"admin"),
                    header("x-bin", "", b"\xff"),
                ],
            }),
            ..Default::default()
        });
        assert_eq!(
            http.headers,
            [
                ("accept".to_owned(), "*/*".to_owned()),
                ("x-bin".to_owned(), "\u{fffd}".to_owned()),
                ("x-role".to_owned(), "guest,admin".to_owned()),
            ]
        );
    }

    #[test]
    fn the_headers_map_keeps_the_last_entry_of_a_name_and_joins_its_cases() {
        let entry = |key: &str, value: &str| wire::MapEntry {
            key: key.to_owned(),
            value: value.to_owned(),
        };
        let http = http_request(wire::HttpRequest {
            headers: vec![
                entry("b", "3"),
                entry("X-A", "1"),
                entry("x-a", "2"),
                entry("b", "4"),
            ],
            ..Default::default()
        });
        assert_eq!(
            http.headers,
            [
                ("b".to_owned(), "4".to_owned()),
                ("x-a".to_owned(), "1,2".to_owned()),
            ]
        );
    }

    #[test]
    fn body_raw_body_metadata_and_sni() {
        use envoy_types::pb::envoy::service::auth::v3::AttributeContext;
        use envoy_types::pb::google::protobuf::ListValue;

        let number = |n: f64| ProtoValue {
            kind: Some(Kind::NumberValue(n)),
        };
        let claims = Struct {
            fields: [
                ("n".to_owned(), number(1.5)),
                ("nan".to_owned(), number(f64::NAN)),
                (
                    "list".to_owned(),
                    ProtoValue {
                        kind: Some(Kind::ListValue(ListValue {
                            values: vec![number(2.0)],
                        })),
                    },
                ),
            ]
            .into_iter()
            .collect(),
        };
        let request = |body: &str, raw: &[u8]| CheckRequest {
            attributes: Some(AttributeContext {
                request: Some(attribute_context::Request {
                    http: Some(attribute_context::HttpRequest {
                        body: body.to_owned(),
                        raw_body: raw.to_vec(),
                        size: 7,
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
                metadata_context: Some(Metadata {
                    filter_metadata: [("f".to_owned(), claims.clone())].into_iter().collect(),
                    ..Default::default()
                }),
                tls_session: Some(attribute_context::TlsSession {
                    sni: "a.example".to_owned(),
                }),
                ..Default::default()
            }),
        };
        let converted = authz_request(request("text", b""));
        let http = converted.http.as_ref().expect("http");
        assert_eq!((http.body.as_str(), http.size), ("text", 7));
        assert_eq!(converted.tls_sni, "a.example");
        assert_eq!(
            converted.metadata["f"],
            serde_json::json!({"n": 1.5, "nan": null, "list": [2.0]})
        );
        assert!(converted.route_metadata.is_empty());
        let raw = authz_request(request("", b"bytes"));
        assert_eq!(raw.http.expect("http").body, "bytes");
        let binary = authz_request(request("", b"\xff\xfe"));
        assert_eq!(binary.http.expect("http").body, "");
    }
}
