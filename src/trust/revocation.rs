//! `trust.revoked`: the kill switch for a compromised workload before its SVID expires.
//! Short-lived SVIDs are the first control; this one is immediate.
//!
//! An entry is a SPIFFE ID (`spiffe://…`, exact, or a glob such as
//! `spiffe://prod.example.org/ns/legacy/**`) or a certificate serial number in hex (any case,
//! colons optional: `4F:2A:9C:01`, `4f2a9c01`). A caller whose SPIFFE ID or certificate serial
//! is revoked is untrusted at the trust stage.

use std::collections::HashSet;

use crate::glob::Glob;
use crate::identity::SpiffeId;

/// The compiled revocation list.
#[derive(Debug, Clone, Default)]
pub struct Revocation {
    ids: HashSet<String>,
    patterns: Vec<(String, Glob)>,
    /// Normalised serials (see [`normalize_serial`]).
    serials: HashSet<String>,
    entries: usize,
}

/// Why an entry of the revocation list is not one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("revoked entry {entry:?} ({origin}): {reason}")]
pub struct RevocationError {
    /// The entry as written.
    pub entry: String,
    /// Where the entry was written: `trust.revoked`, or a file and line.
    pub origin: String,
    /// Why it is neither a SPIFFE ID (or pattern) nor a hex serial.
    pub reason: String,
}

/// A certificate serial number as hex digits in lower case without leading zeros (`0` for
/// zero); `None` when `text` is not hex with optional colons. DER may carry a leading `00`
/// byte for a positive serial, tools print colons or not, upper or lower case: all compare
/// equal here.
pub fn normalize_serial(text: &str) -> Option<String> {
    let digits: String = text.chars().filter(|c| *c != ':').collect();
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let trimmed = digits.trim_start_matches('0').to_ascii_lowercase();
    Some(if trimmed.is_empty() {
        "0".to_owned()
    } else {
        trimmed
    })
}

impl Revocation {
    /// Compiles entries, each with where it was written.
    ///
    /// # Errors
    /// An entry that is neither a valid SPIFFE ID or pattern nor a hex serial number.
    pub fn new<'a>(
        entries: impl IntoIterator<Item = (&'a str, String)>,
    ) -> Result<Self, RevocationError> {
        let mut revocation = Self::default();
        for (entry, origin) in entries {
            let error = |reason: String| RevocationError {
                entry: entry.to_owned(),
                origin: origin.clone(),
                reason,
            };
            if entry.starts_with("spiffe://") {
                if entry.contains('*') {
                    let glob = Glob::new(entry).map_err(error)?;
                    revocation.patterns.push((entry.to_owned(), glob));
                } else {
                    let id = SpiffeId::parse(entry)
                        .map_err(|e| error(format!("not a SPIFFE ID: {e}")))?;
                    revocation.ids.insert(id.as_str().to_owned());
                }
            } else {
                let serial = normalize_serial(entry).ok_or_else(|| {
                    error(
                        "neither a SPIFFE ID (spiffe://…, or a pattern with *) nor a certificate serial number in hex".to_owned(),
                    )
                })?;
                revocation.serials.insert(serial);
            }
            revocation.entries += 1;
        }
        Ok(revocation)
    }

    /// How many entries the list holds.
    pub fn len(&self) -> usize {
        self.entries
    }

    /// Whether the list holds no entry.
    pub fn is_empty(&self) -> bool {
        self.entries == 0
    }

    /// The entry that revokes `spiffe_id`, if one does.
    pub fn revoking_id(&self, spiffe_id: &str) -> Option<&str> {
        if let Some(id) = self.ids.get(spiffe_id) {
            return Some(id);
        }
        self.patterns
            .iter()
            .find(|(_, glob)| glob.matches(spiffe_id))
            .map(|(pattern, _)| pattern.as_str())
    }

    /// Whether the certificate serial `serial` (any notation) is revoked.
    pub fn revokes_serial(&self, serial: &str) -> bool {
        !self.serials.is_empty()
            && normalize_serial(serial).is_some_and(|s| self.serials.contains(&s))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(entries: &[&str]) -> Result<Revocation, RevocationError> {
        Revocation::new(entries.iter().map(|e| (*e, "trust.revoked".to_owned())))
    }

    #[test]
    fn serials_compare_in_any_notation() {
        for (a, b) in [("4F:2A:9C:01", "4f2a9c01"), ("00:8f", "8F"), ("0", "00:00")] {
            assert_eq!(normalize_serial(a), normalize_serial(b), "{a} {b}");
        }
        for bad in ["", ":", "xyz", "4f 2a", "0x4f"] {
            assert_eq!(normalize_serial(bad), None, "{bad}");
        }
        let revoked = list(&["00:8F:01"]).unwrap();
        assert!(revoked.revokes_serial("8f:01"));
        assert!(!revoked.revokes_serial("8f:02"));
    }

    #[test]
    fn ids_exact_and_by_pattern() {
        let revoked = list(&[
            "spiffe://prod.example.org/ns/shop/sa/compromised",
            "spiffe://prod.example.org/ns/legacy/**",
        ])
        .unwrap();
        assert_eq!(revoked.len(), 2);
        assert!(
            revoked
                .revoking_id("spiffe://prod.example.org/ns/shop/sa/compromised")
                .is_some()
        );
        assert_eq!(
            revoked.revoking_id("spiffe://prod.example.org/ns/legacy/sa/old"),
            Some("spiffe://prod.example.org/ns/legacy/**")
        );
        assert_eq!(
            revoked.revoking_id("spiffe://prod.example.org/ns/shop/sa/frontend"),
            None
        );
    }

    #[test]
    fn bad_entries_say_what_they_are_not() {
        for (entry, expected) in [
            ("spiffe://Prod.example.org/x", "not a SPIFFE ID"),
            ("spiffe://prod.example.org/a**", "must be a whole segment"),
            ("frontend", "neither a SPIFFE ID"),
        ] {
            let error = list(&[entry]).unwrap_err().to_string();
            assert!(error.contains(expected), "{entry}: {error}");
            assert!(error.contains("(trust.revoked)"), "{error}");
        }
    }
}
