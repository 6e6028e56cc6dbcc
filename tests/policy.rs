//! Policy compilation and decision semantics, every branch.

// Test code: a failed unwrap, expect or assertion is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, SystemTime};

mod common;

use common::policy::{FRONTEND, TRUST, compile, compile_files, errors, request};
use warrant::policy::{Stage, Verdict};

const FRONTEND_RULE: &str = r#"
  - id: frontend-reads
    effect: allow
    when: source.spiffe_id == "spiffe://prod.example.org/ns/shop/sa/frontend" && request.method == "GET"
    headers: {x-tenant: shop}
"#;

#[test]
fn allow_rule_matches() {
    let policy = compile(FRONTEND_RULE);
    let d = policy.decide(&request(FRONTEND, "GET", "/p"), SystemTime::now());
    assert_eq!(d.verdict, Verdict::Allow);
    assert_eq!(d.stage, Stage::Rules);
    assert_eq!(d.rule.as_deref(), Some("frontend-reads"));
    assert_eq!(d.http_status, 200);
    assert_eq!(d.identity.unwrap().transport.spiffe_id.as_str(), FRONTEND);
    assert_eq!(&*d.headers, &[("x-tenant".to_owned(), "shop".to_owned())]);
}

#[test]
fn nothing_matches_is_default_deny() {
    let policy = compile(FRONTEND_RULE);
    let d = policy.decide(&request(FRONTEND, "POST", "/p"), SystemTime::now());
    assert_eq!(
        (d.verdict, d.stage, d.rule),
        (Verdict::Deny, Stage::Default, None)
    );
    assert_eq!(d.http_status, 403);
    assert_eq!(d.reason, "no allow rule matched");
}

#[test]
fn no_rules_denies_everything() {
    let policy = compile_files(&[("p.yaml", TRUST)]).unwrap();
    let d = policy.decide(&request(FRONTEND, "GET", "/"), SystemTime::now());
    assert_eq!((d.verdict, d.stage), (Verdict::Deny, Stage::Default));
    assert!(d.reason.contains("no rules"));
}

#[test]
fn untrusted_caller_never_reaches_rules() {
    let policy = compile("  - id: all\n    effect: allow\n    when: \"true\"\n");
    for principal in [
        "spiffe://evil.example.org/ns/shop/sa/frontend",
        "frontend.shop.svc",
        "",
        "spiffe://prod.example.org",
    ] {
        let d = policy.decide(&request(principal, "GET", "/"), SystemTime::now());
        assert_eq!(
            (d.verdict, d.stage),
            (Verdict::Deny, Stage::Trust),
            "{principal}"
        );
        assert_eq!(d.rule, None);
        assert!(d.identity.is_none());
    }
}

#[test]
fn deny_rules_win_over_allow_rules() {
    let policy = compile(
        r#"
  - id: all
    effect: allow
    when: "true"
  - id: no-admin
    effect: deny
    status: 451
    when: request.path.startsWith("/admin")
"#,
    );
    let d = policy.decide(&request(FRONTEND, "GET", "/admin/x"), SystemTime::now());
    assert_eq!((d.verdict, d.stage), (Verdict::Deny, Stage::Rules));
    assert_eq!(d.rule.as_deref(), Some("no-admin"));
    assert_eq!(d.http_status, 451);
    let d = policy.decide(&request(FRONTEND, "GET", "/x"), SystemTime::now());
    assert_eq!(d.rule.as_deref(), Some("all"));
}

#[test]
fn failing_deny_rule_denies() {
    let policy = compile(
        r#"
  - id: all
    effect: allow
    when: "true"
  - id: needs-header
    effect: deny
    when: request.headers["x-missing"] == "1"
"#,
    );
    let d = policy.decide(&request(FRONTEND, "GET", "/"), SystemTime::now());
    assert_eq!((d.verdict, d.stage), (Verdict::Deny, Stage::Rules));
    assert_eq!(d.rule.as_deref(), Some("needs-header"));
    assert!(d.reason.contains("failed to evaluate"), "{}", d.reason);
}

