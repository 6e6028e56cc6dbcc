"""The admin listener's status page in a real headless Chromium (Debian's `chromium`): it
renders, and shows the serving policy's revision, its rules with their counts, the audit sinks
and the listeners' TLS. A missing Chromium fails this test; it never skips (.ci/run installs
it)."""

import json
import os
import shutil
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from stack import free_port, running  # noqa: E402

CHROMIUM = os.environ.get("CHROMIUM_BIN") or shutil.which("chromium") or "/usr/bin/chromium"
ADMIN = free_port()


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    yield from running(tmp_path_factory, "status", warrant_config=f"admin: {{listen: 127.0.0.1:{ADMIN}}}\n")


def test_status_page_renders_in_chromium(stack):
    assert Path(CHROMIUM).is_file(), f"Chromium not found at {CHROMIUM}: .ci/run installs Debian's chromium"
    # Some decisions to count.
    assert stack.request("frontend", "GET", "/payments/42")[0] == 200
    assert stack.request("frontend", "GET", "/admin/x")[0] == 404
    status = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{ADMIN}/status", timeout=5).read())
    revision = status["policy"]["revision"]
    dom = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--dump-dom",
         f"http://127.0.0.1:{ADMIN}/"],
        capture_output=True, text=True, timeout=60, check=True,
    ).stdout
    assert "<title>Warrant status</title>" in dom
    assert revision in dom
    # Every rule of the policy is in the rules table, with the counts /status reports.
    for rule in status["rules"]:
        assert f"<td>{rule['id']}</td>" in dom, rule
    assert "<td>no-admin</td><td>deny</td><td>enforce</td><td>1</td>" in dom, dom
    assert status["listeners"]["grpc"]["tls"] == "mTLS"
    assert "<th>TLS</th><td>mTLS</td>" in dom
