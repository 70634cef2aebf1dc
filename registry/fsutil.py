"""Atomic file writes: a reader (or a crash) sees the old file or the new one, never half of either.

Every file the registry writes that someone relies on (manifests, provenance, keystores, profiles,
node state, downloaded models, blocks) goes through here: a temp file in the destination's
directory, fsync, rename, then fsync of the directory so the rename itself survives a power cut.
"""

from __future__ import annotations

import os
import tempfile
from os import PathLike
from pathlib import Path
from typing import Callable, Iterable

from registry.errors import InputError


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
