"""The release page's live verification: ``registry.verify`` (the CLI's nine checks) against the
store's bytes, cached by digest, with the chain facts re-read on every view.

Checks 5-8 (SHA-256, CID, provenance, ONNX) depend only on the bytes a digest names, so their answer
never changes and is worth caching: hashing a 100 MiB artifact for every page view would make the
explorer unusable. Checks 1-4 depend on the chain (revocation of the release and its ancestors, the
publisher's authorisation), which can change at any block. So each view re-reads exactly those facts
from the chain (a few ``eth_call``s) and compares them with the ones the cached report saw; when any
differs, verification runs again in full. A report whose bytes could not be read (store down) is
never cached. Concurrent first views of one release share one verification.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

from registry.errors import RegistryError, UnreachableError

if TYPE_CHECKING:
    from registry.chain.client import RegistryClient
    from registry.chain.records import ReleaseRecord
    from registry.config import Settings
    from registry.content.base import ContentStore

MAX_ENTRIES = 1024
MAX_ANCESTORS = 64


@dataclass
class Verdict:
    """What the release page shows: the report, how fresh each half of it is, and one word."""

    report: dict[str, Any]
    verified_at: float            # when the bytes were hashed and checked
    chain_checked_at: float       # when the chain facts were last compared
    chain_block: int | None
    cached: bool
    state: str                    # verified | rejected | revoked | unreachable

    def to_json(self) -> dict[str, Any]:
        return {"state": self.state, "cached": self.cached, "verified_at": self.verified_at,
                "chain_checked_at": self.chain_checked_at, "chain_block": self.chain_block, **self.report}


def verdict_state(report: dict[str, Any]) -> str:
    """One word for a report: ``unreachable`` when the failure is only that something did not answer."""
    if report.get("ok"):
        return "verified"
    codes = {c.get("exit_code") for c in report.get("checks", []) if c.get("status") == "fail"}
    if UnreachableError.exit_code in codes:
        return "unreachable"
    if report.get("exit_code") == 12:
        return "revoked"
    return "rejected"


def chain_facts(client: "RegistryClient", record: "ReleaseRecord") -> tuple[Any, ...]:
    """Everything checks 1-4 read from the chain: the record (revocation included), each ancestor's
    revocation, and whether the publisher may still publish the name (D4: an added publisher or the
    namespace's owner, so a namespace changing hands is seen as well as a publisher removed)."""
    facts: list[Any] = [record.id, record.revoked_at, record.revocation_reason, record.publisher]
    current = record
    for _ in range(MAX_ANCESTORS):
        if not current.has_parent:
            break
        current = client.get_by_id(current.parent)
        facts.append((current.id, current.revoked_at))
    facts.append(client.may_publish(record.name, record.publisher))
    return tuple(facts)


@dataclass
class _Entry:
    report: dict[str, Any]
    facts: tuple[Any, ...]
    verified_at: float


class VerificationCache:
    """Reports by (release id, artifact digest, CID, provenance digest); see the module notes."""

    def __init__(self, settings: "Settings", store: "ContentStore", max_entries: int = MAX_ENTRIES,
                 clock: Callable[[], float] = time.time) -> None:
        self.settings = settings
        self.store = store
        self.max_entries = max_entries
        self.clock = clock
        self._entries: OrderedDict[tuple[bytes, ...], _Entry] = OrderedDict()
        self._lock = threading.Lock()
        self._key_locks: dict[tuple[bytes, ...], threading.Lock] = {}
        self.runs = 0  # full verifications performed (tests and the bench read this)

    @staticmethod
    def key(record: "ReleaseRecord") -> tuple[bytes, ...]:
        # D1: the card is part of what is verified (check 7), so its digest is part of the key
        return (record.id, record.artifact_sha256, record.artifact_cid, record.provenance_sha256, record.card_sha256)

    def peek(self, record: "ReleaseRecord") -> dict[str, Any] | None:
        """The cached report, if any, without touching the chain (the diff page shows it as a hint)."""
        with self._lock:
            entry = self._entries.get(self.key(record))
        return entry.report if entry else None

    def get(self, client: "RegistryClient", record: "ReleaseRecord") -> Verdict:
        key = self.key(record)
        with self._lock:
            lock = self._key_locks.setdefault(key, threading.Lock())
        with lock:
            now = self.clock()
            try:
                facts = chain_facts(client, record)
                block = client.block_number
            except RegistryError:
                facts, block = (), None
            with self._lock:
                entry = self._entries.get(key)
                if entry is not None:
                    self._entries.move_to_end(key)
            if entry is not None and facts and entry.facts == facts:
                return Verdict(entry.report, entry.verified_at, now, block, True, verdict_state(entry.report))
            report = self._verify(client, record)
            state = verdict_state(report)
            if state != "unreachable" and facts:
                with self._lock:
                    self._entries[key] = _Entry(report, facts, now)
                    self._entries.move_to_end(key)
                    while len(self._entries) > self.max_entries:
                        old, _ = self._entries.popitem(last=False)
                        self._key_locks.pop(old, None)
            return Verdict(report, now, now, block, False, state)

    def _verify(self, client: "RegistryClient", record: "ReleaseRecord") -> dict[str, Any]:
        from registry.verify import verify

        self.runs += 1
        report = verify(record.ref, settings=self.settings, client=client, store=self.store)
        return report.to_json()
