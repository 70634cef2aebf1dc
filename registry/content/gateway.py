"""A trustless HTTP gateway, read-only: the DAG arrives as a CAR and every block is verified in flight.

Trustless gateways (``?format=car`` / ``application/vnd.ipld.car``, ``?format=raw`` /
``application/vnd.ipld.raw``) return content-addressed bytes, never interpreted files, so the
client can check each block against its CID. The file is rebuilt while the CAR streams in:
blocks arrive depth-first, out-of-order ones wait in a small bounded buffer, and a CAR that ends
before the DAG is complete, carries a block over 2 MiB, or names another root is refused.
"""

from __future__ import annotations

from collections import OrderedDict
from os import PathLike
from typing import Any, BinaryIO, Iterator

import httpx
from multiformats import CID

from registry.content.base import BlockReadingStore
from registry.content.car import CarReader
from registry.content.cids import parse_cid, to_v1_text
from registry.content.http import HttpError, RetryPolicy, make_client, read_limited, request
from registry.content.reader import MAX_BLOCK_SIZE, WalkedBlock, walk
from registry.content.unixfs import ImportResult, Progress
from registry.errors import InputError, IntegrityError, UnreachableError

CAR_ACCEPT = "application/vnd.ipld.car; version=1; order=dfs; dups=y"
RAW_ACCEPT = "application/vnd.ipld.raw"
# blocks that arrived before they were needed; a well-behaved gateway sends DFS order and needs none
MAX_BUFFERED_BLOCKS = 64
# with dups=n, blocks that may be asked for again (identical chunks) are kept this many at a time
MAX_RECENT_BLOCKS = 16


class _ResponseStream:
    """A file-like ``read(n)`` over a streaming response; transport failures become UnreachableError."""

    def __init__(self, resp: httpx.Response, what: str) -> None:
        self._it = resp.iter_bytes()
        self._buf = bytearray()
        self._what = what
        self._done = False

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
        if n < 0:
            n = len(self._buf)
        out = bytes(self._buf[:n])
        del self._buf[:n]
        return out


