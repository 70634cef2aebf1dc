"""Checks 5-6: the artifact's SHA-256 and CID, computed in one streaming pass over bounded buffers.

An artifact is a single file or a directory tree (``tree.py``). Either way the bytes are read once,
through the streaming importer (whole-file SHA-256 on this thread, CID leaves on a worker), never
more than the signed size plus one byte, and never into a buffer sized from what the release
declares: buffers grow as bytes arrive. A default cap (``DEFAULT_MAX_ARTIFACT_SIZE``, or the
policy's ``max_artifact_size``) is applied to the declared size before anything is read.

What survives the pass depends on the caller (``Capture``): ``verify`` keeps a single file (its ONNX
proto is parsed from the same bytes) or only a tree's ``.onnx`` files; ``load_verified`` keeps what
it will load; ``pull`` writes everything into a staging directory while hashing.
"""

from __future__ import annotations

import mmap
import os
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

from registry.errors import InputError, IntegrityError, RegistryError
from registry.verify.report import Check, fail

if TYPE_CHECKING:
    from registry.chain.records import ReleaseRecord
    from registry.config import Settings
    from registry.content.base import ContentStore
    from registry.content.sinks import DiskSink
    from registry.manifest import Manifest
    from registry.policy import Policy
    from registry.verify.tree import VerifiedTree

# Largest declared artifact read without a policy saying otherwise (checked before any byte is read).
DEFAULT_MAX_ARTIFACT_SIZE = 64 * 1024**3
# protobuf cannot hold more: a single-file ONNX release past this can never verify
MAX_SINGLE_FILE = 2 * 1024**3
# Linux: do not reserve swap for a lazily filled anonymous map, and back a range of it with pages in
# one call (the mmap module exports neither constant)
_MAP_NORESERVE = 0x4000 if sys.platform.startswith("linux") else 0
_POPULATE_WRITE = 23 if sys.platform.startswith("linux") else 0


@dataclass
class Capture:
    """What to keep from the hashing pass: ``"check"`` (verify), ``"load"`` or ``"stage"`` (pull).

    A tree is kept in a private directory for ``load`` and ``stage`` (onnxruntime, or the final
    rename, takes it from there), and only its small ``.onnx`` files in memory for ``check``. A single
    file likewise goes to a private directory for ``load`` and ``stage``, and to memory for ``check``
    (its ONNX structure is checked from the same bytes)."""

    mode: str = "check"
    stage_parent: str | None = None  # where private directories are created

    def tree_sink(self) -> Any:
        from registry.content.sinks import DiskSink, MemorySink
        from registry.verify.tree import is_onnx

        if self.mode in ("stage", "load"):
            return DiskSink(self._parent(), prefix=".registry-tree-", mode=0o700,
                            file_mode=0o644 if self.mode == "stage" else 0o600, fsync=self.mode == "stage",
                            where=self.where)
        return MemorySink(is_onnx)

    @property
    def where(self) -> str:
        """What a user calls the place the copy is written to (named when the disk refuses it)."""
        return "pull target" if self.mode == "stage" else "private copy directory"

    def file_on_disk(self) -> bool:
        """Whether a single file is kept in a private file (``load``, ``stage``) or in memory (``check``).

        Memory for ``check``: writing a fresh file costs as much as filling fresh memory on a quiet
        disk, and several times more on a busy one (measured here: 0.25 to 2.7 s of system time per
        GiB against a steady 0.5 s), and the model is not needed after the check."""
        return self.mode in ("stage", "load")

    def _parent(self) -> str:
        import tempfile

        return self.stage_parent or tempfile.gettempdir()


@dataclass
class ArtifactBytes:
    """The verified artifact: ``data`` (one file, in memory) or ``staged`` (one file, on disk) or
    ``tree``; set only while every byte check passed."""

    data: bytearray | memoryview | None = None
    ok: bool = False
    sha256: bytes | None = None
    tree: "VerifiedTree | None" = None
    staged: "DiskSink | None" = None
    staged_name: str | None = None

    def release(self) -> None:
        """Drops whatever the pass kept (buffers, staging directory)."""
        self.data = None
        for holder in (self.staged, self.tree.sink if self.tree is not None else None):
            discard = getattr(holder, "discard", None)
            if discard is not None:
                discard()
        self.staged = None
        self.tree = None

    @property
    def kind(self) -> str:
        return "directory" if self.tree is not None else "file"


