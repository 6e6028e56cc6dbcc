//! What can be known to fail from the expression alone fails the load, not every request (a
//! deny rule that fails denies everything; an allow rule that fails never matches):
//! - a call of a pure function on literals that fails — `duration("1d")`,
//!   `timestamp("2025-01-01")`, `1 / 0`, `uint(-1)`, an overflow — evaluated once at load;
//! - message literals (`Foo{a: 1}`): Warrant declares no message types;
//! - an expression whose result cannot be a bool: a literal, list or map, arithmetic, or a
//!   variable or field of one (`when: request.method`).
//!
//! Arguments of Warrant's functions known at load — `matches()` patterns, time zones, … — are
//! compiled then by [`super::functions::compiled`], which refuses invalid ones.

use cel::common::ast::{CallExpr, EntryExpr, Expr, LiteralValue, operators};
use cel::common::types::CelString;
use cel::{Context, IdedExpr, Value};

use super::CompileError;
use super::environment;
use super::literals::string_literal;

/// Checks `expr` (recursively: its depth must be bounded) against `root`, the context the
/// policy's expressions run in (with its `data`).
pub(super) fn check(expr: &IdedExpr, root: &Context<'_, '_>) -> Result<(), CompileError> {
    check_result(expr)?;
    check_literals(expr, root)?;
    match data_guards(expr) {
        Some(guards) => check_data_paths(expr, root, &guards),
        None => Ok(()),
    }
}

/// A path into data as written (`data.a["b"]`) and as keys (`["a", "b"]`).
struct DataPath {
    written: String,
    keys: Vec<String>,
}

/// `data.a.b`, `data["a"][0]`: a path into data; `None` for anything else.
fn data_path(expr: &IdedExpr) -> Option<DataPath> {
    match &expr.expr {
        Expr::Ident(name) if name == "data" => Some(DataPath {
            written: name.clone(),
            keys: Vec::new(),
        }),
        Expr::Select(select) if !select.test => {
            let mut path = data_path(&select.operand)?;
            path.written = format!("{}.{}", path.written, select.field);
            path.keys.push(select.field.clone());
            Some(path)
        }
        Expr::Call(call) if call.func_name == operators::INDEX && call.target.is_none() => {
            let [operand, key] = call.args.as_slice() else {
                return None;
            };
            let (written, key) = match &key.expr {
                Expr::Literal(LiteralValue::String(key)) => {
                    (format!("{:?}", key.inner()), key.inner().to_string())
                }
                Expr::Literal(LiteralValue::Int(i)) => {
                    (i.inner().to_string(), i.inner().to_string())
                }
                _ => return None,
            };
            let mut path = data_path(operand)?;
            path.written = format!("{}[{written}]", path.written);
            path.keys.push(key);
            Some(path)
        }
        _ => None,
    }
}

/// The paths into data that `expr` tests for before reading below them: `has(data.a.b)`
/// guards `data.a.b…`, `"k" in data.a` guards `data.a.k…` (`x in data.a`, any key of
/// `data.a`, written as `*`). `None` when `data` is a macro variable somewhere (then paths
/// are not checked at all).
fn data_guards(expr: &IdedExpr) -> Option<Vec<Vec<String>>> {
    let mut guards = Vec::new();
    let mut shadowed = false;
    visit(expr, &mut |e| match &e.expr {
        Expr::Select(select) if select.test => {
            if let Some(mut path) = data_path(&select.operand) {
                path.keys.push(select.field.clone());
                guards.push(path.keys);
            }
        }
        Expr::Call(call) if call.func_name == operators::IN => {
            if let [key, container] = call.args.as_slice()
                && let Some(mut path) = data_path(container)
            {
                path.keys
                    .push(string_literal(key).map_or_else(|| "*".to_owned(), |k| k.to_owned()));
                guards.push(path.keys);
            }
        }
        Expr::Comprehension(comp) => {
            shadowed |= [&comp.iter_var, &comp.accu_var]
                .into_iter()
                .chain(&comp.iter_var2)
                .any(|name| name == "data");
        }
        _ => {}
    });
    (!shadowed).then_some(guards)
}