#[test]
fn failing_allow_rule_does_not_match_and_is_recorded() {
    let policy = compile(
        r#"
  - id: broken
    effect: allow
    when: request.headers["x-missing"] == "1"
  - id: not-bool
    effect: allow
    when: request.headers["x-env"]
  - id: get
    effect: allow
    when: request.method == "GET"
"#,
    );
    let d = policy.decide(&request(FRONTEND, "GET", "/"), SystemTime::now());
    assert_eq!(d.rule.as_deref(), Some("get"));
    let failed: Vec<&str> = d.failures.iter().map(|f| &*f.rule).collect();
    assert_eq!(failed, ["broken", "not-bool"]);
    let d = policy.decide(&request(FRONTEND, "POST", "/"), SystemTime::now());
    assert_eq!((d.verdict, d.stage), (Verdict::Deny, Stage::Default));
    assert!(d.reason.contains("2 failed to evaluate"), "{}", d.reason);
}

#[test]
fn evaluation_errors_name_types_never_request_values() {
    // The engine's own messages print operands; an operand can be a secret header.
    let policy = compile(
        r#"
  - id: compare
    effect: allow
    when: request.headers["x-env"] > 5
  - id: arithmetic
    effect: allow
    when: request.headers["x-env"] + 1 == 2
  - id: index
    effect: allow
    when: source.segments[request.headers["x-env"]] == "ns"
  - id: parse
    effect: allow
    when: duration(request.headers["x-env"]) > duration("1s")
  - id: computed-key
    effect: allow
    when: context[request.headers["x-env"]] == "1"
  - id: written-key
    effect: allow
    when: request.headers["x-absent"] == "1"
"#,
    );
    let d = policy.decide(&request(FRONTEND, "GET", "/"), SystemTime::now());
    assert_eq!(d.stage, Stage::Default);
    let errors: Vec<&str> = d.failures.iter().map(|f| f.error.as_str()).collect();
    assert_eq!(errors.len(), 6, "{errors:?}");
    for text in errors.iter().copied().chain([d.reason.as_str()]) {
        assert!(!text.contains("prod"), "request value in {text:?}");
    }
    assert!(
        errors[0].contains("string") && errors[0].contains("int"),
        "{errors:?}"
    );
    assert!(errors[3].contains("'duration'"), "{errors:?}");
    // A key written in the rule is named, to help its author; one from the request is not.
    assert!(errors[5].contains("x-absent"), "{errors:?}");
    // The engine's own message, for `warrant eval`, keeps the input.
    assert!(d.failures[3].detail.contains("prod"), "{:?}", d.failures[3]);
}

#[test]
fn first_matching_allow_rule_wins_in_file_order() {
    let policy = compile_files(&[
        (
            "a.yaml",
            &format!("{TRUST}rules:\n  - id: first\n    effect: allow\n    when: \"true\"\n"),
        ),
        (
            "b.yaml",
            "rules:\n  - id: second\n    effect: allow\n    when: \"true\"\n",
        ),
    ])
    .unwrap();
    assert_eq!(policy.rule_count(), 2);
    let d = policy.decide(&request(FRONTEND, "GET", "/"), SystemTime::now());
    assert_eq!(d.rule.as_deref(), Some("first"));
}

