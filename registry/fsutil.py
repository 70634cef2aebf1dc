"""Files in and out: bounded reads of regular files only, and atomic writes.

Reads: every file a user names (``--manifest``, ``--policy``, ``--provenance``, recipes, reports,
oracle inputs) is opened with ``open_regular`` / ``read_small_file``: a FIFO, a character device
(``/dev/zero``), a socket or a directory is refused at once instead of hanging or reading until
memory runs out, and at most ``limit`` bytes are read. The checks run on the *opened* descriptor
(``fstat``), so a path swapped between check and open changes nothing, and the open itself never
blocks (``O_NONBLOCK``: opening a FIFO for reading would otherwise wait for a writer).

Writes: every file the registry writes that someone relies on (manifests, provenance, keystores,
profiles, node state, downloaded models, blocks) goes through ``atomic_write``: a temp file in the
destination's directory, fsync, rename, then fsync of the directory so the rename itself survives
a power cut.
"""

from __future__ import annotations

import os
import stat
import tempfile
from os import PathLike
from pathlib import Path
from typing import BinaryIO, Callable, Iterable

from registry.errors import InputError, RegistryError

_KINDS = ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
          (stat.S_ISSOCK, "a socket"), (stat.S_ISDIR, "a directory"))


def open_regular(path: str | PathLike[str], *, what: str, max_size: int | None = None,
                 error: type[RegistryError] = InputError) -> BinaryIO:
    """``path`` opened for binary reading, if it is a regular file (at most ``max_size`` bytes).

    Never blocks on open, never hands back a device, FIFO, socket or directory; ``error`` with one
    line naming ``what`` otherwise. The caller closes the file (use it in a ``with`` block).
    """
    target = Path(path)
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(target, flags)
    except OSError as exc:
        raise error(f"cannot read {what} {target}: {exc.strerror or exc}") from exc
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            kind = next((label for test, label in _KINDS if test(info.st_mode)), "not a regular file")
            raise error(f"{what} {target} is {kind}; a regular file is needed")
        if max_size is not None and info.st_size > max_size:
            raise error(f"{what} {target} is larger than {max_size} bytes ({info.st_size} bytes)")
        if hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def read_small_file(path: str | PathLike[str], *, limit: int, what: str,
                    error: type[RegistryError] = InputError) -> bytes:
    """The whole of a regular file of at most ``limit`` bytes (a file that grows past ``limit``
    while being read, like some of /proc, is refused too)."""
    with open_regular(path, what=what, max_size=limit, error=error) as handle:
        try:
            data = handle.read(limit + 1)
        except OSError as exc:
            raise error(f"cannot read {what} {Path(path)}: {exc.strerror or exc}") from exc
    if len(data) > limit:
        raise error(f"{what} {Path(path)} is larger than {limit} bytes")
    return data


def atomic_write(
    dest: str | PathLike[str],
    data: bytes | bytearray | memoryview | Iterable[bytes],
    *,
    mode: int = 0o644,
    fsync: bool = True,
    progress: Callable[[int], None] | None = None,
) -> int:
    """Writes ``data`` (bytes, or an iterable of chunks streamed as they come) to ``dest``.

    The temp file is created with ``mode`` before the first byte is written, so a private file
    (``0o600``) is never readable by others, even briefly. Nothing appears at ``dest`` unless every
    chunk arrived; on any error the temp file is removed and ``dest`` is untouched. With
    ``fsync=False`` the caller takes care of durability (e.g. one syncfs for many blocks).
    Returns the number of bytes written.
    """
    target = Path(dest)
    directory = target.parent if str(target.parent) else Path(".")
    if target.is_dir():
        raise InputError(f"cannot write {target}: it is a directory")
    try:
        directory.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=directory)
    except OSError as exc:
        raise InputError(f"cannot write into {directory}: {exc.strerror or exc}") from exc
    chunks = [data] if isinstance(data, (bytes, bytearray, memoryview)) else data
    written = 0
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as handle:
            for chunk in chunks:
                handle.write(chunk)
                written += len(chunk)
                if progress is not None:
                    progress(len(chunk))
            if fsync:
                handle.flush()
                os.fsync(handle.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    if fsync:
        _fsync_dir(directory)
    return written


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some filesystems refuse fsync on directories; the rename is still atomic
    finally:
        os.close(fd)
