"""Reads a directory tree back out of verified blocks (basic directories and HAMT shards).

The walk goes depth-first in link order, which is the order CAR producers (Kubo ``dag/export``,
trustless gateways) stream blocks in, so one CAR stream serves a whole tree. Each file is handed
out as a ``TreeFile`` whose ``chunks()`` yields its verified bytes (``reader.walk``); the walker
finishes a file before it moves on. Everything a hostile DAG could use is refused: names that are
not valid file-list components (``..``, ``/``, hidden, control characters), duplicate names, empty
directories, symlinks and other node types, more entries than a file list may hold, a tree
deeper than its limit, and more file bytes than the expected size.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterator

from multiformats import CID

from registry.content.cids import DAG_PB, RAW, parse_cid
from registry.content.dagpb import T_DIRECTORY, T_FILE, T_HAMT_SHARD, T_RAW, decode_node, decode_unixfs
from registry.content.filelist import MAX_DEPTH, MAX_FILES, check_component
from registry.content.reader import DEFAULT_MAX_SIZE, Fetch, checked_block, walk
from registry.errors import InputError, IntegrityError


@dataclass
class TreeFile:
    """One file of the tree; ``chunks()`` must be consumed before the walk goes on."""

    path: str
    cid: CID
    _first: bytes
    _fetch: Fetch
    _limit: int
    consumed: int = 0
    _gen: Iterator[memoryview | bytes] | None = None

    def chunks(self) -> Iterator[memoryview | bytes]:
        """The file's verified bytes (one generator per file: a second call resumes the first)."""
        if self._gen is None:
            self._gen = self._walk()
        return self._gen

    def _walk(self) -> Iterator[memoryview | bytes]:
        for item in walk(self.cid, self._fetch, self._limit, first_block=self._first):
            if len(item.data):
                self.consumed += len(item.data)
                yield item.block if item.cid.codec.code == RAW else item.data


def root_kind(cid: CID | str | bytes, fetch: Fetch) -> tuple[str, bytes]:
    """``"file"`` or ``"directory"`` for a root CID, and its (verified) block."""
    c = parse_cid(cid)
    block = checked_block(c, fetch(c))
    return _kind(c, block), block


def _kind(cid: CID, block: bytes) -> str:
    if cid.codec.code == RAW:
        return "file"
    if cid.codec.code != DAG_PB:
        raise IntegrityError(f"block {cid} has codec {cid.codec.name}; expected raw or dag-pb")
    fs = decode_unixfs(decode_node(block).data)
    if fs.type in (T_FILE, T_RAW):
        return "file"
    if fs.type in (T_DIRECTORY, T_HAMT_SHARD):
        return "directory"
    raise IntegrityError(f"block {cid} is a UnixFS type {fs.type} node (a symlink or metadata); refused")


class _Memo:
    """Per-walk memo of parsed link CIDs and small verified blocks, so a DAG that repeats a directory
    or a tiny file many times costs one parse and one hash per distinct block, not one per visit."""

    SMALL = 64 * 1024
    MAX_BLOCKS = 4096

    def __init__(self, fetch: Fetch) -> None:
        self._fetch = fetch
        self.cids: dict[bytes, CID] = {}
        self.blocks: dict[bytes, bytes] = {}

    def cid(self, raw: bytes, where: str) -> CID:
        found = self.cids.get(raw)
        if found is None:
            found = self.cids[raw] = _cid(raw, where)
        return found

    def block(self, raw: bytes, cid: CID) -> bytes:
        found = self.blocks.get(raw)
        if found is None:
            found = checked_block(cid, self._fetch(cid))
            if len(found) <= self.SMALL and len(self.blocks) < self.MAX_BLOCKS:
                self.blocks[raw] = found
        return found


def walk_tree(root: CID | str | bytes, fetch: Fetch, max_size: int | None = None,
              first_block: bytes | None = None) -> Iterator[TreeFile]:
    """Every file under the directory ``root``, in DAG order; file bytes bounded by ``max_size`` in total."""
    c = parse_cid(root)
    limit = [DEFAULT_MAX_SIZE if max_size is None else max_size]
    count = [0]
    block = checked_block(c, first_block if first_block is not None else fetch(c))
    if _kind(c, block) != "directory":
        raise IntegrityError(f"{c} is a file, not a directory")
    yield from _directory(c, block, "", 0, fetch, limit, count, _Memo(fetch))


def _directory(cid: CID, block: bytes, prefix: str, depth: int, fetch: Fetch, limit: list[int],
               count: list[int], memo: _Memo) -> Iterator[TreeFile]:
    if depth >= MAX_DEPTH:
        raise IntegrityError(f"directory {prefix or '/'} is nested deeper than {MAX_DEPTH} levels")
    names: set[str] = set()
    for name, raw, child in _entries(cid, block, prefix, memo, 0):
        where = prefix.rstrip("/")
        try:
            check_component(name, where)
        except InputError as exc:
            raise IntegrityError(f"directory entry refused: {exc}") from None
        if name in names:
            raise IntegrityError(f"directory {prefix or '/'} lists {name!r} twice")
        names.add(name)
        child_block = memo.block(raw, child)
        path = prefix + name
        if _kind(child, child_block) == "directory":
            yield from _directory(child, child_block, path + "/", depth + 1, fetch, limit, count, memo)
            continue
        count[0] += 1
        if count[0] > MAX_FILES:
            raise IntegrityError(f"the tree holds more than {MAX_FILES} files")
        item = TreeFile(path, child, child_block, fetch, limit[0])
        yield item
        for _ in item.chunks():  # a consumer that skipped the bytes still pays for the walk
            pass
        limit[0] -= item.consumed
    if not names:
        raise IntegrityError(f"directory {prefix or '/'} ({cid}) is empty; a release tree has none")


def _entries(cid: CID, block: bytes, prefix: str, memo: _Memo, level: int) -> Iterator[tuple[str, bytes, CID]]:
    from registry.content.hamt import MAX_LEVELS, read_shard

    node = decode_node(block)
    fs = decode_unixfs(node.data)
    where = f"directory {prefix or '/'} ({cid})"
    if fs.type == T_DIRECTORY:
        if level:
            raise IntegrityError(f"{where}: a HAMT shard links to a plain directory node")
        for link in node.links:
            if link.name is None:
                raise IntegrityError(f"{where}: a link has no name")
            yield link.name, link.hash, memo.cid(link.hash, where)
        return
    if fs.type != T_HAMT_SHARD:
        raise IntegrityError(f"{where}: UnixFS type {fs.type} where a directory was expected")
    if level >= MAX_LEVELS:
        raise IntegrityError(f"{where}: HAMT deeper than {MAX_LEVELS} levels")
    for link in read_shard(node, fs, where):
        child = memo.cid(link.cid, where)
        if link.name is None:  # a child shard
            shard = memo.block(link.cid, child)
            yield from _entries(child, shard, prefix, memo, level + 1)
        else:
            yield link.name, link.cid, child


def _cid(raw: bytes, where: str) -> CID:
    from registry.content.cids import fast_cid

    try:
        return fast_cid(raw)  # type: ignore[return-value]
    except Exception as exc:
        raise IntegrityError(f"{where} links to a malformed CID") from exc


def file_or_tree(cid: CID | str | bytes, fetch: Fetch) -> str:
    return root_kind(cid, fetch)[0]


FetchFactory = Callable[[CID], Fetch]
