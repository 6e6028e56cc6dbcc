//! Policy reloads: atomic replacement, invalid policies rejected whole, SIGHUP, and the
//! revision every decision reports.

// Test code: a failed unwrap, expect or assertion is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::fixtures::{http_get, metric};

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use envoy_types::ext_authz::v3::pb::CheckResponse;
use envoy_types::pb::envoy::service::auth::v3::authorization_client::AuthorizationClient;
use envoy_types::pb::google::protobuf::value::Kind;
use warrant::config::Config;
use warrant::server::live::Reload;

const FRONTEND: &str = "spiffe://prod.example.org/ns/shop/sa/frontend";

/// A policy that allows exactly `path`.
fn policy_allowing(path: &str) -> String {
    format!(
        "trust: {{trust_domains: [prod.example.org]}}\nrules:\n  - id: only-{0}\n    effect: allow\n    when: request.path == \"/{0}\"\n",
        path.trim_start_matches('/')
    )
}

/// (allowed, revision) from a CheckResponse.
fn outcome(response: &CheckResponse) -> (bool, String) {
    let allowed = response.status.as_ref().is_some_and(|s| s.code == 0);
    let revision = response
        .dynamic_metadata
        .as_ref()
        .and_then(|m| m.fields.get("policy_revision"))
        .and_then(|v| match &v.kind {
            Some(Kind::StringValue(s)) => Some(s.clone()),
            _ => None,
        })
        .unwrap_or_default();
    (allowed, revision)
}

