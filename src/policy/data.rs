//! Operator data: a policy file's `data:` section and its `data_files:` (YAML or JSON, paths
//! relative to the policy file), merged into the one `data` map rules read. Each top-level
//! key may be defined once across all of them; a second definition is an error naming both
//! places. No I/O here: files are read through the loader's callback.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde_saphyr::Spanned;

use super::PolicyError;

/// Where a top-level data key is defined.
#[derive(Debug, Clone)]
pub(super) struct Place {
    pub file: PathBuf,
    pub line: Option<u64>,
}

impl std::fmt::Display for Place {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.file.display())?;
        match self.line {
            Some(line) => write!(f, ":{line}"),
            None => Ok(()),
        }
    }
}

/// A `data:` section as the policy file's schema reads it.
pub(super) type Section = Spanned<HashMap<Spanned<String>, serde_json::Value>>;

/// The merged data, and where each top-level key came from.
#[derive(Debug, Default)]
pub(super) struct Data {
    pub values: serde_json::Map<String, serde_json::Value>,
    places: HashMap<String, Place>,
}

impl Data {
    /// Adds the keys of a policy file's `data:` section.
    pub(super) fn add_section(
        &mut self,
        file: &Path,
        section: Section,
        errors: &mut Vec<PolicyError>,
    ) {
        let mut entries: Vec<_> = section.value.into_iter().collect();
        entries.sort_by_key(|(key, _)| key.referenced.line());
        for (key, value) in entries {
            let place = Place {
                file: file.to_path_buf(),
                line: Some(key.referenced.line()),
            };
            self.add(key.value, value, place, errors);
        }
    }

    /// Parses a data file (`.json` as JSON, `.yaml`/`.yml` as YAML; its top level must be a
    /// map) and adds its keys. `named_at` is where the policy lists the file.
    pub(super) fn add_file(
        &mut self,
        file: &Path,
        bytes: &[u8],
        named_at: &Place,
        errors: &mut Vec<PolicyError>,
    ) {
        let error = |line: Option<u64>, message: String| PolicyError {
            file: file.to_path_buf(),
            line,
            rule: None,
            message,
        };
        let Ok(text) = std::str::from_utf8(bytes) else {
            errors.push(error(None, "data file is not UTF-8 text".to_owned()));
            return;
        };
        let extension = file.extension().and_then(|e| e.to_str()).unwrap_or("");
        let entries: Vec<(String, serde_json::Value, Option<u64>)> = match extension {
            "json" => match crate::json::reject_duplicate_keys(text)
                .and_then(|()| serde_json::from_str::<serde_json::Value>(text))
            {
                Ok(serde_json::Value::Object(map)) => {
                    let lines = json_key_lines(text);
                    map.into_iter()
                        .map(|(k, v)| {
                            let line = lines.get(&k).copied();
                            (k, v, line)
                        })
                        .collect()
                }
                Ok(_) => {
                    errors.push(error(None, TOP_LEVEL.to_owned()));
                    return;
                }
                Err(e) => {
                    errors.push(error(
                        u64::try_from(e.line()).ok().filter(|l| *l > 0),
                        format!("invalid JSON: {e}"),
                    ));
                    return;
                }
            },
            "yaml" | "yml" => {
                if text.trim().is_empty() {
                    Vec::new()
                } else {
                    match crate::yaml::from_str::<HashMap<Spanned<String>, serde_json::Value>>(text)
                    {
                        Ok(map) => map
                            .into_iter()
                            .map(|(k, v)| (k.value, v, Some(k.referenced.line())))
                            .collect(),
                        Err(e) => {
                            let line = e.location().map(|l| l.line()).filter(|l| *l > 0);
                            let gist = super::yaml_error_gist(&e.to_string());
                            let message = if gist.contains("map") || gist.contains("invalid type") {
                                format!("{gist}; {TOP_LEVEL}")
                            } else {
                                gist
                            };
                            errors.push(error(line, message));
                            return;
                        }
                    }
                }
            }
            _ => {
                errors.push(PolicyError {
                    file: named_at.file.clone(),
                    line: named_at.line,
                    rule: None,
                    message: format!(
                        "data file {}: name it *.json, *.yaml or *.yml to say how to read it",
                        file.display()
                    ),
                });
                return;
            }
        };
        let mut entries = entries;
        entries.sort_by_key(|(_, _, line)| *line);
        for (key, value, line) in entries {
            let place = Place {
                file: file.to_path_buf(),
                line,
            };
            self.add(key, value, place, errors);
        }
    }

