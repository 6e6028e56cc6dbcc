//! A CheckRequest in protobuf's canonical JSON mapping (what Envoy prints, what operators
//! capture) → the proto, so `warrant eval`, `explain` and `test` go through the very
//! translation the gRPC server uses.
//!
//! The JSON is read against Envoy's own descriptors (compiled by `build.rs` from the protos in
//! `proto/`) with `prost-reflect`, exactly as the proto3 JSON mapping defines it: field names
//! in lowerCamelCase or as written in the proto, `null` for an absent field, well-known types
//! (`Timestamp` as RFC 3339, `Struct`/`Value` as any JSON, `Any` with `@type`, wrappers, 64-bit
//! integers as strings or numbers, `bytes` as base64). Unknown fields are rejected, so a
//! misspelt field cannot silently vanish. The message is then re-encoded and decoded into
//! `envoy-types`' prost struct.

use std::sync::OnceLock;

use envoy_types::ext_authz::v3::pb::CheckRequest;
use prost::Message;
use prost_reflect::{DescriptorPool, DeserializeOptions, DynamicMessage};

use crate::server::EXT_AUTHZ_DESCRIPTORS as DESCRIPTORS;

const CHECK_REQUEST: &str = "envoy.service.auth.v3.CheckRequest";

/// Why a JSON text is not a CheckRequest.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum RequestJsonError {
    #[error(transparent)]
    Json(#[from] serde_json::Error),
    #[error("the built-in Envoy descriptors are unusable: {0}")]
    Descriptors(String),
    #[error("the CheckRequest does not decode")]
    Decode(#[from] prost::DecodeError),
}

fn pool() -> Result<&'static DescriptorPool, RequestJsonError> {
    static POOL: OnceLock<Result<DescriptorPool, String>> = OnceLock::new();
    POOL.get_or_init(|| DescriptorPool::decode(DESCRIPTORS).map_err(|e| e.to_string()))
        .as_ref()
        .map_err(|e| RequestJsonError::Descriptors(e.clone()))
}

/// Parses JSON text into a CheckRequest.
///
/// # Errors
/// Invalid JSON, a field the CheckRequest does not have, or a value of the wrong type, with
/// the line and column where the JSON parser found it.
pub(crate) fn parse(json: &str) -> Result<CheckRequest, RequestJsonError> {
    crate::json::reject_duplicate_keys(json)?;
    let pool = pool()?;
    let descriptor = pool
        .get_message_by_name(CHECK_REQUEST)
        .ok_or_else(|| RequestJsonError::Descriptors(format!("no message {CHECK_REQUEST}")))?;
    let mut deserializer = serde_json::Deserializer::from_str(json);
    let message = DynamicMessage::deserialize_with_options(
        descriptor,
        &mut deserializer,
        &DeserializeOptions::new().deny_unknown_fields(true),
    )?;
    deserializer.end()?;
    Ok(CheckRequest::decode(message.encode_to_vec().as_slice())?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_camel_case_original_names_and_well_known_types() {
        let request = parse(
            r#"{"attributes": {
                "source": {"principal": "spiffe://a/b", "address": {"socketAddress": {"address": "10.0.0.1", "portValue": 443}}},
                "destination": {"address": {"socket_address": {"address": "10.0.0.2", "port_value": "8443"}}},
                "request": {"time": "2026-03-02T10:00:00.5Z", "http": {"method": "GET", "path": "/x", "headers": {"a": "b"}, "body": "hi", "size": "2"}},
                "context_extensions": {"k": "v"},
                "metadataContext": {"filterMetadata": {"envoy.filters.http.jwt_authn": {"claims": {"sub": "alice", "n": 1}}}},
                "tls_session": {"sni": "payments.shop"}
            }}"#,
        )
        .expect("a CheckRequest");
        let attributes = request.attributes.expect("attributes");
        assert_eq!(attributes.source.expect("source").principal, "spiffe://a/b");
        let http = attributes
            .request
            .as_ref()
            .and_then(|r| r.http.as_ref())
            .expect("http");
        assert_eq!(
            (http.method.as_str(), http.size, http.body.as_str()),
            ("GET", 2, "hi")
        );
        let time = attributes.request.and_then(|r| r.time).expect("time");
        assert_eq!((time.seconds, time.nanos), (1_772_445_600, 500_000_000));
        assert_eq!(attributes.context_extensions["k"], "v");
        assert!(
            attributes
                .metadata_context
                .expect("metadata")
                .filter_metadata
                .contains_key("envoy.filters.http.jwt_authn")
        );
        assert_eq!(attributes.tls_session.expect("tls").sni, "payments.shop");
    }

    #[test]
    fn refuses_unknown_fields_and_wrong_types() {
        for bad in [
            r#"{"attributes": {"sorce": {}}}"#,
            r#"{"attributes": {"request": {"http": {"body": "a", "body": "b"}}}}"#,
            r#"{"attributes": {"source": {"principal": 1}}}"#,
            r#"{"attributes": {"request": {"time": "yesterday"}}}"#,
            r#"{"attributes": {}} trailing"#,
            "[]",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
        assert!(parse(r#"{"attributes": null}"#).is_ok());
    }
}
