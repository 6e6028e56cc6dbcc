//! The caller's trace context: W3C Trace Context (`traceparent`, `tracestate`) or B3 (multi-
//! header `x-b3-*` or single `b3`), read from the Check call's gRPC metadata — where Envoy's
//! tracer injects it for the ext_authz call's own span — or, failing that, from the HTTP
//! request headers inside the CheckRequest.

/// A remote parent span.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceParent {
    /// The caller's trace id (16 bytes, never all zero).
    pub trace_id: [u8; 16],
    /// The caller's span id (8 bytes, never all zero): the parent of Warrant's span.
    pub span_id: [u8; 8],
    /// The caller's sampling decision; `None` when it deferred it (B3 without a sampling
    /// state), and Warrant's own `sample_ratio` decides.
    pub sampled: Option<bool>,
    /// W3C `tracestate`, passed on verbatim (empty for B3).
    pub trace_state: String,
}

impl TraceParent {
    /// Whether a header called `name` (lower case) can carry trace context: `traceparent`,
    /// `b3` or `x-b3-*`. A request with none of them has no parent to [`TraceParent::extract`].
    pub fn is_trace_header(name: &str) -> bool {
        name == "traceparent" || name == "b3" || name.starts_with("x-b3-")
    }

    /// Reads W3C first, then B3 (single `b3` header, then `x-b3-*`), from a header lookup
    /// (names are lower-case). Malformed or all-zero ids are ignored.
    pub fn extract<'a>(get: impl Fn(&str) -> Option<&'a str>) -> Option<Self> {
        if let Some(parent) = get("traceparent").and_then(parse_traceparent) {
            return Some(Self {
                trace_state: get("tracestate").unwrap_or("").to_owned(),
                ..parent
            });
        }
        if let Some(parent) = get("b3").and_then(parse_b3_single) {
            return Some(parent);
        }
        // B3 multi-header: `x-b3-flags: 1` is debug, which implies sampled.
        let sampled = match (get("x-b3-flags"), get("x-b3-sampled")) {
            (Some("1"), _) => Some(true),
            (_, Some(s)) if s == "1" || s.eq_ignore_ascii_case("true") => Some(true),
            (_, Some(s)) if s == "0" || s.eq_ignore_ascii_case("false") => Some(false),
            _ => None,
        };
        valid_ids(Self {
            trace_id: b3_trace_id(get("x-b3-traceid")?)?,
            span_id: hex_array(get("x-b3-spanid")?)?,
            sampled,
            trace_state: String::new(),
        })
    }
}

/// `version-traceid-spanid-flags` (W3C Trace Context §3.2). Version `ff` and all-zero ids
/// are invalid; future versions may append fields after the flags.
fn parse_traceparent(value: &str) -> Option<TraceParent> {
    // Fixed widths: `vv-` + 32 + `-` + 16 + `-` + `ff`, then nothing (version 00) or `-` and
    // a future version's fields. Lower-case hex only in the ids (§3.2.2.3, §3.2.2.4).
    let value = value.trim().as_bytes();
    let (head, rest) = value.split_at_checked(55)?;
    let [v0, v1, b'-', ids @ .., b'-', f0, f1] = head else {
        return None;
    };
    let (trace_id, ids) = ids.split_at(32);
    let [b'-', span_id @ ..] = ids else {
        return None;
    };
    let [version] = hex_bytes::<1>(&[*v0, *v1], true)?;
    if version == 0xff
        || (version == 0 && !rest.is_empty())
        || rest.first().is_some_and(|b| *b != b'-')
    {
        return None;
    }
    let [flags] = hex_bytes::<1>(&[*f0, *f1], true)?;
    let parent = TraceParent {
        trace_id: hex_bytes(trace_id, false)?,
        span_id: hex_bytes(span_id, false)?,
        sampled: Some(flags & 1 == 1),
        trace_state: String::new(),
    };
    valid_ids(parent)
}

/// `b3: {traceid}-{spanid}[-{sampling}[-{parentspanid}]]`, sampling `1`, `0` or `d` (debug,
/// which implies sampled). A lone `0`/`1`/`d` carries no parent.
fn parse_b3_single(value: &str) -> Option<TraceParent> {
    let mut parts = value.trim().split('-');
    let trace_id = parts.next()?;
    let span_id = parts.next()?;
    let sampled = match parts.next() {
        None => None,
        Some("1" | "d") => Some(true),
        Some("0") => Some(false),
        Some(_) => return None,
    };
    // An optional parent span id, then nothing.
    if let Some(parent) = parts.next() {
        hex_array::<8>(parent)?;
    }
    if parts.next().is_some() {
        return None;
    }
    valid_ids(TraceParent {
        trace_id: b3_trace_id(trace_id)?,
        span_id: hex_array(span_id)?,
        sampled,
        trace_state: String::new(),
    })
}

