//! Warrant: an Envoy ext_authz server that decides in two stages — SPIFFE transport trust,
//! then CEL policy — and explains every decision.
//!
//! The domain core (`identity`, `trust`, `policy`, `request`, `header`, `glob`) has no gRPC, async runtime or
//! I/O in it; `server` translates protos to and from it, `loader` and `config` read files.
//!
//! Lints are declared in `Cargo.toml` (`[lints]`): no `unsafe`, and no `unwrap`, `expect` or
//! `panic!` outside tests — bad input is a deny or an error, never a crash.

pub mod admin;
pub mod audit;
pub mod cli;
pub mod config;
#[doc(hidden)]
pub mod fuzzing;
pub mod glob;
pub mod header;
pub mod identity;
pub mod json;
pub mod loader;
pub mod policy;
mod protobuf;
pub mod request;
pub mod server;
pub mod status;
pub mod trust;
pub mod yaml;
