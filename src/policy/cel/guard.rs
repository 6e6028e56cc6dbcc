//! Rule guards: a rule's cheapest conclusive test, found at load and checked before the rule.
//!
//! Most rules name who they are for: `source.spiffe_id == "spiffe://…/sa/checkout" && …`.
//! A policy of one rule per caller evaluates every rule for every request, though at most one
//! can match. A guard is a conjunct `path == "literal"` (or `"literal" == path`) of a rule's
//! top-level `&&` chain, where `path` is a variable's field (`source.spiffe_id`,
//! `request.method`). The path is resolved once per request, by the engine, in the request's
//! activation, and shared by every rule guarded on it; a rule whose guard is a different
//! string is not matched without being evaluated.
//!
//! Skipping is exact, not a heuristic. In CEL a logical AND with a `false` operand is `false`
//! whatever the other operand is, even an error (CEL language definition, "Logical
//! Operators"; `cel` 0.15 evaluates `error && false` to `false`). By induction over a chain of
//! `&&`, one `false` conjunct makes the whole chain `false`. And a string equals a string
//! literal exactly when their characters are the same. So when the path resolves to a
//! string other than the literal, the rule evaluates to `false`, which is what the guard
//! answers. When the path fails to resolve, or is not a string, the guard says nothing and
//! the rule is evaluated as usual. A test evaluates guarded and unguarded rules side by side.

use std::sync::Arc;

use cel::common::ast::{Expr, IdedExpr, LiteralValue, operators};
use cel::{Context, Value};

/// A conjunct `path == "literal"` that decides a rule's `false` whenever the path resolves
/// to another string.
#[derive(Debug)]
pub(super) struct Guard {
    /// The path as written (`source.spiffe_id`): what rules guarded on it share.
    key: Arc<str>,
    /// The path's syntax tree: a variable followed by one or more field selections.
    path: IdedExpr,
    /// The string the path must equal for the rule to match.
    literal: Arc<str>,
}

impl Guard {
    /// The first conjunct of `expr`'s top-level `&&` chain that can guard it, if any.
    pub(super) fn find(expr: &IdedExpr) -> Option<Guard> {
        match &expr.expr {
            Expr::Call(call)
                if call.func_name == operators::LOGICAL_AND && call.target.is_none() =>
            {
                call.args.iter().find_map(Guard::find)
            }
            Expr::Call(call) if call.func_name == operators::EQUALS && call.target.is_none() => {
                let [left, right] = &call.args[..] else {
                    return None;
                };
                let (path, literal) = match (&left.expr, &right.expr) {
                    (_, Expr::Literal(LiteralValue::String(s))) => (left, s),
                    (Expr::Literal(LiteralValue::String(s)), _) => (right, s),
                    _ => return None,
                };
                let key = field_path(path)?;
                Some(Guard {
                    key: Arc::from(key),
                    path: path.clone(),
                    literal: Arc::from(literal.inner()),
                })
            }
            _ => None,
        }
    }

    /// The path as written (`source.spiffe_id`).
    #[cfg(test)]
    pub(super) fn key(&self) -> &str {
        &self.key
    }

    /// The literal the path must equal.
    #[cfg(test)]
    pub(super) fn literal(&self) -> &str {
        &self.literal
    }
}

/// `variable.field(.field)*` as text, for a path of field selections (never a `has()` test)
/// on a variable; `None` for anything else.
fn field_path(expr: &IdedExpr) -> Option<String> {
    match &expr.expr {
        Expr::Select(select) if !select.test => {
            let operand = match &select.operand.expr {
                Expr::Ident(name) => name.clone(),
                Expr::Select(_) => field_path(&select.operand)?,
                _ => return None,
            };
            Some(format!("{operand}.{}", select.field))
        }
        _ => None,
    }
}

/// A guarded path's value for one request: the string it resolved to, or `None` when it
/// failed or is not a string.
type Resolved = Option<Arc<String>>;

/// The guarded paths resolved so far for one request: each is resolved at most once.
#[derive(Debug, Default)]
pub(super) struct GuardValues {
    resolved: std::cell::RefCell<Vec<(Arc<str>, Resolved)>>,
}