def size_cap(pol: "Policy | None") -> int:
    if pol is not None and pol.max_artifact_size is not None:
        return pol.max_artifact_size
    return DEFAULT_MAX_ARTIFACT_SIZE


def artifact_kind(record: "ReleaseRecord", file: Any, data: Any, settings: "Settings",
                  store: "ContentStore | None") -> str:
    """Whether the release is a file or a tree, from what is in hand (a path, bytes, or the root block)."""
    if data is not None:
        return "file"
    if file is not None:
        from registry.content.tree import is_tree

        return "directory" if is_tree(file) else "file"
    from registry.content.stores import open_store

    kind = getattr(store or open_store(settings), "kind", None)
    return kind(record.artifact_cid) if kind is not None else "file"  # a store that knows only files


def check_bytes(record: "ReleaseRecord", man: "Manifest | None", file: Any, data: bytes | None,
                settings: "Settings", store: "ContentStore | None", artifact: ArtifactBytes,
                progress: Any, pol: "Policy | None" = None, capture: Capture | None = None,
                file_progress: Callable[[str, int], None] | None = None) -> tuple[Check, Check]:
    capture = capture or Capture()
    expected_size = record.artifact_size
    cap = size_cap(pol)
    if expected_size > cap:
        from registry.errors import PolicyError

        return (fail("sha256", f"the release declares {expected_size} bytes, over the {cap}-byte cap "
                               "(raise max_artifact_size in a policy to accept it); nothing was read",
                     {"expected_size": expected_size, "cap": cap}, error=PolicyError),
                Check("cid", "skip", "no bytes to hash"))
    try:
        kind = artifact_kind(record, file, data, settings, store)
    except RegistryError as exc:
        return (fail("sha256", f"cannot read the artifact: {exc}", {"expected_size": expected_size}, error=type(exc)),
                Check("cid", "skip", "no bytes to hash"))
    if kind == "directory":
        from registry.verify.tree import check_tree

        sink = capture.tree_sink()
        try:
            sha, cid, tree = check_tree(record, man, file, settings, store, sink, progress, file_progress)
        except BaseException:
            getattr(sink, "discard", lambda: None)()
            raise
        if tree is None:
            getattr(sink, "discard", lambda: None)()
        artifact.tree = tree
        artifact.ok = tree is not None
        artifact.sha256 = bytes.fromhex(sha.evidence["actual"]) if "actual" in sha.evidence else None
        return sha, cid
    if expected_size > MAX_SINGLE_FILE:
        from registry.errors import PolicyError

        return (fail("sha256", f"the release declares a single file of {expected_size} bytes; an ONNX file cannot "
                               f"exceed {MAX_SINGLE_FILE} (protobuf's limit), so nothing was read",
                     {"expected_size": expected_size}, error=PolicyError),
                Check("cid", "skip", "no bytes to hash"))
    return _check_file(record, man, file, data, settings, store, artifact, progress, capture)


