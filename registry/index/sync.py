"""Following the chain into the index: incremental, past the confirmation depth, undoing reorgs.

One ``sync`` call:

1. checks the index belongs to this chain and contract (else starts over: it is a cache);
2. finds the newest block the index has seen that is still on the canonical chain. Block hashes
   form a chain, so the stored blocks that still match form a prefix and a binary search over them
   costs O(log n) header reads (one, in the usual case where nothing moved). Every row from a block
   after that fork point is deleted, and the cursor moves back to it;
3. scans ``eth_getLogs`` from the cursor to ``head - confirmations`` in chunks (halved when a node
   refuses a range), checks each chunk's end block hash before and after the scan (so the logs and
   the recorded hash come from one chain), and applies each chunk in one transaction together with
   the block hashes and the new cursor.

Nothing here is trusted for a verdict: the explorer verifies releases against the chain and bytes.
"""

from __future__ import annotations

import bisect
import sqlite3
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

from registry.errors import ChainError, RegistryError
from registry.index import db
from registry.index.events import Event, decode_log

if TYPE_CHECKING:
    from registry.chain.client import RegistryClient

MAX_CHUNK = 50_000          # blocks per eth_getLogs call at most
REMOTE_CHUNK = 2_000        # a safe start on public RPCs (many refuse wider ranges)
KEEP_CURSOR_BLOCKS = 16     # hashes of event-less cursor blocks kept for reorg detection
MAX_RESCANS = 5             # a chunk whose end block keeps changing under the scan


@dataclass
class Reorg:
    fork_block: int          # newest block still canonical
    undone_rows: int
    previous_cursor: int

    def to_json(self) -> dict[str, Any]:
        return {"fork_block": self.fork_block, "undone_rows": self.undone_rows,
                "previous_cursor": self.previous_cursor}


@dataclass
class SyncResult:
    from_block: int | None
    to_block: int | None
    head: int
    target: int
    events: int = 0
    releases: int = 0
    reorg: Reorg | None = None
    reset_reason: str | None = None
    ignored: int = 0          # logs of event kinds the index does not follow
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def behind(self) -> int:
        return max(0, self.head - (self.to_block if self.to_block is not None else -1))

    def to_json(self) -> dict[str, Any]:
        return {"from_block": self.from_block, "to_block": self.to_block, "head": self.head, "target": self.target,
                "behind": self.behind, "events": self.events, "releases": self.releases,
                "reorg": self.reorg.to_json() if self.reorg else None, "reset_reason": self.reset_reason,
                "ignored": self.ignored,
                "notes": self.notes, "seconds": round(self.seconds, 3)}


@dataclass(frozen=True)
class Header:
    number: int
    hash: bytes
    timestamp: int


