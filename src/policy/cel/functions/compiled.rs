//! The one mechanism for compiling function arguments at load.
//!
//! An argument that [`FUNCTIONS`](super::FUNCTIONS) declares compiled — a pattern, CIDR list,
//! time zone, window list or spec — is compiled when the policy loads if its value is known
//! then: an expression of literals, pure functions of them and `data` (which the policy file
//! fixes). [`compile_arguments`] evaluates it once, compiles it with the function's
//! [`Compile`], binds the result in the root context under a name no rule can write (`@0`,
//! `@1`, …) and makes the call reference that name instead. An invalid value fails the load,
//! naming the function and argument. At evaluation, [`argument`] hands a function the form
//! compiled at load, or compiles a value computed from the request on the spot (its error then
//! fails that one evaluation).

use std::any::Any;
use std::sync::Arc;

use cel::common::ast::{EntryExpr, Expr, IdedEntryExpr, LiteralValue};
use cel::common::types::Type;
use cel::common::value::{StaticVal, Val};
use cel::{ExecutionError, IdedExpr, Value};

use super::super::CompileError;
use super::super::literals::string_literal;

/// A compiled argument, type-erased: the table's entries share one signature.
pub(crate) type Compiled = Arc<dyn Any + Send + Sync>;

/// Compiles one argument's value, or says why it is invalid (the message names no request
/// data unless the value came from the request).
pub(crate) type Compile = fn(&Value) -> Result<Compiled, String>;

/// An argument of a function that is compiled at load when its value is known then.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CompiledArgument {
    /// Its position, a method's receiver counting as the first (`0`).
    pub position: usize,
    /// What the docs call it (`pattern`, `cidr`, `zone`).
    pub name: &'static str,
    pub compile: Compile,
}

/// The CEL type of a compiled argument: only Warrant's functions ever see one.
static COMPILED_TYPE: Type = Type::new_unspecified_type("warrant.compiled");

/// A compiled argument as a value bound in the root context.
#[derive(Debug, Clone)]
pub(crate) struct Bound(pub Compiled);

impl Val for Bound {
    fn get_type(&self) -> &Type {
        <Self as Val>::cel_type()
    }

    fn cel_type() -> &'static Type {
        &COMPILED_TYPE
    }

    fn clone_as_boxed<'v>(&self) -> Box<dyn Val + 'v> {
        Box::new(self.clone())
    }

    fn as_any(&self) -> Option<&dyn Any> {
        Some(self)
    }
}

impl StaticVal for Bound {}

/// An argument in compiled form: compiled at load (borrowed from the policy) or now.
#[derive(Debug)]
pub(crate) enum Argument<'a, T> {
    Loaded(&'a T),
    Computed(T),
}

impl<T> std::ops::Deref for Argument<'_, T> {
    type Target = T;

    fn deref(&self) -> &T {
        match self {
            Argument::Loaded(loaded) => loaded,
            Argument::Computed(computed) => computed,
        }
    }
}

/// `value` in compiled form for function `function`: the form compiled at load, or `value`
/// compiled now with `compile` (an invalid value is the function's error).
pub(crate) fn argument<'a, T: Any>(
    value: &'a dyn Val,
    function: &str,
    compile: fn(&Value) -> Result<T, String>,
) -> Result<Argument<'a, T>, ExecutionError> {
    if let Some(Bound(compiled)) = value.as_any().and_then(|any| any.downcast_ref::<Bound>()) {
        return compiled
            .downcast_ref::<T>()
            .map(Argument::Loaded)
            .ok_or_else(|| ExecutionError::function_error(function, "misplaced argument"));
    }
    let value = Value::try_from(value)?;
    compile(&value)
        .map(Argument::Computed)
        .map_err(|reason| ExecutionError::function_error(function, reason))
}

/// `value` read with `one`, or each element of it when it is a list: for arguments that are
/// one item or a list of them (`in_cidr`'s ranges, `business_hours`' specs).
pub(crate) fn one_or_list<T>(
    value: &Value,
    one: impl Fn(&Value) -> Result<T, String>,
) -> Result<Vec<T>, String> {
    match value {
        Value::List(list) => list.iter().map(one).collect(),
        single => Ok(vec![one(single)?]),
    }
}

/// Loads one argument known at load: evaluates it, compiles it, binds it and returns the name
/// it is bound under; `None` when it cannot be evaluated at load (an index out of range that a
/// guard may protect: it is then compiled per call); or says why its value is invalid.
///
/// With `Each::Element`, the argument is a macro's variable over a range known at load (`data
/// .paths.exists(p, request.path.glob(p))`): every element of the range is compiled (an
/// invalid one fails the load) and the name returned is that of a [`Picks`] table, from which
/// `@pick` takes the element's compiled form per call.
pub(crate) type Load<'a> =
    dyn FnMut(&IdedExpr, Compile, Each) -> Result<Option<String>, String> + 'a;

