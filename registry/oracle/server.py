"""The node's local HTTP face: ``GET /health`` for operators, ``POST /predict`` for local callers.

It binds to 127.0.0.1 only: predictions here are not signed or posted, so this is a convenience
for co-located services and monitoring, not a public API. The handlers know nothing about chains or
models; the node passes two callables, which keeps this module about HTTP alone.
"""

from __future__ import annotations

import json
import socket
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable

from registry.errors import InputError, RegistryError

MAX_BODY = 1024 * 1024
HOST = "127.0.0.1"


class Unavailable(RegistryError):
    """No verified model is loaded right now (answered with HTTP 503)."""


@dataclass(frozen=True)
class Handlers:
    health: Callable[[], dict[str, Any]]
    predict: Callable[[Any], dict[str, Any]]


def _handler_class(handlers: Handlers) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "registry-oracle/1"
        protocol_version = "HTTP/1.1"

        def setup(self) -> None:
            super().setup()
            # Headers and body go out in two writes; without TCP_NODELAY, Nagle holds the second
            # until the client's delayed ACK (~40 ms), capping keep-alive clients at ~25 requests/s.
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
            """Quiet: the node reports through its own log, not stderr lines per request."""

        def _send(self, status: int, body: dict[str, Any]) -> None:
            data = json.dumps(body, sort_keys=True).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:  # noqa: N802 - stdlib name
            if self.path.split("?")[0] != "/health":
                self._send(404, {"error": f"no such endpoint {self.path}"})
                return
            health = handlers.health()
            self._send(200 if health.get("status") == "serving" else 503, health)

        def do_POST(self) -> None:  # noqa: N802 - stdlib name
            if self.path.split("?")[0] != "/predict":
                self._send(404, {"error": f"no such endpoint {self.path}"})
                return
            try:
                length = int(self.headers.get("Content-Length") or 0)
            except ValueError:
                self._send(400, {"error": "bad Content-Length"})
                return
            if length <= 0 or length > MAX_BODY:
                self._send(413 if length > MAX_BODY else 400, {"error": f"body must be 1..{MAX_BODY} bytes"})
                self.close_connection = True
                return
            raw = self.rfile.read(length)
            try:
                payload = json.loads(raw)
            except ValueError:
                self._send(400, {"error": "body is not JSON"})
                return
            try:
                self._send(200, handlers.predict(payload))
            except Unavailable as exc:
                self._send(503, {"error": str(exc)})
            except InputError as exc:
                self._send(400, {"error": str(exc)})
            except Exception as exc:  # never kill the server thread over one request
                self._send(500, {"error": f"{type(exc).__name__}: {exc}"})

    return Handler


class NodeServer:
    """A ThreadingHTTPServer on 127.0.0.1 running in a daemon thread."""

    def __init__(self, handlers: Handlers, port: int = 0) -> None:
        self._server = ThreadingHTTPServer((HOST, port), _handler_class(handlers))
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="oracle-http", daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> "NodeServer":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
