//! Timestamp accessors that answer in UTC, as the CEL spec requires ("Timestamp and Duration
//! functions": without a time-zone argument, the accessors use UTC).
//!
//! The engine (`cel` 0.15) answers in the offset a timestamp was written with:
//! `timestamp("2024-07-01T01:00:00+02:00").getHours()` is 1 there, 23 in UTC — and a client
//! that sends a timestamp (a header, a query parameter) chooses that offset, steering a
//! business-hours rule. So at load every accessor called without a time zone gets its
//! receiver wrapped in [`UTC`], which turns a timestamp into the same instant at offset zero
//! and passes anything else (a duration, whose accessors have no time zone) through unchanged.
//! An accessor with a time zone (`getHours("Europe/Berlin")`, `getHours("+05:30")`) gets its
//! receiver wrapped in [`IN_ZONE`] with that zone, which turns the timestamp into the same
//! instant at the zone's offset then, and loses its argument: the zone (an IANA name, or an
//! offset `[+-]HH:MM`, as cel-go's) is then a compiled argument, parsed once at load when it
//! is a literal.

use std::sync::Arc;

use cel::common::ast::{CallExpr, EntryExpr, Expr};
use cel::common::types::CelTimestamp;
use cel::common::value::CowVal;
use cel::{ExecutionError, IdedExpr, Value};
use chrono::{DateTime, FixedOffset, TimeZone, Utc};

use super::compiled::{Compile, argument};
use super::{NativeFunction, a, arguments, expect};

/// The wrapping function's name; `@` keeps it out of what a rule can write.
pub(crate) const UTC: &str = "@utc";

/// `@in_zone(timestamp, zone)`: the instant at the zone's offset.
pub(crate) const IN_ZONE: &str = "@in_zone";

/// The accessors of `google.protobuf.Timestamp` (and the four shared with
/// `google.protobuf.Duration`).
pub(crate) const ACCESSORS: [&str; 10] = [
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
pub(crate) fn rewrite_accessors(expr: &mut IdedExpr) {
    let id = expr.id;
    match &mut expr.expr {
        Expr::Call(call) => {
            if ACCESSORS.contains(&call.func_name.as_str()) {
                match (&mut call.target, call.args.as_mut_slice()) {
                    (Some(target), []) => wrap(target, id, UTC, None),
                    (None, [only]) => wrap(only, id, UTC, None),
                    (Some(target), [_]) => {
                        let zone = call.args.pop();
                        wrap(target, id, IN_ZONE, zone);
                    }
                    (None, [_, _]) => {
                        let zone = call.args.pop();
                        if let Some(receiver) = call.args.first_mut() {
                            wrap(receiver, id, IN_ZONE, zone);
                        }
                    }
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

/// `receiver` becomes `function(receiver[, zone])`, with the accessor's id (errors point at
/// the call).
fn wrap(receiver: &mut IdedExpr, id: u64, function: &str, zone: Option<IdedExpr>) {
    let original = std::mem::take(receiver);
    *receiver = IdedExpr {
        id,
        expr: Expr::Call(CallExpr {
            func_name: function.to_owned(),
            target: None,
            args: std::iter::once(original).chain(zone).collect(),
        }),
    };
}

/// A time zone: an IANA name or a fixed offset.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Zone {
    Named(chrono_tz::Tz),
    Fixed(FixedOffset),
}

impl Zone {
    /// The offset of this zone at `instant`.
    pub(crate) fn at<T: TimeZone>(&self, instant: &DateTime<T>) -> DateTime<FixedOffset> {
        match self {
            Zone::Named(zone) => instant.with_timezone(zone).fixed_offset(),
            Zone::Fixed(offset) => instant.with_timezone(offset),
        }
    }
}

/// Reads a time zone as cel-go's `timeZone` does: an IANA name (`Europe/Berlin`, `UTC`), or
/// an offset `[+-]HH:MM` when there is a colon; `""` is UTC.
pub(crate) fn parse_zone(zone: &Value) -> Result<Zone, String> {
    let Value::String(zone) = zone else {
        return Err(format!(
            "a time zone is a string, not {}",
            a(zone.type_of())
        ));
    };
    let Some((hours, minutes)) = zone.split_once(':') else {
        if zone.is_empty() {
            return Ok(Zone::Named(chrono_tz::UTC));
        }
        return zone.parse::<chrono_tz::Tz>().map(Zone::Named).map_err(|_| {
            format!(
                "unknown time zone {zone:?}: write an IANA name such as \"Europe/Berlin\" or an offset such as \"+05:30\""
            )
        });
    };
    let bad = || format!("time zone offset {zone:?} is not [+-]HH:MM within ±23:59");
    let digits = |s: &str, len: std::ops::RangeInclusive<usize>| {
        len.contains(&s.len()) && s.bytes().all(|b: u8| b.is_ascii_digit())
    };
    let (sign, hours) = match hours.split_at_checked(1) {
        Some(("+", rest)) => (1, rest),
        Some(("-", rest)) => (-1, rest),
        _ => (1, hours),
    };
    if !digits(hours, 1..=2) || !digits(minutes, 2..=2) {
        return Err(bad());
    }
    let (hours, minutes): (i32, i32) = (
        hours.parse().map_err(|_| bad())?,
        minutes.parse().map_err(|_| bad())?,
    );
    if hours > 23 || minutes > 59 {
        return Err(bad());
    }
    FixedOffset::east_opt(sign * (hours * 3600 + minutes * 60))
        .map(Zone::Fixed)
        .ok_or_else(bad)
}

pub(crate) const COMPILE_ZONE: Compile = |value| Ok(Arc::new(parse_zone(value)?));

/// [`IN_ZONE`]: a timestamp at the offset its instant has in the zone.
pub(crate) fn in_zone_function() -> NativeFunction {
    Box::new(|ftx| {
        let [timestamp, zone] = arguments(ftx, IN_ZONE, false)?;
        let instant: &CelTimestamp = expect(timestamp, "timezone", "value", "timestamp")?;
        let zone = argument(zone, "timezone", parse_zone)?;
        Ok(CowVal::owned(CelTimestamp::from(zone.at(instant.inner()))))
    })
}

/// [`UTC`]: a timestamp at offset zero; any other value unchanged.
pub(crate) fn utc_function() -> NativeFunction {
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
