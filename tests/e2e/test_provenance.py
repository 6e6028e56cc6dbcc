"""Workload provenance end to end, through two real Envoy 1.40 hops:

    client ──mTLS──▶ gateway Envoy (SANITIZE_SET) ──mTLS──▶ sidecar Envoy (APPEND_FORWARD) ──▶ upstream
                                                               │ ext_authz (mTLS)
                                                               ▼
                                                            Warrant ──OTLP──▶ collector (in this test)

The sidecar is examples/envoy/envoy.yaml as shipped, with `forward_client_cert_details`
switched to APPEND_FORWARD. Warrant believes XFCC from the gateway only (`trust.forwarders`),
so the original caller is `origin`; a client writing its own XFCC straight to the sidecar is
not believed; a JWT-SVID naming another workload than the mTLS peer is identity relay. The
trace shows both identities. The XFCC strings Envoy wrote are checked for the exact shape the
parser's tests (tests/fixtures/xfcc/) were captured from.
"""

import base64
import json
import os
import re
import subprocess
import sys
import time
from concurrent import futures
from pathlib import Path

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc

sys.path.insert(0, str(Path(__file__).resolve().parent))
from stack import ENVOY, Stack, free_port, make_certs, port_open, wait_for  # noqa: E402
from test_tracing import Collector, log_line  # noqa: E402

GATEWAY = make_certs.GATEWAY
AUDIENCE = make_certs.PAYMENTS

RULES = f"""
  - id: xfcc-spoofed
    effect: deny
    when: source.xfcc_spoofed
  - id: deny-identity-relay
    effect: deny
    when: workload.verified && !workload.bound && source.spiffe_id != "{GATEWAY}"
  - id: gateway-carries-shop
    effect: allow
    when: >
      source.spiffe_id == "{GATEWAY}" && origin.via == "xfcc" && origin.namespace == "shop"
      && proxy_chain.size() == 2 && proxy_chain[1].uri == source.spiffe_id
      && request.path.startsWith("/orders/")
  - id: own-token
    effect: allow
    when: workload.bound && request.path.startsWith("/orders/")
"""

GATEWAY_ENVOY = """
admin: {address: {socket_address: {address: 127.0.0.1, port_value: ADMIN}}}
static_resources:
  listeners:
    - name: gateway
      address: {socket_address: {address: 127.0.0.1, port_value: LISTENER}}
      filter_chains:
        - transport_socket:
            name: envoy.transport_sockets.tls
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext
              require_client_certificate: true
              common_tls_context:
                tls_certificates:
                  - certificate_chain: {filename: certs/ingressgateway.pem}
                    private_key: {filename: certs/ingressgateway.key}
                validation_context: {trusted_ca: {filename: certs/prod-ca.pem}}
          filters:
            - name: envoy.filters.network.http_connection_manager
              typed_config:
                "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
                stat_prefix: gateway
                # The gateway states who its client was, and drops whatever the client claimed.
                forward_client_cert_details: SANITIZE_SET
                set_current_client_cert_details: {subject: true, uri: true, dns: true}
                route_config:
                  virtual_hosts:
                    - name: all
                      domains: ["*"]
                      routes: [{match: {prefix: "/"}, route: {cluster: sidecar}}]
                http_filters:
                  - name: envoy.filters.http.router
                    typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}
  clusters:
    - name: sidecar
      type: STATIC
      connect_timeout: 1s
      load_assignment:
        cluster_name: sidecar
        endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: SIDECAR}}}}]}]
      transport_socket:
        name: envoy.transport_sockets.tls
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext
          common_tls_context:
            tls_certificates:
              - certificate_chain: {filename: certs/ingressgateway.pem}
                private_key: {filename: certs/ingressgateway.key}
            validation_context:
              trusted_ca: {filename: certs/prod-ca.pem}
              match_typed_subject_alt_names:
                - {san_type: URI, matcher: {exact: "spiffe://prod.example.org/ns/shop/sa/payments"}}
"""


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class JwtAuthority:
    """An ES256 JWT-SVID signing key of prod.example.org."""

    def __init__(self):
        self.key = ec.generate_private_key(ec.SECP256R1())

    def jwk(self):
        n = self.key.public_key().public_numbers()
        return {"use": "jwt-svid", "kid": "e2e", "kty": "EC", "crv": "P-256",
                "x": b64url(n.x.to_bytes(32, "big")), "y": b64url(n.y.to_bytes(32, "big"))}

    def token(self, sub, aud=AUDIENCE):
        header = b64url(json.dumps({"alg": "ES256", "kid": "e2e", "typ": "JWT"}).encode())
        claims = b64url(json.dumps({"sub": sub, "aud": [aud], "exp": int(time.time()) + 600}).encode())
        r, s = decode_dss_signature(self.key.sign(f"{header}.{claims}".encode(), ec.ECDSA(hashes.SHA256())))
        return f"{header}.{claims}.{b64url(r.to_bytes(32, 'big') + s.to_bytes(32, 'big'))}"