/// Whether [`Load`] compiles the value, or each element of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Each {
    Value,
    Element,
}

/// The compiled forms of the string elements of a range known at load, by element.
#[derive(Debug, Default)]
pub(crate) struct Picks(pub std::collections::HashMap<String, Compiled>);

/// `@pick(value, picks)`: the compiled form of `value` when the table has it, else `value`.
pub(crate) const PICK: &str = "@pick";

/// The [`PICK`] function.
pub(crate) fn pick_function() -> super::NativeFunction {
    Box::new(|ftx| {
        let [value, table] = super::arguments(ftx, PICK, false)?;
        let picked = table
            .as_any()
            .and_then(|any| any.downcast_ref::<Bound>())
            .and_then(|Bound(table)| table.downcast_ref::<Picks>())
            .zip(value.downcast_ref::<cel::common::types::CelString>())
            .and_then(|(picks, text)| picks.0.get(text.inner()));
        match picked {
            Some(compiled) => Ok(cel::common::value::CowVal::owned(Bound(Arc::clone(
                compiled,
            )))),
            None => Ok(cel::common::value::CowVal::Owned(value.clone_as_boxed())),
        }
    })
}

/// Checks every call of Warrant's functions in `expr` (arity; method or not) and replaces each
/// of their compiled arguments known at load by a reference to its compiled form, obtained
/// from `load`. Recurses: call it on a tree whose depth is bounded.
pub(crate) fn compile_arguments(
    expr: &mut IdedExpr,
    load: &mut Load<'_>,
) -> Result<(), CompileError> {
    Walk {
        load,
        data_shadowed: false,
        scope: Vec::new(),
    }
    .walk(expr)
}

struct Walk<'l, 'a> {
    load: &'l mut Load<'a>,
    /// Inside a macro whose variable is named `data`, which then is not the policy's data.
    data_shadowed: bool,
    /// The macro variables in scope, innermost last, each with its range when that is known
    /// at load.
    scope: Vec<(String, Option<IdedExpr>)>,
}

impl Walk<'_, '_> {
    fn walk(&mut self, expr: &mut IdedExpr) -> Result<(), CompileError> {
        let load = &mut *self.load;
        let data_shadowed = self.data_shadowed;
        match &mut expr.expr {
            Expr::Call(call) => {
                if let Some(function) = super::function(&call.func_name) {
                    let method = call.target.is_some();
                    let usage = || function.signatures.join(" or ");
                    if method && !function.method {
                        return Err(CompileError::Usage(format!(
                            "{}() is not a method: write {}",
                            function.name,
                            usage()
                        )));
                    }
                    let given = call.args.len() + usize::from(method);
                    if given != function.arity {
                        return Err(CompileError::Usage(format!(
                            "{}() takes {} arguments, not {given}: {}",
                            function.name,
                            function.arity,
                            usage()
                        )));
                    }
                    for argument in function.compiled {
                        let slot = match (method, argument.position) {
                            (true, 0) => call.target.as_deref_mut(),
                            (true, position) => call.args.get_mut(position - 1),
                            (false, position) => call.args.get_mut(position),
                        };
                        let Some(slot) = slot else { continue };
                        if let Expr::Ident(variable) = &slot.expr
                            && let Some((_, range)) =
                                self.scope.iter().rev().find(|(name, _)| name == variable)
                        {
                            // A macro's variable: per element of a range known at load.
                            let Some(range) = range else { continue };
                            let table =
                                load(range, argument.compile, Each::Element).map_err(|reason| {
                                    CompileError::InvalidLiteral {
                                        call: format!(
                                            "{}{} {variable} (from {})",
                                            if function.name.starts_with('@') {
                                                String::new()
                                            } else {
                                                format!("{}() ", function.name)
                                            },
                                            argument.name,
                                            describe_range(range)
                                        ),
                                        reason,
                                    }
                                })?;
                            let Some(table) = table else { continue };
                            let original = std::mem::take(slot);
                            *slot = IdedExpr {
                                id: original.id,
                                expr: Expr::Call(cel::common::ast::CallExpr {
                                    func_name: PICK.to_owned(),
                                    target: None,
                                    args: vec![
                                        original,
                                        IdedExpr {
                                            id: 0,
                                            expr: Expr::Ident(table),
                                        },
                                    ],
                                }),
                            };
                            continue;
                        }
                        if !known_at_load(slot, data_shadowed) {
                            continue;
                        }
                        let name = load(slot, argument.compile, Each::Value).map_err(|reason| {
                            CompileError::InvalidLiteral {
                                call: describe(function.name, argument.name, slot),
                                reason,
                            }
                        })?;
                        let Some(name) = name else { continue };
                        *slot = IdedExpr {
                            id: slot.id,
                            expr: Expr::Ident(name),
                        };
                    }
                }
                if let Some(target) = &mut call.target {
                    self.walk(target)?;
                }
                call.args.iter_mut().try_for_each(|arg| self.walk(arg))
            }
            Expr::Select(select) => self.walk(&mut select.operand),
            Expr::List(list) => list.elements.iter_mut().try_for_each(|e| self.walk(e)),
            Expr::Map(map) => map
                .entries
                .iter_mut()
                .try_for_each(|entry| self.walk_entry(entry)),
            Expr::Struct(structure) => structure
                .entries
                .iter_mut()
                .try_for_each(|entry| self.walk_entry(entry)),
            Expr::Comprehension(comp) => {
                // The range as written, before its own arguments are compiled.
                let range = (comp.iter_var2.is_none()
                    && known_at_load(&comp.iter_range, data_shadowed))
                .then(|| comp.iter_range.clone());
                self.walk(&mut comp.iter_range)?;
                let depth = self.scope.len();
                self.scope.push((comp.iter_var.clone(), range));
                if let Some(second) = &comp.iter_var2 {
                    self.scope.push((second.clone(), None));
                }
                self.scope.push((comp.accu_var.clone(), None));
                let shadows = [&comp.iter_var, &comp.accu_var]
                    .into_iter()
                    .chain(&comp.iter_var2)
                    .any(|name| name == "data");
                let outer = self.data_shadowed;
                self.data_shadowed |= shadows;
                let result = [
                    &mut comp.accu_init,
                    &mut comp.loop_cond,
                    &mut comp.loop_step,
                    &mut comp.result,
                ]
                .into_iter()
                .try_for_each(|part| self.walk(part));
                self.data_shadowed = outer;
                self.scope.truncate(depth);
                result
            }
            _ => Ok(()),
        }
    }

