//! Trust bundles: the keys a trust domain's SVIDs are verified against.
//!
//! Two formats:
//! - **PEM**: CA certificates, one `CERTIFICATE` block each (other blocks are skipped);
//! - **SPIFFE bundle**: a JWK Set (RFC 7517 §5) as the SPIFFE Trust Domain and Bundle spec §4
//!   defines it. Each key carries `use`: `x509-svid` keys hold exactly one certificate in
//!   `x5c` (an X.509 authority), `jwt-svid` keys are public keys with a `kid` (a JWT
//!   authority); keys of any other `use` are ignored (§4.2.1). `spiffe_sequence` and
//!   `spiffe_refresh_hint` (seconds) are read. A set with no keys is valid and means that no
//!   SVID of the trust domain is trusted.
//!
//! Every X.509 authority must be a signing certificate (X509-SVID §4.1, §4.3: `cA` true and
//! `keyCertSign`): a leaf put in a bundle by mistake is refused, not trusted as a CA. An
//! authority vouches only within its own validity window; the trust stage checks that per
//! verification (see [`X509Authority::valid_at`]).

use std::collections::HashSet;
use std::path::Path;

use base64::Engine as _;
use x509_parser::certificate::X509Certificate;

use super::jwt_key::JwtPublicKey;
use x509_parser::pem::Pem;
use x509_parser::prelude::FromDer;

/// How a bundle file is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BundleFormat {
    /// PEM CA certificates.
    Pem,
    /// A SPIFFE bundle (JWK Set JSON).
    Spiffe,
}

impl BundleFormat {
    /// The format a file's extension implies: `.json` is a SPIFFE bundle, anything else PEM.
    pub fn for_path(path: &Path) -> Self {
        match path.extension().and_then(|e| e.to_str()) {
            Some(ext) if ext.eq_ignore_ascii_case("json") => Self::Spiffe,
            _ => Self::Pem,
        }
    }

    /// `pem` or `spiffe`.
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "pem" => Some(Self::Pem),
            "spiffe" => Some(Self::Spiffe),
            _ => None,
        }
    }
}

/// Why a bundle cannot be used. Messages name the key at fault: `keys[2] (kid "k1")`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BundleError {
    /// A SPIFFE bundle is not valid UTF-8 JSON, or names a member twice; holds the parser's
    /// message.
    #[error("not valid JSON: {0}")]
    Json(String),
    /// A SPIFFE bundle is not a JWK Set (not an object, no `keys` array) or has a
    /// `spiffe_sequence` or `spiffe_refresh_hint` that is not a non-negative integer.
    #[error("a SPIFFE bundle is a JSON object with a \"keys\" array (a JWK Set): {0}")]
    NotAKeySet(String),
    /// A key of a SPIFFE bundle is malformed or unusable (SPIFFE Trust Domain and Bundle §4).
    #[error("{key}: {reason}")]
    Key {
        /// The key at fault: `keys[2]`, or `keys[2] (kid "k1")` when it has a `kid`.
        key: String,
        /// What is wrong with it.
        reason: String,
    },
    /// Two `jwt-svid` keys share a `kid`; holds that key id.
    #[error("two jwt-svid keys have kid {0:?}: key ids must be unique within a bundle")]
    DuplicateKeyId(String),
    /// The PEM bundle is malformed; holds the parser's message.
    #[error("PEM: {0}")]
    Pem(String),
    /// The PEM bundle holds no `CERTIFICATE` block.
    #[error("no CERTIFICATE in the PEM bundle")]
    NoCertificate,
    /// A certificate of the PEM bundle does not parse or may not sign SVIDs (not a CA, or no
    /// `keyCertSign`: X509-SVID §4.1, §4.3).
    #[error("certificate {index} ({subject}): {reason}")]
    Authority {
        /// Its 0-based position among the bundle's `CERTIFICATE` blocks.
        index: usize,
        /// Its subject, as text; empty when it does not parse.
        subject: String,
        /// Why it cannot be an X.509 authority.
        reason: String,
    },
}

/// A CA certificate that may sign the trust domain's X.509-SVIDs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct X509Authority {
    der: Vec<u8>,
    subject: String,
    not_before: i64,
    not_after: i64,
}

