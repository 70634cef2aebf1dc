"""A Kubo node over its RPC API (``/api/v0``, every call a POST), trusted for nothing.

``add`` is sent with exactly the import parameters of the chosen profile, and the node's answer is
refused unless it equals the CID we computed ourselves from the same bytes. Reads stream the DAG
as one ``dag/export`` CAR and verify each block against its CID before a byte is used (single
blocks come from ``block/get``); the unmaintained ``ipfshttpclient`` is deliberately not used.
"""

from __future__ import annotations

import io
import os
from contextlib import contextmanager
from os import PathLike
from pathlib import Path
from typing import Any, BinaryIO, Callable, Iterator

import httpx
from multiformats import CID

from registry.content.base import BlockReadingStore
from registry.content.car import CarReader
from registry.content.carwalk import ResponseStream, car_fetch, walk_car_stream
from registry.content.cids import parse_cid, to_v1_text
from registry.content.http import (
    DEADLINE_FACTOR,
    HttpError,
    RetryPolicy,
    make_client,
    read_limited,
    request,
    stream_deadline,
)
from registry.provenance import parse_json_strict
from registry.content.reader import MAX_BLOCK_SIZE, WalkedBlock
from registry.content.unixfs import DEFAULT_PROFILE, ImportResult, Profile, Progress, get_profile, import_bytes, import_file
from registry.errors import InputError, IntegrityError, UnreachableError


def add_params(profile: Profile) -> dict[str, str]:
    """The ``add`` flags that make Kubo build exactly the DAG our importer builds for ``profile``."""
    return {
        "cid-version": str(profile.cid_version),
        "raw-leaves": "true" if profile.raw_leaves else "false",
        "chunker": f"size-{profile.chunk_size}",
        "max-file-links": str(profile.max_links),
        "hash": "sha2-256",
        "trickle": "false",
        "inline": "false",
        "wrap-with-directory": "false",
        "pin": "true",
        "progress": "false",
        "cid-base": "base32" if profile.cid_version == 1 else "base58btc",
    }


class _CountingReader(io.RawIOBase):
    """Reports upload progress as httpx pulls the multipart body."""

    def __init__(self, raw: BinaryIO, progress: Progress | None) -> None:
        self._raw = raw
        self._progress = progress

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        data = self._raw.read(size)
        if data and self._progress is not None:
            self._progress(len(data))
        return data