impl GuardValues {
    /// Whether `guard` rules its rule out in `scope`: its path resolves to a string other than
    /// its literal. `false` when the path resolves to the literal, fails or is not a string.
    pub(super) fn rules_out(&self, guard: &Guard, scope: &Context<'_, '_>) -> bool {
        let differs = |value: &Resolved| {
            value
                .as_ref()
                .is_some_and(|actual| actual.as_str() != &*guard.literal)
        };
        let mut resolved = self.resolved.borrow_mut();
        if let Some((_, value)) = resolved
            .iter()
            .find(|(key, _)| Arc::ptr_eq(key, &guard.key) || **key == *guard.key)
        {
            return differs(value);
        }
        let value = match Value::resolve(&guard.path, scope) {
            Ok(Value::String(text)) => Some(text),
            _ => None,
        };
        let rules_out = differs(&value);
        resolved.push((Arc::clone(&guard.key), value));
        rules_out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(source: &str) -> IdedExpr {
        cel::Env::stdlib()
            .compile(source)
            .expect("parses")
            .expression()
            .clone()
    }

    fn guard(source: &str) -> Option<(String, String)> {
        Guard::find(&parsed(source)).map(|g| (g.key().to_owned(), g.literal().to_owned()))
    }

    #[test]
    fn a_guard_is_a_string_equality_on_a_field_path_among_the_top_level_conjuncts() {
        let g = |k: &str, l: &str| Some((k.to_owned(), l.to_owned()));
        assert_eq!(
            guard(r#"source.spiffe_id == "a""#),
            g("source.spiffe_id", "a")
        );
        assert_eq!(
            guard(r#""a" == source.spiffe_id"#),
            g("source.spiffe_id", "a")
        );
        assert_eq!(
            guard(r#"request.path.startsWith("/x") && (request.method == "GET" && x)"#),
            g("request.method", "GET")
        );
        assert_eq!(guard(r#"a.b.c == "z" && d"#), g("a.b.c", "z"));
        // Not conclusive, or not a field path, or not a string literal.
        assert_eq!(guard(r#"source.spiffe_id == "a" || x"#), None);
        assert_eq!(guard(r#"!(source.spiffe_id == "a")"#), None);
        assert_eq!(guard(r#"source.spiffe_id != "a""#), None);
        assert_eq!(guard(r#"source == "a""#), None);
        assert_eq!(guard(r#"request.headers["x"] == "a""#), None);
        assert_eq!(guard(r#"source.port == 8"#), None);
        assert_eq!(guard(r#"f(source).x == "a""#), None);
        assert_eq!(guard(r#"[1].exists(x, x.y == "a")"#), None);
    }

    /// Every `&&` tree over `atoms` with `n` leaves (each atom used any number of times).
    fn and_trees(atoms: &[&str], n: usize) -> Vec<String> {
        if n == 1 {
            return atoms.iter().map(|a| (*a).to_owned()).collect();
        }
        let mut trees = Vec::new();
        for left in 1..n {
            for l in and_trees(atoms, left) {
                for r in and_trees(atoms, n - left) {
                    trees.push(format!("({l} && {r})"));
                }
            }
        }
        trees
    }

    #[test]
    fn a_guard_that_rules_a_rule_out_agrees_with_evaluating_it() {
        use std::collections::HashMap;
        let atoms = [
            r#"source.spiffe_id == "a""#,
            "undeclared",
            "true",
            "false",
            "1",
            r#"source.port == 1"#,
            r#"request.method == "GET""#,
        ];
        let sources: Vec<Option<Value>> = vec![
            Some(HashMap::from([("spiffe_id", Value::from("a"))]).into()),
            Some(HashMap::from([("spiffe_id", Value::from("b"))]).into()),
            Some(HashMap::from([("spiffe_id", Value::from(7))]).into()),
            Some(HashMap::from([("port", Value::from(1))]).into()),
            Some(Value::from("not a map")),
            None,
        ];
        let methods: Vec<Option<Value>> = vec![
            Some(HashMap::from([("method", Value::from("GET"))]).into()),
            Some(HashMap::from([("method", Value::from("PUT"))]).into()),
            None,
        ];
        let mut expressions = and_trees(&atoms, 1);
        expressions.extend(and_trees(&atoms, 2));
        expressions.extend(and_trees(&atoms, 3));
        let (mut guarded, mut ruled_out) = (0, 0);
        for source in &expressions {
            let expr = parsed(source);
            let Some(guard) = Guard::find(&expr) else {
                continue;
            };
            guarded += 1;
            for src in &sources {
                for method in &methods {
                    let mut scope = Context::default();
                    if let Some(src) = src {
                        scope.add_variable_from_value("source", src.clone());
                    }
                    if let Some(method) = method {
                        scope.add_variable_from_value("request", method.clone());
                    }
                    if GuardValues::default().rules_out(&guard, &scope) {
                        ruled_out += 1;
                        let evaluated = Value::resolve(&expr, &scope);
                        assert!(
                            matches!(evaluated, Ok(Value::Bool(false))),
                            "{source} with source {src:?}, request {method:?}: the guard rules it out, evaluating it gives {evaluated:?}"
                        );
                    }
                }
            }
        }
        assert!(
            guarded > 400 && ruled_out > 1000,
            "{guarded} guarded, {ruled_out} ruled out"
        );
    }
}
