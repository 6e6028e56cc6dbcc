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

/// Checks `expr` (recursively: its depth must be bounded) against `root`, the context the
/// policy's expressions run in.
pub fn check(expr: &IdedExpr, root: &Context<'_, '_>) -> Result<(), CompileError> {
    check_result(expr)?;
    check_literals(expr, root)
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
        Expr::Ident(name) => environment::variable(name).is_some(),
        Expr::Select(select) => !select.test && is_variable_value(&select.operand),
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
            if let Some(target) = &call.target {
                check_literals(target, root)?;
            }
            call.args
                .iter()
                .try_for_each(|arg| check_literals(arg, root))
        }
        Expr::Struct(structure) => Err(CompileError::Usage(format!(
            "message literal {}{{...}}: Warrant declares no message types; write a map literal {{\"key\": value}}",
            structure.type_name
        ))),
        Expr::Select(select) => check_literals(&select.operand, root),
        Expr::List(list) => list
            .elements
            .iter()
            .try_for_each(|e| check_literals(e, root)),
        Expr::Map(map) => map.entries.iter().try_for_each(|entry| match &entry.expr {
            EntryExpr::MapEntry(entry) => {
                check_literals(&entry.key, root)?;
                check_literals(&entry.value, root)
            }
            EntryExpr::StructField(field) => check_literals(&field.value, root),
        }),
        Expr::Comprehension(comp) => [
            &comp.iter_range,
            &comp.accu_init,
            &comp.loop_cond,
            &comp.loop_step,
            &comp.result,
        ]
        .into_iter()
        .try_for_each(|part| check_literals(part, root)),
        _ => Ok(()),
    }
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