/// Every documented CEL variable, evaluated against a known request.
#[test]
fn cel_environment() {
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_900_000_000);
    let cases = [
        r#"source.spiffe_id == "spiffe://prod.example.org/ns/shop/sa/frontend""#,
        r#"source.trust_domain == "prod.example.org""#,
        r#"source.path == "/ns/shop/sa/frontend""#,
        r#"source.segments == ["ns", "shop", "sa", "frontend"]"#,
        r#"source.namespace == "shop" && source.service_account == "frontend""#,
        r#"source.principal == "spiffe://prod.example.org/ns/shop/sa/frontend""#,
        r#"source.address == "10.0.0.7" && source.port == 41000"#,
        r#"size(source.certificate) == 0"#,
        r#"destination.principal.endsWith("/sa/payments") && destination.address == "10.0.0.9" && destination.port == 8443"#,
        r#"request.method == "GET" && request.path == "/pay/1""#,
        r#"request.query == {"a": "1", "b": "x y"}"#,
        r#"request.host == "payments.shop" && request.scheme == "https" && request.protocol == "HTTP/2""#,
        r#"request.headers["x-env"] == "prod" && "user-agent" in request.headers"#,
        r#"request.headers.exists(k, k == "x-env")"#,
        r#"request.id == "req-1""#,
        r#"request.time == timestamp("2027-01-15T08:00:00Z")"#,
        r#"context.service == "payments""#,
        r#"now == timestamp("2030-03-17T17:46:40Z") && now > request.time"#,
    ];
    for (i, expression) in cases.iter().enumerate() {
        let policy = compile(&format!(
            "  - id: case-{i}\n    effect: allow\n    when: '{}'\n",
            expression.replace('\'', "''")
        ));
        let d = policy.decide(&request(FRONTEND, "GET", "/pay/1?a=1&b=x+y&a=2"), now);
        assert_eq!(
            d.verdict,
            Verdict::Allow,
            "{expression}: {} {:?}",
            d.reason,
            d.failures
        );
    }
}

#[test]
fn network_filter_request_has_empty_http_fields() {
    let policy = compile(
        r#"
  - id: tcp
    effect: allow
    when: source.namespace == "shop" && request.method == "" && size(request.headers) == 0 && request.time == null
"#,
    );
    let mut req = request(FRONTEND, "GET", "/");
    req.http = None;
    req.time = None;
    let d = policy.decide(&req, SystemTime::now());
    assert_eq!(d.verdict, Verdict::Allow, "{} {:?}", d.reason, d.failures);
}

#[test]
fn unrepresentable_request_time_is_null_not_a_crash() {
    // CheckRequest.attributes.request.time is the caller's to set; chrono cannot represent
    // a time this far out.
    let policy = compile("  - id: t\n    effect: allow\n    when: request.time == null\n");
    let mut req = request(FRONTEND, "GET", "/");
    req.time = Some(SystemTime::UNIX_EPOCH + Duration::from_secs(10_000_000_000_000));
    let d = policy.decide(&req, SystemTime::now());
    assert_eq!(d.verdict, Verdict::Allow, "{} {:?}", d.reason, d.failures);
}

#[test]
fn compile_errors_name_file_line_and_rule() {
    let errs = errors(&[(
        "p.yaml",
        &format!(
            "{TRUST}rules:\n  - id: typo\n    effect: allow\n    when: source.spife_id == \"x\"\n  - id: syntax\n    effect: deny\n    when: request.path.startsWith(\n  - id: unknown-var\n    effect: allow\n    when: token == 1\n  - id: typo\n    effect: allow\n    when: \"true\"\n"
        ),
    )]);
    assert_eq!(errs.len(), 4, "{errs:#?}");
    assert!(
        errs[0].starts_with("p.yaml:6: rule 'typo': unknown field source.spife_id"),
        "{}",
        errs[0]
    );
    assert!(
        errs[1].starts_with("p.yaml:9: rule 'syntax': CEL syntax error"),
        "{}",
        errs[1]
    );
    assert!(
        errs[2].starts_with("p.yaml:12: rule 'unknown-var': unknown variable \"token\""),
        "{}",
        errs[2]
    );
    assert_eq!(
        errs[3],
        "p.yaml:13: rule 'typo': duplicate rule id, first defined at p.yaml:4"
    );
}

