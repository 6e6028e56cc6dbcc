//! The CheckRequest the benchmarks send: what Envoy sends for `GET /payments/42?expand=1`
//! from the shop frontend (headers, query, route context, addresses, and optionally the peer
//! certificate). Shared by `benches/check.rs` (criterion) and `bench/allow_all_floor.rs`,
//! which writes it as the payload `bench/run` sends to Warrant and to the floor.

use std::collections::HashMap;

use envoy_types::ext_authz::v3::pb::CheckRequest;
use envoy_types::pb::envoy::config::core::v3::{Address, SocketAddress, address, socket_address};
use envoy_types::pb::envoy::service::auth::v3::{AttributeContext, attribute_context};

/// The caller: the shop frontend.
pub(crate) const FRONTEND: &str = "spiffe://prod.example.org/ns/shop/sa/frontend";

/// The benchmark request, with `certificate` (URL-encoded PEM, or empty) as the peer's.
pub(crate) fn check_request(certificate: String) -> CheckRequest {
    let headers: HashMap<String, String> = [
        (":authority", "payments.shop.svc.cluster.local"),
        (":method", "GET"),
        (":path", "/payments/42?expand=1"),
        (":scheme", "https"),
        ("accept", "application/json"),
        ("user-agent", "frontend/2.3.1"),
        ("x-env", "prod"),
        ("x-forwarded-proto", "https"),
        ("x-request-id", "9d1b5c0e-8a57-4c52-9c1e-0d6d3c8f2b11"),
        (
            "traceparent",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    let socket = |ip: &str, port| Address {
        address: Some(address::Address::SocketAddress(SocketAddress {
            address: ip.into(),
            port_specifier: Some(socket_address::PortSpecifier::PortValue(port)),
            ..Default::default()
        })),
    };
    CheckRequest {
        attributes: Some(AttributeContext {
            source: Some(attribute_context::Peer {
                principal: FRONTEND.into(),
                certificate,
                address: Some(socket("10.0.3.17", 51234)),
                ..Default::default()
            }),
            destination: Some(attribute_context::Peer {
                principal: "spiffe://prod.example.org/ns/shop/sa/payments".into(),
                address: Some(socket("10.0.5.2", 8443)),
                ..Default::default()
            }),
            request: Some(attribute_context::Request {
                time: Some(envoy_types::pb::google::protobuf::Timestamp {
                    seconds: 1_795_000_000,
                    nanos: 0,
                }),
                http: Some(attribute_context::HttpRequest {
                    id: "9d1b5c0e-8a57-4c52-9c1e-0d6d3c8f2b11".into(),
                    method: "GET".into(),
                    headers,
                    path: "/payments/42?expand=1".into(),
                    host: "payments.shop.svc.cluster.local".into(),
                    scheme: "https".into(),
                    protocol: "HTTP/2".into(),
                    ..Default::default()
                }),
            }),
            context_extensions: HashMap::from([("service".into(), "payments".into())]),
            ..Default::default()
        }),
    }
}