class Follower:
    """Keeps one index file in step with one ModelRegistry deployment."""

    def __init__(self, client: "RegistryClient", conn: sqlite3.Connection, confirmations: int = 0,
                 chunk: int | None = None, start_block: int | None = None) -> None:
        self.client = client
        self.conn = conn
        self.confirmations = max(0, int(confirmations))
        self.chunk = chunk or (MAX_CHUNK if _is_loopback(client.rpc_url) else REMOTE_CHUNK)
        self.start_block = start_block

    # -- RPC ---------------------------------------------------------------------------------------

    def _rpc(self, fn: Callable[[], Any]) -> Any:
        from web3.exceptions import Web3RPCError

        from registry.chain.rpc import with_retries

        def attempt() -> Any:
            try:
                return fn()
            except Web3RPCError as exc:
                raise ChainError(f"RPC error from {self.client.rpc_url}: {str(exc)[:200]}") from exc

        return with_retries(attempt, self.client.rpc_url, self.client.retries)

    def head(self) -> int:
        return int(self._rpc(lambda: self.client.w3.eth.block_number))

    def header(self, number: int) -> Header | None:
        """The canonical block at ``number`` (None past the head)."""
        from web3.exceptions import BlockNotFound

        def read() -> Any:
            try:
                return self.client.w3.eth.get_block(number)
            except BlockNotFound:
                return None

        block = self._rpc(read)
        if block is None:
            return None
        return Header(int(block["number"]), bytes(block["hash"]), int(block["timestamp"]))

    def headers(self, numbers: list[int]) -> dict[int, Header]:
        """Many headers at once: one JSON-RPC batch when the node takes batches, else one by one."""
        out: dict[int, Header] = {}
        if not numbers:
            return out
        provider = self.client.w3.provider
        for start in range(0, len(numbers), 500):
            part = numbers[start:start + 500]
            try:
                answers = self._rpc(lambda: provider.make_batch_request(
                    [("eth_getBlockByNumber", [hex(n), False]) for n in part]))
                for n, answer in zip(part, answers):
                    block = answer.get("result") if isinstance(answer, dict) else None
                    if not block:
                        raise ChainError(f"no header for block {n}")
                    out[n] = Header(int(block["number"], 16), bytes.fromhex(block["hash"][2:]),
                                    int(block["timestamp"], 16))
            except (RegistryError, ValueError, TypeError, KeyError, AttributeError):
                for n in part:
                    found = self.header(n)
                    if found is None:
                        raise ChainError(f"block {n} is past the chain head (reorg in progress?)")
                    out[n] = found
        return out

    def logs(self, first: int, last: int) -> list[Any]:
        """Raw ``eth_getLogs`` items (hex strings): web3's result formatters cost more than decoding."""
        address = self.client.address
        provider = self.client.w3.provider

        def call() -> list[Any]:
            answer = provider.make_request("eth_getLogs", [{"address": address, "fromBlock": hex(first),
                                                            "toBlock": hex(last)}])
            if not isinstance(answer, dict):
                raise ChainError(f"{self.client.rpc_url} answered eth_getLogs with something that is not JSON-RPC")
            if "error" in answer:
                raise ChainError(f"eth_getLogs {first}-{last} refused: {str(answer['error'])[:200]}")
            result = answer.get("result")
            if not isinstance(result, list):
                raise ChainError(f"{self.client.rpc_url} answered eth_getLogs without a list of logs")
            return result

        return list(self._rpc(call))

    # -- the procedure -----------------------------------------------------------------------------

    def sync(self, max_blocks: int | None = None, progress: Callable[[int, int], None] | None = None) -> SyncResult:
        started = time.perf_counter()
        conn = self.conn
        head = self.head()
        target = head - self.confirmations
        meta = db.read_meta(conn)
        reset_reason = self._check_identity(meta)
        if reset_reason:
            db.reset(conn)
            meta = db.read_meta(conn)
        if meta.start_block is None:
            start = self.start_block if self.start_block is not None else self._deployment_block(head)
            with db.transaction(conn):
                db.set_meta(conn, chain_id=self.client.chain_id, contract=self.client.address, start_block=start)
            meta = db.read_meta(conn)
        assert meta.start_block is not None
        result = SyncResult(from_block=None, to_block=meta.cursor, head=head, target=target,
                            reset_reason=reset_reason)
        result.reorg = self._undo_reorg(meta)
        cursor = db.read_meta(conn).cursor
        first = meta.start_block if cursor is None else cursor + 1
        last = target if max_blocks is None else min(target, first + max_blocks - 1)
        if last >= first:
            result.from_block = first
            self._scan(first, last, result, progress)
        result.to_block = db.read_meta(conn).cursor
        result.seconds = time.perf_counter() - started
        return result

    def _check_identity(self, meta: db.Meta) -> str | None:
        if meta.chain_id is None and meta.contract is None:
            return None
        if meta.chain_id != self.client.chain_id:
            return f"the index was for chain {meta.chain_id}, the profile's chain is {self.client.chain_id}"
        if (meta.contract or "").lower() != self.client.address.lower():
            return f"the index was for contract {meta.contract}, the profile's contract is {self.client.address}"
        return None

    def _deployment_block(self, head: int) -> int:
        """The first block with code at the contract (binary search on eth_getCode); 0 when the node
        cannot answer for old blocks (a pruned node), which only costs a longer first scan."""
        address = self.client.address
        w3 = self.client.w3
        try:
            lo, hi = 0, head
            while lo < hi:
                mid = (lo + hi) // 2
                if self._rpc(lambda: bytes(w3.eth.get_code(address, block_identifier=mid))):
                    hi = mid
                else:
                    lo = mid + 1
            return lo
        except RegistryError:
            return 0

    def _undo_reorg(self, meta: db.Meta) -> Reorg | None:
        """Rolls the index back to the newest stored block that is still canonical."""
        conn = self.conn
        if meta.cursor is None:
            return None
        stored = [(int(r["number"]), bytes(r["hash"])) for r in conn.execute("SELECT number, hash FROM blocks ORDER BY number")]
        if not stored:
            return None

        def canonical(i: int) -> bool:
            number, digest = stored[i]
            found = self.header(number)
            return found is not None and found.hash == digest

        if canonical(len(stored) - 1):
            return None
        # stored[:k] are canonical, stored[k:] are not; find k.
        k = bisect.bisect_left(range(len(stored)), True, key=lambda i: not canonical(i))
        fork = stored[k - 1][0] if k > 0 else meta.start_block - 1 if meta.start_block is not None else -1
        with db.transaction(conn):
            touched, removed = db.undo_above(conn, fork)
            db.refresh_catalog(conn, touched)
            db.set_meta(conn, cursor=fork if fork >= (meta.start_block or 0) else None)
        return Reorg(fork_block=fork, undone_rows=removed, previous_cursor=meta.cursor)

    def _scan(self, first: int, last: int, result: SyncResult, progress: Callable[[int, int], None] | None,
              retries: int = MAX_RESCANS) -> None:
        position = first
        chunk = self.chunk
        while position <= last:
            end = min(last, position + chunk - 1)
            before = self.header(end)
            try:
                raw = self.logs(position, end)
            except ChainError:
                if chunk == 1:
                    raise
                chunk = max(1, chunk // 2)  # the node refused the range (size or result limits)
                continue
            after = self.header(end)
            if before is None or after is None or before.hash != after.hash:
                if retries <= 0:
                    raise ChainError(f"the chain keeps reorganising around block {end}; try again later")
                result.notes.append(f"block {end} changed during the scan; re-reading it")
                self._undo_reorg(db.read_meta(self.conn))
                return self._scan(_next(db.read_meta(self.conn)), last, result, progress, retries - 1)
            events = self._decode(raw, result)
            self._apply(events, after, result)
            if progress is not None:
                progress(end - first + 1, last - first + 1)
            position = end + 1

    def _decode(self, raw: list[Any], result: SyncResult) -> list[Event]:
        """Decoded events of this contract; a log the index cannot read stops the sync with a clear
        error (skipping it would leave the index silently wrong)."""
        events = []
        ignored = 0
        for log in raw:
            if log.get("removed") or str(log.get("address", "")).lower() != self.client.address.lower():
                continue  # a node that returns other contracts' or removed logs is not believed
            try:
                event = decode_log(log)
            except (ValueError, KeyError, TypeError) as exc:
                raise ChainError(f"cannot decode a log of {self.client.address} in block "
                                 f"{log.get('blockNumber')}: {exc}") from exc
            if event is None:
                ignored += 1
            else:
                events.append(event)
        if ignored:
            result.ignored += ignored
        return events

    def _apply(self, events: list[Event], end: Header, result: SyncResult) -> None:
        conn = self.conn
        event_blocks = sorted({e.block for e in events})
        hashes = {e.block: e.block_hash for e in events}
        headers = self.headers([b for b in event_blocks if b != end.number])
        headers[end.number] = end
        for number, digest in hashes.items():
            if headers[number].hash != digest:
                raise ChainError(f"block {number} was replaced while it was being indexed; run the index again")
        with db.transaction(conn):
            touched = db.apply_events(conn, events)
            for number in event_blocks:
                h = headers[number]
                conn.execute("INSERT OR REPLACE INTO blocks (number, hash, timestamp, has_events) VALUES (?, ?, ?, 1)",
                             (h.number, h.hash, h.timestamp))
            conn.execute("INSERT OR IGNORE INTO blocks (number, hash, timestamp, has_events) VALUES (?, ?, ?, 0)",
                         (end.number, end.hash, end.timestamp))
            conn.execute("DELETE FROM blocks WHERE has_events = 0 AND number NOT IN "
                         "(SELECT number FROM blocks WHERE has_events = 0 ORDER BY number DESC LIMIT ?)",
                         (KEEP_CURSOR_BLOCKS,))
            db.refresh_catalog(conn, touched)
            db.set_meta(conn, cursor=end.number)
        result.events += len(events)
        result.releases += sum(1 for e in events if e.name == "ReleasePublished")


def _next(meta: db.Meta) -> int:
    return (meta.cursor + 1) if meta.cursor is not None else (meta.start_block or 0)


def _is_loopback(url: str) -> bool:
    from urllib.parse import urlparse

    host = urlparse(url).hostname or ""
    return host in ("localhost", "::1") or host.startswith("127.")


@dataclass(frozen=True)
class IndexStatus:
    """Where the index stands against the chain (the explorer's "behind by" banner)."""

    cursor: int | None
    head: int | None
    confirmations: int
    chain_id: int | None
    contract: str | None
    error: str | None = None

    @property
    def behind(self) -> int | None:
        if self.head is None:
            return None
        return self.head - (self.cursor if self.cursor is not None else -1)

    @property
    def lagging(self) -> int | None:
        """Blocks behind beyond the confirmation depth (what a user should worry about)."""
        behind = self.behind
        return None if behind is None else max(0, behind - self.confirmations)

    def to_json(self) -> dict[str, Any]:
        return {"cursor": self.cursor, "head": self.head, "behind": self.behind, "lagging": self.lagging,
                "confirmations": self.confirmations, "chain_id": self.chain_id, "contract": self.contract,
                "error": self.error}


def open_follower(settings: Any, client: "RegistryClient | None" = None, start_block: int | None = None) -> Follower:
    """A follower on the profile's chain and index file."""
    from registry.chain.client import RegistryClient

    client = client or RegistryClient.connect(settings)
    conn = db.connect(db.index_path(settings))
    return Follower(client, conn, settings.profile.confirmations, start_block=start_block)
