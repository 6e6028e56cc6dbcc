//! Policy test helpers: compiling policy text and building requests.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use warrant::policy::{Policy, PolicyErrors, PolicySource};
use warrant::request::{AuthzRequest, HttpRequest, Peer};

pub(crate) const TRUST: &str = "trust:\n  trust_domains: [prod.example.org]\n";
pub(crate) const FRONTEND: &str = "spiffe://prod.example.org/ns/shop/sa/frontend";

pub(crate) fn compile_files(files: &[(&str, &str)]) -> Result<Policy, PolicyErrors> {
    let sources: Vec<PolicySource> = files
        .iter()
        .map(|(path, text)| PolicySource {
            path: PathBuf::from(path),
            text: (*text).to_owned(),
        })
        .collect();
    Policy::compile(&sources, &mut |path: &Path, _| {
        Err(std::io::Error::new(
            std::io::ErrorKind::NotFound,
            format!("{} not found", path.display()),
        ))
    })
}

pub(crate) fn compile(rules: &str) -> Policy {
    compile_files(&[("policy.yaml", &format!("{TRUST}rules:\n{rules}"))])
        .unwrap_or_else(|e| panic!("{e}"))
}

pub(crate) fn errors(files: &[(&str, &str)]) -> Vec<String> {
    compile_files(files)
        .expect_err("policy should not compile")
        .0
        .iter()
        .map(ToString::to_string)
        .collect()
}

pub(crate) fn request(principal: &str, method: &str, path: &str) -> AuthzRequest {
    AuthzRequest {
        source: Peer {
            principal: principal.into(),
            address: "10.0.0.7".into(),
            port: 41000,
            ..Peer::default()
        },
        destination: Peer {
            principal: "spiffe://prod.example.org/ns/shop/sa/payments".into(),
            address: "10.0.0.9".into(),
            port: 8443,
            ..Peer::default()
        },
        http: Some(HttpRequest {
            id: "req-1".into(),
            method: method.into(),
            path: path.into(),
            host: "payments.shop".into(),
            scheme: "https".into(),
            protocol: "HTTP/2".into(),
            headers: vec![
                ("user-agent".into(), "curl/8".into()),
                ("x-env".into(), "prod".into()),
            ],
            body: String::new(),
            size: 0,
        }),
        time: Some(SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000)),
        context_extensions: [("service".to_owned(), "payments".to_owned())].into(),
        ..AuthzRequest::default()
    }
}
