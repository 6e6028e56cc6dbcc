//! The `x-forwarded-client-cert` header (XFCC) as Envoy writes it
//! (`forward_client_cert_details`, Envoy's "x-forwarded-client-cert" documentation):
//! elements separated by `,`, one per proxy hop, oldest first; in each, `key=value` pairs
//! separated by `;` with the keys `By`, `Hash`, `Cert`, `Chain`, `Subject`, `URI` and `DNS` (one
//! `URI=` or `DNS=` pair per SAN). A value may be quoted (`Subject="CN=a,O=b"`), and inside
//! quotes `\"` is a quote and `\\` a backslash. Keys compare case-insensitively; unknown keys
//! are skipped.
//!
//! The header comes from the request, so it is bounded before anything is built: at most
//! [`MAX_HEADER_BYTES`] bytes and [`MAX_ELEMENTS`] elements. Anything over them, or malformed,
//! is an error the trust stage turns into an ignored header (and says so), never a crash.

/// Longest XFCC header parsed, in bytes (Envoy's own request-header limit is 60 KiB).
pub const MAX_HEADER_BYTES: usize = 64 * 1024;

/// Most elements (proxy hops) parsed.
pub const MAX_ELEMENTS: usize = 16;

/// One element: what a proxy hop said about the client certificate it saw.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct XfccElement {
    /// `By`: the SAN (URI) of the proxy that added the element.
    pub by: String,
    /// `Hash`: the SHA-256 of the client certificate, hex.
    pub hash: String,
    /// `Cert`: the URL-encoded PEM client certificate, when the proxy forwards it.
    pub cert: String,
    /// `Chain`: the URL-encoded PEM client certificate chain, when forwarded.
    pub chain: String,
    /// `Subject`: the client certificate's subject.
    pub subject: String,
    /// `URI`: each URI SAN of the client certificate.
    pub uris: Vec<String>,
    /// `DNS`: each DNS SAN of the client certificate.
    pub dns: Vec<String>,
}

/// Why an XFCC header was not parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum XfccError {
    /// The header is longer than [`MAX_HEADER_BYTES`]; holds its length in bytes.
    #[error("x-forwarded-client-cert is {0} bytes, over the {MAX_HEADER_BYTES}-byte limit")]
    TooLong(usize),
    /// The header has more than [`MAX_ELEMENTS`] elements (proxy hops).
    #[error("x-forwarded-client-cert has more than {MAX_ELEMENTS} elements")]
    TooManyElements,
    /// A quoted value is not closed before the header ends.
    #[error("x-forwarded-client-cert has an unterminated quoted value")]
    UnterminatedQuote,
    /// A `key=value` pair has no `=`; holds the byte offset where the pair starts.
    #[error("x-forwarded-client-cert has a pair without '=' at byte {0}")]
    NoEquals(usize),
    /// Text follows a closing quote before the next `;` or `,`; holds its byte offset.
    #[error("x-forwarded-client-cert has text after a quoted value at byte {0}")]
    AfterQuote(usize),
    /// An element is empty: an empty header, `,,`, or a trailing `,`.
    #[error("x-forwarded-client-cert has an empty element")]
    EmptyElement,
}

/// Parses an XFCC header value into its elements, oldest hop first.
///
/// # Errors
/// Over the limits, an unterminated quote, a pair without `=`, text after a closing quote
/// or an empty element.
pub fn parse(header: &str) -> Result<Vec<XfccElement>, XfccError> {
    if header.len() > MAX_HEADER_BYTES {
        return Err(XfccError::TooLong(header.len()));
    }
    let mut elements = Vec::new();
    let mut element = XfccElement::default();
    let mut pairs_in_element = 0usize;
    let bytes = header.as_bytes();
    let mut at = 0;
    loop {
        // One pair: key '=' value, then ';' (next pair), ',' (next element) or the end.
        at = skip_spaces(bytes, at);
        let key_start = at;
        while at < bytes.len() && !matches!(bytes[at], b'=' | b';' | b',') {
            at += 1;
        }
        if at >= bytes.len() || bytes[at] != b'=' {
            // A pair with no '=': an empty pair is only an empty element (or header).
            if header[key_start..at].trim().is_empty() && pairs_in_element == 0 {
                return Err(XfccError::EmptyElement);
            }
            return Err(XfccError::NoEquals(key_start));
        }
        let key = header[key_start..at].trim();
        at += 1;
        let value;
        if bytes.get(at) == Some(&b'"') {
            let (unquoted, end) = quoted(header, at + 1)?;
            value = unquoted;
            at = skip_spaces(bytes, end);
            if at < bytes.len() && !matches!(bytes[at], b';' | b',') {
                return Err(XfccError::AfterQuote(at));
            }
        } else {
            let start = at;
            while at < bytes.len() && !matches!(bytes[at], b';' | b',') {
                at += 1;
            }
            value = header[start..at].trim().to_owned();
        }
        set(&mut element, key, value);
        pairs_in_element += 1;
        match bytes.get(at) {
            Some(b';') => at += 1,
            Some(b',') => {
                at += 1;
                push(&mut elements, std::mem::take(&mut element))?;
                pairs_in_element = 0;
            }
            _ => {
                push(&mut elements, element)?;
                return Ok(elements);
            }
        }
    }
}

