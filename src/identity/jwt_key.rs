//! The public keys JWT-SVIDs are signed with, and the JWS algorithms they may use.
//!
//! JWT-SVID §3 allows exactly RS256/384/512, ES256/384/512 and PS256/384/512 (JWA, RFC 7518
//! §3.1); `none` and the HMAC algorithms are never accepted, so a bundle's public key can never
//! be used as an HMAC secret. Keys are compiled from their JWK (RFC 7517, RFC 7518 §6) when
//! the bundle loads; signatures are verified by `ring` (the crypto rustls uses here) and, for
//! P-521, which `ring` lacks, by RustCrypto's `p521`.

use base64::Engine as _;
use ring::signature::{self, RsaPublicKeyComponents, UnparsedPublicKey};

/// A JWS `alg` a JWT-SVID may be signed with (JWT-SVID §3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JwsAlgorithm {
    /// RSASSA-PKCS1-v1_5 with SHA-256 (RFC 7518 §3.3).
    Rs256,
    /// RSASSA-PKCS1-v1_5 with SHA-384 (RFC 7518 §3.3).
    Rs384,
    /// RSASSA-PKCS1-v1_5 with SHA-512 (RFC 7518 §3.3).
    Rs512,
    /// RSASSA-PSS with SHA-256 and MGF1 with SHA-256 (RFC 7518 §3.5).
    Ps256,
    /// RSASSA-PSS with SHA-384 and MGF1 with SHA-384 (RFC 7518 §3.5).
    Ps384,
    /// RSASSA-PSS with SHA-512 and MGF1 with SHA-512 (RFC 7518 §3.5).
    Ps512,
    /// ECDSA with P-256 and SHA-256 (RFC 7518 §3.4).
    Es256,
    /// ECDSA with P-384 and SHA-384 (RFC 7518 §3.4).
    Es384,
    /// ECDSA with P-521 and SHA-512 (RFC 7518 §3.4).
    Es512,
}

impl JwsAlgorithm {
    /// The algorithm named by a JWS header's `alg`; `None` for any other (including `none`
    /// and `HS256`).
    pub fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "RS256" => Self::Rs256,
            "RS384" => Self::Rs384,
            "RS512" => Self::Rs512,
            "PS256" => Self::Ps256,
            "PS384" => Self::Ps384,
            "PS512" => Self::Ps512,
            "ES256" => Self::Es256,
            "ES384" => Self::Es384,
            "ES512" => Self::Es512,
            _ => return None,
        })
    }

    /// The `alg` name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Rs256 => "RS256",
            Self::Rs384 => "RS384",
            Self::Rs512 => "RS512",
            Self::Ps256 => "PS256",
            Self::Ps384 => "PS384",
            Self::Ps512 => "PS512",
            Self::Es256 => "ES256",
            Self::Es384 => "ES384",
            Self::Es512 => "ES512",
        }
    }
}

/// A JWT authority's public key, compiled from its JWK.
#[derive(Clone)]
pub enum JwtPublicKey {
    /// `kty: RSA`: modulus and exponent, big-endian (at least 2048 bits).
    Rsa {
        /// The modulus, big-endian, without leading zero bytes.
        n: Vec<u8>,
        /// The public exponent, big-endian, without leading zero bytes (odd, at least 65537).
        e: Vec<u8>,
    },
    /// `kty: EC, crv: P-256`: the uncompressed point (`04 ‖ x ‖ y`).
    P256(Vec<u8>),
    /// `kty: EC, crv: P-384`: the uncompressed point.
    P384(Vec<u8>),
    /// `kty: EC, crv: P-521`.
    P521(Box<p521::ecdsa::VerifyingKey>),
}

impl std::fmt::Debug for JwtPublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Rsa { .. } => "JwtPublicKey::Rsa",
            Self::P256(_) => "JwtPublicKey::P256",
            Self::P384(_) => "JwtPublicKey::P384",
            Self::P521(_) => "JwtPublicKey::P521",
        })
    }
}

impl PartialEq for JwtPublicKey {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Self::Rsa { n, e }, Self::Rsa { n: n2, e: e2 }) => n == n2 && e == e2,
            (Self::P256(a), Self::P256(b)) | (Self::P384(a), Self::P384(b)) => a == b,
            (Self::P521(a), Self::P521(b)) => a == b,
            _ => false,
        }
    }
}

impl Eq for JwtPublicKey {}

/// Why a signature was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignatureError {
    /// The key cannot make signatures of that algorithm (an RSA key for ES256, a P-256 key for
    /// ES384…): a token must not choose how its key is used.
    KeyMismatch,
    /// The signature does not verify.
    Invalid,
}

