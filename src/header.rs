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
//!   that Envoy reserves for itself ([`reserved`]).

/// Why a header name or value cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HeaderError {
    #[error("header name is empty")]
    EmptyName,
    #[error(
        "header name {name:?} is not an HTTP token (RFC 9110 §5.6.2): {found:?} is not allowed"
    )]
    NotAToken { name: String, found: char },
    #[error("header name {name:?} has capitals; write {:?} (HTTP/2 header names are lower case, RFC 9113 §8.2.1)", name.to_ascii_lowercase())]
    UpperCase { name: String },
    #[error("header {name:?} {reason}; Warrant never sets it")]
    Reserved { name: String, reason: &'static str },
    #[error(
        "header {name:?}: the value has control character {byte:#04x}; only visible characters, spaces and tabs are allowed (RFC 9110 §5.5)"
    )]
    ControlCharacter { name: String, byte: u8 },
    #[error(
        "header {name:?}: the value has leading or trailing whitespace, which HTTP strips or refuses (RFC 9110 §5.5)"
    )]
    Whitespace { name: String },
}

/// Checks a header name that Warrant only looks up (any case: lookups lower-case it).
pub fn check_name(name: &str) -> Result<(), HeaderError> {
    if name.is_empty() {
        return Err(HeaderError::EmptyName);
    }
    match name.chars().find(|&c| !is_token_char(c)) {
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
    if let Some(reason) = reserved(name) {
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

/// Checks a value Warrant sends in header `name`.
pub fn check_value(name: &str, value: &str) -> Result<(), HeaderError> {
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
    Some(match lower.as_str() {
        n if n.starts_with(':') => "is a pseudo-header, which routes the request (RFC 9113 §8.3)",
        "content-length" | "transfer-encoding" | "trailer" => {
            "changes message framing (RFC 9110 §8.6, RFC 9112 §6)"
        }
        "connection" | "keep-alive" | "proxy-connection" | "te" | "upgrade" | "http2-settings" => {
            "is connection-specific (RFC 9110 §7.6.1, RFC 9113 §8.2.2)"
        }
        "expect" => "changes how the request is handled (RFC 9110 §10.1.1)",
        "host" => "routes the request (RFC 9110 §7.2: Envoy picks the virtual host by it)",
        "x-forwarded-for" | "x-forwarded-proto" | "x-forwarded-client-cert" | "x-request-id" => {
            "is managed by Envoy (client address, scheme, forwarded certificates, request id)"
        }
        n if n.starts_with("x-envoy-") => "is reserved for Envoy's own use (x-envoy-*)",
        _ => return None,
    })
}

/// RFC 9110 `tchar`.
fn is_token_char(c: char) -> bool {
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
