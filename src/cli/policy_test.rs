//! `warrant test`: policy test files, so policy is reviewed and tested in CI like code.
//!
//! A test file (`*_test.yaml`) names a policy (file or directory, relative to the test file),
//! an optional default clock, and cases: each a request — compact, a CheckRequest in proto3
//! JSON, or a file of one — and the decision expected. Every case's request goes through the
//! same translation as a gRPC Check (`request_json` then `convert`), so a test means what it
//! would mean behind Envoy.
//!
//! Output: `test NAME ... ok` or `test NAME ... FAILED` and what differs, then
//! `N passed, M failed` on the last line. Exit 0 when all pass, 1 when any fails, 2 when a test
//! file, a case's request or a policy cannot be loaded.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::SystemTime;

use serde::Deserialize;
use serde_saphyr::Spanned;

use super::request_json;
use crate::loader::load_policy;
use crate::policy::{Decision, Policy};
use crate::server::convert;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TestFile {
    policy: Spanned<String>,
    #[serde(default)]
    now: Option<Spanned<String>>,
    cases: Vec<Case>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    name: Spanned<String>,
    #[serde(default)]
    request: Option<CompactRequest>,
    #[serde(default)]
    check_request: Option<serde_json::Value>,
    #[serde(default)]
    check_request_file: Option<String>,
    #[serde(default)]
    now: Option<String>,
    expect: Expect,
}

/// A request written the short way; everything absent is what Envoy sends when it does not
/// know.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct CompactRequest {
    /// The caller's SPIFFE ID (Envoy's `source.principal`).
    #[serde(default)]
    source: String,
    /// A PEM file (relative to the test file) sent as `source.certificate`.
    #[serde(default)]
    certificate: Option<String>,
    #[serde(default)]
    address: Option<String>,
    #[serde(default = "get")]
    method: String,
    #[serde(default = "root")]
    path: String,
    #[serde(default)]
    host: String,
    #[serde(default = "https")]
    scheme: String,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    #[serde(default)]
    body: Option<String>,
    #[serde(default)]
    context: BTreeMap<String, String>,
    #[serde(default)]
    metadata: Option<serde_json::Value>,
    #[serde(default)]
    route_metadata: Option<serde_json::Value>,
    #[serde(default)]
    tls_sni: Option<String>,
    #[serde(default)]
    destination: Option<String>,
}

/// A field that is present: `T` itself (so `null` is an error unless `T` is an `Option`).
fn value<'de, D: serde::Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Option<T>, D::Error> {
    T::deserialize(d).map(Some)
}

fn get() -> String {
    "GET".to_owned()
}

fn root() -> String {
    "/".to_owned()
}

fn https() -> String {
    "https".to_owned()
}

/// What a case expects; a key given as `null` is an error, except `rule: null` ("no rule
/// decided").
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Expect {
    #[serde(default, deserialize_with = "value")]
    allowed: Option<bool>,
    /// A rule id, or `null` for "no rule decided" (`Some(None)`).
    #[serde(default, deserialize_with = "value")]
    rule: Option<Option<String>>,
    #[serde(default, deserialize_with = "value")]
    stage: Option<Stage>,
    #[serde(default, deserialize_with = "value")]
    status: Option<u16>,
    /// The ids of the shadow rules expected to match (in any order).
    #[serde(default, deserialize_with = "value")]
    shadow: Option<Vec<String>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Stage {
    Trust,
    Rules,
    Default,
}

impl Stage {
    fn as_str(self) -> &'static str {
        match self {
            Stage::Trust => "trust",
            Stage::Rules => "rules",
            Stage::Default => "default",
        }
    }
}

impl Expect {
    fn is_empty(&self) -> bool {
        self.allowed.is_none()
            && self.rule.is_none()
            && self.stage.is_none()
            && self.status.is_none()
            && self.shadow.is_none()
    }
}

/// A problem that stops a test file from running: `FILE:LINE: message`.
struct LoadError(String);

fn at(file: &Path, line: Option<u64>, message: impl std::fmt::Display) -> LoadError {
    match line {
        Some(line) => LoadError(format!("{}:{line}: {message}", file.display())),
        None => LoadError(format!("{}: {message}", file.display())),
    }
}