#[test]
fn unknown_functions_are_compile_errors() {
    // The engine resolves function names only when a call runs: without this check a typo
    // loads fine and then fails on every request.
    let errs = errors(&[(
        "p.yaml",
        &format!(
            "{TRUST}rules:\n  - id: method-typo\n    effect: deny\n    when: request.path.startswith(\"/admin\")\n  - id: global-typo\n    effect: allow\n    when: lenght(request.path) > 1\n"
        ),
    )]);
    assert_eq!(errs.len(), 2, "{errs:#?}");
    assert!(
        errs[0].starts_with(
            "p.yaml:6: rule 'method-typo': unknown function startswith() called as a method"
        ),
        "{}",
        errs[0]
    );
    assert!(
        errs[1].starts_with("p.yaml:9: rule 'global-typo': unknown function lenght()"),
        "{}",
        errs[1]
    );
    // Every standard function the docs use, as a method or globally.
    compile(
        r#"
  - id: known
    effect: allow
    when: >
      request.path.startsWith("/a") || request.path.endsWith("b") || request.path.contains("c")
      || request.path.matches("^/d") || size(request.path) > 100 || request.path.size() > 100
      || int(request.query["n"]) > 1 || string(source.port) == "1" || now.getHours("UTC") == 25
      || now > timestamp("2026-01-01T00:00:00Z") + duration("1h") || has(request.headers.x)
      || type(source.port) == int || double(source.port) > 1e9 || uint(source.port) > 1u
      || source.segments.exists(s, s == "x")
"#,
    );
}

#[test]
fn matches_uses_patterns_compiled_at_load() {
    let policy = compile(
        r#"
  - id: method-style
    effect: allow
    when: request.path.matches("^/pay/[0-9]+$") && request.method == "GET"
  - id: global-style
    effect: allow
    when: matches(request.path, "^/pay/") && request.method == "POST"
  - id: pattern-from-route
    effect: allow
    when: request.path.matches(context.service) && request.method == "PUT"
"#,
    );
    let decide = |method: &str, path: &str| {
        let d = policy.decide(&request(FRONTEND, method, path), SystemTime::now());
        (d.rule.as_deref().map(str::to_owned), d.failures.len())
    };
    assert_eq!(decide("GET", "/pay/12"), (Some("method-style".into()), 0));
    assert_eq!(decide("GET", "/pay/x"), (None, 0));
    assert_eq!(decide("POST", "/pay/x"), (Some("global-style".into()), 0));
    // context.service is "payments": a pattern known only per request still works.
    assert_eq!(
        decide("PUT", "/payments"),
        (Some("pattern-from-route".into()), 0)
    );

    let errs = errors(&[(
        "p.yaml",
        &format!(
            "{TRUST}rules:\n  - id: bad-regex\n    effect: deny\n    when: request.path.matches(\"^/(admin\")\n"
        ),
    )]);
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert!(
        errs[0].starts_with(
            "p.yaml:6: rule 'bad-regex': matches() pattern \"^/(admin\" fails on every request: not a valid regular expression"
        ),
        "{}",
        errs[0]
    );
}

#[test]
fn comprehension_variables_are_not_unknown() {
    compile(
        "  - id: c\n    effect: allow\n    when: source.segments.all(s, s != \"\") && [1,2].map(x, x * 2).exists(y, y == 4)\n",
    );
}

#[test]
fn schema_errors() {
    let errs = errors(&[(
        "p.yaml",
        &format!("{TRUST}rules:\n  - id: a\n    effect: alow\n    when: \"true\"\n"),
    )]);
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert!(
        errs[0].starts_with("p.yaml:5: rule 'a': unknown variant `alow`"),
        "{}",
        errs[0]
    );
    let errs = errors(&[("p.yaml", &format!("{TRUST}rulez: []\n"))]);
    assert!(
        errs[0].starts_with("p.yaml:3: unknown field `rulez`"),
        "{}",
        errs[0]
    );
    let errs = errors(&[("p.yaml", "rules: []\n")]);
    assert_eq!(
        errs,
        ["p.yaml: no policy file defines `trust` (trust.trust_domains is required)"]
    );
}

