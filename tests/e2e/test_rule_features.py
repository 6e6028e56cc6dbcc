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


EXT_AUTHZ = """                  - name: envoy.filters.http.ext_authz
                    typed_config:
                      "@type": type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthz
"""

# Before ext_authz, a filter that turns a header set by a trusted proxy into metadata; ext_authz
# then sends that metadata, the buffered body and the TLS session.
CONTEXT_FILTERS = """                  - name: envoy.filters.http.header_to_metadata
                    typed_config:
                      "@type": type.googleapis.com/envoy.extensions.filters.http.header_to_metadata.v3.Config
                      request_rules:
                        - header: x-image-signed
                          on_header_present: {metadata_namespace: posture, key: image_signed, type: STRING}
                          remove: true
""" + EXT_AUTHZ + """                      with_request_body: {max_request_bytes: 1024, allow_partial_message: true}
                      include_tls_session: true
                      metadata_context_namespaces: [posture]
"""

CONTEXT_RULES = """
  - id: unsigned-image
    effect: deny
    when: has(metadata.posture) && metadata.posture.image_signed == "false"
  - id: body-says-hello
    effect: allow
    when: request.path == "/echo" && request.body == "hello" && request.size == 5
  - id: ledger-read
    effect: allow
    when: request.grpc.service == "ledger.v1.Ledger" && request.grpc.method == "Read"
"""


@pytest.fixture(scope="module")
def context_stack(tmp_path_factory):
    def with_context(cfg):
        assert EXT_AUTHZ in cfg
        return cfg.replace(EXT_AUTHZ, CONTEXT_FILTERS, 1)

    yield from running(tmp_path_factory, "context", envoy_config=with_context, extra_rules=CONTEXT_RULES)


def test_body_reaches_rules(context_stack):
    status, _, _ = context_stack.request("frontend", "POST", "/echo", body=b"hello")
    assert status == 200
    status, _, _ = context_stack.request("frontend", "POST", "/echo", body=b"other")
    assert status == 403


def test_grpc_service_and_method_reach_rules(context_stack):
    headers = {"content-type": "application/grpc"}
    status, allowed, _ = context_stack.request("frontend", "POST", "/ledger.v1.Ledger/Read", headers=headers)
    assert status == 200 and "grpc-status" not in allowed
    # Envoy answers a denied gRPC call as gRPC does: HTTP 200 with grpc-status 7
    # (PERMISSION_DENIED, from the 403).
    status, denied, _ = context_stack.request("frontend", "POST", "/ledger.v1.Ledger/Write", headers=headers)
    assert (status, denied.get("grpc-status")) == (200, "7")


def test_metadata_from_an_earlier_filter_reaches_rules(context_stack):
    path = "/payments/42"
    assert context_stack.request("frontend", "GET", path)[0] == 200
    assert context_stack.request("frontend", "GET", path, headers={"x-image-signed": "true"})[0] == 200
    status, _, body = context_stack.request("frontend", "GET", path, headers={"x-image-signed": "false"})
    assert status == 403
    assert json.loads(body)["rule"] == "unsigned-image"


@pytest.fixture(scope="module")
def refusing_stack(tmp_path_factory):
    # Warrant admits another caller only: Envoy's connection is closed after the handshake.
    yield from running(
        tmp_path_factory, "mtls-refused",
        warrant_config=(
            "tls:\n  cert: certs/warrant.pem\n  key: certs/warrant.key\n  client_ca: certs/prod-ca.pem\n"
            "  allowed_callers: [\"spiffe://prod.example.org/ns/ops/sa/*\"]\n"
        ),
    )


def test_the_authz_channel_is_mtls_and_admits_allowed_callers_only(stack, refusing_stack):
    # The shipped setup: Envoy presents its SVID to Warrant, which admits it.
    assert stack.request("frontend", "GET", "/payments/42")[0] == 200
    # An Envoy not in allowed_callers gets no decision: it fails closed.
    before = len(refusing_stack.upstream.seen)
    status, _, _ = refusing_stack.request("frontend", "GET", "/payments/42")
    assert status == 503, "an error, not a policy deny (status_on_error)"
    assert refusing_stack.upstream.seen[before:] == []
    refusing_stack.warrant_log.flush()
    log = (refusing_stack.tmp / "warrant.log").read_text()
    assert "caller not in tls.allowed_callers" in log, log


def access_log_lines(stack):
    stack.envoy_log.flush()
    lines = []
    for text in (stack.tmp / "envoy.log").read_text().splitlines():
        if text.startswith("{"):
            try:
                lines.append(json.loads(text))
            except ValueError:
                pass
    return lines


def test_envoys_access_log_carries_warrants_decision(stack):
    import time
    status, _, body = stack.request("frontend", "GET", "/tea")
    assert status == 418
    decision_id = json.loads(body)["decision_id"]
    for _ in range(50):
        matching = [l for l in access_log_lines(stack) if l.get("authz_decision_id") == decision_id]
        if matching:
            break
        time.sleep(0.1)
    assert matching, "the access log names the decision"
    line = matching[0]
    assert line["authz_decision"] == "deny"
    assert line["authz_rule"] == "teapot"
    assert line["authz_spiffe_id"] == make_certs.FRONTEND
    assert len(line["authz_policy_revision"]) == 12
    assert line["status"] == 418
