//! The `warrant` binary's command-line contract: `check` and `eval`.

// Test code: a failed unwrap, expect or assertion is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::Path;
use std::process::{Command, Output};

fn warrant(args: &[&str], stdin: Option<&str>) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_warrant"));
    command.args(args).current_dir(env!("CARGO_MANIFEST_DIR"));
    match stdin {
        None => command.output().unwrap(),
        Some(input) => {
            use std::io::Write;
            let mut child = command
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap();
            child
                .stdin
                .take()
                .unwrap()
                .write_all(input.as_bytes())
                .unwrap();
            child.wait_with_output().unwrap()
        }
    }
}

fn stdout(output: &Output) -> String {
    String::from_utf8(output.stdout.clone()).unwrap()
}

fn temp_dir(name: &str) -> common::fixtures::ScratchDir {
    common::fixtures::temp_dir("cli", name)
}

#[test]
fn check_shipped_policies() {
    let output = warrant(&["check", "config/policy.yaml"], None);
    assert!(output.status.success(), "{output:?}");
    assert_eq!(stdout(&output), "ok: 4 rules in 1 files\n");
}

#[test]
fn check_directory_and_errors() {
    let dir = temp_dir("check");
    std::fs::write(
        dir.join("00-trust.yaml"),
        "trust:\n  trust_domains: [prod.example.org]\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("10-rules.yaml"),
        "rules:\n  - id: a\n    effect: allow\n    when: source.namespace == \"shop\"\n",
    )
    .unwrap();
    std::fs::write(dir.join("README.md"), "not a policy").unwrap();
    let output = warrant(&["check", dir.to_str().unwrap()], None);
    assert!(output.status.success(), "{output:?}");
    assert_eq!(stdout(&output), "ok: 1 rules in 2 files\n");

    std::fs::write(
        dir.join("20-bad.yaml"),
        "rules:\n  - id: a\n    effect: allow\n    when: \"true\"\n  - id: b\n    effect: deny\n    when: request.nope\n",
    )
    .unwrap();
    let output = warrant(&["check", dir.to_str().unwrap()], None);
    assert_eq!(output.status.code(), Some(1));
    let file = dir.join("20-bad.yaml");
    let file = file.display();
    let expected_dup = format!(
        "{file}:2: rule 'a': duplicate rule id, first defined at {}:2",
        dir.join("10-rules.yaml").display()
    );
    let lines: Vec<String> = stdout(&output).lines().map(str::to_owned).collect();
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert_eq!(lines[0], expected_dup);
    assert!(
        lines[1].starts_with(&format!("{file}:7: rule 'b': unknown field request.nope")),
        "{}",
        lines[1]
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn check_missing_file() {
    let output = warrant(&["check", "does/not/exist.yaml"], None);
    assert_eq!(output.status.code(), Some(1));
    assert!(stdout(&output).starts_with("does/not/exist.yaml: cannot read policy path"));
}

const REQUEST: &str = r#"{"attributes":{
  "source":{"principal":"spiffe://prod.example.org/ns/shop/sa/frontend",
            "address":{"socketAddress":{"address":"10.0.0.1","portValue":51000}}},
  "destination":{"principal":"spiffe://prod.example.org/ns/shop/sa/payments"},
  "request":{"time":"2026-11-25T10:00:00Z",
             "http":{"method":"GET","path":"/payments/42?expand=1","host":"payments",
                     "headers":{"x-spiffe-id":"forged",":method":"GET"}}}}}"#;

fn eval_json(args: &[&str], stdin: Option<&str>) -> serde_json::Value {
    let output = warrant(args, stdin);
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    serde_json::from_str(&stdout(&output)).unwrap()
}

