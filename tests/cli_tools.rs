//! `warrant test` and `warrant explain`: their output and exit statuses are a contract that
//! CI pipelines rely on.

// Test code: a failed unwrap, expect or assertion is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::Path;
use std::process::{Command, Output};

fn warrant(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_warrant"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap()
}

fn stdout(output: &Output) -> String {
    String::from_utf8(output.stdout.clone()).unwrap()
}

fn temp_dir(name: &str) -> common::fixtures::ScratchDir {
    common::fixtures::temp_dir("tools", name)
}

const POLICY: &str = r#"trust: {trust_domains: [prod.example.org]}
rules:
  - id: no-admin
    effect: deny
    when: request.path.startsWith("/admin")
    status: 404
  - id: reads
    effect: allow
    when: request.method == "GET"
  - id: new-deny
    effect: deny
    mode: audit
    when: request.path == "/old"
"#;

fn write(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

#[test]
fn shipped_tests_pass() {
    let output = warrant(&["test", "config/"]);
    assert!(output.status.success(), "{}", stdout(&output));
    let out = stdout(&output);
    let last = out.lines().last().unwrap();
    assert!(last.ends_with(" passed, 0 failed"), "{out}");
    assert!(!out.contains("FAILED"));
}

#[test]
fn failures_show_what_differs_and_exit_1() {
    let dir = temp_dir("fail");
    write(&dir, "policy.yaml", POLICY);
    let tests = write(
        &dir,
        "p_test.yaml",
        r#"policy: policy.yaml
now: 2026-03-02T10:00:00Z
cases:
  - name: reads are allowed
    request: {source: "spiffe://prod.example.org/ns/a/sa/b", path: /x}
    expect: {allowed: true, rule: reads, stage: rules, status: 200, shadow: []}
  - name: wrong expectation
    request: {source: "spiffe://prod.example.org/ns/a/sa/b", path: /admin/x}
    expect: {allowed: true, rule: reads, status: 200}
  - name: shadow matches
    request: {source: "spiffe://prod.example.org/ns/a/sa/b", path: /old}
    expect: {allowed: true, shadow: [new-deny]}
  - name: no rule
    request: {source: "spiffe://prod.example.org/ns/a/sa/b", method: POST, path: /x}
    expect: {allowed: false, rule: null, stage: default}
  - name: null is checked too
    request: {source: "spiffe://prod.example.org/ns/a/sa/b", path: /admin/y}
    expect: {rule: null}
"#,
    );
    let output = warrant(&["test", &tests]);
    assert_eq!(output.status.code(), Some(1), "{}", stdout(&output));
    assert_eq!(
        stdout(&output),
        "test reads are allowed ... ok\n\
         test wrong expectation ... FAILED\n\
         \x20   allowed: expected true, got false\n\
         \x20   rule: expected \"reads\", got \"no-admin\"\n\
         \x20   status: expected 200, got 404\n\
         \x20   reason: deny rule 'no-admin' matched\n\
         test shadow matches ... ok\n\
         test no rule ... ok\n\
         test null is checked too ... FAILED\n\
         \x20   rule: expected null, got \"no-admin\"\n\
         \x20   reason: deny rule 'no-admin' matched\n\
         3 passed, 2 failed\n"
    );
    let output = warrant(&["test", "--filter", "shadow", dir.to_str().unwrap()]);
    assert!(output.status.success());
    assert_eq!(
        stdout(&output),
        "test shadow matches ... ok\n1 passed, 0 failed\n"
    );
    // The directory's policy still loads as a policy: the test file is not part of it.
    let output = warrant(&["check", dir.to_str().unwrap()]);
    assert!(output.status.success(), "{}", stdout(&output));
}

#[test]
fn unloadable_files_exit_2_with_file_and_line() {
    let dir = temp_dir("broken");
    write(&dir, "policy.yaml", POLICY);
    write(
        &dir,
        "bad_policy.yaml",
        "trust: {trust_domains: [prod.example.org]}\nrules:\n  - id: x\n    effect: allow\n    when: request.nope\n",
    );
    for (name, text, message) in [
        (
            "typo_test.yaml",
            "policy: policy.yaml\ncases:\n  - name: a\n    reqest: {}\n    expect: {}\n",
            ":4: unknown field `reqest`",
        ),
        (
            "policy_test.yaml",
            "policy: bad_policy.yaml\ncases: []\n",
            ":1: policy ",
        ),
        (
            "missing_test.yaml",
            "policy: nope.yaml\ncases: []\n",
            "does not load",
        ),
        (
            "request_test.yaml",
            "policy: policy.yaml\ncases:\n  - name: a\n    check_request: {attributes: {sorce: {}}}\n    expect: {allowed: true}\n",
            ":3: check_request is not a CheckRequest: unrecognized field name 'sorce'",
        ),
        (
            "both_test.yaml",
            "policy: policy.yaml\ncases:\n  - name: a\n    request: {}\n    check_request: {}\n    expect: {allowed: true}\n",
            "exactly one of request",
        ),
        (
            "nullkey_test.yaml",
            "policy: policy.yaml\ncases:\n  - name: a\n    request: {}\n    expect: {allowed: true, shadow:}\n",
            ":5: expected a list here",
        ),
        (
            "stage_test.yaml",
            "policy: policy.yaml\ncases:\n  - name: a\n    request: {}\n    expect: {stage: rule}\n",
            "unknown variant `rule`",
        ),
        (
            "unknown_rule_test.yaml",
            "policy: policy.yaml\ncases:\n  - name: a\n    request: {}\n    expect: {rule: nope}\n",
            ":3: expect.rule: the policy has no enforced rule \"nope\"",
        ),
        (
            "unknown_shadow_test.yaml",
            "policy: policy.yaml\ncases:\n  - name: a\n    request: {}\n    expect: {shadow: [reads]}\n",
            ":3: expect.shadow: the policy has no shadow rule \"reads\"",
        ),
        (
            "empty_test.yaml",
            "policy: policy.yaml\ncases:\n  - name: a\n    request: {}\n    expect: {}\n",
            ":3: expect names nothing to check",
        ),
        (
            "now_test.yaml",
            "policy: policy.yaml\nnow: tomorrow\ncases: []\n",
            ":2: now \"tomorrow\" is not an RFC 3339 time",
        ),
        (
            "cert_test.yaml",
            "policy: policy.yaml\ncases:\n  - name: a\n    request: {certificate: none.pem}\n    expect: {allowed: true}\n",
            ":3: certificate ",
        ),
    ] {
        let path = write(&dir, name, text);
        let output = warrant(&["test", &path]);
        assert_eq!(output.status.code(), Some(2), "{name}: {}", stdout(&output));
        let out = stdout(&output);
        assert!(out.contains(message), "{name}: {out}");
        assert_eq!(
            out.lines().last(),
            Some("0 passed, 0 failed"),
            "{name}: {out}"
        );
        std::fs::remove_file(dir.join(name)).unwrap();
    }
    let empty = temp_dir("empty");
    let output = warrant(&["test", empty.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(2));
    assert!(stdout(&output).contains("holds no *_test.yaml files"));
}

const REQUEST: &str = r#"{"attributes": {"source": {"principal": "spiffe://prod.example.org/ns/a/sa/b"},
  "request": {"http": {"method": "GET", "path": "/admin/x", "headers": {}}}}}"#;

