//! YAML as Warrant reads it (policy files, data files, test files, `warrant.yaml`): YAML 1.2
//! Core booleans only. Under YAML 1.1, `no`, `yes`, `on`, `off`, `y` and `n` are booleans, so
//! `blocked_countries: [RU, NO, KP]` would hold `false` and a deny list would quietly lose
//! Norway; here they are strings, as in JSON and YAML 1.2. Repeated keys are errors.

use serde::de::DeserializeOwned;

/// Parses `text` as one YAML document into `T`.
///
/// # Errors
/// The parser's error, with its location.
pub fn from_str<T: DeserializeOwned>(text: &str) -> Result<T, serde_saphyr::Error> {
    serde_saphyr::from_str_with_options(
        text,
        serde_saphyr::options! {
            strict_booleans: true,
        },
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn yaml_11_booleans_are_strings() {
        let value: serde_json::Value =
            super::from_str("[RU, NO, yes, on, off, y, n, true, False]").expect("a list");
        assert_eq!(
            value,
            serde_json::json!(["RU", "NO", "yes", "on", "off", "y", "n", true, false])
        );
        assert!(super::from_str::<bool>("yes").is_err());
        assert!(super::from_str::<serde_json::Value>("{a: 1, a: 2}").is_err());
    }
}
