//! Lints: what loads but is almost certainly a mistake, reported by `warrant check` as
//! `FILE:LINE: rule 'ID': warning: …` (and logged by `serve`). Few and certain, never a false
//! alarm:
//! - a rule whose expression is the same as an earlier enforced rule's of the same effect
//!   (spacing, comments and redundant parentheses aside): the earlier one always decides
//!   first, so the later one never does;
//! - a rule whose expression references nothing (`true`, `1 == 1`): it matches every request
//!   or none;
//! - a rule reading `workload` without `trust.workload_tokens` (never verified);
//! - `trust.workload_tokens` with no JWT authority anywhere (every token fails);
//! - a forwarder entry that can never be a peer (a trust domain's own ID) or that makes every
//!   workload of a trust domain a forwarder (`spiffe://td/**`).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::PolicyError;
use super::file::{Effect, Mode};
use crate::trust::TrustPolicy;

/// What a lint needs to know of one compiled rule.
#[derive(Debug)]
pub(super) struct LintedRule {
    pub file: PathBuf,
    /// The line of its `when`.
    pub line: u64,
    pub id: String,
    pub effect: Effect,
    pub mode: Mode,
    pub canonical: String,
    pub constant: bool,
    /// Whether it references `workload`.
    pub uses_workload: bool,
}

/// The warnings of the `trust` section written at `file:line`.
pub(super) fn trust_warnings(trust: &TrustPolicy, file: &Path, line: u64) -> Vec<PolicyError> {
    let warn = |message: String| PolicyError {
        file: file.to_path_buf(),
        line: Some(line),
        rule: None,
        message: format!("warning: {message}"),
    };
    let mut warnings = Vec::new();
    if trust.workload_tokens().is_some()
        && trust.workload_api().is_none()
        && trust
            .bundle_summaries()
            .iter()
            .all(|b| b.jwt_authorities == 0)
    {
        warnings.push(warn("trust.workload_tokens is set, but no bundle holds a jwt-svid key, so every token fails (unknown_key): give a SPIFFE bundle with the trust domain's JWT authorities, or trust.bundles_from".to_owned()));
    }
    for entry in trust.forwarder_entries() {
        let rest = entry.strip_prefix("spiffe://").unwrap_or(entry);
        let (domain, path) = rest.split_once('/').unwrap_or((rest, ""));
        // Only wildcards (and Istio's `ns`/`sa` keywords): every workload, or every Istio one.
        let every_workload = !path.is_empty()
            && path.contains('*')
            && path
                .split('/')
                .all(|segment| matches!(segment, "*" | "**" | "ns" | "sa"));
        if domain.contains('*') || every_workload {
            warnings.push(warn(format!(
                "trust.forwarders {entry:?} makes every workload of a trust domain a forwarder, so any of them can claim to speak for others: name the gateways"
            )));
        } else if path.is_empty() {
            warnings.push(warn(format!(
                "trust.forwarders {entry:?} is a trust domain's own ID, which no mTLS peer has: name the forwarding workloads (spiffe://{domain}/ns/istio-system/sa/ingressgateway)"
            )));
        } else if !trust.trust_domains().iter().any(|td| td == domain) {
            warnings.push(warn(format!(
                "trust.forwarders {entry:?} is not of a trust domain in trust.trust_domains, so it never matches a trusted peer"
            )));
        }
    }
    warnings
}

/// The warnings for `rules`, in policy order, after those of the trust section.
pub(super) fn lint(
    rules: &[LintedRule],
    mut trust_warnings: Vec<PolicyError>,
    trust: &TrustPolicy,
) -> Vec<PolicyError> {
    let mut warnings = std::mem::take(&mut trust_warnings);
    let mut first: HashMap<(Effect, &str), &LintedRule> = HashMap::new();
    for rule in rules {
        let warn = |message: String| PolicyError {
            file: rule.file.clone(),
            line: Some(rule.line),
            rule: Some(rule.id.clone()),
            message: format!("warning: {message}"),
        };
        if rule.constant {
            warnings.push(warn(
                "the expression references no variable, so it is the same for every request"
                    .to_owned(),
            ));
        }
        if rule.uses_workload && trust.workload_tokens().is_none() {
            warnings.push(warn(
                "the rule reads `workload`, but trust.workload_tokens is not set, so no token is read and workload.verified is always false"
                    .to_owned(),
            ));
        }
        if rule.mode != Mode::Enforce {
            continue;
        }
        match first.get(&(rule.effect, rule.canonical.as_str())) {
            Some(earlier) => warnings.push(warn(format!(
                "the same expression as {} rule '{}' ({}:{}), which is evaluated first: this rule never decides",
                match rule.effect {
                    Effect::Allow => "allow",
                    Effect::Deny => "deny",
                },
                earlier.id,
                earlier.file.display(),
                earlier.line
            ))),
            None => {
                first.insert((rule.effect, rule.canonical.as_str()), rule);
            }
        }
    }
    warnings
}
