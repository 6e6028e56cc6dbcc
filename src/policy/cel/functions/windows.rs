//! Time windows: `within(time, windows)` for absolute windows (change freezes, maintenance),
//! `business_hours(time, spec, zone)` for weekly ones.
//!
//! - A window of `within` is a map `{"start": S, "end": E}`, each an RFC 3339 string
//!   (`"2026-12-20T00:00:00Z"`) or a timestamp; `start` is included, `end` excluded, and `end`
//!   may not come before `start` (an empty window, `end` = `start`, holds nothing). Any other key is refused (a misspelt `"ends"` would otherwise
//!   leave a window open).
//! - A business-hours spec is a string or a list of strings `DAYS HH:MM-HH:MM`. DAYS is a day
//!   (`Mon`), a range (`Mon-Fri`; `Fri-Mon` wraps over the weekend) or a comma list of them
//!   (`Sat,Sun`, `Mon,Wed-Fri`); days are English three-letter abbreviations in any case.
//!   Times are wall-clock times in `zone` from `00:00` to `24:00`; a window whose end is
//!   earlier than its start crosses midnight and belongs to the day it starts
//!   (`Fri 22:00-06:00` holds Saturday 05:00). The zone's daylight-saving rules apply: the
//!   window is in local time whatever the offset that day.

use std::sync::Arc;

use cel::Value;
use cel::common::types::{CelBool, CelTimestamp};
use cel::common::value::CowVal;
use cel::objects::Key;
use chrono::{DateTime, Datelike, FixedOffset, Timelike};

use super::compiled::{Compile, argument, one_or_list};
use super::time::parse_zone;
use super::{NativeFunction, a, arguments, expect};

/// Absolute windows, as `[start, end)` pairs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Windows(Vec<(DateTime<FixedOffset>, DateTime<FixedOffset>)>);

impl Windows {
    pub(crate) fn contains(&self, time: &DateTime<FixedOffset>) -> bool {
        self.0
            .iter()
            .any(|(start, end)| start <= time && time < end)
    }
}

fn instant(
    window: usize,
    key: &str,
    value: Option<&Value>,
) -> Result<DateTime<FixedOffset>, String> {
    match value {
        Some(Value::Timestamp(t)) => Ok(*t),
        Some(Value::String(text)) => DateTime::parse_from_rfc3339(text).map_err(|_| {
            format!(
                "window {window}: {key} {text:?} is not an RFC 3339 time (\"2026-12-20T00:00:00Z\")"
            )
        }),
        Some(other) => Err(format!(
            "window {window}: {key} is {}, not an RFC 3339 string or a timestamp",
            a(other.type_of())
        )),
        None => Err(format!("window {window} has no {key:?}")),
    }
}

fn compile_windows(windows: &Value) -> Result<Windows, String> {
    let Value::List(list) = windows else {
        return Err(format!(
            "windows are a list of maps {{\"start\": …, \"end\": …}}, not {}",
            a(windows.type_of())
        ));
    };
    list.iter()
        .enumerate()
        .map(|(i, window)| {
            let Value::Map(map) = window else {
                return Err(format!(
                    "window {i} is {}, not a map {{\"start\": …, \"end\": …}}",
                    a(window.type_of())
                ));
            };
            if let Some(other) = map.map.keys().find(
                |k| !matches!(k, Key::String(s) if s.as_str() == "start" || s.as_str() == "end"),
            ) {
                let other = match other {
                    Key::String(s) => format!("{:?}", s.as_str()),
                    Key::Int(i) => i.to_string(),
                    Key::Uint(u) => format!("{u}u"),
                    Key::Bool(b) => b.to_string(),
                };
                return Err(format!(
                    "window {i} has key {other}; a window has only \"start\" and \"end\""
                ));
            }
            let get = |key: &str| map.map.get(&Key::String(Arc::new(key.to_owned())));
            let start = instant(i, "start", get("start"))?;
            let end = instant(i, "end", get("end"))?;
            if end < start {
                return Err(format!("window {i} ends before it starts"));
            }
            Ok((start, end))
        })
        .collect::<Result<_, _>>()
        .map(Windows)
}

pub(crate) const COMPILE_WINDOWS: Compile = |value| Ok(Arc::new(compile_windows(value)?));

