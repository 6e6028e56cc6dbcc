//! [`Decision`] → CheckResponse: the one place that maps outcomes to the wire.
//!
//! - Allow → gRPC OK with an OkHttpResponse that overwrites the identity header and adds the
//!   rule's headers, removes its `remove_headers` and adds its `response_headers` to the
//!   client's response.
//! - Untrusted caller (stage `trust`) → UNAUTHENTICATED; any other deny → PERMISSION_DENIED.
//!   Both always carry a non-OK status: Envoy reads a CheckResponse without status as OK, so
//!   an empty response would fail open.
//! - Every response carries `dynamic_metadata` (decision, rule, spiffe_id, decision_id) for
//!   Envoy's access logs.
//!
//! Policy internals (the reason) stay out of the denied body: the caller learns the stage,
//! the rule id and the decision id, which an operator can look up.

use envoy_types::ext_authz::v3::pb::{
    CheckResponse, DeniedHttpResponse, HeaderAppendAction, HeaderValue, HeaderValueOption,
    HttpResponse, HttpStatus,
};
use envoy_types::pb::google::rpc;
use prost::Message;
use prost::bytes::{Buf, BufMut};
use prost::encoding::{WireType, key_len};

use crate::policy::{Decision, Stage, Verdict};
use crate::protobuf::{
    Encoded, delimited_len, put_bytes, put_bytes_field, put_key, put_len, string_field_len,
};

/// gRPC status codes (google.rpc.Code).
const GRPC_OK: i32 = 0;
const GRPC_PERMISSION_DENIED: i32 = 7;
const GRPC_UNAUTHENTICATED: i32 = 16;

/// The response Envoy enforces for `decision`, as a CheckResponse message (for tests, the CLI
/// and embedding; the server sends the same bytes from a [`CheckAnswer`]).
pub fn check_response(decision: &Decision, identity_header: Option<&str>) -> CheckResponse {
    CheckAnswer::new(decision, identity_header).to_check_response()
}

/// The CheckResponse Envoy enforces for one decision, encoded when it is made (prost
/// [`Message`], encode only: decoding one skips every field): the same bytes as the
/// CheckResponse [`check_response`] returns, without building its `dynamic_metadata` Struct (a
/// hash map of 13 owned strings) per Check, and without computing every length twice.
#[derive(Debug)]
pub struct CheckAnswer(Encoded);

impl CheckAnswer {
    /// The answer to `decision`; `identity_header` as in [`check_response`].
    pub fn new(decision: &Decision, identity_header: Option<&str>) -> Self {
        let proxy_chain = decision.identity.as_ref().map_or_else(String::new, |id| {
            id.provenance
                .proxy_chain
                .iter()
                .map(|hop| hop.uri.as_str())
                .collect::<Vec<_>>()
                .join(",")
        });
        let fields = metadata(decision, &proxy_chain);
        let metadata_len = struct_len(&fields);
        let mut bytes = match decision.verdict {
            // The allow path, on nearly every Check: written without building its messages.
            Verdict::Allow => {
                let ok_len = ok_response_len(decision, identity_header);
                let mut bytes = Vec::with_capacity(
                    delimited_len(STATUS, 0)
                        + delimited_len(OK_RESPONSE, ok_len)
                        + delimited_len(DYNAMIC_METADATA, metadata_len),
                );
                // `status`: google.rpc.Status with code OK (0), all of whose fields are defaults.
                put_bytes(STATUS, b"", &mut bytes);
                put_key(OK_RESPONSE, WireType::LengthDelimited, &mut bytes);
                put_len(ok_len, &mut bytes);
                put_ok_response(decision, identity_header, &mut bytes);
                bytes
            }
            Verdict::Deny => {
                let (status, http_response) = denied_status_and_response(decision);
                let mut bytes = Vec::with_capacity(
                    prost::encoding::message::encoded_len(STATUS, &status)
                        + http_response.encoded_len()
                        + delimited_len(DYNAMIC_METADATA, metadata_len),
                );
                prost::encoding::message::encode(STATUS, &status, &mut bytes);
                http_response.encode(&mut bytes);
                bytes
            }
        };
        put_key(DYNAMIC_METADATA, WireType::LengthDelimited, &mut bytes);
        put_len(metadata_len, &mut bytes);
        for (key, value) in fields {
            put_struct_entry(key, value, &mut bytes);
        }
        Self(Encoded(bytes.into()))
    }