/// Refuses a path into data whose key is not there, unless a guard tests for it: reading it
/// always fails (a misspelt key, most likely).
fn check_data_paths(
    expr: &IdedExpr,
    root: &Context<'_, '_>,
    guards: &[Vec<String>],
) -> Result<(), CompileError> {
    if let Some(path) = data_path(expr) {
        let guarded = guards.iter().any(|guard| {
            guard.len() <= path.keys.len()
                && guard
                    .iter()
                    .zip(&path.keys)
                    .all(|(g, k)| g == k || g == "*")
        });
        // Only a missing key: an index out of range or a type test may well be guarded
        // (`size(data.l) > 5 && data.l[5] == x`).
        return match Value::resolve(expr, root) {
            Err(cel::ExecutionError::NoSuchKey(_)) if !guarded => {
                Err(CompileError::NotInData { path: path.written })
            }
            _ => Ok(()),
        };
    }
    let mut result = Ok(());
    children(expr, &mut |child| {
        if result.is_ok() {
            result = check_data_paths(child, root, guards);
        }
    });
    result
}

/// Calls `f` on `expr` and everything below it.
fn visit(expr: &IdedExpr, f: &mut dyn FnMut(&IdedExpr)) {
    f(expr);
    children(expr, &mut |child| visit(child, f));
}

/// Calls `f` on each direct child of `expr`.
fn children(expr: &IdedExpr, f: &mut dyn FnMut(&IdedExpr)) {
    match &expr.expr {
        Expr::Call(call) => {
            if let Some(target) = &call.target {
                f(target);
            }
            call.args.iter().for_each(f);
        }
        Expr::Select(select) => f(&select.operand),
        Expr::List(list) => list.elements.iter().for_each(f),
        Expr::Map(map) => map.entries.iter().for_each(|entry| match &entry.expr {
            EntryExpr::MapEntry(entry) => {
                f(&entry.key);
                f(&entry.value);
            }
            EntryExpr::StructField(field) => f(&field.value),
        }),
        Expr::Struct(structure) => structure.entries.iter().for_each(|entry| {
            if let EntryExpr::StructField(field) = &entry.expr {
                f(&field.value);
            }
        }),
        Expr::Comprehension(comp) => [
            &comp.iter_range,
            &comp.accu_init,
            &comp.loop_cond,
            &comp.loop_step,
            &comp.result,
        ]
        .into_iter()
        .for_each(f),
        _ => {}
    }
}

/// Refuses a top-level expression that cannot evaluate to a bool.
fn check_result(expr: &IdedExpr) -> Result<(), CompileError> {
    let kind = match &expr.expr {
        Expr::Literal(LiteralValue::Boolean(_)) => return Ok(()),
        Expr::Literal(LiteralValue::String(_)) => "a string",
        Expr::Literal(LiteralValue::Bytes(_)) => "bytes",
        Expr::Literal(LiteralValue::Int(_) | LiteralValue::UInt(_) | LiteralValue::Double(_)) => {
            "a number"
        }
        Expr::Literal(LiteralValue::Null) => "null",
        Expr::List(_) => "a list",
        Expr::Map(_) | Expr::Struct(_) => "a map",
        Expr::Call(call)
            if matches!(
                call.func_name.as_str(),
                operators::ADD
                    | operators::SUBSTRACT
                    | operators::MULTIPLY
                    | operators::DIVIDE
                    | operators::MODULO
                    | operators::NEGATE
            ) =>
        {
            "arithmetic"
        }
        _ if is_variable_value(expr) => {
            "a variable's value (every Warrant variable and field is a string, number, map, list or timestamp)"
        }
        _ => return Ok(()),
    };
    Err(CompileError::NotBoolAtLoad { kind })
}

