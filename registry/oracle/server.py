"""The node's local HTTP face: ``GET /health`` for operators, ``POST /predict`` for local callers.

It binds to 127.0.0.1 only: predictions here are not signed or posted, so this is a convenience
for co-located services and monitoring, not a public API. The handlers know nothing about chains or
models; the node passes two callables, which keeps this module about HTTP alone.

The server is uvicorn (asyncio, h11) running a Starlette app in one background thread, because
every byte a client sends is hostile input and a node must outlive any client:

- **request deadline**: the request line, headers and body must all arrive within
  ``REQUEST_TIMEOUT_S`` of the connection (or of the previous response on a kept-alive one);
  otherwise the connection is closed. uvicorn alone never times out a half-sent request, which is
  how 300 half-sent requests once held 305 threads of the old server forever;
- **bounded work**: at most ``MAX_CONNECTIONS`` connections (503 beyond), and the handlers (model
  inference) run on a pool of ``WORKERS`` threads, so slow inference queues instead of multiplying
  threads;
- **bounded input**: headers up to ``MAX_HEADER_BYTES``, a body up to ``MAX_BODY`` bytes read in
  chunks (413 above), parsed by ``registry.strictjson`` with a depth limit (a deep body once killed
  the node);
- **quiet failures**: one log line per failed request through the node's event sink, never a
  traceback, and nothing at all for a client that hangs up.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import socket
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable

from registry.errors import InputError, RegistryError

MAX_BODY = 1024 * 1024
MAX_JSON_DEPTH = 16
MAX_HEADER_BYTES = 16 * 1024
REQUEST_TIMEOUT_S = 10.0
KEEP_ALIVE_S = 5
MAX_CONNECTIONS = 128
WORKERS = 4
HOST = "127.0.0.1"
_ids = itertools.count()


class Unavailable(RegistryError):
    """No verified model is loaded right now (answered with HTTP 503)."""


@dataclass(frozen=True)
class Handlers:
    health: Callable[[], dict[str, Any]]
    predict: Callable[[Any], dict[str, Any]]
    log: Callable[[str], None] | None = None  # one line per failed request


def _app(handlers: Handlers, limiter: Any, request_timeout_s: float) -> Any:
    from anyio import to_thread
    from starlette.applications import Starlette
    from starlette.requests import ClientDisconnect, Request
    from starlette.responses import JSONResponse, Response
    from starlette.routing import Route

    from registry.strictjson import parse_json_strict

    def failed(request: Request, status: int, message: str) -> Response:
        if handlers.log is not None:
            client = f"{request.client.host}:{request.client.port}" if request.client else "?"
            handlers.log(f"{request.method} {request.url.path[:100]} from {client}: HTTP {status} {message[:200]}")
        return JSONResponse({"error": message}, status_code=status, headers={"Cache-Control": "no-store"})

    async def call(fn: Callable[..., dict[str, Any]], *args: Any) -> dict[str, Any]:
        return await to_thread.run_sync(fn, *args, limiter=limiter)

    async def health(request: Request) -> Response:
        try:
            body = await call(handlers.health)
        except Exception as exc:  # the health page must never take the server down
            return failed(request, 500, f"{type(exc).__name__}: {exc}")
        return JSONResponse(body, status_code=200 if body.get("status") == "serving" else 503,
                            headers={"Cache-Control": "no-store"})

    async def read_body(request: Request) -> bytes:
        declared = request.headers.get("content-length")
        if declared is not None:
            if not declared.isdigit():
                raise _HttpFailure(400, "bad Content-Length")
            if int(declared) > MAX_BODY:
                raise _HttpFailure(413, f"body must be at most {MAX_BODY} bytes")
        parts: list[bytes] = []
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > MAX_BODY:
                raise _HttpFailure(413, f"body must be at most {MAX_BODY} bytes")
            parts.append(chunk)
        if size == 0:
            raise _HttpFailure(400, f"body must be 1..{MAX_BODY} bytes of JSON")
        return b"".join(parts)

    async def predict(request: Request) -> Response:
        try:
            raw = await asyncio.wait_for(read_body(request), timeout=request_timeout_s)
            payload = parse_json_strict(raw, what="request body", limit=MAX_BODY, max_depth=MAX_JSON_DEPTH)
            result = await call(handlers.predict, payload)
        except ClientDisconnect:
            return Response(status_code=499)  # nobody to answer: no log line, no traceback
        except _HttpFailure as exc:
            return failed(request, exc.status, exc.message)
        except asyncio.TimeoutError:
            return failed(request, 408, f"body did not arrive within {request_timeout_s:g} s")
        except Unavailable as exc:
            return failed(request, 503, str(exc))
        except InputError as exc:
            return failed(request, 400, str(exc))
        except Exception as exc:  # never kill the server over one request; one line, no traceback
            return failed(request, 500, f"{type(exc).__name__}: {exc}")
        return JSONResponse(result, headers={"Cache-Control": "no-store"})

    async def not_found(request: Request, exc: Exception) -> Response:
        status = getattr(exc, "status_code", 404)
        if status == 405:
            return failed(request, 405, f"method {request.method[:20]} not allowed on {request.url.path[:100]}")
        return failed(request, 404, f"no such endpoint {request.url.path[:100]}")

    return Starlette(routes=[Route("/health", health, methods=["GET"]), Route("/predict", predict, methods=["POST"])],
                     exception_handlers={404: not_found, 405: not_found})


class _HttpFailure(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


def _protocol_class(logger: logging.Logger, request_timeout_s: float, on_timeout: Callable[[str], None]) -> type:
    """uvicorn's h11 protocol plus a deadline for each request to arrive (uvicorn has none)."""
    from uvicorn.protocols.http.h11_impl import H11Protocol

    class DeadlineH11Protocol(H11Protocol):  # type: ignore[misc]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.logger = logger  # "Invalid HTTP request" and the like go to the node's log, one line each
            self._deadline: asyncio.TimerHandle | None = None

        def _arm(self) -> None:
            self._disarm()
            self._deadline = self.loop.call_later(request_timeout_s, self._expired)

        def _disarm(self) -> None:
            if self._deadline is not None:
                self._deadline.cancel()
                self._deadline = None

        def _expired(self) -> None:
            self._deadline = None
            cycle = self.cycle
            waiting = cycle is None or cycle.response_complete or cycle.more_body
            if waiting and not self.transport.is_closing():
                client = "%s:%d" % self.client if self.client else "?"
                on_timeout(f"request from {client} did not arrive within {request_timeout_s:g} s: connection closed")
                self.transport.close()

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._arm()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            if not self.transport.is_closing():
                self._arm()  # the next request on this connection gets the same deadline

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

    return DeadlineH11Protocol


