//! The CEL environment, declared once: every variable a rule can use, its fields, their CEL
//! types, their documentation and how each value is built for a request. The reference
//! checker (which names exist), the activation (what is bound per request) and the tables of
//! `docs/cel.md` all follow from [`VARIABLES`]; a test fails when the docs and the table
//! disagree.

use std::time::SystemTime;

use cel::common::value::Val;

use super::values::*;

use crate::request::{AuthzRequest, HttpRequest};
use crate::trust::{Provenance, VerifiedPeer, Workload};

/// A CEL value that may borrow from the request for `'a`.
pub(super) type CelVal<'a> = Box<dyn Val + 'a>;

/// How a field's (or variable's) value is built from what one request offers.
#[derive(Clone, Copy)]
pub enum Build {
    /// A string borrowed from the request (`source.spiffe_id`, `request.path`): rule
    /// shortcuts read it as text, without building a CEL value.
    Text(for<'a> fn(&Inputs<'a>) -> &'a str),
    /// Any other value.
    Value(for<'a> fn(&Inputs<'a>) -> CelVal<'a>),
}

impl Build {
    /// The value for one request.
    pub(super) fn value<'a>(self, inputs: &Inputs<'a>) -> CelVal<'a> {
        match self {
            Build::Text(text) => string(text(inputs)),
            Build::Value(value) => value(inputs),
        }
    }
}

impl std::fmt::Debug for Build {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Build::Text(_) => "Build::Text",
            Build::Value(_) => "Build::Value",
        })
    }
}

/// What values are built from: the verified caller, the request, the evaluation time.
#[derive(Debug, Clone, Copy)]
pub struct Inputs<'a> {
    pub peer: &'a VerifiedPeer,
    /// Who originated the request beyond the mTLS peer (XFCC from trusted forwarders).
    pub provenance: &'a Provenance,
    /// The workload token's identity (`trust.workload_tokens`).
    pub workload: &'a Workload,
    pub request: &'a AuthzRequest,
    pub now: SystemTime,
    /// The headers the policy's rules can observe: `request.headers` holds only these.
    pub headers_read: &'a HeadersRead,
}

/// Which entries of `request.headers` a policy's rules can observe, found when it loads. The
/// map a request's rules see holds only these: a rule that looks headers up by literal name
/// (`request.headers["x-env"]`, `"x-debug" in request.headers`, `has(request.headers.x)`)
/// cannot tell the other entries apart from absent ones.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeadersRead {
    /// Only the headers of these names.
    Named(std::collections::BTreeSet<String>),
    /// Every header: some rule reads the map, or the whole `request`, other than by a
    /// literal name (iterates it, counts it, compares it, indexes it with a computed key).
    All,
}

impl Default for HeadersRead {
    fn default() -> Self {
        HeadersRead::Named(std::collections::BTreeSet::new())
    }
}

impl HeadersRead {
    /// Adds the header `name`.
    pub fn insert(&mut self, name: &str) {
        if let HeadersRead::Named(names) = self {
            names.insert(name.to_owned());
        }
    }

    /// Adds what `other` reads.
    pub fn extend(&mut self, other: &HeadersRead) {
        match other {
            HeadersRead::All => *self = HeadersRead::All,
            HeadersRead::Named(names) => names.iter().for_each(|name| self.insert(name)),
        }
    }

    /// Whether the header `name` is observable.
    pub fn admits(&self, name: &str) -> bool {
        match self {
            HeadersRead::All => true,
            HeadersRead::Named(names) => names.contains(name),
        }
    }
}

impl<'a> Inputs<'a> {
    /// The HTTP attributes; `None` for a check from Envoy's network (TCP) filter, whose
    /// string fields are then `""` and maps empty.
    pub(super) fn http(&self) -> Option<&'a HttpRequest> {
        self.request.http.as_ref()
    }
}

/// A top-level variable.
#[derive(Debug)]
pub struct Variable {
    /// The name a rule uses, e.g. `source` or `request`.
    pub name: &'static str,
    /// One line for the docs (the variable's section, or its row).
    pub doc: &'static str,
    /// Its fields, or the kind of value it is.
    pub shape: Shape,
}