    /// An answer that denies with `status`'s (non-OK) code and no decision: what a Check that
    /// was not decided gets ([`refused`]).
    pub fn refused(status: &tonic::Status) -> Self {
        Self(Encoded(refused_response(status).encode_to_vec().into()))
    }

    /// The answer as a CheckResponse message: its own bytes, decoded. A decoding failure
    /// (there is none: the bytes are a CheckResponse) would give an INTERNAL deny, never an
    /// empty response.
    pub fn to_check_response(&self) -> CheckResponse {
        CheckResponse::decode(self.0.0.as_ref()).unwrap_or_else(|error| {
            refused_response(&tonic::Status::internal(format!(
                "warrant could not read back its own CheckResponse: {error}"
            )))
        })
    }
}

impl Message for CheckAnswer {
    fn encode_raw(&self, buf: &mut impl BufMut) {
        self.0.encode_raw(buf);
    }

    fn merge_field(
        &mut self,
        tag: u32,
        wire_type: WireType,
        buf: &mut impl Buf,
        ctx: prost::encoding::DecodeContext,
    ) -> Result<(), prost::DecodeError> {
        self.0.merge_field(tag, wire_type, buf, ctx)
    }

    fn encoded_len(&self) -> usize {
        self.0.encoded_len()
    }

    fn clear(&mut self) {
        self.0.clear();
    }
}

/// CheckResponse's field numbers (Envoy service/auth/v3/external_auth.proto): `status`,
/// `ok_response` (of the `http_response` oneof, where `denied_response` is 2) and
/// `dynamic_metadata`.
const STATUS: u32 = 1;
const OK_RESPONSE: u32 = 3;
const DYNAMIC_METADATA: u32 = 4;

/// OkHttpResponse's field numbers (external_auth.proto): `headers`, `headers_to_remove` and
/// `response_headers_to_add`, written in this order, as prost writes them.
const OK_HEADERS: u32 = 2;
const OK_HEADERS_TO_REMOVE: u32 = 5;
const OK_RESPONSE_HEADERS_TO_ADD: u32 = 6;

/// The length of the OkHttpResponse that [`put_ok_response`] writes.
fn ok_response_len(decision: &Decision, identity_header: Option<&str>) -> usize {
    let headers: usize = upstream_pairs(decision, identity_header)
        .map(|(name, value)| delimited_len(OK_HEADERS, header_option_len(name, value)))
        .sum();
    let removed: usize = removed_names(decision, identity_header)
        .map(|name| delimited_len(OK_HEADERS_TO_REMOVE, name.len()))
        .sum();
    let response: usize = decision
        .response_headers
        .iter()
        .map(|(name, value)| {
            delimited_len(OK_RESPONSE_HEADERS_TO_ADD, header_option_len(name, value))
        })
        .sum();
    headers + removed + response
}

/// Writes the OkHttpResponse of an allowed `decision` (its fields, without key and length):
/// the upstream headers, the removed request headers and the client's response headers, each
/// header overwriting one of the same name. (The tests build the same OkHttpResponse as a
/// message, from [`upstream_headers`] and [`removed_headers`], and compare the bytes.)
fn put_ok_response(decision: &Decision, identity_header: Option<&str>, out: &mut Vec<u8>) {
    for (name, value) in upstream_pairs(decision, identity_header) {
        put_header_option(OK_HEADERS, name, value, out);
    }
    for name in removed_names(decision, identity_header) {
        // A repeated string: every element is written, even an empty one.
        put_bytes(OK_HEADERS_TO_REMOVE, name, out);
    }
    for (name, value) in decision.response_headers.iter() {
        put_header_option(OK_RESPONSE_HEADERS_TO_ADD, name, value, out);
    }
}

/// HeaderValueOption's and HeaderValue's field numbers (Envoy config/core/v3/base.proto):
/// `header`, `append_action`; `key`, `value`.
const OPTION_HEADER: u32 = 1;
const OPTION_APPEND_ACTION: u32 = 3;
const HEADER_KEY: u32 = 1;
const HEADER_VALUE: u32 = 2;

/// The length of the HeaderValueOption that overwrites (or adds) header `name` with `value`.
fn header_option_len(name: &str, value: &str) -> usize {
    delimited_len(OPTION_HEADER, header_value_len(name, value)) + key_len(OPTION_APPEND_ACTION) + 1
}