def _check_file(record: "ReleaseRecord", man: "Manifest | None", file: Any, data: bytes | None,
                settings: "Settings", store: "ContentStore | None", artifact: ArtifactBytes, progress: Any,
                capture: Capture) -> tuple[Check, Check]:
    from registry.content.cids import cid_bytes_v1, cid_from_bytes, display
    from registry.content.unixfs import PROFILES, import_bytes

    expected_size = record.artifact_size
    profile = man.cid_profile if man is not None else settings.profile.cid_profile
    if profile not in PROFILES:
        profile = settings.profile.cid_profile
    keeper = _Keeper(capture, expected_size + 1)
    try:
        source, result = _hash_file(record, file, data, settings, store, keeper, progress, profile)
        keeper.close_file()
    except RegistryError as exc:
        keeper.discard()
        failed = fail("sha256", f"cannot read the artifact: {exc}", {"expected_size": expected_size}, error=type(exc))
        return failed, Check("cid", "skip", "no bytes to hash")
    except BaseException:
        keeper.discard()
        raise

    got = result.size
    actual_sha = result.sha256
    evidence: dict[str, Any] = {"expected": record.artifact_sha256.hex(), "actual": actual_sha.hex(),
                                "expected_size": expected_size, "actual_size": got, "source": source, "kind": "file"}
    if got > expected_size:
        evidence["actual_size"] = f">{expected_size}"
        sha = fail("sha256", f"artifact is larger than the signed size {expected_size} (stopped reading at "
                             f"{expected_size + 1} bytes)", evidence)
    elif got < expected_size:
        sha = fail("sha256", f"artifact is {got} bytes, the signed size is {expected_size} (truncated)", evidence)
    elif actual_sha != record.artifact_sha256:
        sha = fail("sha256", "artifact SHA-256 does not match the release", evidence)
    else:
        sha = Check("sha256", "pass", f"sha256:{actual_sha.hex()}", evidence)

    expected_cid = record.artifact_cid
    actual_cid = cid_bytes_v1(result.cid)
    cid_evidence: dict[str, Any] = {"expected": _show_cid(expected_cid, cid_from_bytes, display),
                                    "actual": _show_cid(actual_cid, cid_from_bytes, display), "profile": profile}
    if actual_cid != expected_cid and got == expected_size and man is None:
        # Without a manifest the profile is unknown: try the others before calling it a mismatch.
        view = keeper.view(got)
        for other in PROFILES:
            if other == profile:
                continue
            alt = cid_bytes_v1(import_bytes(view, other).cid)
            if alt == expected_cid:
                actual_cid, cid_evidence["profile"] = alt, other
                cid_evidence["actual"] = _show_cid(alt, cid_from_bytes, display)
                break
    if actual_cid != expected_cid:
        cid = fail("cid", f"CID recomputed from the bytes ({cid_evidence['actual']}) does not match the release "
                          f"({cid_evidence['expected']})", cid_evidence)
    else:
        note = " (fetched and verified block by block)" if source.startswith("store") else ""
        cid = Check("cid", "pass", f"{cid_evidence['actual']}{note}", cid_evidence)
    artifact.ok = sha.status == "pass" and cid.status == "pass"
    artifact.sha256 = actual_sha
    if artifact.ok:
        artifact.data = keeper.view(got)
        artifact.staged, artifact.staged_name = keeper.staged, keeper.name
    else:
        keeper.discard()
    return sha, cid


def _hash_file(record: "ReleaseRecord", file: Any, data: Any, settings: "Settings", store: "ContentStore | None",
               keeper: "_Keeper", progress: Any, profile: str) -> tuple[str, Any]:
    """One pass over the artifact's bytes (at most the signed size plus one): (source, ImportResult)."""
    from registry.content.unixfs import IterReader, batch_size, import_batches, read_batches

    limit = keeper.limit
    step = batch_size(profile)
    if data is not None:
        view = memoryview(data).cast("B")[:limit]
        if isinstance(data, bytes) and keeper.arena is not None:
            keeper.adopt(view)  # immutable bytes: hashed, checked and kept in place, never copied
            return "memory", import_batches(_slices(view, step), profile, progress)
        return "memory", import_batches(keeper.fill(_ViewReader(view), step), profile, progress, keep=keeper.keep)
    if file is not None:
        try:
            handle = open(file, "rb", buffering=0)
        except OSError as exc:
            raise InputError(f"cannot read {file}: {exc.strerror or exc}") from exc
        with handle:
            try:
                return f"file {file}", import_batches(keeper.fill(handle, step), profile, progress, keep=keeper.keep)
            except OSError as exc:
                raise InputError(f"cannot read {file}: {exc.strerror or exc}") from exc
    from registry.content.base import BlockReadingStore
    from registry.content.stores import open_store

    source = "store (verified block by block)"
    store = store or open_store(settings)
    chunks = store.open(record.artifact_cid, max_size=record.artifact_size)
    if isinstance(store, BlockReadingStore):
        # our stores verify every block against the anchored CID on the way in: the CID holds by
        # construction, and only the whole-file SHA-256 remains (on a worker thread)
        return source, _sha_only(chunks, keeper, record.artifact_cid, profile, progress)
    batches = read_batches(_Capped(IterReader(chunks), limit), step)
    return source, import_batches(batches, profile, progress, keep=keeper.append)


