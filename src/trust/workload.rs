//! The workload identity: a JWT-SVID the request carries, verified against the JWT bundle of
//! its trust domain (`trust.workload_tokens`).
//!
//! The mTLS peer is often a proxy, and anything that can reach that proxy speaks with its
//! certificate. A JWT-SVID names the workload that minted the request; `bound` says whether
//! it is the same workload as the transport identity. With `required: true` a request without
//! a valid token is untrusted at the trust stage.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use super::{TrustPolicy, unix_secs};
use crate::identity::jwt_svid::Expectations;
use crate::identity::{JwtKeys, JwtPublicKey, JwtSvid, JwtSvidError};
use crate::request::AuthzRequest;

/// `trust.workload_tokens`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkloadTokenSettings {
    /// The request header holding the token (lower case). For `authorization` the `Bearer `
    /// scheme is stripped; any other header holds the bare token.
    pub header: String,
    /// Accepted audiences: a token's `aud` must contain one (JWT-SVID §3).
    pub audiences: Vec<String>,
    /// Clock skew tolerated on `exp`, `nbf` and `iat`.
    pub leeway: Duration,
    /// Whether a request without a valid token is untrusted.
    pub required: bool,
}

impl WorkloadTokenSettings {
    /// The default header.
    pub const DEFAULT_HEADER: &'static str = "authorization";
    /// The default leeway.
    pub const DEFAULT_LEEWAY: Duration = Duration::from_secs(30);
}

/// What the request's workload token established.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Workload {
    /// `trust.workload_tokens` is not configured: no token was looked for.
    Unchecked,
    /// The header is absent or empty.
    Absent,
    /// A valid JWT-SVID (shared with the token cache).
    Verified(Arc<JwtSvid>),
    /// A token that is not a valid JWT-SVID, and why.
    Invalid(JwtSvidError),
}

impl Workload {
    /// The verified token, if any.
    pub fn verified(&self) -> Option<&JwtSvid> {
        match self {
            Workload::Verified(svid) => Some(svid),
            _ => None,
        }
    }

    /// Whether a token was presented (valid or not).
    pub fn present(&self) -> bool {
        matches!(self, Workload::Verified(_) | Workload::Invalid(_))
    }

    /// Why the token is invalid; `""` when verified or absent.
    pub fn error(&self) -> String {
        match self {
            Workload::Invalid(error) => error.to_string(),
            _ => String::new(),
        }
    }

    /// Whether the token names the transport identity itself.
    pub fn bound_to(&self, transport: &crate::identity::SpiffeId) -> bool {
        self.verified()
            .is_some_and(|svid| &svid.spiffe_id == transport)
    }

    /// The metric label: `verified`, `absent` or the invalid token's class; `None` when
    /// unchecked.
    pub fn result(&self) -> Option<&'static str> {
        match self {
            Workload::Unchecked => None,
            Workload::Absent => Some("absent"),
            Workload::Verified(_) => Some("verified"),
            Workload::Invalid(error) => Some(error.class()),
        }
    }
}

impl JwtKeys for TrustPolicy {
    fn accepts(&self, trust_domain: &str) -> bool {
        self.trust_domains.iter().any(|td| td == trust_domain)
    }

    fn key(&self, trust_domain: &str, kid: &str) -> Option<&JwtPublicKey> {
        self.bundles
            .get(trust_domain)?
            .jwt_authorities
            .iter()
            .find(|authority| authority.key_id == kid)
            .map(|authority| &authority.key)
    }
}

