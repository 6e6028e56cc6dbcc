//! A policy's revision: a short content hash of everything it was compiled from, so every
//! decision can say which policy made it (`policy_revision` in the decision log, the span,
//! Envoy's dynamic metadata, `warrant eval`).
//!
//! SHA-256 over each file's name (its last path component, so the same policy has the same
//! revision in a container and on a laptop) and contents, in load order, each length-prefixed;
//! the first 12 hex digits (48 bits) name it.

use std::path::Path;
use std::sync::Arc;

use ring::digest::{Context, SHA256};

/// Hex digits kept.
const LENGTH: usize = 12;

/// A revision being computed.
pub(super) struct Revision(Context);

impl Default for Revision {
    fn default() -> Self {
        Self(Context::new(&SHA256))
    }
}

impl Revision {
    /// Adds one file the policy loads.
    pub(super) fn add(&mut self, path: &Path, contents: &[u8]) {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        for part in [name.as_bytes(), contents] {
            self.0.update(&(part.len() as u64).to_be_bytes());
            self.0.update(part);
        }
    }

    /// The revision: 12 lower-case hex digits.
    pub(super) fn finish(self) -> Arc<str> {
        let digest = self.0.finish();
        let hex: String = digest.as_ref().iter().map(|b| format!("{b:02x}")).collect();
        Arc::from(&hex[..LENGTH])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn revision(files: &[(&str, &str)]) -> Arc<str> {
        let mut r = Revision::default();
        for (path, text) in files {
            r.add(Path::new(path), text.as_bytes());
        }
        r.finish()
    }

    #[test]
    fn content_and_names_decide_not_directories() {
        let a = revision(&[("/etc/warrant/policy.yaml", "x")]);
        assert_eq!(a.len(), 12);
        assert_eq!(a, revision(&[("config/policy.yaml", "x")]));
        assert_ne!(a, revision(&[("config/policy.yaml", "y")]));
        assert_ne!(a, revision(&[("config/other.yaml", "x")]));
        // Boundaries count: ("ab", "c") is not ("a", "bc").
        assert_ne!(
            revision(&[("a", "bc"), ("d", "")]),
            revision(&[("a", "b"), ("d", "c")])
        );
    }
}