/// `request`, `request.method`, `source.certificate.serial`: a top-level variable or a field
/// chain below one (not `has(...)`, which is a test).
fn is_variable_value(expr: &IdedExpr) -> bool {
    match &expr.expr {
        // Data and filter metadata (JSON-like) may hold a bool.
        Expr::Ident(name) => environment::variable(name).is_some_and(|v| !v.may_be_bool()),
        // A bool field (`source.xfcc_spoofed`) is a condition of its own.
        Expr::Select(select) => match &select.operand.expr {
            Expr::Ident(name) if !select.test => environment::variable(name)
                .is_some_and(|v| !v.may_be_bool() && !v.field_is_bool(&select.field)),
            _ => !select.test && is_variable_value(&select.operand),
        },
        _ => false,
    }
}

fn check_literals(expr: &IdedExpr, root: &Context<'_, '_>) -> Result<(), CompileError> {
    match &expr.expr {
        Expr::Call(call) => {
            if let Some(probe) = constant_probe(call)
                && let Err(error) = Value::resolve(&probe, root)
            {
                // The literals are the policy's own text, not request data; some engine
                // messages are Rust debug output, which says nothing to an operator.
                let reason = error.to_string();
                let reason = if reason.contains(" {") {
                    "the engine cannot read this value".to_owned()
                } else {
                    reason
                };
                return Err(CompileError::InvalidLiteral {
                    call: describe_call(call),
                    reason,
                });
            }
        }
        Expr::Struct(structure) => {
            return Err(CompileError::Usage(format!(
                "message literal {}{{...}}: Warrant declares no message types; write a map literal {{\"key\": value}}",
                structure.type_name
            )));
        }
        _ => {}
    }
    let mut result = Ok(());
    children(expr, &mut |child| {
        if result.is_ok() {
            result = check_literals(child, root);
        }
    });
    result
}

/// Functions without side effects or inputs beyond their arguments: called on literals,
/// they give the same result on every request.
const PURE: &[&str] = &[
    "duration",
    "timestamp",
    "int",
    "uint",
    "double",
    "string",
    "bytes",
    operators::ADD,
    operators::SUBSTRACT,
    operators::MULTIPLY,
    operators::DIVIDE,
    operators::MODULO,
    operators::NEGATE,
];

/// An expression that fails at load exactly when `call` would fail on every request: the
/// call itself when it is a pure function of literals.
fn constant_probe(call: &CallExpr) -> Option<IdedExpr> {
    let literal = |e: &IdedExpr| matches!(&e.expr, Expr::Literal(_));
    match (call.func_name.as_str(), &call.target, &call.args[..]) {
        (function, None, args)
            if PURE.contains(&function) && !args.is_empty() && args.iter().all(literal) =>
        {
            Some(IdedExpr {
                id: 0,
                expr: Expr::Call(call.clone()),
            })
        }
        _ => None,
    }
}

/// `duration("1d")`, `.getHours("Europe/Berln")`, `1 / 0`.
fn describe_call(call: &CallExpr) -> String {
    let literal = |arg: &IdedExpr| match &arg.expr {
        Expr::Literal(LiteralValue::String(text)) => format!("{:?}", CelString::inner(text)),
        Expr::Literal(LiteralValue::Int(i)) => i.inner().to_string(),
        Expr::Literal(LiteralValue::UInt(u)) => format!("{}u", u.inner()),
        Expr::Literal(LiteralValue::Double(d)) => d.inner().to_string(),
        Expr::Literal(LiteralValue::Boolean(b)) => b.inner().to_string(),
        Expr::Literal(LiteralValue::Null) => "null".to_owned(),
        _ => "…".to_owned(),
    };
    let args: Vec<String> = call.args.iter().map(literal).collect();
    match (call.func_name.as_str(), &args[..]) {
        (operator, [left, right]) if operator.starts_with('_') && operator.ends_with('_') => {
            format!("{left} {} {right}", operator.trim_matches('_'))
        }
        (operators::NEGATE, [operand]) => format!("-{operand}"),
        (function, args) => {
            let dot = if call.target.is_some() { "." } else { "" };
            format!("{dot}{function}({})", args.join(", "))
        }
    }
}
