//! JWT-SVIDs (SPIFFE JWT-SVID spec): a workload's identity in a token, bound to an audience.
//!
//! Validation follows JWT-SVID §3 and §4 and RFC 7519 §7.2, in an order that trusts nothing
//! unverified: the compact JWS is split and decoded (bounded: [`MAX_TOKEN_BYTES`]); `alg` must
//! be one JWT-SVID allows (never `none` or HMAC); `typ`, when present, is `JWT` or `JOSE`;
//! `kid` is required; `sub` must be a SPIFFE ID of a workload, whose trust domain selects the
//! JWT bundle and `kid` the key; the signature is verified with that key; then `aud` must name
//! an accepted audience and `exp` (required), `nbf` and `iat` must hold at `now`, within
//! `leeway`. Claims are exposed only once all of that passed.

use base64::Engine as _;

use super::SpiffeId;
use super::jwt_key::{JwsAlgorithm, JwtPublicKey, SignatureError};

/// Longest token accepted, in bytes: a JWT-SVID is a few hundred bytes; 16 KiB leaves room
/// for large claim sets while bounding the work a forged header can cause.
pub const MAX_TOKEN_BYTES: usize = 16 * 1024;

/// A verified JWT-SVID.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JwtSvid {
    /// `sub`: the workload's SPIFFE ID.
    pub spiffe_id: SpiffeId,
    /// `aud`, as one or more strings.
    pub audience: Vec<String>,
    /// `exp`, Unix seconds.
    pub expires_at: i64,
    /// The later of `nbf` and `iat`, when present (Unix seconds): not valid before.
    pub valid_from: Option<i64>,
    /// The whole claim set (`sub`, `aud`, `exp` and any others).
    pub claims: serde_json::Map<String, serde_json::Value>,
}

/// Why a token is not a valid JWT-SVID. [`JwtSvidError::class`] is its bounded metric label;
/// messages never include the token or its signature.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum JwtSvidError {
    /// The token is not a compact JWS, or its header or payload is not a JSON object; holds
    /// what is wrong.
    #[error("the token is not a compact JWS (header.payload.signature, base64url): {0}")]
    Malformed(String),
    /// The token is longer than [`MAX_TOKEN_BYTES`].
    #[error("the token is longer than {MAX_TOKEN_BYTES} bytes")]
    TooLarge,
    /// The header's `alg` is not one JWT-SVID §3 allows (never `none` or HMAC); holds it.
    #[error(
        "alg {0:?} is not allowed (JWT-SVIDs are signed with RS256/384/512, ES256/384/512 or PS256/384/512)"
    )]
    Algorithm(String),
    /// The header's `typ` is present but neither `JWT` nor `JOSE` (JWT-SVID §3); holds it.
    #[error("typ {0:?} is not JWT or JOSE")]
    Type(String),
    /// The header has no `kid`, or an empty one, so no key can be chosen.
    #[error("the token's header has no kid")]
    MissingKeyId,
    /// The `sub` claim is not the SPIFFE ID of a workload (JWT-SVID §3).
    #[error("sub {sub:?} is not a SPIFFE ID of a workload: {reason}")]
    Subject {
        /// The `sub` claim as written; empty when absent.
        sub: String,
        /// Why it is not a workload's SPIFFE ID.
        reason: String,
    },
    /// The trust domain of `sub` is not in `trust.trust_domains`; holds it.
    #[error("trust domain {0:?} of the token's sub is not accepted (trust.trust_domains)")]
    TrustDomain(String),
    /// The trust domain's bundle has no JWT authority with the token's `kid`.
    #[error("trust domain {trust_domain:?} has no JWT authority with kid {kid:?}")]
    UnknownKey {
        /// The trust domain of the token's `sub`.
        trust_domain: String,
        /// The `kid` the token's header names.
        kid: String,
    },
    /// The named key cannot make signatures of the token's `alg` (e.g. an RSA key for ES256).
    #[error("key {kid:?} cannot verify {alg} signatures")]
    KeyMismatch {
        /// The key's `kid`.
        kid: String,
        /// The token's `alg`, e.g. `ES256`.
        alg: &'static str,
    },
    /// The signature does not verify with the named key; holds its `kid`.
    #[error("the signature does not verify with key {0:?}")]
    Signature(String),
    /// The token has no `aud`, or an empty list (JWT-SVID §3 requires one).
    #[error("the token has no aud")]
    MissingAudience,
    /// `aud` is neither a string nor a list of strings (RFC 7519 §4.1.3).
    #[error("aud is not a string or a list of strings")]
    AudienceType,
    /// The header has `crit`: extensions a verifier must understand (RFC 7515 §4.1.11).
    #[error(
        "the token's header names crit extensions, which JWT-SVIDs do not use (RFC 7515 §4.1.11)"
    )]
    Critical,
    /// No `aud` value is an accepted audience (`trust.workload_tokens.audiences`); holds
    /// `aud`.
    #[error("aud {0:?} names no accepted audience (trust.workload_tokens.audiences)")]
    Audience(Vec<String>),
    /// The token has no `exp` (JWT-SVID §3 requires it).
    #[error("the token has no exp")]
    MissingExpiry,
    /// The token expired, beyond the leeway; holds its `exp` (Unix seconds).
    #[error("the token expired at {0} (Unix seconds)")]
    Expired(i64),
    /// The token is not valid yet, beyond the leeway; holds the later of `nbf` and `iat`
    /// (Unix seconds).
    #[error("the token is not valid before {0} (Unix seconds)")]
    NotYetValid(i64),
    /// `exp`, `nbf` or `iat` is not a NumericDate from 1970 to the year 9999 (RFC 7519 §2);
    /// holds the claim's name.
    #[error("claim {0:?} is not a NumericDate (seconds since 1970, before the year 10000)")]
    BadTime(&'static str),
    /// The token's subject is revoked (`trust.revoked`); holds the message naming the entry.
    #[error("{0}")]
    Revoked(String),
}

