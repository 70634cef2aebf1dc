"""Blocks rebuilt from a copy on disk (an installed release): what ``pull --from NAME@v1`` reuses.

A device that holds v1 as files (installed by an earlier pull) already has most of v2's bytes. This
source re-imports those files under the release's CID profile, in one read, and remembers where each
leaf came from (file, offset, length) and the small inner nodes; asked for a CID, it reads the range
again, rebuilds the block and hands it out only if it hashes to that CID. A local copy that was
altered after it was installed therefore never leaks into a new release: its changed ranges no longer
hash to anything v2 needs, they are fetched from the store, and the files whose digest no longer
matches their release are reported as damaged.

The index is built lazily, on the first block asked for, so a pull served entirely by the block
cache never reads the old copy at all. Files are opened relative to the copy's root without
following any link.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from registry.content.cids import RAW, parse_cid, to_v1_text
from registry.errors import IntegrityError, RegistryError

if TYPE_CHECKING:
    from multiformats import CID

    from registry.content.filelist import FileList

# inner nodes kept in memory (each at most a few KiB: links of one file's balanced tree)
MAX_NODES = 65536


@dataclass
class SeedStats:
    bytes_read: int = 0            # bytes of the old copy read while indexing it
    served: int = 0
    served_bytes: int = 0
    rejected: int = 0              # blocks whose bytes no longer hash to their CID
    damaged: list[str] = field(default_factory=list)  # files whose SHA-256 differs from their release

    def to_json(self) -> dict[str, object]:
        return {"bytes_read": self.bytes_read, "served": self.served, "served_bytes": self.served_bytes,
                "rejected": self.rejected, "damaged": list(self.damaged[:50])}


class LocalCopy:
    """Serves blocks of a file or a tree on disk by CID (see the module docstring)."""

    def __init__(self, root: str | os.PathLike[str], profile: str, expected: "FileList | None" = None,
                 expected_sha256: bytes | None = None, label: str = "") -> None:
        from registry.content.unixfs import get_profile

        self.root = Path(root)
        self.profile = get_profile(profile)
        self.label = label or str(root)
        self._expected = expected
        self._expected_sha256 = expected_sha256
        self._leaves: dict[str, tuple[str, int, int, bool]] | None = None  # cid -> (path, offset, len, wrapped)
        self._nodes: dict[str, bytes] = {}
        self._fds: dict[str, int] = {}
        self._root_fd: int | None = None
        self.stats = SeedStats()
        self.failed: str | None = None

    # -- index ------------------------------------------------------------------------------------

    def _files(self) -> list[str]:
        from registry.content.tree import is_tree, scan_tree

        if is_tree(self.root):
            return [f.path for f in scan_tree(self.root).files]
        return [""]  # the root itself is the file

    def _open_root(self) -> int:
        if self._root_fd is None:
            target = self.root if self.root.is_dir() else self.root.parent
            self._root_fd = os.open(target, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        return self._root_fd

    def _open(self, rel: str) -> int:
        from registry.content.tree import open_in_tree

        fd = self._fds.get(rel)
        if fd is None:
            fd = open_in_tree(self._open_root(), rel or self.root.name)
            self._fds[rel] = fd
        return fd

    def _build(self) -> None:
        self._leaves = {}
        try:
            for rel in self._files():
                self._index_file(rel)
        except (RegistryError, OSError) as exc:  # an unreadable copy is just not used
            self.failed = str(exc)[:200]
            self._leaves, self._nodes = {}, {}

    def _index_file(self, rel: str) -> None:
        from registry.content.dagpb import decode_node, decode_unixfs
        from registry.content.tree import _FdReader
        from registry.content.unixfs import import_stream

        assert self._leaves is not None
        leaves: dict[str, tuple[str, int, int, bool]] = {}
        nodes: dict[str, bytes] = {}
        offset = [0]

        def sink(cid: "CID", block: bytes) -> None:
            key = to_v1_text(cid)
            if cid.codec.code == RAW:
                leaves.setdefault(key, (rel, offset[0], len(block), False))
                offset[0] += len(block)
                return
            node = decode_node(block)
            if not node.links:  # a dag-pb leaf (kubo-v0): the file bytes wrapped in UnixFS
                n = len(decode_unixfs(node.data).data)
                leaves.setdefault(key, (rel, offset[0], n, True))
                offset[0] += n
            elif len(self._nodes) + len(nodes) < MAX_NODES:
                nodes[key] = block

        fd = self._open(rel)
        os.lseek(fd, 0, os.SEEK_SET)
        result = import_stream(_FdReader(fd), self.profile, block_sink=sink)
        self.stats.bytes_read += result.size
        if not self._matches(rel, result.sha256, result.size):
            self.stats.damaged.append(rel or self.root.name)
            return  # a damaged file is not used at all, not even its intact ranges
        for key, value in leaves.items():
            self._leaves.setdefault(key, value)
        self._nodes.update(nodes)

    def _matches(self, rel: str, sha256: bytes, size: int) -> bool:
        if rel == "":
            return self._expected_sha256 is None or sha256 == self._expected_sha256
        if self._expected is None:
            return True
        entry = self._expected.get(rel)
        return entry is not None and entry.sha256 == sha256 and entry.size == size

    # -- serving ----------------------------------------------------------------------------------

    def has(self, cid: "CID | str | bytes") -> bool:
        """Whether the copy holds a block under ``cid`` (indexing it first; nothing is read or verified)."""
        if self._leaves is None:
            self._build()
        key = to_v1_text(parse_cid(cid))
        return key in self._nodes or key in (self._leaves or {})

    def get(self, cid: "CID | str | bytes") -> bytes | None:
        """The block for ``cid`` rebuilt from the copy, verified; None when the copy does not have it."""
        from registry.content.reader import checked_block

        if self._leaves is None:
            self._build()
        assert self._leaves is not None
        c = parse_cid(cid)
        key = to_v1_text(c)
        block = self._nodes.get(key)
        if block is None:
            where = self._leaves.get(key)
            if where is None:
                return None
            block = self._read(where)
        if block is None:
            return None
        try:
            checked_block(c, block)
        except IntegrityError:
            self.stats.rejected += 1
            self._leaves.pop(key, None)
            self._nodes.pop(key, None)
            return None
        self.stats.served += 1
        self.stats.served_bytes += len(block)
        return block

    def _read(self, where: tuple[str, int, int, bool]) -> bytes | None:
        rel, offset, length, wrapped = where
        try:
            data = os.pread(self._open(rel), length, offset)
        except OSError:
            return None
        if len(data) != length:
            return None
        if not wrapped:
            return data
        from registry.content.dagpb import leaf_wrapping

        head, tail = leaf_wrapping(length)
        return b"".join((head, data, tail))

    def close(self) -> None:
        for fd in self._fds.values():
            os.close(fd)
        self._fds.clear()
        if self._root_fd is not None:
            os.close(self._root_fd)
            self._root_fd = None