#[test]
fn rule_shape_errors() {
    let cases = [
        (
            "    effect: deny\n    remove_headers: [x-a]\n",
            7,
            "`remove_headers` is only valid on allow rules",
        ),
        (
            "    effect: allow\n    status: 401\n",
            7,
            "`status` is only valid on deny rules",
        ),
        (
            "    effect: deny\n    status: 200\n",
            7,
            "status 200 is not an HTTP error status",
        ),
        (
            "    effect: allow\n    headers: {X-Bad: b}\n",
            7,
            "header name \"X-Bad\" has capitals; write \"x-bad\"",
        ),
    ];
    for (body, line, message) in cases {
        let errs = errors(&[(
            "p.yaml",
            &format!("{TRUST}rules:\n  - id: r\n    when: \"true\"\n{body}"),
        )]);
        assert_eq!(errs.len(), 1, "{errs:?}");
        let prefix = format!("p.yaml:{line}: rule 'r': ");
        assert!(errs[0].starts_with(&prefix), "{}", errs[0]);
        assert!(errs[0].contains(message), "{} / {message}", errs[0]);
    }
}

#[test]
fn trust_errors() {
    let errs = errors(&[("a.yaml", TRUST), ("b.yaml", TRUST)]);
    assert_eq!(
        errs,
        ["b.yaml:2: `trust` is already defined in a.yaml:2; define it in one file only"]
    );
    let errs = errors(&[(
        "a.yaml",
        "trust:\n  trust_domains: [prod.example.org]\n  bundles: {prod.example.org: ca.pem}\n",
    )]);
    assert!(errs[0].contains("cannot read ca.pem"), "{}", errs[0]);
    let errs = errors(&[(
        "a.yaml",
        "trust:\n  trust_domains: [prod.example.org]\n  max_svid_lifetime: soon\n",
    )]);
    assert!(errs[0].contains("max_svid_lifetime"), "{}", errs[0]);
}

#[test]
fn shadow_rules_are_recorded_and_never_decide() {
    let policy = compile(
        "  - id: new-deny\n    effect: deny\n    mode: audit\n    when: request.method == 'GET'\n  - id: broken-shadow\n    effect: allow\n    mode: audit\n    when: request.headers['x-missing'] == 'y'\n  - id: quiet-shadow\n    effect: deny\n    mode: audit\n    when: request.path == '/nope'\n  - id: reads\n    effect: allow\n    when: request.method == 'GET'\n",
    );
    assert_eq!(policy.rule_count(), 4);
    assert_eq!(
        policy.rule_ids().count(),
        1,
        "shadow rules are not enforced"
    );
    let d = policy.decide(&request(FRONTEND, "GET", "/p"), SystemTime::now());
    assert!(
        d.is_allowed(),
        "the shadow deny does not decide: {}",
        d.reason
    );
    assert_eq!(d.rule.as_deref(), Some("reads"));
    let shadow: Vec<(&str, &str, bool, bool)> = d
        .shadow
        .iter()
        .map(|s| (&*s.rule, s.effect.as_str(), s.matched, s.error.is_some()))
        .collect();
    assert_eq!(
        shadow,
        [
            ("new-deny", "deny", true, false),
            ("broken-shadow", "allow", false, true),
            ("quiet-shadow", "deny", false, false),
        ]
    );
    assert!(
        d.failures.is_empty(),
        "a failing shadow rule is not a failure of the decision"
    );
    // Untrusted callers never reach the rules stage: no shadow outcome.
    let d = policy.decide(
        &request("spiffe://evil.example.org/x", "GET", "/p"),
        SystemTime::now(),
    );
    assert!(d.shadow.is_empty());
    let errs = errors(&[(
        "p.yaml",
        &format!(
            "{TRUST}rules:\n  - id: m\n    effect: allow\n    mode: shadow\n    when: 'true'\n"
        ),
    )]);
    assert_eq!(errs.len(), 1);
    assert!(
        errs[0].contains("enforce") && errs[0].contains("audit"),
        "{}",
        errs[0]
    );
}