/// The length of a HeaderValue: `key` and `value` are proto3 strings, left out when empty.
fn header_value_len(name: &str, value: &str) -> usize {
    string_field_len(HEADER_KEY, name) + string_field_len(HEADER_VALUE, value)
}

/// Writes field `tag` holding the HeaderValueOption that overwrites header `name` with
/// `value` (`append_action: OVERWRITE_IF_EXISTS_OR_ADD`).
fn put_header_option(tag: u32, name: &str, value: &str, out: &mut Vec<u8>) {
    put_key(tag, WireType::LengthDelimited, out);
    put_len(header_option_len(name, value), out);
    put_key(OPTION_HEADER, WireType::LengthDelimited, out);
    put_len(header_value_len(name, value), out);
    put_bytes_field(HEADER_KEY, name, out);
    put_bytes_field(HEADER_VALUE, value, out);
    put_key(OPTION_APPEND_ACTION, WireType::Varint, out);
    // OVERWRITE_IF_EXISTS_OR_ADD is 2: one byte.
    put_len(HeaderAppendAction::OverwriteIfExistsOrAdd as usize, out);
}

/// `status` and `http_response` (a `denied_response`) of the CheckResponse for a denying
/// `decision`: UNAUTHENTICATED at stage `trust`, PERMISSION_DENIED otherwise, and the denied
/// HTTP response with its JSON body.
fn denied_status_and_response(decision: &Decision) -> (rpc::Status, HttpResponse) {
    let code = match decision.stage {
        Stage::Trust => GRPC_UNAUTHENTICATED,
        Stage::Rules | Stage::Default => GRPC_PERMISSION_DENIED,
    };
    (
        rpc::Status {
            code,
            message: format!("{} denied at stage {}", decision.id, decision.stage),
            details: Vec::new(),
        },
        HttpResponse::DeniedResponse(DeniedHttpResponse {
            status: Some(HttpStatus {
                code: i32::from(decision.http_status),
            }),
            headers: std::iter::once(overwrite_header(
                "content-type".to_owned(),
                "application/json".to_owned(),
            ))
            .chain(
                decision
                    .response_headers
                    .iter()
                    .map(|(key, value)| overwrite_header(key.clone(), value.clone())),
            )
            .collect(),
            body: denied_body(decision),
        }),
    )
}

/// One value of `dynamic_metadata` (google.protobuf.Value).
#[derive(Debug, Clone, Copy)]
enum MetadataValue<'a> {
    /// `string_value` (field 3).
    String(&'a str),
    /// `bool_value` (field 4).
    Bool(bool),
}

/// Every `dynamic_metadata` field of `decision`, in the order the README lists them;
/// `proxy_chain` is the chain's URIs, comma-separated.
fn metadata<'a>(
    decision: &'a Decision,
    proxy_chain: &'a str,
) -> [(&'static str, MetadataValue<'a>); 13] {
    use MetadataValue::{Bool, String};
    let identity = decision.identity.as_ref();
    [
        ("decision", String(decision.verdict.as_str())),
        ("stage", String(decision.stage.as_str())),
        ("rule", String(decision.rule.as_deref().unwrap_or(""))),
        (
            "spiffe_id",
            String(identity.map_or("", |id| id.transport.spiffe_id.as_str())),
        ),
        (
            "origin_spiffe_id",
            String(identity.map_or("", |id| id.origin().0.as_str())),
        ),
        (
            "origin_via",
            String(identity.map_or("", |id| id.origin().1.as_str())),
        ),
        ("proxy_chain", String(proxy_chain)),
        (
            "xfcc_spoofed",
            Bool(identity.is_some_and(|id| id.provenance.xfcc_spoofed())),
        ),
        (
            "workload_spiffe_id",
            String(
                identity
                    .and_then(|id| id.workload.verified())
                    .map_or("", |svid| svid.spiffe_id.as_str()),
            ),
        ),
        (
            "workload_verified",
            Bool(identity.is_some_and(|id| id.workload.verified().is_some())),
        ),
        (
            "identity_bound",
            Bool(identity.is_some_and(|id| id.bound())),
        ),
        ("decision_id", String(&decision.id)),
        ("policy_revision", String(&decision.policy_revision)),
    ]
}