/// A variable is a map of fixed fields, or a value of its own.
#[derive(Debug)]
pub enum Shape {
    /// Fields known at load: referencing any other is a load error.
    Fields(&'static [Field]),
    /// A value whose inside is not declared (its keys come from the request or Envoy).
    Value {
        /// The CEL type as the docs write it (`map(string, string)`, `timestamp`, ...).
        cel_type: &'static str,
        /// Builds the value for one request.
        build: Build,
    },
    /// A value fixed when the policy loads (its data), bound once for every request.
    Loaded {
        /// The CEL type as the docs write it (`map`).
        cel_type: &'static str,
    },
}

/// A field of a fixed-shape variable.
#[derive(Debug)]
pub struct Field {
    /// The field's name, e.g. `spiffe_id` in `source.spiffe_id`.
    pub name: &'static str,
    /// The CEL type as the docs write it (`string`, `map(string, string)`, ...).
    pub cel_type: &'static str,
    /// The docs' description of the field.
    pub doc: &'static str,
    /// For a map with fixed keys (`request.grpc`), the keys; selecting any other is a load
    /// error. Empty for every other field.
    pub keys: &'static [&'static str],
    /// Builds the field's value for one request.
    pub build: Build,
}

/// Every variable a rule may reference.
pub const VARIABLES: &[Variable] = &[
    Variable {
        name: "source",
        doc: "the caller (verified by the trust stage)",
        shape: Shape::Fields(&[
            Field {
                name: "spiffe_id",
                cel_type: "string",
                doc: r#"`spiffe://prod.example.org/ns/shop/sa/frontend`"#,
                keys: &[],
                build: Build::Text(|i| i.peer.spiffe_id.as_str()),
            },
            Field {
                name: "trust_domain",
                cel_type: "string",
                doc: r#"`prod.example.org`"#,
                keys: &[],
                build: Build::Text(|i| i.peer.spiffe_id.trust_domain()),
            },
            Field {
                name: "path",
                cel_type: "string",
                doc: r#"`/ns/shop/sa/frontend`"#,
                keys: &[],
                build: Build::Text(|i| i.peer.spiffe_id.path()),
            },
            Field {
                name: "segments",
                cel_type: "list(string)",
                doc: r#"`["ns", "shop", "sa", "frontend"]`"#,
                keys: &[],
                build: Build::Value(|i| list(i.peer.spiffe_id.segments().map(string))),
            },
            Field {
                name: "namespace",
                cel_type: "string",
                doc: r#"`shop` when the path has Istio's `/ns/N/sa/S` shape, else `""`"#,
                keys: &[],
                build: Build::Text(|i| istio(i).0),
            },
            Field {
                name: "service_account",
                cel_type: "string",
                doc: r#"`frontend` when the path has Istio's shape, else `""`"#,
                keys: &[],
                build: Build::Text(|i| istio(i).1),
            },
            Field {
                name: "principal",
                cel_type: "string",
                doc: r#"the raw `source.principal` Envoy sent (equal to `spiffe_id` once trusted)"#,
                keys: &[],
                build: Build::Text(|i| &i.request.source.principal),
            },
            Field {
                name: "address",
                cel_type: "string",
                doc: r#"peer IP address, `""` when unknown"#,
                keys: &[],
                build: Build::Text(|i| &i.request.source.address),
            },
            Field {
                name: "port",
                cel_type: "int",
                doc: r#"peer port, `0` when unknown"#,
                keys: &[],
                build: Build::Value(|i| int(i64::from(i.request.source.port))),
            },
            Field {
                name: "xfcc_spoofed",
                cel_type: "bool",
                doc: r#"`true` when the `x-forwarded-client-cert` header claims what no forwarder vouched for: from a peer not in `trust.forwarders` (beyond the calling Envoy's own element), elements older than a forwarder's own, or a forwarder's header that cannot be read (see [Provenance](#provenance-proxy_chain-and-origin))"#,
                keys: &[],
                build: Build::Value(|i| boolean(i.provenance.xfcc_spoofed())),
            },
            Field {
                name: "certificate",
                cel_type: "map",
                doc: r#"when Envoy forwarded the certificate: `serial` (string, colon-separated hex), `not_before` and `not_after` (timestamps), `dns_names` (list of DNS SANs, in lower case); an empty map otherwise"#,
                keys: &["serial", "not_before", "not_after", "dns_names"],
                build: Build::Value(certificate),
            },
        ]),
    },
    Variable {
        name: "origin",
        doc: "the originating workload: the oldest hop of a believed XFCC chain when it is trusted, otherwise the mTLS peer (`source`)",
        shape: Shape::Fields(&[
            Field {
                name: "spiffe_id",
                cel_type: "string",
                doc: r#"`spiffe://prod.example.org/ns/shop/sa/frontend`"#,
                keys: &[],
                build: Build::Text(|i| origin(i).0.as_str()),
            },
            Field {
                name: "trust_domain",
                cel_type: "string",
                doc: r#"`prod.example.org`"#,
                keys: &[],
                build: Build::Text(|i| origin(i).0.trust_domain()),
            },
            Field {
                name: "path",
                cel_type: "string",
                doc: r#"`/ns/shop/sa/frontend`"#,
                keys: &[],
                build: Build::Text(|i| origin(i).0.path()),
            },
            Field {
                name: "namespace",
                cel_type: "string",
                doc: r#"Istio's namespace, else `""`"#,
                keys: &[],
                build: Build::Text(|i| origin_istio(i).0),
            },
            Field {
                name: "service_account",
                cel_type: "string",
                doc: r#"Istio's service account, else `""`"#,
                keys: &[],
                build: Build::Text(|i| origin_istio(i).1),
            },
            Field {
                name: "via",
                cel_type: "string",
                doc: r#"`"mtls"` (the peer itself) or `"xfcc"` (a believed forwarded certificate)"#,
                keys: &[],
                build: Build::Text(|i| origin(i).1.as_str()),
            },
        ]),
    },
    Variable {
        name: "workload",
        doc: "the workload named by the request's JWT-SVID (`trust.workload_tokens`), verified against its trust domain's JWT bundle; identity fields are `\"\"` unless `verified`",
        shape: Shape::Fields(&[
            Field {
                name: "spiffe_id",
                cel_type: "string",
                doc: r#"the token's `sub`: `spiffe://prod.example.org/ns/shop/sa/frontend`"#,
                keys: &[],
                build: Build::Text(|i| workload_id(i).map_or("", |id| id.as_str())),
            },
            Field {
                name: "trust_domain",
                cel_type: "string",
                doc: r#"`prod.example.org`"#,
                keys: &[],
                build: Build::Text(|i| workload_id(i).map_or("", |id| id.trust_domain())),
            },
            Field {
                name: "path",
                cel_type: "string",
                doc: r#"`/ns/shop/sa/frontend`"#,
                keys: &[],
                build: Build::Text(|i| workload_id(i).map_or("", |id| id.path())),
            },
            Field {
                name: "namespace",
                cel_type: "string",
                doc: r#"Istio's namespace, else `""`"#,
                keys: &[],
                build: Build::Text(|i| workload_istio(i).0),
            },
            Field {
                name: "service_account",
                cel_type: "string",
                doc: r#"Istio's service account, else `""`"#,
                keys: &[],
                build: Build::Text(|i| workload_istio(i).1),
            },
            Field {
                name: "verified",
                cel_type: "bool",
                doc: r#"`true` when the token is a valid JWT-SVID for an accepted audience"#,
                keys: &[],
                build: Build::Value(|i| boolean(i.workload.verified().is_some())),
            },
            Field {
                name: "present",
                cel_type: "bool",
                doc: r#"`true` when the request carried a token, valid or not"#,
                keys: &[],
                build: Build::Value(|i| boolean(i.workload.present())),
            },
            Field {
                name: "error",
                cel_type: "string",
                doc: r#"why the token was rejected (`"the token expired at …"`); `""` when verified or absent"#,
                keys: &[],
                build: Build::Value(|i| {
                    Box::new(cel::common::types::CelString::from(i.workload.error()))
                }),
            },
            Field {
                name: "audience",
                cel_type: "list(string)",
                doc: r#"the verified token's `aud`; empty otherwise"#,
                keys: &[],
                build: Build::Value(|i| {
                    list(
                        i.workload
                            .verified()
                            .into_iter()
                            .flat_map(|svid| svid.audience.iter().map(|a| string(a))),
                    )
                }),
            },
            Field {
                name: "expires_at",
                cel_type: "timestamp",
                doc: r#"the verified token's `exp`; `null` otherwise"#,
                keys: &[],
                build: Build::Value(|i| {
                    i.workload
                        .verified()
                        .map_or_else(null, |svid| unix_timestamp(svid.expires_at))
                }),
            },
            Field {
                name: "claims",
                cel_type: "map",
                doc: r#"every claim of the verified token (`workload.claims.iss`, custom claims); empty otherwise"#,
                keys: &[],
                build: Build::Value(workload_claims),
            },
            Field {
                name: "bound",
                cel_type: "bool",
                doc: r#"`verified && spiffe_id == source.spiffe_id`: the token names the mTLS peer itself, so no one relayed it"#,
                keys: &[],
                build: Build::Value(|i| boolean(i.workload.bound_to(&i.peer.spiffe_id))),
            },
        ]),
    },
    Variable {
        name: "proxy_chain",
        doc: r#"the believed `x-forwarded-client-cert` chain, oldest hop first: maps with `by` (the proxy's SAN), `uri` (the client certificate's URI SAN, `""` unless exactly one), `hash`, `subject`, `dns` (list) and `trusted` (bool: `uri` is a SPIFFE ID of an accepted, non-revoked trust domain); an empty list unless the mTLS peer is in `trust.forwarders`"#,
        shape: Shape::Value {
            cel_type: "list(map)",
            build: Build::Value(proxy_chain),
        },
    },
    Variable {
        name: "destination",
        doc: "the service Envoy protects",
        shape: Shape::Fields(&[
            Field {
                name: "principal",
                cel_type: "string",
                doc: r#"Envoy's own identity on this listener (its certificate's URI SAN)"#,
                keys: &[],
                build: Build::Text(|i| &i.request.destination.principal),
            },
            Field {
                name: "address",
                cel_type: "string",
                doc: r#"local address the request arrived on"#,
                keys: &[],
                build: Build::Text(|i| &i.request.destination.address),
            },
            Field {
                name: "port",
                cel_type: "int",
                doc: r#"local port"#,
                keys: &[],
                build: Build::Value(|i| int(i64::from(i.request.destination.port))),
            },
        ]),
    },
    Variable {
        name: "request",
        doc: "the HTTP request",
        shape: Shape::Fields(&[
            Field {
                name: "method",
                cel_type: "string",
                doc: r#"`GET`, `POST`, … in **upper case**: methods are case-sensitive (RFC 9110 §9.1), but some upstreams (ASP.NET Core among them) match them case-insensitively, so an HTTP/2 `:method: delete` would otherwise slip past a rule on `"DELETE"` and still reach the DELETE handler"#,
                keys: &[],
                build: Build::Text(|i| i.http().map_or("", |h| &h.method)),
            },
            Field {
                name: "path",
                cel_type: "string",
                doc: r#"the path **without** the query string, exactly as Envoy passes it: Envoy normalises it only with `normalize_path`, `merge_slashes` and `path_with_escaped_slashes_action` on the connection manager — set them (see [examples/envoy](../examples/envoy/README.md)), or `/payments/../admin` gets past a rule on `/admin`"#,
                keys: &[],
                build: Build::Text(|i| i.http().map_or("", |h| h.path_without_query())),
            },
            Field {
                name: "query",
                cel_type: "map(string, string)",
                doc: r#"decoded query parameters; for a repeated key the first value"#,
                keys: &[],
                build: Build::Value(query),
            },
            Field {
                name: "host",
                cel_type: "string",
                doc: r#"`:authority` / `Host` **in lower case**, as Envoy passed it otherwise (port and trailing dot kept): `admin.example.org:8443`"#,
                keys: &[],
                build: Build::Text(|i| i.http().map_or("", |h| &h.host)),
            },
            Field {
                name: "hostname",
                cel_type: "string",
                doc: r#"the host a rule should usually compare: `request.host` without the port and without a trailing dot — `Admin.Example.Org.:8443` → `admin.example.org`. A host name cannot contain `:`, so everything from the first `:` goes (`admin.example.org:1:2`, which Envoy's `admin.example.org:*` domain matches, → `admin.example.org`); an IPv6 literal keeps its brackets (`[::1]`)"#,
                keys: &[],
                build: Build::Text(|i| i.http().map_or("", |h| h.hostname())),
            },
            Field {
                name: "scheme",
                cel_type: "string",
                doc: r#"`https`, `http` (in lower case)"#,
                keys: &[],
                build: Build::Text(|i| i.http().map_or("", |h| &h.scheme)),
            },
            Field {
                name: "protocol",
                cel_type: "string",
                doc: r#"`HTTP/1.1`, `HTTP/2`, …"#,
                keys: &[],
                build: Build::Text(|i| i.http().map_or("", |h| &h.protocol)),
            },
            Field {
                name: "headers",
                cel_type: "map(string, string)",
                doc: r#"headers with lower-case names (pseudo-headers such as `:path` included); a repeated header is one entry, its values joined with `,` in arrival order (Envoy does this for `headers`; Warrant does it for the raw `header_map` Envoy sends with `encode_raw_headers`, read only when `headers` is empty, bytes that are not UTF-8 as U+FFFD); a name a CheckRequest's `headers` map holds in two cases is one entry too, its values joined in byte order. The values of `:authority`, `host` and `:scheme` are in lower case; every other value is verbatim"#,
                keys: &[],
                build: Build::Value(headers),
            },
            Field {
                name: "id",
                cel_type: "string",
                doc: r#"the request id Envoy assigned (its stream id: the `x-request-id` value with Envoy's default request-id extension)"#,
                keys: &[],
                build: Build::Text(|i| i.http().map_or("", |h| &h.id)),
            },
            Field {
                name: "body",
                cel_type: "string",
                doc: r#"the body Envoy buffered — `body`, or `raw_body` when it is valid UTF-8 — when the ext_authz filter sets `with_request_body`; `""` when Envoy sent none (see [Bodies, SNI and gRPC](#bodies-sni-and-grpc))"#,
                keys: &[],
                build: Build::Text(|i| i.http().map_or("", |h| &h.body)),
            },
            Field {
                name: "size",
                cel_type: "int",
                doc: r#"the request size in bytes as Envoy reports it; `-1` when unknown (and for the network filter)"#,
                keys: &[],
                build: Build::Value(|i| int(i.http().map_or(-1, |h| h.size))),
            },
            Field {
                name: "tls_sni",
                cel_type: "string",
                doc: r#"the SNI the client sent in its TLS handshake, **in lower case** (`tls_session.sni`, which Envoy sends with `include_tls_session`); `""` when none"#,
                keys: &[],
                build: Build::Text(|i| &i.request.tls_sni),
            },
            Field {
                name: "grpc",
                cel_type: "map(string, string)",
                doc: r#"for a gRPC call (a `content-type` starting with `application/grpc`, any case, and a path `/package.Service/Method`): `service` (`payments.v1.Ledger`) and `method` (`Read`); an empty map otherwise"#,
                keys: &["service", "method"],
                build: Build::Value(grpc),
            },
            Field {
                name: "time",
                cel_type: "timestamp or null",
                doc: r#"when Envoy received the request; `null` if Envoy did not say"#,
                keys: &[],
                build: Build::Value(|i| i.request.time.map_or_else(null, timestamp)),
            },
        ]),
    },
    Variable {
        name: "context",
        doc: r#"the route's `context_extensions` (set per route or virtual host in Envoy's `ExtAuthzPerRoute.check_settings`; the route's keys win); **an empty map** on a route that sets none, and for the network filter"#,
        shape: Shape::Value {
            cel_type: "map(string, string)",
            build: Build::Value(context),
        },
    },
    Variable {
        name: "metadata",
        doc: r#"the CheckRequest's `metadata_context.filter_metadata`: filter name → what earlier filters set, as nested maps (`metadata["envoy.filters.http.jwt_authn"].claims.sub`); an empty map when Envoy sent none"#,
        shape: Shape::Value {
            cel_type: "map",
            build: Build::Value(|i| json_map(&i.request.metadata)),
        },
    },
    Variable {
        name: "route_metadata",
        doc: r#"the route's metadata (`route_metadata_context.filter_metadata`), the same way"#,
        shape: Shape::Value {
            cel_type: "map",
            build: Build::Value(|i| json_map(&i.request.route_metadata)),
        },
    },
    Variable {
        name: "data",
        doc: r#"the operator's data: the policy files' `data:` sections and `data_files`, merged (see [Operator data](#operator-data))"#,
        shape: Shape::Loaded { cel_type: "map" },
    },
    Variable {
        name: "now",
        doc: r#"the evaluation time (fixed by `warrant eval --now`)"#,
        shape: Shape::Value {
            cel_type: "timestamp",
            build: Build::Value(|i| timestamp(i.now)),
        },
    },
];