class _ToSink(logging.Handler):
    def __init__(self, sink: Callable[[str], None] | None) -> None:
        super().__init__(logging.INFO)
        self._sink = sink

    def emit(self, record: logging.LogRecord) -> None:
        if self._sink is not None and record.levelno >= logging.WARNING:
            self._sink(record.getMessage().splitlines()[0][:300])  # one line, never a traceback


class NodeServer:
    """uvicorn + Starlette on 127.0.0.1 in a daemon thread (see the module docstring)."""

    def __init__(self, handlers: Handlers, port: int = 0, request_timeout_s: float = REQUEST_TIMEOUT_S,
                 workers: int = WORKERS, max_connections: int = MAX_CONNECTIONS) -> None:
        import anyio
        import uvicorn

        # IPPROTO_TCP spelled out: asyncio sets TCP_NODELAY on accepted sockets only when the listening
        # socket says proto 6; with proto 0 every response waits on Nagle + delayed ACK (~40 ms each)
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            self._sock.bind((HOST, port))
            self._sock.listen(256)
        except OSError as exc:
            self._sock.close()
            raise InputError(f"cannot listen on {HOST}:{port}: {exc.strerror or exc}") from exc
        self._sock.setblocking(False)
        log = handlers.log or (lambda _message: None)
        logger = logging.getLogger(f"registry.oracle.http.{next(_ids)}")
        logger.propagate = False
        logger.setLevel(logging.INFO)
        logger.addHandler(_ToSink(log))
        self._logger = logger
        self._limiter = anyio.CapacityLimiter(workers)
        config = uvicorn.Config(
            _app(handlers, self._limiter, request_timeout_s),
            http=_protocol_class(logger, request_timeout_s, log),
            loop="asyncio",
            lifespan="off",
            ws="none",
            access_log=False,
            log_config=None,
            log_level="warning",
            limit_concurrency=max_connections,
            timeout_keep_alive=KEEP_ALIVE_S,
            h11_max_incomplete_event_size=MAX_HEADER_BYTES,
            server_header=False,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._serve, name="oracle-http", daemon=True)

    def _serve(self) -> None:
        self._server.run(sockets=[self._sock])

    @property
    def url(self) -> str:
        host, port = self._sock.getsockname()[:2]
        return f"http://{host}:{port}"

    def start(self, timeout_s: float = 10.0) -> "NodeServer":
        self._thread.start()
        deadline = time.monotonic() + timeout_s
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RegistryError(f"the node's HTTP server did not start on {self.url}")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=5)
        self._sock.close()
        for handler in list(self._logger.handlers):
            self._logger.removeHandler(handler)
