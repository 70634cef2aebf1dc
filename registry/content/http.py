"""HTTP plumbing shared by the Kubo, gateway and pinning clients: timeouts, retries, clear errors.

Only transport failures and 5xx/429 answers are retried (with exponential backoff); a 4xx is the
caller's mistake and is reported at once. Every failure ends as one ``RegistryError`` line naming
the endpoint, never as a raw httpx traceback.
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Callable, Iterator

import httpx

from registry.errors import InputError, UnreachableError

RETRY_STATUS = {429, 502, 503, 504}
# An error answer is read up to this many bytes: a node must not make us buffer a huge error page.
MAX_ERROR_BODY = 4096
# Every request has an overall deadline (timeout_s is per read: a slow drip would never trip it).
DEADLINE_FACTOR = 6


@dataclass(frozen=True)
class RetryPolicy:
    retries: int = 3
    backoff_s: float = 0.25
    timeout_s: float = 10.0

    @property
    def deadline_s(self) -> float:
        """Wall time one whole answer may take (bodies that stream a DAG get theirs from ``stream_deadline``)."""
        return self.timeout_s * DEADLINE_FACTOR


def stream_deadline(policy: RetryPolicy, expected_bytes: int | None, min_rate: float = 1 << 20) -> float:
    """A whole DAG stream's deadline: the per-request one plus the time the expected bytes take at 1 MiB/s."""
    return policy.deadline_s + (expected_bytes or 0) / min_rate


class HttpError(Exception):
    """A non-2xx answer that retries did not cure (status and the server's own message)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"HTTP {status}: {message}")
        self.status = status
        self.message = message


def make_client(base_url: str, policy: RetryPolicy, headers: dict[str, str] | None = None,
                transport: httpx.BaseTransport | None = None) -> httpx.Client:
    base = base_url.rstrip("/")
    if not base.startswith(("http://", "https://")):
        raise InputError(f"not an http(s) URL: {base_url!r}")
    timeout = httpx.Timeout(policy.timeout_s, connect=min(policy.timeout_s, 5.0))
    return httpx.Client(base_url=base, timeout=timeout, headers=headers or {}, transport=transport,
                        follow_redirects=False)


def _error_text(resp: httpx.Response) -> str:
    """The server's message from at most ``MAX_ERROR_BODY`` bytes of its answer, parsed strictly."""
    raw = bytearray()
    try:
        for piece in resp.iter_bytes():
            raw += piece
            if len(raw) > MAX_ERROR_BODY:
                del raw[MAX_ERROR_BODY:]
                break
    except Exception:  # an error answer that also breaks mid-way: whatever arrived is the message
        pass
    try:
        from registry.provenance import parse_json_strict

        body = parse_json_strict(bytes(raw), what="error answer", limit=MAX_ERROR_BODY, error=ValueError)
        if isinstance(body, dict):
            for key in ("Message", "message", "error", "reason", "details"):
                value = body.get(key)
                if isinstance(value, str) and value:
                    return value
                if isinstance(value, dict):
                    return str(value.get("reason") or value.get("details") or value)
    except Exception:
        pass
    text = raw.decode("utf-8", "replace").strip()
    return text.splitlines()[0][:200] if text else resp.reason_phrase


@contextmanager
def request(client: httpx.Client, policy: RetryPolicy, what: str, method: str, url: str,
            make_kwargs: Callable[[], dict[str, Any]] | None = None,
            timeout: float | None = None) -> Iterator[httpx.Response]:
    """Streams one request with retries; yields the open 2xx response (closed afterwards).

    ``make_kwargs`` builds the request body afresh for each attempt (an upload cannot be replayed
    from a half-consumed file object).
    """
    attempt = 0
    last: str = ""
    while True:
        kwargs = make_kwargs() if make_kwargs else {}
        if timeout is not None:
            kwargs["timeout"] = httpx.Timeout(timeout, connect=min(timeout, 5.0))
        try:
            req = client.build_request(method, url, **kwargs)
            resp = client.send(req, stream=True)
        except httpx.TimeoutException as exc:
            last = f"timed out ({type(exc).__name__})"
        except httpx.TransportError as exc:
            last = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        else:
            if resp.status_code < 300:
                try:
                    yield resp
                    return
                finally:
                    resp.close()
            message = _error_text(resp)
            resp.close()
            if resp.status_code not in RETRY_STATUS:
                raise HttpError(resp.status_code, message)
            last = f"HTTP {resp.status_code}: {message}"
        attempt += 1
        if attempt > policy.retries:
            raise UnreachableError(f"{what} at {client.base_url}: {last} (after {attempt} attempts)")
        time.sleep(policy.backoff_s * (2 ** (attempt - 1)))


def read_limited(resp: httpx.Response, limit: int, what: str, deadline_s: float | None = None) -> bytes:
    """The whole body, refusing more than ``limit`` bytes (a node must not make us buffer GiBs) and an
    answer that takes longer than ``deadline_s`` overall."""
    from registry.errors import IntegrityError

    out = bytearray()
    end = time.monotonic() + deadline_s if deadline_s is not None else None
    try:
        for piece in resp.iter_bytes():
            out += piece
            if len(out) > limit:
                raise IntegrityError(f"{what}: answer exceeds {limit} bytes")
            if end is not None and time.monotonic() > end:
                raise UnreachableError(f"{what}: the answer took longer than {deadline_s:.0f} s")
    except httpx.TimeoutException as exc:
        raise UnreachableError(f"{what}: timed out while reading the answer") from exc
    except httpx.TransportError as exc:
        raise UnreachableError(f"{what}: connection broke while reading the answer ({type(exc).__name__})") from exc
    return bytes(out)
