"""A device's block cache: verified blocks of the releases it pulled, bounded, least recently used first out.

An update that changed one layer shares almost every block with the release a device already holds.
Keeping those blocks lets the next pull ask the store only for what it lacks. The cache is its own
directory (``<data dir>/cache/blocks``, never the local store's ``blocks``, so a store garbage
collection and the cache's eviction never touch each other's files) with its own bound.

* Only blocks that hashed to their CID go in (``put`` is called with verified blocks and checks the
  size cap again), and every block read back is hashed again before it is used: a block altered on
  disk (bit rot, tampering, a file planted under a CID's name) is deleted and reported, and the
  caller fetches it afresh. The cache is never trusted, only used.
* Writes are atomic (temp file + rename, no fsync: a block lost in a crash is just a miss; a torn one
  fails its hash). Files are opened without following links and the directory is 0700.
* The bound is in bytes (``REGISTRY_BLOCK_CACHE_MAX``, default 2 GiB; ``0`` disables the cache); the
  directory can be moved with ``REGISTRY_BLOCK_CACHE_DIR`` (e.g. to a partition of its own).
  Recency is the file's mtime, touched on every hit. When a put takes the total past the bound, the
  oldest blocks go until the cache is at 90% of it; a block larger than the bound is not kept. A full
  disk makes a put a no-op (counted), never a failed pull.
"""

from __future__ import annotations

import fcntl
import os
import stat
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from registry.content.cids import parse_cid, to_v1_text
from registry.content.reader import MAX_BLOCK_SIZE
from registry.errors import InputError, IntegrityError

if TYPE_CHECKING:
    from multiformats import CID

    from registry.config import Settings

ENV_MAX = "REGISTRY_BLOCK_CACHE_MAX"
ENV_DIR = "REGISTRY_BLOCK_CACHE_DIR"
DEFAULT_MAX_BYTES = 2 * 1024**3
LOW_WATER = 0.9
_TMP_PREFIX = ".tmp-"
_READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
_UNITS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}


def parse_size(text: str) -> int:
    """``1048576``, ``512M``, ``2G`` (binary units, optional ``iB``/``B``) -> bytes; InputError otherwise."""
    raw = text.strip().lower().removesuffix("ib").removesuffix("b")
    unit = raw[-1:] if raw[-1:] in _UNITS and raw[-1:] else ""
    number = raw[: len(raw) - len(unit)].strip()
    if not number.isdigit() or len(number) > 15:
        raise InputError(f"not a size: {text[:40]!r} (bytes, or a number with K, M, G or T)")
    return int(number) * _UNITS[unit]


def cache_dir(settings: "Settings", env: dict[str, str] | None = None) -> Path:
    override = (env if env is not None else os.environ).get(ENV_DIR)
    return Path(override).expanduser() if override else settings.home / "cache" / "blocks"


def configured_max(env: dict[str, str] | None = None) -> int:
    value = (env if env is not None else os.environ).get(ENV_MAX)
    return parse_size(value) if value else DEFAULT_MAX_BYTES


@dataclass
class CacheStats:
    """What the cache did during one session (a pull)."""

    hits: int = 0
    hit_bytes: int = 0
    puts: int = 0
    put_bytes: int = 0
    rejected: int = 0        # blocks found altered on disk: deleted, fetched again
    evicted: int = 0
    evicted_bytes: int = 0
    write_errors: int = 0    # puts skipped (disk full, permissions)

    def to_json(self) -> dict[str, int]:
        return dict(self.__dict__)


