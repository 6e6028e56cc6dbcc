//! go-spiffe's SPIFFE ID vectors (`../shared/conformance/spiffe-id-vectors.tsv`, vendored in
//! `tests/conformance/`), plus the 0–255 character loops the file describes.

// Test code: a failed unwrap, expect or assertion is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;

use warrant::identity::SpiffeId;

fn vectors() -> String {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let shared = root.join("../shared/conformance/spiffe-id-vectors.tsv");
    let vendored = root.join("tests/conformance/spiffe-id-vectors.tsv");
    let vendored_text = std::fs::read_to_string(&vendored).unwrap();
    if let Ok(shared_text) = std::fs::read_to_string(&shared) {
        assert_eq!(
            shared_text, vendored_text,
            "tests/conformance is out of date with ../shared/conformance: copy it again"
        );
    }
    vendored_text
}

#[test]
fn go_spiffe_vectors() {
    let mut checked = 0;
    for line in vectors().lines() {
        if line.starts_with('#') || line.trim().is_empty() && !line.starts_with('\t') {
            continue;
        }
        let mut columns = line.split('\t');
        let input = columns.next().unwrap();
        let expected = columns.next().unwrap();
        let message = columns.next().unwrap_or("");
        let result = SpiffeId::parse(input);
        match expected {
            "valid" => {
                let id = result.unwrap_or_else(|e| panic!("{input:?} should be valid: {e}"));
                assert_eq!(id.as_str(), input);
            }
            "invalid" => {
                let error = result.expect_err(input).to_string();
                assert!(
                    error.contains(message),
                    "{input:?}: got {error:?}, want {message:?}"
                );
            }
            other => panic!("bad vector column {other:?}"),
        }
        checked += 1;
    }
    assert!(checked >= 29, "only {checked} vectors read");
}

#[test]
fn path_character_loop() {
    for code in 0u32..=255 {
        let c = char::from_u32(code).unwrap();
        if c == '/' {
            continue;
        }
        let input = format!("spiffe://trustdomain/path{c}");
        let valid = c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
        let result = SpiffeId::parse(&input);
        assert_eq!(result.is_ok(), valid, "{input:?}: {result:?}");
        if !valid {
            assert_eq!(
                result.unwrap_err().to_string(),
                "path segment characters are limited to letters, numbers, dots, dashes, and underscores"
            );
        }
    }
}

#[test]
fn trust_domain_character_loop() {
    for code in 0u32..=255 {
        let c = char::from_u32(code).unwrap();
        if c == '/' {
            continue;
        }
        let input = format!("spiffe://trustdomain{c}");
        let valid = c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-');
        let result = SpiffeId::parse(&input);
        assert_eq!(result.is_ok(), valid, "{input:?}: {result:?}");
        if !valid {
            assert_eq!(
                result.unwrap_err().to_string(),
                "trust domain characters are limited to lowercase letters, numbers, dots, dashes, and underscores"
            );
        }
    }
}
