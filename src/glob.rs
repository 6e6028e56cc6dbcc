//! Glob patterns over `/`-separated text (paths, SPIFFE IDs): in a pattern, `*` matches any
//! run of characters within one segment (none included), a segment that is exactly `**`
//! matches any number of whole segments (none included), and every other character stands for
//! itself — no escaping, no `?`, no character class. So `/payments/**` matches `/payments`,
//! `/payments/` and `/payments/a/b`, and `spiffe://prod.example.org/ns/*/sa/frontend` matches
//! every namespace's `frontend` service account.
//!
//! Matching takes time proportional to the text times the pattern at worst (no exponential
//! backtracking: only the last `**` is ever revisited) and allocates nothing. Used by the CEL
//! `glob` function, `tls.allowed_callers` and `trust.revoked`.

/// A compiled glob pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Glob {
    segments: Vec<Segment>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    /// `**`: any number of whole segments.
    Any,
    /// The segment's text split at each `*` (one part when it has none).
    Parts(Vec<String>),
}

impl Glob {
    /// Compiles `pattern`.
    ///
    /// # Errors
    /// A `**` that is not a whole segment (`/a**`, `/***/`): write `*` within a segment.
    pub fn new(pattern: &str) -> Result<Self, String> {
        let segments = pattern
            .split('/')
            .map(|segment| {
                if segment == "**" {
                    Ok(Segment::Any)
                } else if segment.contains("**") {
                    Err(format!(
                        "\"**\" must be a whole segment (\"/a/**/b\"), not part of {segment:?}; use \"*\" to match within a segment"
                    ))
                } else {
                    Ok(Segment::Parts(
                        segment.split('*').map(str::to_owned).collect(),
                    ))
                }
            })
            .collect::<Result<_, _>>()?;
        Ok(Self { segments })
    }

    /// Whether all of `text` matches.
    pub fn matches(&self, text: &str) -> bool {
        let pattern = &self.segments;
        // `p`: the pattern segment to match next; `t`: the start of the text segment to
        // match next, `None` once the text is used up; `star`: where to resume when the
        // last `**` seen absorbs one more segment.
        let (mut p, mut t) = (0, Some(0));
        let mut star: Option<(usize, usize)> = None;
        loop {
            let Some(start) = t else {
                return pattern[p..].iter().all(|s| *s == Segment::Any);
            };
            let (segment, next) = segment_at(text, start);
            match pattern.get(p) {
                Some(Segment::Any) => {
                    star = Some((p + 1, start));
                    p += 1;
                    continue;
                }
                Some(Segment::Parts(parts)) if matches_segment(parts, segment) => {
                    p += 1;
                    t = next;
                    continue;
                }
                _ => {}
            }
            let Some((resume, absorbed)) = star else {
                return false;
            };
            // The `**` takes the segment at `absorbed` too; the pattern after it restarts on
            // the segment after that.
            let after = segment_at(text, absorbed).1;
            if let Some(after) = after {
                star = Some((resume, after));
            }
            p = resume;
            t = after;
        }
    }
}

/// The segment of `text` starting at byte `start`, and where the next one starts.
fn segment_at(text: &str, start: usize) -> (&str, Option<usize>) {
    let rest = text.get(start..).unwrap_or_default();
    match rest.find('/') {
        Some(slash) => (&rest[..slash], Some(start + slash + 1)),
        None => (rest, None),
    }
}

/// Whether `segment` matches the parts of one pattern segment (`*` between each two).
fn matches_segment(parts: &[String], segment: &str) -> bool {
    let [first, middle @ .., last] = parts else {
        return parts.first().is_some_and(|only| only == segment);
    };
    let Some(mut rest) = segment.strip_prefix(first.as_str()) else {
        return false;
    };
    for part in middle {
        match rest.find(part.as_str()) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    rest.ends_with(last.as_str())
}

#[cfg(test)]
mod tests {
    use super::Glob;

    fn glob(pattern: &str, text: &str) -> bool {
        Glob::new(pattern).expect("valid pattern").matches(text)
    }

    #[test]
    fn double_star_matches_whole_segments_including_none() {
        for text in ["/payments", "/payments/", "/payments/42", "/payments/a/b/c"] {
            assert!(glob("/payments/**", text), "{text}");
        }
        for text in [
            "/payment",
            "/paymentsx",
            "/payments-admin/1",
            "payments/1",
            "",
        ] {
            assert!(!glob("/payments/**", text), "{text}");
        }
        assert!(glob("/a/**/b", "/a/b"));
        assert!(glob("/a/**/b", "/a/x/y/b"));
        assert!(!glob("/a/**/b", "/a/x/y/bc"));
        assert!(glob("**", ""));
        assert!(glob("**", "/any/thing"));
        assert!(glob("/**/admin", "/x/y/admin"));
        assert!(glob("/a/**/**/b", "/a/b"));
        assert!(glob("/a/**/b/**/c", "/a/b/x/b/y/c"));
        assert!(!glob("/a/**/b/**/c", "/a/b/x/b/y/d"));
    }

    #[test]
    fn star_stays_within_one_segment() {
        let id = "spiffe://prod.example.org/ns/*/sa/frontend";
        assert!(glob(id, "spiffe://prod.example.org/ns/shop/sa/frontend"));
        assert!(!glob(id, "spiffe://prod.example.org/ns/a/b/sa/frontend"));
        assert!(!glob(id, "spiffe://prod.example.org/ns/shop/sa/frontend2"));
        assert!(glob("/v*/users", "/v1/users"));
        assert!(glob("/v*/users", "/v/users"));
        assert!(!glob("/v*/users", "/v1/x/users"));
        assert!(glob("/*.json", "/a.b.json"));
        assert!(!glob("/*.json", "/a.jsonx"));
        assert!(glob("/a*b*c", "/abbc"));
        assert!(!glob("/a*bc*c", "/abc"));
        assert!(glob("/*", "/"));
        assert!(!glob("/*", "/a/b"));
    }

    #[test]
    fn everything_else_is_literal() {
        assert!(glob("/a?b", "/a?b"));
        assert!(!glob("/a?b", "/axb"));
        assert!(glob("/[x]", "/[x]"));
        assert!(!glob("/[x]", "/x"));
        assert!(glob("", ""));
        assert!(!glob("", "/"));
        assert!(glob("/é/*", "/é/ü"));
    }

    #[test]
    fn double_star_inside_a_segment_is_refused() {
        for pattern in ["/a**", "/**b/c", "/***", "x/a**b"] {
            assert!(Glob::new(pattern).is_err(), "{pattern}");
        }
    }

    #[test]
    fn long_inputs_stay_linear_enough() {
        // Many `**` against a long non-matching text: the last `**` alone backtracks.
        let pattern = "/**/a".repeat(50);
        let text = "/a".repeat(5000) + "/b";
        assert!(!glob(&pattern, &text));
    }
}
