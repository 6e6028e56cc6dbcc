//! Field-report hardening of policies: schema errors inside rules, header mutations
//! validated at load, and host and method normalization seen by rules.

// Test code: a failed unwrap, expect or assertion is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::SystemTime;

use common::policy::{FRONTEND, TRUST, compile, errors, request};

#[test]
fn schema_errors_inside_a_rule_name_the_rule() {
    let second = "  - id: second\n    effect: allow\n    when: \"true\"\n";
    for (rule, message) in [
        ("  - id: first\n    effect: allow\n", "missing field `when`"),
        (
            "  - id: first\n    when: \"true\"\n",
            "missing field `effect`",
        ),
        (
            "  - id: first\n    effect: allow\n    when: \"true\"\n    whn: x\n",
            "unknown field `whn`",
        ),
        (
            "  - id: first\n    effect: deny\n    when: \"true\"\n    status: high\n",
            "",
        ),
        (
            "  - id: first\n    effect: alow\n    when: \"true\"\n",
            "unknown variant `alow`",
        ),
        ("  - {id: first, effect: allow}\n", "missing field `when`"),
        (
            "  - when: \"true\"\n    effect: allow\n    id: first\n    extra: 1\n",
            "unknown field `extra`",
        ),
    ] {
        for rules in [format!("{rule}{second}"), format!("{second}{rule}")] {
            let errs = errors(&[("p.yaml", &format!("{TRUST}rules:\n{rules}"))]);
            assert_eq!(errs.len(), 1, "{errs:?}");
            assert!(errs[0].starts_with("p.yaml:"), "{}", errs[0]);
            assert!(
                errs[0].contains(&format!(": rule 'first': {message}")),
                "{rules}: {}",
                errs[0]
            );
        }
    }
    // Flow style, several rules on one line: the rule at the error's column.
    let errs = errors(&[(
        "p.yaml",
        &format!(
            "{TRUST}rules: [{{id: a, effect: alow, when: \"true\"}}, {{id: b, effect: allow, when: \"true\"}}]\n"
        ),
    )]);
    assert!(
        errs[0].starts_with("p.yaml:3: rule 'a': unknown variant `alow`"),
        "{}",
        errs[0]
    );
    // JSON with every line in column 0, and YAML that does not parse: still the rule.
    let json = "{\n\"trust\": {\"trust_domains\": [\"a.b\"]},\n\"rules\": [\n{\n\"id\": \"j\",\n\"effect\": \"alow\",\n\"when\": \"true\"\n}\n]\n}\n";
    let errs = errors(&[("p.json", json)]);
    assert!(
        errs[0].contains(": rule 'j': unknown variant `alow`"),
        "{}",
        errs[0]
    );
    let errs = errors(&[(
        "p.yaml",
        &format!(
            "{TRUST}rules:\n  - id: quoted\n    effect: deny\n    when: \"request.path.startsWith(\"/admin\")\"\n"
        ),
    )]);
    assert!(errs[0].contains(": rule 'quoted': "), "{}", errs[0]);
    // Ids that would break the one-line format are refused, without the id in the message.
    for id in ["\"a\\nb\"", "\"it's\"", "\" padded\"", "\"abc\\u202edef\""] {
        let errs = errors(&[(
            "p.yaml",
            &format!("{TRUST}rules:\n  - id: {id}\n    effect: allow\n    when: \"true\"\n"),
        )]);
        assert!(errs[0].starts_with("p.yaml:4: rule id "), "{}", errs[0]);
    }
    // Not inside a rule: no rule named.
    let errs = errors(&[("p.yaml", &format!("rules:\n{second}{TRUST}bogus: 1\n"))]);
    assert!(
        errs[0].starts_with("p.yaml:7: unknown field `bogus`"),
        "{}",
        errs[0]
    );
    let errs = errors(&[("p.yaml", &format!("{TRUST}rules:\n  - effect: allow\n"))]);
    assert!(
        errs[0].starts_with("p.yaml:4: missing field `id`"),
        "{}",
        errs[0]
    );
}

