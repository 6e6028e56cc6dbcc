//! SPIFFE ID parsing, as the SPIFFE ID standard (SPIFFE-ID.md §2) defines it and as go-spiffe
//! enforces it: `spiffe://<trust-domain><path>`.

use std::fmt;

/// The URI scheme of every SPIFFE ID (SPIFFE-ID.md §2.1: lowercase `spiffe`).
const SCHEME_PREFIX: &str = "spiffe://";

/// SPIFFE-ID.md §2.3: SPIFFE IDs are at most 2048 bytes long.
pub const MAX_SPIFFE_ID_LEN: usize = 2048;

/// SPIFFE-ID.md §2.1: a trust domain name is at most 255 bytes long.
pub const MAX_TRUST_DOMAIN_LEN: usize = 255;

/// Why a string is not a SPIFFE ID. The messages follow go-spiffe's wording so operators
/// recognise them.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SpiffeIdError {
    /// The input is empty.
    #[error("cannot be empty")]
    Empty,
    /// The input does not start with `spiffe://` (in lower case).
    #[error("scheme is missing or invalid")]
    WrongScheme,
    /// Nothing comes between `spiffe://` and the path: the trust domain is empty.
    #[error("trust domain is missing")]
    MissingTrustDomain,
    /// The trust domain has a character other than lowercase letters, digits, `.`, `-` and `_`
    /// (SPIFFE ID §2.1).
    #[error(
        "trust domain characters are limited to lowercase letters, numbers, dots, dashes, and underscores"
    )]
    BadTrustDomainChar,
    /// The trust domain is longer than [`MAX_TRUST_DOMAIN_LEN`] bytes (SPIFFE ID §2.1).
    #[error("trust domain is longer than {MAX_TRUST_DOMAIN_LEN} bytes")]
    TrustDomainTooLong,
    /// The path has an empty segment, as in `/a//b` (SPIFFE ID §2.2).
    #[error("path cannot contain empty segments")]
    EmptySegment,
    /// The path has a `.` or `..` segment (SPIFFE ID §2.2).
    #[error("path cannot contain dot segments")]
    DotSegment,
    /// The path ends with `/` (SPIFFE ID §2.2).
    #[error("path cannot have a trailing slash")]
    TrailingSlash,
    /// A path segment has a character other than ASCII letters, digits, `.`, `-` and `_`, such
    /// as `%` (SPIFFE ID §2.2).
    #[error(
        "path segment characters are limited to letters, numbers, dots, dashes, and underscores"
    )]
    BadPathChar,
    /// The whole ID is longer than [`MAX_SPIFFE_ID_LEN`] bytes (SPIFFE ID §2.3).
    #[error("SPIFFE ID is longer than {MAX_SPIFFE_ID_LEN} bytes")]
    TooLong,
}

/// A syntactically valid SPIFFE ID. The path may be empty (the ID of a trust domain itself);
/// [`SpiffeId::is_workload`] tells whether it names a workload.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SpiffeId {
    id: String,
    /// Byte offset in `id` where the path starts (the end of the trust domain).
    path_start: usize,
}

impl SpiffeId {
    /// Parses `input` strictly: lowercase scheme and trust domain, no userinfo/port/query/
    /// fragment, no percent-encoding, no empty, `.` or `..` segments, no trailing slash.
    pub fn parse(input: &str) -> Result<Self, SpiffeIdError> {
        if input.is_empty() {
            return Err(SpiffeIdError::Empty);
        }
        let rest = input
            .strip_prefix(SCHEME_PREFIX)
            .ok_or(SpiffeIdError::WrongScheme)?;
        let td_len = rest.find('/').unwrap_or(rest.len());
        let trust_domain = &rest[..td_len];
        if trust_domain.is_empty() {
            return Err(SpiffeIdError::MissingTrustDomain);
        }
        if !trust_domain.bytes().all(is_trust_domain_byte) {
            return Err(SpiffeIdError::BadTrustDomainChar);
        }
        if trust_domain.len() > MAX_TRUST_DOMAIN_LEN {
            return Err(SpiffeIdError::TrustDomainTooLong);
        }
        validate_path(&rest[td_len..])?;
        if input.len() > MAX_SPIFFE_ID_LEN {
            return Err(SpiffeIdError::TooLong);
        }
        Ok(Self {
            id: input.to_owned(),
            path_start: SCHEME_PREFIX.len() + td_len,
        })
    }

    /// The whole ID, e.g. `spiffe://prod.example.org/ns/shop/sa/frontend`.
    pub fn as_str(&self) -> &str {
        &self.id
    }

    /// The trust domain name, e.g. `prod.example.org`.
    pub fn trust_domain(&self) -> &str {
        &self.id[SCHEME_PREFIX.len()..self.path_start]
    }

    /// The path, e.g. `/ns/shop/sa/frontend`; empty for a trust domain's own ID.
    pub fn path(&self) -> &str {
        &self.id[self.path_start..]
    }

    /// The path's segments, e.g. `["ns", "shop", "sa", "frontend"]`.
    pub fn segments(&self) -> impl Iterator<Item = &str> {
        self.path().split('/').skip(1)
    }

    /// SPIFFE-ID.md §2.2: a workload's ID has a non-empty path; the bare trust domain ID
    /// identifies the trust domain itself and must not be used as a workload identity.
    pub fn is_workload(&self) -> bool {
        !self.path().is_empty()
    }

