"""The embedded store: blocks as files under the data dir, keyed by their base32 CIDv1.

It is what a fresh machine uses with no IPFS node at all, and it can export any artifact as a CAR
for ``ipfs dag import`` into a real node later. Every write is atomic (temp file + ``os.replace``)
so a crash never leaves a half block under a valid name, and reads verify every block anyway.
Pins are a set of CIDs in ``pins.json`` (rewritten atomically under a file lock).

``registry gc`` may delete blocks no pin or release needs, so writers announce themselves: each
put holds ``gc.lock`` shared (gc deletes under it exclusively), and the first write of a process
leaves a lease ``writers/<pid>.<start>`` whose blocks gc keeps for as long as that process lives
(they may be waiting for a pin or a chain transaction). Temp files go to ``.tmp/``, one place to
sweep. A full disk is a StorageError naming the block store, never "cannot read" the input.
"""

from __future__ import annotations

import atexit
import ctypes
import ctypes.util
import errno
import fcntl
import json
import os
from contextlib import contextmanager
from os import PathLike
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, Iterator

from multiformats import CID

from registry.content.base import BlockReadingStore
from registry.content.car import CarReader
from registry.content.cids import parse_cid, to_v1_text
from registry.content.reader import MAX_BLOCK_SIZE, checked_block
from registry.content.unixfs import (
    DEFAULT_PROFILE,
    ImportResult,
    Progress,
    get_profile,
    import_bytes,
    import_file,
)
from registry.errors import InputError, IntegrityError, StorageError, UnreachableError
from registry.fsutil import atomic_write, storage_error

GC_LOCK = "gc.lock"
WRITERS = "writers"
TMP = ".tmp"
_leases: set[str] = set()  # store roots this process has announced itself in

if TYPE_CHECKING:
    from registry.content.tree import FileSink, TreeResult


def _load_libc() -> ctypes.CDLL | None:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        libc.syncfs.argtypes = [ctypes.c_int]
        return libc
    except (OSError, AttributeError):
        return None


_LIBC = _load_libc()


