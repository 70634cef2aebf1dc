"""The event index: an SQLite file in the data dir that follows ModelRegistry's events.

``update_index(settings)`` is what ``registry index`` runs: catch up with the chain (past the
profile's confirmation depth, undoing reorgs), then read the facts the catalog filters on from the
content store. The index serves lists, search and lineage; it is never trusted for a verdict.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

from registry.index.db import connect, index_path
from registry.index.sync import Follower, IndexStatus, SyncResult, open_follower

if TYPE_CHECKING:
    from registry.chain.client import RegistryClient
    from registry.config import Settings
    from registry.content.base import ContentStore
    from registry.index.content import EnrichResult

__all__ = ["Follower", "IndexStatus", "IndexUpdate", "SyncResult", "connect", "index_path", "open_follower",
           "update_index"]


@dataclass
class IndexUpdate:
    path: str
    sync: SyncResult
    content: "EnrichResult | None"

    def to_json(self) -> dict[str, Any]:
        return {"path": self.path, **self.sync.to_json(),
                "content": self.content.to_json() if self.content is not None else None}


def update_index(
    settings: "Settings",
    *,
    client: "RegistryClient | None" = None,
    store: "ContentStore | None" = None,
    content: bool = True,
    reset: bool = False,
    start_block: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> IndexUpdate:
    """One catch-up pass; returns what moved (blocks, events, a reorg undone, content facts read)."""
    from registry.index import db
    from registry.index.content import enrich

    follower = open_follower(settings, client, start_block=start_block)
    try:
        if reset:
            db.reset(follower.conn)
        result = follower.sync(progress=progress)
        enriched = None
        if content:
            from registry.content.stores import open_store

            enriched = enrich(follower.conn, store or open_store(settings))
        return IndexUpdate(path=str(index_path(settings)), sync=result, content=enriched)
    finally:
        follower.conn.close()
