"""A store seen through a device's block cache (and an old copy on disk): only missing blocks travel.

``CachingStore`` wraps any store that can fetch a block by CID (local, Kubo ``block/get``, gateway
``?format=raw``). Every read of the verification path (``kind``, ``open``, ``open_tree``) goes
through ``_fetch_block``, which looks for the block in the cache, then in the local copies it was
given (``seed.LocalCopy``), and only then asks the store; a block from the store is hashed against
its CID before it is used or cached, so a store that answers a new CID with an old block (or any
other bytes) fails that block, and nothing it sent is kept. The walkers above verify every block
again and check the whole result (each file's SHA-256, the tree's file list, the CID, the signature)
exactly as in a full pull: the cache only changes where verified bytes come from.

A pull with nothing to reuse (no old copy, and the root not cached from an earlier attempt)
streams the DAG the store's fastest way (one CAR for Kubo and gateways) and keeps the blocks as they
pass. Otherwise the DAG is walked block by block; for a remote store up to ``prefetch`` blocks the
walk will need next (depth-first, from the links already seen) are requested ahead on worker threads,
so round trips overlap; those answers wait in memory, bounded, until the walk verifies them.

``TransferStats`` counts every block that crossed the network, and each distinct block reused from
the cache or the old copy once (a block this pull fetched and then read again is not "reused").
"""

from __future__ import annotations

from collections import OrderedDict, deque
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from itertools import islice
from typing import TYPE_CHECKING, Any, Callable, Iterator, Sequence

from registry.content.base import BlockReadingStore
from registry.content.cids import DAG_PB, fast_cid, parse_cid, to_v1_text
from registry.content.reader import checked_block, iter_file

if TYPE_CHECKING:
    from multiformats import CID

    from registry.content.blockcache import BlockCache
    from registry.content.seed import LocalCopy

MAX_PLAN = 1 << 16  # CIDs remembered as "coming next" (a hostile directory cannot grow it further)


@dataclass
class TransferStats:
    """Where the blocks of one pull came from (block bytes; see the module docstring)."""

    network_bytes: int = 0
    network_blocks: int = 0
    cache_bytes: int = 0
    cache_blocks: int = 0
    disk_bytes: int = 0
    disk_blocks: int = 0
    streamed_bytes: int = 0                # of network_bytes, those of DAGs sent in one stream (nothing to reuse)
    base: str | None = None                # the release reused from, when there was one
    cache: dict[str, int] = field(default_factory=dict)
    local_copy: dict[str, Any] = field(default_factory=dict)

    @property
    def reused_bytes(self) -> int:
        return self.cache_bytes + self.disk_bytes

    @property
    def total_bytes(self) -> int:
        return self.network_bytes + self.reused_bytes

    def to_json(self) -> dict[str, Any]:
        return {"network_bytes": self.network_bytes, "network_blocks": self.network_blocks,
                "reused_bytes": self.reused_bytes, "cache_bytes": self.cache_bytes, "cache_blocks": self.cache_blocks,
                "disk_bytes": self.disk_bytes, "disk_blocks": self.disk_blocks, "total_bytes": self.total_bytes,
                "streamed_bytes": self.streamed_bytes, "base": self.base, "cache": dict(self.cache),
                "local_copy": dict(self.local_copy)}


