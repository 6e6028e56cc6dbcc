#!/usr/bin/env python3
"""Writes the seed inputs of every fuzz target into fuzz/corpus/<target>/seed-*.

Run with the test venv's Python (it needs `cryptography`): .venv/bin/python fuzz/make_seeds.py
The corpora committed beside the seeds were grown by cargo fuzz from them and minimised
(cargo fuzz cmin); tests/fuzz_corpora.rs replays all of them.
"""
import base64
import datetime
import glob
import json
import os
import urllib.parse

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.x509.oid import NameOID

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CORPUS = os.path.join(ROOT, "fuzz", "corpus")


def write(target, name, data):
    folder = os.path.join(CORPUS, target)
    os.makedirs(folder, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(folder, "seed-" + name), "wb") as f:
        f.write(data)


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def certificate(spiffe_id, issuer_key=None, issuer_name=None, ca=False):
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "SPIRE")])
    now = datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer_name or name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if spiffe_id:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.UniformResourceIdentifier(spiffe_id)]),
            critical=False,
        )
    usage = dict(
        digital_signature=True, content_commitment=False, key_encipherment=False,
        data_encipherment=False, key_agreement=False, key_cert_sign=ca, crl_sign=ca,
        encipher_only=False, decipher_only=False,
    )
    builder = builder.add_extension(x509.KeyUsage(**usage), critical=True)
    cert = builder.sign(issuer_key or key, hashes.SHA256())
    return key, cert