impl JwtPublicKey {
    /// Compiles a public JWK: `kty` RSA with `n` and `e` (at least 2048 bits), or EC with
    /// `crv` P-256, P-384 or P-521 and its `x` and `y`. Private parameters are refused.
    ///
    /// # Errors
    /// What is wrong with the key, for the bundle's error message.
    pub fn from_jwk(key: &serde_json::Map<String, serde_json::Value>) -> Result<Self, String> {
        let param = |name: &str| -> Result<Vec<u8>, String> {
            let text = key
                .get(name)
                .and_then(|v| v.as_str())
                .ok_or_else(|| format!("needs \"{name}\""))?;
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(text)
                .map_err(|e| format!("\"{name}\" is not base64url: {e}"))
        };
        if ["d", "p", "q", "dp", "dq", "qi", "k"]
            .iter()
            .any(|private| key.contains_key(*private))
        {
            return Err("holds private key material: a bundle has public keys only".into());
        }
        match key.get("kty").and_then(|v| v.as_str()) {
            Some("RSA") => {
                // RFC 7518 §6.3.1 wants the fewest octets; tolerate leading zeros, which
                // some encoders write, rather than fail every signature later.
                let mut n = param("n")?;
                let leading = n.iter().take_while(|b| **b == 0).count();
                n.drain(..leading);
                let mut e = param("e")?;
                let leading = e.iter().take_while(|b| **b == 0).count();
                e.drain(..leading);
                let exponent = e.iter().try_fold(0u64, |acc, b| {
                    acc.checked_mul(256).map(|acc| acc + u64::from(*b))
                });
                if !matches!(exponent, Some(value) if value >= 65537 && value % 2 == 1 && value < (1 << 33))
                {
                    return Err(
                        "the RSA public exponent \"e\" must be odd, at least 65537 (AQAB) and below 2^33".into(),
                    );
                }
                let bits = n.first().map_or(0, |first| {
                    (n.len() - 1) * 8 + (8 - first.leading_zeros() as usize)
                });
                if n.last().is_some_and(|last| last % 2 == 0) {
                    return Err("the RSA modulus \"n\" is even, so it is not an RSA modulus".into());
                }
                if bits < 2048 {
                    return Err(format!(
                        "an RSA key of {bits} bits is too short (at least 2048)"
                    ));
                }
                if bits > 8192 {
                    return Err(format!(
                        "an RSA key of {bits} bits is too long (at most 8192)"
                    ));
                }
                Ok(Self::Rsa { n, e })
            }
            Some("EC") => {
                let crv = key.get("crv").and_then(|v| v.as_str());
                let size = match crv {
                    Some("P-256") => 32,
                    Some("P-384") => 48,
                    Some("P-521") => 66,
                    other => {
                        return Err(format!(
                            "EC curve {} is not one JWT-SVIDs use (P-256, P-384, P-521)",
                            named(other)
                        ));
                    }
                };
                let mut point = vec![4u8];
                for coordinate in ["x", "y"] {
                    let bytes = param(coordinate)?;
                    if bytes.len() != size {
                        return Err(format!("\"{coordinate}\" is not {size} bytes long"));
                    }
                    point.extend_from_slice(&bytes);
                }
                let off_curve = |curve: &str| format!("x and y are not a point of {curve}");
                match crv {
                    Some("P-256") => p256::PublicKey::from_sec1_bytes(&point)
                        .map(|_| Self::P256(point))
                        .map_err(|_| off_curve("P-256")),
                    Some("P-384") => p384::PublicKey::from_sec1_bytes(&point)
                        .map(|_| Self::P384(point))
                        .map_err(|_| off_curve("P-384")),
                    _ => p521::ecdsa::VerifyingKey::from_sec1_bytes(&point)
                        .map(|key| Self::P521(Box::new(key)))
                        .map_err(|_| off_curve("P-521")),
                }
            }
            other => Err(format!(
                "kty {} is not one JWT-SVIDs use (RSA or EC)",
                named(other)
            )),
        }
    }

    /// Verifies a JWS signature (RFC 7515 §5.2) over `message` (the signing input,
    /// `header.payload`): PKCS#1 v1.5 or PSS for RSA, and for EC the fixed-size `r ‖ s`
    /// signature of RFC 7518 §3.4.
    ///
    /// # Errors
    /// [`SignatureError::KeyMismatch`] when this key does not make `algorithm`'s signatures;
    /// [`SignatureError::Invalid`] when the signature does not verify.
    pub fn verify(
        &self,
        algorithm: JwsAlgorithm,
        message: &[u8],
        signature: &[u8],
    ) -> Result<(), SignatureError> {
        use JwsAlgorithm as A;
        let ring_verify = |params: &'static dyn signature::VerificationAlgorithm, point: &[u8]| {
            UnparsedPublicKey::new(params, point)
                .verify(message, signature)
                .map_err(|_| SignatureError::Invalid)
        };
        match (self, algorithm) {
            (
                Self::Rsa { n, e },
                A::Rs256 | A::Rs384 | A::Rs512 | A::Ps256 | A::Ps384 | A::Ps512,
            ) => {
                let params: &'static signature::RsaParameters = match algorithm {
                    A::Rs256 => &signature::RSA_PKCS1_2048_8192_SHA256,
                    A::Rs384 => &signature::RSA_PKCS1_2048_8192_SHA384,
                    A::Rs512 => &signature::RSA_PKCS1_2048_8192_SHA512,
                    A::Ps256 => &signature::RSA_PSS_2048_8192_SHA256,
                    A::Ps384 => &signature::RSA_PSS_2048_8192_SHA384,
                    _ => &signature::RSA_PSS_2048_8192_SHA512,
                };
                RsaPublicKeyComponents { n, e }
                    .verify(params, message, signature)
                    .map_err(|_| SignatureError::Invalid)
            }
            (Self::P256(point), A::Es256) => {
                ring_verify(&signature::ECDSA_P256_SHA256_FIXED, point)
            }
            (Self::P384(point), A::Es384) => {
                ring_verify(&signature::ECDSA_P384_SHA384_FIXED, point)
            }
            (Self::P521(key), A::Es512) => {
                use p521::ecdsa::signature::Verifier as _;
                let signature = p521::ecdsa::Signature::from_slice(signature)
                    .map_err(|_| SignatureError::Invalid)?;
                key.verify(message, &signature)
                    .map_err(|_| SignatureError::Invalid)
            }
            _ => Err(SignatureError::KeyMismatch),
        }
    }
}

/// A JWK parameter's value for a message: quoted, or `missing`.
fn named(value: Option<&str>) -> String {
    value.map_or_else(|| "missing".to_owned(), |v| format!("{v:?}"))
}
