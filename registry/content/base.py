"""What every content store offers, and the verified read path they all share.

A store only has to fetch a block by CID (``_fetch_block``); reading a file, exporting a CAR and
writing a download to disk go through ``reader.walk``, which verifies each block against its CID
before any byte is yielded. Downloads land in a temp file beside the destination and are renamed
into place only after the last block verified, so a failed get leaves nothing at the path.
"""

from __future__ import annotations

from contextlib import contextmanager
from os import PathLike
from typing import TYPE_CHECKING, BinaryIO, Callable, Iterator, Protocol, runtime_checkable

from multiformats import CID

from registry.content.car import write_car
from registry.fsutil import atomic_write
from registry.content.cids import parse_cid
from registry.content.reader import checked_block, iter_file, walk
from registry.content.unixfs import ImportResult, Progress

if TYPE_CHECKING:
    from registry.content.dagtree import TreeFile
    from registry.content.tree import FileSink, TreeResult


@runtime_checkable
class ContentStore(Protocol):
    """Put a file, get verified bytes back by CID, ask whether a CID is there, pin it."""

    def put_file(self, path: str | PathLike[str], profile: str | None = None,
                 progress: Progress | None = None) -> ImportResult: ...

    def put_bytes(self, data: bytes, profile: str | None = None) -> ImportResult: ...

    def open(self, cid: CID | str | bytes, max_size: int | None = None) -> Iterator[bytes]: ...

    def get_bytes(self, cid: CID | str | bytes, max_size: int | None = None) -> bytes: ...

    def get_file(self, cid: CID | str | bytes, dest: str | PathLike[str], max_size: int | None = None,
                 progress: Progress | None = None) -> int: ...

    def get_block(self, cid: CID | str | bytes) -> bytes: ...

    def put_tree(self, path: str | PathLike[str], profile: str | None = None, progress: Progress | None = None,
                 sink: "FileSink | None" = None) -> "TreeResult": ...

    def open_tree(self, cid: CID | str | bytes, max_size: int | None = None) -> Iterator["TreeFile"]: ...

    def kind(self, cid: CID | str | bytes) -> str: ...

    def has(self, cid: CID | str | bytes) -> bool: ...

    def pin(self, cid: CID | str | bytes) -> None: ...


class BlockReadingStore:
    """Shared verified reads on top of ``_fetch_block`` (which need not verify anything itself)."""

    def _fetch_block(self, cid: CID) -> bytes:  # pragma: no cover - abstract
        raise NotImplementedError

    def get_block(self, cid: CID | str | bytes) -> bytes:
        """One block, verified against its CID."""
        c = parse_cid(cid)
        return checked_block(c, self._fetch_block(c))

    @contextmanager
    def _dag_fetch(self, root: CID, max_size: int | None = None) -> Iterator[Callable[[CID], bytes]]:
        """A fetch serving the blocks of the DAG under ``root`` in DFS order (remote stores stream a CAR)."""
        yield self._fetch_block

    def kind(self, cid: CID | str | bytes) -> str:
        """``"file"`` or ``"directory"``: what the root block of ``cid`` is."""
        from registry.content.dagtree import root_kind

        return root_kind(cid, self._fetch_block)[0]

    def open_tree(self, cid: CID | str | bytes, max_size: int | None = None) -> Iterator["TreeFile"]:
        """The files of a directory DAG in DAG order, each verified block by block as it is read."""
        from registry.content.dagtree import walk_tree

        root = parse_cid(cid)
        with self._dag_fetch(root, max_size) as fetch:
            yield from walk_tree(root, fetch, max_size)

    def verify_dag(self, cid: CID | str | bytes) -> int:
        """Every distinct block under ``cid`` present and intact (one visit each); the block count."""
        from registry.content.dagcheck import check_dag

        return check_dag(cid, self._fetch_block)

    def open(self, cid: CID | str | bytes, max_size: int | None = None) -> Iterator[bytes]:
        """The file's bytes, block by block, each verified before it is yielded."""
        return iter_file(parse_cid(cid), self._fetch_block, max_size)

    def get_bytes(self, cid: CID | str | bytes, max_size: int | None = None) -> bytes:
        return b"".join(self.open(cid, max_size))

    def get_file(self, cid: CID | str | bytes, dest: str | PathLike[str], max_size: int | None = None,
                 progress: Progress | None = None) -> int:
        """Verified download to ``dest`` (atomic: nothing at ``dest`` unless it all verified)."""
        return atomic_write(dest, self.open(cid, max_size), progress=progress)

    def iter_blocks(self, cid: CID | str | bytes, max_size: int | None = None) -> Iterator[tuple[CID, bytes]]:
        """Every block of the file's DAG, verified, in depth-first order (the order CARs use)."""
        for item in walk(parse_cid(cid), self._fetch_block, max_size):
            yield item.cid, item.block

    def _car_blocks(self, root: CID) -> Iterator[tuple[CID, bytes]]:
        if self.kind(root) == "file":
            return self.iter_blocks(root)
        from registry.content.dagcheck import iter_dag

        return iter_dag(root, self._fetch_block)

    def export_car(self, cid: CID | str | bytes, out: BinaryIO) -> int:
        """Writes the whole DAG under ``cid`` (a file or a tree) as a CAR v1 with ``cid`` as its root."""
        root = parse_cid(cid)
        return write_car(out, [root], self._car_blocks(root))

    def export_car_file(self, cid: CID | str | bytes, dest: str | PathLike[str]) -> int:
        """Same as ``export_car`` into a file, atomically."""
        root = parse_cid(cid)

        def chunks() -> Iterator[bytes]:
            from registry.content.car import encode_header, encode_section

            yield encode_header([root])
            for c, block in self._car_blocks(root):
                yield encode_section(c, block)

        return atomic_write(dest, chunks())