/// The variable called `name`.
pub(super) fn variable(name: &str) -> Option<&'static Variable> {
    VARIABLES.iter().find(|variable| variable.name == name)
}

impl Variable {
    /// The names of its fields, when it has fixed ones.
    pub fn fields(&self) -> Option<impl Iterator<Item = &'static str>> {
        match self.shape {
            Shape::Fields(fields) => Some(fields.iter().map(|field| field.name)),
            Shape::Value { .. } | Shape::Loaded { .. } => None,
        }
    }

    /// Whether the variable, or a value inside it, may be a bool: data and filter metadata,
    /// whose values come from JSON or YAML.
    pub fn may_be_bool(&self) -> bool {
        matches!(
            self.shape,
            Shape::Loaded { .. }
                | Shape::Value {
                    cel_type: "map",
                    ..
                }
        )
    }

    /// Whether its field `name` is a bool.
    pub fn field_is_bool(&self, name: &str) -> bool {
        match self.shape {
            Shape::Fields(fields) => fields
                .iter()
                .any(|field| field.name == name && field.cel_type == "bool"),
            Shape::Value { .. } | Shape::Loaded { .. } => false,
        }
    }

    /// Its whole value for one request; `None` for a value bound once when the policy loads.
    pub fn build<'a>(&self, inputs: &Inputs<'a>) -> Option<CelVal<'a>> {
        match self.shape {
            Shape::Fields(fields) => Some(map(fields
                .iter()
                .map(|field| (field.name, field.build.value(inputs))))),
            Shape::Value { build, .. } => Some(build.value(inputs)),
            Shape::Loaded { .. } => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    const DOCS: &str = include_str!("../../../docs/cel.md");

    /// The rows `| `name` | type | description |` of the docs' variable tables.
    fn documented_rows() -> BTreeMap<String, (String, String)> {
        DOCS.lines()
            .filter_map(|line| {
                let cells: Vec<&str> = line
                    .strip_prefix("| `")?
                    .strip_suffix(" |")?
                    .splitn(3, " | ")
                    .collect();
                let [name, cel_type, doc] = cells[..] else {
                    return None;
                };
                let name = name.strip_suffix('`')?;
                name.chars()
                    .all(|c| c.is_ascii_lowercase() || c == '_' || c == '.')
                    .then(|| (name.to_owned(), (cel_type.to_owned(), doc.to_owned())))
            })
            .collect()
    }

    /// The same rows, as the table declares them.
    fn declared_rows() -> BTreeMap<String, (String, String)> {
        let mut rows = BTreeMap::new();
        for variable in VARIABLES {
            match variable.shape {
                Shape::Fields(fields) => {
                    for field in fields {
                        rows.insert(
                            format!("{}.{}", variable.name, field.name),
                            (field.cel_type.to_owned(), field.doc.to_owned()),
                        );
                    }
                }
                Shape::Value { cel_type, .. } | Shape::Loaded { cel_type } => {
                    rows.insert(
                        variable.name.to_owned(),
                        (cel_type.to_owned(), variable.doc.to_owned()),
                    );
                }
            }
        }
        rows
    }

    #[test]
    fn docs_cel_md_and_the_table_agree() {
        let documented = documented_rows();
        let declared = declared_rows();
        for (name, row) in &declared {
            assert_eq!(
                documented.get(name),
                Some(row),
                "docs/cel.md must have the row | `{name}` | {} | {} |",
                row.0,
                row.1
            );
        }
        for name in documented.keys() {
            assert!(
                declared.contains_key(name),
                "docs/cel.md documents `{name}`, which the environment does not declare"
            );
        }
        for variable in VARIABLES {
            if let Shape::Fields(_) = variable.shape {
                let heading = format!("## `{}` — {}", variable.name, variable.doc);
                assert!(
                    DOCS.contains(&heading),
                    "docs/cel.md must have the heading {heading}"
                );
            }
        }
    }
}
