//! A CheckRequest in proto3 canonical JSON (as Envoy's CheckRequest prints in JSON) → the
//! proto, so `warrant eval` goes through the very translation the gRPC server uses.
//!
//! Proto3 JSON accepts both lowerCamelCase and the original field names, and `null` for any
//! field. Unknown fields are rejected, so a misspelt field cannot silently vanish; fields of
//! the CheckRequest that Warrant does not use are accepted and ignored.

use std::collections::HashMap;

use envoy_types::ext_authz::v3::pb::CheckRequest;
use envoy_types::pb::envoy::config::core::v3 as core;
use envoy_types::pb::envoy::service::auth::v3::{AttributeContext, attribute_context};
use serde::Deserialize;
use serde::de::IgnoredAny;

/// Parses JSON text into a CheckRequest.
pub fn parse(json: &str) -> Result<CheckRequest, serde_json::Error> {
    let request: JsonCheckRequest = serde_json::from_str(json)?;
    Ok(CheckRequest {
        attributes: request.attributes.map(JsonAttributes::into_proto),
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct JsonCheckRequest {
    #[serde(default)]
    attributes: Option<JsonAttributes>,
}

// Fields Warrant does not use are read and dropped (IgnoredAny).
#[allow(dead_code)]
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct JsonAttributes {
    #[serde(default)]
    source: Option<JsonPeer>,
    #[serde(default)]
    destination: Option<JsonPeer>,
    #[serde(default)]
    request: Option<JsonRequest>,
    #[serde(default, alias = "context_extensions")]
    context_extensions: Option<HashMap<String, String>>,
    #[serde(default, alias = "metadata_context")]
    metadata_context: Option<IgnoredAny>,
    #[serde(default, alias = "route_metadata_context")]
    route_metadata_context: Option<IgnoredAny>,
    #[serde(default, alias = "tls_session")]
    tls_session: Option<IgnoredAny>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct JsonPeer {
    #[serde(default)]
    address: Option<JsonAddress>,
    #[serde(default)]
    service: Option<String>,
    #[serde(default)]
    labels: Option<HashMap<String, String>>,
    #[serde(default)]
    principal: Option<String>,
    #[serde(default)]
    certificate: Option<String>,
}

// Fields Warrant does not use are read and dropped (IgnoredAny).
#[allow(dead_code)]
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct JsonAddress {
    #[serde(default, alias = "socket_address")]
    socket_address: Option<JsonSocketAddress>,
    #[serde(default)]
    pipe: Option<JsonPipe>,
    #[serde(default, alias = "envoy_internal_address")]
    envoy_internal_address: Option<IgnoredAny>,
}

// Fields Warrant does not use are read and dropped (IgnoredAny).
#[allow(dead_code)]
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct JsonSocketAddress {
    #[serde(default)]
    protocol: Option<IgnoredAny>,
    #[serde(default)]
    address: Option<String>,
    #[serde(default, alias = "port_value", deserialize_with = "port")]
    port_value: Option<u32>,
    #[serde(default, alias = "named_port")]
    named_port: Option<IgnoredAny>,
    #[serde(default, alias = "resolver_name")]
    resolver_name: Option<IgnoredAny>,
    #[serde(default, alias = "ipv4_compat")]
    ipv4_compat: Option<IgnoredAny>,
    #[serde(default, alias = "network_namespace_filepath")]
    network_namespace_filepath: Option<IgnoredAny>,
}

// Fields Warrant does not use are read and dropped (IgnoredAny).
#[allow(dead_code)]
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct JsonPipe {
    #[serde(default)]
    path: Option<String>,
    #[serde(default)]
    mode: Option<IgnoredAny>,
}

/// Proto3 JSON writes uint32 as a number but parsers must accept a string too.
#[derive(Deserialize)]
#[serde(untagged)]
enum JsonU32 {
    Number(u32),
    Text(String),
}

impl JsonU32 {
    fn value<E: serde::de::Error>(self) -> Result<u32, E> {
        match self {
            JsonU32::Number(n) => Ok(n),
            JsonU32::Text(text) => text
                .parse()
                .map_err(|_| E::custom(format!("port {text:?} is not a uint32"))),
        }
    }
}

fn port<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Option<u32>, D::Error> {
    Option::<JsonU32>::deserialize(deserializer)?
        .map(JsonU32::value)
        .transpose()
}

/// A google.protobuf.Timestamp in proto3 JSON: an RFC 3339 string.
fn timestamp<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<envoy_types::pb::google::protobuf::Timestamp>, D::Error> {
    let Some(text) = Option::<String>::deserialize(deserializer)? else {
        return Ok(None);
    };
    let time = chrono::DateTime::parse_from_rfc3339(&text).map_err(|e| {
        serde::de::Error::custom(format!("time {text:?} is not an RFC 3339 timestamp: {e}"))
    })?;
    Ok(Some(envoy_types::pb::google::protobuf::Timestamp {
        seconds: time.timestamp(),
        nanos: i32::try_from(time.timestamp_subsec_nanos()).unwrap_or(0),
    }))
}

/// `header_map` (sent instead of `headers` when the filter sets `encode_raw_headers`).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct JsonHeaderMap {
    #[serde(default)]
    headers: Vec<JsonHeaderValue>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct JsonHeaderValue {
    key: String,
    #[serde(default)]
    value: Option<String>,
    /// bytes: base64 in proto3 JSON.
    #[serde(default, alias = "raw_value", deserialize_with = "base64_bytes")]
    raw_value: Option<Vec<u8>>,
}

fn base64_bytes<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Vec<u8>>, D::Error> {
    use base64::Engine as _;
    let Some(text) = Option::<String>::deserialize(deserializer)? else {
        return Ok(None);
    };
    // Proto3 JSON parsers accept standard and URL-safe base64, padded or not.
    let cleaned: String = text
        .trim_end_matches('=')
        .chars()
        .map(|c| match c {
            '-' => '+',
            '_' => '/',
            c => c,
        })
        .collect();
    base64::engine::general_purpose::STANDARD_NO_PAD
        .decode(cleaned)
        .map(Some)
        .map_err(|e| serde::de::Error::custom(format!("rawValue is not base64: {e}")))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct JsonRequest {
    #[serde(default, deserialize_with = "timestamp")]
    time: Option<envoy_types::pb::google::protobuf::Timestamp>,
    #[serde(default)]
    http: Option<JsonHttp>,
}

// Fields Warrant does not use are read and dropped (IgnoredAny).
#[allow(dead_code)]
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct JsonHttp {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    method: Option<String>,
    #[serde(default)]
    headers: Option<HashMap<String, String>>,
    #[serde(default, alias = "header_map")]
    header_map: Option<JsonHeaderMap>,
    #[serde(default)]
    path: Option<String>,
    #[serde(default)]
    host: Option<String>,
    #[serde(default)]
    scheme: Option<String>,
    #[serde(default)]
    query: Option<String>,
    #[serde(default)]
    fragment: Option<String>,
    #[serde(default)]
    size: Option<IgnoredAny>,
    #[serde(default)]
    protocol: Option<String>,
    #[serde(default)]
    body: Option<IgnoredAny>,
    #[serde(default, alias = "raw_body")]
    raw_body: Option<IgnoredAny>,
}

impl JsonAttributes {
    fn into_proto(self) -> AttributeContext {
        AttributeContext {
            source: self.source.map(JsonPeer::into_proto),
            destination: self.destination.map(JsonPeer::into_proto),
            request: self.request.map(JsonRequest::into_proto),
            context_extensions: self.context_extensions.unwrap_or_default(),
            ..Default::default()
        }
    }
}

impl JsonPeer {
    fn into_proto(self) -> attribute_context::Peer {
        attribute_context::Peer {
            address: self.address.map(JsonAddress::into_proto),
            service: self.service.unwrap_or_default(),
            labels: self.labels.unwrap_or_default(),
            principal: self.principal.unwrap_or_default(),
            certificate: self.certificate.unwrap_or_default(),
        }
    }
}

impl JsonAddress {
    fn into_proto(self) -> core::Address {
        let address = if let Some(socket) = self.socket_address {
            let port = socket.port_value.unwrap_or(0);
            Some(core::address::Address::SocketAddress(core::SocketAddress {
                address: socket.address.unwrap_or_default(),
                port_specifier: Some(core::socket_address::PortSpecifier::PortValue(port)),
                ..Default::default()
            }))
        } else {
            self.pipe.map(|pipe| {
                core::address::Address::Pipe(core::Pipe {
                    path: pipe.path.unwrap_or_default(),
                    mode: 0,
                })
            })
        };
        core::Address { address }
    }
}

impl JsonRequest {
    fn into_proto(self) -> attribute_context::Request {
        attribute_context::Request {
            time: self.time,
            http: self.http.map(|http| attribute_context::HttpRequest {
                id: http.id.unwrap_or_default(),
                method: http.method.unwrap_or_default(),
                headers: http.headers.unwrap_or_default(),
                path: http.path.unwrap_or_default(),
                host: http.host.unwrap_or_default(),
                scheme: http.scheme.unwrap_or_default(),
                query: http.query.unwrap_or_default(),
                fragment: http.fragment.unwrap_or_default(),
                protocol: http.protocol.unwrap_or_default(),
                header_map: http.header_map.map(|map| core::HeaderMap {
                    headers: map
                        .headers
                        .into_iter()
                        .map(|h| core::HeaderValue {
                            key: h.key,
                            value: h.value.unwrap_or_default(),
                            raw_value: h.raw_value.unwrap_or_default(),
                        })
                        .collect(),
                }),
                ..Default::default()
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn camel_case_and_original_names() {
        let camel = parse(
            r#"{"attributes":{"source":{"principal":"spiffe://td/a","address":{"socketAddress":{"address":"10.0.0.1","portValue":1234}}},
                "request":{"time":"2026-01-01T00:00:00Z","http":{"method":"GET","path":"/x?a=1","headers":{"x-a":"1"}}},
                "contextExtensions":{"k":"v"}}}"#,
        )
        .unwrap();
        let snake = parse(
            r#"{"attributes":{"source":{"principal":"spiffe://td/a","address":{"socket_address":{"address":"10.0.0.1","port_value":"1234"}}},
                "request":{"time":"2026-01-01T00:00:00Z","http":{"method":"GET","path":"/x?a=1","headers":{"x-a":"1"}}},
                "context_extensions":{"k":"v"}}}"#,
        )
        .unwrap();
        assert_eq!(camel, snake);
        let attributes = camel.attributes.unwrap();
        assert_eq!(attributes.context_extensions["k"], "v");
        assert_eq!(
            attributes.request.unwrap().time.unwrap().seconds,
            1_767_225_600
        );
    }

    #[test]
    fn raw_header_map() {
        let request = parse(
            r#"{"attributes":{"request":{"http":{"headerMap":{"headers":[
                {"key":"x-role","rawValue":"Z3Vlc3Q="},{"key":"x-role","raw_value":"YWRtaW4"},
                {"key":"accept","value":"*/*"}]}}}}}"#,
        )
        .unwrap();
        let http = request.attributes.unwrap().request.unwrap().http.unwrap();
        let headers = http.header_map.unwrap().headers;
        assert_eq!(headers[0].raw_value, b"guest");
        assert_eq!(headers[1].raw_value, b"admin");
        assert_eq!(headers[2].value, "*/*");
    }

    #[test]
    fn malformed_values_are_errors_not_defaults() {
        for bad in [
            r#"{"attributes":{"request":{"time":"yesterday"}}}"#,
            r#"{"attributes":{"source":{"address":{"socketAddress":{"portValue":"http"}}}}}"#,
            r#"{"attributes":{"request":{"http":{"headerMap":{"headers":[{"key":"a","rawValue":"!!"}]}}}}}"#,
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn unknown_fields_are_rejected() {
        assert!(parse(r#"{"atributes":{}}"#).is_err());
        assert!(parse(r#"{"attributes":{"source":{"principle":"x"}}}"#).is_err());
        assert!(parse("not json").is_err());
    }

    #[test]
    fn unused_fields_and_nulls_are_accepted() {
        let request = parse(
            r#"{"attributes":{"source":null,"metadataContext":{"filterMetadata":{}},"tlsSession":{"sni":"x"},
                "request":{"http":{"size":"-1","body":"","headerMap":null}}}}"#,
        )
        .unwrap();
        assert!(request.attributes.unwrap().source.is_none());
    }
}
