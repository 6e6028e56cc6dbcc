//! The policy file schema (YAML). Strict: an unknown key is an error, so a typo cannot
//! silently disable a rule.

use std::collections::{BTreeMap, HashMap};

use serde::Deserialize;
use serde_saphyr::Spanned;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct PolicyFile {
    #[serde(default)]
    pub trust: Option<Spanned<TrustSection>>,
    /// Operator data: top-level key → any YAML value, merged into `data`.
    #[serde(default)]
    pub data: Option<super::data::Section>,
    /// YAML or JSON files of data, relative to this file.
    #[serde(default)]
    pub data_files: Vec<Spanned<String>>,
    #[serde(default)]
    pub rules: Vec<RuleSpec>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct TrustSection {
    pub trust_domains: Vec<String>,
    /// Trust domain → its bundle: a path (relative to the policy file), or a map with the path,
    /// its format and intermediate CAs.
    #[serde(default)]
    pub bundles: BTreeMap<String, BundleSpec>,
    /// A duration such as `24h` or `90m`.
    #[serde(default)]
    pub max_svid_lifetime: Option<String>,
    #[serde(default)]
    pub require_certificate: bool,
    /// Revoked SPIFFE IDs (exact or glob) and certificate serial numbers (hex).
    #[serde(default)]
    pub revoked: Vec<String>,
    /// Files of such entries, one per line (relative to the policy file), re-read on change.
    #[serde(default)]
    pub revoked_files: Vec<String>,
    /// The mTLS peers (SPIFFE IDs, exact or glob) whose `x-forwarded-client-cert` is believed.
    #[serde(default)]
    pub forwarders: Vec<String>,
    /// JWT-SVIDs in the requests: where, for which audiences, and whether required.
    #[serde(default)]
    pub workload_tokens: Option<WorkloadTokensSpec>,
    /// Where bundles not given as files come from: `{workload_api: unix:///…}`.
    #[serde(default)]
    pub bundles_from: Option<BundlesFromSpec>,
}

/// `trust.bundles_from`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct BundlesFromSpec {
    /// A SPIRE agent's Workload API endpoint (`unix:///run/spire/agent.sock`, `tcp://…`).
    pub workload_api: String,
}

/// `trust.workload_tokens`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct WorkloadTokensSpec {
    /// The header holding the token; `authorization` (with `Bearer `) by default.
    #[serde(default)]
    pub header: Option<String>,
    #[serde(default)]
    pub audiences: Vec<String>,
    /// A duration such as `30s`.
    #[serde(default)]
    pub leeway: Option<String>,
    #[serde(default)]
    pub required: bool,
}

/// `trust.bundles.<trust domain>`: `path/to/bundle.pem`, or
/// `{path: …, format: pem|spiffe, intermediates: …}`.
#[derive(Debug)]
pub(super) enum BundleSpec {
    Path(String),
    Detailed(DetailedBundle),
}

impl<'de> Deserialize<'de> for BundleSpec {
    /// A string or a map, with the map's own errors (an unknown key is named), which
    /// `#[serde(untagged)]` would hide behind "did not match any variant".
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Spec;
        impl<'de> serde::de::Visitor<'de> for Spec {
            type Value = BundleSpec;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a bundle path, or a map with path, format and intermediates")
            }

