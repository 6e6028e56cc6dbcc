//! The policy file schema (YAML). Strict: an unknown key is an error, so a typo cannot
//! silently disable a rule.

use std::collections::{BTreeMap, HashMap};

use serde::Deserialize;
use serde_saphyr::Spanned;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct PolicyFile {
    #[serde(default)]
    pub trust: Option<Spanned<TrustSection>>,
    #[serde(default)]
    pub rules: Vec<RuleSpec>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct TrustSection {
    pub trust_domains: Vec<String>,
    /// Trust domain → PEM bundle path, relative to the policy file.
    #[serde(default)]
    pub bundles: BTreeMap<String, String>,
    /// A duration such as `24h` or `90m`.
    #[serde(default)]
    pub max_svid_lifetime: Option<String>,
    #[serde(default)]
    pub require_certificate: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RuleSpec {
    pub id: Spanned<String>,
    /// For humans reading the policy (and, later, `warrant explain`).
    #[serde(default)]
    #[allow(dead_code)]
    pub description: String,
    pub effect: Effect,
    pub when: Spanned<String>,
    /// Header name (with where it is written) → value.
    #[serde(default)]
    pub headers: Option<HashMap<Spanned<String>, String>>,
    #[serde(default)]
    pub status: Option<u16>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(super) enum Effect {
    Allow,
    Deny,
}

/// The id of the rule whose text holds `line` of `text`, if any: a schema error on that line
/// belongs to that rule. Read leniently, since `text` did not parse strictly.
pub(super) fn rule_at_line(text: &str, line: u64) -> Option<String> {
    #[derive(Deserialize)]
    struct Rules {
        #[serde(default)]
        rules: Vec<Spanned<RuleHead>>,
    }
    #[derive(Deserialize)]
    struct RuleHead {
        #[serde(default)]
        id: Option<String>,
    }
    let rules: Rules = serde_saphyr::from_str(text).ok()?;
    let rule = rules
        .rules
        .iter()
        .rev()
        .find(|rule| rule.referenced.line() <= line)?;
    let start = rule.referenced.line();
    let indent = usize::try_from(rule.referenced.column().saturating_sub(1)).ok()?;
    // Inside the rule while every line since its start is indented at least as deeply as its
    // first key (a flow-style rule is on one line).
    let first = usize::try_from(start).ok()?;
    let last = usize::try_from(line).ok()?;
    let inside = text
        .lines()
        .enumerate()
        .skip(first)
        .take(last.saturating_sub(first))
        .all(|(_, text)| {
            let trimmed = text.trim_start();
            trimmed.is_empty() || trimmed.starts_with('#') || text.len() - trimmed.len() >= indent
        });
    if inside { rule.value.id.clone() } else { None }
}