impl TrustPolicy {
    /// The workload identity of `request` (see [`Workload`]).
    pub fn workload(&self, request: &AuthzRequest, now: SystemTime) -> Workload {
        let Some(settings) = &self.workload_tokens else {
            return Workload::Unchecked;
        };
        let value = request
            .http
            .as_ref()
            .and_then(|http| http.header(&settings.header))
            .map(str::trim)
            .unwrap_or("");
        if value.is_empty() {
            return Workload::Absent;
        }
        let token = if settings.header == WorkloadTokenSettings::DEFAULT_HEADER {
            match bearer(value) {
                Some(token) => token,
                None => {
                    return Workload::Invalid(JwtSvidError::Malformed(
                        "the authorization header does not hold a Bearer token".into(),
                    ));
                }
            }
        } else {
            value
        };
        let expect = Expectations {
            audiences: &settings.audiences,
            now: unix_secs(now),
            leeway: i64::try_from(settings.leeway.as_secs()).unwrap_or(i64::MAX),
        };
        // A token seen before: its signature and claims are known good; its times and the
        // revocation list are checked again, as for a new one.
        let key = super::certificate_cache::key(token);
        let validated = match self.tokens.get(&key) {
            Some(svid) => svid.check_times(expect.now, expect.leeway).map(|()| svid),
            None => JwtSvid::validate(token, self, expect).map(|svid| {
                let svid = Arc::new(svid);
                self.tokens.insert(key, Arc::clone(&svid));
                svid
            }),
        };
        match validated {
            Ok(svid) => match self.revocation.revoking_id(svid.spiffe_id.as_str()) {
                Some(entry) => Workload::Invalid(JwtSvidError::Revoked(format!(
                    "the token's subject {} is revoked (trust.revoked: {entry})",
                    svid.spiffe_id
                ))),
                None => Workload::Verified(svid),
            },
            Err(error) => Workload::Invalid(error),
        }
    }

    /// The whole trust stage for `request`: the transport identity ([`TrustPolicy::verify`]),
    /// then what the request says beyond it — its provenance and its workload token — and
    /// whether those pass ([`TrustPolicy::admit`]). `Err` when the transport identity fails;
    /// otherwise the evidence, with the stage's verdict on it (a request whose token or
    /// forwarded client fails still names its transport identity in the record).
    ///
    /// # Errors
    /// Why the transport identity is untrusted.
    pub fn establish(
        &self,
        request: &AuthzRequest,
        now: SystemTime,
    ) -> Result<(super::Identities, Result<(), super::Untrusted>), super::Untrusted> {
        let peer = self.verify(&request.source, now)?;
        let provenance = self.provenance(&peer, request);
        let workload = self.workload(request, now);
        let admitted = self.admit(&provenance, &workload);
        Ok((
            super::Identities {
                transport: peer,
                provenance,
                workload,
            },
            admitted,
        ))
    }

    /// The rest of the trust stage, once the transport identity passed: why the forwarded
    /// and workload identities fail it — a revoked workload in a believed XFCC chain or in
    /// the token, and with `trust.workload_tokens.required`, no valid token.
    pub fn admit(
        &self,
        provenance: &super::Provenance,
        workload: &Workload,
    ) -> Result<(), super::Untrusted> {
        if let Some(reason) = &provenance.revoked {
            return Err(super::Untrusted::Revoked(reason.clone()));
        }
        if let Workload::Invalid(JwtSvidError::Revoked(reason)) = workload {
            return Err(super::Untrusted::Revoked(format!(
                "workload token: {reason}"
            )));
        }
        let Some(settings) = self.workload_tokens.as_ref().filter(|s| s.required) else {
            return Ok(());
        };
        match workload {
            Workload::Verified(_) | Workload::Unchecked => Ok(()),
            Workload::Absent => Err(super::Untrusted::WorkloadToken(format!(
                "no workload token in the {} header (trust.workload_tokens.required)",
                settings.header
            ))),
            Workload::Invalid(error) => Err(super::Untrusted::WorkloadToken(format!(
                "workload token rejected: {error} (trust.workload_tokens.required)"
            ))),
        }
    }

    /// `trust.workload_tokens`, when configured.
    pub fn workload_tokens(&self) -> Option<&WorkloadTokenSettings> {
        self.workload_tokens.as_ref()
    }
}

/// The token of an `Authorization: Bearer <token>` value (the scheme is case-insensitive,
/// RFC 9110 §11.1).
fn bearer(value: &str) -> Option<&str> {
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim_start())
}

/// Checks the settings as written.
///
/// # Errors
/// No audience, or an empty header name.
pub fn check_settings(settings: &WorkloadTokenSettings) -> Result<(), String> {
    if settings.audiences.is_empty() || settings.audiences.iter().any(String::is_empty) {
        return Err("trust.workload_tokens.audiences needs at least one audience (a JWT-SVID is only valid for the audiences it names): list the audience your workloads mint tokens for, e.g. [spiffe://prod.example.org/ns/payments/sa/api]".into());
    }
    if settings.header.is_empty()
        || !settings
            .header
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
    {
        return Err(format!(
            "trust.workload_tokens.header {:?} is not a header name",
            settings.header
        ));
    }
    Ok(())
}
