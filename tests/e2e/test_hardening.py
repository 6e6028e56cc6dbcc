"""End-to-end hardening through a real Envoy 1.40 with the shipped configuration
(examples/envoy): host names compared case-insensitively, a forged identity header stripped
on routes without ext_authz, and Envoy's own check of the header mutations an ext_authz server
asks for (framing, connection, routing and Envoy headers refused), as defence in depth."""

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
import fake_authz  # noqa: E402
from stack import make_certs, running  # noqa: E402


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    yield from running(tmp_path_factory, "hardening")


@pytest.mark.parametrize(
    "host",
    [
        "admin.example.org",
        "Admin.Example.Org",
        "ADMIN.EXAMPLE.ORG",
        "Admin.Example.Org.",
        "admin.example.org:{port}",
        "Admin.Example.Org.:{port}",
        "admin.example.org:1:2",
        "ADMIN.example.org::",
    ],
)
def test_host_rules_cannot_be_walked_around_by_case_port_or_trailing_dot(stack, host):
    # admin-host-ops-only denies the admin virtual host to everyone outside ops; Envoy routes
    # every spelling below to that virtual host (it matches domains case-insensitively).
    host = host.format(port=stack.ports["listener"])
    before = len(stack.upstream.seen)
    status, _, body = stack.request("frontend", "GET", "/payments/42", host=host)
    assert status == 403, (host, status, body)
    assert json.loads(body)["rule"] == "admin-host-ops-only"
    assert stack.upstream.seen[before:] == []


def test_ops_reaches_the_admin_host_and_others_keep_their_own(stack):
    status, _, body = stack.request("ops-admin", "GET", "/status", host="Admin.Example.Org")
    assert status == 200, body
    assert json.loads(body)["headers"]
    status, _, _ = stack.request("frontend", "GET", "/payments/42", host="shop.example.org")
    assert status == 200


def test_forged_identity_header_never_reaches_the_upstream_on_a_route_without_ext_authz(stack):
    before = len(stack.upstream.seen)
    forged = "spiffe://prod.example.org/ns/ops/sa/admin"
    status, _, _ = stack.request("frontend", "GET", "/healthz", headers={"x-spiffe-id": forged})
    assert status == 200
    (hit,) = stack.upstream.seen[before:]
    assert [v for k, v in hit["headers"] if k == "x-spiffe-id"] == []
    # And on a checked route the early removal leaves Warrant's own value in place.
    status, _, _ = stack.request("frontend", "GET", "/payments/42", headers={"x-spiffe-id": forged})
    assert status == 200
    assert [v for k, v in stack.upstream.seen[-1]["headers"] if k == "x-spiffe-id"] == [make_certs.FRONTEND]


@pytest.mark.parametrize(
    "name",
    ["x-tenant", "forwarded", "x-forwarded-host", "x-original-url", "x-http-method-override"],
)
def test_headers_rules_set_and_routing_overrides_are_removed_from_client_requests(stack, name):
    # checkout's rule sets no x-tenant; a client-sent one must not stand in for the rule's.
    before = len(stack.upstream.seen)
    status, _, _ = stack.request(
        "checkout", "POST", "/payments/", headers={name: "admin.example.org"}, body=b"{}"
    )
    assert status == 200
    (hit,) = stack.upstream.seen[before:]
    assert [v for k, v in hit["headers"] if k == name] == []


@pytest.mark.parametrize("name", ["x_spiffe_id", "X_Spiffe_Id", "x_tenant"])
def test_header_names_with_underscores_are_refused(stack, name):
    # CGI-style upstreams read x_spiffe_id as x-spiffe-id: Envoy refuses such names outright.
    before = len(stack.upstream.seen)
    status, _, _ = stack.request(
        "frontend", "GET", "/healthz", headers={name: "spiffe://prod.example.org/ns/ops/sa/admin"}
    )
    assert status == 400
    assert stack.upstream.seen[before:] == []


@pytest.fixture(scope="module")
def misbehaving(tmp_path_factory):
    yield from running(tmp_path_factory, "mutations", authz=fake_authz.serve)


@pytest.mark.parametrize(
    "name,value",
    [
        ("content-length", "0"),
        ("transfer-encoding", "chunked"),
        ("connection", "close"),
        ("upgrade", "websocket"),
        ("te", "trailers"),
        ("expect", "100-continue"),
        ("host", "admin.example.org"),
        (":authority", "admin.example.org"),
        (":path", "/admin/users"),
        ("x-envoy-upstream-rq-timeout-ms", "1"),
        ("x-tenant", "shop\x01"),
        ("x-tenant", "shop\x7f"),
    ],
)
def test_envoy_refuses_mutations_that_change_framing_routing_or_are_invalid(misbehaving, name, value):
    before = len(misbehaving.upstream.seen)
    body = b"GET /admin/users HTTP/1.1\r\nHost: x\r\n\r\n"
    status, _, _ = misbehaving.request(
        "frontend", "POST", "/payments/",
        headers={"x-test-set-headers": json.dumps([[name, value]])}, body=body,
    )
    assert status == 500, (name, status)
    assert misbehaving.upstream.seen[before:] == []


def test_envoy_passes_ordinary_mutations(misbehaving):
    before = len(misbehaving.upstream.seen)
    status, _, _ = misbehaving.request(
        "frontend", "GET", "/payments/42",
        headers={"x-test-set-headers": json.dumps([["x-tenant", "Zürich shop"]])},
    )
    assert status == 200
    (hit,) = misbehaving.upstream.seen[before:]
    assert [v for k, v in hit["headers"] if k == "x-tenant"]
