use super::*;

/// Runs `f` on a thread with a small stack (smaller than any runtime's default), as a Check
/// on an unusual thread would.
fn on_small_stack<R: Send + 'static>(f: impl FnOnce() -> R + Send + 'static) -> R {
    std::thread::Builder::new()
        .stack_size(256 << 10)
        .spawn(f)
        .expect("spawn")
        .join()
        .expect("the thread must not crash")
}

/// [`evaluate`] on a small stack, the evaluation's error reduced to its occurrence.
fn evaluate_on_small_stack(source: String) -> Result<Result<bool, ()>, CompileError> {
    on_small_stack(move || evaluate(&source).map(|r| r.map_err(|_| ())))
}

/// Compiles and evaluates `source` in an empty activation.
fn evaluate(source: &str) -> Result<Result<bool, EvalError>, CompileError> {
    let mut env = CelEnv::default();
    let expression = env.compile(source)?;
    let activation = Activation {
        scope: env.root.new_inner_scope(),
        variables: None,
    };
    Ok(with_evaluation_stack(|| env.eval(&expression, &activation)))
}

#[test]
fn engine_has_no_matches_of_its_own() {
    // Warrant's `matches` is added to the root context, which only works while the engine
    // is built without its `regex` feature (Cargo.toml); otherwise the engine's would win
    // silently, compiling every pattern per call.
    let mut root = Context::with_env(Arc::new(Env::stdlib()));
    assert!(root.add_function("matches", |a: i64| a).is_ok());
}

mod functions;

