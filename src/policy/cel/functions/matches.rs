//! CEL's `matches` (unanchored RE2 syntax), as `text.matches(pattern)` or
//! `matches(text, pattern)`, both strings, exactly like the engine's own — whose version
//! compiles the pattern on every call (~30 µs). Here a pattern known at load is compiled then
//! (see [`super::compiled`]) and an invalid one fails the load; only a pattern computed per
//! request (rare, e.g. from `context`) is compiled per call.

use std::sync::Arc;

use cel::Value;
use cel::common::types::{CelBool, CelString};
use cel::common::value::CowVal;
use regex::{Regex, RegexBuilder};

use super::compiled::{Compile, argument};
use super::{NativeFunction, a, arguments, expect};

/// Upper bound on the compiled size of one regular expression (the `regex` crate's default is
/// 10 MiB): a pattern that reaches it is rejected instead of costing memory and time.
const REGEX_SIZE_LIMIT: usize = 1 << 20;

/// Compiles a pattern with Warrant's limits.
fn compile(pattern: &Value) -> Result<Regex, String> {
    let Value::String(pattern) = pattern else {
        return Err(format!(
            "the pattern is {}, not a string",
            a(pattern.type_of())
        ));
    };
    RegexBuilder::new(pattern)
        .size_limit(REGEX_SIZE_LIMIT)
        .build()
        .map_err(|e| {
            format!(
                "not a valid regular expression: {}",
                e.to_string().replace('\n', " ")
            )
        })
}

pub(crate) const COMPILE: Compile = |value| Ok(Arc::new(compile(value)?));

/// The `matches` function. The text is read where it lies, not copied.
pub(crate) fn function() -> NativeFunction {
    Box::new(|ftx| {
        let [text, pattern] = arguments(ftx, "matches", true)?;
        let text: &CelString = expect(text, "matches", "text", "string")?;
        let regex = argument(pattern, "matches", compile)?;
        Ok(CowVal::owned(CelBool::from(regex.is_match(text.inner()))))
    })
}