#[test]
fn eval_allow_from_stdin() {
    let decision = eval_json(
        &["eval", "--policy", "config/policy.yaml", "--request", "-"],
        Some(REQUEST),
    );
    assert_eq!(decision["allowed"], true);
    assert_eq!(decision["http_status"], 200);
    assert_eq!(decision["stage"], "rules");
    assert_eq!(decision["rule"], "frontend-reads-payments");
    assert_eq!(
        decision["identity"],
        serde_json::json!({
            "spiffe_id": "spiffe://prod.example.org/ns/shop/sa/frontend",
            "trust_domain": "prod.example.org",
            "origin": {"spiffe_id": "spiffe://prod.example.org/ns/shop/sa/frontend", "via": "mtls"},
            "proxy_chain": [],
            "xfcc_spoofed": false,
            "xfcc_error": null,
            "workload": null,
        })
    );
    assert_eq!(
        decision["headers"],
        serde_json::json!({"x-tenant": "shop", "x-spiffe-id": "spiffe://prod.example.org/ns/shop/sa/frontend"})
    );
}

#[test]
fn eval_deny_and_trust_from_file() {
    let dir = temp_dir("eval");
    let path = dir.join("req.json");
    std::fs::write(
        &path,
        REQUEST.replace("\"GET\",\"path\"", "\"DELETE\",\"path\""),
    )
    .unwrap();
    let decision = eval_json(
        &[
            "eval",
            "--policy",
            "config/policy.yaml",
            "--request",
            path.to_str().unwrap(),
        ],
        None,
    );
    assert_eq!(decision["allowed"], false);
    assert_eq!(decision["stage"], "default");
    assert_eq!(decision["rule"], serde_json::Value::Null);
    assert_eq!(decision["http_status"], 403);
    assert_eq!(decision["headers"], serde_json::json!({}));

    std::fs::write(
        &path,
        REQUEST.replace("prod.example.org/ns/shop/sa/frontend", "evil.org/x"),
    )
    .unwrap();
    let decision = eval_json(
        &[
            "eval",
            "--policy",
            "config/policy.yaml",
            "--request",
            path.to_str().unwrap(),
        ],
        None,
    );
    assert_eq!(decision["stage"], "trust");
    assert_eq!(decision["identity"], serde_json::Value::Null);
    assert!(decision["reason"].as_str().unwrap().contains("evil.org"));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn eval_now_fixes_the_clock() {
    let dir = temp_dir("now");
    std::fs::write(
        dir.join("p.yaml"),
        "trust:\n  trust_domains: [prod.example.org]\nrules:\n  - id: after-2030\n    effect: allow\n    when: now > timestamp(\"2030-01-01T00:00:00Z\")\n",
    )
    .unwrap();
    let policy = dir.join("p.yaml");
    let args = |now: &'static str| {
        vec![
            "eval".to_owned(),
            "--policy".to_owned(),
            policy.display().to_string(),
            "--request".to_owned(),
            "-".to_owned(),
            "--now".to_owned(),
            now.to_owned(),
        ]
    };
    let run = |now| {
        let a = args(now);
        let a: Vec<&str> = a.iter().map(String::as_str).collect();
        eval_json(&a, Some(REQUEST))
    };
    assert_eq!(run("2031-01-01T00:00:00Z")["allowed"], true);
    assert_eq!(run("2029-01-01T00:00:00+02:00")["allowed"], false);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn eval_bad_input_exits_2() {
    let output = warrant(
        &[
            "eval",
            "--policy",
            "config/policy.yaml",
            "--request",
            "-",
            "--identity-header",
            "content-length",
        ],
        Some("{}"),
    );
    assert_eq!(output.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&output.stderr)
            .contains("--identity-header: header \"content-length\" changes message framing"),
        "{output:?}"
    );
    assert!(output.stdout.is_empty());
    for (input, message) in [
        ("{not json", "is not a CheckRequest in JSON"),
        (
            r#"{"attributes":{"source":{"principle":"x"}}}"#,
            "unrecognized field name 'principle' at line 1 column 36",
        ),
    ] {
        let output = warrant(
            &["eval", "--policy", "config/policy.yaml", "--request", "-"],
            Some(input),
        );
        assert_eq!(output.status.code(), Some(2), "{input}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(message), "{stderr}");
        assert!(output.stdout.is_empty());
    }
    let output = warrant(
        &[
            "eval",
            "--policy",
            "config/policy.yaml",
            "--request",
            "/nonexistent.json",
        ],
        None,
    );
    assert_eq!(output.status.code(), Some(2));
    let output = warrant(
        &[
            "eval",
            "--policy",
            "config/policy.yaml",
            "--request",
            "-",
            "--now",
            "yesterday",
        ],
        Some(REQUEST),
    );
    assert_eq!(output.status.code(), Some(2));
    assert!(Path::new("config/policy.yaml").exists());
}

#[test]
fn too_deep_a_rule_is_refused_by_check_eval_and_serve_alike() {
    let dir = temp_dir("deep");
    let chain: Vec<String> = (0..1500)
        .map(|i| format!("[\"spiffe://prod.example.org/ns/team{i}/sa/api\"]"))
        .collect();
    let policy = dir.join("policy.yaml");
    std::fs::write(
        &policy,
        format!(
            "trust:\n  trust_domains: [prod.example.org]\nrules:\n  - id: generated-allowlist\n    effect: allow\n    when: 'source.spiffe_id in {}'\n",
            chain.join(" + ")
        ),
    )
    .unwrap();
    let policy = policy.to_str().unwrap();
    let expected = format!(
        "{policy}:6: rule 'generated-allowlist': expression is nested too deeply (about 15"
    );

    let check = warrant(&["check", policy], None);
    assert_eq!(check.status.code(), Some(1), "{check:?}");
    assert!(stdout(&check).starts_with(&expected), "{}", stdout(&check));

    let eval = warrant(&["eval", "--policy", policy, "--request", "-"], Some("{}"));
    assert_eq!(eval.status.code(), Some(2), "{eval:?}");
    assert!(
        String::from_utf8_lossy(&eval.stderr).contains(&expected),
        "{eval:?}"
    );

    let config = dir.join("warrant.yaml");
    std::fs::write(
        &config,
        format!("listen: 127.0.0.1:0\npolicy: {policy}\ndecision_log: {{to: off}}\n"),
    )
    .unwrap();
    let serve = warrant(&["serve", "--config", config.to_str().unwrap()], None);
    assert!(!serve.status.success(), "{serve:?}");
    assert!(
        String::from_utf8_lossy(&serve.stderr).contains(&expected),
        "{serve:?}"
    );
}

#[test]
fn oversized_files_are_refused_not_read_to_exhaustion() {
    let dir = temp_dir("oversized");
    let policy = dir.join("policy.yaml");
    std::fs::write(
        &policy,
        "trust:\n  trust_domains: [prod.example.org]\n  bundles: {prod.example.org: /dev/zero}\n",
    )
    .unwrap();
    let check = warrant(&["check", policy.to_str().unwrap()], None);
    assert_eq!(check.status.code(), Some(1), "{check:?}");
    assert!(
        stdout(&check).contains("cannot read /dev/zero: larger than 4 MiB"),
        "{}",
        stdout(&check)
    );
}

/// `warrant check` tells what each bundle holds.
#[test]
fn check_summarises_bundles() {
    let dir = temp_dir("bundle-summary");
    let ca = common::Ca::new("prod");
    std::fs::write(
        dir.join("bundle.json"),
        serde_json::json!({"keys": [ca.jwk()], "spiffe_sequence": 3}).to_string(),
    )
    .unwrap();
    let policy = dir.join("policy.yaml");
    std::fs::write(
        &policy,
        "trust:\n  trust_domains: [prod.example.org]\n  bundles: {prod.example.org: bundle.json}\nrules: []\n",
    )
    .unwrap();
    let check = warrant(&["check", policy.to_str().unwrap()], None);
    assert_eq!(check.status.code(), Some(0), "{check:?}");
    assert!(
        stdout(&check).contains(
            "bundle prod.example.org: 1 X.509 authorities, 0 JWT authorities, 0 intermediates, sequence 3"
        ),
        "{}",
        stdout(&check)
    );
}

/// The shipped Envoy configs remove client copies of every header that upstreams take in
/// place of the request's own host, path or method: the list Warrant refuses to set.
#[test]
fn shipped_envoy_configs_remove_every_request_override_header() {
    for config in ["examples/envoy/envoy.yaml"] {
        let text =
            std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(config)).unwrap();
        for name in warrant::header::OVERRIDES_REQUEST
            .iter()
            .chain(&["x-spiffe-id", "x-tenant"])
        {
            assert!(
                text.contains(&format!("- remove: {name}\n")),
                "{config} does not remove {name}"
            );
        }
    }
}