impl JwtSvidError {
    /// A short, bounded class for metrics and dashboards.
    pub fn class(&self) -> &'static str {
        match self {
            Self::Malformed(_) | Self::TooLarge | Self::Critical | Self::BadTime(_) => "malformed",
            Self::Algorithm(_) => "algorithm",
            Self::Type(_) => "type",
            Self::MissingKeyId | Self::UnknownKey { .. } => "unknown_key",
            Self::Subject { .. } | Self::TrustDomain(_) => "subject",
            Self::KeyMismatch { .. } | Self::Signature(_) => "signature",
            Self::MissingAudience | Self::AudienceType | Self::Audience(_) => "audience",
            Self::MissingExpiry | Self::Expired(_) => "expired",
            Self::NotYetValid(_) => "not_yet_valid",
            Self::Revoked(_) => "revoked",
        }
    }

    /// Every class [`JwtSvidError::class`] returns.
    pub const CLASSES: [&'static str; 10] = [
        "malformed",
        "algorithm",
        "type",
        "unknown_key",
        "subject",
        "signature",
        "audience",
        "expired",
        "not_yet_valid",
        "revoked",
    ];
}

/// What a validation needs from the trust policy.
pub trait JwtKeys {
    /// Whether tokens of `trust_domain` may be accepted at all.
    fn accepts(&self, trust_domain: &str) -> bool;
    /// The key `kid` of `trust_domain`'s JWT bundle.
    fn key(&self, trust_domain: &str, kid: &str) -> Option<&JwtPublicKey>;
}

/// What a token must satisfy beyond its signature.
#[derive(Debug, Clone, Copy)]
pub struct Expectations<'a> {
    /// `aud` must contain one of these.
    pub audiences: &'a [String],
    /// Now, Unix seconds.
    pub now: i64,
    /// Clock skew tolerated on `exp`, `nbf` and `iat`, seconds.
    pub leeway: i64,
}

