//! The decision-log line: one JSON object per Check, its fields in the documented order
//! (docs/audit.md).
//!
//! Written by hand rather than through `serde_json`'s serializer: every key is a constant and
//! nearly every value a string with nothing to escape, so a line is mostly copied. A string
//! that does need escaping (a control character, `"` or `\`) goes through `serde_json`, so the
//! line is byte for byte what serializing [`tests::ReferenceLine`] would give (a test checks
//! this); only the nested `shadow` list is serialized by `serde_json` directly.

use super::{DecisionRecord, ProvenanceLine};

/// A JSON object being appended to a buffer.
struct Object<'o> {
    out: &'o mut Vec<u8>,
    empty: bool,
}

impl<'o> Object<'o> {
    fn open(out: &'o mut Vec<u8>) -> Self {
        out.push(b'{');
        Self { out, empty: true }
    }

    /// `"key":` (`key` is a constant with nothing to escape).
    fn key(&mut self, key: &'static str) -> &mut Vec<u8> {
        if !self.empty {
            self.out.push(b',');
        }
        self.empty = false;
        self.out.push(b'"');
        self.out.extend_from_slice(key.as_bytes());
        self.out.extend_from_slice(b"\":");
        self.out
    }

    fn string(&mut self, key: &'static str, value: &str) {
        let out = self.key(key);
        push_string(out, value);
    }

    fn optional_string(&mut self, key: &'static str, value: Option<&str>) {
        match value {
            Some(value) => self.string(key, value),
            None => self.key(key).extend_from_slice(b"null"),
        }
    }

    /// `"key":` followed by `json`, already serialized.
    fn raw(&mut self, key: &'static str, json: &[u8]) {
        self.key(key).extend_from_slice(json);
    }

    /// `"key":true` or `"key":false`.
    fn bool(&mut self, key: &'static str, value: bool) {
        let text: &[u8] = if value { b"true" } else { b"false" };
        self.key(key).extend_from_slice(text);
    }

    /// `"key":"…"`: `bytes` in lower-case hex (nothing to escape).
    fn hex(&mut self, key: &'static str, bytes: &[u8]) {
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        let out = self.key(key);
        out.reserve(bytes.len() * 2 + 2);
        out.push(b'"');
        for b in bytes {
            out.extend_from_slice(&[DIGITS[usize::from(b >> 4)], DIGITS[usize::from(b & 0x0f)]]);
        }
        out.push(b'"');
    }

    /// The provenance members, flattened into the line as `serde` would (its
    /// `skip_serializing_if` rules: an empty chain, `xfcc_spoofed` false and absent options
    /// are left out).
    fn provenance(&mut self, provenance: &ProvenanceLine) {
        self.string("origin_spiffe_id", &provenance.origin_spiffe_id);
        self.string("origin_via", provenance.origin_via);
        if !provenance.proxy_chain.is_empty() {
            let out = self.key("proxy_chain");
            out.push(b'[');
            for (i, uri) in provenance.proxy_chain.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                push_string(out, uri);
            }
            out.push(b']');
        }
        if provenance.xfcc_spoofed {
            self.bool("xfcc_spoofed", true);
        }
        if let Some(error) = &provenance.xfcc_error {
            self.string("xfcc_error", error);
        }
        if let Some(id) = &provenance.workload_spiffe_id {
            self.string("workload_spiffe_id", id);
        }
        if let Some(verified) = provenance.workload_verified {
            self.bool("workload_verified", verified);
        }
        if let Some(error) = &provenance.workload_error {
            self.string("workload_error", error);
        }
        if let Some(bound) = provenance.identity_bound {
            self.bool("identity_bound", bound);
        }
    }

    fn close(self) {
        self.out.push(b'}');
    }
}