#[test]
fn header_mutations_are_validated_at_load() {
    for (headers, message) in [
        (r#"{x-tenant: "shop\x01"}"#, "control character 0x01"),
        (
            r#"{x-tenant: "shop\r\nx-admin: 1"}"#,
            "control character 0x0d",
        ),
        (r#"{x-tenant: " shop"}"#, "leading or trailing whitespace"),
        (r#"{content-length: "0"}"#, "changes message framing"),
        (r#"{Transfer-Encoding: chunked}"#, "changes message framing"),
        (r#"{connection: close}"#, "connection-specific"),
        (r#"{upgrade: websocket}"#, "connection-specific"),
        (r#"{te: trailers}"#, "connection-specific"),
        (r#"{host: admin.example.org}"#, "routes the request"),
        (r#"{":authority": admin.example.org}"#, "pseudo-header"),
        (r#"{":path": /admin}"#, "pseudo-header"),
        (
            r#"{x-envoy-upstream-rq-timeout-ms: "1"}"#,
            "reserved for Envoy",
        ),
        (r#"{x-forwarded-client-cert: "By=x"}"#, "managed by Envoy"),
        (r#"{"x tenant": shop}"#, "not an HTTP token"),
        (r#"{"": shop}"#, "header name is empty"),
    ] {
        let errs = errors(&[(
            "p.yaml",
            &format!(
                "{TRUST}rules:\n  - id: r\n    effect: allow\n    when: \"true\"\n    headers:\n      x-ok: fine\n      {}\n",
                &headers[1..headers.len() - 1]
            ),
        )]);
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert!(
            errs[0].starts_with("p.yaml:9: rule 'r': header "),
            "{}",
            errs[0]
        );
        assert!(errs[0].contains(message), "{} / {message}", errs[0]);
    }
    let policy = compile(
        "  - id: r\n    effect: allow\n    when: \"true\"\n    headers: {x-b: \"Zürich\", x-a: \"a\\tb\", x-c: \"\"}\n",
    );
    let decision = policy.decide(&request(FRONTEND, "GET", "/"), SystemTime::now());
    assert_eq!(
        decision.headers.to_vec(),
        [
            ("x-b".to_owned(), "Zürich".to_owned()),
            ("x-a".to_owned(), "a\tb".to_owned()),
            ("x-c".to_owned(), String::new())
        ]
    );
}

#[test]
fn host_rules_see_lower_case_hosts() {
    let policy = compile(
        r#"
  - id: admin-host-ops-only
    effect: deny
    when: request.hostname == "admin.example.org" && source.namespace != "ops"
  - id: host-exact
    effect: deny
    when: request.host == "shop.example.org" && request.headers[":authority"] == "shop.example.org"
  - id: rest
    effect: allow
    when: "true"
"#,
    );
    for (host, rule) in [
        ("admin.example.org", Some("admin-host-ops-only")),
        ("Admin.Example.Org", Some("admin-host-ops-only")),
        ("ADMIN.EXAMPLE.ORG.", Some("admin-host-ops-only")),
        ("admin.example.org:10000", Some("admin-host-ops-only")),
        ("Admin.Example.Org.:8443", Some("admin-host-ops-only")),
        ("Shop.Example.ORG", Some("host-exact")),
        ("admin.example.org.evil", Some("rest")),
        ("shop.example.org:443", Some("rest")),
        ("admin.example.org:1:2", Some("admin-host-ops-only")),
        ("user@Admin.Example.Org", Some("admin-host-ops-only")),
        (
            "admin.example.org,shop.example.org",
            Some("admin-host-ops-only"),
        ),
    ] {
        let mut request = request(FRONTEND, "GET", "/");
        let http = request.http.take().expect("http");
        request.http = Some(
            warrant::request::HttpRequest {
                host: host.into(),
                headers: vec![(":authority".into(), host.into())],
                ..http
            }
            .canonical(),
        );
        let decision = policy.decide(&request, SystemTime::now());
        assert_eq!(decision.rule.as_deref(), rule, "{host}");
    }
}

#[test]
fn method_rules_see_upper_case_methods() {
    let policy = compile(
        r#"
  - id: no-delete
    effect: deny
    when: request.method == "DELETE" || request.headers[":method"] == "DELETE"
  - id: rest
    effect: allow
    when: "true"
"#,
    );
    for method in ["DELETE", "delete", "Delete"] {
        let mut request = request(FRONTEND, method, "/");
        let http = request.http.take().expect("http");
        request.http = Some(
            warrant::request::HttpRequest {
                headers: vec![(":method".into(), method.into())],
                ..http
            }
            .canonical(),
        );
        let decision = policy.decide(&request, SystemTime::now());
        assert_eq!(decision.rule.as_deref(), Some("no-delete"), "{method}");
    }
}
