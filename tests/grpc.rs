//! The ext_authz gRPC service in process: a tonic client against `warrant`'s server on
//! 127.0.0.1:0, with real certificates.

// Test code: a failed unwrap, expect or assertion is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::HashMap;
use std::path::Path;

use common::Ca;
use envoy_types::ext_authz::v3::pb::{CheckRequest, CheckResponse, HttpResponse};
use envoy_types::pb::envoy::config::core::v3::{Address, SocketAddress, address, socket_address};
use envoy_types::pb::envoy::service::auth::v3::authorization_client::AuthorizationClient;
use envoy_types::pb::envoy::service::auth::v3::{AttributeContext, attribute_context};
use envoy_types::pb::google::protobuf::value::Kind;
use tokio::net::TcpListener;
use warrant::policy::{Policy, PolicySource};
use warrant::server::{AuthzService, serve};

const FRONTEND: &str = "spiffe://prod.example.org/ns/shop/sa/frontend";

fn policy(ca: &Ca) -> Policy {
    let text = r#"
trust:
  trust_domains: [prod.example.org]
  bundles: {prod.example.org: prod.pem}
  require_certificate: true
rules:
  - id: no-admin
    effect: deny
    status: 404
    when: request.path.startsWith("/admin")
  - id: frontend-get
    effect: allow
    when: source.service_account == "frontend" && request.method == "GET"
    headers: {x-tenant: shop, x-spiffe-id: rule-cannot-override}
"#;
    let bundle = ca.pem.clone().into_bytes();
    Policy::compile(
        &[PolicySource {
            path: "policies/p.yaml".into(),
            text: text.into(),
        }],
        &mut |path: &Path, _| {
            assert_eq!(path, Path::new("policies/prod.pem"));
            Ok(bundle.clone())
        },
    )
    .unwrap()
}

fn check_request(principal: &str, certificate: &str, method: &str, path: &str) -> CheckRequest {
    CheckRequest {
        attributes: Some(AttributeContext {
            source: Some(attribute_context::Peer {
                principal: principal.into(),
                certificate: certificate.into(),
                address: Some(Address {
                    address: Some(address::Address::SocketAddress(SocketAddress {
                        address: "10.1.2.3".into(),
                        port_specifier: Some(socket_address::PortSpecifier::PortValue(5555)),
                        ..Default::default()
                    })),
                }),
                ..Default::default()
            }),
            request: Some(attribute_context::Request {
                time: None,
                http: Some(attribute_context::HttpRequest {
                    method: method.into(),
                    path: path.into(),
                    headers: HashMap::from([("x-spiffe-id".into(), "spiffe://forged/x".into())]),
                    ..Default::default()
                }),
            }),
            ..Default::default()
        }),
    }
}

struct Server {
    client: AuthorizationClient<tonic::transport::Channel>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

async fn start(ca: &Ca) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let service = AuthzService::new(policy(ca), "x-spiffe-id");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        serve(listener, service, async {
            let _ = stopped.await;
        })
        .await
        .unwrap();
    });
    let client = AuthorizationClient::connect(format!("http://{addr}"))
        .await
        .unwrap();
    Server {
        client,
        stop: Some(stop),
        task,
    }
}

impl Server {
    async fn check(&mut self, request: CheckRequest) -> CheckResponse {
        self.client.check(request).await.unwrap().into_inner()
    }
}

fn metadata(response: &CheckResponse, key: &str) -> String {
    match &response.dynamic_metadata.as_ref().unwrap().fields[key].kind {
        Some(Kind::StringValue(s)) => s.clone(),
        other => panic!("{key}: {other:?}"),
    }
}

