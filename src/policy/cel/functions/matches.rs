//! CEL's `matches` (unanchored RE2 syntax), as `text.matches(pattern)` or
//! `matches(text, pattern)`, both strings, exactly like the engine's own — whose version
//! compiles the pattern on every call (~30 µs). Here every literal pattern of the policy is
//! compiled once at load, an invalid one fails the load, and only a pattern computed per
//! request (rare, e.g. from `context`) is compiled per call.

use std::collections::HashMap;
use std::sync::Arc;

use cel::ExecutionError;
use cel::common::types::{CelBool, CelString};
use cel::common::value::CowVal;
use regex::{Regex, RegexBuilder};

use super::NativeFunction;

/// Upper bound on the compiled size of one regular expression (the `regex` crate's default is
/// 10 MiB): a pattern that reaches it is rejected instead of costing memory and time.
const REGEX_SIZE_LIMIT: usize = 1 << 20;

/// Compiles `pattern` with Warrant's limits.
pub fn compile(pattern: &str) -> Result<Regex, regex::Error> {
    RegexBuilder::new(pattern)
        .size_limit(REGEX_SIZE_LIMIT)
        .build()
}

/// The `matches` function over the patterns compiled at load. The text is read where it lies,
/// not copied.
pub fn function(regexes: Arc<HashMap<String, Regex>>) -> NativeFunction {
    Box::new(move |ftx| {
        let (text, pattern) = match (&ftx.this, ftx.args.as_slice()) {
            (Some(text), [pattern]) => (text, pattern),
            (None, [text, pattern]) => (text, pattern),
            (this, args) => {
                let types = this
                    .iter()
                    .chain(args)
                    .map(|v| v.get_type().name().to_owned())
                    .collect();
                return Err(if this.is_some() {
                    ExecutionError::no_such_member_overload("matches", types)
                } else {
                    ExecutionError::no_such_overload("matches", types)
                });
            }
        };
        let (Some(text), Some(pattern)) = (
            text.downcast_ref::<CelString>(),
            pattern.downcast_ref::<CelString>(),
        ) else {
            let types = vec![
                text.get_type().name().to_owned(),
                pattern.get_type().name().to_owned(),
            ];
            return Err(ExecutionError::no_such_overload("matches", types));
        };
        let matched = match regexes.get(pattern.inner()) {
            Some(regex) => regex.is_match(text.inner()),
            None => compile(pattern.inner())
                .map_err(|_| {
                    ExecutionError::function_error("matches", "invalid regular expression")
                })?
                .is_match(text.inner()),
        };
        Ok(CowVal::owned(CelBool::from(matched)))
    })
}
