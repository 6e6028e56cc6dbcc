//! One decision as the audit sinks see it: derived from the [`Decision`] and the request,
//! then turned into a decision-log line and an OpenTelemetry span.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use opentelemetry::trace::{
    SpanContext, SpanId, SpanKind, Status, TraceFlags, TraceId, TraceState,
};
use opentelemetry::{InstrumentationScope, KeyValue};
use opentelemetry_sdk::trace::{SpanData, SpanEvents, SpanLinks};

use super::redact::Redactor;
use super::trace_context::TraceParent;
use crate::policy::{Decision, Stage, Verdict};
use crate::request::AuthzRequest;

mod log_line;

/// The request's provenance in the decision log and span: the originating identity and how it
/// was established, the believed XFCC chain's URIs, and whether a header was not believed.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ProvenanceLine {
    /// The originating SPIFFE ID: the oldest believed XFCC hop when it is trusted, else the
    /// mTLS peer.
    pub origin_spiffe_id: String,
    /// How the origin was established: `mtls` or `xfcc`.
    pub origin_via: &'static str,
    /// The believed XFCC chain's URI SANs, oldest hop first (left out when empty).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub proxy_chain: Vec<String>,
    /// Whether the XFCC header claimed what no trusted forwarder vouched for (left out when
    /// false).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub xfcc_spoofed: bool,
    /// Why a forwarder's header was ignored.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub xfcc_error: Option<String>,
    /// The verified workload token's SPIFFE ID (never the token).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub workload_spiffe_id: Option<String>,
    /// Whether the workload token verified; absent unless `trust.workload_tokens` is set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub workload_verified: Option<bool>,
    /// Why a presented workload token was rejected.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub workload_error: Option<String>,
    /// Whether the verified workload token names the transport identity itself.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub identity_bound: Option<bool>,
}

impl ProvenanceLine {
    fn of(identities: &crate::policy::Identities) -> Self {
        let (origin, via) = identities.origin();
        let provenance = &identities.provenance;
        let checked = identities.workload != crate::trust::Workload::Unchecked;
        Self {
            origin_spiffe_id: origin.as_str().to_owned(),
            origin_via: via.as_str(),
            proxy_chain: provenance
                .proxy_chain
                .iter()
                .map(|hop| hop.uri.clone())
                .collect(),
            xfcc_spoofed: provenance.xfcc_spoofed(),
            xfcc_error: match &provenance.xfcc {
                crate::trust::Xfcc::Malformed(error) => Some(error.clone()),
                _ => None,
            },
            workload_spiffe_id: identities
                .workload
                .verified()
                .map(|svid| svid.spiffe_id.as_str().to_owned()),
            workload_verified: checked.then(|| identities.workload.verified().is_some()),
            workload_error: match &identities.workload {
                crate::trust::Workload::Invalid(error) => Some(error.to_string()),
                _ => None,
            },
            identity_bound: checked.then(|| identities.bound()),
        }
    }
}

/// A shadow rule's would-be outcome in the decision log.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ShadowLine {
    /// The shadow rule's id.
    #[serde(serialize_with = "serialize_str")]
    pub rule: Arc<str>,
    /// What the rule would give when it matches: `allow` or `deny`.
    pub effect: &'static str,
    /// Whether the rule matched this request.
    pub matched: bool,
    /// Why the rule failed to evaluate, sensitive header values scrubbed (left out when it did
    /// not fail).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

fn serialize_str<S: serde::Serializer>(text: &Arc<str>, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(text)
}

