"""End-to-end: what a rule's headers do through a real Envoy 1.40 — `response_headers` reach the
client, `remove_headers` never reach the upstream (and cannot strip Warrant's identity
header), a deny rule's `headers` and `status` shape the denied response, and a shadow rule
changes nothing."""

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from stack import make_certs, running  # noqa: E402

RULES = """
  - id: teapot
    effect: deny
    when: request.path == "/tea"
    status: 418
    headers: {retry-after: "120", x-denied-by: warrant}
  - id: shadow-deny-everything
    effect: deny
    mode: audit
    when: "true"
  - id: strip-token
    effect: allow
    when: request.path.glob("/tokens/**") && request.headers["x-workload-token"] == "t0k3n"
    headers: {x-token-checked: "yes"}
    response_headers: {cache-control: no-store, x-authz: warrant}
    remove_headers: [x-workload-token, x-spiffe-id]
"""


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    yield from running(tmp_path_factory, "rule-features", extra_rules=RULES)


def values(hit, name):
    return [v for k, v in hit["headers"] if k == name]


def test_response_and_removed_headers(stack):
    before = len(stack.upstream.seen)
    status, headers, _ = stack.request(
        "frontend", "GET", "/tokens/1", headers={"x-workload-token": "t0k3n"}
    )
    assert status == 200
    assert headers.get("cache-control") == "no-store"
    assert headers.get("x-authz") == "warrant"
    hits = stack.upstream.seen[before:]
    assert len(hits) == 1
    assert values(hits[0], "x-workload-token") == []
    assert values(hits[0], "x-token-checked") == ["yes"]
    # Removing the identity header is ignored: Warrant sets it.
    assert values(hits[0], "x-spiffe-id") == [make_certs.FRONTEND]


def test_deny_rule_status_and_headers(stack):
    before = len(stack.upstream.seen)
    status, headers, body = stack.request("frontend", "GET", "/tea")
    assert status == 418
    assert headers.get("retry-after") == "120"
    assert headers.get("x-denied-by") == "warrant"
    assert headers.get("content-type") == "application/json"
    assert json.loads(body)["rule"] == "teapot"
    assert stack.upstream.seen[before:] == []


def test_shadow_rule_never_decides(stack):
    status, _, _ = stack.request("frontend", "GET", "/payments/42")
    assert status == 200