impl X509Authority {
    /// Parses DER and checks that the certificate may sign SVIDs (X509-SVID §4.1: `cA` true;
    /// §4.3: keyUsage with `keyCertSign`). The error is the reason, with the subject when
    /// the certificate parses.
    pub fn from_der(der: Vec<u8>) -> Result<Self, (String, String)> {
        let (subject, not_before, not_after) = {
            let (rest, cert) =
                X509Certificate::from_der(&der).map_err(|e| (String::new(), e.to_string()))?;
            let subject = cert.subject().to_string();
            let fail = |reason: &str| (subject.clone(), reason.to_owned());
            if !rest.is_empty() {
                return Err(fail("trailing bytes after the certificate"));
            }
            let basic = cert.basic_constraints().map_err(|e| fail(&e.to_string()))?;
            if !basic.is_some_and(|b| b.value.ca) {
                return Err(fail(
                    "not a CA certificate (basicConstraints cA is not true): a bundle holds the CAs that sign SVIDs, never a leaf (X509-SVID §4.1)",
                ));
            }
            let key_usage = cert.key_usage().map_err(|e| fail(&e.to_string()))?;
            if !key_usage.is_some_and(|k| k.value.key_cert_sign()) {
                return Err(fail(
                    "its keyUsage lacks keyCertSign, so it may not sign certificates (X509-SVID §4.3)",
                ));
            }
            let validity = cert.validity();
            (
                subject,
                validity.not_before.timestamp(),
                validity.not_after.timestamp(),
            )
        };
        Ok(Self {
            der,
            subject,
            not_before,
            not_after,
        })
    }

    /// The certificate (DER).
    pub fn der(&self) -> &[u8] {
        &self.der
    }

    /// The subject, as text (for messages).
    pub fn subject(&self) -> &str {
        &self.subject
    }

    /// notBefore and notAfter, in seconds since the Unix epoch.
    pub fn validity(&self) -> (i64, i64) {
        (self.not_before, self.not_after)
    }

    /// Whether the authority may vouch at `unix_secs` (RFC 5280 §4.1.2.5: both bounds
    /// inclusive). An expired CA left in a bundle vouches for nothing, as go-spiffe holds.
    pub fn valid_at(&self, unix_secs: i64) -> bool {
        self.not_before <= unix_secs && unix_secs <= self.not_after
    }
}

/// A public key that may sign the trust domain's JWT-SVIDs (JWT-SVID §6), as its JWK.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JwtAuthority {
    /// The `kid` a JWT-SVID names in its header.
    pub key_id: String,
    /// The key, compiled from its JWK at load.
    pub key: JwtPublicKey,
}

/// One trust domain's bundle.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustBundle {
    /// The CA certificates that may sign the trust domain's X.509-SVIDs.
    pub x509_authorities: Vec<X509Authority>,
    /// The public keys that may sign its JWT-SVIDs, each with its `kid`.
    pub jwt_authorities: Vec<JwtAuthority>,
    /// `spiffe_sequence`: increases with each new version of the bundle.
    pub sequence: Option<u64>,
    /// `spiffe_refresh_hint`: how often, in seconds, the bundle should be fetched again.
    pub refresh_hint_secs: Option<u64>,
    /// Keys ignored for an unknown `use` (for `warrant check` and the status page).
    pub ignored_keys: usize,
}

impl TrustBundle {
    /// Parses a bundle file in `format`.
    ///
    /// # Errors
    /// Malformed JSON or PEM, a malformed key (named by index and `kid`), a duplicate `kid`,
    /// a certificate that is not a CA, or (PEM) no certificate at all.
    pub fn parse(bytes: &[u8], format: BundleFormat) -> Result<Self, BundleError> {
        match format {
            BundleFormat::Pem => Self::from_pem(bytes),
            BundleFormat::Spiffe => Self::from_spiffe_json(bytes),
        }
    }

    /// PEM CA certificates (other PEM blocks are skipped).
    pub fn from_pem(pem: &[u8]) -> Result<Self, BundleError> {
        let mut bundle = Self::default();
        for block in Pem::iter_from_buffer(pem) {
            let block = block.map_err(|e| BundleError::Pem(e.to_string()))?;
            if block.label != "CERTIFICATE" {
                continue;
            }
            let index = bundle.x509_authorities.len();
            let authority =
                X509Authority::from_der(block.contents).map_err(|(subject, reason)| {
                    BundleError::Authority {
                        index,
                        subject,
                        reason,
                    }
                })?;
            bundle.x509_authorities.push(authority);
        }
        if bundle.x509_authorities.is_empty() {
            return Err(BundleError::NoCertificate);
        }
        Ok(bundle)
    }