class CachingStore(BlockReadingStore):
    """``inner`` read through ``cache`` and ``copies`` (see the module docstring)."""

    def __init__(self, inner: Any, cache: "BlockCache | None" = None, copies: Sequence["LocalCopy"] = (),
                 prefetch: int = 0, stream_when_cold: bool = True) -> None:
        self.inner = inner
        self.cache = cache if cache is not None and cache.enabled else None
        self.copies = list(copies)
        self.stats = TransferStats()
        self._counted: set[str] = set()
        self._fresh: set[str] = set()  # blocks this pull put into the cache
        self._stream_when_cold = stream_when_cold and not self.copies
        self._window = max(0, prefetch)
        self._pool: ThreadPoolExecutor | None = None
        self._ahead: OrderedDict[str, Future[bytes]] = OrderedDict()
        self._plan: deque[tuple[str, Any]] = deque()  # (key, cid) the walk is expected to ask for next
        self._local_known: set[str] = set()  # planned blocks found in the cache or the old copy

    def close(self) -> None:
        for future in self._ahead.values():
            future.cancel()
        self._ahead.clear()
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
        for copy in self.copies:
            copy.close()

    def __enter__(self) -> "CachingStore":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def report(self) -> TransferStats:
        if self.cache is not None:
            self.stats.cache = self.cache.stats.to_json()
        if self.copies:
            merged: dict[str, Any] = {}
            for copy in self.copies:
                merged.update(copy.stats.to_json())
                if copy.failed:
                    merged["unreadable"] = copy.failed
            self.stats.local_copy = merged
        return self.stats

    # -- the one read path ------------------------------------------------------------------------

    def _fetch_block(self, cid: "CID") -> bytes:
        key = to_v1_text(cid)
        block, source = self._local(cid, key)
        if block is None:
            block = self._remote(cid, key)
            source = "network"
        self._count(key, source, len(block))
        if self._window:
            self._plan_after(cid, key, block)
        return block

    def _local(self, cid: "CID", key: str) -> tuple[bytes | None, str]:
        if self.cache is not None:
            block = self.cache.get(cid)
            if block is not None:
                return block, "cache" if key not in self._fresh else "repeat"
        for copy in self.copies:
            block = copy.get(cid)
            if block is not None:
                self._keep(cid, key, block)
                return block, "disk"
        return None, ""

    def _remote(self, cid: "CID", key: str) -> bytes:
        future = self._ahead.pop(key, None)
        block = None
        if future is not None:
            try:
                block = future.result()
            except Exception:  # a failed prefetch is retried in the open, where its error is reported
                block = None
        if block is None:
            block = self.inner._fetch_block(cid)
        checked_block(cid, block)  # a wrong answer (an old block for a new CID) fails here, and is not kept
        self._keep(cid, key, block)
        return block

    def _keep(self, cid: "CID", key: str, block: bytes) -> None:
        if self.cache is not None and self.cache.put(cid, block):
            self._fresh.add(key)

    def _count(self, key: str, source: str, n: int) -> None:
        if source == "network":  # every block that crossed the network counts, even a second time
            self._counted.add(key)
            self.stats.network_bytes += n
            self.stats.network_blocks += 1
            return
        if key in self._counted or source == "repeat":
            return
        self._counted.add(key)
        if source == "cache":
            self.stats.cache_bytes += n
            self.stats.cache_blocks += 1
        else:
            self.stats.disk_bytes += n
            self.stats.disk_blocks += 1

    # -- read-ahead for remote stores -------------------------------------------------------------

    def _plan_after(self, cid: "CID", key: str, block: bytes) -> None:
        """Predicts the walk's next CIDs (depth-first) and keeps ``prefetch`` of the missing ones in flight."""
        head = [k for k, _c in islice(self._plan, self._window * 4)]
        if key in head:  # the walk reached this block: what was planned before it is behind us
            for _ in range(head.index(key) + 1):
                self._plan.popleft()
        if cid.codec.code == DAG_PB and len(block) < 1 << 20:
            from registry.content.dagpb import decode_node

            try:
                links = [fast_cid(link.hash) for link in decode_node(block).links]
            except Exception:  # the walker reports a malformed node; read-ahead just stops guessing
                links = []
            self._plan.extendleft((to_v1_text(c), c) for c in reversed(links))
            while len(self._plan) > MAX_PLAN:
                self._plan.pop()
        self._top_up()

    def _top_up(self) -> None:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=self._window, thread_name_prefix="block-prefetch")
        for key, upcoming in list(islice(self._plan, self._window * 4)):
            if len(self._ahead) >= self._window:
                return
            if key in self._ahead or key in self._counted or key in self._local_known:
                continue
            if (self.cache is not None and self.cache.contains(upcoming)) or any(c.has(upcoming) for c in self.copies):
                self._local_known.add(key)
                continue
            self._ahead[key] = self._pool.submit(self.inner._fetch_block, upcoming)

    # -- whole DAGs ---------------------------------------------------------------------------------

    def _cold(self, root: "CID") -> bool:
        """Nothing to reuse: no old copy, and the root was not cached before this pull (no earlier attempt)."""
        if not self._stream_when_cold:
            return False
        if self.cache is None:
            return True
        key = to_v1_text(root)
        return key in self._fresh or not self.cache.contains(root)

    @contextmanager
    def _dag_fetch(self, root: "CID", max_size: int | None = None) -> Iterator[Callable[["CID"], bytes]]:
        if not self._cold(root):
            yield self._fetch_block
            return
        with self.inner._dag_fetch(root, max_size) as remote:
            def through(cid: "CID") -> bytes:
                key = to_v1_text(cid)
                block = remote(cid)
                checked_block(cid, block)
                self._keep(cid, key, block)
                self._count(key, "network", len(block))
                self.stats.streamed_bytes += len(block)
                return block

            yield through

    def open(self, cid: "CID | str | bytes", max_size: int | None = None) -> Iterator[bytes]:
        root = parse_cid(cid)
        with self._dag_fetch(root, max_size) as fetch:
            yield from iter_file(root, fetch, max_size)

    # -- everything else is the inner store's ---------------------------------------------------------

    def has(self, cid: "CID | str | bytes") -> bool:
        return bool(self.inner.has(cid))

    def pin(self, cid: "CID | str | bytes") -> None:
        self.inner.pin(cid)

    def __getattr__(self, name: str) -> Any:  # put_file, put_tree, put_bytes, import_car, ...
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self.inner, name)
