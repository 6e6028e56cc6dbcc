//! JSON as Warrant reads it: like protobuf's JSON parser and YAML, it refuses an object that
//! repeats a key (`serde_json` keeps the last silently, so `{"a": 1, "a": 2}` in a data file or
//! a CheckRequest with both `rawBody` and `raw_body` would mean whatever came last).

use std::collections::HashSet;
use std::fmt;

use serde::de::{DeserializeSeed, Deserializer, Error as _, MapAccess, SeqAccess, Visitor};

/// Checks that no object in the JSON `text` repeats a key.
///
/// # Errors
/// The first repeated key (`duplicate key "a" at line L column C`), or a syntax error.
pub fn reject_duplicate_keys(text: &str) -> Result<(), serde_json::Error> {
    let mut deserializer = serde_json::Deserializer::from_str(text);
    Unique.deserialize(&mut deserializer)?;
    deserializer.end()
}

struct Unique;

impl<'de> DeserializeSeed<'de> for Unique {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Unique {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }

    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }

    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }

    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }

    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }

    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element_seed(Unique)?.is_some() {}
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut keys = HashSet::new();
        while let Some(key) = map.next_key::<String>()? {
            if !keys.insert(key.clone()) {
                return Err(A::Error::custom(format_args!("duplicate key {key:?}")));
            }
            map.next_value_seed(Unique)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::reject_duplicate_keys;

    #[test]
    fn repeated_keys_at_any_depth_are_refused() {
        assert!(reject_duplicate_keys(r#"{"a": 1, "b": [{"a": 1}, {"a": 2}]}"#).is_ok());
        let error = reject_duplicate_keys("{\"a\": 1,\n \"a\": 2}").expect_err("repeated");
        assert!(
            error
                .to_string()
                .starts_with("duplicate key \"a\" at line 2"),
            "{error}"
        );
        assert!(reject_duplicate_keys(r#"{"x": [{"k": 1, "k": 1}]}"#).is_err());
        assert!(
            reject_duplicate_keys(r#"{"a\u0062": 1, "ab": 2}"#).is_err(),
            "escapes decoded"
        );
        assert!(reject_duplicate_keys("[1] 2").is_err());
    }
}
