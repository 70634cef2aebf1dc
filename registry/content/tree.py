"""Directory trees: the CID ``ipfs add -r`` gives them and their canonical file list, in one pass.

``scan_tree`` walks a local directory without ever following a link: every directory is opened
relative to its parent's descriptor with ``O_NOFOLLOW``, every entry is ``lstat``-ed, and anything
that is not a regular file or a directory (a symlink, a FIFO, a socket, a device) is refused, as
is an empty directory (it would change the CID without appearing in the file list). Entries whose
name starts with ``.`` are left out, as ``ipfs add -r`` leaves them out, and reported.

``TreeHasher`` takes the files one by one, from anywhere (the local tree, or verified blocks from
a store), each through the streaming importer (SHA-256 on this thread, CID leaves on a worker),
optionally teeing the bytes to a ``FileSink`` (an in-memory copy for loading, a staging directory
for ``pull``), and never reading more than a byte budget; ``finish`` builds the directory nodes
and the file list. ``import_tree`` is both together for a local directory, and re-checks that the
tree did not change while it was read.
"""

from __future__ import annotations

import os
import stat
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator, Protocol

from registry.content.filelist import MAX_DEPTH, MAX_FILES, FileEntry, FileList, check_component
from registry.content.unixfs import BlockSink, ImportResult, Profile, Progress, cid_object, get_profile, import_stream
from registry.errors import InputError, IntegrityError

if TYPE_CHECKING:
    from multiformats import CID

_OPEN_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
# entries (files, directories, ignored) a scan looks at before giving up on a hostile tree
MAX_ENTRIES = 4 * MAX_FILES


@dataclass(frozen=True)
class LocalFile:
    """A regular file found by the scan, with the identity it had then."""

    path: str
    size: int
    dev: int
    ino: int
    mtime_ns: int


@dataclass(frozen=True)
class TreeScan:
    root: Path
    files: tuple[LocalFile, ...]
    ignored: tuple[str, ...] = ()

    @property
    def total_size(self) -> int:
        return sum(f.size for f in self.files)


def _kind(mode: int) -> str:
    if stat.S_ISLNK(mode):
        return "a symbolic link"
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device file"
    return "not a regular file"


