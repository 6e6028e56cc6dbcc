//! HTTP header names and values: the one validator for every header Warrant sends to Envoy
//! (a rule's `headers`, `identity_header`, `warrant eval --identity-header`) or looks up by
//! name (`sensitive_headers`).
//!
//! A header Warrant adds to an allowed request goes through Envoy to the upstream. Envoy
//! applies ext_authz mutations unchecked unless the filter sets `validate_mutations` and
//! `decoder_header_mutation_rules` (measured on Envoy 1.40): a control character then makes
//! the router answer 503 to every request the rule allows, and `content-length: 0` on a POST
//! lets the body carry a second, never-checked request to the upstream. So what Warrant sends
//! is checked when the policy or config loads:
//! - names are RFC 9110 tokens (§5.6.2), in lower case (HTTP/2 requires it, RFC 9113 §8.2.1);
//! - values have no control characters but horizontal tab, and no leading or trailing
//!   whitespace (RFC 9110 §5.5); other bytes, UTF-8 included, are allowed (obs-text);
//! - never a header that changes message framing, connection handling or routing, nor one
//!   that Envoy or a tracer manages ([`reserved`]); no `_` in names (CGI-style upstreams read
//!   `x_tenant` as `x-tenant`, and the shipped Envoy configs refuse such names from clients);
//! - at most [`MAX_SET`] headers and [`MAX_SET_BYTES`] per rule, values of at most
//!   [`MAX_VALUE_BYTES`]: Envoy refuses a request whose headers pass 60 KiB or 100 entries
//!   (its defaults), so a rule adding many or large headers would make every request it
//!   allows fail.

/// Headers that upstreams (frameworks, proxies, CDNs) take in place of the request's own
/// host, path, method, scheme or client address: RFC 7239 `Forwarded` and its de-facto kin.
/// Warrant never sets them, and the shipped Envoy configs remove client copies, since the
/// rules decided on the request's own.
pub const OVERRIDES_REQUEST: &[&str] = &[
    "forwarded",
    "x-forwarded-host",
    "x-forwarded-port",
    "x-forwarded-prefix",
    "x-forwarded-scheme",
    "x-forwarded-ssl",
    "x-forwarded-server",
    "x-forwarded-uri",
    "x-forwarded-path",
    "x-original-host",
    "x-original-url",
    "x-original-uri",
    "x-original-method",
    "x-rewrite-url",
    "x-http-method-override",
    "x-http-method",
    "x-method-override",
    "x-scheme",
    "x-url-scheme",
    "x-real-ip",
    "x-client-ip",
    "true-client-ip",
];

/// Most headers one rule may set.
pub const MAX_SET: usize = 16;
/// Longest value Warrant sets, in bytes.
pub const MAX_VALUE_BYTES: usize = 4096;
/// Most bytes (names and values) one rule may set.
pub const MAX_SET_BYTES: usize = 8192;

