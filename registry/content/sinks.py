"""Where the bytes go while they are hashed: kept in memory, or written into a private directory.

Verification reads every byte exactly once. Whatever must survive the check (the model proto for
the ONNX check, the whole model for loading, the tree for ``pull``) is copied here *during* that
single pass, so the bytes that were hashed are the bytes that are later parsed, loaded or installed,
and nothing is read from the user's path again.

``MemorySink`` keeps chosen files in buffers that grow as bytes arrive (never pre-sized from a
declared length). ``DiskSink`` writes into a fresh directory it created (mode 0700, so nobody else
can swap a file in it), opening every file with ``O_CREAT|O_EXCL|O_NOFOLLOW`` relative to its
parent directory's descriptor, so a name can never be redirected through a planted link.

A ``DiskSink`` that must be durable (``fsync=True``: ``pull`` and ``ipfs get``) asks the kernel to
start writing each file back while it is still being hashed (Linux ``sync_file_range``), so the
closing ``fsync`` waits for the last few MiB instead of the whole model.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Callable

from registry.fsutil import storage_error

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_NEW_FILE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
# start writeback every this many bytes of a durable file
WRITEBACK_STEP = 32 * 1024 * 1024
_SYNC_FILE_RANGE_WRITE = 2


def _load_sync_file_range() -> Callable[[int, int, int], None] | None:
    import sys

    if not sys.platform.startswith("linux"):
        return None
    try:
        import ctypes
        import ctypes.util

        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        fn = libc.sync_file_range
        fn.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]
    except (OSError, AttributeError):
        return None

    def start_writeback(fd: int, offset: int, length: int) -> None:
        fn(fd, offset, length, _SYNC_FILE_RANGE_WRITE)  # a hint: its failure changes nothing

    return start_writeback


_start_writeback: Callable[[int, int, int], None] | None | bool = False  # False: not looked up yet


def start_writeback(fd: int, offset: int, length: int) -> None:
    """Starts (does not wait for) writeback of a file range where the platform can; else nothing."""
    global _start_writeback
    if _start_writeback is False:
        _start_writeback = _load_sync_file_range()
    if _start_writeback:
        _start_writeback(fd, offset, length)  # type: ignore[operator]


class MemorySink:
    """Keeps the files ``keep(path)`` selects, each in one growing buffer."""

    def __init__(self, keep: Callable[[str], bool] = lambda _p: True) -> None:
        self._keep = keep
        self.files: dict[str, bytearray] = {}

    def begin(self, path: str) -> Callable[[memoryview], None] | None:
        if not self._keep(path):
            return None
        buf = self.files[path] = bytearray()
        return buf.extend

    def end(self, path: str, ok: bool) -> None:
        if not ok:
            self.files.pop(path, None)

    def drop(self) -> None:
        self.files.clear()


class DiskSink:
    """Writes each file into a new private directory under ``parent`` (``commit`` or ``discard`` it)."""

    def __init__(self, parent: str | os.PathLike[str], prefix: str = ".registry-", mode: int = 0o700,
                 file_mode: int = 0o600, fsync: bool = False, where: str = "staging directory") -> None:
        """``where`` names ``parent`` for a user (e.g. "pull target") when the disk refuses a write."""
        self._where = where
        try:
            Path(parent).mkdir(parents=True, exist_ok=True)
            self.path = Path(tempfile.mkdtemp(prefix=prefix, suffix=".staging", dir=parent))
        except OSError as exc:
            raise storage_error(exc, where, parent) from exc
        os.chmod(self.path, mode)
        self._root_fd = os.open(self.path, _DIR_FLAGS)
        self._file_mode = file_mode
        self._fsync = fsync
        self._fd: int | None = None
        self.written = 0

    def _parent_fd(self, rel: str) -> tuple[int, str]:
        parts = rel.split("/")
        fd = os.dup(self._root_fd)
        try:
            for part in parts[:-1]:
                try:
                    os.mkdir(part, 0o700, dir_fd=fd)
                except FileExistsError:
                    pass
                nxt = os.open(part, _DIR_FLAGS, dir_fd=fd)
                os.close(fd)
                fd = nxt
        except BaseException:
            os.close(fd)
            raise
        return fd, parts[-1]

    def begin(self, path: str) -> Callable[[memoryview], None]:
        parent, name = self._parent_fd(path)
        try:
            self._fd = os.open(name, _NEW_FILE, self._file_mode, dir_fd=parent)
        finally:
            os.close(parent)
        fd = self._fd
        flushed = [0, 0]  # bytes of this file written, and handed to writeback

        def write(view: memoryview) -> None:
            try:
                while len(view):
                    n = os.write(fd, view)
                    view = view[n:]
                    self.written += n
                    flushed[0] += n
            except OSError as exc:  # a full disk is StorageError (exit 16) naming the place, not the input
                raise storage_error(exc, self._where, self.path.parent) from exc
            if self._fsync and flushed[0] - flushed[1] >= WRITEBACK_STEP:
                start_writeback(fd, flushed[1], flushed[0] - flushed[1])
                flushed[1] = flushed[0]

        return write

    def end(self, path: str, ok: bool) -> None:
        if self._fd is None:
            return
        try:
            if ok and self._fsync:
                os.fsync(self._fd)
        except OSError as exc:
            raise storage_error(exc, self._where, self.path.parent) from exc
        finally:
            os.close(self._fd)
            self._fd = None

    def open_file(self, path: str) -> int:
        """A read-only fd of a file written here (for parsing without reading a user path)."""
        parent, name = self._parent_fd(path)
        try:
            return os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=parent)
        finally:
            os.close(parent)

    def read(self, path: str) -> bytearray:
        fd = self.open_file(path)
        try:
            out = bytearray()
            while chunk := os.read(fd, 8 << 20):
                out += chunk
            return out
        finally:
            os.close(fd)

    def discard(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        if self._root_fd >= 0:
            os.close(self._root_fd)
            self._root_fd = -1
        shutil.rmtree(self.path, ignore_errors=True)

    def close_dir(self) -> None:
        if self._root_fd >= 0:
            os.close(self._root_fd)
            self._root_fd = -1