    fn walk_entry(&mut self, entry: &mut IdedEntryExpr) -> Result<(), CompileError> {
        match &mut entry.expr {
            EntryExpr::StructField(field) => self.walk(&mut field.value),
            EntryExpr::MapEntry(entry) => {
                self.walk(&mut entry.key)?;
                self.walk(&mut entry.value)
            }
        }
    }
}

/// Whether `expr`'s value is fixed when the policy loads: literals, lists and maps of them,
/// calls on them (every function is pure) and `data` (unless a macro variable named `data` hides
/// it). Not a comprehension, whose variables this does not track.
fn known_at_load(expr: &IdedExpr, data_shadowed: bool) -> bool {
    let known = |e: &IdedExpr| known_at_load(e, data_shadowed);
    match &expr.expr {
        Expr::Literal(_) => true,
        Expr::Ident(name) => name == "data" && !data_shadowed,
        Expr::Select(select) => known(&select.operand),
        Expr::List(list) => list.elements.iter().all(known),
        Expr::Map(map) => map.entries.iter().all(|entry| match &entry.expr {
            EntryExpr::MapEntry(entry) => known(&entry.key) && known(&entry.value),
            EntryExpr::StructField(_) => false,
        }),
        Expr::Call(call) => call.target.as_deref().is_none_or(known) && call.args.iter().all(known),
        _ => false,
    }
}

/// `data.paths`, `["…"]`: a macro's range, for messages.
fn describe_range(expr: &IdedExpr) -> String {
    fn path(expr: &IdedExpr) -> Option<String> {
        match &expr.expr {
            Expr::Ident(name) => Some(name.clone()),
            Expr::Select(select) => Some(format!("{}.{}", path(&select.operand)?, select.field)),
            _ => None,
        }
    }
    path(expr).unwrap_or_else(|| "[…]".to_owned())
}

/// `glob() pattern "/a/b**"`, `in_cidr() cidr […]`, `time zone "Europe/Berln"`.
fn describe(function: &str, argument: &str, expr: &IdedExpr) -> String {
    let written = match (string_literal(expr), &expr.expr) {
        (Some(text), _) => format!("{text:?}"),
        (None, Expr::Literal(LiteralValue::Null)) => "null".to_owned(),
        (None, Expr::List(_)) => "[…]".to_owned(),
        (None, Expr::Map(_)) => "{…}".to_owned(),
        _ => "…".to_owned(),
    };
    if function.starts_with('@') {
        format!("{argument} {written}")
    } else {
        format!("{function}() {argument} {written}")
    }
}
