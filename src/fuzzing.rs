//! The bodies of the fuzz targets in `fuzz/` (`cargo fuzz`), one per parser of untrusted
//! input, kept in the library so that `tests/fuzz_corpora.rs` replays every corpus on the
//! stable toolchain, in every CI run, through the very same code.
//!
//! Each function takes arbitrary bytes and must return: a panic, an overflow or a hang is the
//! finding. Where a parser promises more than "no crash" (a parsed SPIFFE ID prints as it was
//! written), the function asserts it.
//!
//! Not part of Warrant's API: the module exists for the fuzzers and may change at any time.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, SystemTime};

use prost::Message as _;

use crate::identity::bundle::TrustBundle;
use crate::identity::jwt_key::JwtPublicKey;
use crate::identity::jwt_svid::{Expectations, JwtKeys, JwtSvid};
use crate::identity::spiffe_id::SpiffeId;
use crate::identity::svid::X509Svid;
use crate::policy::{FileKind, Policy, PolicySource};

/// A fuzz target's body: any bytes in, a return (or the finding).
pub type Target = fn(&[u8]);

/// The targets: name (the file in `fuzz/fuzz_targets/` and the corpus folder) and body.
pub const TARGETS: &[(&str, Target)] = &[
    ("spiffe_id", spiffe_id),
    ("x509_svid", x509_svid),
    ("xfcc", xfcc),
    ("jwt_svid", jwt_svid),
    ("bundle", bundle),
    ("trace_context", trace_context),
    ("request_json", request_json),
    ("check_request", check_request),
    ("policy", policy),
    ("cel_specs", cel_specs),
];

/// A SPIFFE ID (SPIFFE ID §2): parsed IDs print exactly as written.
pub fn spiffe_id(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(id) = SpiffeId::parse(text) {
        assert_eq!(id.as_str(), text, "a parsed SPIFFE ID prints as written");
        assert!(id.trust_domain().len() < text.len());
    }
}

/// A forwarded client certificate: URL-encoded PEM (Envoy's `%DOWNSTREAM_PEER_CERT%`, XFCC
/// `Cert=`), PEM, and DER.
pub fn x509_svid(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = X509Svid::from_url_encoded_pem(text);
    }
    let _ = X509Svid::from_pem(data);
    let _ = X509Svid::from_der(data.to_vec());
}

/// An `x-forwarded-client-cert` header (Envoy's XFCC grammar).
pub fn xfcc(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = crate::identity::xfcc::parse(text);
    }
}

/// A JWT-SVID (JWT-SVID §3) against a bundle of one P-256 key, `kid` `fuzz`.
pub fn jwt_svid(data: &[u8]) {
    let Ok(token) = std::str::from_utf8(data) else {
        return;
    };
    let audiences = ["warrant".to_owned()];
    let _ = JwtSvid::validate(
        token,
        fuzz_keys(),
        Expectations {
            audiences: &audiences,
            now: 1_800_000_000,
            leeway: 60,
        },
    );
}

/// One trust domain's JWT key for [`jwt_svid`].
struct FuzzKeys(Option<JwtPublicKey>);

impl JwtKeys for FuzzKeys {
    fn accepts(&self, trust_domain: &str) -> bool {
        trust_domain == "prod.example.org"
    }
    fn key(&self, trust_domain: &str, kid: &str) -> Option<&JwtPublicKey> {
        (trust_domain == "prod.example.org" && kid == "fuzz")
            .then_some(self.0.as_ref())
            .flatten()
    }
}

fn fuzz_keys() -> &'static FuzzKeys {
    static KEYS: OnceLock<FuzzKeys> = OnceLock::new();
    KEYS.get_or_init(|| {
        // RFC 7515 appendix A.3's P-256 key.
        let jwk = serde_json::json!({
            "kty": "EC", "crv": "P-256", "kid": "fuzz", "use": "jwt-svid",
            "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
            "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0",
        });
        FuzzKeys(
            jwk.as_object()
                .and_then(|key| JwtPublicKey::from_jwk(key).ok()),
        )
    })
}

/// A trust bundle: SPIFFE bundle JSON (SPIFFE Trust Domain and Bundle §4) and PEM.
pub fn bundle(data: &[u8]) {
    let _ = TrustBundle::from_spiffe_json(data);
    let _ = TrustBundle::from_pem(data);
}

/// Trace context headers (W3C `traceparent`/`tracestate`, B3 single and multi): the input's
/// lines are the values of `traceparent`, `tracestate`, `b3`, `x-b3-traceid`,
/// `x-b3-spanid` and `x-b3-sampled`, in that order.
pub fn trace_context(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let values: Vec<&str> = text.split('\n').collect();
    const NAMES: [&str; 6] = [
        "traceparent",
        "tracestate",
        "b3",
        "x-b3-traceid",
        "x-b3-spanid",
        "x-b3-sampled",
    ];
    let _ = crate::audit::TraceParent::extract(|name| {
        let index = NAMES.iter().position(|n| *n == name)?;
        values.get(index).copied()
    });
}

/// The proto3 JSON CheckRequest of `warrant eval`, then decided by [`fuzz_policy`].
pub fn request_json(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(request) = crate::cli::request_json::parse(text) {
        decide_request(crate::server::convert::authz_request(request));
    }
}

/// A CheckRequest as Envoy sends it (protobuf), converted to the domain request, decided by
/// [`fuzz_policy`] and answered.
pub fn check_request(data: &[u8]) {
    // As the server reads it off the wire.
    if let Ok(request) = crate::server::wire::CheckRequest::decode(data) {
        decide(request);
    }
}