/// `value` as a JSON string: copied between quotes when nothing in it needs escaping (JSON
/// escapes only `"`, `\` and control characters below U+0020; RFC 8259 §7), else escaped by
/// `serde_json` exactly as its serializer would.
fn push_string(out: &mut Vec<u8>, value: &str) {
    // No early exit, so the loop vectorizes: a log line's strings are short.
    let needs_escape = value.bytes().fold(false, |found, b| {
        found | (b < 0x20) | (b == b'"') | (b == b'\\')
    });
    if needs_escape {
        // Writing a string into memory cannot fail.
        let _ = serde_json::to_writer(&mut *out, value);
    } else {
        out.reserve(value.len() + 2);
        out.push(b'"');
        out.extend_from_slice(value.as_bytes());
        out.push(b'"');
    }
}

impl DecisionRecord {
    /// Appends the decision-log line (JSON, no trailing newline) to `out`.
    pub fn write_json_line(&self, out: &mut Vec<u8>) {
        let time: chrono::DateTime<chrono::Utc> = (self.start + self.duration).into();
        let mut line = Object::open(out);
        line.string(
            "time",
            &time.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
        );
        line.string("decision_id", &self.decision_id);
        line.hex("trace_id", &self.trace_id);
        line.hex("span_id", &self.span_id);
        line.optional_string("spiffe_id", self.spiffe_id.as_deref());
        line.optional_string("trust_domain", self.trust_domain.as_deref());
        line.string("principal", &self.principal);
        line.string("method", &self.method);
        line.string("path", &self.path);
        line.string("host", &self.host);
        line.string("destination", &self.destination);
        line.string("request_id", &self.request_id);
        line.string("decision", self.decision());
        if !self.answered {
            // When Envoy was answered otherwise (`decision` is `unanswered`): what the policy
            // decided.
            line.string("would_decide", self.verdict.as_str());
        }
        line.string("stage", self.stage.as_str());
        line.optional_string("rule", self.rule.as_deref());
        line.string("policy_revision", &self.policy_revision);
        line.string("reason", &self.reason);
        line.optional_string("error", self.error.as_deref());
        if !self.shadow.is_empty() {
            // Serializing plain strings and booleans into memory cannot fail.
            line.raw(
                "shadow",
                &serde_json::to_vec(&self.shadow).unwrap_or_default(),
            );
        }
        if let Some(provenance) = &self.provenance {
            // Flattened: `origin_spiffe_id`, `origin_via`, `proxy_chain`, `xfcc_spoofed`, ….
            line.provenance(provenance);
        }
        let duration_us = u64::try_from(self.duration.as_micros()).unwrap_or(u64::MAX);
        let _ = std::io::Write::write_fmt(line.key("duration_us"), format_args!("{duration_us}"));
        line.close();
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::{Duration, SystemTime};

    use proptest::prelude::*;

    use super::super::{ProvenanceLine, ShadowLine};
    use super::*;
    use crate::policy::{Stage, Verdict};

    /// The line as `serde_json` serializes it: the reference the hand-written line must equal.
    #[derive(serde::Serialize)]
    pub(super) struct ReferenceLine<'a> {
        time: String,
        decision_id: &'a str,
        trace_id: String,
        span_id: String,
        spiffe_id: Option<&'a str>,
        trust_domain: Option<&'a str>,
        principal: &'a str,
        method: &'a str,
        path: &'a str,
        host: &'a str,
        destination: &'a str,
        request_id: &'a str,
        decision: &'static str,
        #[serde(skip_serializing_if = "Option::is_none")]
        would_decide: Option<&'static str>,
        stage: &'static str,
        rule: Option<&'a str>,
        policy_revision: &'a str,
        reason: &'a str,
        error: Option<&'a str>,
        #[serde(skip_serializing_if = "<[ShadowLine]>::is_empty")]
        shadow: &'a [ShadowLine],
        #[serde(flatten, skip_serializing_if = "Option::is_none")]
        provenance: Option<&'a ProvenanceLine>,
        duration_us: u64,
    }

