"""The canonical file list of a directory artifact (decision D8): what a directory's SHA-256 means.

A directory release anchors, as its ``artifactSha256``, the SHA-256 of this document::

    {"files":[{"path":"model.onnx","sha256":"<64 hex>","size":1234},
              {"path":"model.onnx.data","sha256":"…","size":…}],
     "schema":"registry.file-list/v1"}

serialised as RFC 8785 canonical JSON (UTF-8, no whitespace, keys sorted), with:

* one entry per regular file of the tree, and nothing else: directories are implied by the paths
  (a tree has no empty directory), symlinks, FIFOs, sockets and devices are refused, and entries
  whose name starts with ``.`` are not part of the artifact (as with ``ipfs add -r`` without
  ``--hidden``);
* ``path`` relative to the tree's root, components joined by ``/``; every component is 1 to 255
  bytes of UTF-8, never ``.`` or ``..``, never starts with ``.``, holds no ``/``, ``\\``, NUL or
  other control character; at most 4096 bytes and 64 components per path;
* no two paths equal under Unicode case folding (NFC, then ``str.casefold``), so the tree is the
  same tree on a case-insensitive file system;
* entries sorted by the UTF-8 bytes of ``path``; ``sha256`` is the lower-case hex SHA-256 of the
  file's bytes (the digest OpenSSF ``model_signing`` records for the same file); ``size`` its
  length in bytes.

Names are therefore bound by the digest, unlike ``model_signing``'s root digest, which hashes only
the per-file digests. The release's ``artifactSize`` is the sum of ``size``. The list is itself
stored (and pinned) in IPFS next to the tree, so an auditor can read what a release contains
without fetching the files.
"""

from __future__ import annotations

import hashlib
import unicodedata
from dataclasses import dataclass
from typing import Any, Iterable

from registry.errors import InputError, IntegrityError

SCHEMA = "registry.file-list/v1"
MAX_FILES = 100_000
MAX_COMPONENT_BYTES = 255
MAX_PATH_BYTES = 4096
MAX_DEPTH = 64
# 2^53: sizes travel as JSON numbers, exact only up to here
MAX_FILE_SIZE = 2**53
MAX_LIST_BYTES = 32 * 1024 * 1024


@dataclass(frozen=True, order=True)
class FileEntry:
    """One regular file of the tree: where it is, how long it is, and its SHA-256."""

    path: str
    size: int
    sha256: bytes

    def to_json(self) -> dict[str, Any]:
        return {"path": self.path, "sha256": self.sha256.hex(), "size": self.size}


def check_component(name: str, where: str = "") -> str:
    """One path component as the file list allows it; InputError naming the problem otherwise."""
    shown = f"{where}/{name}" if where else name
    if not name or name in (".", ".."):
        raise InputError(f"path component {shown!r} is empty, '.' or '..'")
    try:
        raw = name.encode("utf-8")
    except UnicodeEncodeError:
        raise InputError(f"file name {shown.encode('utf-8', 'backslashreplace').decode()!r} is not UTF-8") from None
    if len(raw) > MAX_COMPONENT_BYTES:
        raise InputError(f"file name {shown[:80]!r}… is longer than {MAX_COMPONENT_BYTES} bytes")
    if any(ch in name for ch in "/\\") or any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in name):
        raise InputError(f"file name {shown!r} contains '/', '\\\\' or a control character")
    if name.startswith("."):
        raise InputError(f"{shown!r} is hidden (starts with '.'); hidden entries are not part of an artifact")
    return name


def check_path(path: str) -> str:
    """A relative tree path (``a/b/c``) as the file list allows it."""
    if not isinstance(path, str) or not path:
        raise InputError("empty path in a file list")
    if len(path.encode("utf-8", "surrogatepass")) > MAX_PATH_BYTES:
        raise InputError(f"path {path[:80]!r}… is longer than {MAX_PATH_BYTES} bytes")
    parts = path.split("/")
    if len(parts) > MAX_DEPTH:
        raise InputError(f"path {path[:80]!r} is nested deeper than {MAX_DEPTH} levels")
    for i, part in enumerate(parts):
        check_component(part, "/".join(parts[:i]))
    return path


