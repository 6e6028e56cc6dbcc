//! The outcome of one check: the single value every consumer (the gRPC response, `warrant
//! eval`, and later spans, decision logs and metrics) is derived from.

use std::fmt;
use std::sync::Arc;

pub use crate::trust::Identities;

/// Allow or deny.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Verdict {
    /// The request may proceed.
    Allow,
    /// The request is refused.
    Deny,
}

/// Which stage made the decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Stage {
    /// Transport trust: the caller is not a trusted SPIFFE workload.
    Trust,
    /// A deny rule matched or failed, or an allow rule matched.
    Rules,
    /// No allow rule matched.
    Default,
}

impl Stage {
    /// The stage's name in logs, spans and metrics: `trust`, `rules` or `default`.
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Trust => "trust",
            Stage::Rules => "rules",
            Stage::Default => "default",
        }
    }
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Verdict {
    /// The verdict's name in logs, spans and metrics: `allow` or `deny`.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Allow => "allow",
            Verdict::Deny => "deny",
        }
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A rule whose expression failed on this request, kept for the audit trail: a failing deny
/// rule denied, a failing allow rule did not match.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleFailure {
    /// The id of the rule that failed.
    pub rule: Arc<str>,
    /// Why, without request values: safe for spans and logs.
    pub error: String,
    /// The engine's full message, which may quote request values: for `warrant eval` only.
    pub detail: String,
}

/// What a shadow rule (`mode: audit`) would have done: evaluated for every request that
/// reaches the rules stage, never deciding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShadowResult {
    /// The shadow rule's id.
    pub rule: Arc<str>,
    /// What the rule would do when it matches.
    pub effect: Verdict,
    /// Whether the rule matched this request.
    pub matched: bool,
    /// Why it failed to evaluate (then `matched` is false), without request values.
    pub error: Option<String>,
    /// The engine's full message, for `warrant eval` only.
    pub detail: Option<String>,
}

/// One authorization decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// Unique id (UUIDv7) joining the response, logs and traces of this decision.
    pub id: String,
    /// Allow or deny.
    pub verdict: Verdict,
    /// The stage that decided.
    pub stage: Stage,
    /// The rule that decided, if one did.
    pub rule: Option<Arc<str>>,
    /// Human-readable why, for operators (never sent to the caller).
    pub reason: String,
    /// HTTP status for a deny (200 on allow).
    pub http_status: u16,
    /// The identities the trust stage established: when it passed, and when only a required
    /// workload token failed it (so the record still names the transport identity).
    pub identity: Option<Identities>,
    /// Extra upstream headers of the allowing rule.
    pub headers: Arc<[(String, String)]>,
    /// Headers for the response the client receives: the allowing rule's
    /// `response_headers`, or the denying rule's `headers`.
    pub response_headers: Arc<[(String, String)]>,
    /// Request headers the allowing rule removes before the upstream sees them.
    pub remove_headers: Arc<[String]>,
    /// Rules that failed to evaluate for this request.
    pub failures: Vec<RuleFailure>,
    /// Every shadow rule's outcome, in policy order (empty when the policy has none or the
    /// request did not reach the rules stage).
    pub shadow: Vec<ShadowResult>,
    /// The revision of the policy that decided ([`super::Policy::revision`]).
    pub policy_revision: Arc<str>,
}

impl Decision {
    /// The ids of the shadow rules that matched.
    pub fn shadow_matches(&self) -> impl Iterator<Item = &ShadowResult> {
        self.shadow.iter().filter(|s| s.matched)
    }
}

impl Decision {
    /// Whether the verdict is allow.
    pub fn is_allowed(&self) -> bool {
        self.verdict == Verdict::Allow
    }
}
