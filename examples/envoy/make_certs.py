#!/usr/bin/env python3
"""Generate a demo PKI for Warrant + Envoy: two trust domains' CAs and X.509-SVIDs.

    python3 make_certs.py [OUT_DIR]        # default: ./certs

Writes (PEM):
  prod-ca.pem            CA of trust domain prod.example.org (Warrant's bundle for it)
  dev-ca.pem             CA of trust domain dev.example.org
  envoy.pem/.key         Envoy's server certificate (localhost, 127.0.0.1, SPIFFE ID of the payments service)
  frontend.pem/.key      spiffe://prod.example.org/ns/shop/sa/frontend
  checkout.pem/.key      spiffe://prod.example.org/ns/shop/sa/checkout
  ingressgateway.pem/.key spiffe://prod.example.org/ns/istio-system/sa/ingressgateway (an ingress gateway)
  dev-frontend.pem/.key  spiffe://dev.example.org/ns/shop/sa/frontend (a trust domain the demo policy does not accept)
  impostor.pem/.key      spiffe://prod.example.org/ns/shop/sa/frontend signed by the *dev* CA
  dns-only.pem/.key      no URI SAN, only DNS frontend.shop.svc (not an SVID)
  client-cas.pem         prod + dev CAs: what Envoy accepts at the TLS layer

Needs the `cryptography` package. The end-to-end tests import this module.
"""

import datetime
import ipaddress
import sys
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

PROD = "prod.example.org"
DEV = "dev.example.org"
FRONTEND = f"spiffe://{PROD}/ns/shop/sa/frontend"
CHECKOUT = f"spiffe://{PROD}/ns/shop/sa/checkout"
OPS_ADMIN = f"spiffe://{PROD}/ns/ops/sa/admin"
PAYMENTS = f"spiffe://{PROD}/ns/shop/sa/payments"
WARRANT = f"spiffe://{PROD}/ns/warrant/sa/warrant"
GATEWAY = f"spiffe://{PROD}/ns/istio-system/sa/ingressgateway"
DEV_FRONTEND = f"spiffe://{DEV}/ns/shop/sa/frontend"


def _pem(cert):
    return cert.public_bytes(serialization.Encoding.PEM)


def _key_pem(key):
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _key_usage(ca):
    """digitalSignature always; keyCertSign and cRLSign only for a CA (X509-SVID.md §4.3)."""
    return x509.KeyUsage(
        digital_signature=True, key_cert_sign=ca, crl_sign=ca,
        content_commitment=False, key_encipherment=False, data_encipherment=False,
        key_agreement=False, encipher_only=False, decipher_only=False,
    )


class Ca:
    """A self-signed CA of one trust domain."""

    def __init__(self, trust_domain):
        now = datetime.datetime.now(datetime.timezone.utc)
        self.key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Warrant demo"),
            x509.NameAttribute(NameOID.COMMON_NAME, f"{trust_domain} CA"),
        ])
        self.name = name
        self.cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=365))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(_key_usage(ca=True), critical=True)
            .add_extension(
                x509.SubjectKeyIdentifier.from_public_key(self.key.public_key()), critical=False
            )
            .sign(self.key, hashes.SHA256())
        )
        self.pem = _pem(self.cert)

    def issue(self, uris=(), dns=(), ips=(), hours=12):
        """Issue a leaf: an X509-SVID when given exactly one SPIFFE URI."""
        now = datetime.datetime.now(datetime.timezone.utc)
        key = ec.generate_private_key(ec.SECP256R1())
        sans = (
            [x509.UniformResourceIdentifier(u) for u in uris]
            + [x509.DNSName(d) for d in dns]
            + [x509.IPAddress(ipaddress.ip_address(i)) for i in ips]
        )
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Warrant demo")]))
            .issuer_name(self.name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(hours=hours))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(_key_usage(ca=False), critical=True)
            .add_extension(
                x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]),
                critical=False,
            )
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()),
                critical=False,
            )
        )
        if sans:
            builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=True)
        cert = builder.sign(self.key, hashes.SHA256())
        return _pem(cert), _key_pem(key)


def write_all(out_dir):
    """Write the demo PKI into out_dir and return out_dir as a Path."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    prod, dev = Ca(PROD), Ca(DEV)
    (out / "prod-ca.pem").write_bytes(prod.pem)
    (out / "dev-ca.pem").write_bytes(dev.pem)
    (out / "client-cas.pem").write_bytes(prod.pem + dev.pem)
    leaves = {
        "envoy": prod.issue(uris=[PAYMENTS], dns=["localhost"], ips=["127.0.0.1"]),
        # Warrant's own SVID, for the mTLS authz channel between Envoy and Warrant.
        "warrant": prod.issue(uris=[WARRANT], dns=["localhost"], ips=["127.0.0.1"]),
        "frontend": prod.issue(uris=[FRONTEND]),
        # An ingress gateway in front of the payments sidecar (the provenance tests).
        "ingressgateway": prod.issue(uris=[GATEWAY], dns=["localhost"], ips=["127.0.0.1"]),
        "checkout": prod.issue(uris=[CHECKOUT]),
        "ops-admin": prod.issue(uris=[OPS_ADMIN]),
        "dev-frontend": dev.issue(uris=[DEV_FRONTEND]),
        "impostor": dev.issue(uris=[FRONTEND]),
        "dns-only": prod.issue(dns=["frontend.shop.svc"]),
    }
    for name, (cert, key) in leaves.items():
        (out / f"{name}.pem").write_bytes(cert)
        (out / f"{name}.key").write_bytes(key)
    return out


if __name__ == "__main__":
    target = write_all(sys.argv[1] if len(sys.argv) > 1 else "certs")
    print(f"wrote demo PKI to {target}/")