#[test]
fn explain_shows_trust_checks_and_every_rule() {
    let dir = temp_dir("explain");
    let policy = write(&dir, "policy.yaml", POLICY);
    let request = write(&dir, "request.json", REQUEST);
    let output = warrant(&["explain", "--policy", &policy, "--request", &request]);
    assert!(output.status.success(), "{output:?}");
    let text = stdout(&output);
    let (revision_line, text) = {
        let mut lines: Vec<&str> = text.lines().collect();
        let line = lines.remove(2);
        (line.to_owned(), lines.join("\n") + "\n")
    };
    assert!(
        revision_line.starts_with("policy:   revision "),
        "{revision_line}"
    );
    assert_eq!(revision_line.len(), "policy:   revision ".len() + 12);
    assert_eq!(
        text,
        "decision: deny (stage rules, rule 'no-admin', HTTP 404)\n\
         reason:   deny rule 'no-admin' matched\n\
         \n\
         trust\n\
         \x20 principal      passed\n\
         \x20 spiffe_id      passed\n\
         \x20 trust_domain   passed\n\
         \x20 certificate    skipped: Envoy sent no certificate, and the policy does not require one\n\
         \x20 svid           skipped: Envoy sent no certificate\n\
         \x20 validity       skipped: Envoy sent no certificate\n\
         \x20 lifetime       skipped: Envoy sent no certificate\n\
         \x20 chain          skipped: Envoy sent no certificate\n\
         \x20 revocation     skipped: the policy revokes nothing\n\
         \x20 workload_token skipped: the policy sets no trust.workload_tokens\n\
         \n\
         rules, in evaluation order\n\
         \x20 RULE      EFFECT  MODE     RESULT\n\
         \x20 no-admin  deny    enforce  matched   <- decided\n\
         \x20 reads     allow   enforce  matched\n\
         \x20 new-deny  deny    audit    not matched\n"
    );
    let output = warrant(&[
        "explain",
        "--policy",
        &policy,
        "--request",
        &request,
        "--format",
        "json",
        "--now",
        "2026-03-02T10:00:00Z",
    ]);
    assert!(output.status.success(), "{output:?}");
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(json["decision"]["rule"], "no-admin");
    assert_eq!(json["decision"]["http_status"], 404);
    assert_eq!(
        json["trust"][2],
        serde_json::json!({"check": "trust_domain", "result": "passed"})
    );
    assert_eq!(
        json["rules"],
        serde_json::json!([
            {"id": "no-admin", "effect": "deny", "mode": "enforce", "result": "matched", "decided": true},
            {"id": "reads", "effect": "allow", "mode": "enforce", "result": "matched", "decided": false},
            {"id": "new-deny", "effect": "deny", "mode": "audit", "result": "not matched", "decided": false},
        ])
    );
    let untrusted = write(
        &dir,
        "untrusted.json",
        &REQUEST.replace("prod.example.org", "evil.example.org"),
    );
    let output = warrant(&[
        "explain",
        "--policy",
        &policy,
        "--request",
        &untrusted,
        "--format",
        "json",
    ]);
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(json["trust"][2]["result"], "failed");
    assert_eq!(json["trust"][3]["result"], "not evaluated");
    assert!(
        json["rules"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["result"] == "not evaluated")
    );
    let output = warrant(&["explain", "--policy", &policy, "--request", "nope.json"]);
    assert_eq!(output.status.code(), Some(2));
}