#[test]
fn rules_set_response_headers_remove_headers_and_deny_headers() {
    let policy = compile(
        "  - id: teapot\n    effect: deny\n    when: request.path == '/tea'\n    status: 418\n    headers: {retry-after: '120', x-denied-by: warrant}\n  - id: reads\n    effect: allow\n    when: request.method == 'GET'\n    headers: {x-tenant: shop}\n    response_headers: {cache-control: no-store}\n    remove_headers: [authorization, x-workload-token]\n",
    );
    let d = policy.decide(&request(FRONTEND, "GET", "/p"), SystemTime::now());
    assert!(d.is_allowed());
    assert_eq!(&*d.headers, [("x-tenant".to_owned(), "shop".to_owned())]);
    assert_eq!(
        &*d.response_headers,
        [("cache-control".to_owned(), "no-store".to_owned())]
    );
    assert_eq!(
        &*d.remove_headers,
        ["authorization".to_owned(), "x-workload-token".to_owned()]
    );
    let d = policy.decide(&request(FRONTEND, "GET", "/tea"), SystemTime::now());
    assert!(!d.is_allowed());
    assert_eq!(d.http_status, 418);
    assert!(d.headers.is_empty() && d.remove_headers.is_empty());
    assert_eq!(
        &*d.response_headers,
        [
            ("retry-after".to_owned(), "120".to_owned()),
            ("x-denied-by".to_owned(), "warrant".to_owned())
        ]
    );
    for (rule, message) in [
        (
            "    effect: deny\n    response_headers: {a: b}\n",
            "p.yaml:7: rule 'r': `response_headers` is only valid on allow rules",
        ),
        (
            "    effect: deny\n    remove_headers: [a]\n",
            "p.yaml:7: rule 'r': `remove_headers` is only valid on allow rules",
        ),
        (
            "    effect: deny\n    headers: {content-type: text/plain}\n",
            "p.yaml:7: rule 'r': header \"content-type\" is set by Warrant: the denied body is JSON",
        ),
        (
            "    effect: deny\n    status: 302\n",
            "status 302 is not an HTTP error status (400-599)",
        ),
        (
            "    effect: allow\n    response_headers: {Cache-Control: x}\n",
            "has capitals",
        ),
        (
            "    effect: allow\n    response_headers: {content-length: '1'}\n",
            "changes message framing",
        ),
        (
            "    effect: allow\n    response_headers: {x-a: \"a\\nb\"}\n",
            "control character",
        ),
        (
            "    effect: allow\n    remove_headers: [':path']\n",
            "header \":path\" routes the request, and Envoy refuses to remove it; Warrant never removes it",
        ),
        (
            "    effect: allow\n    remove_headers: [host]\n",
            "Warrant never removes it",
        ),
        (
            "    effect: allow\n    remove_headers: [te]\n",
            "is connection-specific",
        ),
        (
            "    effect: allow\n    remove_headers: [content-length]\n",
            "changes message framing",
        ),
        (
            "    effect: allow\n    remove_headers: [x-envoy-expected-rq-timeout-ms]\n",
            "x-envoy-*",
        ),
        (
            "    effect: allow\n    remove_headers: [x-forwarded-host, forwarded]\n    headers: {X-Bad: 1}\n",
            "has capitals",
        ),
        (
            "    effect: allow\n    remove_headers: [X-Token]\n",
            "has capitals",
        ),
        (
            "    effect: allow\n    remove_headers: [a, a]\n",
            "listed twice",
        ),
        (
            "    effect: allow\n    headers: {x-a: b}\n    remove_headers: [x-a]\n",
            "both set and removed",
        ),
    ] {
        let errs = errors(&[(
            "p.yaml",
            &format!("{TRUST}rules:\n  - id: r\n    when: 'true'\n{rule}"),
        )]);
        assert_eq!(errs.len(), 1, "{rule}: {errs:?}");
        assert!(errs[0].contains(message), "{rule}: {}", errs[0]);
    }
}

