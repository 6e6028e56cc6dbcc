"""End-to-end: a real Envoy 1.40 with a downstream mTLS listener and the HTTP ext_authz filter,
asking a real `warrant serve` process, in front of an upstream that records what it receives.

Uses examples/envoy/{envoy.yaml,policy.yaml,make_certs.py} as shipped (ports and paths
rewritten), so the example stays correct. A missing Envoy fails these tests; it never skips.
"""

import http.client
import json
import ssl
import sys
from pathlib import Path

import httpx
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from stack import make_certs, running  # noqa: E402

@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    yield from running(tmp_path_factory, "e2e")


def upstream_hits(stack, before):
    return stack.upstream.seen[before:]


def header_values(hit, name):
    return [v for k, v in hit["headers"] if k == name]


def test_allowed_request_reaches_upstream_with_verified_identity(stack):
    before = len(stack.upstream.seen)
    status, _, _ = stack.request(
        "frontend", "GET", "/payments/42",
        headers={"x-spiffe-id": "spiffe://prod.example.org/ns/ops/sa/admin"},  # forged
    )
    assert status == 200
    hits = upstream_hits(stack, before)
    assert len(hits) == 1
    assert header_values(hits[0], "x-spiffe-id") == [make_certs.FRONTEND]
    assert header_values(hits[0], "x-tenant") == ["shop"]


def test_other_workload_other_rule(stack):
    status, _, _ = stack.request("checkout", "POST", "/payments/", body=b"{}")
    assert status == 200
    hit = stack.upstream.seen[-1]
    assert header_values(hit, "x-spiffe-id") == [make_certs.CHECKOUT]
    assert header_values(hit, "x-tenant") == []


def deny_body(status, headers, body, expected_status):
    assert status == expected_status, body
    assert headers.get("content-type") == "application/json"
    decoded = json.loads(body)
    assert decoded["decision"] == "deny"
    assert len(decoded["decision_id"]) == 36
    return decoded


def test_no_matching_rule_is_denied(stack):
    before = len(stack.upstream.seen)
    decoded = deny_body(*stack.request("frontend", "DELETE", "/payments/42"), 403)
    assert decoded["stage"] == "default"
    assert decoded["rule"] is None
    assert upstream_hits(stack, before) == []


def test_deny_rule_with_custom_status(stack):
    before = len(stack.upstream.seen)
    decoded = deny_body(*stack.request("frontend", "GET", "/admin/users"), 404)
    assert decoded == {**decoded, "stage": "rules", "rule": "no-admin"}
    assert upstream_hits(stack, before) == []


@pytest.mark.parametrize("client", ["dev-frontend", "impostor", "dns-only"])
def test_untrusted_callers_are_denied_before_rules(stack, client):
    # dev-frontend: trust domain not accepted. impostor: a prod ID signed by the dev CA, which
    # Envoy's TLS layer accepts but which does not chain to prod's bundle. dns-only: Envoy puts
    # the DNS SAN into principal; not a SPIFFE ID.
    before = len(stack.upstream.seen)
    decoded = deny_body(*stack.request(client, "GET", "/payments/42"), 403)
    assert decoded["stage"] == "trust"
    assert upstream_hits(stack, before) == []


def test_repeated_forged_identity_headers_are_all_replaced(stack):
    before = len(stack.upstream.seen)
    forged = "spiffe://prod.example.org/ns/ops/sa/admin"
    status, _, _ = stack.request(
        "frontend", "GET", "/payments/42", headers=[("x-spiffe-id", forged), ("X-Spiffe-Id", forged)]
    )
    assert status == 200
    (hit,) = upstream_hits(stack, before)
    assert header_values(hit, "x-spiffe-id") == [make_certs.FRONTEND]


@pytest.mark.parametrize(
    "path",
    [
        "/payments/../admin/users",  # dot segments
        "/payments/%2E%2E/admin/users",  # encoded dot segments
        "//admin/users",  # repeated slashes
        "/payments/..%2Fadmin/users",  # escaped slash
        "/payments/..%2fadmin/users",
        "/payments/..%5Cadmin/users",  # escaped backslash
    ],
)
def test_path_tricks_do_not_walk_around_a_deny_rule(stack, path):
    # frontend may GET /payments/*; no-admin denies /admin. With the example's path
    # normalisation the rules see what the upstream would act on.
    before = len(stack.upstream.seen)
    status, _, body = stack.request("frontend", "GET", path)
    hits = upstream_hits(stack, before)
    assert status != 200, (status, body)
    assert not any("admin" in hit["path"] for hit in hits), hits


def test_http2_client(stack):
    before = len(stack.upstream.seen)
    with httpx.Client(http2=True, verify=stack.tls_context("frontend"), timeout=10) as client:
        response = client.get(
            f"https://127.0.0.1:{stack.ports['listener']}/payments/42",
            headers={"x-spiffe-id": "spiffe://prod.example.org/ns/ops/sa/admin"},
        )
        assert response.http_version == "HTTP/2"
        assert response.status_code == 200
        (hit,) = upstream_hits(stack, before)
        assert header_values(hit, "x-spiffe-id") == [make_certs.FRONTEND]
        denied = client.delete(f"https://127.0.0.1:{stack.ports['listener']}/payments/42")
        assert denied.http_version == "HTTP/2"
        deny_body(denied.status_code, dict(denied.headers), denied.content, 403)


def test_no_client_certificate_is_refused_by_tls(stack):
    ctx = ssl.create_default_context(cafile=str(stack.certs / "prod-ca.pem"))
    conn = http.client.HTTPSConnection("127.0.0.1", stack.ports["listener"], context=ctx, timeout=10)
    with pytest.raises((ssl.SSLError, ConnectionError, http.client.RemoteDisconnected)):
        conn.request("GET", "/payments/42")
        conn.getresponse()
    conn.close()


def test_zz_fails_closed_when_warrant_is_down(stack):
    # Last in this module: stops Warrant. failure_mode_allow: false => Envoy denies.
    stack.warrant.terminate()
    assert stack.warrant.wait(timeout=10) == 0, "warrant should exit 0 on SIGTERM"
    before = len(stack.upstream.seen)
    status, _, _ = stack.request("frontend", "GET", "/payments/42")
    assert status == 503, "an error, not a policy deny (status_on_error)"
    assert upstream_hits(stack, before) == []