/// Runs the test files at `paths` (directories searched recursively for `*_test.yaml`).
pub(super) fn run(paths: &[PathBuf], filter: Option<&str>) -> ExitCode {
    let mut totals = Totals::default();
    let mut policies: HashMap<PathBuf, Result<Policy, String>> = HashMap::new();
    let mut files = Vec::new();
    for path in paths {
        match test_files(path) {
            Ok(found) => files.extend(found),
            Err(LoadError(message)) => {
                println!("{message}");
                totals.broken = true;
            }
        }
    }
    for file in files {
        if let Err(LoadError(message)) = run_file(&file, filter, &mut policies, &mut totals) {
            println!("{message}");
            totals.broken = true;
        }
    }
    println!("{} passed, {} failed", totals.passed, totals.failed);
    if totals.broken {
        ExitCode::from(super::EXIT_BAD_INPUT)
    } else if totals.failed > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

#[derive(Default)]
struct Totals {
    passed: usize,
    failed: usize,
    broken: bool,
}

/// `path` itself, or the `*_test.yaml` / `*_test.yml` files under it, sorted.
fn test_files(path: &Path) -> Result<Vec<PathBuf>, LoadError> {
    let meta = std::fs::metadata(path).map_err(|e| at(path, None, format!("cannot read: {e}")))?;
    if !meta.is_dir() {
        return Ok(vec![path.to_path_buf()]);
    }
    let mut found = Vec::new();
    let mut pending = vec![path.to_path_buf()];
    while let Some(dir) = pending.pop() {
        let entries =
            std::fs::read_dir(&dir).map_err(|e| at(&dir, None, format!("cannot list: {e}")))?;
        for entry in entries.filter_map(Result::ok) {
            let entry = entry.path();
            let name = entry.file_name().and_then(|n| n.to_str()).unwrap_or("");
            if entry.is_dir() {
                pending.push(entry);
            } else if name.ends_with("_test.yaml") || name.ends_with("_test.yml") {
                found.push(entry);
            }
        }
    }
    found.sort();
    if found.is_empty() {
        return Err(at(path, None, "holds no *_test.yaml files"));
    }
    Ok(found)
}

fn run_file(
    file: &Path,
    filter: Option<&str>,
    policies: &mut HashMap<PathBuf, Result<Policy, String>>,
    totals: &mut Totals,
) -> Result<(), LoadError> {
    let text =
        std::fs::read_to_string(file).map_err(|e| at(file, None, format!("cannot read: {e}")))?;
    let tests: TestFile = crate::yaml::from_str(&text).map_err(|e| {
        let line = e.location().map(|l| l.line()).filter(|l| *l > 0);
        at(file, line, crate::policy::yaml_error_gist(&e.to_string()))
    })?;
    let base = file.parent().unwrap_or(Path::new(""));
    let policy_path = base.join(&tests.policy.value);
    let policy = policies
        .entry(policy_path.clone())
        .or_insert_with(|| {
            load_policy(std::slice::from_ref(&policy_path))
                .map(|(policy, _)| policy)
                .map_err(|errors| errors.to_string())
        })
        .as_ref()
        .map_err(|errors| {
            at(
                file,
                Some(tests.policy.referenced.line()),
                format!("policy {} does not load:\n{errors}", policy_path.display()),
            )
        })?;
    let default_now = tests
        .now
        .as_ref()
        .map(|now| parse_time(&now.value).map_err(|e| at(file, Some(now.referenced.line()), e)))
        .transpose()?;
    // Every case's request first: a broken one stops the file before anything runs.
    let mut prepared = Vec::with_capacity(tests.cases.len());
    for case in &tests.cases {
        if filter.is_some_and(|f| !case.name.value.contains(f)) {
            continue;
        }
        let line = Some(case.name.referenced.line());
        if case.expect.is_empty() {
            return Err(at(
                file,
                line,
                "expect names nothing to check: give allowed, rule, stage, status or shadow",
            ));
        }
        let known = |id: &String| policy.rule_ids().any(|(_, r)| **r == **id);
        let known_shadow = |id: &String| policy.shadow_rule_ids().any(|(_, r)| **r == **id);
        if let Some(Some(rule)) = &case.expect.rule
            && !known(rule)
        {
            return Err(at(
                file,
                line,
                format!("expect.rule: the policy has no enforced rule {rule:?}"),
            ));
        }
        if let Some(unknown) = case
            .expect
            .shadow
            .iter()
            .flatten()
            .find(|id| !known_shadow(id))
        {
            return Err(at(
                file,
                line,
                format!("expect.shadow: the policy has no shadow rule {unknown:?}"),
            ));
        }
        let request = case_request(case, base).map_err(|e| at(file, line, e))?;
        let now = match &case.now {
            Some(now) => parse_time(now).map_err(|e| at(file, line, e))?,
            None => default_now.unwrap_or_else(SystemTime::now),
        };
        prepared.push((case, request, now));
    }
    for (case, request, now) in prepared {
        let decision = policy.decide(&convert::authz_request(request), now);
        let differences = compare(&case.expect, &decision);
        if differences.is_empty() {
            println!("test {} ... ok", case.name.value);
            totals.passed += 1;
        } else {
            println!("test {} ... FAILED", case.name.value);
            for difference in differences {
                println!("    {difference}");
            }
            println!("    reason: {}", decision.reason);
            // The operator's own tool: the engine's full message.
            for failure in &decision.failures {
                println!(
                    "    rule '{}' failed to evaluate: {}",
                    failure.rule, failure.detail
                );
            }
            totals.failed += 1;
        }
    }
    Ok(())
}

fn parse_time(text: &str) -> Result<SystemTime, String> {
    chrono::DateTime::parse_from_rfc3339(text)
        .map(SystemTime::from)
        .map_err(|_| format!("now {text:?} is not an RFC 3339 time (2026-03-02T10:00:00Z)"))
}

/// The case's CheckRequest, from whichever form it is written in.
fn case_request(
    case: &Case,
    base: &Path,
) -> Result<envoy_types::ext_authz::v3::pb::CheckRequest, String> {
    let json = match (&case.request, &case.check_request, &case.check_request_file) {
        (Some(compact), None, None) => compact_json(compact, base)?,
        (None, Some(json), None) => {
            // Written in YAML: a position in the JSON it becomes would mislead.
            return request_json::parse(&json.to_string()).map_err(|e| {
                let message = e.to_string();
                let message = message
                    .split(" at line ")
                    .next()
                    .unwrap_or(&message)
                    .to_owned();
                format!("check_request is not a CheckRequest: {message}")
            });
        }
        (None, None, Some(path)) => {
            let path = base.join(path);
            let text = std::fs::read_to_string(&path)
                .map_err(|e| format!("check_request_file {}: {e}", path.display()))?;
            serde_json::from_str(&text)
                .map_err(|e| format!("check_request_file {}: {e}", path.display()))?
        }
        _ => {
            return Err(
                "give the case exactly one of request, check_request and check_request_file"
                    .to_owned(),
            );
        }
    };
    request_json::parse(&json.to_string()).map_err(|e| format!("not a CheckRequest: {e}"))
}

/// A compact request as the CheckRequest JSON Envoy would send.
fn compact_json(request: &CompactRequest, base: &Path) -> Result<serde_json::Value, String> {
    let mut headers: BTreeMap<String, String> = request
        .headers
        .iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), v.clone()))
        .collect();
    // The pseudo-headers Envoy lists among the headers.
    for (name, value) in [
        (":method", &request.method),
        (":path", &request.path),
        (":authority", &request.host),
        (":scheme", &request.scheme),
    ] {
        headers
            .entry(name.to_owned())
            .or_insert_with(|| value.clone());
    }
    let mut source = serde_json::json!({"principal": request.source});
    if let Some(path) = &request.certificate {
        let path = base.join(path);
        let pem = std::fs::read_to_string(&path)
            .map_err(|e| format!("certificate {}: {e}", path.display()))?;
        let encoded =
            percent_encoding::utf8_percent_encode(&pem, percent_encoding::NON_ALPHANUMERIC);
        source["certificate"] = encoded.to_string().into();
    }
    if let Some(address) = &request.address {
        source["address"] = serde_json::json!({"socketAddress": {"address": address}});
    }
    let mut http = serde_json::json!({
        "method": request.method,
        "path": request.path,
        "host": request.host,
        "scheme": request.scheme,
        "protocol": "HTTP/2",
        "headers": headers,
    });
    if let Some(body) = &request.body {
        http["body"] = body.clone().into();
        http["size"] = body.len().into();
    }
    let mut attributes = serde_json::json!({
        "source": source,
        "request": {"http": http},
        "contextExtensions": request.context,
    });
    let filter_metadata = |value: &serde_json::Value| serde_json::json!({"filterMetadata": value});
    if let Some(metadata) = &request.metadata {
        attributes["metadataContext"] = filter_metadata(metadata);
    }
    if let Some(metadata) = &request.route_metadata {
        attributes["routeMetadataContext"] = filter_metadata(metadata);
    }
    if let Some(sni) = &request.tls_sni {
        attributes["tlsSession"] = serde_json::json!({"sni": sni});
    }
    if let Some(destination) = &request.destination {
        attributes["destination"] = serde_json::json!({"principal": destination});
    }
    Ok(serde_json::json!({"attributes": attributes}))
}