#[tokio::test]
async fn allow_deny_and_untrusted_over_grpc() {
    let ca = Ca::new("prod");
    let leaf = ca.svid(FRONTEND);
    let mut server = start(&ca).await;

    // Allowed: OK status, identity header overwrites the forged one, rule header added.
    let response = server
        .check(check_request(
            FRONTEND,
            &leaf.url_encoded(),
            "GET",
            "/payments/1",
        ))
        .await;
    assert_eq!(response.status.as_ref().unwrap().code, 0);
    let Some(HttpResponse::OkResponse(ok)) = &response.http_response else {
        panic!("{response:?}");
    };
    let headers: Vec<(String, String, i32)> = ok
        .headers
        .iter()
        .map(|h| {
            let header = h.header.as_ref().unwrap();
            (header.key.clone(), header.value.clone(), h.append_action)
        })
        .collect();
    assert_eq!(
        headers,
        [
            ("x-tenant".into(), "shop".into(), 2),
            ("x-spiffe-id".into(), FRONTEND.into(), 2),
        ]
    );
    assert_eq!(metadata(&response, "decision"), "allow");
    assert_eq!(metadata(&response, "rule"), "frontend-get");
    assert_eq!(metadata(&response, "spiffe_id"), FRONTEND);
    let allow_id = metadata(&response, "decision_id");
    assert_eq!(allow_id.len(), 36);

    // Denied by a rule: PERMISSION_DENIED, the rule's HTTP status, a JSON body.
    let response = server
        .check(check_request(
            FRONTEND,
            &leaf.url_encoded(),
            "GET",
            "/admin/users",
        ))
        .await;
    assert_eq!(response.status.as_ref().unwrap().code, 7);
    let Some(HttpResponse::DeniedResponse(denied)) = &response.http_response else {
        panic!("{response:?}");
    };
    assert_eq!(denied.status.as_ref().unwrap().code, 404);
    let body: serde_json::Value = serde_json::from_str(&denied.body).unwrap();
    assert_eq!(body["decision"], "deny");
    assert_eq!(body["stage"], "rules");
    assert_eq!(body["rule"], "no-admin");
    assert_eq!(body["decision_id"], metadata(&response, "decision_id"));
    assert_ne!(body["decision_id"], allow_id.as_str());

    // Default deny.
    let response = server
        .check(check_request(
            FRONTEND,
            &leaf.url_encoded(),
            "DELETE",
            "/payments/1",
        ))
        .await;
    assert_eq!(response.status.as_ref().unwrap().code, 7);
    assert_eq!(metadata(&response, "decision"), "deny");
    assert_eq!(metadata(&response, "stage"), "default");

    // Untrusted: no certificate although required, foreign CA, garbage: UNAUTHENTICATED + 403.
    let foreign = Ca::new("foreign").svid(FRONTEND);
    for (principal, certificate) in [
        (FRONTEND, String::new()),
        (FRONTEND, foreign.url_encoded()),
        (FRONTEND, "%%%garbage".to_owned()),
        ("CN=frontend", leaf.url_encoded()),
    ] {
        let response = server
            .check(check_request(principal, &certificate, "GET", "/payments/1"))
            .await;
        assert_eq!(
            response.status.as_ref().unwrap().code,
            16,
            "{principal} {certificate}"
        );
        let Some(HttpResponse::DeniedResponse(denied)) = &response.http_response else {
            panic!("{response:?}");
        };
        assert_eq!(denied.status.as_ref().unwrap().code, 403);
        assert_eq!(metadata(&response, "stage"), "trust");
        assert!(
            !denied.body.contains("bundle"),
            "no policy internals in the body"
        );
    }

    // A CheckRequest with nothing in it is a deny, not an error or a crash.
    let response = server.check(CheckRequest::default()).await;
    assert_eq!(response.status.as_ref().unwrap().code, 16);

    server.stop.take().unwrap().send(()).unwrap();
    server.task.await.unwrap();
}

/// What `warrant check` accepts, the server evaluates on runtime workers with their default
/// stacks: rules at the nesting limit (a debug build needs ~2.6 MiB of stack for them, more
/// than a worker has) must not overflow the stack.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rules_at_the_nesting_limit_evaluate_on_runtime_workers() {
    let deep_chain = format!("request.path.size(){} == -1", " + 0".repeat(59));
    let deep_calls = format!("{}true{}", "bool(".repeat(63), ")".repeat(63));
    let deep_macros = format!("{}true{}", "[1].all(x, ".repeat(15), ")".repeat(15));
    let text = format!(
        "trust:\n  trust_domains: [prod.example.org]\nrules:\n  - id: chain\n    effect: deny\n    when: '{deep_chain}'\n  - id: calls\n    effect: allow\n    when: '{deep_calls} && {deep_macros}'\n"
    );
    let policy = Policy::compile(
        &[PolicySource {
            path: "p.yaml".into(),
            text,
        }],
        &mut |_: &Path, _| Err(std::io::Error::other("no bundles")),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let service = AuthzService::new(policy, "x-spiffe-id");
    let server = tokio::spawn(serve(listener, service, std::future::pending()));
    let mut client = AuthorizationClient::connect(format!("http://{addr}"))
        .await
        .unwrap();
    for _ in 0..4 {
        let response = client
            .check(check_request(FRONTEND, "", "GET", "/payments"))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(response.status.as_ref().unwrap().code, 0);
        assert_eq!(metadata(&response, "rule"), "calls");
    }
    server.abort();
}