def _slices(view: memoryview, step: int) -> Any:
    return (view[i:i + step] for i in range(0, len(view), step))


def _sha_only(chunks: Any, keeper: "_Keeper", cid: bytes, profile: str, progress: Any) -> Any:
    """The ImportResult of bytes whose CID was verified block by block: only the SHA-256 is computed,
    on a worker thread, over the verified blocks themselves (immutable, so nothing is copied for it);
    the same worker hands them to the keeper (staging file or memory) after hashing."""
    from registry.content.cids import cid_from_bytes
    from registry.content.streamhash import BackgroundSha256
    from registry.content.unixfs import ImportResult

    total = 0
    with BackgroundSha256(keeper.append) as sha:
        for chunk in chunks:
            total += len(chunk)
            if total > keeper.limit:
                raise IntegrityError(f"the artifact holds more than the signed {keeper.limit - 1} bytes")
            sha.update(chunk)
            if progress is not None:
                progress(len(chunk))
        digest = sha.digest()
    return ImportResult(cid_from_bytes(cid), digest, total, profile)


class _ViewReader:
    """``readinto`` over bytes in memory (copied once, into where they are kept)."""

    def __init__(self, view: memoryview) -> None:
        self._view = view
        self._pos = 0

    def readinto(self, buf: memoryview) -> int:
        n = min(len(buf), len(self._view) - self._pos)
        buf[:n] = self._view[self._pos:self._pos + n]
        self._pos += n
        return n


class _Capped:
    """At most ``limit`` bytes of a ``readinto`` source."""

    def __init__(self, source: Any, limit: int) -> None:
        self._source = source
        self._room = limit

    def readinto(self, buf: memoryview) -> int:
        if self._room <= 0:
            return 0
        n = self._source.readinto(buf[:self._room]) or 0
        self._room -= n
        return n


