//! Warrant's functions through the engine: arguments compiled at load, refused at load when
//! invalid, compiled per call when computed, and errors (never crashes) on bad arguments.

use super::*;

/// `source` evaluated in an empty activation: `Ok(Ok(bool))`, an evaluation error or a load
/// error's text.
fn run(source: &str) -> Result<Result<bool, EvalError>, String> {
    evaluate(source).map_err(|e| e.to_string())
}

fn holds(source: &str) {
    assert_eq!(run(source), Ok(Ok(true)), "{source}");
}

fn fails_to_load(source: &str, message: &str) {
    match run(source) {
        Err(error) => assert!(error.contains(message), "{source}: {error}"),
        other => panic!("{source} loaded: {other:?}"),
    }
}

fn fails_to_evaluate(source: &str) {
    assert!(
        matches!(run(source), Ok(Err(_))),
        "{source}: {:?}",
        run(source)
    );
}

#[test]
fn every_function_is_warrants_own() {
    // Adding a function the engine already has would fail (or shadow it): each is new.
    let mut probe = Context::with_env(Arc::new(Env::stdlib()));
    for function in FUNCTIONS {
        assert!(
            probe.add_function(function.name, |a: i64| a).is_ok(),
            "{}",
            function.name
        );
    }
}

#[test]
fn glob_as_function_and_method() {
    holds(r#""/payments/42".glob("/payments/**")"#);
    holds(r#"glob("/payments", "/payments/**")"#);
    holds(r#"!"/paymentsx".glob("/payments/**")"#);
    holds(
        r#""spiffe://prod.example.org/ns/shop/sa/frontend".glob("spiffe://prod.example.org/ns/*/sa/frontend")"#,
    );
    holds(
        r#"!"spiffe://prod.example.org/ns/a/b/sa/frontend".glob("spiffe://prod.example.org/ns/*/sa/frontend")"#,
    );
    // A pattern computed at evaluation is compiled then.
    holds(r#"["/a/*", "/b/**"].exists(p, "/b/c/d".glob(p))"#);
    // A macro variable named `data` is not the policy's data.
    holds(r#"["/a/**"].exists(data, "/a/b".glob(data))"#);
    fails_to_load(
        r#""/a".glob("/a**")"#,
        r#"glob() pattern "/a**" fails on every request: "**" must be a whole segment"#,
    );
    fails_to_load(
        r#""/a".glob(1)"#,
        "glob() pattern … fails on every request: the pattern is an int, not a string",
    );
    fails_to_load(r#"glob("/a")"#, "glob() takes 2 arguments, not 1");
    fails_to_evaluate(r#"[request.path].exists(p, "/a".glob(p + "**"))"#);
    fails_to_load(
        r#"source.spiffe_id.glob("spiffe://Prod.example.org/ns/*/sa/frontend")"#,
        r#"never matches; write "spiffe://prod.example.org/ns/*/sa/frontend""#,
    );
    fails_to_load(
        r#"glob(request.hostname, "*.Example.org")"#,
        "never matches",
    );
    fails_to_evaluate(r#"glob(1, "/a")"#);
}

#[test]
fn in_cidr_single_and_list() {
    holds(r#"in_cidr("10.1.2.3", "10.0.0.0/8")"#);
    holds(r#"in_cidr("fd00::1", ["10.0.0.0/8", "fd00::/8"])"#);
    holds(r#"!in_cidr("192.168.0.1", ["10.0.0.0/8", "fd00::/8"])"#);
    holds(r#"in_cidr("::ffff:10.1.2.3", "10.0.0.0/8")"#);
    fails_to_load(
        r#"in_cidr("10.1.2.3", "10.0.0.0/33")"#,
        r#"in_cidr() cidr "10.0.0.0/33" fails on every request: "10.0.0.0/33" is not a CIDR range"#,
    );
    fails_to_load(
        r#"in_cidr("10.1.2.3", ["10.0.0.0/8", "nope"])"#,
        "in_cidr() cidr […] fails on every request",
    );
    fails_to_load(
        r#""10.1.2.3".in_cidr("10.0.0.0/8")"#,
        "in_cidr() is not a method: write in_cidr(address, cidr)",
    );
    // Not an IP: an evaluation error, not a silent mismatch.
    for address in ["", "10.1.2.3:80", "host.example", "[::1]"] {
        fails_to_evaluate(&format!(r#"in_cidr("{address}", "10.0.0.0/8")"#));
    }
}

#[test]
fn longest_prefix_picks_the_longest_key_or_null() {
    let map = r#"{"/": "public", "/payments/": "restricted", "/payments/health": "public"}"#;
    holds(&format!(
        r#"longest_prefix("/payments/42", {map}) == "restricted""#
    ));
    holds(&format!(
        r#"longest_prefix("/payments/health", {map}) == "public""#
    ));
    holds(&format!(r#"longest_prefix("x", {map}) == null"#));
    holds(r#"longest_prefix("/a/b", {"/a": 1, "/a/b": 2}) == 2"#);
    fails_to_load(
        r#"longest_prefix("/a", {1: "x"}) == null"#,
        "longest_prefix() map {…} fails on every request: the map's keys must be strings",
    );
    fails_to_load(
        r#"longest_prefix("/a", ["/a"]) == null"#,
        "the map is a list, not a map",
    );
}

#[test]
fn within_windows() {
    let freeze = r#"[{"start": "2026-12-20T00:00:00Z", "end": "2027-01-04T00:00:00Z"}]"#;
    holds(&format!(
        r#"within(timestamp("2026-12-24T12:00:00Z"), {freeze})"#
    ));
    holds(&format!(
        r#"!within(timestamp("2027-01-04T00:00:00Z"), {freeze})"#
    ));
    holds(
        r#"within(timestamp("2026-01-01T00:00:00Z"), [{"start": timestamp("2026-01-01T00:00:00Z"), "end": "2026-01-02T00:00:00Z"}])"#,
    );
    fails_to_load(
        r#"within(timestamp("2026-12-24T12:00:00Z"), [{"start": "2026-12-20", "end": "2027-01-04T00:00:00Z"}])"#,
        r#"within() windows […] fails on every request: window 0: start "2026-12-20" is not an RFC 3339 time"#,
    );
    fails_to_load(
        r#"within(timestamp("2026-12-24T12:00:00Z"), [{"start": "2027-01-04T00:00:00Z", "end": "2026-12-20T00:00:00Z"}])"#,
        "window 0 ends before it starts",
    );
    fails_to_evaluate(r#"within("2026-12-24T12:00:00Z", [])"#);
}

#[test]
fn business_hours_in_a_zone() {
    // 2026-03-02 is a Monday; Berlin is UTC+1 then.
    holds(
        r#"business_hours(timestamp("2026-03-02T08:30:00Z"), "Mon-Fri 09:00-17:00", "Europe/Berlin")"#,
    );
    holds(
        r#"!business_hours(timestamp("2026-03-02T07:30:00Z"), "Mon-Fri 09:00-17:00", "Europe/Berlin")"#,
    );
    holds(
        r#"business_hours(timestamp("2026-03-07T03:00:00Z"), ["Mon-Fri 09:00-17:00", "Fri 22:00-06:00"], "UTC")"#,
    );
    holds(r#"business_hours(timestamp("2026-03-02T08:30:00Z"), "Mon 14:00-15:00", "+05:30")"#);
    fails_to_load(
        r#"business_hours(now, "Mon-Fri 9-5", "UTC")"#,
        r#"business_hours() spec "Mon-Fri 9-5" fails on every request"#,
    );
    fails_to_load(
        r#"business_hours(now, "Mon-Fri 09:00-17:00", "Europe/Berln")"#,
        r#"business_hours() zone "Europe/Berln" fails on every request: unknown time zone"#,
    );
    fails_to_load(
        r#"business_hours(now, "Mon-Fri 09:00-17:00")"#,
        "business_hours() takes 3 arguments, not 2",
    );
    fails_to_load(
        r#"["Mon-Fry 09:00-17:00"].exists(s, business_hours(timestamp("2026-03-02T08:30:00Z"), s, "UTC"))"#,
        "business_hours() spec s (from […]) fails on every request: element 0",
    );
    fails_to_evaluate(
        r#"[request.path].exists(s, business_hours(timestamp("2026-03-02T08:30:00Z"), s, "UTC"))"#,
    );
    fails_to_evaluate(r#"business_hours(1, "Mon-Fri 09:00-17:00", "UTC")"#);
}

#[test]
fn accessor_zones_are_compiled_at_load_and_computed_ones_per_call() {
    holds(r#"timestamp("2026-07-01T12:00:00Z").getHours("Europe/Berlin") == 14"#);
    holds(r#"["Europe/Berlin"].all(z, timestamp("2026-07-01T12:00:00Z").getHours(z) == 14)"#);
    fails_to_load(
        r#"["Europe/Berln"].all(z, timestamp("2026-07-01T12:00:00Z").getHours(z) == 14)"#,
        "time zone z (from […]) fails on every request: element 0",
    );
    fails_to_evaluate(
        r#"[request.path].all(z, timestamp("2026-07-01T12:00:00Z").getHours(z) == 14)"#,
    );
    // Durations have no zone.
    fails_to_evaluate(r#"duration("1h").getHours("UTC") == 1"#);
}

#[test]
fn a_macro_over_a_range_known_at_load_compiles_each_element_at_load() {
    holds(r#"["/a/*", "/b/**"].exists(p, "/b/c/d".glob(p))"#);
    holds(r#"!["/a/*", "/b/**"].exists(p, "/c".glob(p))"#);
    holds(r#"{"/a/**": 1}.exists(p, "/a/x".glob(p))"#);
    holds(r#"["10.0.0.0/8"].exists(c, in_cidr("10.1.1.1", c))"#);
    fails_to_load(
        r#"["/a/*", "/admin**"].exists(p, "/b".glob(p))"#,
        r#"glob() pattern p (from […]) fails on every request: element 1: "**" must be a whole segment"#,
    );
    fails_to_load(
        r#"["Mon 09:00-17:00", "Sun 9-5"].exists(s, business_hours(now, s, "UTC"))"#,
        "business_hours() spec s (from […]) fails on every request: element 1",
    );
    // An inner macro's variable of the same name hides the outer one.
    holds(r#"["/x/**"].exists(p, [1].all(p, p == 1))"#);
    let mut env = CelEnv::default();
    env.compile(r#"["/a/*", "/b/**"].exists(p, "/b/c".glob(p))"#)
        .expect("compiles");
    assert_eq!(env.compiled_arguments, 1, "one table of compiled patterns");
}

#[test]
fn compiled_arguments_are_bound_once_per_literal() {
    let mut env = CelEnv::default();
    env.compile(r#""/a".glob("/a/**") && in_cidr("10.0.0.1", "10.0.0.0/8")"#)
        .expect("compiles");
    assert_eq!(env.compiled_arguments, 2);
    // A pattern computed per request is not compiled at load.
    env.compile(r#"[request.path].exists(p, "/a".glob(p))"#)
        .expect("compiles");
    assert_eq!(env.compiled_arguments, 2);
}
