use super::*;

fn at(rfc3339: &str) -> DateTime<FixedOffset> {
    DateTime::parse_from_rfc3339(rfc3339).expect("a time")
}

fn text(s: &str) -> Value {
    Value::String(Arc::new(s.to_owned()))
}

fn window(entries: &[(&str, Value)]) -> Value {
    let map: std::collections::HashMap<Key, Value> = entries
        .iter()
        .map(|(k, v)| (Key::String(Arc::new((*k).to_owned())), v.clone()))
        .collect();
    Value::Map(map.into())
}

fn list(items: Vec<Value>) -> Value {
    Value::List(Arc::new(items))
}

#[test]
fn within_includes_start_and_excludes_end() {
    let windows = compile_windows(&list(vec![
        window(&[
            ("start", text("2026-12-20T00:00:00Z")),
            ("end", text("2027-01-04T00:00:00+01:00")),
        ]),
        window(&[
            ("start", Value::Timestamp(at("2026-06-01T00:00:00Z"))),
            ("end", text("2026-06-02T00:00:00Z")),
        ]),
    ]))
    .expect("valid windows");
    assert!(windows.contains(&at("2026-12-20T00:00:00Z")));
    assert!(windows.contains(&at("2027-01-03T23:00:00+01:00")));
    assert!(
        !windows.contains(&at("2027-01-03T23:00:00Z")),
        "= 2027-01-04T00:00+01:00"
    );
    assert!(!windows.contains(&at("2026-12-19T23:59:59Z")));
    assert!(windows.contains(&at("2026-06-01T12:00:00Z")));
    assert!(
        !compile_windows(&list(vec![]))
            .expect("empty")
            .contains(&at("2026-06-01T12:00:00Z"))
    );
}

#[test]
fn malformed_windows_are_refused() {
    let good = || text("2026-12-20T00:00:00Z");
    let bad = [
        window(&[("start", good())]),
        window(&[("start", text("2026-12-21T00:00:00Z")), ("end", good())]),
        window(&[("start", good()), ("ends", text("2026-12-21T00:00:00Z"))]),
        window(&[
            ("start", text("2026-12-20")),
            ("end", text("2026-12-21T00:00:00Z")),
        ]),
        window(&[("start", Value::Int(1)), ("end", good())]),
        good(),
    ];
    for (i, w) in bad.into_iter().enumerate() {
        assert!(compile_windows(&list(vec![w])).is_err(), "case {i}");
    }
    assert!(compile_windows(&good()).is_err(), "not a list");
    let empty = compile_windows(&list(vec![window(&[("start", good()), ("end", good())])]))
        .expect("an empty window is allowed");
    assert!(!empty.contains(&at("2026-12-20T00:00:00Z")));
}

fn spec(s: &str) -> Spec {
    compile_spec(&text(s)).unwrap_or_else(|e| panic!("{s}: {e}"))
}

#[test]
fn weekdays_and_hours() {
    let office = spec("Mon-Fri 09:00-17:00");
    // 2026-03-02 is a Monday.
    assert!(office.contains(&at("2026-03-02T09:00:00Z")));
    assert!(office.contains(&at("2026-03-02T16:59:59Z")));
    assert!(!office.contains(&at("2026-03-02T17:00:00Z")));
    assert!(!office.contains(&at("2026-03-02T08:59:59Z")));
    assert!(!office.contains(&at("2026-03-07T10:00:00Z")), "Saturday");
    assert!(spec("sat,SUN 00:00-24:00").contains(&at("2026-03-08T23:59:59Z")));
    assert!(spec("Mon,Wed-Fri 10:00-11:00").contains(&at("2026-03-05T10:30:00Z")));
    assert!(!spec("Mon,Wed-Fri 10:00-11:00").contains(&at("2026-03-03T10:30:00Z")));
    assert!(
        spec("Fri-Mon 10:00-11:00").contains(&at("2026-03-08T10:30:00Z")),
        "wraps"
    );
    assert!(!spec("Fri-Mon 10:00-11:00").contains(&at("2026-03-04T10:30:00Z")));
}

#[test]
fn a_window_across_midnight_belongs_to_the_day_it_starts() {
    let night = spec("Fri 22:00-06:00");
    assert!(night.contains(&at("2026-03-06T22:00:00Z")), "Friday night");
    assert!(
        night.contains(&at("2026-03-07T05:59:00Z")),
        "Saturday morning"
    );
    assert!(!night.contains(&at("2026-03-07T06:00:00Z")));
    assert!(
        !night.contains(&at("2026-03-06T05:00:00Z")),
        "Friday morning"
    );
    assert!(
        !night.contains(&at("2026-03-07T22:30:00Z")),
        "Saturday night"
    );
}

#[test]
fn daylight_saving_follows_the_zone() {
    let office = spec("Mon-Fri 09:00-17:00");
    let berlin = parse_zone(&text("Europe/Berlin")).expect("a zone");
    // Winter (UTC+1) and summer (UTC+2): 08:30 UTC is 09:30 and 10:30 in Berlin.
    assert!(office.contains(&berlin.at(&at("2026-03-02T08:30:00Z"))));
    assert!(office.contains(&berlin.at(&at("2026-07-06T07:30:00Z"))));
    assert!(
        !office.contains(&berlin.at(&at("2026-07-06T06:30:00Z"))),
        "08:30 CEST"
    );
    // The Monday after the spring change (2026-03-29).
    assert!(
        office.contains(&berlin.at(&at("2026-03-30T07:00:00Z"))),
        "09:00 CEST"
    );
}

