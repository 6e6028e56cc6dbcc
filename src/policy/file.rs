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

/// The id of the rule whose text holds the position `line`:`column` of `text`, if any: a
/// schema error there belongs to that rule. Read leniently (unknown keys ignored, repeated
/// keys allowed), since `text` did not parse strictly.
pub(super) fn rule_at(text: &str, line: u64, column: u64) -> Option<String> {
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
    let options = serde_saphyr::options! {
        duplicate_keys: serde_saphyr::DuplicateKeyPolicy::LastWins,
    };
    let rules: Rules = serde_saphyr::from_str_with_options(text, options).ok()?;
    let rule = rules
        .rules
        .iter()
        .rev()
        .find(|rule| (rule.referenced.line(), rule.referenced.column()) <= (line, column))?;
    // The rule's text runs until the next top-level key (a line that starts in column 0 with
    // anything but a sequence dash or a comment).
    let first = usize::try_from(rule.referenced.line()).ok()?;
    let last = usize::try_from(line).ok()?;
    let top_level_between = text
        .lines()
        .skip(first)
        .take(last.saturating_sub(first))
        .any(|text| text.starts_with(|c: char| !c.is_whitespace() && c != '-' && c != '#'));
    if top_level_between {
        None
    } else {
        rule.value.id.clone()
    }
}
