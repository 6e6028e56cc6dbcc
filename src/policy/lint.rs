//! Lints: what loads but is almost certainly a mistake, reported by `warrant check` as
//! `FILE:LINE: rule 'ID': warning: …` (and logged by `serve`). Few and certain, never a false
//! alarm:
//! - a rule whose expression is the same as an earlier enforced rule's of the same effect
//!   (spacing, comments and redundant parentheses aside): the earlier one always decides
//!   first, so the later one never does;
//! - a rule whose expression references nothing (`true`, `1 == 1`): it matches every request
//!   or none.

use std::collections::HashMap;
use std::path::PathBuf;

use super::PolicyError;
use super::file::{Effect, Mode};

/// What a lint needs to know of one compiled rule.
#[derive(Debug)]
pub struct LintedRule {
    pub file: PathBuf,
    /// The line of its `when`.
    pub line: u64,
    pub id: String,
    pub effect: Effect,
    pub mode: Mode,
    pub canonical: String,
    pub constant: bool,
}

/// The warnings for `rules`, in policy order.
pub fn lint(rules: &[LintedRule]) -> Vec<PolicyError> {
    let mut warnings = Vec::new();
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
