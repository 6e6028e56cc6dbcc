//! TLS and mTLS on the authz channel: an allowed caller, another SVID, no certificate, an
//! expired certificate, and the server certificate rotated while a client stays connected.

// Test code: a failed unwrap, expect or assertion is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use common::{Ca, Leaf, LeafSpec};
use envoy_types::pb::envoy::service::auth::v3::authorization_client::AuthorizationClient;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use warrant::config::Config;

const ENVOY: &str = "spiffe://prod.example.org/ns/istio-system/sa/ingressgateway";
const OTHER: &str = "spiffe://prod.example.org/ns/shop/sa/frontend";

fn server_leaf(ca: &Ca) -> Leaf {
    let mut spec = LeafSpec::svid("spiffe://prod.example.org/ns/warrant/sa/warrant");
    spec.dns = vec!["localhost".into()];
    ca.leaf(spec)
}

/// Writes the server's files and starts it; returns its address and its admin listener's.
async fn start(dir: &Path, ca: &Ca, tls: &str) -> (std::net::SocketAddr, std::net::SocketAddr) {
    let leaf = server_leaf(ca);
    std::fs::write(dir.join("server.pem"), &leaf.pem).unwrap();
    std::fs::write(dir.join("server.key"), &leaf.key_pem).unwrap();
    std::fs::write(dir.join("ca.pem"), &ca.pem).unwrap();
    std::fs::write(
        dir.join("policy.yaml"),
        "trust: {trust_domains: [prod.example.org]}\nrules:\n  - id: all\n    effect: allow\n    when: request.method == 'GET'\n",
    )
    .unwrap();
    let config = Config::parse(
        &dir.join("warrant.yaml"),
        &format!(
            "listen: 127.0.0.1:0\nadmin: {{listen: 127.0.0.1:0}}\npolicy: {d}/policy.yaml\ndecision_log: {{to: off}}\nreload: {{watch: false}}\ntls:\n  cert: {d}/server.pem\n  key: {d}/server.key\n{tls}",
            d = dir.display()
        ),
    )
    .unwrap();
    let bound = warrant::server::bind(config).await.unwrap();
    let addrs = (bound.grpc_addr().unwrap(), bound.admin_addr().unwrap());
    tokio::spawn(async move { bound.serve(std::future::pending()).await.unwrap() });
    addrs
}

/// A TLS connection trusting `ca`, presenting `client` when given; the server's leaf too.
async fn connect(
    addr: std::net::SocketAddr,
    ca: &Ca,
    client: Option<&Leaf>,
) -> Result<(AuthorizationClient<tonic::transport::Channel>, Vec<u8>), String> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca.pem.as_bytes()) {
        roots.add(cert.unwrap()).unwrap();
    }
    let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots);
    let mut config = match client {
        Some(leaf) => builder
            .with_client_auth_cert(
                CertificateDer::pem_slice_iter(leaf.pem.as_bytes())
                    .map(Result::unwrap)
                    .collect(),
                PrivateKeyDer::from_pem_slice(leaf.key_pem.as_bytes()).unwrap(),
            )
            .unwrap(),
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![b"h2".to_vec()];
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| e.to_string())?;
    let tls = connector
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .map_err(|e| e.to_string())?;
    let server_leaf = tls
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|c| c.first())
        .map(|c| c.to_vec())
        .unwrap_or_default();
    let mut once = Some(tls);
    let channel = tonic::transport::Endpoint::from_static("http://localhost")
        .connect_with_connector(tower::service_fn(move |_: http::Uri| {
            let stream = once.take();
            async move {
                stream
                    .map(hyper_util::rt::TokioIo::new)
                    .ok_or_else(|| std::io::Error::other("one connection only"))
            }
        }))
        .await
        .map_err(|e| e.to_string())?;
    Ok((AuthorizationClient::new(channel), server_leaf))
}