/// Why a header name or value cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HeaderError {
    /// A header name is empty.
    #[error("header name is empty")]
    EmptyName,
    /// A header name has a character that is not an RFC 9110 `tchar` (§5.6.2).
    #[error(
        "header name {name:?} is not an HTTP token (RFC 9110 §5.6.2): {found:?} is not allowed"
    )]
    NotAToken {
        /// The name as written.
        name: String,
        /// The first character that is not allowed.
        found: char,
    },
    /// A header name Warrant sends has capitals (HTTP/2 names are lower case, RFC 9113 §8.2.1).
    #[error("header name {name:?} has capitals; write {:?} (HTTP/2 header names are lower case, RFC 9113 §8.2.1)", name.to_ascii_lowercase())]
    UpperCase {
        /// The name as written.
        name: String,
    },
    /// A header Warrant never sets: it changes framing, connection handling or routing, or
    /// Envoy or a tracer manages it.
    #[error("header {name:?} {reason}; Warrant never sets it")]
    Reserved {
        /// The name as written.
        name: String,
        /// Why, as a phrase following the name: `is a pseudo-header (RFC 9113 §8.3)`.
        reason: &'static str,
    },
    /// A header Warrant never removes: a pseudo-header, `host`, or a framing,
    /// connection-specific or `x-envoy-*` header.
    #[error("header {name:?} {reason}; Warrant never removes it")]
    NotRemovable {
        /// The name as written.
        name: String,
        /// Why, as a phrase following the name.
        reason: &'static str,
    },
    /// A value has a control character other than horizontal tab (RFC 9110 §5.5).
    #[error(
        "header {name:?}: the value has control character {byte:#04x}; only visible characters, spaces and tabs are allowed (RFC 9110 §5.5)"
    )]
    ControlCharacter {
        /// The header the value is for.
        name: String,
        /// The first control byte (below 0x20, or 0x7f).
        byte: u8,
    },
    /// A value starts or ends with a space or tab (RFC 9110 §5.5).
    #[error(
        "header {name:?}: the value has leading or trailing whitespace, which HTTP strips or refuses (RFC 9110 §5.5)"
    )]
    Whitespace {
        /// The header the value is for.
        name: String,
    },
    /// A header name Warrant sends has `_`, which CGI-style upstreams read as `-`.
    #[error(
        "header name {name:?} has '_': upstreams that read headers CGI-style take it for {:?} (write '-')",
        name.replace('_', "-")
    )]
    Underscore {
        /// The name as written.
        name: String,
    },
    /// A value is longer than [`MAX_VALUE_BYTES`].
    #[error("header {name:?}: the value has {len} bytes; at most {MAX_VALUE_BYTES} are allowed")]
    ValueTooLong {
        /// The header the value is for.
        name: String,
        /// The value's length, in bytes.
        len: usize,
    },
    /// One rule sets more than [`MAX_SET`] headers or [`MAX_SET_BYTES`] in all.
    #[error(
        "{count} headers with {bytes} bytes in all; a rule sets at most {MAX_SET} headers and {MAX_SET_BYTES} bytes (Envoy refuses requests whose headers pass its limits)"
    )]
    TooMany {
        /// How many headers the rule sets.
        count: usize,
        /// The total length of their names and values, in bytes.
        bytes: usize,
    },
}

/// Checks a header name that Warrant only looks up (any case: lookups lower-case it).
pub fn check_name(name: &str) -> Result<(), HeaderError> {
    if name.is_empty() {
        return Err(HeaderError::EmptyName);
    }
    match name.chars().find(|&c| !is_name_char(c)) {
        Some(found) => Err(HeaderError::NotAToken {
            name: name.to_owned(),
            found,
        }),
        None => Ok(()),
    }
}

/// Checks a header that Warrant adds to allowed requests: a lower-case token that is not
/// [`reserved`], with a valid `value` when one is known at load.
pub fn check_upstream(name: &str, value: Option<&str>) -> Result<(), HeaderError> {
    check_header(name, value, reserved(name))?;
    if name.contains('_') {
        return Err(HeaderError::Underscore {
            name: name.to_owned(),
        });
    }
    Ok(())
}

/// Checks a header that Warrant adds to the response the client receives (an allowed
/// request's `response_headers_to_add`, or the denied response when `denied`): a lower-case
/// token that does not break the response (see [`reserved_in_response`]), with a valid value.
pub fn check_response(name: &str, value: &str, denied: bool) -> Result<(), HeaderError> {
    let reason = reserved_in_response(name).or_else(|| {
        (denied && name.eq_ignore_ascii_case("content-type"))
            .then_some("is set by Warrant: the denied body is JSON")
    });
    check_header(name, Some(value), reason)
}

/// Checks a header that Warrant asks Envoy to remove from an allowed request before the
/// upstream sees it (`headers_to_remove`): a lower-case token, never a pseudo-header or
/// `host` (Envoy refuses to remove them) nor a framing, connection-specific or `x-envoy-*`
/// header (the shipped Envoy configurations refuse such mutations: a 500 for every request the
/// rule allows). Stripping headers a client may spoof (`x-forwarded-host`, `forwarded`, …) is
/// what removal is for, so those are allowed.
pub fn check_removable(name: &str) -> Result<(), HeaderError> {
    let lower = name.to_ascii_lowercase();
    let reason = if lower.starts_with(':') || lower == "host" {
        Some("routes the request, and Envoy refuses to remove it")
    } else {
        breaks_message(&lower)
    };
    match reason {
        Some(reason) => Err(HeaderError::NotRemovable {
            name: name.to_owned(),
            reason,
        }),
        None => check_header(name, None, None),
    }
}