/// B3 trace ids are 64 or 128 bits; a 64-bit id is left-padded with zeros.
fn b3_trace_id(hex: &str) -> Option<[u8; 16]> {
    match hex.len() {
        32 => hex_array(hex),
        16 => {
            let low: [u8; 8] = hex_array(hex)?;
            let mut id = [0u8; 16];
            id[8..].copy_from_slice(&low);
            Some(id)
        }
        _ => None,
    }
}

fn valid_ids(parent: TraceParent) -> Option<TraceParent> {
    (parent.trace_id != [0; 16] && parent.span_id != [0; 8]).then_some(parent)
}

/// `hex` (exactly `2 * N` hex digits, either case) as `N` bytes.
fn hex_array<const N: usize>(hex: &str) -> Option<[u8; N]> {
    hex_bytes(hex.as_bytes(), true)
}

/// `digits` (exactly `2 * N` hex digits; upper case only when `upper_too`) as `N` bytes.
fn hex_bytes<const N: usize>(digits: &[u8], upper_too: bool) -> Option<[u8; N]> {
    let nibble = |digit: u8| match digit {
        b'0'..=b'9' => Some(digit - b'0'),
        b'a'..=b'f' => Some(digit - b'a' + 10),
        b'A'..=b'F' if upper_too => Some(digit - b'A' + 10),
        _ => None,
    };
    if digits.len() != N * 2 {
        return None;
    }
    let mut out = [0u8; N];
    for (byte, pair) in out.iter_mut().zip(digits.chunks_exact(2)) {
        let &[high, low] = pair else { return None };
        *byte = (nibble(high)? << 4) | nibble(low)?;
    }
    Some(out)
}

