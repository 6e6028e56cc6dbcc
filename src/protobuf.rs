//! Hand-written protobuf encoding, for the two messages Warrant writes on every Check without
//! building them first: the CheckResponse (`server::response`) and the OTLP span
//! (`audit::otlp::encoding`). Field keys and lengths with the one-byte case inline, proto3's
//! rule that a scalar holding its default is left out, and [`Encoded`], a message already
//! encoded (protobuf encoding guide: "Base 128 Varints", "Message Structure", "Length-Delimited
//! Records").

use prost::bytes::{Buf, BufMut};
use prost::encoding::{WireType, encode_varint, encoded_len_varint, key_len};

/// Writes a field key (tag and wire type): one byte for tags below 16.
#[inline]
pub(crate) fn put_key(tag: u32, wire_type: WireType, out: &mut Vec<u8>) {
    let key = (tag << 3) | wire_type as u32;
    match u8::try_from(key) {
        Ok(byte) if byte < 0x80 => out.push(byte),
        _ => encode_varint(u64::from(key), out),
    }
}

/// Writes a length or other unsigned varint: one byte below 128.
#[inline]
pub(crate) fn put_len(len: usize, out: &mut Vec<u8>) {
    match u8::try_from(len) {
        Ok(byte) if byte < 0x80 => out.push(byte),
        _ => encode_varint(len as u64, out),
    }
}

/// The length of length-delimited field `tag` holding `len` bytes.
pub(crate) fn delimited_len(tag: u32, len: usize) -> usize {
    key_len(tag) + encoded_len_varint(len as u64) + len
}

/// The length of proto3 string field `tag` holding `text`: nothing when it is empty.
pub(crate) fn string_field_len(tag: u32, text: &str) -> usize {
    if text.is_empty() {
        0
    } else {
        delimited_len(tag, text.len())
    }
}

/// Writes length-delimited field `tag` holding `bytes`, even when empty (a oneof member).
pub(crate) fn put_bytes(tag: u32, bytes: impl AsRef<[u8]>, out: &mut Vec<u8>) {
    let bytes = bytes.as_ref();
    put_key(tag, WireType::LengthDelimited, out);
    put_len(bytes.len(), out);
    out.extend_from_slice(bytes);
}

/// Writes proto3 string or bytes field `tag`: left out when empty.
pub(crate) fn put_bytes_field(tag: u32, bytes: impl AsRef<[u8]>, out: &mut Vec<u8>) {
    let bytes = bytes.as_ref();
    if !bytes.is_empty() {
        put_bytes(tag, bytes, out);
    }
}

/// Writes proto3 fixed64 field `tag`: left out when 0.
pub(crate) fn put_fixed64_field(tag: u32, value: u64, out: &mut Vec<u8>) {
    if value != 0 {
        put_key(tag, WireType::SixtyFourBit, out);
        out.put_u64_le(value);
    }
}

/// A message already encoded, sent as it is (prost `Message`, encode only: decoding one
/// skips every field).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Encoded(pub(crate) prost::bytes::Bytes);

impl prost::Message for Encoded {
    fn encode_raw(&self, buf: &mut impl BufMut) {
        buf.put_slice(&self.0);
    }

    fn merge_field(
        &mut self,
        tag: u32,
        wire_type: WireType,
        buf: &mut impl Buf,
        ctx: prost::encoding::DecodeContext,
    ) -> Result<(), prost::DecodeError> {
        prost::encoding::skip_field(wire_type, tag, buf, ctx)
    }

    fn encoded_len(&self) -> usize {
        self.0.len()
    }

    fn clear(&mut self) {
        self.0.clear();
    }
}

#[cfg(test)]
mod tests {
    use prost::Message;

    use super::*;

    #[test]
    fn keys_and_lengths_are_prosts_varints() {
        for tag in [1, 2, 15, 16, 2047, 2048] {
            for wire_type in [WireType::Varint, WireType::LengthDelimited] {
                let mut ours = Vec::new();
                put_key(tag, wire_type, &mut ours);
                let mut prosts = Vec::new();
                prost::encoding::encode_key(tag, wire_type, &mut prosts);
                assert_eq!(ours, prosts, "{tag}");
            }
        }
        for len in [0, 1, 127, 128, 300, 16_383, 16_384, 1 << 21] {
            let mut ours = Vec::new();
            put_len(len, &mut ours);
            let mut prosts = Vec::new();
            encode_varint(len as u64, &mut prosts);
            assert_eq!(ours, prosts, "{len}");
            assert_eq!(delimited_len(3, len), key_len(3) + prosts.len() + len);
        }
        assert_eq!(string_field_len(1, ""), 0);
        let mut out = Vec::new();
        put_bytes_field(1, b"", &mut out);
        put_fixed64_field(7, 0, &mut out);
        assert!(out.is_empty(), "defaults are left out");
        let encoded = Encoded(prost::bytes::Bytes::from_static(b"\x0a\x01x"));
        assert_eq!(encoded.encode_to_vec(), b"\x0a\x01x");
        assert_eq!(encoded.encoded_len(), 3);
    }
}
