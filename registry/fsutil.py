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

Temp files carry their writer's pid in their name (``.NAME.p<pid>.<random>.tmp``), so a later
``registry gc`` can tell the leftovers of a killed writer from a file a running command is still
writing. A write that fails because of the machine (disk or quota full, read-only or failing file
system, permission denied) raises ``StorageError`` (exit 16) naming the place that filled up;
a destination that cannot be a file at all stays an ``InputError``.
"""

from __future__ import annotations

import errno
import os
import re
import stat
import tempfile
from os import PathLike
from pathlib import Path
from typing import BinaryIO, Callable, Iterable

from registry.errors import InputError, RegistryError, StorageError

_KINDS = ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
          (stat.S_ISSOCK, "a socket"), (stat.S_ISDIR, "a directory"))


def open_regular(path: str | PathLike[str], *, what: str, max_size: int | None = None,
                 error: type[RegistryError] = InputError, buffered: bool = True) -> BinaryIO:
    """``path`` opened for binary reading, if it is a regular file (at most ``max_size`` bytes).
    ``buffered=False`` hands back the raw file (readers that fill their own buffers, e.g. hashing).

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
        return os.fdopen(fd, "rb", buffering=-1 if buffered else 0)
    except BaseException:
        os.close(fd)
        raise


def require_file_or_tree(path: str | PathLike[str], *, what: str) -> None:
    """Refuses, in one line, a path that exists but is neither a regular file nor a directory (a FIFO
    would block the read, a device never ends). A command option names files a user has on disk; the
    library still accepts a stream (a pipe read once, bounded by the signed size) where it is given one.
    A missing path is left to the reader, which says it cannot read it."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return
    if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
        kind = next((label for test, label in _KINDS if test(mode)), "not a regular file")
        raise InputError(f"{what} {path} is {kind}; a regular file or a directory is needed")


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


TEMP_SUFFIXES = (".tmp", ".part")
_WRITER = re.compile(r"\.p(\d+)\.[A-Za-z0-9_]+\.(?:tmp|part)$")
# errors that say the *path* is wrong (the user's to fix), not that the machine refused the write
_PATH_ERRNOS = {errno.ENOTDIR, errno.EISDIR, errno.ENAMETOOLONG, errno.ENOENT, errno.ELOOP, errno.EEXIST}


def temp_prefix(name: str) -> str:
    """The prefix of a temp file for ``name`` written by this process (see ``writer_pid``)."""
    return f".{name}.p{os.getpid()}."


def writer_pid(filename: str) -> int | None:
    """The pid recorded in a temp file's name by ``temp_prefix``; None for other names."""
    match = _WRITER.search(filename)
    return int(match.group(1)) if match else None


def storage_error(exc: OSError, where: str, path: str | PathLike[str]) -> RegistryError:
    """One line for an OSError met while writing into ``where`` (e.g. "block store") at ``path``."""
    reason = exc.strerror or str(exc)
    code = exc.errno
    if code in _PATH_ERRNOS:
        return InputError(f"cannot write into {where} {path}: {reason}")
    if code in (errno.ENOSPC, errno.EDQUOT):
        return StorageError(f"{where} {path} is full ({reason})")
    if code == errno.EROFS:
        return StorageError(f"{where} {path} is on a read-only file system")
    if code in (errno.EACCES, errno.EPERM):
        return StorageError(f"{where} {path} is not writable ({reason})")
    return StorageError(f"cannot write into {where} {path}: {reason}")


def os_error(exc: OSError) -> RegistryError:
    """One line for an OSError nobody mapped closer to its cause (the CLI's last resort)."""
    reason = exc.strerror or str(exc)
    name = exc.filename if exc.filename is not None else "(unknown file)"
    if exc.errno in _PATH_ERRNOS:
        return InputError(f"{name}: {reason}")
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return StorageError(f"the file system holding {name} is full ({reason})")
    if exc.errno == errno.EROFS:
        return StorageError(f"{name} is on a read-only file system")
    if exc.errno in (errno.EACCES, errno.EPERM):
        return StorageError(f"permission denied: {name}")
    return StorageError(f"{name}: {reason}")


def describe_location(path: str | PathLike[str]) -> str:
    """What a user calls the directory ``path`` is in: the data dir, its block store, or a directory."""
    from registry.config import data_dir  # config imports this module

    try:
        target = Path(path).resolve()
        home = data_dir().resolve()
    except (OSError, RuntimeError):
        return "directory"
    if target == home / "blocks" or home / "blocks" in target.parents:
        return "block store"
    if target == home or home in target.parents:
        return "data dir"
    return "directory"


def atomic_write(
    dest: str | PathLike[str],
    data: bytes | bytearray | memoryview | Iterable[bytes],
    *,
    mode: int = 0o644,
    fsync: bool = True,
    progress: Callable[[int], None] | None = None,
    where: str | None = None,
    tmp_dir: str | PathLike[str] | None = None,
) -> int:
    """Writes ``data`` (bytes, or an iterable of chunks streamed as they come) to ``dest``.

    The temp file is created with ``mode`` before the first byte is written, so a private file
    (``0o600``) is never readable by others, even briefly. Nothing appears at ``dest`` unless every
    chunk arrived; on any error the temp file is removed and ``dest`` is untouched. With
    ``fsync=False`` the caller takes care of durability (e.g. one syncfs for many blocks).
    ``where`` names the destination in errors (default: data dir, block store or directory);
    ``tmp_dir`` puts the temp file elsewhere on the same file system (one place to sweep).
    An error raised by the ``data`` iterable itself propagates unchanged.
    Returns the number of bytes written.
    """
    target = Path(dest)
    directory = target.parent if str(target.parent) else Path(".")
    staging = Path(tmp_dir) if tmp_dir is not None else directory
    if target.is_dir():
        raise InputError(f"cannot write {target}: it is a directory")

    def failed(exc: OSError) -> RegistryError:
        return storage_error(exc, where or describe_location(directory), directory)

    try:
        directory.mkdir(parents=True, exist_ok=True)
        staging.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=temp_prefix(target.name), suffix=".tmp", dir=staging)
    except OSError as exc:
        raise failed(exc) from exc
    chunks = [data] if isinstance(data, (bytes, bytearray, memoryview)) else data
    written = 0
    try:
        # unbuffered: nothing is left to flush (and fail again) when the file is closed after an error
        with os.fdopen(fd, "wb", buffering=0) as handle:
            try:
                os.fchmod(handle.fileno(), mode)
            except OSError as exc:
                raise failed(exc) from exc
            for chunk in chunks:
                view = memoryview(chunk).cast("B")
                try:
                    while view:
                        view = view[handle.write(view):]
                except OSError as exc:
                    raise failed(exc) from exc
                written += len(chunk)
                if progress is not None:
                    progress(len(chunk))
            try:
                if fsync:
                    os.fsync(handle.fileno())
            except OSError as exc:
                raise failed(exc) from exc
        try:
            os.replace(tmp, target)
        except OSError as exc:
            raise failed(exc) from exc
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    if fsync:
        fsync_dir(directory)
    return written


def fsync_dir(directory: str | PathLike[str]) -> None:
    """Makes a rename in ``directory`` durable (best effort: some file systems refuse)."""
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
