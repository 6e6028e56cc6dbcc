//! The operator's `data` as CEL values, built once when the policy loads and bound in the
//! root context that every request's scope borrows from: a request copies none of it.
//!
//! JSON/YAML values map to CEL as: null → `null`, booleans → `bool`, integers → `int` (`uint`
//! above `int`'s range), other numbers → `double`, strings → `string`, arrays → `list`,
//! objects → `map` with string keys. Maps are hash maps, so `key in data.m` and `data.m[key]`
//! cost one hash probe. A list of more than [`INDEXED_FROM`] elements also gets a hash set of
//! its strings, so `x in data.allowlist` with a string `x` costs one probe however long the
//! list; for any other `x`, and for shorter lists, `in` compares element by element, as CEL
//! defines it.

use std::any::Any;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use cel::ExecutionError;
use cel::common::traits::{Adder, Container, Indexer, Iterable, Sizer, Zeroer};
use cel::common::types::{
    CelBool, CelDouble, CelInt, CelList, CelMap, CelMapKey, CelNull, CelString, CelUInt, Type,
};
use cel::common::value::{Builtin, BuiltinRef, StaticVal, Val};

/// Lists longer than this get a hash set of their strings.
pub(crate) const INDEXED_FROM: usize = 8;

/// `value` as a CEL value, its long lists indexed: for data built once per policy.
pub(crate) fn to_cel_indexed(value: &serde_json::Value) -> Box<dyn Val> {
    convert(value, true)
}

/// `value` as a CEL value, for a value of one request (nothing indexed).
pub(crate) fn to_cel(value: &serde_json::Value) -> Box<dyn Val> {
    convert(value, false)
}

fn convert(value: &serde_json::Value, index: bool) -> Box<dyn Val> {
    use serde_json::Value as Json;
    match value {
        Json::Null => Box::new(CelNull),
        Json::Bool(b) => Box::new(CelBool::from(*b)),
        Json::Number(n) => match (n.as_i64(), n.as_u64(), n.as_f64()) {
            (Some(i), _, _) => Box::new(CelInt::from(i)),
            (None, Some(u), _) => Box::new(CelUInt::from(u)),
            (None, None, f) => Box::new(CelDouble::from(f.unwrap_or(f64::NAN))),
        },
        Json::String(s) => Box::new(CelString::from(s.clone())),
        Json::Array(items) => {
            let list = CelList::from(
                items
                    .iter()
                    .map(|item| convert(item, index))
                    .collect::<Vec<_>>(),
            );
            if index && items.len() > INDEXED_FROM {
                let strings = items
                    .iter()
                    .filter_map(|item| item.as_str().map(str::to_owned))
                    .collect();
                Box::new(IndexedList(Arc::new(Indexed { list, strings })))
            } else {
                Box::new(list)
            }
        }
        Json::Object(entries) => {
            let map: HashMap<CelMapKey<'static>, Box<dyn Val>> = entries
                .iter()
                .map(|(k, v)| (CelMapKey::from(k.clone()), convert(v, index)))
                .collect();
            Box::new(CelMap::from(map))
        }
    }
}

#[derive(Debug)]
struct Indexed {
    list: CelList<'static>,
    strings: HashSet<String>,
}

/// A CEL list (its type, equality, indexing, iteration and `+` are the list's) whose `in`
/// finds a string with one hash probe. Cloning shares it.
#[derive(Debug, Clone)]
pub(crate) struct IndexedList(Arc<Indexed>);

impl Val for IndexedList {
    fn get_type(&self) -> &Type {
        self.0.list.get_type()
    }

    fn cel_type() -> &'static Type {
        <CelList<'static> as Val>::cel_type()
    }

    fn as_adder<'b, 'v>(&'b self) -> Option<&'b (dyn Adder + 'v)>
    where
        Self: 'v,
    {
        Some(&self.0.list)
    }

    fn as_container(&self) -> Option<&dyn Container> {
        Some(self)
    }

    fn as_indexer<'b, 'v>(&'b self) -> Option<&'b (dyn Indexer + 'v)>
    where
        Self: 'v,
    {
        Some(&self.0.list)
    }

    fn into_indexer<'v>(self: Box<Self>) -> Option<Box<dyn Indexer + 'v>>
    where
        Self: 'v,
    {
        Some(Box::new(self.0.list.clone()))
    }

    fn as_iterable<'b, 'v>(&'b self) -> Option<&'b (dyn Iterable + 'v)>
    where
        Self: 'v,
    {
        Some(&self.0.list)
    }

    fn as_sizer(&self) -> Option<&dyn Sizer> {
        Some(&self.0.list)
    }

    fn as_zeroer(&self) -> Option<&dyn Zeroer> {
        Some(&self.0.list)
    }

    fn equals(&self, other: &dyn Val) -> bool {
        self.0.list.equals(other)
    }

    fn clone_as_boxed<'v>(&self) -> Box<dyn Val + 'v> {
        Box::new(self.clone())
    }

    fn as_any(&self) -> Option<&dyn Any> {
        Some(self)
    }

    fn as_builtin<'b, 'v>(&'b self) -> BuiltinRef<'b, 'v>
    where
        Self: 'v,
    {
        BuiltinRef::List(&self.0.list)
    }

    fn into_builtin<'v>(self: Box<Self>) -> Option<Builtin<'v>>
    where
        Self: 'v,
    {
        Some(Builtin::List(self.0.list.clone()))
    }
}

impl StaticVal for IndexedList {}

impl Container for IndexedList {
    fn contains(&self, value: &dyn Val) -> Result<bool, ExecutionError> {
        match value.downcast_ref::<CelString>() {
            Some(text) => Ok(self.0.strings.contains(text.inner())),
            None => self.0.list.contains(value),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_lists_find_strings_by_hash_and_the_rest_by_equality() {
        let json: serde_json::Value = serde_json::from_str(
            r#"["a", "b", "c", "d", "e", "f", "g", "h", "i", 1, 2.5, null, ["x"]]"#,
        )
        .expect("json");
        let list = to_cel_indexed(&json);
        let container = list.as_container().expect("a list");
        let has = |v: &dyn Val| container.contains(v).expect("no error");
        assert!(has(&CelString::from("i")));
        assert!(!has(&CelString::from("z")));
        assert!(has(&CelInt::from(1)));
        assert!(has(&CelDouble::from(1.0)), "1.0 == 1 in CEL");
        assert!(has(&CelUInt::from(1)));
        assert!(has(&CelDouble::from(2.5)));
        assert!(has(&CelNull));
        assert!(!has(&CelInt::from(3)));
        assert_eq!(list.get_type(), <CelList<'static> as Val>::cel_type());
        assert!(list.downcast_ref::<CelList>().is_some());
    }
}
