//! What the server tests share: scratch directories and CheckRequests.

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::ops::Deref;
use std::path::{Path, PathBuf};

use envoy_types::ext_authz::v3::pb::CheckRequest;
use envoy_types::pb::envoy::service::auth::v3::{AttributeContext, attribute_context};

/// A fresh, empty directory for one test (`group` names the test file, `name` the test),
/// under the system's temporary directory. Removed when dropped, unless the test is failing:
/// then it is kept for a look, and its path printed.
pub(crate) fn temp_dir(group: &str, name: &str) -> ScratchDir {
    let dir = std::env::temp_dir().join(format!("warrant-{group}-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    ScratchDir(dir)
}

/// A test's scratch directory: see [`temp_dir`]. Reads as the `Path` it is.
pub(crate) struct ScratchDir(PathBuf);

impl Deref for ScratchDir {
    type Target = Path;

    fn deref(&self) -> &Path {
        &self.0
    }
}

impl AsRef<Path> for ScratchDir {
    fn as_ref(&self) -> &Path {
        &self.0
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("kept the failing test's files: {}", self.0.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// A CheckRequest of `principal` for `GET path`.
pub(crate) fn get(principal: &str, path: &str) -> CheckRequest {
    CheckRequest {
        attributes: Some(AttributeContext {
            source: Some(attribute_context::Peer {
                principal: principal.into(),
                ..Default::default()
            }),
            request: Some(attribute_context::Request {
                http: Some(attribute_context::HttpRequest {
                    method: "GET".into(),
                    path: path.into(),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }),
    }
}

/// GET `path` from an HTTP/1.1 server (the admin listener): the status code and the body.
pub(crate) fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nhost: admin\r\nconnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let status = response[9..12].parse().unwrap();
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

/// The value of the first series of a Prometheus text exposition starting with `name`.
pub(crate) fn metric(metrics: &str, name: &str) -> Option<f64> {
    metrics
        .lines()
        .find(|line| line.starts_with(name))
        .and_then(|line| line.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

/// A policy whose rule on `/slow` takes a while to evaluate (a million-step comprehension),
/// so a Check can be in flight when shutdown begins.
pub(crate) const SLOW_POLICY: &str = r#"trust: {trust_domains: [prod.example.org]}
data:
  thousand: [0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31,32,33,34,35,36,37,38,39,40,41,42,43,44,45,46,47,48,49]
rules:
  - id: slow
    effect: allow
    when: >
      request.path == "/slow"
      && data.thousand.all(a, data.thousand.all(b, data.thousand.all(c, a + b + c >= 0)))
  - id: fast
    effect: allow
    when: request.path == "/fast"
"#;

/// A server config (any port, no decision log, no watching, plus `extra`) serving
/// [`SLOW_POLICY`] from `dir`.
pub(crate) fn slow_policy_config(dir: &std::path::Path, extra: &str) -> warrant::config::Config {
    std::fs::write(dir.join("policy.yaml"), SLOW_POLICY).unwrap();
    warrant::config::Config::parse(
        &dir.join("warrant.yaml"),
        &format!(
            "listen: 127.0.0.1:0\npolicy: {}\n{}reload: {{watch: false}}\n{extra}",
            dir.join("policy.yaml").display(),
            if extra.contains("decision_log:") {
                ""
            } else {
                "decision_log: {to: off}\n"
            }
        ),
    )
    .unwrap()
}

/// The caller `principal`, with `certificate` (URL-encoded PEM, or empty) as Envoy forwards it.
pub(crate) fn peer(principal: &str, certificate: &str) -> warrant::request::Peer {
    warrant::request::Peer {
        principal: principal.into(),
        certificate: certificate.into(),
        ..warrant::request::Peer::default()
    }
}
