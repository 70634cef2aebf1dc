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
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

from registry.errors import InputError, RegistryError, UnreachableError
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
# trees up to this total are loaded from memory; larger ones from a private copy on disk, which
# onnxruntime maps instead of copying (see verify/loading.py); protobuf's 2 GiB is the hard limit
MAX_IN_MEMORY_TREE = 256 * 1024**2


@dataclass
class Capture:
    """What to keep from the hashing pass: ``"check"`` (verify), ``"load"`` or ``"stage"`` (pull)."""

    mode: str = "check"
    stage_parent: str | None = None  # where "stage" (and large "load" trees) create their directory

    def tree_sink(self, declared_size: int) -> Any:
        from registry.content.sinks import DiskSink, MemorySink
        from registry.verify.tree import is_onnx

        if self.mode == "stage" or (self.mode == "load" and declared_size > MAX_IN_MEMORY_TREE):
            return DiskSink(self._parent(), prefix=".registry-tree-", mode=0o700,
                            file_mode=0o644 if self.mode == "stage" else 0o600, fsync=self.mode == "stage",
                            where=self.where)
        if self.mode == "load":
            return MemorySink()
        return MemorySink(is_onnx)

    @property
    def where(self) -> str:
        """What a user calls the place the copy is written to (named when the disk refuses it)."""
        return "pull target" if self.mode == "stage" else "private copy directory"

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


class _GrowingTee:
    """A ``readinto`` source that keeps every byte in one buffer growing as bytes arrive, up to ``limit``."""

    def __init__(self, source: Any, limit: int, progress: Any = None, keep: Callable[[memoryview], None] | None = None,
                 ) -> None:
        self._source = source
        self._limit = limit
        self._progress = progress
        self.buffer = bytearray()
        self._keep = keep if keep is not None else self.buffer.extend
        self.total = 0

    def readinto(self, buf: memoryview) -> int:
        room = self._limit - self.total
        if room <= 0:
            return 0
        target = buf[: min(len(buf), room)]
        n = self._source.readinto(target) or 0
        if n:
            self._keep(target[:n])
            self.total += n
            if self._progress is not None:
                self._progress(n)
        return n


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

        sink = capture.tree_sink(expected_size)
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
    from registry.content.unixfs import PROFILES, IterReader, import_bytes, import_stream

    expected_size = record.artifact_size
    limit = expected_size + 1
    profile = man.cid_profile if man is not None else settings.profile.cid_profile
    if profile not in PROFILES:
        profile = settings.profile.cid_profile
    staged = None
    staged_name = "artifact"
    verified_cid: bytes | None = None
    try:
        if capture.mode == "stage":
            from registry.content.sinks import DiskSink

            staged = DiskSink(capture._parent(), prefix=".registry-file-", mode=0o700, file_mode=0o644, fsync=True,
                              where=capture.where)
        keep_write = staged.begin(staged_name) if staged is not None else None
        if data is not None:
            source = "memory"
            tee = _GrowingTee(_BytesSource(memoryview(data)[:limit]), limit, None, keep_write)
        elif file is not None:
            source = f"file {file}"
            try:
                handle = open(file, "rb", buffering=0)
            except OSError as exc:
                raise InputError(f"cannot read {file}: {exc.strerror or exc}") from exc
            tee = _GrowingTee(handle, limit, progress, keep_write)
        else:
            from registry.content.base import BlockReadingStore
            from registry.content.stores import open_store

            source = "store (verified block by block)"
            store = store or open_store(settings)
            chunks = store.open(record.artifact_cid, max_size=expected_size)
            tee = _GrowingTee(IterReader(chunks), limit, progress, keep_write)
            if isinstance(store, BlockReadingStore):
                # our stores verify every block against the anchored CID on the way in: the CID holds by
                # construction, and only the whole-file SHA-256 remains (on a worker thread)
                verified_cid = record.artifact_cid
        try:
            result = (import_stream(tee, profile) if verified_cid is None
                      else _sha_only(chunks, tee, cid_from_bytes(verified_cid), profile))
        finally:
            if file is not None and data is None:
                handle.close()
            if staged is not None:
                staged.end(staged_name, True)
        buf: Any = tee.buffer if staged is None else None
        got = tee.total
    except RegistryError as exc:
        if staged is not None:
            staged.discard()
        failed = fail("sha256", f"cannot read the artifact: {exc}", {"expected_size": expected_size},
                      error=type(exc) if not isinstance(exc, UnreachableError) else UnreachableError)
        return failed, Check("cid", "skip", "no bytes to hash")
    except BaseException:
        if staged is not None:
            staged.discard()
        raise

    actual_sha = result.sha256
    evidence: dict[str, Any] = {"expected": record.artifact_sha256.hex(), "actual": actual_sha.hex(),
                                "expected_size": expected_size, "actual_size": got, "source": source, "kind": "file"}
    if got > expected_size:
        evidence["actual_size"] = f">{expected_size}"
        sha = fail("sha256", f"artifact is larger than the signed size {expected_size} (stopped reading at "
                             f"{limit} bytes)", evidence)
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
        view = buf if buf is not None else _map(staged, staged_name)
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
    if staged is not None:
        if artifact.ok:
            artifact.staged, artifact.staged_name = staged, staged_name
            artifact.data = _map(staged, staged_name)
        else:
            staged.discard()
    else:
        artifact.data = buf if artifact.ok else None
    return sha, cid


def _sha_only(chunks: Any, tee: "_GrowingTee", cid: Any, profile: str) -> Any:
    """The ImportResult of bytes whose CID was verified block by block: only the SHA-256 is computed,
    on a worker thread, over the verified blocks themselves (immutable, so nothing is copied for it)."""
    from registry.content.streamhash import BackgroundSha256
    from registry.content.unixfs import ImportResult

    with BackgroundSha256() as sha:
        for chunk in chunks:
            view = memoryview(chunk)
            sha.update(chunk)
            tee._keep(view)
            tee.total += len(view)
            if tee._progress is not None:
                tee._progress(len(view))
        digest = sha.digest()
    return ImportResult(cid, digest, tee.total, profile)


class _BytesSource:
    def __init__(self, view: memoryview) -> None:
        self._view = view.cast("B") if view.format != "B" else view
        self._pos = 0

    def readinto(self, buf: memoryview) -> int:
        n = min(len(buf), len(self._view) - self._pos)
        buf[:n] = self._view[self._pos:self._pos + n]
        self._pos += n
        return n


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