fn check_header(
    name: &str,
    value: Option<&str>,
    reserved: Option<&'static str>,
) -> Result<(), HeaderError> {
    if let Some(reason) = reserved {
        return Err(HeaderError::Reserved {
            name: name.to_owned(),
            reason,
        });
    }
    check_name(name)?;
    if name.bytes().any(|b| b.is_ascii_uppercase()) {
        return Err(HeaderError::UpperCase {
            name: name.to_owned(),
        });
    }
    if let Some(value) = value {
        check_value(name, value)?;
    }
    Ok(())
}

/// Why Warrant must never add header `name` (any case) to a response, if it must not.
pub fn reserved_in_response(name: &str) -> Option<&'static str> {
    let lower = name.to_ascii_lowercase();
    if lower.starts_with(':') {
        return Some("is a pseudo-header (RFC 9113 §8.3)");
    }
    if lower == "content-encoding" {
        return Some("changes how the client decodes the body (RFC 9110 §8.4)");
    }
    breaks_message(&lower)
}

/// Why a header (lower case) breaks any message Warrant would add it to: framing,
/// connection-specific and Envoy's own headers.
fn breaks_message(lower: &str) -> Option<&'static str> {
    Some(match lower {
        "content-length" | "transfer-encoding" | "trailer" => {
            "changes message framing (RFC 9110 §8.6, RFC 9112 §6)"
        }
        "connection" | "keep-alive" | "proxy-connection" | "te" | "upgrade" | "http2-settings" => {
            "is connection-specific (RFC 9110 §7.6.1, RFC 9113 §8.2.2)"
        }
        n if n.starts_with("x-envoy-") => "is reserved for Envoy's own use (x-envoy-*)",
        _ => return None,
    })
}

/// Checks the headers one rule sets, together: how many and how large.
pub fn check_set<'a>(
    headers: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> Result<(), HeaderError> {
    let (count, bytes) = headers
        .into_iter()
        .fold((0, 0), |(count, bytes), (name, value)| {
            (count + 1, bytes + name.len() + value.len())
        });
    if count > MAX_SET || bytes > MAX_SET_BYTES {
        return Err(HeaderError::TooMany { count, bytes });
    }
    Ok(())
}

/// Checks a value Warrant sends in header `name`.
pub fn check_value(name: &str, value: &str) -> Result<(), HeaderError> {
    if value.len() > MAX_VALUE_BYTES {
        return Err(HeaderError::ValueTooLong {
            name: name.to_owned(),
            len: value.len(),
        });
    }
    if let Some(byte) = value
        .bytes()
        .find(|&b| (b < 0x20 && b != b'\t') || b == 0x7f)
    {
        return Err(HeaderError::ControlCharacter {
            name: name.to_owned(),
            byte,
        });
    }
    if value.starts_with([' ', '\t']) || value.ends_with([' ', '\t']) {
        return Err(HeaderError::Whitespace {
            name: name.to_owned(),
        });
    }
    Ok(())
}

/// Why Warrant must never set header `name` (any case), if it must not.
pub fn reserved(name: &str) -> Option<&'static str> {
    let lower = name.to_ascii_lowercase();
    if let Some(reason) = breaks_message(&lower) {
        return Some(reason);
    }
    Some(match lower.as_str() {
        n if n.starts_with(':') => "is a pseudo-header, which routes the request (RFC 9113 §8.3)",
        "expect" => "changes how the request is handled (RFC 9110 §10.1.1)",
        "content-encoding" => "changes how the upstream decodes the body (RFC 9110 §8.4)",
        "host" => "routes the request (RFC 9110 §7.2: Envoy picks the virtual host by it)",
        "x-forwarded-for" | "x-forwarded-proto" | "x-forwarded-client-cert" | "x-request-id" => {
            "is managed by Envoy (client address, scheme, forwarded certificates, request id)"
        }
        n if OVERRIDES_REQUEST.contains(&n) => {
            "changes how upstreams route or attribute the request (the request's own host, path, method, scheme or client address decided the rules)"
        }
        "grpc-timeout" => "sets the upstream's deadline (gRPC over HTTP/2)",
        "traceparent" | "tracestate" | "b3" | "x-ot-span-context" => {
            "carries trace context, which Envoy and the tracer manage"
        }
        n if n.starts_with("x-b3-") => "carries trace context, which Envoy and the tracer manage",
        _ => return None,
    })
}