#[test]
fn malformed_specs_are_refused() {
    for bad in [
        "Mon-Fri",
        "Mon-Fri 9:00-17:00",
        "Mon-Fri 09:00-17:60",
        "Mon-Fri 09:00-25:00",
        "Mon-Fri 09:00",
        "Mon-Fry 09:00-17:00",
        "Monday 09:00-17:00",
        "Mon-Fri 09:00-09:00",
        "Mon-Fri 24:00-06:00",
        "Mon-Fri 09:00-17:00 extra",
        "",
        "Mon,,Fri 09:00-17:00",
    ] {
        assert!(compile_spec(&text(bad)).is_err(), "{bad:?}");
    }
    assert!(compile_spec(&list(vec![text("Mon 09:00-17:00"), Value::Int(1)])).is_err());
    assert_eq!(
        compile_spec(&list(vec![
            text("Mon 09:00-12:00"),
            text("Mon 13:00-17:00")
        ]))
        .expect("two windows")
        .0
        .len(),
        2
    );
}

#[test]
fn zones() {
    for good in [
        "UTC",
        "Europe/Berlin",
        "America/New_York",
        "+05:30",
        "-08:00",
        "+5:30",
        "",
    ] {
        assert!(parse_zone(&text(good)).is_ok(), "{good:?}");
    }
    for bad in [
        "Europe/Berln",
        "+24:00",
        "+05:60",
        "05:3",
        "+05:30:00",
        "utc+1",
        "+:30",
    ] {
        assert!(parse_zone(&text(bad)).is_err(), "{bad:?}");
    }
}

mod properties {
    use proptest::prelude::*;

    use super::*;

    const DAY_NAMES: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];

    /// A time in the week of Monday 2026-03-02, to the second, at `offset` hours from UTC.
    fn time() -> impl Strategy<Value = DateTime<FixedOffset>> {
        (0i64..7 * 86_400, -12i32..=14).prop_map(|(second, offset)| {
            let zone = FixedOffset::east_opt(offset * 3600).expect("an offset");
            (at("2026-03-02T00:00:00Z") + chrono::Duration::seconds(second)).with_timezone(&zone)
        })
    }

    fn hhmm(minute: u32) -> String {
        format!("{:02}:{:02}", minute / 60, minute % 60)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1000))]

        /// `within`: a time is in a list of windows exactly when some window has it in
        /// `[start, end)`.
        #[test]
        fn within_is_start_included_end_excluded(
            bounds in proptest::collection::vec((time(), 0i64..86_400), 0..4),
            t in time(),
        ) {
            let windows: Vec<Value> = bounds
                .iter()
                .map(|(start, length)| {
                    let end = *start + chrono::Duration::seconds(*length);
                    window(&[("start", text(&start.to_rfc3339())), ("end", text(&end.to_rfc3339()))])
                })
                .collect();
            let compiled = compile_windows(&list(windows)).expect("valid windows");
            let expected = bounds.iter().any(|(start, length)| {
                *start <= t && t < *start + chrono::Duration::seconds(*length)
            });
            prop_assert_eq!(compiled.contains(&t), expected);
        }

        /// `business_hours` with one day: in the window on that day (or, across midnight,
        /// from its start that day to its end the next), and nowhere else.
        #[test]
        fn one_day_windows(day in 0usize..7, start in 0u32..1440, end in 1u32..=1440, t in time()) {
            prop_assume!(start != end);
            let spec = spec(&format!("{} {}-{}", DAY_NAMES[day], hhmm(start), hhmm(end)));
            let today = t.weekday().num_days_from_monday() as usize;
            let minute = t.hour() * 60 + t.minute();
            let expected = if start < end {
                today == day && (start..end).contains(&minute)
            } else {
                (today == day && minute >= start) || (today == (day + 1) % 7 && minute < end)
            };
            prop_assert_eq!(spec.contains(&t), expected);
        }

        /// A range of days is the list of its days; a list is the union of its days.
        #[test]
        fn a_range_is_its_days(first in 0usize..7, length in 0usize..7, start in 0u32..1440, end in 1u32..=1440, t in time()) {
            prop_assume!(start != end);
            let last = (first + length) % 7;
            let hours = format!("{}-{}", hhmm(start), hhmm(end));
            let range = spec(&format!("{}-{} {hours}", DAY_NAMES[first], DAY_NAMES[last]));
            let days: Vec<&str> = (0..=length).map(|i| DAY_NAMES[(first + i) % 7]).collect();
            let listed = spec(&format!("{} {hours}", days.join(",")));
            let any_one = days.iter().any(|d| spec(&format!("{d} {hours}")).contains(&t));
            prop_assert_eq!(range.contains(&t), listed.contains(&t));
            prop_assert_eq!(listed.contains(&t), any_one);
        }
    }
}