#[test]
fn check_reports_lints_and_strict_fails_on_them() {
    let dir = temp_dir("lint");
    let file = dir.join("p.yaml");
    std::fs::write(
        &file,
        "trust:\n  trust_domains: [prod.example.org]\nrules:\n  - id: a\n    effect: allow\n    when: source.namespace == \"shop\" && request.method == \"GET\"\n  - id: b\n    effect: allow\n    when: (source.namespace == \"shop\")  &&  request.method == \"GET\" // same\n  - id: c\n    effect: deny\n    when: \"1 == 1\"\n  - id: d\n    effect: deny\n    when: source.namespace == \"shop\" && request.method == \"GET\"\n  - id: e\n    effect: allow\n    mode: audit\n    when: source.namespace == \"shop\" && request.method == \"GET\"\n",
    )
    .unwrap();
    let path = file.to_str().unwrap();
    let output = warrant(&["check", path], None);
    assert!(output.status.success(), "{output:?}");
    let f = file.display();
    assert_eq!(
        stdout(&output),
        format!(
            "{f}:9: rule 'b': warning: the same expression as allow rule 'a' ({f}:6), which is evaluated first: this rule never decides\n\
             {f}:12: rule 'c': warning: the expression references no variable, so it is the same for every request\n\
             ok: 5 rules in 1 files, 2 warnings\n"
        )
    );
    let output = warrant(&["check", "--strict", path], None);
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    assert!(stdout(&output).ends_with("failed: 2 warnings (--strict)\n"));
}

