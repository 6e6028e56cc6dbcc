//! `longest_prefix(text, map)`: the value of the longest key of `map` that `text` starts with,
//! or `null` when none does. Keys are compared byte for byte (no case folding, no segment
//! boundaries: `/pay` is a prefix of `/payments`; end a key with `/` to mean a directory). A
//! key `""` is a prefix of every text, so it gives a default.
//!
//! Compiled, the map is a hash table plus the distinct lengths of its keys, longest first: a
//! lookup costs one hash probe per distinct key length no longer than the text, whatever the
//! number of keys.

use std::collections::HashMap;
use std::sync::Arc;

use cel::Value;
use cel::common::types::{CelNull, CelString};
use cel::common::value::{CowVal, Val};
use cel::objects::Key;

use super::compiled::{Compile, argument};
use super::{NativeFunction, a, arguments, expect};

/// A map compiled for longest-prefix lookups.
#[derive(Debug)]
pub(crate) struct PrefixMap {
    values: HashMap<String, Box<dyn Val>>,
    /// The distinct key lengths in bytes, longest first.
    lengths: Vec<usize>,
}

impl PrefixMap {
    /// The value of the longest key `text` starts with.
    pub(crate) fn longest(&self, text: &str) -> Option<&(dyn Val + 'static)> {
        self.lengths
            .iter()
            .filter_map(|&length| text.get(..length))
            .find_map(|prefix| self.values.get(prefix))
            .map(|value| &**value)
    }
}

fn compile(map: &Value) -> Result<PrefixMap, String> {
    let Value::Map(map) = map else {
        return Err(format!("the map is {}, not a map", a(map.type_of())));
    };
    let mut values = HashMap::with_capacity(map.map.len());
    for (key, value) in map.map.iter() {
        let Key::String(key) = key else {
            return Err("the map's keys must be strings".to_owned());
        };
        let value: Box<dyn Val> = value
            .clone()
            .try_into()
            .map_err(|_| "the map holds a value CEL cannot use".to_owned())?;
        values.insert(key.to_string(), value);
    }
    let mut lengths: Vec<usize> = values.keys().map(String::len).collect();
    lengths.sort_unstable_by(|a, b| b.cmp(a));
    lengths.dedup();
    Ok(PrefixMap { values, lengths })
}

pub(crate) const COMPILE: Compile = |value| Ok(Arc::new(compile(value)?));

/// The `longest_prefix` function.
pub(crate) fn function() -> NativeFunction {
    Box::new(|ftx| {
        let [text, map] = arguments(ftx, "longest_prefix", false)?;
        let text: &CelString = expect(text, "longest_prefix", "text", "string")?;
        let map = argument(map, "longest_prefix", compile)?;
        Ok(match map.longest(text.inner()) {
            Some(value) => CowVal::Owned(value.clone_as_boxed()),
            None => CowVal::owned(CelNull),
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(entries: &[(&str, &str)]) -> PrefixMap {
        let map: HashMap<Key, Value> = entries
            .iter()
            .map(|(k, v)| {
                (
                    Key::String(Arc::new((*k).to_owned())),
                    Value::String(Arc::new((*v).to_owned())),
                )
            })
            .collect();
        compile(&Value::Map(map.into())).expect("a map of strings")
    }

    fn longest(map: &PrefixMap, text: &str) -> Option<String> {
        map.longest(text).map(|v| {
            v.downcast_ref::<CelString>()
                .map(|s| s.inner().to_owned())
                .unwrap_or_default()
        })
    }

    #[test]
    fn the_longest_key_wins() {
        let m = map(&[
            ("/", "public"),
            ("/payments/", "restricted"),
            ("/payments/health", "public"),
        ]);
        assert_eq!(longest(&m, "/payments/42").as_deref(), Some("restricted"));
        assert_eq!(longest(&m, "/payments/health").as_deref(), Some("public"));
        assert_eq!(longest(&m, "/payments").as_deref(), Some("public"));
        assert_eq!(longest(&m, "x").as_deref(), None);
    }

    #[test]
    fn an_empty_key_is_the_default_and_multibyte_text_is_safe() {
        let m = map(&[("", "default"), ("/é", "accent")]);
        assert_eq!(longest(&m, "/éa").as_deref(), Some("accent"));
        // A length that falls inside a multi-byte character is skipped, not a panic.
        assert_eq!(longest(&m, "/e").as_deref(), Some("default"));
        assert_eq!(longest(&map(&[("/éé", "x")]), "/é").as_deref(), None);
    }

    #[test]
    fn only_maps_with_string_keys() {
        assert!(compile(&Value::Int(1)).is_err());
        let ints: HashMap<Key, Value> = [(Key::Int(1), Value::Int(1))].into_iter().collect();
        assert!(compile(&Value::Map(ints.into())).is_err());
    }
}
