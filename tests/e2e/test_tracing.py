"""End-to-end tracing: real Envoy 1.40 with its OpenTelemetry tracer and real Warrant both
export to an OTLP collector inside this test. Envoy's spans and Warrant's `authz.check` span
must form one trace, with `authz.check` a child of Envoy's ext_authz client span.

Runs examples/envoy/envoy.yaml as shipped (ports rewritten), the authz channel over mTLS."""

import json
import os
import sys
import threading
import time
from concurrent import futures
from pathlib import Path

import grpc
import pytest
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

sys.path.insert(0, str(Path(__file__).resolve().parent))
from stack import Stack, free_port, make_certs  # noqa: E402


class Collector(trace_service_pb2_grpc.TraceServiceServicer):
    """OTLP/gRPC trace receiver: keeps (service.name, span) pairs."""

    def __init__(self):
        self.spans = []
        self.lock = threading.Lock()

    def Export(self, request, context):  # noqa: N802 (gRPC method name)
        with self.lock:
            for rs in request.resource_spans:
                service = next(
                    (a.value.string_value for a in rs.resource.attributes if a.key == "service.name"),
                    "",
                )
                for ss in rs.scope_spans:
                    self.spans.extend((service, span) for span in ss.spans)
        return trace_service_pb2.ExportTraceServiceResponse()

    def snapshot(self):
        with self.lock:
            return list(self.spans)


def attrs(span):
    return {a.key: a.value.string_value for a in span.attributes}


@pytest.fixture(scope="module")
def traced(tmp_path_factory):
    collector = Collector()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(collector, server)
    port = free_port()
    server.add_insecure_port(f"127.0.0.1:{port}")
    server.start()

    stack = Stack(
        tmp_path_factory.mktemp("tracing"),
        otlp_port=port,
        warrant_config=(
            "telemetry:\n  service_name: warrant\n"
            f"  otlp: {{endpoint: \"http://127.0.0.1:{port}\"}}\n"
            "decision_log: {to: decisions.jsonl}\n"
        ),
        # Evaluated first, fails on every request that carries a token (the engine's own error
        # would quote it), and so never matches.
        extra_rules=(
            "\n  - id: token-compared-badly\n    effect: allow\n"
            "    when: request.headers[\"authorization\"] > 5\n"
        ),
    )
    yield stack, collector
    stack.stop()
    server.stop(0)
    if os.environ.get("E2E_SHOW_LOGS"):
        print((stack.tmp / "warrant.log").read_text(), (stack.tmp / "envoy.log").read_text())


def log_line(stack, predicate, timeout=10):
    """The first decision-log line matching predicate (the log is written asynchronously)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        path = stack.tmp / "decisions.jsonl"
        if path.exists():
            for text in path.read_text().splitlines():
                line = json.loads(text)
                if predicate(line):
                    return line
        time.sleep(0.1)
    raise AssertionError("no matching decision-log line")


def wait_for_trace(collector, decision_id, timeout=30):
    """Warrant's span for decision_id and every span of its trace, once Envoy's arrived."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        spans = collector.snapshot()
        ours = [s for svc, s in spans if attrs(s).get("authz.decision_id") == decision_id]
        if ours:
            trace = [(svc, s) for svc, s in spans if s.trace_id == ours[0].trace_id]
            if any(svc == "envoy-ingress" for svc, _ in trace) and len(trace) >= 3:
                return ours[0], trace
        time.sleep(0.2)
    raise AssertionError(f"no complete trace for {decision_id}: {collector.snapshot()}")


@pytest.mark.parametrize(
    "client,method,path,status,decision",
    [
        ("frontend", "GET", "/payments/7", 200, "allow"),
        ("frontend", "GET", "/admin/x", 404, "deny"),
        ("dev-frontend", "GET", "/payments/7", 403, "deny"),
    ],
)
def test_envoy_and_warrant_spans_form_one_trace(traced, client, method, path, status, decision):
    stack, collector = traced
    got, headers, body = stack.request(client, method, path, headers={"authorization": "Bearer s3cr3t"})
    assert got == status, body
    if decision == "deny":
        decision_id = json.loads(body)["decision_id"]
    else:
        # Allowed: find the decision by the x-request-id Envoy gave the request (the echo
        # upstream shows it), which the decision log records.
        request_id = dict(json.loads(body)["headers"])["x-request-id"]
        decision_id = log_line(stack, lambda l: l["request_id"] == request_id)["decision_id"]

    ours, trace = wait_for_trace(collector, decision_id)
    a = attrs(ours)
    assert ours.name == "authz.check"
    assert a["authz.decision"] == decision
    assert a["peer.principal"]
    if client == "frontend":
        assert a["spiffe.id"] == make_certs.FRONTEND
    else:
        assert a["authz.stage"] == "trust" and "spiffe.id" not in a

    # Correct parenting: Warrant's span is a child of an Envoy span of the same trace (the
    # ext_authz gRPC client span), which descends from Envoy's ingress (server) span.
    by_id = {s.span_id: (svc, s) for svc, s in trace}
    parent_svc, parent = by_id[ours.parent_span_id]
    assert parent_svc == "envoy-ingress"
    assert parent.kind == 3, f"parent is Envoy's ext_authz CLIENT span, got {parent}"
    root_svc, root = by_id[parent.parent_span_id]
    assert (root_svc, root.kind) == ("envoy-ingress", 2), "which descends from Envoy's SERVER span"
    if decision == "allow":
        # The rule that fails on the token ran; its failure is on the span, the token is not.
        assert ours.status.code == 2 and "token-compared-badly" in ours.status.message
    assert not any("s3cr3t" in str(s) for svc, s in trace if svc == "warrant")

    # The decision log line carries the same trace and span ids.
    line = log_line(stack, lambda l: l["decision_id"] == decision_id)
    assert line["trace_id"] == ours.trace_id.hex()
    assert line["span_id"] == ours.span_id.hex()
    assert "s3cr3t" not in (stack.tmp / "decisions.jsonl").read_text()