/// Lower-case hex of `bytes`.
pub fn to_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut hex = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        hex.push(char::from(DIGITS[usize::from(b >> 4)]));
        hex.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    hex
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `parse_traceparent` as it was written first, part by part: the oracle.
    fn traceparent_by_parts(value: &str) -> Option<TraceParent> {
        let mut parts = value.trim().split('-');
        let version = parts.next()?;
        let trace_id = parts.next()?;
        let span_id = parts.next()?;
        let flags = parts.next()?;
        if version.len() != 2
            || version.eq_ignore_ascii_case("ff")
            || hex_array::<1>(version).is_none()
        {
            return None;
        }
        if version == "00" && parts.next().is_some() {
            return None;
        }
        let lower = |s: &str| {
            s.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        };
        if !lower(trace_id) || !lower(span_id) || flags.len() != 2 {
            return None;
        }
        let [flags] = hex_array::<1>(flags)?;
        valid_ids(TraceParent {
            trace_id: hex_array(trace_id)?,
            span_id: hex_array(span_id)?,
            sampled: Some(flags & 1 == 1),
            trace_state: String::new(),
        })
    }

    proptest::proptest! {
        #[test]
        fn traceparent_is_read_as_its_parts_say(
            version in "(00|01|0A|ff|FF|fe|0g|0)",
            trace in "([0-9a-f]{32}|[0-9A-F]{32}|0{32}|[0-9a-f]{31}|[0-9a-f]{33})",
            span in "([0-9a-f]{16}|[0-9a-fA-F]{16}|0{16}|[0-9a-f]{15})",
            flags in "(00|01|0F|ff|1|001|zz)",
            tail in "(|-|-x|-0-1|x|  )",
            pad in "( |\\t|)",
        ) {
            let value = format!("{pad}{version}-{trace}-{span}-{flags}{tail}{pad}");
            proptest::prop_assert_eq!(parse_traceparent(&value), traceparent_by_parts(&value), "{}", value);
        }

        #[test]
        fn any_text_is_read_as_its_parts_say(value in "\\PC{0,70}") {
            proptest::prop_assert_eq!(parse_traceparent(&value), traceparent_by_parts(&value));
        }
    }

    fn lookup<'a>(headers: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<&'a str> {
        move |name| headers.iter().find(|(k, _)| *k == name).map(|(_, v)| *v)
    }

    #[test]
    fn without_a_trace_header_there_is_nothing_to_extract() {
        // What extract looks up when nothing is found: each name is a trace header, so a
        // request whose names are none of them can skip extract.
        let asked = std::cell::RefCell::new(Vec::new());
        let parent = TraceParent::extract(|name| {
            asked.borrow_mut().push(name.to_owned());
            None
        });
        assert_eq!(parent, None);
        let asked = asked.into_inner();
        assert!(asked.len() >= 5, "{asked:?}");
        for name in &asked {
            assert!(TraceParent::is_trace_header(name), "{name}");
        }
        for name in ["tracestate", "x-request-id", "b3x", "grpc-timeout"] {
            assert!(!TraceParent::is_trace_header(name), "{name}");
        }
    }

    #[test]
    fn w3c() {
        let p = TraceParent::extract(lookup(&[
            (
                "traceparent",
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            ),
            ("tracestate", "congo=t61rcWkgMzE"),
        ]))
        .unwrap();
        assert_eq!(to_hex(&p.trace_id), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(to_hex(&p.span_id), "00f067aa0ba902b7");
        assert_eq!(p.sampled, Some(true));
        assert_eq!(p.trace_state, "congo=t61rcWkgMzE");
        let unsampled = TraceParent::extract(lookup(&[(
            "traceparent",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00",
        )]))
        .unwrap();
        assert_eq!(unsampled.sampled, Some(false));
    }

    #[test]
    fn w3c_invalid() {
        for bad in [
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-+0f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-+1",
            "+0-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "garbage",
        ] {
            assert_eq!(
                TraceParent::extract(lookup(&[("traceparent", bad)])),
                None,
                "{bad}"
            );
        }
        // A future version may append fields.
        assert!(
            TraceParent::extract(lookup(&[(
                "traceparent",
                "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra"
            )]))
            .is_some()
        );
    }

    #[test]
    fn b3_multi_and_single() {
        let p = TraceParent::extract(lookup(&[
            ("x-b3-traceid", "463ac35c9f6413ad"),
            ("x-b3-spanid", "a2fb4a1d1a96d312"),
            ("x-b3-sampled", "0"),
        ]))
        .unwrap();
        assert_eq!(to_hex(&p.trace_id), "0000000000000000463ac35c9f6413ad");
        assert_eq!(to_hex(&p.span_id), "a2fb4a1d1a96d312");
        assert_eq!(p.sampled, Some(false));
        let p = TraceParent::extract(lookup(&[(
            "b3",
            "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1-05e3ac9a4f6e3b90",
        )]))
        .unwrap();
        assert_eq!(to_hex(&p.trace_id), "80f198ee56343ba864fe8b2a57d3eff7");
        assert_eq!(to_hex(&p.span_id), "e457b5a2e4d86bd1");
        assert_eq!(p.sampled, Some(true));
        assert_eq!(TraceParent::extract(lookup(&[("b3", "0")])), None);
    }

    #[test]
    fn b3_sampling_states() {
        let ids = [
            ("x-b3-traceid", "463ac35c9f6413ad48485a3953bb6124"),
            ("x-b3-spanid", "a2fb4a1d1a96d312"),
        ];
        let multi = |extra: &[(&'static str, &'static str)]| {
            let headers: Vec<_> = ids.iter().chain(extra).copied().collect();
            TraceParent::extract(lookup(&headers)).map(|p| p.sampled)
        };
        // No sampling state: deferred to Warrant's sample_ratio.
        assert_eq!(multi(&[]), Some(None));
        assert_eq!(multi(&[("x-b3-sampled", "true")]), Some(Some(true)));
        assert_eq!(
            multi(&[("x-b3-flags", "1"), ("x-b3-sampled", "0")]),
            Some(Some(true))
        );
        let single =
            |value: &str| TraceParent::extract(lookup(&[("b3", value)])).map(|p| p.sampled);
        assert_eq!(
            single("80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1"),
            Some(None)
        );
        assert_eq!(
            single("80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-d"),
            Some(Some(true))
        );
        assert_eq!(
            single("80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-0"),
            Some(Some(false))
        );
        assert_eq!(
            single("80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-x"),
            None
        );
    }

    #[test]
    fn b3_invalid_ids() {
        for (trace, span) in [
            ("00000000000000000000000000000000", "a2fb4a1d1a96d312"),
            ("463ac35c9f6413ad48485a3953bb6124", "0000000000000000"),
            ("463ac35c9f6413ad48485a3953bb6124", "+2fb4a1d1a96d312"),
            ("463ac35c9f6413ad", "a2fb4a1d1a96d31"),
        ] {
            let headers = [("x-b3-traceid", trace), ("x-b3-spanid", span)];
            assert_eq!(
                TraceParent::extract(lookup(&headers)),
                None,
                "{trace} {span}"
            );
        }
        // A malformed single header does not hide valid multi headers.
        let headers = [
            ("b3", "garbage"),
            ("x-b3-traceid", "463ac35c9f6413ad48485a3953bb6124"),
            ("x-b3-spanid", "a2fb4a1d1a96d312"),
        ];
        assert!(TraceParent::extract(lookup(&headers)).is_some());
    }

    #[test]
    fn w3c_wins_over_b3() {
        let p = TraceParent::extract(lookup(&[
            ("x-b3-traceid", "463ac35c9f6413ad"),
            ("x-b3-spanid", "a2fb4a1d1a96d312"),
            (
                "traceparent",
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            ),
        ]))
        .unwrap();
        assert_eq!(to_hex(&p.span_id), "00f067aa0ba902b7");
    }
}
