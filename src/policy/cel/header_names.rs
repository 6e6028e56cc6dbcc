//! Header names in rules: `request.headers` has lower-case names that are HTTP tokens, so a
//! name with capitals, or one no request can carry, never matches a key. Used by the
//! reference checker ([`super::references`]) wherever a rule names a header.

use cel::IdedExpr;
use cel::common::ast::{Expr, operators};

use super::CompileError;
use super::literals::{literal_strings, string_literal};

/// In a macro over `request.headers` whose key variable is `key`: a literal with capitals
/// compared with the key (`k == "X-A"`, `k in ["X-A"]`, `k.startsWith("X-")`) never matches.
pub(super) fn compared_header_names(expr: &IdedExpr, key: &str) -> Result<(), CompileError> {
    let is_key = |e: &IdedExpr| matches!(&e.expr, Expr::Ident(name) if name == key);
    let literal = |e: &IdedExpr| string_literal(e).map(str::to_owned);
    match &expr.expr {
        Expr::Call(call) => {
            // Names compared whole, and fragments of names.
            let (whole, fragments): (Vec<String>, Vec<String>) =
                match (call.func_name.as_str(), &call.target, &call.args[..]) {
                    (operators::EQUALS | operators::NOT_EQUALS, None, [a, b]) if is_key(a) => {
                        (literal(b).into_iter().collect(), Vec::new())
                    }
                    (operators::EQUALS | operators::NOT_EQUALS, None, [a, b]) if is_key(b) => {
                        (literal(a).into_iter().collect(), Vec::new())
                    }
                    (operators::IN, None, [a, collection])
                        if is_key(a) && string_literal(collection).is_none() =>
                    {
                        (literal_strings(collection), Vec::new())
                    }
                    ("startsWith" | "endsWith" | "contains", Some(target), [arg])
                        if is_key(target) =>
                    {
                        (Vec::new(), literal(arg).into_iter().collect())
                    }
                    ("matches", Some(target), [pattern]) if is_key(target) => {
                        match literal(pattern) {
                            Some(pattern) if pattern_needs_capitals(&pattern) => {
                                return Err(CompileError::HeaderNameCase { written: pattern });
                            }
                            _ => (Vec::new(), Vec::new()),
                        }
                    }
                    _ => (Vec::new(), Vec::new()),
                };
            for name in &whole {
                header_key(name)?;
            }
            for fragment in &fragments {
                if fragment.contains(|c: char| c != ':' && !crate::header::is_name_char(c)) {
                    return Err(CompileError::NotAHeaderName {
                        written: fragment.clone(),
                    });
                }
                lower_case_header(fragment)?;
            }
            if let Some(target) = &call.target {
                compared_header_names(target, key)?;
            }
            for arg in &call.args {
                compared_header_names(arg, key)?;
            }
            Ok(())
        }
        Expr::Comprehension(comp) => {
            compared_header_names(&comp.iter_range, key)?;
            compared_header_names(&comp.accu_init, key)?;
            // An inner macro that binds the same name hides the key in its body.
            let rebinds = comp.iter_var == key
                || comp.iter_var2.as_deref() == Some(key)
                || comp.accu_var == key;
            if !rebinds {
                for part in [&comp.loop_cond, &comp.loop_step, &comp.result] {
                    compared_header_names(part, key)?;
                }
            }
            Ok(())
        }
        Expr::Select(select) => compared_header_names(&select.operand, key),
        Expr::List(list) => list
            .elements
            .iter()
            .try_for_each(|e| compared_header_names(e, key)),
        _ => Ok(()),
    }
}

/// Whether a regular expression only matches text with capitals: an ASCII capital outside
/// escapes (`\S`, `\p{Lu}`) and character classes (`[A-Za-z]`), and no `(?i)`.
fn pattern_needs_capitals(pattern: &str) -> bool {
    // An alternation may match through a branch without capitals.
    if pattern.contains("(?i") || pattern.contains('|') {
        return false;
    }
    let mut chars = pattern.chars();
    let mut in_class = false;
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                if let Some('p' | 'P') = chars.next()
                    && chars.clone().next() == Some('{')
                {
                    chars.by_ref().find(|&c| c == '}');
                }
            }
            '[' => in_class = true,
            ']' => in_class = false,
            c if c.is_ascii_uppercase() && !in_class => return true,
            _ => {}
        }
    }
    false
}

/// A header name used as a key of `request.headers`: it must be one a request can carry,
/// written in lower case (Envoy hands header names over in lower case), or the lookup would
/// silently never match.
pub(super) fn header_key(name: &str) -> Result<(), CompileError> {
    // Pseudo-headers (`:authority`, `:path`) are keys too.
    let token = name.strip_prefix(':').unwrap_or(name);
    if crate::header::check_name(token).is_err() {
        return Err(CompileError::NotAHeaderName {
            written: name.to_owned(),
        });
    }
    lower_case_header(name)
}

/// Header names reach rules in lower case (HTTP/2 and Envoy lower-case them), so a name with
/// capitals would silently never match.
fn lower_case_header(name: &str) -> Result<(), CompileError> {
    if name.bytes().any(|b| b.is_ascii_uppercase()) {
        return Err(CompileError::HeaderNameCase {
            written: name.to_owned(),
        });
    }
    Ok(())
}