def is_tree(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` names a directory (the artifact is then a tree, not a single file)."""
    try:
        return stat.S_ISDIR(os.stat(path).st_mode)
    except OSError:
        return False


def open_root(root: str | os.PathLike[str]) -> int:
    try:
        return os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except NotADirectoryError:
        raise InputError(f"{root} is not a directory") from None
    except OSError as exc:
        raise InputError(f"cannot open {root}: {exc.strerror or exc}") from exc


def scan_tree(root: str | os.PathLike[str]) -> TreeScan:
    """Every regular file under ``root`` (see the module docstring for what is refused)."""
    fd = open_root(root)
    files: list[LocalFile] = []
    ignored: list[str] = []
    seen = [0]
    try:
        _scan(fd, "", 0, files, ignored, seen, str(root))
    finally:
        os.close(fd)
    if not files:
        raise InputError(f"{root} holds no file to publish")
    return TreeScan(Path(root), tuple(sorted(files, key=lambda f: f.path.encode())), tuple(sorted(ignored)))


def _scan(fd: int, prefix: str, depth: int, files: list[LocalFile], ignored: list[str], seen: list[int],
          shown_root: str) -> None:
    if depth >= MAX_DEPTH:
        raise InputError(f"{shown_root}/{prefix} is nested deeper than {MAX_DEPTH} levels")
    try:
        names = sorted(os.listdir(fd))
    except OSError as exc:
        raise InputError(f"cannot list {shown_root}/{prefix}: {exc.strerror or exc}") from exc
    kept = 0
    for name in names:
        seen[0] += 1
        if seen[0] > MAX_ENTRIES:
            raise InputError(f"{shown_root} has more than {MAX_ENTRIES} entries")
        rel = f"{prefix}{name}"
        if name.startswith("."):
            ignored.append(rel)
            continue
        check_component(name, prefix.rstrip("/"))
        try:
            st = os.stat(name, dir_fd=fd, follow_symlinks=False)
        except OSError as exc:
            raise InputError(f"cannot stat {shown_root}/{rel}: {exc.strerror or exc}") from exc
        if stat.S_ISDIR(st.st_mode):
            try:
                child = os.open(name, _DIR_FLAGS, dir_fd=fd)
            except OSError as exc:
                raise InputError(f"cannot open {shown_root}/{rel}: {exc.strerror or exc}") from exc
            try:
                before = len(files)
                _scan(child, rel + "/", depth + 1, files, ignored, seen, shown_root)
                if len(files) == before:
                    raise InputError(f"{shown_root}/{rel} holds no file: an empty directory changes the CID "
                                     "without being in the file list, remove it")
            finally:
                os.close(child)
        elif stat.S_ISREG(st.st_mode):
            if len(files) >= MAX_FILES:
                raise InputError(f"{shown_root} holds more than {MAX_FILES} files")
            files.append(LocalFile(rel, st.st_size, st.st_dev, st.st_ino, st.st_mtime_ns))
        else:
            raise InputError(f"{shown_root}/{rel} is {_kind(st.st_mode)}; a directory artifact holds regular files only")
        kept += 1


def open_in_tree(root_fd: int, rel: str) -> int:
    """Opens ``rel`` under the tree without following any link on the way; the fd of a regular file."""
    parts = rel.split("/")
    fd = os.dup(root_fd)
    try:
        for part in parts[:-1]:
            nxt = os.open(part, _DIR_FLAGS, dir_fd=fd)
            os.close(fd)
            fd = nxt
        return os.open(parts[-1], _OPEN_FLAGS, dir_fd=fd)
    finally:
        os.close(fd)


class FileSink(Protocol):
    """Receives one file's bytes as they are hashed (a copy kept for loading or installing)."""

    def begin(self, path: str) -> Callable[[memoryview], None]: ...

    def end(self, path: str, ok: bool) -> None: ...


class _Tee:
    """``readinto`` that copies to a consumer and stops at a byte budget (shared across files)."""

    def __init__(self, source: Any, consume: Callable[[memoryview], None] | None, budget: list[int]) -> None:
        self._source = source
        self._consume = consume
        self._budget = budget
        self.total = 0
        self.over = False

    def readinto(self, buf: memoryview) -> int:
        room = self._budget[0]
        if room <= 0:
            if self._source.readinto(buf[:1]):
                self.over = True
            return 0
        target = buf[: min(len(buf), room)]
        n = self._source.readinto(target) or 0
        self._budget[0] -= n
        self.total += n
        if n and self._consume is not None:
            self._consume(target[:n])
        return n


@dataclass(frozen=True)
class TreeResult:
    """A tree's root CID and canonical file list (whose SHA-256 is the artifact's digest)."""

    cid: "CID"
    files: FileList
    profile: str
    dag_size: int = 0
    ignored: tuple[str, ...] = field(default_factory=tuple)

    @property
    def sha256(self) -> bytes:
        return self.files.sha256

    @property
    def size(self) -> int:
        return self.files.total_size

    @property
    def kind(self) -> str:
        return "directory"

    def to_json(self) -> dict[str, Any]:
        from registry.content.cids import display

        shown = display(self.cid)
        return {"kind": "directory", "cid": str(self.cid), "cid_v1": shown["v1"], "cid_v0": shown["v0"],
                "sha256": self.sha256.hex(), "size": self.size, "profile": self.profile,
                "files": [e.to_json() for e in self.files.entries], "ignored": list(self.ignored)}


class TreeHasher:
    """Hashes a tree file by file; ``finish()`` gives the CID and the file list."""

    def __init__(self, profile: str | Profile, block_sink: BlockSink | None = None,
                 progress: Progress | None = None, budget: int | None = None,
                 file_progress: Callable[[str, int], None] | None = None) -> None:
        self.profile = get_profile(profile)
        self._sink = block_sink
        self._progress = progress
        self._file_progress = file_progress
        self._budget = [budget if budget is not None else 1 << 62]
        self._entries: list[FileEntry] = []
        self._links: list[tuple[str, bytes, int]] = []
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="unixfs-leaves")
        self.over_budget = False

    def close(self) -> None:
        self._pool.shutdown(wait=True)

    def __enter__(self) -> "TreeHasher":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def bytes_read(self) -> int:
        return sum(e.size for e in self._entries)

    def add(self, path: str, source: Any, consume: Callable[[memoryview], None] | None = None,
            size_hint: int = 0) -> ImportResult:
        """One file from a ``readinto`` source; the bytes pass through ``consume`` as they are hashed."""
        if self._file_progress is not None:
            self._file_progress(path, size_hint)
        tee = _Tee(source, consume, self._budget)
        result = import_stream(tee, self.profile, self._progress, self._sink, self._pool)
        if tee.over:
            self.over_budget = True
        self._entries.append(FileEntry(path, result.size, result.sha256))
        self._links.append((path, bytes(result.cid), result.dag_size))
        return result

    def finish(self, ignored: tuple[str, ...] = ()) -> TreeResult:
        from registry.content.dirs import build_tree

        files = FileList.build(self._entries)
        sink = self._sink
        raw_sink = (lambda c, b: sink(cid_object(c), b)) if sink is not None else None
        root = build_tree(self._links, self.profile, raw_sink)
        return TreeResult(cid_object(root.cid), files, self.profile.name, root.tsize, ignored)


class _FdReader:
    def __init__(self, fd: int) -> None:
        self._fd = fd

    def readinto(self, buf: memoryview) -> int:
        return os.readv(self._fd, [buf])


def import_tree(root: str | os.PathLike[str], profile: str | Profile, progress: Progress | None = None,
                block_sink: BlockSink | None = None, sink: FileSink | None = None, budget: int | None = None,
                file_progress: Callable[[str, int], None] | None = None) -> TreeResult:
    """The tree's CID (as ``ipfs add -r``) and file list, reading each file once."""
    scan = scan_tree(root)
    root_fd = open_root(root)
    try:
        with TreeHasher(profile, block_sink, progress, budget, file_progress) as hasher:
            for item in scan.files:
                _import_one(hasher, root_fd, item, root, sink)
                if hasher.over_budget:
                    break
            result = hasher.finish(scan.ignored) if not hasher.over_budget else None
    finally:
        os.close(root_fd)
    if result is None:
        raise IntegrityError(f"{root} holds more than the expected {budget} bytes")
    again = scan_tree(root)
    if [(f.path, f.size, f.ino, f.mtime_ns) for f in again.files] != [(f.path, f.size, f.ino, f.mtime_ns)
                                                                     for f in scan.files]:
        raise InputError(f"{root} changed while it was being hashed (files added, removed or rewritten); try again")
    return result


def _import_one(hasher: TreeHasher, root_fd: int, item: LocalFile, root: Any, sink: FileSink | None) -> None:
    shown = f"{root}/{item.path}"
    try:
        fd = open_in_tree(root_fd, item.path)
    except OSError as exc:
        raise InputError(f"cannot open {shown}: {exc.strerror or exc} (symlinks and special files are refused)") from exc
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or (st.st_dev, st.st_ino) != (item.dev, item.ino):
            raise InputError(f"{shown} was replaced while the tree was being hashed")
        consume = sink.begin(item.path) if sink is not None else None
        ok = False
        try:
            result = hasher.add(item.path, _FdReader(fd), consume, item.size)
            after = os.fstat(fd)
            if result.size != item.size and not hasher.over_budget or after.st_mtime_ns != item.mtime_ns \
                    or after.st_size != item.size:
                raise InputError(f"{shown} changed while it was being hashed; try again")
            ok = True
        finally:
            if sink is not None:
                sink.end(item.path, ok)
    except OSError as exc:
        raise InputError(f"cannot read {shown}: {exc.strerror or exc}") from exc
    finally:
        os.close(fd)


def iter_files(scan: TreeScan) -> Iterator[str]:
    for item in scan.files:
        yield item.path