fn config(dir: &Path, policy: &Path) -> Config {
    Config::parse(
        &dir.join("warrant.yaml"),
        &format!(
            "listen: 127.0.0.1:0\npolicy: {}\ndecision_log: {{to: off}}\nadmin: {{listen: 127.0.0.1:0}}\nreload: {{watch: false}}\n",
            policy.display()
        ),
    )
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_replaces_the_policy_whole_and_an_invalid_one_changes_nothing() {
    let dir = common::fixtures::temp_dir("reload", "whole");
    let policy = dir.join("policy.yaml");
    std::fs::write(&policy, policy_allowing("a")).unwrap();
    let bound = warrant::server::bind(config(&dir, &policy)).await.unwrap();
    let grpc = bound.grpc_addr().unwrap();
    let admin = bound.admin_addr().unwrap();
    let live = std::sync::Arc::clone(bound.policy());
    tokio::spawn(async move { bound.serve(std::future::pending()).await.unwrap() });
    let mut client = AuthorizationClient::connect(format!("http://{grpc}"))
        .await
        .unwrap();
    let mut check = async |path: &str| {
        outcome(
            &client
                .check(common::fixtures::get(FRONTEND, path))
                .await
                .unwrap()
                .into_inner(),
        )
    };
    let (allowed, first) = check("/a").await;
    assert!(allowed);
    assert_eq!(first.len(), 12);
    let ready = tokio::task::spawn_blocking(move || http_get(admin, "/readyz"))
        .await
        .unwrap();
    assert_eq!(ready, (200, format!("ready: policy revision {first}\n")));

    // Unchanged files: nothing happens.
    let reload = |live: std::sync::Arc<warrant::server::live::LivePolicy>| async move {
        tokio::task::spawn_blocking(move || live.reload())
            .await
            .unwrap()
    };
    assert_eq!(reload(live.clone()).await, Reload::Unchanged);

    // A new policy serves whole.
    std::fs::write(&policy, policy_allowing("b")).unwrap();
    let Reload::Replaced { from, to } = reload(live.clone()).await else {
        panic!("not replaced");
    };
    assert_eq!(*from, *first);
    assert_eq!(check("/a").await, (false, to.to_string()));
    assert_eq!(check("/b").await, (true, to.to_string()));

    // An invalid one is refused whole: the previous one keeps serving.
    std::fs::write(
        &policy,
        policy_allowing("c").replace("request.path", "request.pth"),
    )
    .unwrap();
    let Reload::Failed(error) = reload(live.clone()).await else {
        panic!("not refused");
    };
    assert!(
        error.contains("policy.yaml:5: rule 'only-c': unknown field request.pth"),
        "{error}"
    );
    assert_eq!(check("/b").await, (true, to.to_string()));
    let (status, body) = tokio::task::spawn_blocking(move || http_get(admin, "/readyz"))
        .await
        .unwrap();
    assert_eq!(status, 200, "the old policy still serves");
    assert!(
        body.contains(&format!("ready: policy revision {to}")),
        "{body}"
    );
    assert!(
        body.contains("the last reload failed") && body.contains("request.pth"),
        "{body}"
    );
    let (_, metrics) = tokio::task::spawn_blocking(move || http_get(admin, "/metrics"))
        .await
        .unwrap();
    assert_eq!(
        metric(&metrics, "warrant_policy_reloads_total{result=\"success\"}"),
        Some(1.0),
        "{metrics}"
    );
    assert_eq!(
        metric(&metrics, "warrant_policy_reloads_total{result=\"failure\"}"),
        Some(1.0)
    );
    assert_eq!(
        metric(
            &metrics,
            &format!("warrant_policy_info{{revision=\"{to}\"}}")
        ),
        Some(1.0),
        "{metrics}"
    );
    assert!(
        !metrics.contains(&format!("revision=\"{first}\"")),
        "one series: {metrics}"
    );
    assert!(
        metrics.contains("rule=\"only-b\""),
        "the new policy's rules are counted: {metrics}"
    );
    assert!(
        !metrics.contains("rule=\"only-a\""),
        "a rule no longer loaded has no series: {metrics}"
    );

    // Fixed: it serves, and the error is gone.
    std::fs::write(&policy, policy_allowing("c")).unwrap();
    assert!(matches!(
        reload(live.clone()).await,
        Reload::Replaced { .. }
    ));
    assert!(check("/c").await.0);
    let (_, body) = tokio::task::spawn_blocking(move || http_get(admin, "/readyz"))
        .await
        .unwrap();
    assert!(!body.contains("failed"), "{body}");
}

#[test]
fn sighup_reloads_the_policy() {
    let dir = common::fixtures::temp_dir("reload", "sighup");
    let policy = dir.join("policy.yaml");
    std::fs::write(&policy, policy_allowing("a")).unwrap();
    let admin_port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    std::fs::write(
        dir.join("warrant.yaml"),
        format!(
            "listen: 127.0.0.1:0\npolicy: {}\ndecision_log: {{to: {}}}\nadmin: {{listen: 127.0.0.1:{admin_port}}}\nreload: {{watch: false}}\n",
            policy.display(),
            dir.join("decisions.jsonl").display()
        ),
    )
    .unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_warrant"))
        .args([
            "serve",
            "--config",
            dir.join("warrant.yaml").to_str().unwrap(),
        ])
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let admin: SocketAddr = format!("127.0.0.1:{admin_port}").parse().unwrap();
    let ready = |admin| {
        for _ in 0..100 {
            if std::net::TcpStream::connect(admin).is_ok() {
                return http_get(admin, "/readyz").1;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("the server did not start");
    };
    let before = ready(admin);
    assert!(before.starts_with("ready: policy revision "), "{before}");
    // The container health check.
    let probe = |admin: &str| {
        std::process::Command::new(env!("CARGO_BIN_EXE_warrant"))
            .args(["ready", "--admin", admin])
            .output()
            .unwrap()
            .status
            .code()
    };
    assert_eq!(probe(&admin.to_string()), Some(0));
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    assert_eq!(probe(&closed.to_string()), Some(1));
    std::fs::write(&policy, policy_allowing("b")).unwrap();
    // logrotate moved the decision log away: SIGHUP reopens it at its path.
    std::fs::rename(dir.join("decisions.jsonl"), dir.join("decisions.jsonl.1")).unwrap();
    let status = std::process::Command::new("kill")
        .args(["-HUP", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let mut after = before.clone();
    for _ in 0..100 {
        after = http_get(admin, "/readyz").1;
        if after != before {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let reopened = (0..100).any(|_| {
        let exists = dir.join("decisions.jsonl").exists();
        if !exists {
            std::thread::sleep(Duration::from_millis(20));
        }
        exists
    });
    let _ = child.kill();
    let _ = child.wait();
    assert_ne!(after, before, "SIGHUP did not reload");
    assert!(reopened, "SIGHUP did not reopen the decision log");
    assert!(after.starts_with("ready: policy revision "), "{after}");
}

fn watching_config(dir: &Path, policy: &Path) -> Config {
    Config::parse(
        &dir.join("warrant.yaml"),
        &format!(
            "listen: 127.0.0.1:0\npolicy: {}\ndecision_log: {{to: off}}\nreload: {{watch: true, debounce: 50ms}}\n",
            policy.display()
        ),
    )
    .unwrap()
}

/// Waits until the serving revision differs from `old`; returns it.
async fn next_revision(live: &warrant::server::live::LivePolicy, old: &str) -> String {
    for _ in 0..200 {
        let now = live.current().revision().to_string();
        if now != old {
            return now;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("no reload happened");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_to_the_policy_and_its_data_files_reload_it() {
    let dir = common::fixtures::temp_dir("reload", "watch");
    let policy = dir.join("policy.yaml");
    std::fs::create_dir_all(dir.join("data")).unwrap();
    std::fs::write(dir.join("data/paths.json"), r#"{"paths": ["/a"]}"#).unwrap();
    std::fs::write(
        &policy,
        "trust: {trust_domains: [prod.example.org]}\ndata_files: [data/paths.json]\nrules:\n  - id: listed\n    effect: allow\n    when: request.path in data.paths\n",
    )
    .unwrap();
    let bound = warrant::server::bind(watching_config(&dir, &policy))
        .await
        .unwrap();
    let live = std::sync::Arc::clone(bound.policy());
    tokio::spawn(async move { bound.serve(std::future::pending()).await.unwrap() });
    let first = live.current().revision().to_string();
    // A data file in a directory of its own.
    std::fs::write(dir.join("data/paths.json"), r#"{"paths": ["/b"]}"#).unwrap();
    let second = next_revision(&live, &first).await;
    let decide = |path: &str| {
        let request =
            warrant::server::convert::authz_request(common::fixtures::get(FRONTEND, path));
        live.current()
            .decide(&request, std::time::SystemTime::now())
            .is_allowed()
    };
    assert!(decide("/b") && !decide("/a"));
    // The policy file, replaced by a rename as editors do.
    let tmp = dir.join(".policy.yaml.swp");
    std::fs::write(&tmp, policy_allowing("c")).unwrap();
    std::fs::rename(&tmp, &policy).unwrap();
    let third = next_revision(&live, &second).await;
    assert_ne!(third, first);
    assert!(decide("/c"));
}

/// A Kubernetes ConfigMap volume: `policy.yaml -> ..data/policy.yaml`, `..data -> ..<ts>`,
/// updated by writing a new `..<ts>` directory and renaming a new `..data` link over the old.
#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_configmap_symlink_swap_reloads() {
    use std::os::unix::fs::symlink;
    let dir = common::fixtures::temp_dir("reload", "configmap");
    let version = |name: &str, allowed: &str| {
        std::fs::create_dir_all(dir.join(name)).unwrap();
        std::fs::write(dir.join(name).join("policy.yaml"), policy_allowing(allowed)).unwrap();
    };
    version("..2026_11_30_01", "a");
    symlink("..2026_11_30_01", dir.join("..data")).unwrap();
    symlink("..data/policy.yaml", dir.join("policy.yaml")).unwrap();
    let bound = warrant::server::bind(watching_config(&dir, &dir.join("policy.yaml")))
        .await
        .unwrap();
    let live = std::sync::Arc::clone(bound.policy());
    tokio::spawn(async move { bound.serve(std::future::pending()).await.unwrap() });
    let first = live.current().revision().to_string();
    version("..2026_11_30_02", "b");
    symlink("..2026_11_30_02", dir.join("..data_tmp")).unwrap();
    std::fs::rename(dir.join("..data_tmp"), dir.join("..data")).unwrap();
    std::fs::remove_dir_all(dir.join("..2026_11_30_01")).unwrap();
    next_revision(&live, &first).await;
    let request = warrant::server::convert::authz_request(common::fixtures::get(FRONTEND, "/b"));
    assert!(
        live.current()
            .decide(&request, std::time::SystemTime::now())
            .is_allowed()
    );
}

/// Checks keep flowing while the policy is rewritten many times, valid and invalid versions
/// alternating: no Check fails, and every decision is the one its reported revision makes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reloads_under_load_lose_no_check_and_decisions_match_their_revision() {
    let dir = common::fixtures::temp_dir("reload", "load");
    let policy = dir.join("policy.yaml");
    std::fs::write(&policy, policy_allowing("v0")).unwrap();
    let bound = warrant::server::bind(watching_config(&dir, &policy))
        .await
        .unwrap();
    let grpc = bound.grpc_addr().unwrap();
    let live = std::sync::Arc::clone(bound.policy());
    tokio::spawn(async move { bound.serve(std::future::pending()).await.unwrap() });
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut checkers = Vec::new();
    for worker in 0..4u64 {
        let done = std::sync::Arc::clone(&done);
        checkers.push(tokio::spawn(async move {
            let mut client = AuthorizationClient::connect(format!("http://{grpc}"))
                .await
                .unwrap();
            let mut seen = Vec::new();
            let mut n = worker;
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                n = (n + 1) % 10;
                let response = client
                    .check(common::fixtures::get(FRONTEND, &format!("/v{n}")))
                    .await
                    .expect("no Check fails during reloads")
                    .into_inner();
                let (allowed, revision) = outcome(&response);
                seen.push((n, allowed, revision));
            }
            seen
        }));
    }
    let mut reloads = 0;
    for round in 1..=30u64 {
        let version = round % 10;
        let text = if round % 3 == 0 {
            policy_allowing(&format!("v{version}")).replace("effect: allow", "effect: maybe")
        } else {
            policy_allowing(&format!("v{version}"))
        };
        std::fs::write(&policy, text).unwrap();
        if round % 5 == 0 {
            let live = std::sync::Arc::clone(&live);
            tokio::task::spawn_blocking(move || live.reload())
                .await
                .unwrap();
        }
        // Longer than the debounce, so the watcher reloads most versions.
        tokio::time::sleep(Duration::from_millis(90)).await;
        reloads += 1;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut seen = Vec::new();
    for checker in checkers {
        seen.extend(checker.await.unwrap());
    }
    assert!(
        seen.len() > 100,
        "{} Checks during {reloads} rewrites",
        seen.len()
    );
    // Each revision allows exactly one version, and only that one.
    let mut allows: std::collections::HashMap<String, u64> = std::collections::HashMap::new();
    for (n, allowed, revision) in &seen {
        if *allowed {
            let previous = allows.insert(revision.clone(), *n);
            assert!(
                previous.is_none_or(|p| p == *n),
                "revision {revision} allowed /v{p:?} and /v{n}",
                p = previous
            );
        }
    }
    for (n, allowed, revision) in &seen {
        if !allowed && let Some(version) = allows.get(revision) {
            assert_ne!(
                version, n,
                "revision {revision} both allowed and denied /v{n}"
            );
        }
    }
    assert!(allows.len() > 3, "several revisions served: {allows:?}");
    let (succeeded, failed) = live.metrics().reload_counts();
    assert!(
        succeeded > 3 && failed > 0,
        "succeeded {succeeded}, failed {failed}"
    );
}

/// logrotate renames the decision log away: the next lines go to a new file at the path, and
/// no line is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_decision_log_follows_rotation() {
    let dir = common::fixtures::temp_dir("reload", "rotate");
    let policy = dir.join("policy.yaml");
    std::fs::write(&policy, policy_allowing("a")).unwrap();
    let log = dir.join("decisions.jsonl");
    let config = Config::parse(
        &dir.join("warrant.yaml"),
        &format!(
            "listen: 127.0.0.1:0\npolicy: {}\ndecision_log: {{to: {}}}\nreload: {{watch: false}}\n",
            policy.display(),
            log.display()
        ),
    )
    .unwrap();
    let bound = warrant::server::bind(config).await.unwrap();
    let grpc = bound.grpc_addr().unwrap();
    let auditor = std::sync::Arc::clone(bound.auditor());
    tokio::spawn(async move { bound.serve(std::future::pending()).await.unwrap() });
    let mut client = AuthorizationClient::connect(format!("http://{grpc}"))
        .await
        .unwrap();
    let lines = |path: &Path| {
        std::fs::read_to_string(path)
            .map(|text| text.lines().count())
            .unwrap_or(0)
    };
    let flush = |auditor: std::sync::Arc<warrant::audit::Auditor>| async move {
        tokio::task::spawn_blocking(move || assert!(auditor.flush(Duration::from_secs(5))))
            .await
            .unwrap();
    };
    for _ in 0..3 {
        client
            .check(common::fixtures::get(FRONTEND, "/a"))
            .await
            .unwrap();
    }
    flush(auditor.clone()).await;
    assert_eq!(lines(&log), 3);
    // Rotated without a signal: detected before the next write.
    std::fs::rename(&log, dir.join("decisions.jsonl.1")).unwrap();
    for _ in 0..2 {
        client
            .check(common::fixtures::get(FRONTEND, "/a"))
            .await
            .unwrap();
    }
    flush(auditor.clone()).await;
    assert_eq!((lines(&dir.join("decisions.jsonl.1")), lines(&log)), (3, 2));
    // Rotated, then SIGHUP's reopen.
    std::fs::rename(&log, dir.join("decisions.jsonl.2")).unwrap();
    let reopening = auditor.clone();
    tokio::task::spawn_blocking(move || reopening.reopen_decision_log())
        .await
        .unwrap();
    client
        .check(common::fixtures::get(FRONTEND, "/a"))
        .await
        .unwrap();
    flush(auditor.clone()).await;
    assert_eq!((lines(&dir.join("decisions.jsonl.2")), lines(&log)), (2, 1));
    // Rotated, and the path cannot be opened again (a directory took its place): the line
    // goes on to the rotated file, and the failure is counted.
    std::fs::rename(&log, dir.join("decisions.jsonl.3")).unwrap();
    std::fs::create_dir(&log).unwrap();
    client
        .check(common::fixtures::get(FRONTEND, "/a"))
        .await
        .unwrap();
    flush(auditor.clone()).await;
    assert_eq!(lines(&dir.join("decisions.jsonl.3")), 2);
    assert_eq!(auditor.metrics().decision_log_reopen_failures(), 1);
}

/// The admin listener's status page, as JSON and as HTML: no secrets, no request data.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_status_page_tells_revision_rules_reloads_and_sinks() {
    let dir = common::fixtures::temp_dir("reload", "status");
    let policy = dir.join("policy.yaml");
    std::fs::write(
        &policy,
        format!(
            "{}  - id: shadow-<x>\n    effect: deny\n    mode: audit\n    when: request.path == \"/a\"\n",
            policy_allowing("a")
        ),
    )
    .unwrap();
    let bound = warrant::server::bind(config(&dir, &policy)).await.unwrap();
    let grpc = bound.grpc_addr().unwrap();
    let admin = bound.admin_addr().unwrap();
    let live = std::sync::Arc::clone(bound.policy());
    tokio::spawn(async move { bound.serve(std::future::pending()).await.unwrap() });
    let mut client = AuthorizationClient::connect(format!("http://{grpc}"))
        .await
        .unwrap();
    for _ in 0..3 {
        client
            .check(common::fixtures::get(FRONTEND, "/a"))
            .await
            .unwrap();
    }
    // A failed reload shows.
    std::fs::write(&policy, "trust: {trust_domains: []}\n").unwrap();
    let reloading = std::sync::Arc::clone(&live);
    tokio::task::spawn_blocking(move || reloading.reload())
        .await
        .unwrap();
    let (status, body) = tokio::task::spawn_blocking(move || http_get(admin, "/status"))
        .await
        .unwrap();
    assert_eq!(status, 200);
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(json["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(json["ready"], true);
    assert_eq!(
        json["policy"]["revision"],
        live.current().revision().to_string()
    );
    assert_eq!(json["policy"]["reloads"]["failure"], 1);
    assert!(
        json["policy"]["last_reload_error"]["errors"]
            .as_str()
            .unwrap()
            .contains("trust.trust_domains is empty")
    );
    assert_eq!(
        json["rules"],
        serde_json::json!([
            {"id": "only-a", "effect": "allow", "mode": "enforce", "decided": 3},
            {"id": "shadow-<x>", "effect": "deny", "mode": "audit", "shadow_matches": 3},
        ])
    );
    assert_eq!(json["audit"]["decision_log"]["to"], "off");
    assert_eq!(json["listeners"]["grpc"]["tls"], "off");
    assert_eq!(json["trust"]["trust_domains"][0], "prod.example.org");
    assert_eq!(json["trust"]["bundles"], serde_json::json!([]));
    assert_eq!(json["listeners"]["admin"], admin.to_string());
    let (status, page) = tokio::task::spawn_blocking(move || http_get(admin, "/"))
        .await
        .unwrap();
    assert_eq!(status, 200);
    assert!(page.starts_with("<!doctype html>"), "{page}");
    assert!(page.contains(&*live.current().revision().to_string()));
    assert!(page.contains("shadow-&lt;x&gt;"), "ids are escaped: {page}");
    assert!(!page.contains("shadow-<x>"));
    assert!(page.contains("trust.trust_domains is empty"));
}

/// Only the policy's own files reload it: a log written next to it does not (an invalid policy
/// would otherwise be reloaded, and fail, on every write); a symlinked policy file is followed
/// to its target; a data directory replaced whole keeps being watched.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_watcher_follows_the_policys_own_files_only() {
    let dir = common::fixtures::temp_dir("reload", "own");
    let store = dir.join("store");
    std::fs::create_dir_all(store.join("data")).unwrap();
    std::fs::write(store.join("data/paths.json"), r#"{"paths": ["/a"]}"#).unwrap();
    std::fs::write(
        store.join("policy.yaml"),
        "trust: {trust_domains: [prod.example.org]}\ndata_files: [data/paths.json]\nrules:\n  - id: listed\n    effect: allow\n    when: request.path in data.paths\n",
    )
    .unwrap();
    // The policy is read through a symlinked directory.
    let conf = dir.join("conf");
    #[cfg(unix)]
    std::os::unix::fs::symlink(&store, &conf).unwrap();
    let bound = warrant::server::bind(watching_config(&dir, &conf.join("policy.yaml")))
        .await
        .unwrap();
    let live = std::sync::Arc::clone(bound.policy());
    tokio::spawn(async move { bound.serve(std::future::pending()).await.unwrap() });
    let first = live.current().revision().to_string();
    // The symlink's target changes.
    std::fs::write(store.join("data/paths.json"), r#"{"paths": ["/b"]}"#).unwrap();
    let second = next_revision(&live, &first).await;
    // The data directory replaced whole, then edited.
    std::fs::create_dir_all(store.join("data.new")).unwrap();
    std::fs::write(store.join("data.new/paths.json"), r#"{"paths": ["/c"]}"#).unwrap();
    std::fs::remove_dir_all(store.join("data")).unwrap();
    std::fs::rename(store.join("data.new"), store.join("data")).unwrap();
    let third = next_revision(&live, &second).await;
    std::fs::write(store.join("data/paths.json"), r#"{"paths": ["/d"]}"#).unwrap();
    let fourth = next_revision(&live, &third).await;
    assert_ne!(fourth, first);
    // An invalid policy fails once; a log written next to it does not retry it.
    std::fs::write(store.join("policy.yaml"), "trust: {trust_domains: []}\n").unwrap();
    for _ in 0..100 {
        if live.metrics().reload_counts().1 > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let failed = live.metrics().reload_counts().1;
    assert!(failed >= 1);
    for i in 0..10 {
        std::fs::write(store.join("decisions.log"), format!("line {i}\n")).unwrap();
        std::fs::write(dir.join("err.log"), format!("line {i}\n")).unwrap();
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        live.metrics().reload_counts().1,
        failed,
        "unrelated writes do not reload"
    );
}

/// A bundle is a file the policy loads: rewritten (SPIRE's helper rotating it), it reloads the
/// policy; broken, it is refused whole and the old bundle keeps serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_bundle_reloads_and_a_broken_one_is_refused() {
    let dir = common::fixtures::temp_dir("reload", "bundle");
    let first = common::Ca::new("first");
    let bundle = dir.join("bundle.json");
    std::fs::write(
        &bundle,
        serde_json::json!({"keys": [first.jwk()]}).to_string(),
    )
    .unwrap();
    let policy = dir.join("policy.yaml");
    std::fs::write(
        &policy,
        "trust:\n  trust_domains: [prod.example.org]\n  bundles: {prod.example.org: bundle.json}\nrules: []\n",
    )
    .unwrap();
    let bound = warrant::server::bind(watching_config(&dir, &policy))
        .await
        .unwrap();
    let live = std::sync::Arc::clone(bound.policy());
    tokio::spawn(async move { bound.serve(std::future::pending()).await.unwrap() });
    let before = live.current().revision().to_string();
    std::fs::write(&bundle, "{\"keys\": [{\"use\": \"x509-svid\"}]}").unwrap();
    for _ in 0..200 {
        if live.metrics().reload_counts().1 > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(live.metrics().reload_counts().1, 1, "refused");
    assert_eq!(
        live.current().revision().to_string(),
        before,
        "the old bundle serves"
    );
    let rotated = common::Ca::new("second");
    std::fs::write(
        &bundle,
        serde_json::json!({"keys": [first.jwk(), rotated.jwk()], "spiffe_sequence": 2}).to_string(),
    )
    .unwrap();
    next_revision(&live, &before).await;
    let summary = &live.current().trust().bundle_summaries()[0];
    assert_eq!((summary.x509_authorities, summary.sequence), (2, Some(2)));
}
