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


@dataclass(frozen=True)
class RetryPolicy:
    retries: int = 3
    backoff_s: float = 0.25
    timeout_s: float = 10.0


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
    try:
        resp.read()
        body = resp.json()
        if isinstance(body, dict):
            for key in ("Message", "message", "error", "reason", "details"):
                value = body.get(key)
                if isinstance(value, str) and value:
                    return value
                if isinstance(value, dict):
                    return str(value.get("reason") or value.get("details") or value)
    except Exception:
        pass
    try:
        return resp.text.strip().splitlines()[0][:200] if resp.text.strip() else resp.reason_phrase
    except Exception:
        return resp.reason_phrase


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


def read_limited(resp: httpx.Response, limit: int, what: str) -> bytes:
    """The whole body, refusing more than ``limit`` bytes (a node must not make us buffer GiBs)."""
    from registry.errors import IntegrityError

    out = bytearray()
    try:
        for piece in resp.iter_bytes():
            out += piece
            if len(out) > limit:
                raise IntegrityError(f"{what}: answer exceeds {limit} bytes")
    except httpx.TimeoutException as exc:
        raise UnreachableError(f"{what}: timed out while reading the answer") from exc
    except httpx.TransportError as exc:
        raise UnreachableError(f"{what}: connection broke while reading the answer ({type(exc).__name__})") from exc
    return bytes(out)