def with_provenance(policy):
    """The example policy, its bundle a SPIFFE bundle (the CA and the JWT authority), the
    gateway a forwarder, and workload tokens for the payments service read."""
    policy = policy.replace("prod.example.org: certs/prod-ca.pem", "prod.example.org: prod-bundle.json")
    return policy.replace(
        "  require_certificate: true\n",
        "  require_certificate: true\n"
        f"  forwarders: [\"{GATEWAY}\"]\n"
        f"  workload_tokens: {{audiences: [\"{AUDIENCE}\"]}}\n",
        1,
    )


def sidecar_appends(envoy_yaml):
    assert "forward_client_cert_details: SANITIZE\n" in envoy_yaml
    return envoy_yaml.replace(
        "forward_client_cert_details: SANITIZE\n",
        "forward_client_cert_details: APPEND_FORWARD\n"
        "                set_current_client_cert_details: {subject: true, uri: true, dns: true}\n",
    )


@pytest.fixture(scope="module")
def hops(tmp_path_factory):
    collector = Collector()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(collector, server)
    otlp = free_port()
    server.add_insecure_port(f"127.0.0.1:{otlp}")
    server.start()
    authority = JwtAuthority()
    tmp = tmp_path_factory.mktemp("provenance")

    def write_bundle(tmp, certs):
        """prod.example.org's SPIFFE bundle: the demo CA and the JWT authority."""
        ca = x509.load_pem_x509_certificate((certs / "prod-ca.pem").read_bytes())
        der = ca.public_bytes(serialization.Encoding.DER)
        (tmp / "prod-bundle.json").write_text(json.dumps({"keys": [
            {"use": "x509-svid", "kty": "EC", "crv": "P-256", "x5c": [base64.b64encode(der).decode()]},
            authority.jwk(),
        ]}))

    stack = Stack(
        tmp,
        envoy_config=sidecar_appends,
        extra_rules=RULES,
        policy_config=with_provenance,
        prepare=write_bundle,
        warrant_config=(
            "telemetry:\n  service_name: warrant\n"
            f"  otlp: {{endpoint: \"http://127.0.0.1:{otlp}\"}}\n"
            "decision_log: {to: decisions.jsonl}\n"
        ),
    )
    ports = {"listener": free_port(), "admin": free_port()}
    config = (GATEWAY_ENVOY.replace("ADMIN", str(ports["admin"]))
              .replace("LISTENER", str(ports["listener"]))
              .replace("SIDECAR", str(stack.ports["listener"])))
    (tmp / "gateway.yaml").write_text(config)
    log = open(tmp / "gateway.log", "wb")
    gateway = subprocess.Popen(
        [ENVOY, "-c", "gateway.yaml", "--disable-hot-restart", "-l", "warning"],
        cwd=tmp, stdout=log, stderr=subprocess.STDOUT,
    )
    try:
        wait_for(lambda: port_open(ports["listener"]), "the gateway Envoy to listen", proc=gateway)
        yield stack, ports["listener"], authority, collector
    finally:
        gateway.terminate()
        gateway.wait(timeout=10)
        log.close()
        stack.stop()
        server.stop(0)
        if os.environ.get("E2E_SHOW_LOGS"):
            print((tmp / "warrant.log").read_text(), (tmp / "gateway.log").read_text())


def via_gateway(stack, gateway_port, client, path, headers=None):
    """A request from `client` to the gateway, which forwards it to the sidecar."""
    listener = stack.ports["listener"]
    stack.ports["listener"] = gateway_port
    try:
        return stack.request(client, "GET", path, headers=headers)
    finally:
        stack.ports["listener"] = listener


def xfcc_seen(body):
    return dict(json.loads(body)["headers"]).get("x-forwarded-client-cert")


