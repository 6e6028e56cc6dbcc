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
    /// `metadata_context.filter_metadata`: filter name → the metadata earlier filters (e.g.
    /// `envoy.filters.http.jwt_authn`, a Lua filter) set, as a JSON object (a
    /// `google.protobuf.Struct`).
    pub metadata: BTreeMap<String, serde_json::Value>,
    /// `route_metadata_context.filter_metadata`: the route's metadata, the same way.
    pub route_metadata: BTreeMap<String, serde_json::Value>,
    /// The SNI the client sent in its TLS handshake (`tls_session.sni`); empty when none.
    pub tls_sni: String,
}

impl AuthzRequest {
    /// The `x-forwarded-client-cert` header (repeated ones joined with `,`), if any.
    pub fn xfcc(&self) -> Option<&str> {
        self.http.as_ref()?.header("x-forwarded-client-cert")
    }
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
    /// The `:method`, e.g. `GET`; in upper case once canonical (see [`HttpRequest::canonical`]).
    pub method: String,
    /// The request target as sent, including the query string.
    pub path: String,
    /// `:authority` in lower case (see [`HttpRequest::canonical`]).
    pub host: String,
    /// In lower case.
    pub scheme: String,
    /// e.g. `HTTP/1.1`, `HTTP/2`.
    pub protocol: String,
    /// Headers with lower-case names, in the order Envoy listed them. Repeated headers arrive
    /// from Envoy already joined with `,`.
    pub headers: Vec<(String, String)>,
    /// The body Envoy buffered (`with_request_body`): `body`, or `raw_body` when it is valid
    /// UTF-8; empty when Envoy sent none.
    pub body: String,
    /// The request size in bytes as Envoy reports it (`size`); -1 when unknown.
    pub size: i64,
}

impl HttpRequest {
    /// For a gRPC call — a `content-type` starting with `application/grpc` (in any case) and a
    /// path `/package.Service/Method` (gRPC over HTTP/2, "Path"; a query string is ignored, as
    /// in `request.path`) — its service and method.
    pub fn grpc(&self) -> Option<(&str, &str)> {
        let content_type = self.header("content-type")?;
        let is_grpc = content_type
            .get(..16)
            .is_some_and(|prefix| prefix.eq_ignore_ascii_case("application/grpc"));
        if !is_grpc {
            return None;
        }
        let (service, method) = self
            .path_without_query()
            .strip_prefix('/')?
            .split_once('/')?;
        let valid = |part: &str| !part.is_empty() && !part.contains(['/', '?', '#']);
        (valid(service) && valid(method)).then_some((service, method))
    }

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

    /// The request with the attributes that Envoy or upstreams compare case-insensitively in
    /// one case, so a rule comparing them cannot be walked around by capitals: the host in
    /// lower case (`host` and the `:authority` and `host` headers; RFC 4343, RFC 9110 §4.2.3
    /// — Envoy matches virtual hosts case-insensitively), the scheme in lower case (`scheme`
    /// and `:scheme`; RFC 3986 §3.1), and the method in upper case (`method` and `:method`:
    /// RFC 9110 §9.1 makes methods case-sensitive, but upstreams such as ASP.NET Core match
    /// them case-insensitively, so `delete` would reach a DELETE handler). Header names are
    /// lower case already (RFC 9113 §8.2.1; Envoy lower-cases HTTP/1 names). Paths and header
    /// values stay verbatim.
    pub fn canonical(mut self) -> Self {
        self.host.make_ascii_lowercase();
        self.scheme.make_ascii_lowercase();
        self.method.make_ascii_uppercase();
        for (name, value) in &mut self.headers {
            match name.as_str() {
                ":authority" | "host" | ":scheme" => value.make_ascii_lowercase(),
                ":method" => value.make_ascii_uppercase(),
                _ => {}
            }
        }
        self
    }

    /// The host name a rule should usually compare: `host` without the port and without a
    /// trailing dot (`admin.example.org.:8443` → `admin.example.org`). An IPv6 literal keeps
    /// its brackets (`[::1]:8443` → `[::1]`, RFC 3986 §3.2.2).
    pub fn hostname(&self) -> &str {
        hostname(&self.host)
    }

    /// The value of header `name` (lower-case), if present.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// The host of an authority `[userinfo@]host[:port]`, without userinfo, port and one
/// trailing dot. A registered name cannot contain `:` (RFC 3986 §3.2.2), so outside brackets
/// the host ends at the first `:` — as for Envoy, whose `admin.example.org:*` domain also
/// matches `admin.example.org:1:2`. Two `Host` headers arrive joined by `,` (Envoy joins
/// them); the first is taken, as upstreams that read the first one do.
pub fn hostname(authority: &str) -> &str {
    let first = authority.split(',').next().unwrap_or(authority).trim();
    let host = first.rsplit('@').next().unwrap_or(first);
    let host = if host.starts_with('[') {
        host.find(']').map_or(host, |end| &host[..=end])
    } else {
        host.split_once(':').map_or(host, |(host, _)| host)
    };
    host.strip_suffix('.').unwrap_or(host)
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

    #[test]
    fn hostnames() {
        for (authority, expected) in [
            ("admin.example.org", "admin.example.org"),
            ("admin.example.org:8443", "admin.example.org"),
            ("admin.example.org.", "admin.example.org"),
            ("admin.example.org.:8443", "admin.example.org"),
            ("admin.example.org:", "admin.example.org"),
            ("[::1]:8443", "[::1]"),
            ("[::1]", "[::1]"),
            ("10.0.0.1:80", "10.0.0.1"),
            ("", ""),
            (":443", ""),
            ("admin.example.org:1:2", "admin.example.org"),
            ("admin.example.org::", "admin.example.org"),
            ("admin.example.org.:0:0", "admin.example.org"),
            ("[::1]:1:2", "[::1]"),
            ("x@admin.example.org", "admin.example.org"),
            ("a@b@admin.example.org:443", "admin.example.org"),
            ("admin.example.org,other.example.org", "admin.example.org"),
            (" admin.example.org , other", "admin.example.org"),
        ] {
            assert_eq!(hostname(authority), expected, "{authority}");
        }
    }

    #[test]
    fn canonical_host_scheme_and_method() {
        let http = HttpRequest {
            method: "Get".into(),
            path: "/Admin".into(),
            host: "Admin.Example.Org.:8443".into(),
            scheme: "HTTPS".into(),
            headers: vec![
                (":authority".into(), "Admin.Example.Org".into()),
                ("host".into(), "ADMIN.example.org".into()),
                (":scheme".into(), "HTTPS".into()),
                ("x-tenant".into(), "Shop".into()),
            ],
            ..HttpRequest::default()
        }
        .canonical();
        assert_eq!(http.host, "admin.example.org.:8443");
        assert_eq!(http.hostname(), "admin.example.org");
        assert_eq!(http.scheme, "https");
        assert_eq!(
            (http.method.as_str(), http.path.as_str()),
            ("GET", "/Admin")
        );
        assert_eq!(http.header(":authority"), Some("admin.example.org"));
        assert_eq!(http.header("host"), Some("admin.example.org"));
        assert_eq!(http.header(":scheme"), Some("https"));
        assert_eq!(http.header("x-tenant"), Some("Shop"));
    }
}
