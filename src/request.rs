//! The authorization request as the domain core sees it: what Envoy told us about one
//! request, independent of protobuf and gRPC. The gRPC layer (`crate::server::convert`) builds
//! it from a `CheckRequest`; `warrant eval` builds it from a CheckRequest in JSON the same way.

use std::collections::BTreeMap;
use std::time::SystemTime;

/// One ext_authz check.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuthzRequest {
    /// The downstream peer: the caller.
    pub source: Peer,
    /// The local peer: the service being called (as Envoy sees itself).
    pub destination: Peer,
    /// The HTTP request; `None` for checks from Envoy's network (TCP) ext_authz filter.
    pub http: Option<HttpRequest>,
    /// When Envoy received the request, if it said.
    pub time: Option<SystemTime>,
    /// The route's `context_extensions`.
    pub context_extensions: BTreeMap<String, String>,
}

/// A peer of the connection, as Envoy reports it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Peer {
    /// The identity from the peer's certificate: Envoy uses the first URI SAN, else the first
    /// DNS SAN, else the Subject. Empty without mTLS.
    pub principal: String,
    /// The peer's leaf certificate as URL-encoded PEM; empty unless the filter sets
    /// `include_peer_certificate: true`.
    pub certificate: String,
    /// IP address (or pipe path), empty when unknown.
    pub address: String,
    /// Port, 0 when unknown.
    pub port: u32,
}

/// The HTTP attributes of the request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HttpRequest {
    /// The `x-request-id` Envoy assigned.
    pub id: String,
    pub method: String,
    /// The request target as sent, including the query string.
    pub path: String,
    /// `:authority`.
    pub host: String,
    pub scheme: String,
    /// e.g. `HTTP/1.1`, `HTTP/2`.
    pub protocol: String,
    /// Headers with lower-case names, in the order Envoy listed them. Repeated headers arrive
    /// from Envoy already joined with `,`.
    pub headers: Vec<(String, String)>,
}

impl HttpRequest {
    /// The path without the query string.
    pub fn path_without_query(&self) -> &str {
        self.path
            .split_once('?')
            .map_or(&self.path, |(path, _)| path)
    }

    /// The raw query string (without `?`), empty when there is none.
    pub fn query_string(&self) -> &str {
        self.path.split_once('?').map_or("", |(_, query)| query)
    }

    /// The value of header `name` (lower-case), if present.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_query_and_headers() {
        let http = HttpRequest {
            path: "/a/b?x=1&y=2".into(),
            headers: vec![("x-env".into(), "prod".into())],
            ..HttpRequest::default()
        };
        assert_eq!(http.path_without_query(), "/a/b");
        assert_eq!(http.query_string(), "x=1&y=2");
        assert_eq!(http.header("x-env"), Some("prod"));
        assert_eq!(http.header("x-other"), None);
        let bare = HttpRequest {
            path: "/a".into(),
            ..HttpRequest::default()
        };
        assert_eq!((bare.path_without_query(), bare.query_string()), ("/a", ""));
    }
}