def main():
    # SPIFFE IDs: the shared conformance vectors.
    with open(os.path.join(ROOT, "..", "shared", "conformance", "spiffe-id-vectors.tsv")) as f:
        rows = [line.split("\t")[0] for line in f if not line.startswith("#")]
    for i, row in enumerate(rows):
        write("spiffe_id", f"{i:02}", row)

    # X.509-SVIDs: a CA and a leaf, as PEM, URL-encoded PEM and DER.
    ca_key, ca = certificate("spiffe://prod.example.org", ca=True)
    _, leaf = certificate("spiffe://prod.example.org/ns/shop/sa/frontend", ca_key, ca.subject)
    leaf_pem = leaf.public_bytes(serialization.Encoding.PEM).decode()
    ca_pem = ca.public_bytes(serialization.Encoding.PEM).decode()
    write("x509_svid", "leaf.pem", leaf_pem)
    write("x509_svid", "leaf.urlpem", urllib.parse.quote(leaf_pem, safe=""))
    write("x509_svid", "leaf.der", leaf.public_bytes(serialization.Encoding.DER))
    write("x509_svid", "chain.pem", leaf_pem + ca_pem)

    # XFCC: Envoy 1.40's own headers (tests/fixtures/xfcc) and a forwarded certificate.
    for path in sorted(glob.glob(os.path.join(ROOT, "tests", "fixtures", "xfcc", "*.txt"))):
        with open(path) as f:
            write("xfcc", os.path.basename(path), f.read().strip())
    write(
        "xfcc", "cert",
        'By=spiffe://prod.example.org/ns/edge/sa/gateway;Hash=ab12;Cert="'
        + urllib.parse.quote(leaf_pem, safe="") + '";URI=spiffe://prod.example.org/ns/shop/sa/frontend;DNS=a.example.org,'
        'By=spiffe://prod.example.org/ns/pay/sa/api;URI=spiffe://prod.example.org/ns/edge/sa/gateway;Subject="CN=x,O=y"',
    )

    # JWT-SVIDs: signed with the target's key (RFC 7515 A.3) where it matters, plus others.
    d = int.from_bytes(base64.urlsafe_b64decode("jpsQnnGQmL-YBIffH1136cspYG6-0iY7X1fCE9-E9LI="), "big")
    jwt_key = ec.derive_private_key(d, ec.SECP256R1())
    def token(header, claims):
        signing_input = (b64url(json.dumps(header).encode()) + "." + b64url(json.dumps(claims).encode())).encode()
        r, s = decode_dss_signature(jwt_key.sign(signing_input, ec.ECDSA(hashes.SHA256())))
        return signing_input.decode() + "." + b64url(r.to_bytes(32, "big") + s.to_bytes(32, "big"))
    claims = {"sub": "spiffe://prod.example.org/ns/shop/sa/frontend", "aud": ["warrant"],
              "exp": 1_800_000_600, "iat": 1_800_000_000}
    write("jwt_svid", "valid", token({"alg": "ES256", "kid": "fuzz", "typ": "JWT"}, claims))
    write("jwt_svid", "expired", token({"alg": "ES256", "kid": "fuzz"}, {**claims, "exp": 1}))
    write("jwt_svid", "none", b64url(b'{"alg":"none"}') + "." + b64url(json.dumps(claims).encode()) + ".")
    write("jwt_svid", "hs256", token({"alg": "HS256", "kid": "fuzz"}, claims))

    # Bundles: SPIFFE bundle JSON (x509-svid and jwt-svid keys) and PEM.
    numbers = ca.public_key().public_numbers()
    jwk_x509 = {"kty": "EC", "crv": "P-256", "use": "x509-svid",
                "x": b64url(numbers.x.to_bytes(32, "big")), "y": b64url(numbers.y.to_bytes(32, "big")),
                "x5c": [base64.b64encode(ca.public_bytes(serialization.Encoding.DER)).decode()]}
    jwk_jwt = {"kty": "EC", "crv": "P-256", "use": "jwt-svid", "kid": "fuzz",
               "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
               "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}
    write("bundle", "spiffe.json", json.dumps({"keys": [jwk_x509, jwk_jwt], "spiffe_refresh_hint": 300, "spiffe_sequence": 1}))
    write("bundle", "ca.pem", ca_pem)

    # Trace context: traceparent, tracestate, b3, x-b3-traceid, x-b3-spanid, x-b3-sampled.
    write("trace_context", "w3c", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01\nrojo=00f067aa0ba902b7")
    write("trace_context", "b3", "\n\n80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1-05e3ac9a4f6e3b90")
    write("trace_context", "b3multi", "\n\n\n463ac35c9f6413ad48485a3953bb6124\n0020000000000001\n1")

    # Request JSON (warrant eval) and the policies: the shipped examples.
    requests = [
        {"attributes": {"source": {"principal": "spiffe://prod.example.org/ns/shop/sa/frontend",
                                   "address": {"socketAddress": {"address": "10.1.2.3", "portValue": 4242}}},
                        "request": {"http": {"method": "GET", "path": "/payments/42?expand=1", "host": "payments.example.org",
                                             "headers": {"x-env": "prod", "x-debug": "1"}, "body": "ok"}}}},
        {"attributes": {"source": {"principal": "spiffe://prod.example.org/ns/edge/sa/gateway"},
                        "request": {"http": {"method": "POST", "path": "/admin/x",
                                             "headers": {"x-forwarded-client-cert": "By=spiffe://prod.example.org/ns/edge/sa/gateway;URI=spiffe://prod.example.org/ns/shop/sa/frontend"}}}}},
        {"attributes": {}},
    ]
    for i, request in enumerate(requests):
        write("request_json", f"{i}.json", json.dumps(request))
    for path in sorted(glob.glob(os.path.join(ROOT, "config", "**", "*.yaml"), recursive=True)):
        with open(path) as f:
            text = f.read()
        if "rules:" in text:
            write("policy", os.path.relpath(path, ROOT).replace("/", "_"), text)

    # Function specs: business_hours spec, zone, glob pattern, text, CIDR.
    write("cel_specs", "berlin", "Mon-Fri 09:00-17:00\nEurope/Berlin\n/payments/**\n/payments/42/x\n10.0.0.0/8")
    write("cel_specs", "night", "Sat 22:00-02:00\nUTC\n/a/*/c\n/a/b/c\nfd00::/8")

    # CheckRequest protobuf: the benchmark's (bench/check_request.rs), written by the floor.
    payload = os.path.join(ROOT, "target", "check.grpc")
    if os.path.exists(payload):
        with open(payload, "rb") as f:
            write("check_request", "bench", f.read()[5:])


if __name__ == "__main__":
    main()
