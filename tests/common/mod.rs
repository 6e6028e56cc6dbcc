//! Test certificate factory: CAs per trust domain and X.509-SVIDs shaped as each test needs.
#![allow(dead_code)]

pub(crate) mod fixtures;
pub(crate) mod jwt;
pub(crate) mod policy;

use std::time::{Duration, SystemTime};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};

/// A certificate authority of one trust domain.
pub(crate) struct Ca {
    pub pem: String,
    pub der: Vec<u8>,
    issuer: Issuer<'static, KeyPair>,
}

/// The parameters of a CA certificate named `name`, valid from `not_before` to `not_after`.
fn ca_params(name: &str, not_before: SystemTime, not_after: SystemTime) -> CertificateParams {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.distinguished_name.push(DnType::CommonName, name);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params.not_before = not_before.into();
    params.not_after = not_after.into();
    params
}

impl Ca {
    /// A root CA valid from a day ago for a year.
    pub(crate) fn new(name: &str) -> Self {
        let now = SystemTime::now();
        Self::valid(
            name,
            now - Duration::from_secs(86_400),
            now + Duration::from_secs(365 * 86_400),
        )
    }

    /// A root CA valid from `not_before` to `not_after`.
    pub(crate) fn valid(name: &str, not_before: SystemTime, not_after: SystemTime) -> Self {
        let key = KeyPair::generate().unwrap();
        let params = ca_params(name, not_before, not_after);
        let cert = params.self_signed(&key).unwrap();
        Self {
            pem: cert.pem(),
            der: cert.der().to_vec(),
            issuer: Issuer::new(params, key),
        }
    }

    /// An intermediate CA signed by this one, valid from a day ago for a month.
    pub(crate) fn intermediate(&self, name: &str) -> Ca {
        let now = SystemTime::now();
        let key = KeyPair::generate().unwrap();
        let params = ca_params(
            name,
            now - Duration::from_secs(86_400),
            now + Duration::from_secs(30 * 86_400),
        );
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        Self {
            pem: cert.pem(),
            der: cert.der().to_vec(),
            issuer: Issuer::new(params, key),
        }
    }

    /// This CA as an `x509-svid` key of a SPIFFE bundle.
    pub(crate) fn jwk(&self) -> serde_json::Value {
        use base64::Engine as _;
        serde_json::json!({
            "use": "x509-svid",
            "kty": "EC",
            "x5c": [base64::engine::general_purpose::STANDARD.encode(&self.der)],
        })
    }

    /// A leaf SVID for `spiffe_id`, valid from an hour ago for a day.
    pub(crate) fn svid(&self, spiffe_id: &str) -> Leaf {
        self.leaf(LeafSpec::svid(spiffe_id))
    }

    pub(crate) fn leaf(&self, spec: LeafSpec) -> Leaf {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params
            .distinguished_name
            .push(DnType::CommonName, "workload");
        params.subject_alt_names = spec
            .uris
            .iter()
            .map(|u| SanType::URI(u.as_str().try_into().unwrap()))
            .chain(
                spec.dns
                    .iter()
                    .map(|d| SanType::DnsName(d.as_str().try_into().unwrap())),
            )
            .collect();
        params.is_ca = if spec.ca {
            IsCa::Ca(BasicConstraints::Unconstrained)
        } else {
            IsCa::ExplicitNoCa
        };
        params.key_usages = spec.key_usages.clone();
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ClientAuth,
            ExtendedKeyUsagePurpose::ServerAuth,
        ];
        params.not_before = spec.not_before.into();
        params.not_after = spec.not_after.into();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        Leaf {
            pem: cert.pem(),
            key_pem: key.serialize_pem(),
        }
    }
}

/// What a test leaf certificate looks like.
#[derive(Clone)]
pub(crate) struct LeafSpec {
    pub uris: Vec<String>,
    pub dns: Vec<String>,
    pub ca: bool,
    pub key_usages: Vec<KeyUsagePurpose>,
    pub not_before: SystemTime,
    pub not_after: SystemTime,
}

impl LeafSpec {
    pub(crate) fn svid(spiffe_id: &str) -> Self {
        let now = SystemTime::now();
        Self {
            uris: vec![spiffe_id.to_owned()],
            dns: Vec::new(),
            ca: false,
            key_usages: vec![KeyUsagePurpose::DigitalSignature],
            not_before: now - Duration::from_secs(3600),
            not_after: now + Duration::from_secs(23 * 3600),
        }
    }
}

/// A leaf certificate and its private key.
pub(crate) struct Leaf {
    pub pem: String,
    pub key_pem: String,
}

impl Leaf {
    /// The certificate as Envoy forwards it in `source.certificate`.
    pub(crate) fn url_encoded(&self) -> String {
        url_encode(&self.pem)
    }
}

/// Percent-encodes like Envoy does for `source.certificate` (everything but unreserved).
pub(crate) fn url_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len() * 2);
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
