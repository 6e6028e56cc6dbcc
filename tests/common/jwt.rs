//! Test JWT-SVID authorities: keys of every algorithm JWT-SVID allows, their bundle JWKs, and
//! tokens signed (or forged) as each test needs.

use base64::Engine as _;
use ring::rand::SystemRandom;
use ring::signature::{self, EcdsaKeyPair, KeyPair as _, RsaKeyPair};
use serde_json::{Value, json};

/// A test-only RSA 2048 key (PKCS#1 RSAPrivateKey, DER): ring verifies RSA but cannot generate keys.
const RSA_DER: &[u8] = include_bytes!("../fixtures/jwt-rsa-2048.der");

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

enum Key {
    Ec(EcdsaKeyPair, &'static str, usize),
    P521(Box<p521::ecdsa::SigningKey>),
    Rsa(RsaKeyPair),
}

/// One signing key of a trust domain's JWT authority, named `kid`.
pub(crate) struct JwtSigner {
    pub kid: String,
    pub alg: &'static str,
    key: Key,
}

impl JwtSigner {
    /// A new key for `alg` (RS*, PS*, ES256/384/512).
    pub(crate) fn new(alg: &'static str, kid: &str) -> Self {
        let rng = SystemRandom::new();
        let ec = |params: &'static signature::EcdsaSigningAlgorithm, crv, size| {
            let pkcs8 = EcdsaKeyPair::generate_pkcs8(params, &rng).unwrap();
            Key::Ec(
                EcdsaKeyPair::from_pkcs8(params, pkcs8.as_ref(), &rng).unwrap(),
                crv,
                size,
            )
        };
        let key = match alg {
            "ES256" => ec(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, "P-256", 32),
            "ES384" => ec(&signature::ECDSA_P384_SHA384_FIXED_SIGNING, "P-384", 48),
            "ES512" => {
                let mut seed = [0u8; 66];
                ring::rand::SecureRandom::fill(&rng, &mut seed[2..]).unwrap();
                Key::P521(Box::new(
                    p521::ecdsa::SigningKey::from_slice(&seed).unwrap(),
                ))
            }
            _ => Key::Rsa(RsaKeyPair::from_der(RSA_DER).unwrap()),
        };
        Self {
            kid: kid.to_owned(),
            alg,
            key,
        }
    }

    /// This key as a `jwt-svid` entry of a SPIFFE bundle.
    pub(crate) fn jwk(&self) -> Value {
        let mut jwk = match &self.key {
            Key::Ec(pair, crv, size) => {
                let point = pair.public_key().as_ref();
                json!({"kty": "EC", "crv": crv, "x": b64(&point[1..1 + size]), "y": b64(&point[1 + size..])})
            }
            Key::P521(key) => {
                let point = key.verifying_key().to_sec1_bytes();
                json!({"kty": "EC", "crv": "P-521", "x": b64(&point[1..67]), "y": b64(&point[67..])})
            }
            Key::Rsa(pair) => {
                let public = signature::RsaPublicKeyComponents::<Vec<u8>>::from(pair.public());
                json!({"kty": "RSA", "n": b64(&public.n), "e": b64(&public.e)})
            }
        };
        jwk["use"] = json!("jwt-svid");
        jwk["kid"] = json!(self.kid);
        jwk
    }

    /// Signs `header` (completed with `alg` and `kid` unless given) and `claims`.
    pub(crate) fn sign_with(&self, mut header: Value, claims: &Value) -> String {
        if header.get("alg").is_none() {
            header["alg"] = json!(self.alg);
        }
        if header.get("kid").is_none() {
            header["kid"] = json!(self.kid);
        }
        let input = format!(
            "{}.{}",
            b64(header.to_string().as_bytes()),
            b64(claims.to_string().as_bytes())
        );
        let signature = self.signature(input.as_bytes());
        format!("{input}.{}", b64(&signature))
    }

    /// A JWT-SVID for `sub` and `aud`, expiring in an hour.
    pub(crate) fn token(&self, sub: &str, aud: &str) -> String {
        self.sign_with(
            json!({"typ": "JWT"}),
            &json!({"sub": sub, "aud": [aud], "exp": now() + 3600, "iat": now()}),
        )
    }

    fn signature(&self, message: &[u8]) -> Vec<u8> {
        let rng = SystemRandom::new();
        match &self.key {
            Key::Ec(pair, _, _) => pair.sign(&rng, message).unwrap().as_ref().to_vec(),
            Key::P521(key) => {
                use p521::ecdsa::signature::Signer as _;
                let signature: p521::ecdsa::Signature = key.sign(message);
                signature.to_bytes().to_vec()
            }
            Key::Rsa(pair) => {
                let padding: &'static dyn signature::RsaEncoding = match self.alg {
                    "RS384" => &signature::RSA_PKCS1_SHA384,
                    "RS512" => &signature::RSA_PKCS1_SHA512,
                    "PS256" => &signature::RSA_PSS_SHA256,
                    "PS384" => &signature::RSA_PSS_SHA384,
                    "PS512" => &signature::RSA_PSS_SHA512,
                    _ => &signature::RSA_PKCS1_SHA256,
                };
                let mut signature = vec![0; pair.public().modulus_len()];
                pair.sign(padding, &rng, message, &mut signature).unwrap();
                signature
            }
        }
    }
}

/// Now, Unix seconds.
pub(crate) fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// A SPIFFE bundle (JSON) holding `keys`.
pub(crate) fn bundle(keys: &[Value]) -> String {
    json!({"keys": keys}).to_string()
}