async fn check(client: &mut AuthorizationClient<tonic::transport::Channel>) -> Result<i32, String> {
    client
        .check(common::fixtures::get(OTHER, "/"))
        .await
        .map(|r| r.into_inner().status.map_or(-1, |s| s.code))
        .map_err(|e| e.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_serves_checks_and_plaintext_is_refused() {
    let dir = common::fixtures::temp_dir("tls", "tls");
    let ca = Ca::new("prod");
    let (addr, _) = start(&dir, &ca, "").await;
    let (mut client, _) = connect(addr, &ca, None).await.unwrap();
    assert_eq!(check(&mut client).await, Ok(0));
    let mut plain = AuthorizationClient::connect(format!("http://{addr}"))
        .await
        .unwrap();
    assert!(
        plain
            .check(common::fixtures::get(OTHER, "/"))
            .await
            .is_err(),
        "plaintext is not served"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mtls_admits_allowed_callers_only() {
    let dir = common::fixtures::temp_dir("tls", "mtls");
    let ca = Ca::new("prod");
    let (addr, _) = start(
        &dir,
        &ca,
        &format!(
            "  client_ca: {}/ca.pem\n  allowed_callers: [\"spiffe://prod.example.org/ns/istio-system/sa/*\"]\n",
            dir.display()
        ),
    )
    .await;
    // The allowed caller.
    let envoy = ca.svid(ENVOY);
    let (mut client, _) = connect(addr, &ca, Some(&envoy)).await.unwrap();
    assert_eq!(check(&mut client).await, Ok(0));
    // Another SVID of the same CA: the connection is closed after the handshake.
    let other = ca.svid(OTHER);
    let refused = match connect(addr, &ca, Some(&other)).await {
        Ok((mut client, _)) => check(&mut client).await.is_err(),
        Err(_) => true,
    };
    assert!(refused, "a caller not in allowed_callers is refused");
    // No client certificate.
    let no_cert = match connect(addr, &ca, None).await {
        Ok((mut client, _)) => check(&mut client).await.is_err(),
        Err(_) => true,
    };
    assert!(no_cert, "mTLS requires a client certificate");
    // An expired certificate of an allowed caller.
    let mut spec = LeafSpec::svid(ENVOY);
    spec.not_before = SystemTime::now() - Duration::from_secs(7200);
    spec.not_after = SystemTime::now() - Duration::from_secs(3600);
    let expired = ca.leaf(spec);
    let refused = match connect(addr, &ca, Some(&expired)).await {
        Ok((mut client, _)) => check(&mut client).await.is_err(),
        Err(_) => true,
    };
    assert!(refused, "an expired client certificate is refused");
    // Another CA.
    let stranger = Ca::new("other");
    let refused = match connect(addr, &ca, Some(&stranger.svid(ENVOY))).await {
        Ok((mut client, _)) => check(&mut client).await.is_err(),
        Err(_) => true,
    };
    assert!(refused, "a client certificate of another CA is refused");
    // The allowed caller's connection still works.
    assert_eq!(check(&mut client).await, Ok(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_certificate_serves_new_connections_and_open_ones_keep_going() {
    let dir = common::fixtures::temp_dir("tls", "rotate");
    let ca = Ca::new("prod");
    let (addr, admin) = start(&dir, &ca, "").await;
    let (mut before, first_leaf) = connect(addr, &ca, None).await.unwrap();
    assert_eq!(check(&mut before).await, Ok(0));
    let status = |admin| {
        let (code, body) = common::fixtures::http_get(admin, "/status");
        assert_eq!(code, 200);
        serde_json::from_str::<serde_json::Value>(&body).unwrap()["listeners"]["grpc"].clone()
    };
    let before_rotation = status(admin);
    assert!(
        before_rotation["certificate_expires_at"].is_string(),
        "{before_rotation}"
    );
    assert!(before_rotation["last_tls_reload_error"].is_null());
    let (_, metrics) = common::fixtures::http_get(admin, "/metrics");
    let expiry =
        common::fixtures::metric(&metrics, "warrant_tls_certificate_expiry_timestamp_seconds");
    assert!(expiry.is_some_and(|t| t > 1.0e9), "{metrics}");
    let rotated = server_leaf(&ca);
    std::fs::write(dir.join("server.key"), &rotated.key_pem).unwrap();
    std::fs::write(dir.join("server.pem"), &rotated.pem).unwrap();
    let mut second_leaf = first_leaf.clone();
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let (_, leaf) = connect(addr, &ca, None).await.unwrap();
        if leaf != first_leaf {
            second_leaf = leaf;
            break;
        }
    }
    assert_ne!(
        second_leaf, first_leaf,
        "new connections get the rotated certificate"
    );
    assert_eq!(
        check(&mut before).await,
        Ok(0),
        "the open connection keeps going"
    );
    // A broken pair is refused and the current one kept.
    std::fs::write(dir.join("server.pem"), "not a certificate").unwrap();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let (mut after, leaf) = connect(addr, &ca, None).await.unwrap();
    assert_eq!(leaf, second_leaf);
    assert_eq!(check(&mut after).await, Ok(0));
    // The status page says so, with the certificate still serving.
    let after_error = status(admin);
    let error = after_error["last_tls_reload_error"]["error"]
        .as_str()
        .unwrap_or_default();
    assert!(
        error.starts_with("certificate not reloaded: "),
        "{after_error}"
    );
    assert!(after_error["certificate_expires_at"].is_string());
}