#[test]
fn eval_reads_metadata_body_sni_and_grpc() {
    let dir = temp_dir("context");
    let policy = dir.join("p.yaml");
    std::fs::write(
        &policy,
        r#"trust: {trust_domains: [prod.example.org]}
rules:
  - id: ledger-read
    effect: allow
    when: >
      request.grpc.service == "payments.v1.Ledger" && request.grpc.method == "Read"
      && metadata["envoy.filters.http.jwt_authn"].payload.sub == "alice"
      && metadata["envoy.filters.http.jwt_authn"].payload.level == 3
      && route_metadata.warrant.tier == "gold"
      && request.body == "hello" && request.size == 5 && request.tls_sni == "ledger.payments"
  - id: not-grpc
    effect: allow
    when: request.grpc == {} && request.body == "" && request.size == -1
"#,
    )
    .unwrap();
    let request = |content_type: &str, path: &str, body: &str| {
        format!(
            r#"{{"attributes": {{
              "source": {{"principal": "spiffe://prod.example.org/ns/shop/sa/frontend"}},
              "request": {{"http": {{"method": "POST", "path": "{path}", "headers": {{"content-type": "{content_type}"}}{body}}}}},
              "metadataContext": {{"filterMetadata": {{"envoy.filters.http.jwt_authn": {{"payload": {{"sub": "alice", "level": 3}}}}}}}},
              "route_metadata_context": {{"filter_metadata": {{"warrant": {{"tier": "gold"}}}}}},
              "tlsSession": {{"sni": "ledger.payments"}}
            }}}}"#
        )
    };
    let decide = |json: String| {
        let path = dir.join("req.json");
        std::fs::write(&path, json).unwrap();
        eval_json(
            &[
                "eval",
                "--policy",
                policy.to_str().unwrap(),
                "--request",
                path.to_str().unwrap(),
            ],
            None,
        )
    };
    // raw_body (pack_as_bytes) is base64 in proto3 JSON.
    let grpc = decide(request(
        "Application/GRPC+proto",
        "/payments.v1.Ledger/Read",
        r#", "rawBody": "aGVsbG8=", "size": "5""#,
    ));
    assert_eq!(grpc["rule"], "ledger-read", "{grpc}");
    let plain = decide(request(
        "application/json",
        "/payments.v1.Ledger/Read",
        r#", "size": "-1""#,
    ));
    assert_eq!(plain["rule"], "not-grpc", "{plain}");
    let not_a_method = decide(request(
        "application/grpc",
        "/payments.v1.Ledger",
        r#", "size": "-1""#,
    ));
    assert_eq!(not_a_method["rule"], "not-grpc", "{not_a_method}");
    std::fs::remove_dir_all(&dir).unwrap();
}