fn push(elements: &mut Vec<XfccElement>, element: XfccElement) -> Result<(), XfccError> {
    if elements.len() >= MAX_ELEMENTS {
        return Err(XfccError::TooManyElements);
    }
    elements.push(element);
    Ok(())
}

fn skip_spaces(bytes: &[u8], mut at: usize) -> usize {
    while bytes.get(at).is_some_and(|b| *b == b' ' || *b == b'\t') {
        at += 1;
    }
    at
}

/// The value of a quoted string starting at byte `start` (after its opening quote), and the
/// byte after its closing quote.
fn quoted(header: &str, start: usize) -> Result<(String, usize), XfccError> {
    let mut value = String::new();
    let mut chars = header[start..].char_indices();
    while let Some((offset, c)) = chars.next() {
        match c {
            '"' => return Ok((value, start + offset + 1)),
            '\\' => match chars.next() {
                Some((_, escaped)) => value.push(escaped),
                None => return Err(XfccError::UnterminatedQuote),
            },
            c => value.push(c),
        }
    }
    Err(XfccError::UnterminatedQuote)
}

fn set(element: &mut XfccElement, key: &str, value: String) {
    if key.eq_ignore_ascii_case("by") {
        element.by = value;
    } else if key.eq_ignore_ascii_case("hash") {
        element.hash = value;
    } else if key.eq_ignore_ascii_case("cert") {
        element.cert = value;
    } else if key.eq_ignore_ascii_case("chain") {
        element.chain = value;
    } else if key.eq_ignore_ascii_case("subject") {
        element.subject = value;
    } else if key.eq_ignore_ascii_case("uri") {
        element.uris.push(value);
    } else if key.eq_ignore_ascii_case("dns") {
        element.dns.push(value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envoy_documentation_examples() {
        // From Envoy's x-forwarded-client-cert documentation.
        let parsed = parse(
            r#"By=http://frontend.lyft.com;Hash=468ed33be74eee6556d90c0149c1309e9ba61d6425303443c0748a02dd8de688;Subject="/C=US/ST=CA/L=San Francisco/OU=Lyft/CN=Test Client";URI=http://testclient.lyft.com"#,
        )
        .unwrap();
        assert_eq!(parsed.len(), 1);
        assert_eq!(parsed[0].by, "http://frontend.lyft.com");
        assert_eq!(
            parsed[0].subject,
            "/C=US/ST=CA/L=San Francisco/OU=Lyft/CN=Test Client"
        );
        assert_eq!(parsed[0].uris, ["http://testclient.lyft.com"]);
        let two = parse(
            r#"By=http://frontend.lyft.com;Hash=468ed33be74eee6556d90c0149c1309e9ba61d6425303443c0748a02dd8de688;URI=http://testclient.lyft.com,By=http://backend.lyft.com;Hash=9ba61d6425303443c0748a02dd8de688468ed33be74eee6556d90c0149c1309e;URI=http://frontend.lyft.com"#,
        )
        .unwrap();
        assert_eq!(two.len(), 2);
        assert_eq!(two[1].by, "http://backend.lyft.com");
        assert_eq!(two[1].uris, ["http://frontend.lyft.com"]);
        let sans = parse(
            r#"By=http://frontend.lyft.com;Hash=468ed33be74eee6556d90c0149c1309e9ba61d6425303443c0748a02dd8de688;Subject="/C=US/ST=CA/L=San Francisco/OU=Lyft/CN=Test Client";URI=http://testclient.lyft.com;DNS=lyft.com;DNS=www.lyft.com"#,
        )
        .unwrap();
        assert_eq!(sans[0].dns, ["lyft.com", "www.lyft.com"]);
    }

    #[test]
    fn quoted_values_keep_separators_and_escapes() {
        let parsed = parse(r#"Subject="CN=a,O=b;c=\"d\" \\ e";uri=spiffe://td/x"#).unwrap();
        assert_eq!(parsed[0].subject, r#"CN=a,O=b;c="d" \ e"#);
        assert_eq!(parsed[0].uris, ["spiffe://td/x"]);
    }

    #[test]
    fn malformed_and_oversized_headers_are_errors() {
        for (header, expected) in [
            (r#"Subject="never closed"#, XfccError::UnterminatedQuote),
            (r#"Subject="a\"#, XfccError::UnterminatedQuote),
            ("URI", XfccError::NoEquals(0)),
            ("By=a;URI", XfccError::NoEquals(5)),
            (r#"Subject="a"b;URI=x"#, XfccError::AfterQuote(11)),
            ("", XfccError::EmptyElement),
            ("By=a,,By=b", XfccError::EmptyElement),
            ("By=a,", XfccError::EmptyElement),
        ] {
            assert_eq!(parse(header), Err(expected), "{header:?}");
        }
        let many = vec!["By=a"; MAX_ELEMENTS + 1].join(",");
        assert_eq!(parse(&many), Err(XfccError::TooManyElements));
        assert!(parse(&vec!["By=a"; MAX_ELEMENTS].join(",")).is_ok());
        let huge = format!("Cert=\"{}\"", "a".repeat(MAX_HEADER_BYTES));
        assert!(matches!(parse(&huge), Err(XfccError::TooLong(_))));
    }
}
