//! X.509-SVID parsing (SPIFFE X509-SVID.md): the leaf certificate a workload presents, as
//! Envoy forwards it in `source.certificate` (URL-encoded PEM).
//!
//! This checks the shape the standard requires of a leaf SVID, which does not depend on time or
//! on the operator's trust policy. Validity windows, lifetime limits and chain verification are
//! the trust stage's job (`crate::trust`).

use std::borrow::Cow;

use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::GeneralName;
use x509_parser::pem::Pem;
use x509_parser::prelude::FromDer;

use super::spiffe_id::{SpiffeId, SpiffeIdError};

/// Why a certificate is not a usable leaf X.509-SVID.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SvidError {
    /// The certificate field is not URL-encoded UTF-8 text.
    #[error("certificate is not valid URL-encoded UTF-8 PEM")]
    Encoding,
    /// The PEM is malformed; holds the parser's message.
    #[error("certificate PEM is malformed: {0}")]
    Pem(String),
    /// The certificate field holds no PEM block.
    #[error("certificate field holds no PEM certificate")]
    NoCertificate,
    /// The certificate field holds several PEM blocks, where only the leaf is expected; holds
    /// how many.
    #[error("certificate field holds {0} PEM blocks, expected exactly one leaf certificate")]
    NotExactlyOne(usize),
    /// The PEM block is not a `CERTIFICATE`; holds its label.
    #[error("PEM block is a {0:?}, expected a CERTIFICATE")]
    WrongPemLabel(String),
    /// The certificate's DER does not parse, has trailing bytes, or has a malformed extension.
    #[error("certificate DER is malformed: {0}")]
    Der(String),
    /// The certificate does not have exactly one URI SAN (X509-SVID §2); holds how many it has.
    #[error("certificate has {0} URI SANs, an X509-SVID has exactly one")]
    UriSanCount(usize),
    /// The URI SAN is not a valid SPIFFE ID (SPIFFE ID §2).
    #[error("certificate URI SAN is not a valid SPIFFE ID: {0}")]
    InvalidSpiffeId(SpiffeIdError),
    /// The URI SAN is a trust domain's own ID, without a path (SPIFFE ID §2.2); holds it.
    #[error("certificate URI SAN {0} names a trust domain, not a workload")]
    NotAWorkload(String),
    /// The certificate is a CA (`cA` true), which a leaf SVID must not be (X509-SVID §4.1).
    #[error("certificate is a CA (basicConstraints cA=true), not a leaf SVID")]
    IsCa,
    /// The certificate has no keyUsage extension, so it cannot assert `digitalSignature`
    /// (X509-SVID §4.3).
    #[error("certificate has no keyUsage extension; a leaf SVID must assert digitalSignature")]
    NoKeyUsage,
    /// keyUsage lacks `digitalSignature` (X509-SVID §4.3).
    #[error("certificate keyUsage lacks digitalSignature")]
    NoDigitalSignature,
    /// keyUsage asserts `keyCertSign` or `cRLSign`, which a leaf SVID must not (X509-SVID §4.3).
    #[error("certificate keyUsage asserts keyCertSign or cRLSign, which a leaf SVID must not")]
    SigningKeyUsage,
}

/// A leaf certificate that has the shape of an X509-SVID.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct X509Svid {
    der: Vec<u8>,
    spiffe_id: SpiffeId,
    serial: String,
    not_before: i64,
    not_after: i64,
    dns_names: Vec<String>,
}

impl X509Svid {
    /// Parses the URL-encoded PEM Envoy sends in `attributes.source.certificate` when the
    /// ext_authz filter sets `include_peer_certificate: true`. Plain PEM is accepted as well.
    pub fn from_url_encoded_pem(encoded: &str) -> Result<Self, SvidError> {
        let pem: Cow<'_, str> = percent_encoding::percent_decode_str(encoded)
            .decode_utf8()
            .map_err(|_| SvidError::Encoding)?;
        Self::from_pem(pem.as_bytes())
    }

    /// Parses PEM holding exactly one CERTIFICATE block.
    pub fn from_pem(pem: &[u8]) -> Result<Self, SvidError> {
        let mut blocks = Vec::with_capacity(1);
        for block in Pem::iter_from_buffer(pem) {
            blocks.push(block.map_err(|e| SvidError::Pem(e.to_string()))?);
        }
        let block = match blocks.len() {
            0 => return Err(SvidError::NoCertificate),
            1 => blocks.remove(0),
            n => return Err(SvidError::NotExactlyOne(n)),
        };
        if block.label != "CERTIFICATE" {
            return Err(SvidError::WrongPemLabel(block.label));
        }
        Self::from_der(block.contents)
    }

