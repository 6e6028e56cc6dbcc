//! Operator data (`data:` and `data_files:`) through the loader, with real files.

// Test code: a failed unwrap, expect or assertion is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::Path;

use common::policy::{FRONTEND, TRUST, compile, errors, request};
use warrant::policy::Policy;

fn decide(
    policy: &Policy,
    principal: &str,
    method: &str,
    path: &str,
    now: &str,
) -> (String, Option<String>) {
    let now = humantime::parse_rfc3339(now).expect("an RFC 3339 time");
    let d = policy.decide(&request(principal, method, path), now);
    (d.verdict.to_string(), d.rule.map(|r| r.to_string()))
}
use warrant::loader::load_policy;

fn temp_dir(name: &str) -> common::fixtures::ScratchDir {
    common::fixtures::temp_dir("data", name)
}

fn load(dir: &Path) -> Result<Policy, Vec<String>> {
    load_policy(&[dir.join("policy.yaml")])
        .map(|(policy, _)| policy)
        .map_err(|e| e.0.iter().map(ToString::to_string).collect())
}

#[test]
fn sections_and_files_merge_into_data() {
    let dir = temp_dir("merge");
    std::fs::write(
        dir.join("policy.yaml"),
        format!(
            "{TRUST}data:\n  writers: [{FRONTEND}]\ndata_files: [sensitivity.yaml, freezes.json]\nrules:\n  - id: freeze\n    effect: deny\n    when: request.method == 'POST' && longest_prefix(request.path, data.sensitivity) == 'restricted' && within(now, data.freezes)\n  - id: writers\n    effect: allow\n    when: source.spiffe_id in data.writers\n"
        ),
    )
    .unwrap();
    std::fs::write(
        dir.join("sensitivity.yaml"),
        "sensitivity:\n  /: public\n  /payments/: restricted\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("freezes.json"),
        r#"{"freezes": [{"start": "2026-12-20T00:00:00Z", "end": "2027-01-04T00:00:00Z"}]}"#,
    )
    .unwrap();
    let policy = load(&dir).unwrap_or_else(|e| panic!("{e:?}"));
    assert_eq!(policy.files().len(), 3);
    let in_freeze = "2026-12-24T12:00:00Z";
    let after = "2027-01-10T12:00:00Z";
    let decided =
        |method: &str, path: &str, now: &str| decide(&policy, FRONTEND, method, path, now);
    assert_eq!(
        decided("POST", "/payments/1", in_freeze),
        ("deny".into(), Some("freeze".into()))
    );
    assert_eq!(
        decided("GET", "/payments/1", in_freeze),
        ("allow".into(), Some("writers".into()))
    );
    assert_eq!(
        decided("POST", "/shop/1", in_freeze),
        ("allow".into(), Some("writers".into()))
    );
    assert_eq!(
        decided("POST", "/payments/1", after),
        ("allow".into(), Some("writers".into()))
    );
}

#[test]
fn a_key_defined_twice_and_bad_files_name_their_places() {
    let dir = temp_dir("twice");
    std::fs::write(
        dir.join("policy.yaml"),
        format!("{TRUST}data:\n  a: 1\n  freezes: []\ndata_files: [f.json, missing.yaml, list.yaml, notes.txt]\nrules: []\n"),
    )
    .unwrap();
    std::fs::write(dir.join("f.json"), "{\n  \"freezes\": []\n}").unwrap();
    std::fs::write(dir.join("list.yaml"), "- 1\n").unwrap();
    std::fs::write(dir.join("notes.txt"), "x: 1\n").unwrap();
    let errors = load(&dir).expect_err("does not load");
    let text = errors.join("\n");
    let policy = dir.join("policy.yaml").display().to_string();
    let f = dir.join("f.json").display().to_string();
    assert!(
        text.contains(&format!(
            "{f}:2: data key \"freezes\" is already defined at {policy}:5"
        )),
        "{text}"
    );
    assert!(text.contains("missing.yaml: cannot read it"), "{text}");
    assert!(
        text.contains("a data file holds a map at its top level"),
        "{text}"
    );
    assert!(text.contains("name it *.json, *.yaml or *.yml"), "{text}");
    assert_eq!(errors.len(), 4, "{text}");
}