class KuboStore(BlockReadingStore):
    """Content on a Kubo node; CIDs are always recomputed locally and compared."""

    def __init__(self, api_url: str, profile: str = DEFAULT_PROFILE, timeout: float = 10.0, retries: int = 3,
                 backoff: float = 0.25, pin_timeout: float = 600.0,
                 transport: httpx.BaseTransport | None = None) -> None:
        self.api_url = api_url.rstrip("/")
        self.profile = get_profile(profile).name
        self.policy = RetryPolicy(retries, backoff, timeout)
        self.pin_timeout = pin_timeout
        self._client = make_client(self.api_url, self.policy, transport=transport)

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> "KuboStore":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- plumbing --------------------------------------------------------------------------------

    def _rpc(self, command: str, params: dict[str, str] | list[tuple[str, str]] | None = None,
             make_body: Callable[[], dict[str, Any]] | None = None, timeout: float | None = None,
             limit: int = 1 << 20) -> bytes:
        what = f"Kubo {command}"

        def kwargs() -> dict[str, Any]:
            out: dict[str, Any] = {"params": params or {}}
            if make_body is not None:
                out.update(make_body())
            return out

        try:
            with request(self._client, self.policy, what, "POST", f"/api/v0/{command}", kwargs, timeout) as resp:
                return read_limited(resp, limit, what, (timeout or self.policy.timeout_s) * DEADLINE_FACTOR)
        except HttpError as exc:
            if exc.status == 405:
                raise UnreachableError(f"{self.api_url} is not a Kubo RPC API ({what}: {exc})") from exc
            raise _NodeRefused(what, exc) from exc

    @staticmethod
    def _ndjson(body: bytes, what: str) -> list[dict[str, Any]]:
        out = []
        for line in body.splitlines():
            if not line.strip():
                continue
            try:
                obj = parse_json_strict(line, what=what, limit=1 << 20, error=IntegrityError)
            except IntegrityError as exc:
                raise IntegrityError(f"{what}: the node answered something that is not JSON ({exc})") from exc
            if not isinstance(obj, dict):
                raise IntegrityError(f"{what}: unexpected answer {obj!r:.80}")
            out.append(obj)
        if not out:
            raise IntegrityError(f"{what}: empty answer from the node")
        return out

    def version(self) -> dict[str, Any]:
        return self._ndjson(self._rpc("version"), "Kubo version")[-1]

    # -- writes ------------------------------------------------------------------------------------

    def _add(self, opener: Callable[[], BinaryIO], name: str, expected: ImportResult, profile: Profile,
             progress: Progress | None) -> ImportResult:
        opened: list[BinaryIO] = []

        def body() -> dict[str, Any]:
            f = opener()
            opened.append(f)
            return {"files": {"file": (name, _CountingReader(f, progress), "application/octet-stream")}}

        try:
            raw = self._rpc("add", add_params(profile), body, timeout=self.pin_timeout)
        finally:
            for f in opened:
                f.close()
        answer = self._ndjson(raw, "Kubo add")
        hashes = [a["Hash"] for a in answer if isinstance(a.get("Hash"), str)]
        if not hashes:
            raise IntegrityError("Kubo add: the answer carries no CID")
        theirs = parse_cid(hashes[-1])
        if bytes(theirs) != bytes(expected.cid):
            raise IntegrityError(
                f"Kubo add answered {theirs} but the bytes hash to {expected.cid} under {profile.name}; "
                "refusing the node's CID (its import settings differ, or it altered the data)")
        return expected

    def put_file(self, path: str | PathLike[str], profile: str | None = None,
                 progress: Progress | None = None) -> ImportResult:
        p = get_profile(profile or self.profile)
        local = import_file(path, p)  # pass 1: our own CID; pass 2 uploads (progress shows the upload)

        def opener() -> BinaryIO:
            try:
                return open(path, "rb")
            except OSError as exc:
                raise InputError(f"cannot read {path}: {exc.strerror or exc}") from exc

        return self._add(opener, Path(path).name, local, p, progress)

    def put_tree(self, path: str | PathLike[str], profile: str | None = None, progress: Progress | None = None,
                 sink: Any = None) -> Any:
        """``ipfs add -r`` over the RPC: our own tree CID first, then the upload; the node's CID must equal it."""
        from registry.content.tree import import_tree, open_in_tree, open_root, scan_tree

        p = get_profile(profile or self.profile)
        local = import_tree(path, p, sink=sink)
        scan = scan_tree(path)
        boundary = "registry-" + os.urandom(12).hex()

        def parts() -> Iterator[bytes]:
            yield _part_head(boundary, "root", "application/x-directory")
            made = {""}
            root_fd = open_root(path)
            try:
                for item in scan.files:
                    parent = item.path.rpartition("/")[0]
                    steps = parent.split("/") if parent else []
                    for i in range(1, len(steps) + 1):
                        d = "/".join(steps[:i])
                        if d not in made:
                            made.add(d)
                            yield _part_head(boundary, f"root/{d}", "application/x-directory")
                    yield _part_head(boundary, f"root/{item.path}", "application/octet-stream")
                    fd = open_in_tree(root_fd, item.path)
                    try:
                        while chunk := os.read(fd, 1 << 20):
                            if progress is not None:
                                progress(len(chunk))
                            yield chunk
                    finally:
                        os.close(fd)
                    yield b"\r\n"
            finally:
                os.close(root_fd)
            yield f"--{boundary}--\r\n".encode()

        def body() -> dict[str, Any]:
            return {"content": parts(), "headers": {"Content-Type": f"multipart/form-data; boundary={boundary}"}}

        answer = self._ndjson(self._rpc("add", add_params(p), body, timeout=self.pin_timeout), "Kubo add -r")
        roots = [a.get("Hash") for a in answer if a.get("Name") == "root" and isinstance(a.get("Hash"), str)]
        if not roots:
            raise IntegrityError("Kubo add -r: the answer names no root directory")
        theirs = parse_cid(roots[-1])
        if to_v1_text(theirs) != to_v1_text(local.cid):
            raise IntegrityError(
                f"Kubo add -r answered {theirs} but the tree hashes to {local.cid} under {p.name}; refusing the "
                "node's CID (its import settings differ, or it altered the data)")
        return local

    def put_bytes(self, data: bytes, profile: str | None = None) -> ImportResult:
        p = get_profile(profile or self.profile)
        local = import_bytes(data, p)
        return self._add(lambda: io.BytesIO(data), "data", local, p, None)

    def put_block(self, cid: CID, block: bytes) -> None:
        """``block/put`` with the CID's codec; the node's key must be the CID we asked for."""
        cid = parse_cid(cid)
        params = {"cid-codec": cid.codec.name, "mhtype": "sha2-256", "pin": "false"}
        answer = self._ndjson(self._rpc("block/put", params, lambda: {"files": {"data": ("block", block)}}),
                              "Kubo block/put")[-1]
        key = answer.get("Key")
        if not isinstance(key, str) or to_v1_text(parse_cid(key)) != to_v1_text(cid):
            raise IntegrityError(f"Kubo block/put answered {key!r} for block {cid}")

    # -- reads -------------------------------------------------------------------------------------

    def _fetch_block(self, cid: CID) -> bytes:
        return self._rpc("block/get", {"arg": str(cid)}, limit=MAX_BLOCK_SIZE)

    def _walk_export(self, cid: CID | str | bytes, max_size: int | None) -> Iterator[WalkedBlock]:
        """The whole DAG in one ``dag/export`` CAR stream, each block verified as it arrives."""
        root = parse_cid(cid)
        what = f"Kubo dag/export {root}"
        try:
            with request(self._client, self.policy, what, "POST", "/api/v0/dag/export",
                         lambda: {"params": {"arg": str(root), "progress": "false"}}) as resp:
                stream = ResponseStream(resp, what, stream_deadline(self.policy, max_size))
                yield from walk_car_stream(root, stream, self._fetch_block, False, what, max_size)
        except HttpError as exc:
            raise _NodeRefused(what, exc) from exc

    @contextmanager
    def _dag_fetch(self, root: CID, max_size: int | None = None) -> Iterator[Callable[[CID], bytes]]:
        """The DAG under ``root`` from one ``dag/export`` CAR stream, each block verified as it arrives."""
        what = f"Kubo dag/export {root}"
        try:
            with request(self._client, self.policy, what, "POST", "/api/v0/dag/export",
                         lambda: {"params": {"arg": str(root), "progress": "false"}}) as resp:
                yield car_fetch(root, ResponseStream(resp, what, stream_deadline(self.policy, max_size)),
                                self._fetch_block, False, what)
        except HttpError as exc:
            raise _NodeRefused(what, exc) from exc

    def open(self, cid: CID | str | bytes, max_size: int | None = None) -> Iterator[bytes]:
        for item in self._walk_export(cid, max_size):
            if len(item.data):
                yield bytes(item.data) if item.cid.codec.name != "raw" else item.block

    def iter_blocks(self, cid: CID | str | bytes, max_size: int | None = None) -> Iterator[tuple[CID, bytes]]:
        for item in self._walk_export(cid, max_size):
            yield item.cid, item.block

    def has(self, cid: CID | str | bytes) -> bool:
        """Whether the node holds the root block locally (asked offline, so it does not search the network)."""
        c = parse_cid(cid)
        try:
            self._rpc("block/stat", {"arg": str(c), "offline": "true"})
            return True
        except _NodeRefused:
            return False

    # -- pins and CARs ----------------------------------------------------------------------------

    def pin(self, cid: CID | str | bytes) -> None:
        c = parse_cid(cid)
        answer = self._ndjson(self._rpc("pin/add", {"arg": str(c), "recursive": "true"}, timeout=self.pin_timeout),
                              "Kubo pin/add")
        pins = [p for a in answer for p in (a.get("Pins") or []) if isinstance(p, str)]
        if not any(to_v1_text(parse_cid(p)) == to_v1_text(c) for p in pins):
            raise IntegrityError(f"Kubo pin/add did not confirm {c} (answered {pins})")

    def import_car(self, stream: BinaryIO, pin: bool = True) -> list[CID]:
        """Spools the CAR to a temp file (never all in memory), then as ``import_car_file``."""
        import shutil
        import tempfile

        with tempfile.TemporaryFile(prefix="registry-car-") as tmp:
            shutil.copyfileobj(stream, tmp, 1 << 20)
            tmp.seek(0)
            return self._import_car(lambda: _Unclosable(tmp), pin)

    def import_car_file(self, path: str | PathLike[str], pin: bool = True) -> list[CID]:
        """Verifies every block of the CAR locally, then ``dag/import``s it; roots must match."""

        def opener() -> BinaryIO:
            from registry.fsutil import open_regular

            return open_regular(path, what="CAR file")

        return self._import_car(opener, pin)

    def _import_car(self, opener: Callable[[], BinaryIO], pin: bool) -> list[CID]:
        with opener() as f:
            reader = CarReader.open(f)
            for _ in reader:  # every block verified against its CID before anything is sent
                pass
        params = {"pin-roots": "true" if pin else "false", "stats": "false"}

        opened: list[BinaryIO] = []

        def body() -> dict[str, Any]:
            f = opener()
            opened.append(f)
            f.seek(0)
            return {"files": {"file": ("import.car", f, "application/vnd.ipld.car")}}

        try:
            raw = self._rpc("dag/import", params, body, timeout=self.pin_timeout)
        finally:
            for f in opened:
                f.close()
        answer = self._ndjson(raw, "Kubo dag/import") if raw.strip() else []
        reported = set()
        for a in answer:
            root = a.get("Root")
            if isinstance(root, dict):
                if root.get("PinErrorMsg"):
                    raise IntegrityError(f"Kubo dag/import could not pin {root.get('Cid')}: {root['PinErrorMsg']}")
                cid_obj = root.get("Cid")
                if isinstance(cid_obj, dict) and isinstance(cid_obj.get("/"), str):
                    reported.add(to_v1_text(parse_cid(cid_obj["/"])))
        if pin and reported != {to_v1_text(r) for r in reader.roots}:
            raise IntegrityError(f"Kubo dag/import reported roots {sorted(reported)}, the CAR has "
                                 f"{[str(r) for r in reader.roots]}")
        return reader.roots


def _part_head(boundary: str, name: str, ctype: str) -> bytes:
    """One multipart part's header; Kubo reads the file name URL-escaped (``a%2Fb`` is ``a/b``)."""
    from urllib.parse import quote

    return (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{quote(name, safe='')}\"\r\n"
            f"Content-Type: {ctype}\r\n\r\n").encode() + (b"\r\n" if ctype == "application/x-directory" else b"")


class _Unclosable(io.RawIOBase):
    """Lets a shared temp file be handed out per attempt without the first user closing it."""

    def __init__(self, raw: BinaryIO) -> None:
        self._raw = raw

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = 0) -> int:
        return self._raw.seek(offset, whence)

    def tell(self) -> int:
        return self._raw.tell()

    def read(self, size: int = -1) -> bytes:
        return self._raw.read(size)

    def readinto(self, b: Any) -> int:
        return self._raw.readinto(b)

    def close(self) -> None:
        pass


class _NodeRefused(UnreachableError):
    """The node answered with an error status (a 4xx/500 that retrying will not change)."""

    def __init__(self, what: str, error: HttpError) -> None:
        super().__init__(f"{what} refused: {error}")
        self.error = error
