//! Property tests of pure helpers (issue 10 §4): glob matching, CIDR matching through the CEL
//! function rules use, and redaction of sensitive header values.

// Test code: a failed unwrap, expect or assertion is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::SystemTime;

use proptest::prelude::*;
use warrant::audit::Redactor;
use warrant::glob::Glob;
use warrant::policy::Verdict;
use warrant::request::{AuthzRequest, HttpRequest};

fn segment() -> impl Strategy<Value = String> {
    "[a-z0-9.-]{0,6}"
}

fn path() -> impl Strategy<Value = Vec<String>> {
    proptest::collection::vec(segment(), 1..7)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(500))]

    /// Without `*`, a pattern matches exactly the text it spells.
    #[test]
    fn a_literal_glob_matches_only_itself(pattern in path(), text in path()) {
        let (pattern, text) = (pattern.join("/"), text.join("/"));
        let glob = Glob::new(&pattern).unwrap();
        prop_assert_eq!(glob.matches(&text), pattern == text);
        prop_assert!(glob.matches(&pattern));
    }

    /// `*` in place of one segment, or of a part of one, still matches the text.
    #[test]
    fn a_star_matches_within_one_segment(text in path(), at in any::<prop::sample::Index>(), keep in 0usize..4) {
        let i = at.index(text.len());
        let mut pattern = text.clone();
        let kept: String = text[i].chars().take(keep).collect();
        pattern[i] = format!("{kept}*");
        let glob = Glob::new(&pattern.join("/")).unwrap();
        prop_assert!(glob.matches(&text.join("/")), "{} !~ {}", pattern.join("/"), text.join("/"));
        // But never across a `/`: one more segment in the text is one too many.
        let mut longer = text.clone();
        longer.insert(i + 1, "extra".to_owned());
        prop_assert!(!glob.matches(&longer.join("/")), "{} ~ {}", pattern.join("/"), longer.join("/"));
    }

    /// `**` in place of any run of whole segments (none included) still matches the text.
    #[test]
    fn a_double_star_matches_any_run_of_segments(text in path(), from in any::<prop::sample::Index>(), len in 0usize..4) {
        let start = from.index(text.len());
        let end = (start + len).min(text.len());
        let mut pattern: Vec<String> = text[..start].to_vec();
        pattern.push("**".to_owned());
        pattern.extend_from_slice(&text[end..]);
        let glob = Glob::new(&pattern.join("/")).unwrap();
        prop_assert!(glob.matches(&text.join("/")), "{} !~ {}", pattern.join("/"), text.join("/"));
    }

    /// Any pattern and text: an answer or a load error, never a panic.
    #[test]
    fn globs_never_panic(pattern in "[a-z*/]{0,30}", text in "[a-z/]{0,40}") {
        if let Ok(glob) = Glob::new(&pattern) {
            let _ = glob.matches(&text);
        }
    }

    /// A sensitive header's long token never survives in a scrubbed text, wherever it is.
    #[test]
    fn redaction_removes_every_secret(
        secret in "[A-Za-z0-9_-]{8,40}",
        before in "[ -~]{0,30}",
        after in "[ -~]{0,30}",
        header in prop_oneof![Just("authorization"), Just("cookie"), Just("x-api-key")],
    ) {
        let value = match header {
            "authorization" => format!("Bearer {secret}"),
            "cookie" => format!("session={secret}; theme=dark"),
            _ => secret.clone(),
        };
        let request = AuthzRequest {
            http: Some(HttpRequest {
                headers: vec![(header.to_owned(), value)],
                ..HttpRequest::default()
            }),
            ..AuthzRequest::default()
        };
        let text = format!("{before}{secret}{after}");
        let scrubbed = Redactor::new(&["X-Api-Key".to_owned()]).scrub(&text, &request);
        prop_assert!(!scrubbed.contains(&secret), "{} kept {}", scrubbed, secret);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// `in_cidr` agrees with `ipnet`'s containment, IPv4 and IPv6, for ranges with host bits set
    /// too (Envoy's CidrRange: the range's network).
    #[test]
    fn in_cidr_agrees_with_ipnet(
        v4 in any::<bool>(),
        network in any::<u128>(),
        prefix in any::<u8>(),
        address in any::<u128>(),
        near in any::<bool>(),
    ) {
        let (range, ip): (ipnet::IpNet, std::net::IpAddr) = if v4 {
            let prefix = prefix % 33;
            let network = std::net::Ipv4Addr::from(network as u32);
            let ip = if near { u32::from(network) ^ (address as u32 & 0xff) } else { address as u32 };
            (ipnet::Ipv4Net::new(network, prefix).unwrap().into(), std::net::Ipv4Addr::from(ip).into())
        } else {
            let prefix = prefix % 129;
            let network = std::net::Ipv6Addr::from(network);
            let ip = if near { u128::from(network) ^ (address & 0xffff) } else { address };
            (ipnet::Ipv6Net::new(network, prefix).unwrap().into(), std::net::Ipv6Addr::from(ip).into())
        };
        let policy = common::policy::compile(&format!(
            "  - id: inside\n    effect: allow\n    when: in_cidr(source.address, \"{range}\")\n"
        ));
        let mut request = common::policy::request(common::policy::FRONTEND, "GET", "/");
        request.source.address = ip.to_string();
        let decision = policy.decide(&request, SystemTime::now());
        let expected = range.trunc().contains(&ip);
        prop_assert_eq!(decision.verdict == Verdict::Allow, expected, "{} in {}: {}", ip, range, decision.reason);
    }
}