#[test]
fn a_key_data_lacks_fails_the_load_unless_tested() {
    let errs = errors(&[(
        "p.yaml",
        &format!(
            "{TRUST}data:\n  allowlist: []\nrules:\n  - id: typo\n    effect: allow\n    when: source.spiffe_id in data.alowlist\n"
        ),
    )]);
    assert_eq!(
        errs,
        [
            "p.yaml:8: rule 'typo': data.alowlist is not in the policy's data: no such key, so reading it always fails (test for it first with has() or `in` if it may be absent) (data has: allowlist)"
        ]
    );
    for when in [
        "has(data.overrides) && source.spiffe_id in data.overrides",
        "'overrides' in data && source.spiffe_id in data.overrides",
        "data.flags.open",
        "data['flags']['open'] == true",
    ] {
        let policy = compile_with_data(when);
        assert_eq!(policy.rule_count(), 1, "{when}");
    }
    let errs = errors(&[(
        "p.yaml",
        &format!(
            "{TRUST}data:\n  windows: [{{start: x, end: y}}]\nrules:\n  - id: w\n    effect: deny\n    when: within(now, data.windows)\n"
        ),
    )]);
    assert_eq!(errs.len(), 1);
    assert!(errs[0].contains("rule 'w': within() windows … fails on every request: window 0: start \"x\" is not an RFC 3339 time"), "{}", errs[0]);
}

fn compile_with_data(when: &str) -> Policy {
    common::policy::compile_files(&[(
        "p.yaml",
        &format!("{TRUST}data:\n  flags: {{open: true}}\nrules:\n  - id: r\n    effect: allow\n    when: \"{when}\"\n"),
    )])
    .unwrap_or_else(|e| panic!("{when}: {e}"))
}

#[test]
fn large_allowlists_work_with_in() {
    let ids: Vec<String> = (0..10_000)
        .map(|i| format!("spiffe://prod.example.org/ns/n{i}/sa/s"))
        .collect();
    let policy = compile(&format!(
        "  - id: listed\n    effect: allow\n    when: source.spiffe_id in data.allow\ndata:\n  allow: [{}]\n",
        ids.iter()
            .map(|i| format!("'{i}'"))
            .collect::<Vec<_>>()
            .join(", ")
    ));
    let now = "2026-03-02T10:00:00Z";
    let listed = decide(
        &policy,
        "spiffe://prod.example.org/ns/n9999/sa/s",
        "GET",
        "/",
        now,
    );
    assert_eq!(listed.0, "allow");
    assert_eq!(decide(&policy, FRONTEND, "GET", "/", now).0, "deny");
}

#[test]
fn guarded_reads_load_and_repeated_json_keys_do_not() {
    for when in [
        "size(data.nets) > 5 && data.nets[5] == 'x'",
        "type(data.zone) == map && data.zone.x == 1",
        "data.nets.size() > 2 && in_cidr(source.address, data.nets[2])",
    ] {
        let policy = common::policy::compile_files(&[(
            "p.yaml",
            &format!(
                "{TRUST}data:\n  nets: ['10.0.0.0/8', 'fd00::/8']\n  zone: utc\nrules:\n  - id: r\n    effect: allow\n    when: \"{when}\"\n"
            ),
        )]);
        assert!(policy.is_ok(), "{when}: {:?}", policy.err());
    }
    let dir = temp_dir("repeated");
    std::fs::write(
        dir.join("policy.yaml"),
        format!("{TRUST}data_files: [d.json]\nrules:\n  - id: r\n    effect: allow\n    when: data.a == 1\n"),
    )
    .unwrap();
    std::fs::write(dir.join("d.json"), "{\"a\": 1,\n \"a\": 2}").unwrap();
    let errors = load(&dir).expect_err("repeated key");
    assert_eq!(
        errors.len(),
        1,
        "only the data error, not a follow-up: {errors:?}"
    );
    assert!(
        errors[0].contains("d.json:2: invalid JSON: duplicate key \"a\""),
        "{errors:?}"
    );
}

