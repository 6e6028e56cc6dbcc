//! One rule: compiling it from its spec (id, `when`, effect, mode, headers, status).

use std::sync::Arc;

use serde_saphyr::Spanned;

use super::DEFAULT_DENY_STATUS;
use super::cel::{CelEnv, Expression};
use super::file::{Effect, Mode, RuleSpec};
use crate::header;

/// A compiled rule.
#[derive(Debug)]
pub(super) struct Rule {
    pub id: Arc<str>,
    pub expression: Expression,
    pub headers: Arc<[(String, String)]>,
    pub status: u16,
}

/// Longest rule id, in bytes.
const MAX_RULE_ID: usize = 128;

/// A rule id appears in `FILE:LINE: rule 'ID': …` messages, logs, spans, metrics labels and
/// Envoy's dynamic metadata, so it is one line of printable text without quotes.
pub(super) fn check_rule_id(id: &str) -> Result<(), String> {
    if id.trim().is_empty() {
        return Err("rule id must not be empty".to_owned());
    }
    if id.len() > MAX_RULE_ID {
        return Err(format!(
            "rule id {id:.40?}… is longer than {MAX_RULE_ID} bytes"
        ));
    }
    // Control characters and bidirectional overrides (which make text display in another
    // order than it reads) have no place in an id an operator reads in a log.
    let hidden = |c: char| {
        c.is_control()
            || matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
    };
    if id.trim() != id || id.contains(|c: char| hidden(c) || c == '\'') {
        return Err(format!(
            "rule id {id:?} must be one line of text without quotes or leading/trailing spaces"
        ));
    }
    Ok(())
}

/// Compiles one rule; returns it with its effect and mode, or the line and message of what
/// is wrong.
pub(super) fn compile_rule(
    cel: &mut CelEnv,
    spec: RuleSpec,
) -> Result<(Effect, Mode, Rule), (u64, String)> {
    let id_line = spec.id.referenced.line();
    let Spanned {
        value: when,
        referenced,
        ..
    } = spec.when;
    let expression = cel
        .compile(&when)
        .map_err(|e| (referenced.line(), e.to_string()))?;
    let headers = match (spec.effect, spec.headers) {
        (Effect::Deny, Some(headers)) => {
            return Err((
                headers.referenced.line(),
                "`headers` is only valid on allow rules".to_owned(),
            ));
        }
        (_, headers) => headers.map(|h| h.value).unwrap_or_default(),
    };
    // In file order; every name and value checked as Envoy will receive them.
    let mut headers: Vec<(Spanned<String>, String)> = headers.into_iter().collect();
    headers.sort_by_key(|(name, _)| (name.referenced.line(), name.referenced.column()));
    for (name, value) in &headers {
        header::check_upstream(&name.value, Some(value))
            .map_err(|e| (name.referenced.line(), e.to_string()))?;
    }
    header::check_set(
        headers
            .iter()
            .map(|(name, value)| (name.value.as_str(), value.as_str())),
    )
    .map_err(|e| (id_line, e.to_string()))?;
    let status = match (spec.effect, spec.status) {
        (Effect::Allow, Some(status)) => {
            return Err((
                status.referenced.line(),
                "`status` is only valid on deny rules".to_owned(),
            ));
        }
        (_, Some(status)) if !(400..=599).contains(&status.value) => {
            return Err((
                status.referenced.line(),
                format!(
                    "status {} is not an HTTP error status (400-599)",
                    status.value
                ),
            ));
        }
        (_, status) => status.map_or(DEFAULT_DENY_STATUS, |s| s.value),
    };
    Ok((
        spec.effect,
        spec.mode,
        Rule {
            id: Arc::from(spec.id.value),
            expression,
            headers: headers
                .into_iter()
                .map(|(name, value)| (name.value, value))
                .collect(),
            status,
        },
    ))
}
