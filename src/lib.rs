//! Warrant: an Envoy ext_authz server that decides in two stages — SPIFFE transport trust,
//! then CEL policy — and explains every decision.
//!
//! The domain core (`identity`, `trust`, `policy`, `request`, `header`, `glob`) has no gRPC, async runtime or
//! I/O in it; `server` translates protos to and from it, `loader` and `config` read files.
#![forbid(unsafe_code)]
// No panics on any request path: bad input is a deny or an error, never a crash.
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod admin;
pub mod audit;
pub mod cli;
pub mod config;
pub mod glob;
pub mod header;
pub mod identity;
pub mod json;
pub mod loader;
pub mod policy;
pub mod request;
pub mod server;
pub mod status;
pub mod trust;
pub mod yaml;