    /// The Kubernetes namespace and service account when the path has Istio's `/ns/N/sa/S`
    /// shape (exactly four segments).
    pub fn istio_namespace_and_service_account(&self) -> Option<(&str, &str)> {
        // A parsed path has no empty segment (SPIFFE-ID.md §2.2), so `/ns/N/sa/S` is exactly
        // this: read once per rule that asks, without splitting the path into segments.
        let (ns, rest) = self.path().strip_prefix("/ns/")?.split_once('/')?;
        let sa = rest.strip_prefix("sa/")?;
        (!sa.contains('/')).then_some((ns, sa))
    }
}

impl fmt::Display for SpiffeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.id)
    }
}

/// SPIFFE-ID.md §2.1: trust domain names are lowercase letters, digits, `.`, `-` and `_`.
fn is_trust_domain_byte(b: u8) -> bool {
    matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'.' | b'-' | b'_')
}

/// SPIFFE-ID.md §2.2: path segments are letters, digits, `.`, `-` and `_`.
fn is_path_byte(b: u8) -> bool {
    matches!(b, b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'.' | b'-' | b'_')
}

/// Validates a path that is empty or starts with `/` (SPIFFE-ID.md §2.2). Checks run in
/// go-spiffe's order so that the reported error matches it.
fn validate_path(path: &str) -> Result<(), SpiffeIdError> {
    if path.is_empty() {
        return Ok(());
    }
    for segment in path.split('/').skip(1) {
        match segment {
            "" => {
                // go-spiffe reports a lone trailing "/" as a trailing slash, an empty segment
                // anywhere else as an empty segment.
                return Err(if path.ends_with('/') && !path.contains("//") {
                    SpiffeIdError::TrailingSlash
                } else {
                    SpiffeIdError::EmptySegment
                });
            }
            "." | ".." => return Err(SpiffeIdError::DotSegment),
            _ => {
                if !segment.bytes().all(is_path_byte) {
                    return Err(SpiffeIdError::BadPathChar);
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accessors() {
        let id = SpiffeId::parse("spiffe://prod.example.org/ns/shop/sa/frontend").unwrap();
        assert_eq!(id.trust_domain(), "prod.example.org");
        assert_eq!(id.path(), "/ns/shop/sa/frontend");
        assert_eq!(
            id.segments().collect::<Vec<_>>(),
            ["ns", "shop", "sa", "frontend"]
        );
        assert!(id.is_workload());
        assert_eq!(
            id.istio_namespace_and_service_account(),
            Some(("shop", "frontend"))
        );
    }

    #[test]
    fn istio_shape_is_read_as_its_segments_say() {
        for path in [
            "/ns/shop/sa/frontend",
            "/ns/sa/sa/sa",
            "/ns/ns/sa/x",
            "/ns/shop/sa/frontend/x",
            "/ns/shop/sa",
            "/ns/shop/xa/frontend",
            "/ns/shop",
            "/nss/shop/sa/frontend",
            "/x/ns/shop/sa/frontend",
            "/ns/a.b/sa/c-d_e",
            "",
        ] {
            let id = SpiffeId::parse(&format!("spiffe://prod.example.org{path}")).unwrap();
            let segments: Vec<&str> = id.segments().collect();
            let expected = match segments[..] {
                ["ns", ns, "sa", sa] => Some((ns, sa)),
                _ => None,
            };
            assert_eq!(id.istio_namespace_and_service_account(), expected, "{path}");
        }
    }

    #[test]
    fn istio_shape_needs_exactly_four_segments() {
        for s in [
            "spiffe://td/ns/shop/sa",
            "spiffe://td/ns/shop/sa/frontend/extra",
            "spiffe://td/ns/shop/xx/frontend",
            "spiffe://td",
        ] {
            let id = SpiffeId::parse(s).unwrap();
            assert_eq!(id.istio_namespace_and_service_account(), None, "{s}");
        }
    }

    #[test]
    fn trust_domain_id_is_not_a_workload() {
        let id = SpiffeId::parse("spiffe://prod.example.org").unwrap();
        assert!(!id.is_workload());
        assert_eq!(id.segments().count(), 0);
    }

    #[test]
    fn length_limits() {
        let td = "a".repeat(255);
        assert!(SpiffeId::parse(&format!("spiffe://{td}/x")).is_ok());
        let td = "a".repeat(256);
        assert_eq!(
            SpiffeId::parse(&format!("spiffe://{td}/x")),
            Err(SpiffeIdError::TrustDomainTooLong)
        );
        let ok = format!("spiffe://td/{}", "a".repeat(MAX_SPIFFE_ID_LEN - 12));
        assert_eq!(ok.len(), MAX_SPIFFE_ID_LEN);
        assert!(SpiffeId::parse(&ok).is_ok());
        let long = format!("{ok}a");
        assert_eq!(SpiffeId::parse(&long), Err(SpiffeIdError::TooLong));
    }

    #[test]
    fn rejects_uri_decorations() {
        for s in [
            "spiffe://user@td/path",
            "spiffe://td:443/path",
            "spiffe://td/path?query",
            "spiffe://td/path#frag",
            " spiffe://td/path",
            "spiffe://td/path ",
        ] {
            assert!(SpiffeId::parse(s).is_err(), "{s}");
        }
    }
}
