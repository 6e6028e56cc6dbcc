//! One rule: compiling it from its spec (id, `when`, effect, mode, headers, status).

use std::sync::Arc;

use serde_saphyr::Spanned;

use super::DEFAULT_DENY_STATUS;
use super::cel::{CelEnv, Expression};
use super::file::{Effect, HeaderMap, Mode, RuleSpec};
use crate::header;

/// A compiled rule.
#[derive(Debug)]
pub(super) struct Rule {
    pub id: Arc<str>,
    pub expression: Expression,
    /// Allow: added upstream.
    pub headers: Arc<[(String, String)]>,
    /// Added to the response the client receives (allow: `response_headers`; deny: `headers`).
    pub response_headers: Arc<[(String, String)]>,
    /// Allow: removed from the request before the upstream sees it.
    pub remove_headers: Arc<[String]>,
    pub status: u16,
    /// The decision's reason when the rule matches (`allow rule 'ID' matched`), written once.
    pub matched: String,
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
    let only_allow = |field: &str, line: u64| {
        Err((
            line,
            format!(
                "`{field}` is only valid on allow rules (a deny rule sets the denied response's headers with `headers`)"
            ),
        ))
    };
    let (headers, response_headers, remove_headers) = match spec.effect {
        Effect::Allow => (
            header_list(spec.headers, id_line, |name, value| {
                header::check_upstream(name, Some(value))
            })?,
            header_list(spec.response_headers, id_line, |name, value| {
                header::check_response(name, value, false)
            })?,
            remove_list(spec.remove_headers)?,
        ),
        Effect::Deny => {
            if let Some(field) = &spec.response_headers {
                return only_allow("response_headers", field.referenced.line());
            }
            if let Some(field) = &spec.remove_headers {
                return only_allow("remove_headers", field.referenced.line());
            }
            let denied = header_list(spec.headers, id_line, |name, value| {
                header::check_response(name, value, true)
            })?;
            (Vec::new(), denied, Vec::new())
        }
    };
    if let Some((name, _)) = headers
        .iter()
        .find(|(name, _)| remove_headers.iter().any(|removed| removed == name))
    {
        return Err((
            id_line,
            format!("header {name:?} is both set and removed; keep one"),
        ));
    }
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
            matched: format!(
                "{} rule '{}' matched",
                spec.effect.verdict().as_str(),
                spec.id.value
            ),
            id: Arc::from(spec.id.value),
            expression,
            headers: headers.into(),
            response_headers: response_headers.into(),
            remove_headers: remove_headers.into(),
            status,
        },
    ))
}

/// A rule's header map, in file order, each header checked with `check` and all together
/// with [`header::check_set`].
fn header_list(
    map: Option<HeaderMap>,
    id_line: u64,
    check: impl Fn(&str, &str) -> Result<(), header::HeaderError>,
) -> Result<Vec<(String, String)>, (u64, String)> {
    let mut headers: Vec<(Spanned<String>, String)> = map
        .map(|m| m.value)
        .unwrap_or_default()
        .into_iter()
        .collect();
    headers.sort_by_key(|(name, _)| (name.referenced.line(), name.referenced.column()));
    for (name, value) in &headers {
        check(&name.value, value).map_err(|e| (name.referenced.line(), e.to_string()))?;
    }
    header::check_set(
        headers
            .iter()
            .map(|(name, value)| (name.value.as_str(), value.as_str())),
    )
    .map_err(|e| (id_line, e.to_string()))?;
    Ok(headers
        .into_iter()
        .map(|(name, value)| (name.value, value))
        .collect())
}

/// A rule's `remove_headers`, each name checked.
fn remove_list(list: Option<Spanned<Vec<Spanned<String>>>>) -> Result<Vec<String>, (u64, String)> {
    let mut names: Vec<String> = Vec::new();
    for name in list.map(|l| l.value).unwrap_or_default() {
        header::check_removable(&name.value)
            .map_err(|e| (name.referenced.line(), e.to_string()))?;
        if names.contains(&name.value) {
            return Err((
                name.referenced.line(),
                format!("header {:?} is listed twice", name.value),
            ));
        }
        names.push(name.value);
        if names.len() > header::MAX_SET {
            return Err((
                name.referenced.line(),
                format!("a rule removes at most {} headers", header::MAX_SET),
            ));
        }
    }
    Ok(names)
}
