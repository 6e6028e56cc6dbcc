//! `authz.check` spans encoded as OTLP protobuf straight from decision records, as they
//! arrive: one `ExportTraceServiceRequest` with one `ResourceSpans` (Warrant's resource) and
//! one `ScopeSpans` (scope `warrant`) per batch.
//!
//! The bytes are those the OpenTelemetry SDK sends for [`DecisionRecord::to_span`] (its
//! `SpanData` → `Span` conversion in `opentelemetry-proto`; a test compares the two), without
//! building a `SpanData` and then a `Span` message, with their copies of every string, per
//! span. The resource and scope are encoded once. Field numbers follow
//! `opentelemetry/proto/trace/v1/trace.proto` and `common/v1/common.proto` (OTLP 1.x).

use std::time::{Duration, SystemTime};

use opentelemetry::InstrumentationScope;
use opentelemetry::trace::TraceState;
use opentelemetry_proto::tonic::common::v1::InstrumentationScope as ScopeMessage;
use opentelemetry_proto::tonic::resource::v1::Resource as ResourceMessage;
use opentelemetry_proto::transform::common::tonic::ResourceAttributesWithSchema;
use opentelemetry_sdk::Resource;
use prost::bytes::{BufMut, Bytes};
use prost::encoding::{WireType, encode_varint, key_len};

use crate::protobuf::{
    delimited_len, put_bytes, put_bytes_field, put_fixed64_field, put_key, put_len,
    string_field_len,
};

use crate::audit::record::{DecisionRecord, SpanValue};

/// `Span` fields (trace.proto).
mod span {
    pub(super) const TRACE_ID: u32 = 1;
    pub(super) const SPAN_ID: u32 = 2;
    pub(super) const TRACE_STATE: u32 = 3;
    pub(super) const PARENT_SPAN_ID: u32 = 4;
    pub(super) const NAME: u32 = 5;
    pub(super) const KIND: u32 = 6;
    pub(super) const START_TIME_UNIX_NANO: u32 = 7;
    pub(super) const END_TIME_UNIX_NANO: u32 = 8;
    pub(super) const ATTRIBUTES: u32 = 9;
    pub(super) const STATUS: u32 = 15;
    pub(super) const FLAGS: u32 = 16;
    /// `SPAN_KIND_SERVER`.
    pub(super) const KIND_SERVER: u64 = 2;
    /// `Status.message`, `Status.code` (`STATUS_CODE_ERROR` is 2).
    pub(super) const STATUS_MESSAGE: u32 = 2;
    pub(super) const STATUS_CODE: u32 = 3;
    pub(super) const STATUS_CODE_ERROR: u64 = 2;
    /// `SpanFlags`: W3C trace flags (sampled), and whether the parent is remote is known
    /// (`SPAN_FLAGS_CONTEXT_HAS_IS_REMOTE_MASK`) and true (`SPAN_FLAGS_CONTEXT_IS_REMOTE_MASK`).
    pub(super) const FLAGS_SAMPLED: u32 = 0x1;
    pub(super) const FLAGS_HAS_IS_REMOTE: u32 = 0x100;
    pub(super) const FLAGS_IS_REMOTE: u32 = 0x200;
}

/// `ExportTraceServiceRequest.resource_spans`, `ResourceSpans.{resource, scope_spans,
/// schema_url}`, `ScopeSpans.{scope, spans, schema_url}`: fields 1, 2 and 3 at each level.
const RESOURCE_SPANS: u32 = 1;
const SCOPE_SPANS: u32 = 2;
const SPANS: u32 = 2;

/// The spans of one export, encoded as they arrive, in the buffer that is sent: a gap for the
/// `ResourceSpans` and `ScopeSpans` keys and lengths (known only at the end), the scope, the
/// spans; the resource is appended last. Protobuf fields may come in any order ("Message
/// Structure": parsers must accept them so), so nothing is copied to put the header first.
#[derive(Debug)]
pub(super) struct ExportBatch {
    /// `ResourceSpans.resource` and `.schema_url`, encoded once.
    resource: Vec<u8>,
    /// `ScopeSpans.scope` and `.schema_url`, encoded once.
    scope: Vec<u8>,
    /// [`HEADER_GAP`] bytes, the scope, then each span's field key, length and `Span`.
    request: Vec<u8>,
    /// How many spans `request` holds.
    count: usize,
    /// One span's encoding, before its length is known.
    scratch: Vec<u8>,
}

/// Room for two field keys and two lengths (varints of up to 10 bytes each).
const HEADER_GAP: usize = 2 * (1 + 10);

impl ExportBatch {
    /// An empty batch of spans from `resource`, instrumented by `scope`.
    pub(super) fn new(resource: &Resource, scope: &InstrumentationScope) -> Self {
        let resource = ResourceAttributesWithSchema::from(resource);
        let mut resource_field = Vec::new();
        prost::encoding::message::encode(
            1,
            &ResourceMessage {
                attributes: resource.attributes.0,
                dropped_attributes_count: 0,
                entity_refs: Vec::new(),
            },
            &mut resource_field,
        );
        put_bytes_field(
            3,
            resource.schema_url.as_deref().unwrap_or(""),
            &mut resource_field,
        );
        let mut scope_field = Vec::new();
        prost::encoding::message::encode(1, &ScopeMessage::from((scope, None)), &mut scope_field);
        put_bytes_field(3, scope.schema_url().unwrap_or(""), &mut scope_field);
        let mut batch = Self {
            resource: resource_field,
            scope: scope_field,
            request: Vec::new(),
            count: 0,
            scratch: Vec::new(),
        };
        batch.start(0);
        batch
    }