/// Everything the sinks record about one Check. Never holds request headers other than the
/// request id, and its reason and error are scrubbed of sensitive header values, so
/// `authorization`, cookies and other secrets cannot leak into logs or spans.
#[derive(Debug, Clone)]
pub struct DecisionRecord {
    /// When the Check started (wall clock).
    pub start: SystemTime,
    /// How long the Check took to decide.
    pub duration: Duration,
    /// The decision's id (UUIDv7), joining the response, the log line and the span.
    pub decision_id: String,
    /// What the policy decided; Envoy may have been answered otherwise (see `answered`).
    pub verdict: Verdict,
    /// The stage that decided: trust, rules or default.
    pub stage: Stage,
    /// The rule that decided, if one did.
    pub rule: Option<Arc<str>>,
    /// Why, for operators, with sensitive header values scrubbed.
    pub reason: String,
    /// The caller's transport SPIFFE ID (`spiffe://trust-domain/path`), when the trust stage
    /// established it.
    pub spiffe_id: Option<String>,
    /// The trust domain of `spiffe_id`, e.g. `prod.example.org`.
    pub trust_domain: Option<String>,
    /// The peer principal Envoy reported (`source.principal`); empty without mTLS.
    pub principal: String,
    /// The HTTP method; empty for a network (TCP) check.
    pub method: String,
    /// The request path without its query string; empty for a network check.
    pub path: String,
    /// The `:authority`, in lower case; empty for a network check.
    pub host: String,
    /// The local peer's principal (`destination.principal`): the service being called.
    pub destination: String,
    /// The `x-request-id` header, else the request id Envoy assigned; empty when neither.
    pub request_id: String,
    /// The span's trace id (16 bytes, W3C Trace Context): the caller's, else a new one.
    pub trace_id: [u8; 16],
    /// The span's own id (8 bytes), new for every Check.
    pub span_id: [u8; 8],
    /// The caller's span, when it sent trace context (W3C or B3).
    pub parent: Option<TraceParent>,
    /// Whether the span is exported: the caller's sampled flag, else `sample_ratio`; always
    /// false when OTLP is off.
    pub sampled: bool,
    /// Set when the request was malformed, the Check was not answered with this decision, or
    /// a rule failed to evaluate: the span's status.
    pub error: Option<String>,
    /// Every shadow rule's would-be outcome (errors scrubbed).
    pub shadow: Vec<ShadowLine>,
    /// The revision of the policy that decided.
    pub policy_revision: Arc<str>,
    /// Who originated the request, when the trust stage passed.
    pub provenance: Option<ProvenanceLine>,
    /// Whether Envoy got this decision; `false` when it was answered otherwise first (at the
    /// deadline, or the caller cancelled): then the log's `decision` is `unanswered`.
    pub answered: bool,
}

/// The `decision` of a Check that Envoy did not get this decision for.
pub const UNANSWERED_DECISION: &str = "unanswered";

/// A span attribute's value: OpenTelemetry `string` or `bool` (AnyValue `string_value`,
/// `bool_value`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum SpanValue<'a> {
    /// A string.
    String(Cow<'a, str>),
    /// A bool.
    Bool(bool),
}

impl DecisionRecord {
    /// `timing`: when the Check started and how long it took; `ids`: the span's trace id,
    /// span id and whether it is sampled.
    pub(super) fn new(
        decision: &Decision,
        request: &AuthzRequest,
        redactor: &Redactor,
        problem: Option<&str>,
        (start, duration): (SystemTime, Duration),
        parent: Option<TraceParent>,
        (trace_id, span_id, sampled): ([u8; 16], [u8; 8], bool),
    ) -> Self {
        let http = request.http.as_ref();
        let error = if let Some(problem) = problem {
            Some(problem.to_owned())
        } else if decision.failures.is_empty() {
            None
        } else {
            let text = decision
                .failures
                .iter()
                .map(|f| format!("rule '{}' failed to evaluate: {}", f.rule, f.error))
                .collect::<Vec<_>>()
                .join("; ");
            Some(redactor.scrub(&text, request).into_owned())
        };
        Self {
            start,
            duration,
            decision_id: decision.id.clone(),
            verdict: decision.verdict,
            stage: decision.stage,
            rule: decision.rule.clone(),
            reason: redactor.scrub(&decision.reason, request).into_owned(),
            spiffe_id: decision
                .identity
                .as_ref()
                .map(|id| id.transport.spiffe_id.as_str().to_owned()),
            trust_domain: decision
                .identity
                .as_ref()
                .map(|id| id.transport.spiffe_id.trust_domain().to_owned()),
            provenance: decision.identity.as_ref().map(ProvenanceLine::of),
            principal: request.source.principal.clone(),
            method: http.map(|h| h.method.clone()).unwrap_or_default(),
            path: http
                .map(|h| h.path_without_query().to_owned())
                .unwrap_or_default(),
            host: http.map(|h| h.host.clone()).unwrap_or_default(),
            destination: request.destination.principal.clone(),
            request_id: http
                .and_then(|h| {
                    h.header("x-request-id")
                        .or((!h.id.is_empty()).then_some(h.id.as_str()))
                })
                .unwrap_or_default()
                .to_owned(),
            trace_id,
            span_id,
            parent,
            sampled,
            error,
            shadow: decision
                .shadow
                .iter()
                .map(|s| ShadowLine {
                    rule: Arc::clone(&s.rule),
                    effect: s.effect.as_str(),
                    matched: s.matched,
                    error: s
                        .error
                        .as_deref()
                        .map(|e| redactor.scrub(e, request).into_owned()),
                })
                .collect(),
            policy_revision: Arc::clone(&decision.policy_revision),
            answered: !problem.is_some_and(|p| p.contains(super::UNANSWERED)),
        }
    }