#[test]
fn every_decision_names_the_policy_revision() {
    let rules = "  - id: r\n    effect: allow\n    when: request.method == 'GET'\n";
    let a = compile(rules);
    let b = compile(rules);
    assert_eq!(
        a.revision(),
        b.revision(),
        "the same files, the same revision"
    );
    assert_eq!(a.revision().len(), 12);
    let c = compile("  - id: r\n    effect: allow\n    when: request.method == 'PUT'\n");
    assert_ne!(a.revision(), c.revision());
    let d = a.decide(&request(FRONTEND, "GET", "/"), SystemTime::now());
    assert_eq!(d.policy_revision, *a.revision());
    let untrusted = a.decide(&request("spiffe://x.org/a", "GET", "/"), SystemTime::now());
    assert_eq!(untrusted.policy_revision, *a.revision());
}

/// A rule's activation builds a field read alone (`request.path`) without its variable's map,
/// and the whole variable (`request["path"]`, `has(request.path)`) only when read whole: for
/// every declared field, both must be the same value.
#[test]
fn every_field_read_alone_equals_the_field_of_its_whole_variable() {
    use warrant::policy::{Shape, VARIABLES};
    let mut request = request(FRONTEND, "GET", "/payments/42?expand=1&x=2");
    if let Some(http) = request.http.as_mut() {
        http.headers.push(("x-env".into(), "prod".into()));
    }
    let mut checked = 0;
    for variable in VARIABLES {
        let Shape::Fields(fields) = variable.shape else {
            continue;
        };
        for field in fields {
            let (v, f) = (variable.name, field.name);
            let policy = compile(&format!(
                "  - id: same\n    effect: allow\n    when: '{v}.{f} == {v}[\"{f}\"] && has({v}.{f}) && [{v}.{f}] == [{v}].map(x, x.{f})'\n"
            ));
            let d = policy.decide(&request, SystemTime::now());
            assert_eq!(d.verdict, Verdict::Allow, "{v}.{f}: {}", d.reason);
            checked += 1;
        }
    }
    assert!(checked > 40, "{checked} fields");
    // A comprehension's variable still shadows the request's.
    let policy = compile(
        "  - id: shadowed\n    effect: allow\n    when: '[{\"path\": \"/x\"}].exists(request, request.path == \"/x\")'\n",
    );
    let d = policy.decide(&request, SystemTime::now());
    assert_eq!(d.verdict, Verdict::Allow, "{}", d.reason);
}

/// The activation builds `request.headers` with only the headers the policy's rules name
/// (when none reads the map whole): a rule must decide the same either way.
#[test]
fn a_rule_decides_the_same_whether_or_not_unnamed_headers_are_built() {
    let mut request = request(FRONTEND, "GET", "/p");
    if let Some(http) = request.http.as_mut() {
        for (name, value) in [
            ("x-env", "prod"),
            ("x-a", "1"),
            ("x-empty", ""),
            ("accept", "*/*"),
        ] {
            http.headers.push((name.into(), value.into()));
        }
    }
    let reads_all = "  - id: reads-all\n    effect: deny\n    when: request.headers.size() < 0\n";
    for when in [
        r#""x-env" in request.headers && request.headers["x-env"] == "prod""#,
        r#""x-debug" in request.headers"#,
        r#"!("x-debug" in request.headers)"#,
        r#"request.headers["x-missing"] == "1""#,
        r#"has(request.headers.accept) && !has(request.headers.x_b)"#,
        r#"request.headers[?"x-a"].orValue("none") == "1""#,
        r#"request.headers[?"x-b"].orValue("none") == "none""#,
        r#"request.headers["x-empty"] == "" && request["headers"]["x-a"] == "1""#,
        r#"[request].exists(r, r.headers["x-a"] == "1")"#,
    ] {
        let rule = format!("  - id: rule\n    effect: allow\n    when: '{when}'\n");
        let named = compile(&rule).decide(&request, SystemTime::now());
        let all = compile(&format!("{rule}{reads_all}")).decide(&request, SystemTime::now());
        assert_eq!(
            (named.verdict, named.rule, named.reason),
            (all.verdict, all.rule, all.reason),
            "{when}"
        );
    }
}