    /// Starts an empty request, with room for about `capacity` bytes.
    fn start(&mut self, capacity: usize) {
        self.request = Vec::with_capacity(capacity.max(HEADER_GAP + self.scope.len()));
        self.request.resize(HEADER_GAP, 0);
        self.request.extend_from_slice(&self.scope);
        self.count = 0;
    }

    /// How many spans the batch holds.
    pub(super) fn len(&self) -> usize {
        self.count
    }

    /// Whether it holds none.
    pub(super) fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Adds `record`'s `authz.check` span.
    pub(super) fn push(&mut self, record: &DecisionRecord) {
        self.scratch.clear();
        encode_span(record, &mut self.scratch);
        put_key(SPANS, WireType::LengthDelimited, &mut self.request);
        put_len(self.scratch.len(), &mut self.request);
        self.request.extend_from_slice(&self.scratch);
        self.count += 1;
    }

    /// The `ExportTraceServiceRequest` of the spans so far (protobuf), leaving the batch empty.
    pub(super) fn take_request(&mut self) -> Bytes {
        let scope_spans = self.request.len() - HEADER_GAP;
        let resource_spans = delimited_len(SCOPE_SPANS, scope_spans) + self.resource.len();
        let mut header = Vec::with_capacity(HEADER_GAP);
        put_key(RESOURCE_SPANS, WireType::LengthDelimited, &mut header);
        put_len(resource_spans, &mut header);
        put_key(SCOPE_SPANS, WireType::LengthDelimited, &mut header);
        put_len(scope_spans, &mut header);
        let capacity = self.request.capacity();
        let mut request = std::mem::take(&mut self.request);
        request.extend_from_slice(&self.resource);
        // The header ends where the scope begins: right-aligned in the gap.
        let offset = HEADER_GAP - header.len();
        if let Some(gap) = request.get_mut(offset..HEADER_GAP) {
            gap.copy_from_slice(&header);
        }
        self.start(capacity);
        Bytes::from(request).slice(offset..)
    }
}

/// `record`'s span (kind SERVER, named `authz.check`, child of the caller's span when there
/// is one), as `opentelemetry-proto` converts [`DecisionRecord::to_span`].
fn encode_span(record: &DecisionRecord, out: &mut Vec<u8>) {
    put_bytes_field(span::TRACE_ID, record.trace_id, out);
    put_bytes_field(span::SPAN_ID, record.span_id, out);
    if let Some(parent) = &record.parent {
        if !parent.trace_state.is_empty() {
            let state = parent
                .trace_state
                .parse::<TraceState>()
                .unwrap_or_default()
                .header();
            put_bytes_field(span::TRACE_STATE, &state, out);
        }
        // The SDK leaves out an invalid (all-zero) parent id; a parsed one never is.
        if parent.span_id != [0; 8] {
            put_bytes_field(span::PARENT_SPAN_ID, parent.span_id, out);
        }
    }
    put_bytes_field(span::NAME, "authz.check", out);
    put_key(span::KIND, WireType::Varint, out);
    encode_varint(span::KIND_SERVER, out);
    put_fixed64_field(span::START_TIME_UNIX_NANO, unix_nanos(record.start), out);
    put_fixed64_field(
        span::END_TIME_UNIX_NANO,
        unix_nanos(record.start + record.duration),
        out,
    );
    record.span_attributes(|key, value| {
        let len = key_value_len(key, &value);
        put_key(span::ATTRIBUTES, WireType::LengthDelimited, out);
        put_len(len, out);
        put_bytes_field(1, key, out);
        put_key(2, WireType::LengthDelimited, out);
        put_len(any_value_len(&value), out);
        match &value {
            // AnyValue's `value` is a oneof: written even when empty or false.
            SpanValue::String(text) => put_bytes(1, text.as_bytes(), out),
            SpanValue::Bool(flag) => {
                put_key(2, WireType::Varint, out);
                encode_varint(u64::from(*flag), out);
            }
        }
    });
    // A deny is a normal outcome: the status is unset unless something failed.
    let error = record.error.as_deref().unwrap_or("");
    let status_len = if record.error.is_some() {
        string_field_len(span::STATUS_MESSAGE, error) + key_len(span::STATUS_CODE) + 1
    } else {
        0
    };
    put_key(span::STATUS, WireType::LengthDelimited, out);
    put_len(status_len, out);
    if record.error.is_some() {
        put_bytes_field(span::STATUS_MESSAGE, error, out);
        put_key(span::STATUS_CODE, WireType::Varint, out);
        encode_varint(span::STATUS_CODE_ERROR, out);
    }
    let mut flags = span::FLAGS_SAMPLED | span::FLAGS_HAS_IS_REMOTE;
    if record.parent.is_some() {
        flags |= span::FLAGS_IS_REMOTE;
    }
    put_key(span::FLAGS, WireType::ThirtyTwoBit, out);
    out.put_u32_le(flags);
}

/// Nanoseconds since the Unix epoch; 0 before it (as the SDK's conversion does).
fn unix_nanos(time: SystemTime) -> u64 {
    let since = time
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or(Duration::ZERO);
    u64::try_from(since.as_nanos()).unwrap_or(u64::MAX)
}

/// The length of a `KeyValue` holding `key` and `value`.
fn key_value_len(key: &str, value: &SpanValue<'_>) -> usize {
    string_field_len(1, key) + delimited_len(2, any_value_len(value))
}

/// The length of an `AnyValue` holding `value`.
fn any_value_len(value: &SpanValue<'_>) -> usize {
    match value {
        SpanValue::String(text) => delimited_len(1, text.len()),
        SpanValue::Bool(_) => key_len(2) + 1,
    }
}

#[cfg(test)]
mod tests;