class GatewayStore(BlockReadingStore):
    """Reads from ``<url>/ipfs/<cid>`` on a trustless gateway; writes are refused."""

    def __init__(self, url: str, timeout: float = 30.0, retries: int = 3, backoff: float = 0.25,
                 transport: httpx.BaseTransport | None = None) -> None:
        self.url = url.rstrip("/")
        self.policy = RetryPolicy(retries, backoff, timeout)
        self._client = make_client(self.url, self.policy, transport=transport)

    def close(self) -> None:
        self._client.close()

    def _refused(self, what: str, exc: HttpError) -> Exception:
        if exc.status in (404, 410):
            return UnreachableError(f"{what}: the gateway does not have it ({exc})")
        return UnreachableError(f"{what} refused: {exc}")

    # -- single blocks -------------------------------------------------------------------------------

    def _fetch_block(self, cid: CID) -> bytes:
        what = f"gateway block {cid}"
        try:
            with request(self._client, self.policy, what, "GET", f"/ipfs/{cid}",
                         lambda: {"params": {"format": "raw"}, "headers": {"Accept": RAW_ACCEPT}}) as resp:
                _check_type(resp, RAW_ACCEPT, what)
                return read_limited(resp, MAX_BLOCK_SIZE, what)
        except HttpError as exc:
            raise self._refused(what, exc) from exc

    def has(self, cid: CID | str | bytes) -> bool:
        c = parse_cid(cid)
        try:
            with request(self._client, self.policy, f"gateway HEAD {c}", "HEAD", f"/ipfs/{c}",
                         lambda: {"params": {"format": "raw"}, "headers": {"Accept": RAW_ACCEPT}}):
                return True
        except HttpError as exc:
            if exc.status in (404, 410):
                return False
            raise self._refused(f"gateway HEAD {c}", exc) from exc

    # -- whole DAGs as CAR ----------------------------------------------------------------------------

    def _walk_car(self, cid: CID | str | bytes, max_size: int | None) -> Iterator[WalkedBlock]:
        root = parse_cid(cid)
        what = f"gateway CAR {root}"
        try:
            with request(self._client, self.policy, what, "GET", f"/ipfs/{root}",
                         lambda: {"params": {"format": "car", "dag-scope": "all"},
                                  "headers": {"Accept": CAR_ACCEPT}}) as resp:
                _check_type(resp, "application/vnd.ipld.car", what)
                reader = CarReader.open(_ResponseStream(resp, what))  # type: ignore[arg-type]
                if [to_v1_text(r) for r in reader.roots] != [to_v1_text(root)]:
                    raise IntegrityError(f"{what}: the CAR's roots {[str(r) for r in reader.roots]} are not {root}")
                blocks = iter(reader)
                # dups=y: repeated blocks (files with identical chunks) come again in DFS order;
                # otherwise each block comes once and repeats are served from memory or re-fetched.
                dups = "dups=y" in resp.headers.get("content-type", "").replace(" ", "").lower()
                waiting: dict[str, bytes] = {}
                recent: OrderedDict[str, bytes] = OrderedDict()
                seen: set[str] = set()

                def fetch(wanted: CID) -> bytes:
                    key = to_v1_text(wanted)
                    if key in waiting:
                        return _remember(key, waiting.pop(key))
                    if not dups and key in seen:
                        if key in recent:
                            recent.move_to_end(key)
                            return recent[key]
                        return _remember(key, self._fetch_block(wanted))  # verified by walk()
                    for got, block in blocks:  # verified by the CAR reader
                        got_key = to_v1_text(got)
                        if got_key == key:
                            return _remember(key, block)
                        if not dups and got_key in seen:
                            continue
                        if len(waiting) >= MAX_BUFFERED_BLOCKS:
                            raise IntegrityError(f"{what}: too many blocks out of order (wanted {wanted})")
                        waiting[got_key] = block
                    raise IntegrityError(f"{what}: incomplete CAR, block {wanted} never arrived")

                def _remember(key: str, block: bytes) -> bytes:
                    if not dups:
                        seen.add(key)
                        recent[key] = block
                        while len(recent) > MAX_RECENT_BLOCKS:
                            recent.popitem(last=False)
                    return block

                yield from walk(root, fetch, max_size)
        except HttpError as exc:
            raise self._refused(what, exc) from exc

    def open(self, cid: CID | str | bytes, max_size: int | None = None) -> Iterator[bytes]:
        for item in self._walk_car(cid, max_size):
            if len(item.data):
                yield bytes(item.data) if item.cid.codec.name != "raw" else item.block

    def iter_blocks(self, cid: CID | str | bytes, max_size: int | None = None) -> Iterator[tuple[CID, bytes]]:
        for item in self._walk_car(cid, max_size):
            yield item.cid, item.block

    # -- read-only ---------------------------------------------------------------------------------

    def _read_only(self, *_: Any, **__: Any) -> Any:
        raise InputError(f"the gateway store {self.url} is read-only; put and pin need a Kubo node or the local store")

    def put_file(self, path: str | PathLike[str], profile: str | None = None,
                 progress: Progress | None = None) -> ImportResult:
        return self._read_only()

    def put_bytes(self, data: bytes, profile: str | None = None) -> ImportResult:
        return self._read_only()

    def pin(self, cid: CID | str | bytes) -> None:
        self._read_only()

    def import_car(self, stream: BinaryIO, pin: bool = True) -> list[CID]:
        return self._read_only()

    def import_car_file(self, path: str | PathLike[str], pin: bool = True) -> list[CID]:
        return self._read_only()


def _check_type(resp: httpx.Response, expected: str, what: str) -> None:
    got = resp.headers.get("content-type", "").split(";")[0].strip().lower()
    if got and got != expected.split(";")[0]:
        raise IntegrityError(f"{what}: the gateway answered {got!r}, not {expected.split(';')[0]!r} "
                             "(is it a trustless gateway?)")