impl JwtSvid {
    /// Validates `token` (the compact JWS, without a `Bearer ` prefix).
    ///
    /// # Errors
    /// The first problem found, in the order of the module docs.
    pub fn validate(
        token: &str,
        keys: &dyn JwtKeys,
        expect: Expectations<'_>,
    ) -> Result<Self, JwtSvidError> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(JwtSvidError::TooLarge);
        }
        let mut parts = token.split('.');
        let (Some(header_b64), Some(payload_b64), Some(signature_b64), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(malformed("not three dot-separated parts"));
        };
        let header = decode_json(header_b64, "header")?;
        let alg = header.get("alg").and_then(|v| v.as_str()).unwrap_or("");
        let algorithm =
            JwsAlgorithm::parse(alg).ok_or_else(|| JwtSvidError::Algorithm(alg.to_owned()))?;
        match header.get("typ") {
            None => {}
            Some(serde_json::Value::String(typ)) if typ == "JWT" || typ == "JOSE" => {}
            Some(other) => return Err(JwtSvidError::Type(text_of(other))),
        }
        if header.contains_key("crit") {
            // RFC 7515 §4.1.11: extensions a verifier does not understand must be refused.
            return Err(JwtSvidError::Critical);
        }
        let kid = header
            .get("kid")
            .and_then(|v| v.as_str())
            .filter(|kid| !kid.is_empty())
            .ok_or(JwtSvidError::MissingKeyId)?;
        let claims = decode_json(payload_b64, "payload")?;
        let sub = claims.get("sub").and_then(|v| v.as_str()).unwrap_or("");
        let spiffe_id = SpiffeId::parse(sub).map_err(|e| JwtSvidError::Subject {
            sub: sub.to_owned(),
            reason: e.to_string(),
        })?;
        if !spiffe_id.is_workload() {
            return Err(JwtSvidError::Subject {
                sub: sub.to_owned(),
                reason: "it names a trust domain, not a workload".into(),
            });
        }
        let trust_domain = spiffe_id.trust_domain();
        if !keys.accepts(trust_domain) {
            return Err(JwtSvidError::TrustDomain(trust_domain.to_owned()));
        }
        let key = keys
            .key(trust_domain, kid)
            .ok_or_else(|| JwtSvidError::UnknownKey {
                trust_domain: trust_domain.to_owned(),
                kid: kid.to_owned(),
            })?;
        let signature = base64url(signature_b64, "signature")?;
        let signing_input = &token[..header_b64.len() + 1 + payload_b64.len()];
        key.verify(algorithm, signing_input.as_bytes(), &signature)
            .map_err(|e| match e {
                SignatureError::KeyMismatch => JwtSvidError::KeyMismatch {
                    kid: kid.to_owned(),
                    alg: algorithm.name(),
                },
                SignatureError::Invalid => JwtSvidError::Signature(kid.to_owned()),
            })?;
        let audience = audience(&claims)?;
        if !audience.iter().any(|aud| expect.audiences.contains(aud)) {
            return Err(JwtSvidError::Audience(audience));
        }
        let expires_at = seconds(&claims, "exp")?.ok_or(JwtSvidError::MissingExpiry)?;
        let mut valid_from: Option<i64> = None;
        for claim in ["nbf", "iat"] {
            if let Some(at) = seconds(&claims, claim)? {
                valid_from = Some(valid_from.map_or(at, |from| from.max(at)));
            }
        }
        let svid = Self {
            spiffe_id,
            audience,
            expires_at,
            valid_from,
            claims,
        };
        // The times, checked as for a token validated before (one rule for both).
        svid.check_times(expect.now, expect.leeway)?;
        Ok(svid)
    }

    /// Whether the token's times hold at `now` (Unix seconds) within `leeway` seconds: what
    /// [`JwtSvid::validate`] checks of time, for a token validated before.
    ///
    /// # Errors
    /// [`JwtSvidError::Expired`] or [`JwtSvidError::NotYetValid`].
    pub fn check_times(&self, now: i64, leeway: i64) -> Result<(), JwtSvidError> {
        if now > self.expires_at.saturating_add(leeway) {
            return Err(JwtSvidError::Expired(self.expires_at));
        }
        match self.valid_from {
            Some(from) if now.saturating_add(leeway) < from => Err(JwtSvidError::NotYetValid(from)),
            _ => Ok(()),
        }
    }
}

fn malformed(why: &str) -> JwtSvidError {
    JwtSvidError::Malformed(why.to_owned())
}

fn base64url(part: &str, what: &str) -> Result<Vec<u8>, JwtSvidError> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| malformed(&format!("the {what} is not base64url")))
}

fn decode_json(
    part: &str,
    what: &str,
) -> Result<serde_json::Map<String, serde_json::Value>, JwtSvidError> {
    let bytes = base64url(part, what)?;
    let text = std::str::from_utf8(&bytes)
        .map_err(|_| malformed(&format!("the {what} is not UTF-8 JSON")))?;
    // One meaning per token: a member named twice could be read differently elsewhere.
    crate::json::reject_duplicate_keys(text)
        .map_err(|e| malformed(&format!("the {what} is not valid JSON: {e}")))?;
    match serde_json::from_str(text) {
        Ok(serde_json::Value::Object(map)) => Ok(map),
        _ => Err(malformed(&format!("the {what} is not a JSON object"))),
    }
}

/// `aud`: a string or an array of strings (RFC 7519 §4.1.3), required by JWT-SVID §3.
fn audience(
    claims: &serde_json::Map<String, serde_json::Value>,
) -> Result<Vec<String>, JwtSvidError> {
    match claims.get("aud") {
        Some(serde_json::Value::String(aud)) => Ok(vec![aud.clone()]),
        Some(serde_json::Value::Array(items)) if !items.is_empty() => items
            .iter()
            .map(|item| item.as_str().map(str::to_owned))
            .collect::<Option<Vec<_>>>()
            .ok_or(JwtSvidError::AudienceType),
        None | Some(serde_json::Value::Array(_)) => Err(JwtSvidError::MissingAudience),
        Some(_) => Err(JwtSvidError::AudienceType),
    }
}

/// Latest NumericDate accepted: 9999-12-31T23:59:59Z (what a CEL timestamp can hold).
const MAX_NUMERIC_DATE: i64 = 253_402_300_799;

/// A NumericDate claim (RFC 7519 §2), whole seconds (a fraction is dropped), from 1970 to the
/// year 9999.
fn seconds(
    claims: &serde_json::Map<String, serde_json::Value>,
    name: &'static str,
) -> Result<Option<i64>, JwtSvidError> {
    match claims.get(name) {
        None => Ok(None),
        Some(value) => value
            .as_i64()
            .or_else(|| {
                value
                    .as_f64()
                    .filter(|f| f.is_finite() && f.abs() < 1e15)
                    .map(|f| f as i64)
            })
            .filter(|secs| (0..=MAX_NUMERIC_DATE).contains(secs))
            .map(Some)
            .ok_or(JwtSvidError::BadTime(name)),
    }
}

fn text_of(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}
