//! The `x-forwarded-client-cert` parser on the exact strings Envoy 1.40 writes
//! (tests/fixtures/xfcc/, captured from the two-hop end-to-end setup), and properties: it never
//! panics, its cost is bounded, and what Envoy's quoting writes it reads back.

// Test code: a failed unwrap, expect or assertion is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use proptest::prelude::*;
use warrant::identity::xfcc::{self, MAX_ELEMENTS, MAX_HEADER_BYTES, XfccElement};

const GATEWAY: &str = "spiffe://prod.example.org/ns/istio-system/sa/ingressgateway";
const SIDECAR: &str = "spiffe://prod.example.org/ns/shop/sa/payments";
const FRONTEND: &str = "spiffe://prod.example.org/ns/shop/sa/frontend";

fn captured(name: &str) -> Vec<XfccElement> {
    let path = format!("{}/tests/fixtures/xfcc/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    xfcc::parse(text.trim_end_matches('\n')).unwrap_or_else(|e| panic!("{name}: {e}"))
}

#[test]
fn sanitize_set_from_the_gateway() {
    let elements = captured("envoy-1.40-sanitize-set.txt");
    let [element] = elements.as_slice() else {
        panic!("{elements:?}")
    };
    assert_eq!(element.by, GATEWAY);
    assert_eq!(element.hash.len(), 64);
    assert_eq!(element.subject, "O=Warrant demo");
    assert_eq!(element.uris, vec![FRONTEND.to_owned()]);
    assert!(element.dns.is_empty() && element.cert.is_empty());
}

#[test]
fn append_forward_at_the_sidecar_adds_its_own_element_last() {
    let elements = captured("envoy-1.40-append-forward.txt");
    assert_eq!(elements.len(), 2);
    assert_eq!(elements[0], captured("envoy-1.40-sanitize-set.txt")[0]);
    assert_eq!(elements[1].by, SIDECAR);
    assert_eq!(elements[1].uris, vec![GATEWAY.to_owned()]);
    assert_eq!(elements[1].dns, vec!["localhost".to_owned()]);
}

#[test]
fn a_client_without_a_uri_san_gets_an_empty_uri() {
    let elements = captured("envoy-1.40-dns-only.txt");
    assert_eq!(elements[0].dns, vec!["frontend.shop.svc".to_owned()]);
    assert!(
        elements[0].uris.iter().all(String::is_empty),
        "{:?}",
        elements[0].uris
    );
}

#[test]
fn a_direct_call_carries_only_the_sidecars_element() {
    let elements = captured("envoy-1.40-local.txt");
    assert_eq!(elements.len(), 1);
    assert_eq!(elements[0].by, SIDECAR);
}

/// Writes a value as Envoy does: quoted (with `"` and `\` escaped) when it holds `,`, `;`,
/// `=` or `"` (Envoy always quotes Subject; quoting more is allowed).
fn envoy_value(value: &str, force_quotes: bool) -> String {
    if force_quotes || value.contains([',', ';', '=', '"', '\\']) || value.trim() != value {
        format!("\"{}\"", value.replace('\\', "\\\\").replace('"', "\\\""))
    } else {
        value.to_owned()
    }
}

fn arb_text() -> impl Strategy<Value = String> {
    // Printable ASCII with the separators, quotes and escapes Envoy values may hold.
    proptest::string::string_regex("[ -~]{0,40}").unwrap_or_else(|e| panic!("{e}"))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn parsing_never_panics(header in "\\PC{0,300}") {
        let _ = xfcc::parse(&header);
    }

    #[test]
    fn near_misses_never_panic(
        parts in proptest::collection::vec(
            prop_oneof![
                Just("By=".to_owned()), Just("URI=".to_owned()), Just(";".to_owned()),
                Just(",".to_owned()), Just("\"".to_owned()), Just("\\".to_owned()),
                Just("=".to_owned()), Just(" ".to_owned()), Just("é".to_owned()), arb_text(),
            ],
            0..60,
        )
    ) {
        let header: String = parts.concat();
        if let Ok(elements) = xfcc::parse(&header) {
            prop_assert!(!elements.is_empty() && elements.len() <= MAX_ELEMENTS);
        }
    }

    #[test]
    fn what_envoy_writes_reads_back(
        elements in proptest::collection::vec(
            (arb_text(), "[0-9a-f]{64}", arb_text(), proptest::collection::vec(arb_text(), 0..3),
             proptest::collection::vec("[a-z.]{1,20}", 0..3), any::<bool>()),
            1..MAX_ELEMENTS,
        )
    ) {
        let header = elements
            .iter()
            .map(|(by, hash, subject, uris, dns, quote)| {
                let mut pairs = vec![
                    format!("By={}", envoy_value(by, *quote)),
                    format!("Hash={hash}"),
                    format!("Subject={}", envoy_value(subject, true)),
                ];
                pairs.extend(uris.iter().map(|u| format!("URI={}", envoy_value(u, *quote))));
                pairs.extend(dns.iter().map(|d| format!("DNS={d}")));
                pairs.join(";")
            })
            .collect::<Vec<_>>()
            .join(",");
        let parsed = xfcc::parse(&header).map_err(|e| TestCaseError::fail(format!("{e}: {header}")))?;
        prop_assert_eq!(parsed.len(), elements.len());
        for (got, (by, hash, subject, uris, dns, _)) in parsed.iter().zip(&elements) {
            prop_assert_eq!(&got.by, by);
            prop_assert_eq!(&got.hash, hash);
            prop_assert_eq!(&got.subject, subject);
            prop_assert_eq!(&got.uris, uris);
            prop_assert_eq!(&got.dns, dns);
        }
    }
}

#[test]
fn oversized_headers_are_refused_before_any_work() {
    let huge = "a".repeat(MAX_HEADER_BYTES + 1);
    assert!(xfcc::parse(&huge).is_err());
    let many = vec![format!("By={SIDECAR}"); MAX_ELEMENTS + 1].join(",");
    assert!(xfcc::parse(&many).is_err());
}
