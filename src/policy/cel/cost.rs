//! How much looping one evaluation of an expression can do, known at load.
//!
//! CEL has no unbounded loops: only the macros (`all`, `exists`, `exists_one`, `map`,
//! `filter`), each a comprehension over a list or map. Without them an expression's cost is
//! linear in its size and its inputs (every function of the standard library and Warrant's is
//! linear or better), and the request's size is bounded by `limits.max_request_bytes`. With
//! them, the iterations multiply with nesting: the loop bound of an expression is
//!
//! - for a comprehension: its range's size × (1 + the bounds of its condition and step), plus
//!   the bounds of its range, initial value and result;
//! - for anything else: the sum of its children's bounds (0 for a leaf),
//!
//! where a range's size is known at load when the range is (a literal list or map, `data` or
//! a path into it — cel-go's cost estimator reasons the same way, with declared sizes). A
//! range only a request fixes (`request.headers`, `request.path.split("/")`, `metadata…`)
//! makes the bound unknown. The server decides Checks of a policy whose bound is known and
//! small on the async workers, and of any other on the decider threads, where a slow rule
//! cannot stall health checks, deadlines or limits.

use cel::common::ast::Expr;
use cel::{Context, IdedExpr, Value};

use super::constants::children;

/// The most loop iterations one evaluation of `expr` can run, or `None` when a macro ranges
/// over something known only per request (or whose size cannot be found at load).
/// Saturates at `u64::MAX`. Recursive: `expr`'s depth must be bounded.
pub fn loop_bound(expr: &IdedExpr, root: &Context<'_, '_>) -> Option<u64> {
    Bound {
        root,
        bound_names: Vec::new(),
    }
    .of(expr)
}

struct Bound<'r, 'c, 'v> {
    root: &'r Context<'c, 'v>,
    /// Names the enclosing comprehensions bind: a range naming one is not known at load.
    bound_names: Vec<&'r str>,
}

impl<'r> Bound<'r, '_, '_> {
    fn of(&mut self, expr: &'r IdedExpr) -> Option<u64> {
        match &expr.expr {
            Expr::Comprehension(comp) => {
                let size = self.range_size(&comp.iter_range)?;
                let outside = [&comp.iter_range, &comp.accu_init]
                    .into_iter()
                    .try_fold(0u64, |sum, e| Some(sum.saturating_add(self.of(e)?)))?;
                self.bound_names.push(&comp.iter_var);
                self.bound_names.push(&comp.accu_var);
                let per_iteration = self.of(&comp.loop_cond).and_then(|cond| {
                    Some(
                        1u64.saturating_add(cond)
                            .saturating_add(self.of(&comp.loop_step)?),
                    )
                });
                let result = self.of(&comp.result);
                self.bound_names.truncate(self.bound_names.len() - 2);
                Some(
                    outside
                        .saturating_add(size.saturating_mul(per_iteration?))
                        .saturating_add(result?),
                )
            }
            _ => {
                let mut sum = Some(0u64);
                children(expr, &mut |child| {
                    sum = match sum {
                        Some(sum) => self.of(child).map(|b| sum.saturating_add(b)),
                        None => None,
                    };
                });
                sum
            }
        }
    }

    /// The number of elements of a macro's range, when the range is known at load.
    fn range_size(&self, range: &IdedExpr) -> Option<u64> {
        match &range.expr {
            Expr::List(list) => return u64::try_from(list.elements.len()).ok(),
            Expr::Map(map) => return u64::try_from(map.entries.len()).ok(),
            // `map` and `filter` give at most one element per element of their range (the
            // other macros give a bool, which is no range).
            Expr::Comprehension(inner) => return self.range_size(&inner.iter_range),
            _ => {}
        }
        if !self.known_at_load(range) {
            return None;
        }
        let value = Value::resolve(range, self.root).ok()?;
        let size = match value {
            Value::List(list) => list.len(),
            Value::Map(map) => map.map.len(),
            _ => return None,
        };
        u64::try_from(size).ok()
    }

    /// Literals, `data` (unless a macro variable hides it) and selections from them: what
    /// has the same value for every request.
    fn known_at_load(&self, expr: &IdedExpr) -> bool {
        match &expr.expr {
            Expr::Literal(_) => true,
            Expr::Ident(name) => name == "data" && !self.bound_names.contains(&"data"),
            Expr::Select(select) => !select.test && self.known_at_load(&select.operand),
            Expr::Call(call) => {
                call.target
                    .as_deref()
                    .is_none_or(|target| self.known_at_load(target))
                    && call.args.iter().all(|arg| self.known_at_load(arg))
            }
            Expr::List(list) => list.elements.iter().all(|e| self.known_at_load(e)),
            _ => false,
        }
    }
}