def span_of(collector, decision_id, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for _, span in collector.snapshot():
            attributes = {a.key: a.value for a in span.attributes}
            if attributes.get("authz.decision_id") and attributes["authz.decision_id"].string_value == decision_id:
                return {k: (v.string_value if v.HasField("string_value") else v.bool_value)
                        for k, v in attributes.items()}
        time.sleep(0.2)
    raise AssertionError(f"no span for {decision_id}")


def test_the_original_caller_is_the_origin(hops):
    stack, gateway, _, collector = hops
    status, _, body = via_gateway(stack, gateway, "frontend", "/orders/7")
    assert status == 200, body
    xfcc = xfcc_seen(body)
    # SANITIZE_SET at the gateway, then APPEND_FORWARD at the sidecar: two elements, the
    # gateway's first. Hash is hex SHA-256; Subject is always quoted.
    pattern = (
        rf'By={re.escape(GATEWAY)};Hash=[0-9a-f]{{64}};Subject="O=Warrant demo";URI={re.escape(make_certs.FRONTEND)},'
        rf'By={re.escape(make_certs.PAYMENTS)};Hash=[0-9a-f]{{64}};Subject="O=Warrant demo";URI={re.escape(GATEWAY)};DNS=localhost'
    )
    assert re.fullmatch(pattern, xfcc), xfcc
    request_id = dict(json.loads(body)["headers"])["x-request-id"]
    line = log_line(stack, lambda l: l["request_id"] == request_id)
    assert line["rule"] == "gateway-carries-shop"
    assert line["spiffe_id"] == GATEWAY
    assert (line["origin_spiffe_id"], line["origin_via"]) == (make_certs.FRONTEND, "xfcc")
    assert line["proxy_chain"] == [make_certs.FRONTEND, GATEWAY]
    span = span_of(collector, line["decision_id"])
    assert span["spiffe.id"] == GATEWAY
    assert (span["origin.spiffe_id"], span["origin.via"]) == (make_certs.FRONTEND, "xfcc")


def test_a_client_without_an_svid_behind_the_gateway_is_not_an_origin(hops):
    stack, gateway, _, _ = hops
    # The dns-only certificate has no URI SAN: the gateway's element has DNS= only, so the
    # hop is not trusted and the origin stays the gateway itself.
    status, _, body = via_gateway(stack, gateway, "dns-only", "/orders/7")
    assert status == 403, body
    decision_id = json.loads(body)["decision_id"]
    line = log_line(stack, lambda l: l["decision_id"] == decision_id)
    assert (line["origin_spiffe_id"], line["origin_via"]) == (GATEWAY, "mtls")


def test_an_xfcc_written_by_a_client_is_not_believed(hops):
    stack, _, _, collector = hops
    forged = f'By={GATEWAY};Hash=00;Subject="";URI={make_certs.CHECKOUT}'
    status, _, body = stack.request(
        "frontend", "GET", "/orders/7", headers={"x-forwarded-client-cert": forged})
    assert status == 403, body
    decision_id = json.loads(body)["decision_id"]
    line = log_line(stack, lambda l: l["decision_id"] == decision_id)
    assert line["rule"] == "xfcc-spoofed"
    assert line["xfcc_spoofed"] is True
    assert (line["origin_spiffe_id"], line["origin_via"]) == (make_certs.FRONTEND, "mtls")
    assert "proxy_chain" not in line
    assert span_of(collector, decision_id)["xfcc.spoofed"] is True


def test_a_relayed_request_with_a_foreign_workload_token_is_denied(hops):
    stack, _, authority, collector = hops
    token = authority.token(make_certs.FRONTEND)
    status, _, body = stack.request(
        "checkout", "GET", "/orders/7", headers={"authorization": f"Bearer {token}"})
    assert status == 403, body
    decision_id = json.loads(body)["decision_id"]
    line = log_line(stack, lambda l: l["decision_id"] == decision_id)
    assert line["rule"] == "deny-identity-relay"
    assert line["spiffe_id"] == make_certs.CHECKOUT
    assert line["workload_spiffe_id"] == make_certs.FRONTEND
    assert (line["workload_verified"], line["identity_bound"]) == (True, False)
    # The trace shows both identities, and never the token.
    span = span_of(collector, decision_id)
    assert span["spiffe.id"] == make_certs.CHECKOUT
    assert span["workload.spiffe_id"] == make_certs.FRONTEND
    assert (span["workload.verified"], span["identity.bound"]) == (True, False)
    assert token not in (stack.tmp / "decisions.jsonl").read_text()
    assert not any(token.split(".")[2] in str(s) for _, s in collector.snapshot())
    # The same workload with its own token is allowed.
    own = authority.token(make_certs.CHECKOUT)
    status, _, body = stack.request(
        "checkout", "GET", "/orders/7", headers={"authorization": f"Bearer {own}"})
    assert status == 200, body