    /// Parses DER and checks the leaf SVID shape (X509-SVID.md §2, §4.1, §4.3).
    pub fn from_der(der: Vec<u8>) -> Result<Self, SvidError> {
        let svid = {
            let (rest, cert) =
                X509Certificate::from_der(&der).map_err(|e| SvidError::Der(e.to_string()))?;
            if !rest.is_empty() {
                return Err(SvidError::Der(format!(
                    "{} trailing bytes after the certificate",
                    rest.len()
                )));
            }
            Self::check_shape(&cert)?
        };
        Ok(Self { der, ..svid })
    }

    fn check_shape(cert: &X509Certificate<'_>) -> Result<Self, SvidError> {
        let sans = cert
            .subject_alternative_name()
            .map_err(|e| SvidError::Der(e.to_string()))?;
        let names = sans
            .map(|ext| ext.value.general_names.as_slice())
            .unwrap_or(&[]);
        // X509-SVID.md §2: "An X.509 SVID MUST contain exactly one URI SAN".
        let uris: Vec<&str> = names
            .iter()
            .filter_map(|name| match name {
                GeneralName::URI(uri) => Some(*uri),
                _ => None,
            })
            .collect();
        let [uri] = uris.as_slice() else {
            return Err(SvidError::UriSanCount(uris.len()));
        };
        let spiffe_id = SpiffeId::parse(uri).map_err(SvidError::InvalidSpiffeId)?;
        if !spiffe_id.is_workload() {
            return Err(SvidError::NotAWorkload(spiffe_id.to_string()));
        }
        let dns_names = names
            .iter()
            .filter_map(|name| match name {
                // DNS names compare case-insensitively (RFC 4343): rules see them in lower case.
                GeneralName::DNSName(dns) => Some(dns.to_ascii_lowercase()),
                _ => None,
            })
            .collect();

        // X509-SVID.md §4.1: leaf SVIDs MUST set cA to false.
        let basic = cert
            .basic_constraints()
            .map_err(|e| SvidError::Der(e.to_string()))?;
        if basic.is_some_and(|ext| ext.value.ca) {
            return Err(SvidError::IsCa);
        }
        // X509-SVID.md §4.3: leaf SVIDs MUST set digitalSignature and MUST NOT set keyCertSign
        // or cRLSign. go-spiffe rejects a leaf without keyUsage for the same reason.
        let key_usage = cert
            .key_usage()
            .map_err(|e| SvidError::Der(e.to_string()))?
            .ok_or(SvidError::NoKeyUsage)?
            .value;
        if !key_usage.digital_signature() {
            return Err(SvidError::NoDigitalSignature);
        }
        if key_usage.key_cert_sign() || key_usage.crl_sign() {
            return Err(SvidError::SigningKeyUsage);
        }

        let validity = cert.validity();
        Ok(Self {
            der: Vec::new(),
            spiffe_id,
            serial: cert.raw_serial_as_string(),
            not_before: validity.not_before.timestamp(),
            not_after: validity.not_after.timestamp(),
            dns_names,
        })
    }

    /// The DER encoding, for chain verification.
    pub fn der(&self) -> &[u8] {
        &self.der
    }

    /// The SPIFFE ID in the certificate's URI SAN.
    pub fn spiffe_id(&self) -> &SpiffeId {
        &self.spiffe_id
    }

    /// The serial number as colon-separated hex, e.g. `1f:a0:...`.
    pub fn serial(&self) -> &str {
        &self.serial
    }

    /// notBefore, in seconds since the Unix epoch.
    pub fn not_before(&self) -> i64 {
        self.not_before
    }

    /// notAfter, in seconds since the Unix epoch.
    pub fn not_after(&self) -> i64 {
        self.not_after
    }

    /// notAfter − notBefore, in seconds.
    pub fn lifetime_secs(&self) -> i64 {
        self.not_after.saturating_sub(self.not_before)
    }

    /// DNS SANs in lower case (RFC 4343), in certificate order.
    pub fn dns_names(&self) -> &[String] {
        &self.dns_names
    }
}