/// The `within` function.
pub(crate) fn within() -> NativeFunction {
    Box::new(|ftx| {
        let [time, windows] = arguments(ftx, "within", false)?;
        let time: &CelTimestamp = expect(time, "within", "time", "timestamp")?;
        let windows = argument(windows, "within", compile_windows)?;
        Ok(CowVal::owned(CelBool::from(windows.contains(time.inner()))))
    })
}

const DAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

/// One `DAYS HH:MM-HH:MM` window: days from Monday, minutes of the day.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Weekly {
    days: [bool; 7],
    start: u32,
    end: u32,
}

/// A business-hours spec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Spec(Vec<Weekly>);

impl Spec {
    /// Whether the wall-clock time `local` falls in the spec.
    pub(crate) fn contains(&self, local: &DateTime<FixedOffset>) -> bool {
        let day = local.weekday().num_days_from_monday() as usize;
        let yesterday = (day + 6) % 7;
        let minute = local.hour() * 60 + local.minute();
        self.0.iter().any(|w| {
            if w.start < w.end {
                w.days[day] && (w.start..w.end).contains(&minute)
            } else {
                (w.days[day] && minute >= w.start) || (w.days[yesterday] && minute < w.end)
            }
        })
    }
}

fn day(name: &str, spec: &str) -> Result<usize, String> {
    DAYS.iter()
        .position(|d| d.eq_ignore_ascii_case(name))
        .ok_or_else(|| {
            format!("{spec:?}: {name:?} is not a day; write Mon, Tue, Wed, Thu, Fri, Sat or Sun")
        })
}

fn minutes(time: &str, spec: &str) -> Result<u32, String> {
    let bad = || format!("{spec:?}: {time:?} is not a time HH:MM from 00:00 to 24:00");
    let (h, m) = time.split_once(':').ok_or_else(bad)?;
    if h.len() != 2 || m.len() != 2 || !(h.bytes().chain(m.bytes())).all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let (h, m): (u32, u32) = (h.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
    match (h, m) {
        (0..=23, 0..=59) | (24, 0) => Ok(h * 60 + m),
        _ => Err(bad()),
    }
}

fn parse_weekly(spec: &str) -> Result<Weekly, String> {
    let shape = || format!("{spec:?} is not \"DAYS HH:MM-HH:MM\" (\"Mon-Fri 09:00-17:00\")");
    let mut parts = spec.split_whitespace();
    let (Some(day_list), Some(times), None) = (parts.next(), parts.next(), parts.next()) else {
        return Err(shape());
    };
    let mut days = [false; 7];
    for item in day_list.split(',') {
        match item.split_once('-') {
            Some((first, last)) => {
                let (first, last) = (day(first, spec)?, day(last, spec)?);
                let mut d = first;
                loop {
                    days[d] = true;
                    if d == last {
                        break;
                    }
                    d = (d + 1) % 7;
                }
            }
            None => days[day(item, spec)?] = true,
        }
    }
    let (start, end) = times.split_once('-').ok_or_else(shape)?;
    let (start, end) = (minutes(start, spec)?, minutes(end, spec)?);
    if start == 24 * 60 {
        return Err(format!(
            "{spec:?}: a window cannot start at 24:00; write 00:00 on the next day"
        ));
    }
    if start == end {
        return Err(format!(
            "{spec:?}: the window is empty; for a whole day write 00:00-24:00"
        ));
    }
    Ok(Weekly { days, start, end })
}

fn compile_spec(spec: &Value) -> Result<Spec, String> {
    let one = |value: &Value| match value {
        Value::String(text) => parse_weekly(text),
        other => Err(format!(
            "a business-hours spec is a string \"DAYS HH:MM-HH:MM\", not {}",
            a(other.type_of())
        )),
    };
    one_or_list(spec, one).map(Spec)
}

pub(crate) const COMPILE_SPEC: Compile = |value| Ok(Arc::new(compile_spec(value)?));

/// The `business_hours` function.
pub(crate) fn business_hours() -> NativeFunction {
    Box::new(|ftx| {
        let [time, spec, zone] = arguments(ftx, "business_hours", false)?;
        let instant: &CelTimestamp = expect(time, "business_hours", "time", "timestamp")?;
        let spec = argument(spec, "business_hours", compile_spec)?;
        let zone = argument(zone, "business_hours", parse_zone)?;
        let local = zone.at(instant.inner());
        Ok(CowVal::owned(CelBool::from(spec.contains(&local))))
    })
}

#[cfg(test)]
mod tests;
