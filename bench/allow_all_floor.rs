//! The floor of the throughput benchmark (`bench/run`): an ext_authz server on the same crates
//! as Warrant (tonic, envoy-types) that answers every Check OK and does no work, so
//! `warrant serve ÷ floor` is what Warrant's deciding, auditing and answering cost.
//!
//!     cargo run --release --example allow-all-floor -- 127.0.0.1:9292
//!     cargo run --release --example allow-all-floor -- --write-payload check.grpc
//!
//! `--write-payload FILE` writes the gRPC request body h2load sends to both servers: the
//! length-prefixed CheckRequest of `bench/check_request.rs`, the one `benches/check.rs` uses.

#[path = "check_request.rs"]
mod check_request;

use envoy_types::ext_authz::v3::pb::{CheckRequest, CheckResponse};
use envoy_types::pb::envoy::service::auth::v3::authorization_server::{
    Authorization, AuthorizationServer,
};
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

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.as_slice() {
        [flag, path] if flag == "--write-payload" => {
            let message = check_request::check_request(String::new()).encode_to_vec();
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