class LocalStore(BlockReadingStore):
    """Blocks under ``root/<2 chars>/<cid>``; sharded like go-ds-flatfs so no directory grows huge."""

    def __init__(self, root: str | PathLike[str], profile: str = DEFAULT_PROFILE, fsync: bool = True) -> None:
        self.root = Path(root)
        self.profile = get_profile(profile).name
        self.fsync = fsync

    # -- blocks ---------------------------------------------------------------------------------

    def block_path(self, cid: CID | str | bytes) -> Path:
        key = to_v1_text(cid)
        return self.root / key[-3:-1] / key

    def put_block(self, cid: CID, block: bytes) -> None:
        """Stores a block under its CID (verified first) and makes it durable."""
        checked_block(cid, block)
        with self.writing():
            self._write_block(cid, block)
            self._sync()

    @contextmanager
    def writing(self) -> Iterator[None]:
        """Held around every put: gc waits for it, and this process's blocks are leased (see above)."""
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            self._lease()
            handle = open(self.root / GC_LOCK, "a+b")
        except OSError as exc:
            raise storage_error(exc, "block store", self.root) from exc
        with handle:
            fcntl.flock(handle, fcntl.LOCK_SH)
            yield

    def _lease(self) -> None:
        key = str(self.root.resolve())
        if key in _leases:
            return
        from registry.procinfo import start_ticks

        folder = self.root / WRITERS
        folder.mkdir(exist_ok=True)
        lease = folder / f"{os.getpid()}.{start_ticks(os.getpid()) or 0}"
        lease.touch()
        _leases.add(key)
        atexit.register(lease.unlink, missing_ok=True)  # a killed process leaves it for gc to drop

    def _write_block(self, cid: CID, block: bytes) -> None:
        # An identical block already there is kept (and touched: it is in use again, see gc);
        # anything else under that name (a crash between rename and writeback, bit rot, tampering)
        # is replaced, so putting the file again repairs it.
        path = self.block_path(cid)
        try:
            if path.stat().st_size == len(block) and path.read_bytes() == block:
                os.utime(path)
                return
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise storage_error(exc, "block store", self.root) from exc
        # one syncfs per put (see _sync)
        atomic_write(path, block, fsync=False, where="block store", tmp_dir=self.root / TMP)

    def _fetch_block(self, cid: CID) -> bytes:
        # the hot path of verify/pull (thousands of blocks per GiB): plain os calls, one read
        key = to_v1_text(cid)
        try:
            # O_NONBLOCK: a FIFO planted under a block's name reads as empty (and fails its hash), never hangs
            fd = os.open(f"{self.root}/{key[-3:-1]}/{key}", os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
        except FileNotFoundError:
            # absent, not altered: the content is unavailable here (exit 15), not tampered with (10)
            raise UnreachableError(f"block {cid} is not in the local store {self.root}") from None
        except OSError as exc:
            raise IntegrityError(f"block {cid} in the local store cannot be read: {exc.strerror or exc}") from None
        try:
            # one byte over the limit is enough for checked_block to refuse an oversized block
            return os.read(fd, min(os.fstat(fd).st_size, MAX_BLOCK_SIZE) + 1)
        except OSError as exc:
            raise IntegrityError(f"block {cid} in the local store cannot be read: {exc.strerror or exc}") from None
        finally:
            os.close(fd)

    # -- ContentStore -----------------------------------------------------------------------------

    def _sync(self) -> None:
        """One filesystem sync per put instead of one fsync per block (thousands for a large model)."""
        if not self.fsync:
            return
        self.root.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.root, os.O_RDONLY)
        try:
            if _LIBC is not None:
                if _LIBC.syncfs(fd) == 0:
                    return
                code = ctypes.get_errno()
                if code not in (0, errno.ENOSYS, errno.EINVAL):  # writeback failed: say where
                    raise StorageError(str(storage_error(OSError(code, os.strerror(code)), "block store", self.root)))
            os.sync()
        finally:
            os.close(fd)

    def put_file(self, path: str | PathLike[str], profile: str | None = None,
                 progress: Progress | None = None) -> ImportResult:
        with self.writing():
            result = import_file(path, profile or self.profile, progress, block_sink=self._write_block)
            self._sync()
        return result

    def put_tree(self, path: str | PathLike[str], profile: str | None = None, progress: Progress | None = None,
                 sink: "FileSink | None" = None) -> "TreeResult":
        """Imports a directory as ``ipfs add -r`` would, every block into the store, in one pass."""
        from registry.content.tree import import_tree

        result = import_tree(path, profile or self.profile, progress, block_sink=self._write_block, sink=sink)
        self._sync()
        return result

    def put_bytes(self, data: bytes, profile: str | None = None) -> ImportResult:
        with self.writing():
            result = import_bytes(data, profile or self.profile, block_sink=self._write_block)
            self._sync()
        return result

    def has(self, cid: CID | str | bytes) -> bool:
        """Whether the root block is here (``verify_dag`` checks the whole DAG)."""
        return self.block_path(parse_cid(cid)).exists()

    # -- pins ------------------------------------------------------------------------------------

    @property
    def _pins_path(self) -> Path:
        return self.root / "pins.json"

    @contextmanager
    def _pins_locked(self) -> Iterator[set[str]]:
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / "pins.lock", "a+b") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            pins = self._read_pins()
            before = set(pins)
            yield pins
            if pins != before:
                atomic_write(self._pins_path, json.dumps({"pins": sorted(pins)}, indent=1).encode(),
                             where="block store")

    def _read_pins(self) -> set[str]:
        try:
            raw = json.loads(self._pins_path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return set()
        except (OSError, ValueError) as exc:
            raise InputError(f"cannot read the pin set {self._pins_path}: {exc}") from exc
        pins = raw.get("pins") if isinstance(raw, dict) else None
        if not isinstance(pins, list) or not all(isinstance(p, str) for p in pins):
            raise InputError(f"malformed pin set {self._pins_path}")
        return set(pins)

    def pin(self, cid: CID | str | bytes) -> None:
        """Pins a DAG after checking that every block of it is present and intact."""
        c = parse_cid(cid)
        with self.writing():  # gc cannot delete these blocks between the check and the pin
            self.verify_dag(c)
            with self._pins_locked() as pins:
                pins.add(to_v1_text(c))

    def unpin(self, cid: CID | str | bytes) -> None:
        with self._pins_locked() as pins:
            pins.discard(to_v1_text(parse_cid(cid)))

    def pins(self) -> list[str]:
        return sorted(self._read_pins())

    def is_pinned(self, cid: CID | str | bytes) -> bool:
        return to_v1_text(parse_cid(cid)) in self._read_pins()

    # -- CAR -------------------------------------------------------------------------------------

    def import_car(self, stream: BinaryIO, pin: bool = True) -> list[CID]:
        """Stores every (verified) block of a CAR; with ``pin`` the roots are pinned once complete."""
        reader = CarReader.open(stream)
        with self.writing():
            for cid, block in reader:
                self._write_block(cid, block)
            self._sync()
        if pin:
            for root in reader.roots:
                try:
                    self.pin(root)
                except UnreachableError as exc:
                    raise IntegrityError(f"the CAR does not hold the whole DAG of {root} ({exc})") from exc
        return reader.roots

    def import_car_file(self, path: str | PathLike[str], pin: bool = True) -> list[CID]:
        from registry.fsutil import open_regular

        try:
            with open_regular(path, what="CAR file") as f:
                return self.import_car(f, pin)
        except OSError as exc:
            raise InputError(f"cannot read {path}: {exc.strerror or exc}") from exc