fn decide(request: crate::server::wire::CheckRequest) {
    decide_request(crate::server::convert::from_wire(request));
}

fn decide_request(request: crate::request::AuthzRequest) {
    let Some(policy) = fuzz_policy() else {
        return;
    };
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    let decision = policy.decide(&request, now);
    let _ = crate::server::response::check_response(&decision, Some("x-spiffe-id"));
}

/// A policy whose rules read every part of a request: headers, query, body, addresses,
/// certificate, provenance and the workload token.
const FUZZ_POLICY: &str = r#"
trust:
  trust_domains: [prod.example.org]
  forwarders: ["spiffe://prod.example.org/ns/edge/sa/gateway"]
  workload_tokens: {audiences: [warrant]}
rules:
  - id: no-admin
    effect: deny
    when: request.path.glob("/admin/**") && source.namespace != "ops"
  - id: no-debug
    effect: deny
    when: '"x-debug" in request.headers && request.headers["x-env"] == "prod"'
  - id: internal
    effect: allow
    when: in_cidr(source.address, ["10.0.0.0/8", "fd00::/8"]) && request.path.startsWith("/internal/")
  - id: frontend
    effect: allow
    when: >
      source.spiffe_id == "spiffe://prod.example.org/ns/shop/sa/frontend"
      && request.method in ["GET", "HEAD"]
      && request.path.matches("^/payments/[0-9]+$")
      && request.query.exists(k, k == "expand")
  - id: body
    effect: allow
    when: request.body.contains("ok") && size(request.headers) < 50 && source.certificate.dns_names.exists(n, n.endsWith(".example.org"))
  - id: relay
    effect: allow
    when: origin.spiffe_id.glob("spiffe://prod.example.org/ns/*/sa/*") && workload.spiffe_id != ""
  - id: hours
    effect: allow
    mode: audit
    when: business_hours(now, "Mon-Fri 09:00-17:00", "Europe/Berlin")
"#;

/// [`FUZZ_POLICY`], compiled once (`None` if it fails to: a test checks it does not).
pub fn fuzz_policy() -> Option<&'static Policy> {
    static POLICY: OnceLock<Option<Policy>> = OnceLock::new();
    POLICY
        .get_or_init(|| compile(FUZZ_POLICY.to_owned()).ok())
        .as_ref()
}

fn compile(text: String) -> Result<Policy, crate::policy::PolicyErrors> {
    let source = PolicySource {
        path: PathBuf::from("fuzz.yaml"),
        text,
    };
    let mut no_files = |_: &Path, _: FileKind| -> std::io::Result<Vec<u8>> {
        Err(std::io::ErrorKind::NotFound.into())
    };
    Policy::compile(&[source], &mut no_files)
}

/// A policy document (YAML, then every rule's CEL), compiled; when it compiles, a request is
/// decided with it.
pub fn policy(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(policy) = compile(text.to_owned()) {
        let _ = policy.decide(sample_request(), SystemTime::UNIX_EPOCH);
    }
}

/// The specs of Warrant's functions: the input's lines are a `business_hours` spec, its time
/// zone, a glob pattern and a text to match it against, and a CIDR. Each is compiled as a rule
/// would be, and the rule evaluated on a request.
pub fn cel_specs(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut lines = text.split('\n');
    let mut next = || lines.next().unwrap_or("");
    let (spec, zone, pattern, subject, cidr) = (next(), next(), next(), next(), next());
    if let Ok(glob) = crate::glob::Glob::new(pattern) {
        let _ = glob.matches(subject);
    }
    let literal = |s: &str| serde_json::Value::from(s).to_string();
    let rules = [
        format!("business_hours(now, {}, {})", literal(spec), literal(zone)),
        format!("request.path.glob({})", literal(pattern)),
        format!("in_cidr(source.address, [{}])", literal(cidr)),
    ];
    for rule in rules {
        let yaml = format!(
            "trust: {{trust_domains: [prod.example.org]}}\nrules:\n  - id: spec\n    effect: allow\n    when: {}\n",
            serde_json::Value::from(rule)
        );
        policy(yaml.as_bytes());
    }
}

/// A trusted request from `spiffe://prod.example.org/ns/shop/sa/frontend`.
/// The request a fuzzed policy decides, parsed once.
fn sample_request() -> &'static crate::request::AuthzRequest {
    static REQUEST: OnceLock<crate::request::AuthzRequest> = OnceLock::new();
    REQUEST.get_or_init(|| crate::server::convert::authz_request(sample_check_request()))
}

fn sample_check_request() -> envoy_types::ext_authz::v3::pb::CheckRequest {
    let json = r#"{"attributes": {
        "source": {"principal": "spiffe://prod.example.org/ns/shop/sa/frontend",
                   "address": {"socketAddress": {"address": "10.1.2.3", "portValue": 4242}}},
        "request": {"http": {"method": "GET", "path": "/payments/42?expand=1",
                             "host": "payments.example.org",
                             "headers": {":path": "/payments/42?expand=1", "x-env": "prod"}}}}}"#;
    crate::cli::request_json::parse(json).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_fuzz_policy_compiles() {
        if let Err(errors) = super::compile(super::FUZZ_POLICY.to_owned()) {
            panic!("{errors}");
        }
        super::cel_specs(b"Mon-Fri 09:00-17:00\nEurope/Berlin\n/a/**\n/a/b\n10.0.0.0/8");
    }
}