/// The length of a google.protobuf.Struct holding `fields` (its map entries, field 1).
fn struct_len(fields: &[(&str, MetadataValue<'_>)]) -> usize {
    fields
        .iter()
        .map(|(key, value)| {
            let entry = struct_entry_len(key, *value);
            delimited_len(1, entry)
        })
        .sum()
}

/// The length of one `map<string, Value>` entry: key (field 1) and value (field 2).
fn struct_entry_len(key: &str, value: MetadataValue<'_>) -> usize {
    let value = value_len(value);
    delimited_len(1, key.len()) + delimited_len(2, value)
}

/// The length of a google.protobuf.Value holding `value`.
fn value_len(value: MetadataValue<'_>) -> usize {
    match value {
        MetadataValue::String(s) => delimited_len(3, s.len()),
        MetadataValue::Bool(_) => key_len(4) + 1,
    }
}

/// Writes one entry of Struct's `fields` map (field 1), as prost writes a map entry.
fn put_struct_entry(key: &str, value: MetadataValue<'_>, out: &mut Vec<u8>) {
    put_key(1, WireType::LengthDelimited, out);
    put_len(struct_entry_len(key, value), out);
    put_bytes(1, key, out);
    put_key(2, WireType::LengthDelimited, out);
    put_len(value_len(value), out);
    match value {
        MetadataValue::String(s) => put_bytes(3, s, out),
        MetadataValue::Bool(b) => {
            put_key(4, WireType::Varint, out);
            put_len(usize::from(b), out);
        }
    }
}

/// A CheckResponse that denies with `status`'s (non-OK) code and no decision: what a
/// CheckResponse must carry when the Check was not decided.
pub fn refused(status: &tonic::Status) -> CheckResponse {
    refused_response(status)
}

fn refused_response(status: &tonic::Status) -> CheckResponse {
    let code = match status.code() as i32 {
        GRPC_OK => GRPC_PERMISSION_DENIED,
        code => code,
    };
    CheckResponse {
        status: Some(rpc::Status {
            code,
            message: status.message().to_owned(),
            details: Vec::new(),
        }),
        ..Default::default()
    }
}

/// The headers an allowed request carries upstream: the rule's headers, then the verified
/// identity (last, so a rule cannot override it).
pub fn upstream_headers(
    decision: &Decision,
    identity_header: Option<&str>,
) -> Vec<(String, String)> {
    if decision.verdict != Verdict::Allow {
        return Vec::new();
    }
    upstream_pairs(decision, identity_header)
        .map(|(name, value)| (name.to_owned(), value.to_owned()))
        .collect()
}

/// [`upstream_headers`] of an allowed `decision`, borrowed.
fn upstream_pairs<'a>(
    decision: &'a Decision,
    identity_header: Option<&'a str>,
) -> impl Iterator<Item = (&'a str, &'a str)> {
    let rule = decision
        .headers
        .iter()
        .filter(move |(name, _)| Some(name.as_str()) != identity_header)
        .map(|(name, value)| (name.as_str(), value.as_str()));
    let identity = identity_header
        .zip(decision.identity.as_ref())
        .map(|(name, id)| (name, id.transport.spiffe_id.as_str()));
    rule.chain(identity)
}

/// The request headers an allowed request loses before the upstream sees it: the rule's
/// `remove_headers`, never the identity header (which Warrant itself sets).
pub fn removed_headers(decision: &Decision, identity_header: Option<&str>) -> Vec<String> {
    removed_names(decision, identity_header)
        .map(str::to_owned)
        .collect()
}

/// [`removed_headers`], borrowed.
fn removed_names<'a>(
    decision: &'a Decision,
    identity_header: Option<&'a str>,
) -> impl Iterator<Item = &'a str> {
    decision
        .remove_headers
        .iter()
        .map(String::as_str)
        .filter(move |name| Some(*name) != identity_header)
}

/// `{"decision":"deny","stage":…,"rule":…,"decision_id":…}`
pub fn denied_body(decision: &Decision) -> String {
    serde_json::json!({
        "decision": decision.verdict.as_str(),
        "stage": decision.stage.as_str(),
        "rule": decision.rule.as_deref(),
        "decision_id": decision.id,
    })
    .to_string()
}

fn overwrite_header(key: String, value: String) -> HeaderValueOption {
    HeaderValueOption {
        header: Some(HeaderValue {
            key,
            value,
            ..Default::default()
        }),
        append_action: HeaderAppendAction::OverwriteIfExistsOrAdd as i32,
        ..Default::default()
    }
}

#[cfg(test)]
mod tests;