#[test]
fn grpc_keys_are_fixed() {
    let errs = errors(&[(
        "p.yaml",
        &format!("{TRUST}rules:\n  - id: g\n    effect: deny\n    when: has(request.grpc.methd)\n"),
    )]);
    assert_eq!(
        errs,
        ["p.yaml:6: rule 'g': unknown field request.grpc.methd; request.grpc has service, method"]
    );
    let policy = compile(
        "  - id: g\n    effect: allow\n    when: has(request.grpc.service) && request.grpc.method == 'Read'\n",
    );
    let mut req = request(FRONTEND, "POST", "/a.v1.S/Read?x=1");
    if let Some(http) = req.http.as_mut() {
        http.headers
            .push(("content-type".into(), "application/grpc".into()));
    }
    let d = policy.decide(&req, std::time::SystemTime::now());
    assert!(d.is_allowed(), "a query string is ignored: {}", d.reason);
}

#[test]
fn yaml_11_booleans_stay_strings_and_data_files_in_the_policy_directory_are_data() {
    let dir = temp_dir("norway");
    std::fs::write(
        dir.join("policy.yaml"),
        format!(
            "{TRUST}data:\n  blocked: [RU, NO, KP]\ndata_files: [countries.yaml, ./countries.yaml]\nrules:\n  - id: r\n    effect: allow\n    when: \"'NO' in data.blocked && 'off' in data.modes\"\n"
        ),
    )
    .unwrap();
    std::fs::write(dir.join("countries.yaml"), "modes: [on, off, yes]\n").unwrap();
    let errors = load(&dir).expect_err("listed twice");
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].contains("countries.yaml is already listed at"),
        "{errors:?}"
    );
    std::fs::write(
        dir.join("policy.yaml"),
        format!(
            "{TRUST}data:\n  blocked: [RU, NO, KP]\ndata_files: [countries.yaml]\nrules:\n  - id: r\n    effect: allow\n    when: \"'NO' in data.blocked && 'off' in data.modes\"\n"
        ),
    )
    .unwrap();
    // The directory holds the data file too: it is data, not a policy document.
    let policy = load_policy(&[dir.to_path_buf()])
        .map(|(p, _)| p)
        .unwrap_or_else(|e| panic!("{e}"));
    let d = policy.decide(&request(FRONTEND, "GET", "/"), std::time::SystemTime::now());
    assert!(d.is_allowed(), "{}", d.reason);
}

#[test]
fn metadata_may_hold_a_bool_and_sni_is_lower_case() {
    let policy = compile("  - id: m\n    effect: allow\n    when: metadata.posture.signed\n");
    let mut req = request(FRONTEND, "GET", "/");
    req.metadata
        .insert("posture".into(), serde_json::json!({"signed": true}));
    let d = policy.decide(&req, std::time::SystemTime::now());
    assert!(d.is_allowed(), "{}", d.reason);
    let errs = errors(&[(
        "p.yaml",
        &format!(
            "{TRUST}rules:\n  - id: s\n    effect: deny\n    when: request.tls_sni == 'PAY.example.org'\n"
        ),
    )]);
    assert_eq!(errs.len(), 1);
    assert!(
        errs[0].contains("request.tls_sni is always in lower case"),
        "{}",
        errs[0]
    );
    for when in [
        "'methd' in request.grpc",
        "request.grpc['servce'] == 'x'",
        "request.grpc.?servce == optional.of('x')",
    ] {
        let errs = errors(&[(
            "p.yaml",
            &format!("{TRUST}rules:\n  - id: g\n    effect: deny\n    when: \"{when}\"\n"),
        )]);
        assert_eq!(errs.len(), 1, "{when}");
        assert!(
            errs[0].contains("request.grpc has service, method"),
            "{when}: {}",
            errs[0]
        );
    }
}
