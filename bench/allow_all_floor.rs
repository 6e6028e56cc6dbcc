//! The floor of the throughput benchmark (`bench/run`): an ext_authz server on the same crates
//! as Warrant (tonic, envoy-types) that answers every Check OK and does no work, so
//! `warrant serve ÷ floor` is what Warrant's deciding, auditing and answering cost.
//!
//!     cargo run --release --example allow-all-floor -- 127.0.0.1:9292
//!     cargo run --release --example allow-all-floor -- --write-payload check.grpc
//!
//! `--write-payload FILE` writes the gRPC request body h2load sends to both servers: a
//! length-prefixed CheckRequest like the one Envoy sends for `GET /payments/42?expand=1` from
//! the shop frontend.

use std::collections::HashMap;

use envoy_types::ext_authz::v3::pb::{CheckRequest, CheckResponse};
use envoy_types::pb::envoy::service::auth::v3::authorization_server::{
    Authorization, AuthorizationServer,
};
use envoy_types::pb::envoy::service::auth::v3::{AttributeContext, attribute_context};
use envoy_types::pb::google::rpc::Status;
use prost::Message as _;
use tonic::{Request, Response};

struct AllowAll;

#[tonic::async_trait]
impl Authorization for AllowAll {
    async fn check(
        &self,
        _request: Request<CheckRequest>,
    ) -> Result<Response<CheckResponse>, tonic::Status> {
        Ok(Response::new(CheckResponse {
            status: Some(Status {
                code: 0,
                ..Status::default()
            }),
            ..CheckResponse::default()
        }))
    }
}

/// The request Envoy sends for the benchmark's request.
fn check_request() -> CheckRequest {
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
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    CheckRequest {
        attributes: Some(AttributeContext {
            source: Some(attribute_context::Peer {
                principal: "spiffe://prod.example.org/ns/shop/sa/frontend".into(),
                ..Default::default()
            }),
            destination: Some(attribute_context::Peer {
                principal: "spiffe://prod.example.org/ns/shop/sa/payments".into(),
                ..Default::default()
            }),
            request: Some(attribute_context::Request {
                time: None,
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

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.as_slice() {
        [flag, path] if flag == "--write-payload" => {
            let message = check_request().encode_to_vec();
            let mut body = vec![0u8];
            body.extend_from_slice(&u32::try_from(message.len())?.to_be_bytes());
            body.extend_from_slice(&message);
            std::fs::write(path, body)?;
            Ok(())
        }
        [address] => {
            tonic::transport::Server::builder()
                .add_service(AuthorizationServer::new(AllowAll))
                .serve(address.parse()?)
                .await?;
            Ok(())
        }
        _ => Err("usage: allow-all-floor ADDRESS | --write-payload FILE".into()),
    }
}
