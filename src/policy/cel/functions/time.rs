//! Timestamp accessors that answer in UTC, as the CEL spec requires ("Timestamp and Duration
//! functions": without a time-zone argument, the accessors use UTC).
//!
//! The engine (`cel` 0.15) answers in the offset a timestamp was written with:
//! `timestamp("2024-07-01T01:00:00+02:00").getHours()` is 1 there, 23 in UTC — and a client
//! that sends a timestamp (a header, a query parameter) chooses that offset, steering a
//! business-hours rule. So at load every accessor called without a time zone gets its
//! receiver wrapped in [`UTC`], which turns a timestamp into the same instant at offset zero
//! and passes anything else (a duration, whose accessors have no time zone) through unchanged.
//! Accessors with a time zone (`getHours("Europe/Berlin")`, `getHours("+05:30")`) convert the
//! instant themselves and are left alone.

use cel::ExecutionError;
use cel::IdedExpr;
use cel::common::ast::{CallExpr, EntryExpr, Expr};
use cel::common::types::CelTimestamp;
use cel::common::value::CowVal;
use chrono::Utc;

use super::NativeFunction;

/// The wrapping function's name; `@` keeps it out of what a rule can write.
pub const UTC: &str = "@utc";

/// The accessors of `google.protobuf.Timestamp` (and the four shared with
/// `google.protobuf.Duration`).
pub const ACCESSORS: [&str; 10] = [
    "getFullYear",
    "getMonth",
    "getDayOfYear",
    "getDayOfMonth",
    "getDate",
    "getDayOfWeek",
    "getHours",
    "getMinutes",
    "getSeconds",
    "getMilliseconds",
];

/// Wraps the receiver of every accessor called without a time zone in [`UTC`]. Recurses: call
/// it on a tree whose depth is bounded.
pub fn rewrite_accessors(expr: &mut IdedExpr) {
    let id = expr.id;
    match &mut expr.expr {
        Expr::Call(call) => {
            if ACCESSORS.contains(&call.func_name.as_str()) {
                match (&mut call.target, call.args.as_mut_slice()) {
                    (Some(target), []) => wrap(target, id),
                    (None, [only]) => wrap(only, id),
                    _ => {}
                }
            }
            if let Some(target) = &mut call.target {
                rewrite_accessors(target);
            }
            call.args.iter_mut().for_each(rewrite_accessors);
        }
        Expr::Select(select) => rewrite_accessors(&mut select.operand),
        Expr::List(list) => list.elements.iter_mut().for_each(rewrite_accessors),
        Expr::Map(map) => map.entries.iter_mut().for_each(rewrite_entry),
        Expr::Struct(structure) => structure.entries.iter_mut().for_each(rewrite_entry),
        Expr::Comprehension(comp) => {
            for part in [
                &mut comp.iter_range,
                &mut comp.accu_init,
                &mut comp.loop_cond,
                &mut comp.loop_step,
                &mut comp.result,
            ] {
                rewrite_accessors(part);
            }
        }
        _ => {}
    }
}

fn rewrite_entry(entry: &mut cel::common::ast::IdedEntryExpr) {
    match &mut entry.expr {
        EntryExpr::StructField(field) => rewrite_accessors(&mut field.value),
        EntryExpr::MapEntry(entry) => {
            rewrite_accessors(&mut entry.key);
            rewrite_accessors(&mut entry.value);
        }
    }
}

/// `receiver` becomes `@utc(receiver)`, with the accessor's id (errors point at the call).
fn wrap(receiver: &mut IdedExpr, id: u64) {
    let original = std::mem::take(receiver);
    *receiver = IdedExpr {
        id,
        expr: Expr::Call(CallExpr {
            func_name: UTC.to_owned(),
            target: None,
            args: vec![original],
        }),
    };
}

/// [`UTC`]: a timestamp at offset zero; any other value unchanged.
pub fn utc_function() -> NativeFunction {
    Box::new(|ftx| {
        let value = match (ftx.this.is_some(), ftx.args.len()) {
            (false, 1) => ftx.args.pop(),
            _ => None,
        };
        let Some(value) = value else {
            return Err(ExecutionError::invalid_argument_count(1, ftx.args.len()));
        };
        match value.downcast_ref::<CelTimestamp>() {
            Some(timestamp) => Ok(CowVal::owned(CelTimestamp::from(
                timestamp.inner().with_timezone(&Utc).fixed_offset(),
            ))),
            None => Ok(value),
        }
    })
}
