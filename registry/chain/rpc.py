"""One way to reach a JSON-RPC node: bounded timeouts, retries with exponential backoff.

web3's own retry layer is switched off so that a node that is down costs a known, small amount
of time (``retries`` attempts, ``timeout_s`` each, backoff 0.25 s doubling) and then one clear
UnreachableError, instead of a stack trace or a hang.
"""

from __future__ import annotations

import time
from typing import Callable, TypeVar

import requests
from web3 import Web3

from registry.errors import UnreachableError

T = TypeVar("T")

BACKOFF_START_S = 0.25
BACKOFF_MAX_S = 4.0


def make_web3(rpc_url: str, timeout_s: float = 10.0) -> Web3:
    """A Web3 with bounded timeouts and no hidden retries. PoA chains (BSC, Polygon PoS, many
    testnets) put more than 32 bytes in ``extraData``; the PoA middleware makes their blocks
    readable (fee estimation reads the latest block) and is a no-op elsewhere."""
    from web3.middleware import ExtraDataToPOAMiddleware

    from registry.chain.strict_provider import StrictHTTPProvider

    provider = StrictHTTPProvider(rpc_url, timeout_s)  # bounded, strictly parsed answers
    w3 = Web3(provider)
    w3.middleware_onion.inject(ExtraDataToPOAMiddleware, layer=0)
    return w3


def is_transient(exc: BaseException) -> bool:
    """Connection refused, reset, DNS failure, timeout, HTTP 5xx: worth another attempt."""
    if isinstance(exc, requests.HTTPError):
        response = exc.response
        return response is None or response.status_code >= 500 or response.status_code == 429
    return isinstance(exc, (requests.RequestException, ConnectionError, TimeoutError, OSError))


def with_retries(
    fn: Callable[[], T],
    rpc_url: str,
    retries: int = 3,
    backoff_s: float = BACKOFF_START_S,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """Calls ``fn``; on transient failures retries ``retries`` more times, then UnreachableError."""
    delay = backoff_s
    attempts = max(1, retries + 1)
    for attempt in range(1, attempts + 1):
        try:
            return fn()
        except Exception as exc:
            if isinstance(exc, requests.HTTPError) and not is_transient(exc):
                raise UnreachableError(f"RPC endpoint {rpc_url} refused the request ({_short(exc)}): is the URL right?") from exc
            if not is_transient(exc):
                raise
            if attempt == attempts:
                raise UnreachableError(
                    f"RPC node at {rpc_url} did not answer after {attempts} attempts ({_short(exc)})"
                ) from exc
            sleep(delay)
            delay = min(delay * 2, BACKOFF_MAX_S)
    raise AssertionError("unreachable")  # pragma: no cover


def _short(exc: BaseException) -> str:
    if isinstance(exc, requests.Timeout):
        return "timed out"
    if isinstance(exc, requests.ConnectionError):
        return "connection refused or reset"
    if isinstance(exc, requests.HTTPError) and exc.response is not None:
        return f"HTTP {exc.response.status_code}"
    return type(exc).__name__


def rpc_answers(rpc_url: str, timeout_s: float = 1.0) -> int | None:
    """The node's chain id if it answers right now, else None (one attempt, no retries)."""
    try:
        return int(make_web3(rpc_url, timeout_s).eth.chain_id)
    except Exception:
        return None