            fn visit_str<E: serde::de::Error>(self, path: &str) -> Result<BundleSpec, E> {
                Ok(BundleSpec::Path(path.to_owned()))
            }

            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                map: A,
            ) -> Result<BundleSpec, A::Error> {
                DetailedBundle::deserialize(serde::de::value::MapAccessDeserializer::new(map))
                    .map(BundleSpec::Detailed)
            }
        }
        deserializer.deserialize_any(Spec)
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct DetailedBundle {
    /// The bundle file; absent when, with `bundles_from`, only `intermediates` are given.
    #[serde(default)]
    pub path: Option<String>,
    /// `pem` or `spiffe`; by default `.json` files are SPIFFE bundles, others PEM.
    #[serde(default)]
    pub format: Option<String>,
    /// PEM intermediate CAs (relative to the policy file).
    #[serde(default)]
    pub intermediates: Option<String>,
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
    /// `enforce` (the default) or `audit`: a shadow rule, recorded but never deciding.
    #[serde(default)]
    pub mode: Mode,
    pub when: Spanned<String>,
    /// Header name (with where it is written) → value: added upstream by an allow rule, to
    /// the denied response by a deny rule.
    #[serde(default)]
    pub headers: Option<HeaderMap>,
    /// Allow rules: headers added to the response the client receives.
    #[serde(default)]
    pub response_headers: Option<HeaderMap>,
    /// Allow rules: request headers removed before the upstream sees them.
    #[serde(default)]
    pub remove_headers: Option<Spanned<Vec<Spanned<String>>>>,
    #[serde(default)]
    pub status: Option<Spanned<u16>>,
}

/// Header names (with where each is written) and values, as a rule writes them.
pub(super) type HeaderMap = Spanned<HashMap<Spanned<String>, String>>;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(super) enum Effect {
    Allow,
    Deny,
}

impl Effect {
    /// The verdict a matching rule of this effect gives.
    pub(super) fn verdict(self) -> super::Verdict {
        match self {
            Effect::Allow => super::Verdict::Allow,
            Effect::Deny => super::Verdict::Deny,
        }
    }
}

/// Whether a rule decides (`enforce`) or is only evaluated and recorded (`audit`, a shadow
/// rule: how a new rule is rolled out safely).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(super) enum Mode {
    #[default]
    Enforce,
    Audit,
}

/// The id of the rule whose text holds the position `line`:`column` of `text`, if any: a
/// schema error there belongs to that rule. Read leniently (unknown keys ignored, repeated
/// keys allowed), since `text` did not parse strictly; when even that fails (a YAML syntax
/// error), the text itself is searched for the nearest rule id above the error.
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
    let lenient = || {
        serde_saphyr::options! {
            duplicate_keys: serde_saphyr::DuplicateKeyPolicy::LastWins,
            strict_booleans: true,
        }
    };
    let Ok(rules) = serde_saphyr::from_str_with_options::<Rules>(text, lenient()) else {
        return rule_above(text, line);
    };
    let at = (line, column);
    let position = |l: &serde_saphyr::Location| (l.line(), l.column());
    let rule = rules
        .rules
        .iter()
        .rev()
        .find(|rule| position(&rule.referenced) <= at)?;
    // The rule's text ends where the next top-level key (after the rule) begins.
    let top_level: std::collections::HashMap<Spanned<String>, serde::de::IgnoredAny> =
        serde_saphyr::from_str_with_options(text, lenient()).ok()?;
    let ends_before = top_level
        .keys()
        .map(|key| position(&key.referenced))
        .filter(|&key| key > position(&rule.referenced))
        .min();
    match ends_before {
        Some(end) if end <= at => None,
        _ => rule.value.id.clone(),
    }
}

/// For text that does not parse: the id of the last rule written above `line`
/// (`- id: x`, `id: x`, `{id: x, ...`, `"id": "x"`), unless a top-level key lies between.
fn rule_above(text: &str, line: u64) -> Option<String> {
    let lines = usize::try_from(line).ok()?;
    let mut id = None;
    for text in text.lines().take(lines) {
        let key_at_column_0 = text.starts_with(|c: char| c.is_ascii_alphabetic());
        if key_at_column_0 {
            id = None;
        }
        let trimmed = text.trim_start().trim_start_matches(['-', '{', ' ']);
        let value = trimmed
            .strip_prefix("id:")
            .or_else(|| trimmed.strip_prefix("\"id\":"));
        if let Some(value) = value {
            let value = value.split([',', '}']).next().unwrap_or("").trim();
            let value = value.trim_matches(|c| c == '"' || c == '\'');
            if !value.is_empty() {
                id = Some(value.to_owned());
            }
        }
    }
    id
}
