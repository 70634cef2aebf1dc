"""``ipfs get`` of a directory: every block verified, the tree written beside ``dest``, renamed when complete.

The files land in a private staging directory next to the destination (same file system), each
opened without following links; only when the whole tree arrived and every block verified is the
staging directory renamed to ``dest``. A failure removes it, so ``dest`` never holds half a tree.
"""

from __future__ import annotations

import os
import hashlib
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from registry.content.filelist import FileEntry, FileList
from registry.content.sinks import DiskSink
from registry.errors import InputError

if TYPE_CHECKING:
    from multiformats import CID

    from registry.content.base import ContentStore


def get_tree(store: "ContentStore", cid: "CID", dest: str | os.PathLike[str], max_size: int | None = None,
             progress: Callable[[int], None] | None = None) -> FileList:
    """Downloads the tree under ``cid`` to ``dest`` (which must not exist yet); its file list."""
    from registry.pull import check_target

    target = Path(dest)
    if os.path.lexists(target):
        raise InputError(f"{target} already exists; `ipfs get` of a directory writes a new one")
    check_target(target.parent if str(target.parent) else Path("."))
    sink = DiskSink(target.parent, prefix=f".{target.name}.", mode=0o700, file_mode=0o644, fsync=True)
    try:
        entries = []
        for item in store.open_tree(cid, max_size):
            write = sink.begin(item.path)
            digest = hashlib.sha256()
            size = 0
            ok = False
            try:
                for chunk in item.chunks():
                    view = memoryview(chunk)
                    write(view)
                    digest.update(view)
                    size += len(view)
                    if progress is not None:
                        progress(len(view))
                ok = True
            finally:
                sink.end(item.path, ok)
            entries.append(FileEntry(item.path, size, digest.digest()))
        listing = FileList.build(entries)
        for root, dirs, _files in os.walk(sink.path):
            for d in dirs:
                os.chmod(os.path.join(root, d), 0o755)
        os.chmod(sink.path, 0o755)
        sink.close_dir()
        os.rename(sink.path, target)
        return listing
    except BaseException:
        sink.discard()
        raise
