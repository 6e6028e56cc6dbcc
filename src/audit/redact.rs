//! Keeps secrets out of spans, decision-log lines and Warrant's own logs.
//!
//! Audit records hold no request headers besides the request id, so header values can only
//! reach them through text: an evaluation error whose message quotes its input (the policy
//! core already names types instead of operands, but a function's parse error may still
//! echo the string it was given). Before a reason or error leaves through an audit sink, every
//! value of a sensitive header of that request — each of its comma-separated values (repeated
//! headers arrive joined), and every long token inside them, since a rule may have split
//! `Bearer <token>` or a cookie list — is replaced by [`REDACTED`].

use std::borrow::Cow;

use crate::request::AuthzRequest;

/// Headers that are always sensitive, whatever the configuration adds.
pub const ALWAYS_SENSITIVE: [&str; 3] = ["authorization", "proxy-authorization", "cookie"];

/// What a secret is replaced with.
pub const REDACTED: &str = "[redacted]";

/// Tokens inside a sensitive value at least this long are scrubbed on their own. Shorter ones
/// ("Bearer", "Basic", cookie names) are not secrets and would mangle ordinary words.
const MIN_SECRET_TOKEN: usize = 8;

/// A whole value (or comma-separated part) shorter than this is not scrubbed: replacing every
/// "1" of a reason because some `x-api-key: 1` was sent would garble it and protect nothing.
const MIN_SECRET_VALUE: usize = 4;

/// The sensitive header names and the scrubbing they drive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Redactor {
    /// Lower-case header names.
    headers: Vec<String>,
}

impl Default for Redactor {
    fn default() -> Self {
        Self::new(&[])
    }
}

impl Redactor {
    /// [`ALWAYS_SENSITIVE`] plus `extra` (any case).
    pub fn new(extra: &[String]) -> Self {
        let mut headers: Vec<String> = ALWAYS_SENSITIVE.iter().map(|&h| h.to_owned()).collect();
        for name in extra {
            let name = name.to_ascii_lowercase();
            if !headers.contains(&name) {
                headers.push(name);
            }
        }
        Self { headers }
    }

    /// The sensitive header names, lower-case.
    pub fn headers(&self) -> &[String] {
        &self.headers
    }

    /// `text` with the values of `request`'s sensitive headers scrubbed. Borrows `text` when
    /// there is nothing to scrub, which is the usual case.
    pub fn scrub<'t>(&self, text: &'t str, request: &AuthzRequest) -> Cow<'t, str> {
        let Some(http) = &request.http else {
            return Cow::Borrowed(text);
        };
        let mut scrubbed = Cow::Borrowed(text);
        for (name, value) in &http.headers {
            if value.is_empty() || !self.headers.iter().any(|h| h == name) {
                continue;
            }
            // Longest first: the whole value, each of its comma-separated values, then what is
            // left of their long tokens.
            let whole = std::iter::once(value.as_str())
                .chain(value.split(',').map(str::trim))
                .filter(|part| part.len() >= MIN_SECRET_VALUE);
            let tokens = value
                .split(|c: char| c.is_whitespace() || matches!(c, ',' | ';' | '='))
                .filter(|token| token.len() >= MIN_SECRET_TOKEN);
            for secret in whole.chain(tokens) {
                if scrubbed.contains(secret) {
                    scrubbed = Cow::Owned(scrubbed.replace(secret, REDACTED));
                }
            }
        }
        scrubbed
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request::HttpRequest;

    fn request(headers: &[(&str, &str)]) -> AuthzRequest {
        AuthzRequest {
            http: Some(HttpRequest {
                headers: headers
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                    .collect(),
                ..HttpRequest::default()
            }),
            ..AuthzRequest::default()
        }
    }

    #[test]
    fn scrubs_values_and_long_tokens_of_sensitive_headers() {
        let redactor = Redactor::new(&["X-Api-Key".to_owned()]);
        let request = request(&[
            ("authorization", "Bearer eyJhbGciOiJIUzI1NiJ9.payload"),
            ("cookie", "theme=dark; session=0123456789abcdef"),
            ("x-api-key", "k-1234567890,k2-abc"),
            ("proxy-authorization", "1"),
            ("x-env", "production"),
        ]);
        let text = "parse error: \"Bearer eyJhbGciOiJIUzI1NiJ9.payload\"; \
                    token eyJhbGciOiJIUzI1NiJ9.payload; session 0123456789abcdef; \
                    key k-1234567890; second key k2-abc; env production; theme dark; rule 1";
        let scrubbed = redactor.scrub(text, &request);
        for secret in [
            "eyJhbGciOiJIUzI1NiJ9",
            "0123456789abcdef",
            "k-1234567890",
            "k2-abc",
        ] {
            assert!(!scrubbed.contains(secret), "{scrubbed}");
        }
        // Not sensitive, or too short to be a secret on its own.
        assert!(scrubbed.contains("env production"), "{scrubbed}");
        assert!(scrubbed.contains("theme dark"), "{scrubbed}");
        assert!(scrubbed.contains("rule 1"), "{scrubbed}");
    }

    #[test]
    fn borrows_when_nothing_to_scrub() {
        let redactor = Redactor::default();
        let request = request(&[("authorization", "Bearer abcdefghijkl")]);
        assert!(matches!(
            redactor.scrub("no rule failed", &request),
            Cow::Borrowed(_)
        ));
        assert!(matches!(
            redactor.scrub("x", &AuthzRequest::default()),
            Cow::Borrowed(_)
        ));
    }
}