#[test]
fn matches_arity_and_types() {
    let mut env = CelEnv::default();
    for source in [r#""a".matches("a", "b")"#, r#"matches("a")"#] {
        assert!(
            matches!(env.compile(source), Err(CompileError::Usage(_))),
            "{source}"
        );
    }
    assert!(matches!(evaluate(r#"matches(1, "a")"#), Ok(Err(_))));
}

/// A kind of nesting and how to write it `n` levels deep.
type Shape = (&'static str, fn(usize) -> String);

/// Every shape of nesting.
const SHAPES: &[Shape] = &[
    ("+ chain", |n| format!("{} == 0", vec!["0"; n].join(" + "))),
    ("* chain", |n| format!("{} == 1", vec!["1"; n].join(" * "))),
    ("- chain", |n| format!("{} < 1", vec!["1"; n].join(" - "))),
    ("/ and % chain", |n| {
        format!("{} == 1", vec!["1"; n].join(" / 1 % "))
    }),
    ("== chain", |n| format!("1 == 1{}", " == true".repeat(n))),
    ("< chain", |n| format!("1 < 2{}", " == true".repeat(n))),
    ("in chain", |n| {
        format!("1 in [1]{}", " in [true]".repeat(n))
    }),
    ("string + chain", |n| {
        format!("{} == ''", vec!["''"; n].join(" + "))
    }),
    ("list + chain", |n| {
        format!("1 in {}", vec!["[1]"; n].join(" + "))
    }),
    ("parentheses", |n| {
        format!("{}true{}", "(".repeat(n), ")".repeat(n))
    }),
    ("parenthesised +", |n| {
        format!("{}0{} == 0", "(".repeat(n), " + 0)".repeat(n))
    }),
    ("list literals", |n| {
        format!("size({}1{}) == 1", "[".repeat(n), "]".repeat(n))
    }),
    ("map literals", |n| {
        format!("size({}1{}) == 1", "{1: ".repeat(n), "}".repeat(n))
    }),
    ("calls", |n| {
        format!("{}true{}", "bool(".repeat(n), ")".repeat(n))
    }),
    ("member calls", |n| {
        format!(
            "optional.none(){}.hasValue()",
            ".or(optional.none())".repeat(n)
        )
    }),
    ("field selection", |n| {
        format!("context{} == ''", ".a".repeat(n))
    }),
    ("indexing", |n| {
        format!("context{} == ''", "['a']".repeat(n))
    }),
    ("ternaries", |n| {
        format!("{}true", "false ? false : ".repeat(n))
    }),
    ("nested ternaries", |n| {
        format!("{}true{}", "(true ? ".repeat(n), " : false)".repeat(n))
    }),
    ("logical not", |n| format!("{}true", "!".repeat(n))),
    ("negation", |n| format!("{}1 != 0", "-".repeat(n))),
    ("all()", |n| {
        format!("{}true{}", "[1].all(x, ".repeat(n), ")".repeat(n))
    }),
    ("map()", |n| {
        format!("size({}1{}) == 1", "[1].map(x, ".repeat(n), ")".repeat(n))
    }),
    ("has()", |n| format!("has(context{})", ".a".repeat(n))),
];

#[test]
fn every_shape_is_bounded_and_what_loads_evaluates_on_a_small_stack() {
    for &(shape, build) in SHAPES {
        // The deepest `n` that loads, then one more that must be refused as too deep.
        let mut deepest_ok = None;
        for n in 1..=MAX_DEPTH + 2 {
            let source = build(n);
            let result = evaluate_on_small_stack(source);
            match result {
                Ok(_) => deepest_ok = Some(n),
                Err(CompileError::NestedTooDeeply { depth, .. }) => {
                    assert!(depth > MAX_DEPTH, "{shape}: {depth}");
                    break;
                }
                Err(other) => panic!("{shape} at {n}: {other}"),
            }
        }
        let deepest = deepest_ok.unwrap_or(0);
        assert!(deepest <= MAX_DEPTH, "{shape}: {deepest} levels loaded");
        // Macros expand to several levels each; everything else nests about one a level.
        let floor = if shape.ends_with("()") {
            12
        } else {
            MAX_DEPTH / 2
        };
        assert!(deepest >= floor, "{shape}: only {deepest} levels load");
    }
}

#[test]
fn the_field_report_allowlist_is_refused_with_the_limit() {
    let chain: Vec<String> = (0..1500)
        .map(|i| format!("[\"spiffe://prod.example.org/ns/team{i}/sa/api\"]"))
        .collect();
    let source = format!("source.spiffe_id in {}", chain.join(" + "));
    let error = on_small_stack(move || evaluate(&source).err()).expect("refused");
    let text = error.to_string();
    assert!(
        text.starts_with("expression is nested too deeply (about 150"),
        "{text}"
    );
    assert!(text.contains("levels; the limit is 64)"), "{text}");
    assert!(text.contains("list literal"), "{text}");
}

#[test]
fn huge_inputs_of_every_shape_are_refused_without_crashing() {
    let n = 50_000;
    for &(shape, build) in SHAPES {
        if shape == "has()" {
            continue; // has() of a chain is the field-selection shape
        }
        let source = build(n);
        let result = evaluate_on_small_stack(source);
        assert!(
            matches!(result, Err(CompileError::NestedTooDeeply { .. })),
            "{shape}: {result:?}"
        );
    }
}

#[test]
fn flat_chains_and_large_literals_keep_working() {
    let ids: Vec<String> = (0..5000)
        .map(|i| format!("'spiffe://prod.example.org/ns/team{i}/sa/api'"))
        .collect();
    for source in [
        vec!["1 == 2"; 10_000].join(" || ") + " || true",
        vec!["1 == 1"; 10_000].join(" && "),
        format!(
            "'spiffe://prod.example.org/ns/team4999/sa/api' in [{}]",
            ids.join(", ")
        ),
        format!(
            "size({{{}}}) == 5000",
            (0..5000)
                .map(|i| format!("{i}: 1"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    ] {
        let result =
            on_small_stack(move || evaluate(&source).map(|r| r.map_err(|e| e.to_string())));
        assert!(matches!(result, Ok(Ok(true))), "{result:?}");
    }
}

#[test]
fn the_scan_bounds_the_parsed_depth() {
    for &(shape, build) in SHAPES {
        if shape.ends_with("()") {
            continue; // macros expand after the scan; the tree check covers them
        }
        for n in [1, 7, 30] {
            let source = build(n);
            let tree = stacker::grow(PARSE_STACK, || Env::stdlib().parser().parse(&source))
                .expect("parses");
            let bound = nesting::estimate(&source).expect("lexes");
            assert!(
                nesting::depth(&tree) <= bound,
                "{shape} {n}: {} > {bound}",
                nesting::depth(&tree)
            );
        }
    }
}

#[test]
fn header_names_with_capitals_are_refused_in_every_lookup() {
    for source in [
        r#""X-Internal-Debug" in request.headers"#,
        r#"request.headers["X-Internal-Debug"] == "1""#,
        r#"request.headers[?"X-Debug"].hasValue()"#,
        r#"request.headers.?Authorization.hasValue()"#,
        r#"has(request.headers.Authorization)"#,
        r#"request.headers.Authorization == "x""#,
        r#"request.headers.exists(k, k == "X-Debug")"#,
        r#"request.headers.exists(h, "X-Debug" != h)"#,
        r#"request.headers.all(k, !(k in ["x-a", "X-B"]))"#,
        r#"request.headers.exists(k, k.startsWith("X-"))"#,
        r#"request.headers.filter(k, k.endsWith("-Debug")).size() > 0"#,
        r#""X-Debug" in request["headers"]"#,
        r#"request["headers"]["X-Debug"] == "1""#,
        r#"["X-Debug", "x-admin"].exists(h, h in request.headers)"#,
        r#"["x-admin", "X-Debug"].exists(h, request.headers[h] == "1")"#,
        r#"request.headers.exists(k, k.matches("^X-Debug$"))"#,
        r#"dyn(request.headers)["X-Debug"] == "1""#,
        r#"[request].exists(r, "X-Debug" in r.headers)"#,
        r#"request.headers.exists(k, k in {"X-Debug": true})"#,
        r#"[request.headers].exists(h, "X-Debug" in h)"#,
    ] {
        let error = CelEnv::default()
            .compile(source)
            .expect_err(source)
            .to_string();
        assert!(
            error.contains("lower-case names; write \""),
            "{source}: {error}"
        );
    }
    let error = CelEnv::default()
        .compile(r#""X-Internal-Debug" in request.headers"#)
        .expect_err("capitals")
        .to_string();
    assert_eq!(
        error,
        r#"header "X-Internal-Debug" never matches: request.headers has lower-case names; write "x-internal-debug""#
    );
    for source in [
        r#""x-internal-debug" in request.headers"#,
        r#"request.headers["x-debug"] == "X-Debug""#,
        r#"request.headers.exists(k, k == "x-debug" && request.headers[k] == "ON")"#,
        r#"context.exists(k, k == "Service")"#,
        r#"[1].exists(request, "X" in {"X": 1})"#,
        r#"request.headers.authorization.startsWith("Bearer ")"#,
        r#"request.headers.exists(k, k.matches("^x-[a-z]+$"))"#,
        r#"request.headers.exists(k, k.matches("(?i)^X-Debug$"))"#,
        r#"request.headers.exists(k, k.matches("^x-\\S+[A-Za-z]$"))"#,
        r#"["X-A"].exists(h, h == "X-A")"#,
        r#"request.headers.exists(k, k.matches("X-Debug|x-other"))"#,
        // A macro variable rebound by an inner macro, and lists mixing headers with other
        // maps, whose keys keep their case.
        r#"request.headers.exists(k, context.exists(k, k == "Service"))"#,
        r#"request.headers.exists(h, h.startsWith("x-") && source.segments.exists(h, h == "Shop"))"#,
        r#"[request.headers, context].exists(m, "Service" in m)"#,
        r#"[request.query, request.headers].exists(m, m.exists(k, k == "Debug"))"#,
    ] {
        assert!(CelEnv::default().compile(source).is_ok(), "{source}");
    }
    for source in [
        r#""x-debug " in request.headers"#,
        r#"request.headers["x-débug"] == "1""#,
    ] {
        assert!(
            matches!(
                CelEnv::default().compile(source),
                Err(CompileError::NotAHeaderName { .. })
            ),
            "{source}"
        );
    }
    assert!(matches!(
        CelEnv::default().compile(r#"request["hostnme"] == "x""#),
        Err(CompileError::UnknownField { .. })
    ));
}

#[test]
fn namespaced_functions_are_checked_by_their_full_name() {
    assert!(matches!(
        evaluate("optional.of(1).hasValue() && !optional.none().hasValue()"),
        Ok(Ok(true))
    ));
    assert!(matches!(
        CelEnv::default().compile("optional.bogus(1)"),
        Err(CompileError::UnknownFunction { .. })
    ));
    assert!(matches!(
        CelEnv::default().compile("nosuch.thing(1)"),
        Err(CompileError::UnknownFunction { .. })
    ));
}

/// `source` evaluated to an int.
fn int(source: &str) -> i64 {
    let mut env = CelEnv::default();
    let expression = env
        .compile(source)
        .unwrap_or_else(|e| panic!("{source}: {e}"));
    let activation = Activation {
        scope: env.root.new_inner_scope(),
        variables: None,
    };
    match Value::resolve(&expression.expr, &activation.scope) {
        Ok(Value::Int(i)) => i,
        other => panic!("{source}: {other:?}"),
    }
}

#[test]
fn timestamp_accessors_answer_in_utc_without_a_zone() {
    // 2024-06-30T23:00:00Z, a Sunday, day 182 of a leap year; written at +02:00.
    let june = r#"timestamp("2024-07-01T01:00:00+02:00")"#;
    // 2024-12-31T23:30:00.250Z, a Tuesday, the last day of a leap year; written at +01:00.
    let new_year = r#"timestamp("2025-01-01T00:30:00.250+01:00")"#;
    for (timestamp, accessor, utc, zoned) in [
        (june, "getFullYear", 2024, [2024, 2024, 2024, 2024]),
        (june, "getMonth", 5, [6, 6, 5, 6]),
        (june, "getDayOfYear", 181, [182, 182, 181, 182]),
        (june, "getDayOfMonth", 29, [0, 0, 29, 0]),
        (june, "getDate", 30, [1, 1, 30, 1]),
        (june, "getDayOfWeek", 0, [1, 1, 0, 1]),
        (june, "getHours", 23, [1, 1, 19, 4]),
        (june, "getMinutes", 0, [0, 0, 0, 30]),
        (june, "getSeconds", 0, [0, 0, 0, 0]),
        (june, "getMilliseconds", 0, [0, 0, 0, 0]),
        (new_year, "getFullYear", 2024, [2025, 2025, 2024, 2025]),
        (new_year, "getMonth", 11, [0, 0, 11, 0]),
        (new_year, "getDayOfYear", 365, [0, 0, 365, 0]),
        (new_year, "getDayOfMonth", 30, [0, 0, 30, 0]),
        (new_year, "getDate", 31, [1, 1, 31, 1]),
        (new_year, "getDayOfWeek", 2, [3, 3, 2, 3]),
        (new_year, "getHours", 23, [0, 0, 18, 5]),
        (new_year, "getMinutes", 30, [30, 30, 30, 0]),
        (new_year, "getSeconds", 0, [0, 0, 0, 0]),
        (new_year, "getMilliseconds", 250, [250, 250, 250, 250]),
    ] {
        assert_eq!(
            int(&format!("{timestamp}.{accessor}()")),
            utc,
            "{timestamp}.{accessor}()"
        );
        // The zone the timestamp was written in, by offset and by name; New York (EST/EDT);
        // and India (+05:30).
        let zones = match timestamp {
            t if t == june => ["+02:00", "Europe/Berlin", "America/New_York", "+05:30"],
            _ => ["+01:00", "Europe/Berlin", "-05:00", "Asia/Kolkata"],
        };
        for (zone, expected) in zones.iter().zip(zoned) {
            let source = format!("{timestamp}.{accessor}(\"{zone}\")");
            assert_eq!(int(&source), expected, "{source}");
        }
    }
}

#[test]
fn utc_accessors_everywhere_and_durations_unchanged() {
    for (source, expected) in [
        // Inside macros, lists and arithmetic; a timestamp moved by a duration keeps the
        // instant, not the offset.
        (
            r#"[timestamp("2024-01-01T00:00:00-08:00")].map(t, t.getHours())[0]"#,
            8,
        ),
        (
            r#"(timestamp("2024-01-01T23:00:00-02:00") + duration("1h")).getDate()"#,
            2,
        ),
        (r#"timestamp(0).getFullYear()"#, 1970),
        (r#"duration("3h30m").getHours()"#, 3),
        (r#"duration("3h30m").getMinutes()"#, 210),
        (r#"duration("1.5s").getMilliseconds()"#, 1500),
    ] {
        assert_eq!(int(source), expected, "{source}");
    }
    assert!(matches!(
        evaluate(r#"'x'.getHours() == 1"#),
        Ok(Err(EvalError::Execution { .. }))
    ));
}

#[test]
fn what_the_scan_cannot_read_never_reaches_the_parser_deep() {
    // Valid CEL whose tokens a careless scan would misread: `0xe+0xe` is hex, then `+`.
    let hex = format!("1 == 0xe{}", "+0xe".repeat(50_000));
    // Text the engine's lexer refuses and then reads past: an invalid escape, a line break
    // in a single-line string, a bad backquoted identifier.
    let hidden: Vec<String> = [r#""\q"#, "\"a\n", "`a+b`"]
        .iter()
        .map(|start| format!("{start} {}", "a+".repeat(50_000)))
        .collect();
    for source in std::iter::once(hex).chain(hidden) {
        let result = evaluate_on_small_stack(source);
        assert!(
            matches!(
                result,
                Err(CompileError::NestedTooDeeply { .. } | CompileError::Syntax(_))
            ),
            "{result:?}"
        );
    }
    // Short malformed text goes to the parser, whose own guard against nesting is reported
    // as what it is.
    let source = format!("`a+b` + {}1{}", "(".repeat(100), ")".repeat(100));
    let result = evaluate_on_small_stack(source);
    assert!(
        matches!(result, Err(CompileError::NestedTooDeeply { .. })),
        "{result:?}"
    );
}

#[test]
fn syntax_errors_far_along_one_line_are_reported_not_a_panic() {
    let source = format!(r#"request.path == "{}")"#, "a".repeat(70_000));
    let error = on_small_stack(move || evaluate(&source).err()).expect("syntax error");
    let text = error.to_string();
    assert!(text.starts_with("CEL syntax error: "), "{text}");
    assert!(text.ends_with("at 1:70019"), "{text}");
    let error = CelEnv::default()
        .compile("request.path = \"x\"")
        .expect_err("syntax");
    assert_eq!(
        error.to_string(),
        "CEL syntax error: token recognition error at: '= ' at 1:14; extraneous input '\"x\"' expecting <EOF> at 1:16"
    );
}

#[test]
fn literals_that_a_normalized_attribute_never_equals_are_refused() {
    for (source, message) in [
        (
            r#"request.hostname == "Admin.Example.Org""#,
            r#"request.hostname is always in lower case, without port or trailing dot: "Admin.Example.Org" never matches; write "admin.example.org""#,
        ),
        (
            r#"request.hostname == "admin.example.org.""#,
            r#"write "admin.example.org""#,
        ),
        (
            r#"request.hostname != "admin.example.org:443""#,
            r#"write "admin.example.org""#,
        ),
        (
            r#"request.hostname in ["a.example.org", "B.example.org"]"#,
            r#"write "b.example.org""#,
        ),
        (
            r#""Admin.Example.Org" == request.host"#,
            r#"request.host is always in lower case"#,
        ),
        (r#"request.scheme == "HTTPS""#, r#"write "https""#),
        (
            r#"request.method == "delete""#,
            r#"request.method is always in upper case: "delete" never matches; write "DELETE""#,
        ),
        (r#"request.method in ["GET", "post"]"#, r#"write "POST""#),
        (
            r#"request.headers[":authority"] == "Admin.Example.Org""#,
            r#"request.headers[":authority"] is always in lower case"#,
        ),
        (r#"request.headers[":method"] == "get""#, r#"write "GET""#),
        (
            r#"request.hostname.endsWith(".Example.org")"#,
            r#"write ".example.org""#,
        ),
        (r#"request.host.startsWith("Admin.")"#, r#"write "admin.""#),
        (
            r#"source.trust_domain == "Prod.example.org""#,
            r#"write "prod.example.org""#,
        ),
        (
            r#"source.spiffe_id == "spiffe://Prod.example.org/ns/Shop/sa/api""#,
            r#"write "spiffe://prod.example.org/ns/Shop/sa/api""#,
        ),
        (
            r#"source.principal.startsWith("SPIFFE://prod.example.org/")"#,
            r#"write "spiffe://prod.example.org/""#,
        ),
        (
            r#""Web.Example.Org" in source.certificate.dns_names"#,
            r#"source.certificate.dns_names is always in lower case"#,
        ),
    ] {
        let error = CelEnv::default()
            .compile(source)
            .expect_err(source)
            .to_string();
        assert!(error.contains(message), "{source}: {error}");
    }
    for source in [
        r#"request.hostname == "admin.example.org""#,
        r#"request.hostname == "[::1]""#,
        r#"request.host == "admin.example.org:8443""#,
        r#"request.method in ["GET", "HEAD"]"#,
        r#"source.spiffe_id == "spiffe://prod.example.org/ns/Shop/sa/API""#,
        r#"request.path == "/Admin""#,
        r#"request.headers["x-tenant"] == "Shop""#,
        r#"destination.principal == "spiffe://Prod.example.org/x""#,
        r#"source.certificate.dns_names.exists(n, source.segments.exists(n, n == "Shop"))"#,
        r#"[request.hostname].exists(h, ["Shop"].exists(h, h == "Shop"))"#,
        r#"[request.hostname, source.namespace].exists(v, v == "Shop")"#,
    ] {
        assert!(CelEnv::default().compile(source).is_ok(), "{source}");
    }
}

#[test]
fn what_fails_on_every_request_fails_the_load() {
    for (source, message) in [
        (
            r#"now - request.time > duration("1d")"#,
            r#"duration("1d") fails on every request"#,
        ),
        (
            r#"now > timestamp("2025-01-01")"#,
            r#"timestamp("2025-01-01") fails on every request"#,
        ),
        (
            r#"now.getHours("Europe/Berln") > 9"#,
            r#"time zone "Europe/Berln" fails on every request: unknown time zone"#,
        ),
        (
            r#"now.getDayOfWeek("+25:00") == 1"#,
            r#"time zone "+25:00" fails on every request"#,
        ),
        ("Foo{a: 1} == 1", "message literal Foo{...}"),
        ("request.size() > 1 / 0", "1 / 0 fails on every request"),
        ("uint(-1) > 0u", "uint(-1) fails on every request"),
        (
            "9223372036854775807 + 1 > 0",
            "9223372036854775807 + 1 fails",
        ),
        (
            "now > timestamp(253402300800)",
            "timestamp(253402300800) fails",
        ),
        ("1", "the expression is a number, not a bool"),
        (r#""true""#, "the expression is a string, not a bool"),
        ("[true]", "the expression is a list, not a bool"),
        ("request.method", "the expression is a variable's value"),
        ("context.enabled", "the expression is a variable's value"),
        ("1 + 1", "the expression is arithmetic"),
    ] {
        let error = CelEnv::default()
            .compile(source)
            .expect_err(source)
            .to_string();
        assert!(error.contains(message), "{source}: {error}");
    }
    for source in [
        r#"now - request.time < duration("1h30m")"#,
        r#"now > timestamp("2025-01-01T00:00:00Z")"#,
        r#"now.getHours("Europe/Berlin") > 9 && now.getHours("-05:30") < 20"#,
        r#"has(request.headers.authorization)"#,
        "true",
        r#"duration(context.ttl) > duration("0s")"#,
        r#"request.path == "/a" + "/b""#,
        "1 + 2 == 3",
    ] {
        assert!(CelEnv::default().compile(source).is_ok(), "{source}");
    }
}

/// `source` evaluated to a string.
fn text(source: &str) -> String {
    match evaluate_value(source) {
        Ok(Value::String(s)) => s.to_string(),
        other => panic!("{source}: {other:?}"),
    }
}

/// `source` evaluated in an empty activation, whatever its type.
fn evaluate_value(source: &str) -> Result<Value, String> {
    let mut env = CelEnv::default();
    let expression = env.compile(source).map_err(|e| e.to_string())?;
    let activation = Activation {
        scope: env.root.new_inner_scope(),
        variables: None,
    };
    Value::resolve(&expression.expr, &activation.scope).map_err(|e| e.to_string())
}

#[test]
fn string_extension_and_base64() {
    for (source, expected) in [
        (r#""Admin.Example.ORG".lowerAscii()"#, "admin.example.org"),
        (r#""get".upperAscii()"#, "GET"),
        (r#""  shop \t".trim()"#, "shop"),
        (r#""a-b-c".replace("-", ".")"#, "a.b.c"),
        (r#""a-b-c".replace("-", ".", 1)"#, "a.b-c"),
        (r#""ns/shop/sa/api".split("/")[1]"#, "shop"),
        (r#""a,b,c".split(",", 2)[1]"#, "b,c"),
        (r#"["x", "y"].join("-")"#, "x-y"),
        (r#"["x", "y"].join()"#, "xy"),
        (r#""spiffe://td/ns".substring(9)"#, "td/ns"),
        (r#""spiffe://td/ns".substring(9, 11)"#, "td"),
        (r#""hello".charAt(1)"#, "e"),
        (
            r#""%s has %d rules".format(["shop", 3])"#,
            "shop has 3 rules",
        ),
        (r#"strings.quote("a\"b")"#, r#""a\"b""#),
        (r#""abc".reverse()"#, "cba"),
        (r#"base64.encode(b"warrant")"#, "d2FycmFudA=="),
        (r#"string(base64.decode("d2FycmFudA=="))"#, "warrant"),
    ] {
        assert_eq!(text(source), expected, "{source}");
    }
    for (source, expected) in [
        (r#""a/b/a".indexOf("a")"#, 0),
        (r#""a/b/a".indexOf("a", 1)"#, 4),
        (r#""a/b/a".lastIndexOf("a")"#, 4),
        (r#""a/b/a".indexOf("z")"#, -1),
    ] {
        assert_eq!(int(source), expected, "{source}");
    }
    // Bad arguments are evaluation errors (a deny rule denies, an allow rule does not match).
    for source in [
        r#""abc".charAt(4)"#,
        r#""abc".substring(2, 1)"#,
        r#""abc".substring(-1)"#,
        r#""abc".indexOf("a", 9)"#,
        r#"base64.decode("not base64!")"#,
        r#""%d".format(["x"])"#,
    ] {
        assert!(evaluate_value(source).is_err(), "{source}");
    }
    // Misspelt, they fail the load.
    assert!(matches!(
        CelEnv::default().compile(r#""x".lowerascii() == "x""#),
        Err(CompileError::UnknownFunction { .. })
    ));
}

#[test]
fn the_headers_a_rule_can_observe_are_those_it_names_unless_it_reads_them_whole() {
    let read = |source: &str| {
        CelEnv::default()
            .compile(source)
            .expect("compiles")
            .headers_read()
            .clone()
    };
    let named =
        |names: &[&str]| HeadersRead::Named(names.iter().map(|n| (*n).to_owned()).collect());
    for (source, names) in [
        (r#"request.path == "/""#, &[][..]),
        (
            r#""x-debug" in request.headers && request.headers["x-env"] == "prod""#,
            &["x-debug", "x-env"],
        ),
        (
            r#"request.headers.host == "a" || has(request.headers.accept)"#,
            &["host", "accept"],
        ),
        (
            r#"request["headers"]["x-a"] == "1" && dyn(request.headers)["x-b"] == "2""#,
            &["x-a", "x-b"],
        ),
        (
            r#"request.headers[?"x-a"].orValue("") == "" && request.headers.?x_c == optional.none()"#,
            &["x-a", "x_c"],
        ),
        (r#"has(request.body) && request["path"] == "/""#, &[]),
        (r#"dyn(request).headers["x-a"] == "1""#, &["x-a"]),
    ] {
        assert_eq!(read(source), named(names), "{source}");
    }
    for whole in [
        r#"request.headers.size() > 0"#,
        r#"request.headers.exists(h, h == "x-a")"#,
        r#"request.headers[request.path] == "1""#,
        r#"["x-a"].exists(h, h in request.headers)"#,
        r#"[request.headers].exists(h, "x-a" in h)"#,
        r#"request.headers == {"x-a": "1"}"#,
        r#"[request].exists(r, "x-a" in r.headers)"#,
        r#"request.size() > 0"#,
        r#"string(request.headers) != """#,
    ] {
        assert_eq!(read(whole), HeadersRead::All, "{whole}");
    }
}