    fn reference(record: &DecisionRecord) -> Vec<u8> {
        let time: chrono::DateTime<chrono::Utc> = (record.start + record.duration).into();
        serde_json::to_vec(&ReferenceLine {
            time: time.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
            decision_id: &record.decision_id,
            trace_id: crate::audit::trace_context::to_hex(&record.trace_id),
            span_id: crate::audit::trace_context::to_hex(&record.span_id),
            spiffe_id: record.spiffe_id.as_deref(),
            trust_domain: record.trust_domain.as_deref(),
            principal: &record.principal,
            method: &record.method,
            path: &record.path,
            host: &record.host,
            destination: &record.destination,
            request_id: &record.request_id,
            decision: record.decision(),
            would_decide: (!record.answered).then(|| record.verdict.as_str()),
            stage: record.stage.as_str(),
            rule: record.rule.as_deref(),
            policy_revision: &record.policy_revision,
            reason: &record.reason,
            error: record.error.as_deref(),
            shadow: &record.shadow,
            provenance: record.provenance.as_ref(),
            duration_us: u64::try_from(record.duration.as_micros()).unwrap_or(u64::MAX),
        })
        .unwrap_or_default()
    }

    fn text() -> impl Strategy<Value = String> {
        prop_oneof![
            "[a-z/:.-]{0,12}",
            any::<String>(),
            "[\"\\\\\\x00-\\x1f\\x7f\u{e9}\u{2028}a]{0,8}",
        ]
    }

    prop_compose! {
        fn records()(
            strings in proptest::collection::vec(text(), 12),
            optional in proptest::collection::vec(proptest::option::of(text()), 6),
            ids in (any::<[u8; 16]>(), any::<[u8; 8]>()),
            flags in (any::<bool>(), any::<bool>(), any::<bool>(), any::<bool>()),
            micros in 0u64..u64::MAX / 2,
            start in 0u64..4_000_000_000,
            shadow in proptest::collection::vec((text(), any::<bool>(), proptest::option::of(text())), 0..3),
            chain in proptest::collection::vec(text(), 0..3),
        ) -> DecisionRecord {
            let [s0, s1, s2, s3, s4, s5, s6, s7, s8, s9, s10, s11] =
                <[String; 12]>::try_from(strings).unwrap_or_default();
            let [o0, o1, o2, o3, o4, o5] =
                <[Option<String>; 6]>::try_from(optional).unwrap_or_default();
            DecisionRecord {
                start: SystemTime::UNIX_EPOCH + Duration::from_secs(start),
                duration: Duration::from_micros(micros % 10_000_000),
                decision_id: s0,
                verdict: if flags.0 { Verdict::Allow } else { Verdict::Deny },
                stage: if flags.1 { Stage::Rules } else { Stage::Trust },
                rule: o0.map(Arc::from),
                reason: s1,
                spiffe_id: o1,
                trust_domain: o2,
                principal: s2,
                method: s3,
                path: s4,
                host: s5,
                destination: s6,
                request_id: s7,
                trace_id: ids.0,
                span_id: ids.1,
                parent: None,
                sampled: false,
                error: o3,
                shadow: shadow
                    .into_iter()
                    .map(|(rule, matched, error)| ShadowLine {
                        rule: Arc::from(rule),
                        effect: "deny",
                        matched,
                        error,
                    })
                    .collect(),
                policy_revision: Arc::from(s8),
                provenance: flags.2.then_some(ProvenanceLine {
                    origin_spiffe_id: s9,
                    origin_via: "xfcc",
                    proxy_chain: chain,
                    xfcc_spoofed: flags.3,
                    xfcc_error: o4,
                    workload_spiffe_id: o5,
                    workload_verified: Some(flags.0),
                    workload_error: Some(s10),
                    identity_bound: None,
                }),
                answered: flags.3 || s11.is_empty(),
            }
        }
    }

    proptest! {
        #[test]
        fn the_line_is_what_serde_json_would_write(record in records()) {
            let mut line = Vec::new();
            record.write_json_line(&mut line);
            let expected = reference(&record);
            prop_assert_eq!(String::from_utf8_lossy(&line), String::from_utf8_lossy(&expected));
        }
    }
}