/// Whether `c` may appear in a header name: RFC 9110 `tchar`.
pub fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(check_upstream("x-tenant", Some("shop")), Ok(()));
        assert_eq!(check_name("X-Api-Key"), Ok(()));
        assert!(matches!(check_name(""), Err(HeaderError::EmptyName)));
        assert!(matches!(
            check_name("x tenant"),
            Err(HeaderError::NotAToken { found: ' ', .. })
        ));
        assert!(matches!(
            check_upstream("X-Tenant", None),
            Err(HeaderError::UpperCase { .. })
        ));
        assert_eq!(
            check_upstream("X-Tenant", None).map_err(|e| e.to_string()),
            Err("header name \"X-Tenant\" has capitals; write \"x-tenant\" (HTTP/2 header names are lower case, RFC 9113 §8.2.1)".to_owned())
        );
    }

    #[test]
    fn reserved_names_in_any_case() {
        for name in [
            ":authority",
            ":path",
            "content-length",
            "Content-Length",
            "transfer-encoding",
            "trailer",
            "connection",
            "keep-alive",
            "proxy-connection",
            "te",
            "upgrade",
            "http2-settings",
            "expect",
            "host",
            "Host",
            "x-envoy-original-path",
            "X-Envoy-Upstream-Rq-Timeout-Ms",
            "x-forwarded-client-cert",
            "x-forwarded-for",
            "x-request-id",
            "forwarded",
            "x-forwarded-host",
            "x-http-method-override",
            "x-original-url",
            "traceparent",
            "x-b3-traceid",
            "x-forwarded-scheme",
            "x-client-ip",
            "true-client-ip",
            "x-original-host",
            "grpc-timeout",
            "content-encoding",
        ] {
            assert!(
                matches!(
                    check_upstream(name, Some("1")),
                    Err(HeaderError::Reserved { .. })
                ),
                "{name}"
            );
        }
        for name in [
            "x-tenant",
            "x-spiffe-id",
            "x-envoy",
            "content-type",
            "tenant",
        ] {
            assert_eq!(check_upstream(name, Some("1")), Ok(()), "{name}");
        }
    }

    #[test]
    fn underscores_sizes_and_counts() {
        assert!(matches!(
            check_upstream("x_spiffe_id", None),
            Err(HeaderError::Underscore { .. })
        ));
        assert_eq!(check_name("x_api_key"), Ok(()));
        let long = "a".repeat(MAX_VALUE_BYTES + 1);
        assert!(matches!(
            check_value("x", &long),
            Err(HeaderError::ValueTooLong { .. })
        ));
        assert_eq!(check_value("x", &long[1..]), Ok(()));
        let names: Vec<String> = (0..=MAX_SET).map(|i| format!("x-{i}")).collect();
        assert!(check_set(names.iter().map(|n| (n.as_str(), "v"))).is_err());
        assert!(check_set(names[1..].iter().map(|n| (n.as_str(), "v"))).is_ok());
        let big = "a".repeat(3000);
        assert!(check_set([("x-a", big.as_str()), ("x-b", &big), ("x-c", &big)]).is_err());
    }

    #[test]
    fn values() {
        for value in ["shop", "a b", "tab\tinside", "Zürich", "", "\"quoted\""] {
            assert_eq!(check_value("x", value), Ok(()), "{value:?}");
        }
        for (value, byte) in [
            ("shop\x01", 1),
            ("a\rb", 13),
            ("a\nb", 10),
            ("\0", 0),
            ("del\x7f", 0x7f),
        ] {
            assert_eq!(
                check_value("x", value),
                Err(HeaderError::ControlCharacter {
                    name: "x".into(),
                    byte
                }),
                "{value:?}"
            );
        }
        for value in [" shop", "shop ", "\tshop", "shop\t"] {
            assert!(
                matches!(check_value("x", value), Err(HeaderError::Whitespace { .. })),
                "{value:?}"
            );
        }
    }
}