def fold(path: str) -> str:
    """The key under which two paths collide on a case-insensitive, normalising file system."""
    return unicodedata.normalize("NFC", path).casefold()


def sort_key(path: str) -> bytes:
    return path.encode("utf-8")


@dataclass(frozen=True)
class FileList:
    """A validated, sorted list of the tree's files; ``encode()`` is the canonical document."""

    entries: tuple[FileEntry, ...]

    @classmethod
    def build(cls, entries: Iterable[FileEntry]) -> "FileList":
        """Validates paths, sizes and collisions, and sorts (the order of ``entries`` does not matter)."""
        items = sorted(entries, key=lambda e: sort_key(e.path))
        if not items:
            raise InputError("a directory artifact needs at least one file")
        if len(items) > MAX_FILES:
            raise InputError(f"{len(items)} files: a directory artifact holds at most {MAX_FILES}")
        folded: dict[str, str] = {}
        dirs: set[str] = set()
        for entry in items:
            check_path(entry.path)
            if not isinstance(entry.size, int) or isinstance(entry.size, bool) or not 0 <= entry.size <= MAX_FILE_SIZE:
                raise InputError(f"{entry.path}: size {entry.size!r} out of range")
            if not isinstance(entry.sha256, bytes) or len(entry.sha256) != 32:
                raise InputError(f"{entry.path}: sha256 must be 32 bytes")
            key = fold(entry.path)
            if key in folded:
                raise InputError(f"{entry.path!r} and {folded[key]!r} are the same path under case folding")
            folded[key] = entry.path
            parts = entry.path.split("/")
            dirs.update(fold("/".join(parts[:i])) for i in range(1, len(parts)))
        clash = sorted(p for k, p in folded.items() if k in dirs)
        if clash:
            raise InputError(f"{clash[0]!r} is both a file and a directory")
        return cls(tuple(items))

    @property
    def total_size(self) -> int:
        return sum(e.size for e in self.entries)

    @property
    def paths(self) -> list[str]:
        return [e.path for e in self.entries]

    def get(self, path: str) -> FileEntry | None:
        for entry in self.entries:
            if entry.path == path:
                return entry
        return None

    def to_json(self) -> dict[str, Any]:
        return {"files": [e.to_json() for e in self.entries], "schema": SCHEMA}

    def encode(self) -> bytes:
        """The canonical bytes (RFC 8785): what is hashed, anchored and pinned."""
        import rfc8785

        return rfc8785.dumps(self.to_json())

    @property
    def sha256(self) -> bytes:
        return hashlib.sha256(self.encode()).digest()


def parse_file_list(data: bytes, what: str = "file list") -> FileList:
    """Reads a file list from untrusted bytes: strict JSON, exact shape, and it must be canonical."""
    from registry.provenance import parse_json_strict

    raw = parse_json_strict(bytes(data), what=what, limit=MAX_LIST_BYTES, error=IntegrityError)
    if not isinstance(raw, dict) or set(raw) != {"files", "schema"} or raw["schema"] != SCHEMA:
        raise IntegrityError(f"{what}: not a {SCHEMA} document")
    files = raw["files"]
    if not isinstance(files, list):
        raise IntegrityError(f"{what}: files must be a list")
    entries = []
    for item in files:
        if not isinstance(item, dict) or set(item) != {"path", "sha256", "size"}:
            raise IntegrityError(f"{what}: every file needs exactly path, sha256 and size")
        digest = item["sha256"]
        if not isinstance(digest, str) or len(digest) != 64 or digest != digest.lower():
            raise IntegrityError(f"{what}: sha256 of {str(item['path'])[:80]!r} is not 64 lower-case hex digits")
        try:
            entries.append(FileEntry(item["path"], item["size"], bytes.fromhex(digest)))
        except ValueError as exc:
            raise IntegrityError(f"{what}: {exc}") from exc
    try:
        listing = FileList.build(entries)
    except InputError as exc:
        raise IntegrityError(f"{what}: {exc}") from exc
    if listing.encode() != bytes(data):
        raise IntegrityError(f"{what}: not in canonical form (RFC 8785, sorted by path)")
    return listing
