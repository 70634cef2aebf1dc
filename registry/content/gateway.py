"""A trustless HTTP gateway, read-only: the DAG arrives as a CAR and every block is verified in flight.

Trustless gateways (``?format=car`` / ``application/vnd.ipld.car``, ``?format=raw`` /
``application/vnd.ipld.raw``) return content-addressed bytes, never interpreted files, so the
client can check each block against its CID. The file is rebuilt while the CAR streams in
(``carwalk``): a CAR that ends before the DAG is complete, carries a block over 2 MiB, or names
another root is refused.
"""

from __future__ import annotations

from contextlib import contextmanager
from os import PathLike
from typing import Any, BinaryIO, Callable, Iterator

import httpx
from multiformats import CID

from registry.content.base import BlockReadingStore
from registry.content.carwalk import ResponseStream, car_fetch, walk_car_stream
from registry.content.cids import parse_cid
from registry.content.http import HttpError, RetryPolicy, make_client, read_limited, request, stream_deadline
from registry.content.reader import MAX_BLOCK_SIZE, WalkedBlock
from registry.content.unixfs import ImportResult, Progress
from registry.errors import InputError, IntegrityError, UnreachableError

CAR_ACCEPT = "application/vnd.ipld.car; version=1; order=dfs; dups=y"
RAW_ACCEPT = "application/vnd.ipld.raw"


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
                return read_limited(resp, MAX_BLOCK_SIZE, what, self.policy.deadline_s)
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

    @contextmanager
    def _car_stream(self, root: CID, max_size: int | None) -> Iterator[tuple[ResponseStream, bool, str]]:
        """The whole DAG under ``root`` as one CAR response (``dag-scope=all``): its bounded stream,
        whether the gateway says it repeats blocks (``dups=y``), and how errors name it. An HTTP
        failure while the caller reads the stream is reported like one at the request."""
        what = f"gateway CAR {root}"
        try:
            with request(self._client, self.policy, what, "GET", f"/ipfs/{root}",
                         lambda: {"params": {"format": "car", "dag-scope": "all"},
                                  "headers": {"Accept": CAR_ACCEPT}}) as resp:
                _check_type(resp, "application/vnd.ipld.car", what)
                dups = "dups=y" in resp.headers.get("content-type", "").replace(" ", "").lower()
                yield ResponseStream(resp, what, stream_deadline(self.policy, max_size)), dups, what
        except HttpError as exc:
            raise self._refused(what, exc) from exc

    def _walk_car(self, cid: CID | str | bytes, max_size: int | None) -> Iterator[WalkedBlock]:
        root = parse_cid(cid)
        with self._car_stream(root, max_size) as (stream, dups, what):
            yield from walk_car_stream(root, stream, self._fetch_block, dups, what, max_size)

    @contextmanager
    def _dag_fetch(self, root: CID, max_size: int | None = None) -> Iterator[Callable[[CID], bytes]]:
        with self._car_stream(root, max_size) as (stream, dups, what):
            yield car_fetch(root, stream, self._fetch_block, dups, what)

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
