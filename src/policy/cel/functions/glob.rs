//! `glob(text, pattern)` and `text.glob(pattern)`: whether all of `text` matches `pattern`,
//! both read as `/`-separated segments. In the pattern, `*` matches any run of characters
//! within one segment (none included), a segment that is exactly `**` matches any number of
//! whole segments (none included), and every other character stands for itself — there is
//! no escaping, no `?` and no character class. So `/payments/**` matches `/payments`,
//! `/payments/` and `/payments/a/b`, and `spiffe://prod.example.org/ns/*/sa/frontend`
//! matches every namespace's `frontend` service account.
//!
//! Matching takes time proportional to the text times the pattern at worst (no exponential
//! backtracking: only the last `**` is ever revisited) and allocates nothing.

use std::sync::Arc;

use cel::Value;
use cel::common::types::{CelBool, CelString};
use cel::common::value::CowVal;

use super::compiled::{Compile, argument};
use super::{NativeFunction, a, arguments, expect};
pub use crate::glob::Glob;

fn compile(pattern: &Value) -> Result<Glob, String> {
    match pattern {
        Value::String(pattern) => Glob::new(pattern),
        other => Err(format!(
            "the pattern is {}, not a string",
            a(other.type_of())
        )),
    }
}

pub(crate) const COMPILE: Compile = |value| Ok(Arc::new(compile(value)?));

/// The `glob` function.
pub(crate) fn function() -> NativeFunction {
    Box::new(|ftx| {
        let [text, pattern] = arguments(ftx, "glob", true)?;
        let text: &CelString = expect(text, "glob", "text", "string")?;
        let glob = argument(pattern, "glob", compile)?;
        Ok(CowVal::owned(CelBool::from(glob.matches(text.inner()))))
    })
}