class _Keeper:
    """Where a single file's bytes go while they are hashed, so the checks and the loader see exactly them.

    ``load``/``stage``: a private file in a fresh 0700 directory (``DiskSink``), written by the
    hashing worker after it hashed each batch; onnxruntime (``load``) or the final rename (``stage``)
    then takes that file, and the ONNX check reads it through a read-only map, touching only the
    pages the parser looks at. ``check``: memory, an anonymous mapping of the signed size plus one
    that the kernel backs page by page as bytes arrive (MAP_NORESERVE: nothing is allocated up
    front, nothing is copied to grow it); the file is read straight into it and hashed there.
    """

    name = "model.onnx"

    def __init__(self, capture: Capture, limit: int) -> None:
        from registry.content.sinks import DiskSink

        self.limit = limit
        self.arena: memoryview | None = None
        self.staged: DiskSink | None = None
        self.filled = 0
        self._write: Callable[[memoryview], None] | None = None
        self._step = 0
        self._ready: set[int] = set()  # batches of the arena already backed with pages
        self._hashed = 0  # batches the worker has hashed
        if not capture.file_on_disk():
            self.arena = _anonymous(limit)
        else:
            stage = capture.mode == "stage"
            self.staged = DiskSink(capture._parent(), prefix=".registry-file-", mode=0o700,
                                   file_mode=0o644 if stage else 0o600, fsync=stage, where=capture.where)
            self._write = self.staged.begin(self.name)

    def fill(self, reader: Any, step: int) -> Any:
        """Batches of ``reader`` for the importer: read straight into memory (``check``), or through two
        reused buffers whose bytes the worker writes out (``keep``)."""
        from registry.content.unixfs import _fill, read_batches

        if self.arena is None:
            return read_batches(_Capped(reader, self.limit), step)

        self._step = step

        def batches() -> Any:
            assert self.arena is not None
            while self.filled < self.limit:
                target = self.arena[self.filled:self.filled + step]
                self._back(self.filled // step)
                n = _fill(reader, target)
                self.filled += n
                if n:
                    yield target[:n]
                if n < len(target):
                    return
        return batches()

    @property
    def keep(self) -> Callable[[memoryview], None] | None:
        """What the worker does with a batch after hashing it: write it out, or (read into memory) back
        the arena two batches ahead with pages, so that the reading thread, which also computes the
        whole-file digest, copies into ready memory instead of taking the page faults itself."""
        return self._write if self.arena is None else self._back_ahead

    def _back_ahead(self, _view: memoryview) -> None:
        self._hashed += 1
        self._back(self._hashed + 1)

    def _back(self, batch: int) -> None:
        if self._step and batch not in self._ready and batch * self._step < self.limit:
            self._ready.add(batch)  # a region backed twice costs nothing more than once
            assert self.arena is not None
            _populate(self.arena, batch * self._step, min(self._step, self.limit - batch * self._step))

    def append(self, view: memoryview) -> None:
        """Keeps bytes that arrived elsewhere (verified blocks): copied into memory, or written out."""
        if self._write is not None:
            self._write(view)
            return
        assert self.arena is not None
        n = min(len(view), self.limit - self.filled)
        self.arena[self.filled:self.filled + n] = view[:n]
        self.filled += n

    def adopt(self, view: memoryview) -> None:
        self.arena, self.filled = view, len(view)

    def close_file(self) -> None:
        if self.staged is not None:
            self.staged.end(self.name, True)

    def view(self, size: int) -> memoryview:
        """The kept bytes (the first ``size``)."""
        if self.arena is not None:
            return self.arena[:size]
        return _map(self.staged, self.name)

    def discard(self) -> None:
        self.arena = None
        if self.staged is not None:
            self.staged.discard()
            self.staged = None


def _populate(arena: memoryview, start: int, length: int) -> None:
    """Backs ``arena[start:start + length]`` with pages in one call (Linux MADV_POPULATE_WRITE), which
    costs about a fifth less than taking the page faults one by one; a no-op where unsupported."""
    global _POPULATE_WRITE
    obj = arena.obj
    if not _POPULATE_WRITE or not isinstance(obj, mmap.mmap) or length <= 0:
        return
    aligned = start - start % mmap.PAGESIZE
    try:
        obj.madvise(_POPULATE_WRITE, aligned, min(length + start - aligned, len(obj) - aligned))
    except (OSError, ValueError):  # an older kernel (EINVAL): pages are faulted in as they are written
        _POPULATE_WRITE = 0


def _anonymous(size: int) -> memoryview:
    """Zeroed memory of ``size`` bytes that costs only the pages written (see ``_Keeper``)."""
    flags = mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS | _MAP_NORESERVE
    try:
        return memoryview(mmap.mmap(-1, max(size, 1), flags=flags))[:size]
    except (OSError, ValueError):  # a platform without lazy anonymous maps: an ordinary buffer
        return memoryview(bytearray(size))


def _map(staged: "DiskSink | None", name: str) -> memoryview:
    """A read-only map of a staged file: parsed in place, pages read only where the parser looks."""
    assert staged is not None
    fd = staged.open_file(name)
    try:
        if os.fstat(fd).st_size == 0:
            return memoryview(b"")
        return memoryview(mmap.mmap(fd, 0, access=mmap.ACCESS_READ))
    finally:
        os.close(fd)


def _show_cid(binary: bytes, cid_from_bytes: Any, display: Any) -> str:
    try:
        return str(display(cid_from_bytes(binary))["v1"])
    except Exception:  # a hostile CID still gets reported, just in hex
        return "0x" + binary.hex()
