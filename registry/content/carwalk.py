"""Rebuilds a file from a CAR *stream*, verifying each block as it arrives (gateways, ``dag/export``).

One request instead of one per block, with the same guarantees as the block-by-block walk: the
CAR must name the requested root, every block is hashed against its CID (by ``CarReader``), sizes
are cross-checked (by ``reader.walk``), a stream that ends early is refused, and at most a few
out-of-order blocks are held in memory. Producers differ on repeated blocks (a zero-padded model
repeats one leaf many times): with ``dups=y`` they come again in order; otherwise each comes once,
so a repeat is served from a small memory of recent blocks or fetched singly through ``fallback``.
"""

from __future__ import annotations

import io
from collections import OrderedDict
from typing import TYPE_CHECKING, Callable, Iterator

import httpx

from registry.content.car import CarReader
from registry.content.cids import parse_cid, to_v1_text
from registry.content.reader import WalkedBlock, walk
from registry.errors import IntegrityError, UnreachableError

if TYPE_CHECKING:
    from multiformats import CID

# blocks that arrived before they were needed; a depth-first producer needs none
MAX_BUFFERED_BLOCKS = 64
# without dups=y, blocks that may be asked for again (identical chunks) are kept this many at a time
MAX_RECENT_BLOCKS = 16
# repeated sections a producer may send (and we skip) in one stream before it counts as hostile
MAX_SKIPPED_SECTIONS = 4096


class ResponseStream(io.RawIOBase):
    """``read(n)`` over a streaming httpx response; transport failures become UnreachableError."""

    def __init__(self, resp: httpx.Response, what: str, deadline_s: float | None = None) -> None:
        import time

        self._it = resp.iter_bytes()
        self._buf = bytearray()
        self._what = what
        self._done = False
        self._deadline_s = deadline_s
        self._end = time.monotonic() + deadline_s if deadline_s is not None else None

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        while not self._done and (n < 0 or len(self._buf) < n):
            try:
                piece = next(self._it)
            except StopIteration:
                self._done = True
                break
            except httpx.TimeoutException as exc:
                raise UnreachableError(f"{self._what}: timed out mid-stream") from exc
            except httpx.TransportError as exc:
                raise UnreachableError(f"{self._what}: the stream broke ({type(exc).__name__})") from exc
            self._buf += piece
            if self._end is not None:
                import time

                if time.monotonic() > self._end:
                    raise UnreachableError(f"{self._what}: the stream took longer than {self._deadline_s:.0f} s "
                                           "(overall deadline)")
        if n < 0:
            n = len(self._buf)
        out = bytes(self._buf[:n])
        del self._buf[:n]
        return out


def walk_car_stream(root: "CID", stream: io.RawIOBase, fallback: Callable[["CID"], bytes], dups: bool,
                    what: str, max_size: int | None = None) -> Iterator[WalkedBlock]:
    """Verified DFS walk of ``root`` fed by a CAR stream (see the module docstring)."""
    yield from walk(root, car_fetch(root, stream, fallback, dups, what), max_size)


def car_fetch(root: "CID", stream: io.RawIOBase, fallback: Callable[["CID"], bytes], dups: bool,
              what: str) -> Callable[["CID"], bytes]:
    """A ``fetch(cid)`` served from a CAR stream in DFS order (files, directories, HAMT shards alike)."""
    root = parse_cid(root)
    reader = CarReader.open(stream)  # type: ignore[arg-type]
    if [to_v1_text(r) for r in reader.roots] != [to_v1_text(root)]:
        raise IntegrityError(f"{what}: the CAR's roots {[str(r) for r in reader.roots]} are not {root}")
    blocks = iter(reader)
    waiting: dict[str, bytes] = {}
    recent: OrderedDict[str, bytes] = OrderedDict()
    seen: set[str] = set()
    skipped = [0]

    def remember(key: str, block: bytes) -> bytes:
        if not dups:
            seen.add(key)
            recent[key] = block
            while len(recent) > MAX_RECENT_BLOCKS:
                recent.popitem(last=False)
        return block

    def fetch(wanted: "CID") -> bytes:
        key = to_v1_text(wanted)
        if key in waiting:
            return remember(key, waiting.pop(key))
        if not dups and key in seen:
            if key in recent:
                recent.move_to_end(key)
                return recent[key]
            return remember(key, fallback(wanted))  # walk() verifies it like any other block
        for got, block in blocks:  # each verified by the CAR reader
            got_key = to_v1_text(got)
            if got_key == key:
                return remember(key, block)
            if not dups and got_key in seen:
                skipped[0] += 1
                if skipped[0] > MAX_SKIPPED_SECTIONS:
                    raise IntegrityError(f"{what}: more than {MAX_SKIPPED_SECTIONS} repeated CAR sections; refused")
                continue
            if len(waiting) >= MAX_BUFFERED_BLOCKS:
                raise IntegrityError(f"{what}: too many blocks out of order (wanted {wanted})")
            waiting[got_key] = block
        raise IntegrityError(f"{what}: incomplete CAR, block {wanted} never arrived")

    return fetch
