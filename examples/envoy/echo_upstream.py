#!/usr/bin/env python3
"""A protected service for the demo: answers every request with 200 and a JSON echo of the
method, path and headers it received, so you can see what Envoy forwarded (e.g. x-spiffe-id).

    python3 echo_upstream.py [PORT] [HOST]     # default 8080 on 127.0.0.1

The end-to-end tests use it as their upstream and read `seen` to assert what arrived.
"""

import http.server
import json
import sys


class EchoUpstream(http.server.ThreadingHTTPServer):
    """Records every request in `seen` and echoes it back as JSON."""

    def __init__(self, port, quiet=True, host="127.0.0.1"):
        self.seen = []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def _serve(self):
                length = int(self.headers.get("content-length") or 0)
                if length:
                    self.rfile.read(length)
                hit = {
                    "method": self.command,
                    "path": self.path,
                    "headers": [(k.lower(), v) for k, v in self.headers.items()],
                }
                outer.seen.append(hit)
                body = json.dumps(hit, indent=1).encode() + b"\n"
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = _serve

            def log_message(self, *args):
                if not quiet:
                    super().log_message(*args)

        super().__init__((host, port), Handler)


if __name__ == "__main__":
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 8080
    host = sys.argv[2] if len(sys.argv) > 2 else "127.0.0.1"
    print(f"echo upstream on {host}:{port}", flush=True)
    EchoUpstream(port, quiet=False, host=host).serve_forever()