class BlockCache:
    """Verified blocks under ``root/<2 chars>/<base32 CIDv1>``, at most ``max_bytes`` in total."""

    def __init__(self, root: str | os.PathLike[str], max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        if max_bytes < 0:
            raise InputError("the block cache bound must be zero or more bytes")
        self.root = Path(root)
        self.max_bytes = max_bytes
        self.stats = CacheStats()
        self._total: int | None = None

    @classmethod
    def for_settings(cls, settings: "Settings", max_bytes: int | None = None) -> "BlockCache":
        return cls(cache_dir(settings), configured_max() if max_bytes is None else max_bytes)

    @property
    def enabled(self) -> bool:
        return self.max_bytes > 0

    def path(self, cid: "CID | str | bytes") -> Path:
        key = to_v1_text(cid)
        return self.root / key[-3:-1] / key

    # -- reads ------------------------------------------------------------------------------------

    def contains(self, cid: "CID | str | bytes") -> bool:
        """Whether a block is stored under ``cid`` (not whether it is intact: ``get`` says that)."""
        return self.enabled and os.path.isfile(self.path(cid))

    def get(self, cid: "CID | str | bytes") -> bytes | None:
        """The block, verified against ``cid``; None when absent or altered (an altered one is deleted)."""
        if not self.enabled:
            return None
        c = parse_cid(cid)
        path = self.path(c)
        try:
            if not stat.S_ISDIR(os.lstat(path.parent).st_mode):  # a shard replaced by a link: not ours
                os.unlink(path.parent)
                return None
        except OSError:
            return None
        try:
            fd = os.open(path, _READ_FLAGS)
        except FileNotFoundError:
            return None
        except OSError:  # a planted link (ELOOP), a directory, no permission: not a block of ours
            self._discard(path)
            return None
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode) or info.st_size > MAX_BLOCK_SIZE:
                block = None
            else:
                block = _read_all(fd, info.st_size)
        finally:
            os.close(fd)
        if block is not None:
            from registry.content.reader import checked_block

            try:
                checked_block(c, block)
            except IntegrityError:
                block = None
        if block is None:
            self._discard(path)
            return None
        try:
            os.utime(path)  # recency for the LRU
        except OSError:
            pass
        self.stats.hits += 1
        self.stats.hit_bytes += len(block)
        return block

    def _discard(self, path: Path) -> None:
        self.stats.rejected += 1
        try:
            info = os.lstat(path)
            if stat.S_ISDIR(info.st_mode):
                import shutil

                shutil.rmtree(path, ignore_errors=True)
            else:
                os.unlink(path)
            if self._total is not None and stat.S_ISREG(info.st_mode):
                self._total -= info.st_size
        except OSError:
            pass

    # -- writes -----------------------------------------------------------------------------------

    def put(self, cid: "CID | str | bytes", block: bytes) -> bool:
        """Keeps a block that has been verified against ``cid``; False when it was not kept."""
        if not self.enabled or len(block) > min(self.max_bytes, MAX_BLOCK_SIZE):
            return False
        path = self.path(cid)
        if os.path.isfile(path):
            return True
        tmp = path.parent / f"{_TMP_PREFIX}{os.getpid()}-{time.monotonic_ns()}"
        try:
            self._ensure_dirs(path.parent)
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
            try:
                view = memoryview(block)
                while len(view):
                    view = view[os.write(fd, view):]
            finally:
                os.close(fd)
            os.replace(tmp, path)
        except OSError:
            self.stats.write_errors += 1
            try:
                os.unlink(tmp)
            except OSError:
                pass
            return False
        self.stats.puts += 1
        self.stats.put_bytes += len(block)
        total = self.total_bytes() + len(block)
        self._total = total
        if total > self.max_bytes:
            self.evict()
        return True

    def _ensure_dirs(self, shard: Path) -> None:
        if not self.root.is_dir():
            self.root.mkdir(parents=True, exist_ok=True)
            os.chmod(self.root, 0o700)
        try:
            info = os.lstat(shard)
        except FileNotFoundError:
            shard.mkdir(exist_ok=True)
            return
        if not stat.S_ISDIR(info.st_mode):  # a link or a file planted as a shard: never written through
            os.unlink(shard)
            shard.mkdir()

    # -- size and eviction --------------------------------------------------------------------------

    def _entries(self) -> list[tuple[int, int, Path]]:
        """(mtime, size, path) of every block file; stale temp files of dead writes are removed."""
        out = []
        now = time.time()
        try:
            shards = list(os.scandir(self.root))
        except FileNotFoundError:
            return out
        for shard in shards:
            if not shard.is_dir(follow_symlinks=False):
                continue
            for entry in os.scandir(shard.path):
                try:
                    info = entry.stat(follow_symlinks=False)
                except OSError:
                    continue
                if entry.name.startswith(_TMP_PREFIX):
                    if now - info.st_mtime > 600:
                        _unlink(entry.path)
                    continue
                if stat.S_ISREG(info.st_mode):
                    out.append((info.st_mtime_ns, info.st_size, Path(entry.path)))
        return out

    def total_bytes(self) -> int:
        """Bytes held (counted once per process, then kept up to date by puts and evictions)."""
        if self._total is None:
            self._total = sum(size for _t, size, _p in self._entries())
        return self._total

    def block_count(self) -> int:
        return len(self._entries())

    def evict(self, target: int | None = None) -> int:
        """Removes the least recently used blocks until at most ``target`` bytes (90% of the bound) remain."""
        goal = int(self.max_bytes * LOW_WATER) if target is None else target
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / ".lock", "a+b") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # two pulls evicting at once would each count the other's files
            entries = sorted(self._entries())
            total = sum(size for _t, size, _p in entries)
            freed = 0
            for _mtime, size, path in entries:
                if total <= goal:
                    break
                if _unlink(str(path)):
                    total -= size
                    freed += size
                    self.stats.evicted += 1
                    self.stats.evicted_bytes += size
            self._total = total
        return freed

    def clear(self) -> int:
        return self.evict(0)


def _unlink(path: str) -> bool:
    try:
        os.unlink(path)
        return True
    except OSError:
        return False


def _read_all(fd: int, size: int) -> bytes | None:
    out = bytearray()
    while len(out) <= size:
        piece = os.read(fd, size + 1 - len(out))
        if not piece:
            break
        out += piece
    return bytes(out) if len(out) == size else None