/// A rule whose test of a field (`source.namespace == "shop" && …`) Warrant decides itself
/// when it rules the rule out (its shortcut) decides as the same rule written so that the
/// engine evaluates all of it.
#[test]
fn a_rule_its_shortcut_rules_out_decides_as_the_engine_would() {
    let requests = [
        request(FRONTEND, "GET", "/p"),
        request(FRONTEND, "POST", "/p"),
        request(
            "spiffe://prod.example.org/ns/other/sa/frontend",
            "GET",
            "/p",
        ),
        request("spiffe://prod.example.org/custom/path", "GET", "/p"),
    ];
    for (field, literal) in [
        ("source.namespace", "shop"),
        ("source.namespace", ""),
        ("source.service_account", "frontend"),
        ("source.spiffe_id", FRONTEND),
        ("request.method", "GET"),
        ("request.path", "/p"),
        ("source.certificate.serial", ""),
        ("destination.principal", ""),
    ] {
        let shortcut = compile(&format!(
            "  - id: r\n    effect: allow\n    when: '{field} == \"{literal}\" && request.host == request.host'\n"
        ));
        let engine_only = compile(&format!(
            "  - id: r\n    effect: allow\n    when: '({field} == \"{literal}\") == true && request.host == request.host'\n"
        ));
        for request in &requests {
            let (a, b) = (
                shortcut.decide(request, SystemTime::now()),
                engine_only.decide(request, SystemTime::now()),
            );
            assert_eq!(
                (a.verdict, a.reason),
                (b.verdict, b.reason),
                "{field} == {literal:?}"
            );
        }
    }
}

/// A policy is cheap (decided on the async workers, without the hand-off to a decider) only
/// when every rule, shadow rules included, is made of `&&`, `||`, `!` and string tests of
/// request fields bounded by the rule's literals; `contains`, any other function, a macro,
/// arithmetic or a `data` read makes it costly.
#[test]
fn only_policies_of_plain_string_tests_are_cheap() {
    let rule = |when: &str| format!("  - id: r\n    effect: allow\n    when: '{when}'\n");
    for when in [
        r#"request.method == "GET" && request.path.startsWith("/api/")"#,
        r#""x-debug" in request.headers || !(context.service != "payments")"#,
        r#"request.method in ["GET", "HEAD"] && request.headers["x-env"] == "prod""#,
        r#"source.spiffe_id == "spiffe://prod.example.org/ns/shop/sa/frontend""#,
        r#"request.body == "x" || request.path.endsWith("/42")"#,
        "true",
    ] {
        assert!(compile(&rule(when)).is_cheap(), "{when}");
    }
    for when in [
        r#"request.path.matches("^/api/")"#,
        r#"request.headers.exists(k, k.startsWith("x-"))"#,
        "size(request.path) < 10",
        r#"request.method == "GET" && source.port > 1024"#,
        r#"request.path.glob("/api/**")"#,
        r#"in_cidr(source.address, "10.0.0.0/8")"#,
        // Searches the whole value, which may be a 1 MiB body.
        r#"request.body.contains("x")"#,
        r#"request.method == "POST" && request.headers["x-a"].contains("x")"#,
    ] {
        assert!(!compile(&rule(when)).is_cheap(), "{when}");
    }
    // One costly shadow rule makes the whole policy costly.
    let shadow = "  - id: s\n    effect: deny\n    mode: audit\n    when: 'request.headers.exists(k, k == \"x\")'\n";
    let cheap = rule(r#"request.method == "GET""#);
    assert!(compile(&cheap).is_cheap());
    assert!(!compile(&format!("{cheap}{shadow}")).is_cheap());
    // An empty policy is cheap: it denies everything without evaluating anything.
    assert!(compile("  []\n").is_cheap());
    // The benchmark's policy (20 rules) is cheap.
    let bench = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/bench/policy.yaml"))
        .expect("bench/policy.yaml");
    let policy = compile_files(&[("policy.yaml", &bench)]).expect("bench/policy.yaml loads");
    assert!(policy.is_cheap());
}