    fn add(
        &mut self,
        key: String,
        value: serde_json::Value,
        place: Place,
        errors: &mut Vec<PolicyError>,
    ) {
        if let Some(first) = self.places.get(&key) {
            errors.push(PolicyError {
                file: place.file.clone(),
                line: place.line,
                rule: None,
                message: format!(
                    "data key {key:?} is already defined at {first}; define each top-level data key once"
                ),
            });
            return;
        }
        self.places.insert(key.clone(), place);
        self.values.insert(key, value);
    }

    /// The top-level keys, sorted, for messages.
    pub(super) fn keys(&self) -> Vec<&str> {
        let mut keys: Vec<&str> = self.values.keys().map(String::as_str).collect();
        keys.sort_unstable();
        keys
    }
}

const TOP_LEVEL: &str =
    "a data file holds a map at its top level: each key becomes data.KEY (e.g. `sensitivity: {…}`)";

/// The line of each top-level key of a JSON object text (the first, for a repeated key).
fn json_key_lines(text: &str) -> HashMap<String, u64> {
    let mut lines = HashMap::new();
    let (mut depth, mut line) = (0usize, 1u64);
    let mut chars = text.char_indices().peekable();
    while let Some((at, c)) = chars.next() {
        match c {
            '\n' => line += 1,
            '{' | '[' => depth += 1,
            '}' | ']' => depth = depth.saturating_sub(1),
            '"' => {
                let start = at;
                let mut end = text.len();
                let mut escaped = false;
                for (i, c) in chars.by_ref() {
                    match c {
                        '\\' if !escaped => escaped = true,
                        '"' if !escaped => {
                            end = i + 1;
                            break;
                        }
                        _ => escaped = false,
                    }
                }
                let is_key = text
                    .get(end..)
                    .is_some_and(|rest| rest.trim_start().starts_with(':'));
                if depth == 1
                    && is_key
                    && let Ok(key) = serde_json::from_str::<String>(&text[start..end])
                {
                    lines.entry(key).or_insert(line);
                }
            }
            _ => {}
        }
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_key_lines_are_top_level_only() {
        let text = "{\n  \"a\": {\"b\": 1},\n  \"c\\\"d\": [\"e\", \"f:\"],\n  \"g\"\n  : 2\n}";
        let lines = json_key_lines(text);
        assert_eq!(lines.get("a"), Some(&2));
        assert_eq!(lines.get("c\"d"), Some(&3));
        assert_eq!(lines.get("g"), Some(&4));
        assert_eq!(lines.get("b"), None);
        assert_eq!(lines.len(), 3);
    }

    #[test]
    fn a_key_defined_twice_names_both_places() {
        let mut data = Data::default();
        let mut errors = Vec::new();
        let named_at = Place {
            file: PathBuf::from("p.yaml"),
            line: Some(3),
        };
        data.add_file(Path::new("a.json"), b"{\n\"x\": 1}", &named_at, &mut errors);
        data.add_file(Path::new("b.yaml"), b"y: 2\nx: 3\n", &named_at, &mut errors);
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert_eq!(
            errors[0].to_string(),
            "b.yaml:2: data key \"x\" is already defined at a.json:2; define each top-level data key once"
        );
        assert_eq!(data.keys(), ["x", "y"]);
    }

    #[test]
    fn data_files_must_hold_a_map() {
        let named_at = Place {
            file: PathBuf::from("p.yaml"),
            line: Some(3),
        };
        for (name, text) in [
            ("a.json", "[1]"),
            ("a.yaml", "- 1\n"),
            ("a.json", "{"),
            ("a.txt", "x: 1"),
        ] {
            let mut errors = Vec::new();
            Data::default().add_file(Path::new(name), text.as_bytes(), &named_at, &mut errors);
            assert_eq!(errors.len(), 1, "{name}: {text}");
        }
    }
}