    /// What the log and span say was decided: the verdict, or `unanswered`.
    fn decision(&self) -> &'static str {
        if self.answered {
            self.verdict.as_str()
        } else {
            UNANSWERED_DECISION
        }
    }

    /// The `authz.check` span's attributes, in order (docs/audit.md "Spans"): what
    /// [`DecisionRecord::to_span`] and the OTLP encoder both write.
    pub(crate) fn span_attributes(&self, mut attribute: impl FnMut(&'static str, SpanValue<'_>)) {
        use SpanValue::{Bool, String as Text};
        let mut text = |key, value: &str| attribute(key, Text(Cow::Borrowed(value)));
        text("authz.decision", self.decision());
        text("authz.stage", self.stage.as_str());
        text("authz.rule", self.rule.as_deref().unwrap_or(""));
        text("authz.reason", &self.reason);
        text("authz.decision_id", &self.decision_id);
        text("authz.policy_revision", &self.policy_revision);
        text("peer.principal", &self.principal);
        text("destination.principal", &self.destination);
        text("http.request.method", &self.method);
        text("url.path", &self.path);
        text("server.address", &self.host);
        text("request.id", &self.request_id);
        let shadow: Vec<&str> = self
            .shadow
            .iter()
            .filter(|s| s.matched)
            .map(|s| &*s.rule)
            .collect();
        if !shadow.is_empty() {
            attribute("authz.shadow", Text(Cow::Owned(shadow.join(","))));
        }
        if !self.answered {
            attribute(
                "authz.would_decide",
                Text(Cow::Borrowed(self.verdict.as_str())),
            );
        }
        if let Some(provenance) = &self.provenance {
            attribute(
                "origin.spiffe_id",
                Text(Cow::Borrowed(&provenance.origin_spiffe_id)),
            );
            attribute("origin.via", Text(Cow::Borrowed(provenance.origin_via)));
            if !provenance.proxy_chain.is_empty() {
                attribute(
                    "proxy_chain",
                    Text(Cow::Owned(provenance.proxy_chain.join(","))),
                );
            }
            if provenance.xfcc_spoofed {
                attribute("xfcc.spoofed", Bool(true));
            }
            if let Some(id) = &provenance.workload_spiffe_id {
                attribute("workload.spiffe_id", Text(Cow::Borrowed(id)));
            }
            if let Some(verified) = provenance.workload_verified {
                attribute("workload.verified", Bool(verified));
            }
            if let Some(error) = &provenance.workload_error {
                attribute("workload.error", Text(Cow::Borrowed(error)));
            }
            if let Some(bound) = provenance.identity_bound {
                attribute("identity.bound", Bool(bound));
            }
        }
        if let (Some(id), Some(td)) = (&self.spiffe_id, &self.trust_domain) {
            attribute("spiffe.id", Text(Cow::Borrowed(id)));
            attribute("spiffe.trust_domain", Text(Cow::Borrowed(td)));
        }
    }

    /// The `authz.check` span (kind SERVER), child of the caller's span when there is one.
    pub fn to_span(&self, scope: &InstrumentationScope) -> SpanData {
        let trace_state = self
            .parent
            .as_ref()
            .and_then(|p| p.trace_state.parse::<TraceState>().ok())
            .unwrap_or_default();
        let mut attributes = Vec::with_capacity(20);
        self.span_attributes(|key, value| {
            attributes.push(match value {
                SpanValue::String(text) => KeyValue::new(key, text.into_owned()),
                SpanValue::Bool(flag) => KeyValue::new(key, flag),
            });
        });
        SpanData {
            span_context: SpanContext::new(
                TraceId::from_bytes(self.trace_id),
                SpanId::from_bytes(self.span_id),
                TraceFlags::SAMPLED,
                false,
                trace_state,
            ),
            parent_span_id: self
                .parent
                .as_ref()
                .map_or(SpanId::INVALID, |p| SpanId::from_bytes(p.span_id)),
            parent_span_is_remote: self.parent.is_some(),
            span_kind: SpanKind::Server,
            name: Cow::Borrowed("authz.check"),
            start_time: self.start,
            end_time: self.start + self.duration,
            attributes,
            dropped_attributes_count: 0,
            events: SpanEvents::default(),
            links: SpanLinks::default(),
            // A deny is a normal outcome: status stays unset unless something failed.
            status: match &self.error {
                Some(message) => Status::error(message.clone()),
                None => Status::Unset,
            },
            instrumentation_scope: scope.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::{JwtSvid, SpiffeId};
    use crate::policy::Identities;
    use crate::trust::{Provenance, Workload};

    const PAYMENTS: &str = "spiffe://prod.example.org/ns/shop/sa/payments";
    const FRONTEND: &str = "spiffe://prod.example.org/ns/shop/sa/frontend";

    fn record(workload: Workload) -> DecisionRecord {
        let id = |s: &str| SpiffeId::parse(s).unwrap_or_else(|e| panic!("{e}"));
        let decision = Decision {
            id: "d1".into(),
            verdict: Verdict::Deny,
            stage: Stage::Rules,
            rule: Some(Arc::from("deny-relay")),
            reason: "deny rule 'deny-relay' matched".into(),
            http_status: 403,
            identity: Some(Identities {
                transport: crate::trust::VerifiedPeer {
                    spiffe_id: id(PAYMENTS),
                    svid: None,
                },
                provenance: Provenance::NONE,
                workload,
            }),
            headers: Arc::from([]),
            response_headers: Arc::from([]),
            remove_headers: Arc::from([]),
            failures: Vec::new(),
            shadow: Vec::new(),
            policy_revision: Arc::from("abc"),
        };
        DecisionRecord::new(
            &decision,
            &AuthzRequest::default(),
            &Redactor::default(),
            None,
            (SystemTime::UNIX_EPOCH, Duration::from_micros(5)),
            None,
            ([1; 16], [2; 8], true),
        )
    }

    fn span_attributes(record: &DecisionRecord) -> Vec<(String, String)> {
        record
            .to_span(&InstrumentationScope::builder("t").build())
            .attributes
            .iter()
            .map(|kv| (kv.key.to_string(), kv.value.to_string()))
            .collect()
    }

    #[test]
    fn both_identities_reach_the_log_line_and_the_span_but_never_the_token() {
        let svid = JwtSvid {
            spiffe_id: SpiffeId::parse(FRONTEND).unwrap_or_else(|e| panic!("{e}")),
            audience: vec!["orders".into()],
            expires_at: 1,
            valid_from: None,
            claims: serde_json::Map::new(),
        };
        let relayed = record(Workload::Verified(Arc::new(svid)));
        let mut line = Vec::new();
        relayed.write_json_line(&mut line);
        let line: serde_json::Value = serde_json::from_slice(&line).unwrap_or_default();
        assert_eq!(line["spiffe_id"], PAYMENTS);
        assert_eq!(line["origin_spiffe_id"], PAYMENTS);
        assert_eq!(line["workload_spiffe_id"], FRONTEND);
        assert_eq!(line["workload_verified"], true);
        assert_eq!(line["identity_bound"], false);
        let attributes = span_attributes(&relayed);
        for (key, value) in [
            ("spiffe.id", PAYMENTS),
            ("workload.spiffe_id", FRONTEND),
            ("workload.verified", "true"),
            ("identity.bound", "false"),
            ("origin.via", "mtls"),
        ] {
            assert!(
                attributes.contains(&(key.to_owned(), value.to_owned())),
                "{key}={value} in {attributes:?}"
            );
        }
        // A rejected token: its error, not its claims.
        let rejected = record(Workload::Invalid(crate::identity::JwtSvidError::Expired(7)));
        let mut line = Vec::new();
        rejected.write_json_line(&mut line);
        let line: serde_json::Value = serde_json::from_slice(&line).unwrap_or_default();
        assert_eq!(line["workload_verified"], false);
        assert!(line.get("workload_spiffe_id").is_none());
        assert_eq!(
            line["workload_error"],
            "the token expired at 7 (Unix seconds)"
        );
        // Without workload_tokens, no workload fields at all.
        let mut line = Vec::new();
        record(Workload::Unchecked).write_json_line(&mut line);
        let line: serde_json::Value = serde_json::from_slice(&line).unwrap_or_default();
        assert!(line.get("workload_verified").is_none(), "{line}");
        assert!(
            !span_attributes(&record(Workload::Unchecked))
                .iter()
                .any(|(k, _)| k.starts_with("workload.") || k == "identity.bound")
        );
    }
}
