//! Reading string literals out of the syntax tree, for the load-time checks.

use cel::IdedExpr;
use cel::common::ast::{EntryExpr, Expr, LiteralValue};

/// The text of `expr` when it is a string literal.
pub(super) fn string_literal(expr: &IdedExpr) -> Option<&str> {
    match &expr.expr {
        Expr::Literal(LiteralValue::String(text)) => Some(text.inner()),
        _ => None,
    }
}

/// The string literals `expr` stands for as a value or a collection: itself, the elements of
/// a list literal, or the keys of a map literal (what `in` compares against).
pub(super) fn literal_strings(expr: &IdedExpr) -> Vec<String> {
    let owned = |e: &IdedExpr| string_literal(e).map(str::to_owned);
    match &expr.expr {
        Expr::List(list) => list.elements.iter().filter_map(owned).collect(),
        Expr::Map(map) => map
            .entries
            .iter()
            .filter_map(|entry| match &entry.expr {
                EntryExpr::MapEntry(entry) => owned(&entry.key),
                EntryExpr::StructField(_) => None,
            })
            .collect(),
        _ => owned(expr).into_iter().collect(),
    }
}
