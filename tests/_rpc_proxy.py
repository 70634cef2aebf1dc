"""A JSON-RPC front for a real node (anvil) that answers some requests itself.

Tests use it to stand in for what public RPCs do to a client: refuse log queries, rate-limit, fail
with HTTP 5xx. ``intercept(body)`` sees each parsed request body (a call or a batch) and returns
``None`` to forward it unchanged, or ``(status, payload)`` to answer with that instead.
"""

from __future__ import annotations

import http.server
import json
import threading
import urllib.request
from typing import Any, Callable

from tests._content_fixtures import _QuietServer  # a client hanging up is not an error here

Intercept = Callable[[Any], "tuple[int, bytes] | None"]


class RpcProxy:
    def __init__(self, upstream: str, intercept: Intercept) -> None:
        proxy = self
        self.upstream = upstream
        self.intercept = intercept

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - stdlib name
                raw = self.rfile.read(int(self.headers.get("content-length") or 0))
                answer = proxy.intercept(json.loads(raw))
                if answer is None:
                    request = urllib.request.Request(proxy.upstream, raw, {"Content-Type": "application/json"})
                    with urllib.request.urlopen(request, timeout=10) as response:
                        answer = (200, response.read())
                status, payload = answer
                self.send_response(status)
                if payload:
                    self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args: object) -> None:
                pass

        self.server = _QuietServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