    /// A SPIFFE bundle: a JWK Set (SPIFFE Trust Domain and Bundle §4).
    pub fn from_spiffe_json(json: &[u8]) -> Result<Self, BundleError> {
        let text = std::str::from_utf8(json).map_err(|e| BundleError::Json(e.to_string()))?;
        crate::json::reject_duplicate_keys(text).map_err(|e| BundleError::Json(e.to_string()))?;
        let value: serde_json::Value =
            serde_json::from_str(text).map_err(|e| BundleError::Json(e.to_string()))?;
        let serde_json::Value::Object(set) = value else {
            return Err(BundleError::NotAKeySet(
                "the document is not an object".into(),
            ));
        };
        let Some(serde_json::Value::Array(keys)) = set.get("keys") else {
            return Err(BundleError::NotAKeySet("no \"keys\" array".into()));
        };
        let unsigned = |name: &str| match set.get(name) {
            None => Ok(None),
            Some(value) => value.as_u64().map(Some).ok_or_else(|| {
                BundleError::NotAKeySet(format!("{name} must be a non-negative integer"))
            }),
        };
        let mut bundle = Self {
            sequence: unsigned("spiffe_sequence")?,
            refresh_hint_secs: unsigned("spiffe_refresh_hint")?,
            ..Self::default()
        };
        let mut key_ids = HashSet::new();
        for (index, key) in keys.iter().enumerate() {
            let serde_json::Value::Object(key) = key else {
                return Err(key_error(index, None, "is not a JSON object"));
            };
            let kid = key.get("kid").and_then(|k| k.as_str());
            let fail = |reason: &str| key_error(index, kid, reason);
            match key.get("use").and_then(|u| u.as_str()) {
                None => return Err(fail("has no \"use\" (x509-svid or jwt-svid)")),
                Some("x509-svid") => {
                    let der = single_x5c(key).map_err(|reason| fail(&reason))?;
                    let authority = X509Authority::from_der(der)
                        .map_err(|(_, reason)| fail(&format!("x5c certificate: {reason}")))?;
                    bundle.x509_authorities.push(authority);
                }
                Some("jwt-svid") => {
                    let Some(kid) = kid.filter(|k| !k.is_empty()) else {
                        return Err(fail(
                            "a jwt-svid key needs a non-empty \"kid\" (JWT-SVID §6)",
                        ));
                    };
                    let public_key = JwtPublicKey::from_jwk(key).map_err(|reason| fail(&reason))?;
                    if !key_ids.insert(kid.to_owned()) {
                        return Err(BundleError::DuplicateKeyId(kid.to_owned()));
                    }
                    bundle.jwt_authorities.push(JwtAuthority {
                        key_id: kid.to_owned(),
                        key: public_key,
                    });
                }
                Some(_) => bundle.ignored_keys += 1,
            }
        }
        Ok(bundle)
    }
}

fn key_error(index: usize, kid: Option<&str>, reason: &str) -> BundleError {
    BundleError::Key {
        key: match kid {
            Some(kid) => format!("keys[{index}] (kid {kid:?})"),
            None => format!("keys[{index}]"),
        },
        reason: reason.to_owned(),
    }
}

/// The one certificate of an `x509-svid` key's `x5c` (RFC 7517 §4.7: standard base64 DER).
fn single_x5c(key: &serde_json::Map<String, serde_json::Value>) -> Result<Vec<u8>, String> {
    let Some(serde_json::Value::Array(chain)) = key.get("x5c") else {
        return Err("an x509-svid key needs \"x5c\" with its certificate".into());
    };
    let [serde_json::Value::String(cert)] = chain.as_slice() else {
        return Err(format!(
            "an x509-svid key holds exactly one certificate in \"x5c\", not {}",
            chain.len()
        ));
    };
    base64::engine::general_purpose::STANDARD
        .decode(cert)
        .map_err(|e| format!("x5c is not base64: {e}"))
}