/// What differs between `expect` and `decision`, one line each.
fn compare(expect: &Expect, decision: &Decision) -> Vec<String> {
    let mut differences = Vec::new();
    let mut differ = |field: &str, expected: String, actual: String| {
        if expected != actual {
            differences.push(format!("{field}: expected {expected}, got {actual}"));
        }
    };
    if let Some(allowed) = expect.allowed {
        differ(
            "allowed",
            allowed.to_string(),
            decision.is_allowed().to_string(),
        );
    }
    if let Some(rule) = &expect.rule {
        let quoted =
            |rule: Option<&str>| rule.map_or_else(|| "null".to_owned(), |r| format!("{r:?}"));
        differ(
            "rule",
            quoted(rule.as_deref()),
            quoted(decision.rule.as_deref()),
        );
    }
    if let Some(stage) = expect.stage {
        differ(
            "stage",
            stage.as_str().to_owned(),
            decision.stage.as_str().to_owned(),
        );
    }
    if let Some(status) = expect.status {
        differ(
            "status",
            status.to_string(),
            decision.http_status.to_string(),
        );
    }
    if let Some(shadow) = &expect.shadow {
        let mut expected = shadow.clone();
        expected.sort();
        let mut actual: Vec<String> = decision
            .shadow_matches()
            .map(|s| s.rule.to_string())
            .collect();
        actual.sort();
        differ("shadow", format!("{expected:?}"), format!("{actual:?}"));
    }
    differences
}
