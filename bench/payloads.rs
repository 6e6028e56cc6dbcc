//! Writes the mixed Checks of the soak and overload runs (`bench/soak`, `bench/overload`):
//! a policy trusting a fresh CA, that CA's bundle, and one gRPC request body per shape.
//!
//!     cargo run --release --example bench-payloads -- DIR
//!
//! Shapes, each `DIR/<shape>.grpc` (the length-prefixed CheckRequest h2load sends):
//! `allow` (the benchmark request, with the frontend's X.509-SVID, verified against the
//! bundle), `deny` (a deny rule), `default` (no rule matches), `untrusted` (a caller of another
//! trust domain), `forged` (the frontend's SPIFFE ID on a certificate of another CA),
//! `malformed` (no attributes) and `garbage` (not a CheckRequest at all: a gRPC error).

// Test code: a failed unwrap, expect or assertion is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../tests/common/mod.rs"]
mod common;

#[path = "check_request.rs"]
mod check_request;

use std::path::Path;

use envoy_types::ext_authz::v3::pb::CheckRequest;
use prost::Message as _;

use check_request::{FRONTEND, check_request};

/// The soak policy: bench/policy.yaml's rules, with prod's CA as the bundle, so that a
/// forwarded certificate is verified.
const POLICY: &str = include_str!("policy.yaml");

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let Some(dir) = std::env::args().nth(1) else {
        return Err("usage: bench-payloads DIR".into());
    };
    let dir = Path::new(&dir);
    std::fs::create_dir_all(dir)?;
    let ca = common::Ca::new("prod");
    let other = common::Ca::new("prod");
    std::fs::write(dir.join("prod.pem"), &ca.pem)?;
    let policy = POLICY.replacen(
        "  trust_domains: [prod.example.org]\n",
        "  trust_domains: [prod.example.org]\n  bundles: {prod.example.org: prod.pem}\n",
        1,
    );
    std::fs::write(dir.join("policy.yaml"), policy)?;

    let with = |edit: &dyn Fn(&mut CheckRequest)| {
        let mut request = check_request(ca.svid(FRONTEND).url_encoded());
        edit(&mut request);
        request.encode_to_vec()
    };
    let set_path = |path: &'static str| {
        move |request: &mut CheckRequest| {
            if let Some(http) = request
                .attributes
                .as_mut()
                .and_then(|a| a.request.as_mut())
                .and_then(|r| r.http.as_mut())
            {
                http.path = path.to_owned();
                http.headers.insert(":path".to_owned(), path.to_owned());
            }
        }
    };
    let set_peer = |principal: &'static str, certificate: String| {
        move |request: &mut CheckRequest| {
            if let Some(source) = request.attributes.as_mut().and_then(|a| a.source.as_mut()) {
                source.principal = principal.to_owned();
                source.certificate = certificate.clone();
            }
        }
    };
    let shapes: Vec<(&str, Vec<u8>)> = vec![
        ("allow", with(&|_| {})),
        ("deny", with(&set_path("/admin/users"))),
        ("default", with(&set_path("/nothing/here"))),
        (
            "untrusted",
            with(&set_peer(
                "spiffe://evil.example.org/ns/x/sa/y",
                String::new(),
            )),
        ),
        (
            "forged",
            with(&set_peer(FRONTEND, other.svid(FRONTEND).url_encoded())),
        ),
        (
            "malformed",
            CheckRequest { attributes: None }.encode_to_vec(),
        ),
        ("garbage", b"\xff\xff\xff\xff not a CheckRequest".to_vec()),
    ];
    for (shape, message) in shapes {
        let mut body = vec![0u8];
        body.extend_from_slice(&u32::try_from(message.len())?.to_be_bytes());
        body.extend_from_slice(&message);
        std::fs::write(dir.join(format!("{shape}.grpc")), body)?;
    }
    Ok(())
}
