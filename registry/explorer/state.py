"""What the explorer holds while it runs: the index (read connections per thread), the chain client
(reconnected when the node comes back), the content store, the verification cache, and the
follower that keeps the index in step with the chain.
"""

from __future__ import annotations

import sqlite3
import threading
from collections import OrderedDict
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from registry.errors import RegistryError

if TYPE_CHECKING:
    from registry.chain.client import RegistryClient
    from registry.config import Settings
    from registry.content.base import ContentStore

RECONNECT_S = 5.0
HEAD_CACHE_S = 1.0
FACETS_CACHE_S = 5.0
MEMO_ENTRIES = 2048


@dataclass
class FollowerState:
    running: bool = False
    last_sync: float | None = None
    last_error: str | None = None
    last_reorg: dict[str, Any] | None = None
    syncs: int = 0


class Explorer:
    """Shared by every request (thread-safe); build with ``Explorer(settings)``."""

    def __init__(self, settings: "Settings", *, client: "RegistryClient | None" = None,
                 store: "ContentStore | None" = None, index_file: Path | None = None) -> None:
        from registry.content.stores import open_store
        from registry.explorer.verification import VerificationCache
        from registry.index import connect, index_path

        self.settings = settings
        self.index_file = index_file or index_path(settings)
        connect(self.index_file).close()  # creates the file and its schema, so pages work before a sync
        self.store = store or open_store(settings)
        self.verifications = VerificationCache(settings, self.store)
        self.follower = FollowerState()
        self._client = client
        self._client_error: str | None = None
        self._client_tried = 0.0
        self._lock = threading.Lock()
        self._local = threading.local()
        self._head: tuple[float, int | None, str | None] = (0.0, None, None)
        self._facets: tuple[float, dict[str, list[str]] | None] = (0.0, None)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._poller: threading.Thread | None = None

    # -- resources ---------------------------------------------------------------------------------

    def db(self) -> sqlite3.Connection:
        """This thread's read-only connection to the index."""
        conn = getattr(self._local, "conn", None)
        if conn is None:
            from registry.index import connect

            conn = connect(self.index_file, readonly=True)
            self._local.conn = conn
        return conn

    def memo(self, key: Any, compute: Any) -> Any:
        """``compute()``, cached until the index changes.

        Lists and lineage are derived data: they change only when the follower commits, which
        SQLite's ``PRAGMA data_version`` reveals to this thread's connection at the cost of one
        pragma. Repeated searches (and their rendered tables) between commits cost a lookup."""
        conn = self.db()
        version = conn.execute("PRAGMA data_version").fetchone()[0]
        cache: OrderedDict[Any, Any] | None = getattr(self._local, "memo", None)
        if cache is None or getattr(self._local, "memo_version", None) != version:
            cache = OrderedDict()
            self._local.memo, self._local.memo_version = cache, version
        if key in cache:
            cache.move_to_end(key)
            return cache[key]
        value = cache[key] = compute()
        if len(cache) > MEMO_ENTRIES:
            cache.popitem(last=False)
        return value

    def catalog(self, query: Any) -> dict[str, Any]:
        """A catalog search (cached until the index changes, see ``memo``)."""
        from registry.index.queries import catalog

        found = self.memo(("catalog", repr(sorted(query.to_json().items()))), lambda: catalog(self.db(), query))
        return dict(found)  # callers add page keys; the cached rows themselves are never changed

    def client(self) -> "RegistryClient | None":
        """The chain client, or None while the chain does not answer (pages say so)."""
        with self._lock:
            if self._client is not None:
                return self._client
            if time.monotonic() - self._client_tried < RECONNECT_S and self._client_tried:
                return None
            self._client_tried = time.monotonic()
        from registry.chain.client import RegistryClient

        try:
            client = RegistryClient.connect(self.settings)
        except RegistryError as exc:
            with self._lock:
                self._client_error = str(exc)
            return None
        with self._lock:
            self._client, self._client_error = client, None
        return client

    @property
    def client_error(self) -> str | None:
        return self._client_error

    def head(self) -> tuple[int | None, str | None]:
        """The chain head (cached for a second; kept fresh by the poller thread when it runs, so no
        request waits for the RPC) and the error when the chain does not answer."""
        at, head, error = self._head
        if time.monotonic() - at < HEAD_CACHE_S or (self._poller is not None and at):
            return head, error
        return self._read_head()

    def _read_head(self) -> tuple[int | None, str | None]:
        client = self.client()
        if client is None:
            head, error = None, self._client_error or "chain not reachable"
        else:
            try:
                head, error = client.block_number, None
            except RegistryError as exc:
                head, error = None, str(exc)
        self._head = (time.monotonic(), head, error)
        return head, error

    def facets(self) -> dict[str, list[str]]:
        """The catalog's select options, recomputed at most every few seconds (they change rarely)."""
        from registry.index.queries import facets

        at, value = self._facets
        if value is None or time.monotonic() - at > FACETS_CACHE_S:
            value = facets(self.db())
            self._facets = (time.monotonic(), value)
        return value

    def status(self) -> dict[str, Any]:
        """The index against the chain: the "N blocks behind" banner of every page."""
        from registry.index import db
        from registry.index.sync import IndexStatus

        meta = db.read_meta(self.db())
        head, error = self.head()
        status = IndexStatus(cursor=meta.cursor, head=head, confirmations=self.settings.profile.confirmations,
                             chain_id=meta.chain_id, contract=meta.contract, error=error).to_json()
        status["follower"] = {"running": self.follower.running, "last_sync": self.follower.last_sync,
                              "last_error": self.follower.last_error, "last_reorg": self.follower.last_reorg}
        return status

    # -- the follower ------------------------------------------------------------------------------

    def sync_once(self) -> None:
        """One catch-up pass of the index and of the content facts (the follower's loop body)."""
        from registry.index import connect
        from registry.index.content import enrich
        from registry.index.sync import Follower

        client = self.client()
        if client is None:
            self.follower.last_error = self._client_error or "chain not reachable"
            return
        conn = connect(self.index_file)
        try:
            result = Follower(client, conn, self.settings.profile.confirmations).sync()
            if result.reorg is not None:
                self.follower.last_reorg = result.reorg.to_json()
            enrich(conn, self.store, limit=50)
            self.follower.last_sync, self.follower.last_error = time.time(), None
            self.follower.syncs += 1
        except RegistryError as exc:
            self.follower.last_error = str(exc)
        finally:
            conn.close()

    def start_head_poller(self, interval: float = HEAD_CACHE_S) -> None:
        """Reads the chain head in the background, so the "behind by" banner never costs a request an RPC."""
        if self._poller is not None:
            return

        def loop() -> None:
            while not self._stop.is_set():
                try:
                    self._read_head()
                except Exception as exc:  # the banner shows it; the thread must not die
                    self._head = (time.monotonic(), None, f"{type(exc).__name__}: {str(exc)[:200]}")
                self._stop.wait(interval)

        self._read_head()
        self._poller = threading.Thread(target=loop, name="registry-head-poller", daemon=True)
        self._poller.start()

    def start_following(self, interval: float = 2.0) -> None:
        if self._thread is not None:
            return
        self.follower.running = True

        def loop() -> None:
            while not self._stop.is_set():
                try:
                    self.sync_once()
                except Exception as exc:  # never let the thread die silently: the banner shows it
                    self.follower.last_error = f"{type(exc).__name__}: {str(exc)[:200]}"
                self._stop.wait(interval)
            self.follower.running = False

        self._thread = threading.Thread(target=loop, name="registry-index-follower", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        for thread in (self._thread, self._poller):
            if thread is not None:
                thread.join(timeout=10)
        self._thread = self._poller = None
