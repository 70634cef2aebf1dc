"""Start-up of an oracle node: wait for the RPC node instead of exiting when it is down.

A node is a long-running service. ``OracleNode.run`` already rides out outages once it is
running, so failing at start-up only because the RPC answered "connection refused" would make
a restart order (node before RPC) or a short RPC blip fatal. Here an *outage* (UnreachableError
from a refused, reset or timed-out connection, HTTP 5xx/429) is logged through the node's event
sink and retried with capped exponential backoff until it connects or ``stop`` is set. Anything
that is a fact rather than an outage (wrong chain id, no contract at the address, an RPC URL that
answers 4xx) still fails at once: retrying a wrong configuration forever would hide it.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Iterator, TypeVar

from registry.errors import UnreachableError

if TYPE_CHECKING:
    from registry.chain.client import RegistryClient
    from registry.config import Settings
    from registry.oracle.feed import FeedClient

T = TypeVar("T")
EventSink = Callable[[dict[str, Any]], None]
FIRST_DELAY_S = 0.5
MAX_DELAY_S = 30.0


@dataclass(frozen=True)
class Backoff:
    """Delays between start-up attempts: ``start_s`` doubling, never above ``max_s``."""

    start_s: float = FIRST_DELAY_S
    max_s: float = MAX_DELAY_S

    @classmethod
    def for_poll(cls, poll_s: float, ceiling_s: float = MAX_DELAY_S) -> "Backoff":
        """Capped at the node's poll interval (so a returning RPC is noticed as fast as a new
        release would be), but never above ``ceiling_s`` nor below the first delay."""
        return cls(FIRST_DELAY_S, max(FIRST_DELAY_S, min(poll_s, ceiling_s)))

    def delays(self) -> Iterator[float]:
        delay = min(self.start_s, self.max_s)
        while True:
            yield delay
            delay = min(delay * 2, self.max_s)


def is_outage(exc: UnreachableError) -> bool:
    """True for a node that did not answer; False for one that answered "no" (HTTP 4xx but 429),
    which ``with_retries`` also reports as UnreachableError but which is a wrong URL or key."""
    import requests

    from registry.chain.rpc import is_transient

    cause = exc.__cause__
    return not (isinstance(cause, requests.HTTPError) and not is_transient(cause))


def retry_until_reachable(
    attempt: Callable[[], T],
    stop: threading.Event,
    on_event: EventSink | None = None,
    backoff: Backoff = Backoff(),
    what: str = "RPC node",
    clock: Callable[[], float] = time.time,
) -> T:
    """``attempt()`` until it returns; outages are reported as ``rpc-unreachable`` warnings and
    retried after the next backoff delay. Other errors propagate at once.

    Raises UnreachableError (naming the last failure) when ``stop`` is set before a success.
    ``stop`` is checked between attempts: one attempt is bounded by the client's own timeout
    and retries.
    """

    def emit(level: str, event: str, message: str, **fields: Any) -> None:
        if on_event is not None:
            on_event({"at": clock(), "level": level, "event": event, "message": message, **fields})

    failures = 0
    delays = backoff.delays()
    last: UnreachableError | None = None
    while not stop.is_set():
        try:
            result = attempt()
        except UnreachableError as exc:
            if not is_outage(exc):
                raise
            last = exc
            failures += 1
            delay = next(delays)
            emit("warning", "rpc-unreachable", f"{exc}; retrying in {delay:.2f} s", retry_in_s=delay,
                 attempt=failures)
            stop.wait(delay)
            continue
        if failures:
            emit("info", "rpc-reachable", f"{what} answered after {failures} failed attempt(s); starting")
        return result
    reason = f"; last error: {last}" if last is not None else ""
    raise UnreachableError(f"stopped before the {what} answered{reason}")


def connect_clients(
    settings: "Settings",
    feed_address: str,
    stop: threading.Event,
    on_event: EventSink | None = None,
    backoff: Backoff = Backoff(),
) -> tuple["RegistryClient", "FeedClient"]:
    """The profile's registry and the feed at ``feed_address``, both checked (chain id, code at
    each address), waiting out an RPC that is down at start-up."""
    from registry.chain.client import RegistryClient
    from registry.oracle.feed import FeedClient

    profile = settings.profile

    def attempt() -> tuple["RegistryClient", "FeedClient"]:
        registry = RegistryClient.connect(settings)
        feed = FeedClient.at(registry.rpc_url, feed_address, profile.confirmations, profile.timeout_s,
                             profile.retries)
        return registry, feed

    return retry_until_reachable(attempt, stop, on_event, backoff)

