//! The policy file schema (YAML). Strict: an unknown key is an error, so a typo cannot
//! silently disable a rule.

use std::collections::BTreeMap;

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
    #[serde(default)]
    pub headers: Option<BTreeMap<String, String>>,
    #[serde(default)]
    pub status: Option<u16>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(super) enum Effect {
    Allow,
    Deny,
}
