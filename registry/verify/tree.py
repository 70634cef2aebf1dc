"""Checks 5, 6 and 8 for a directory release: the tree's file list digest, its CID, its ONNX models.

A directory release anchors the SHA-256 of its canonical file list (``content.filelist``) and the
CID ``ipfs add -r`` gives the tree. Verification reads every file once, from the local tree
(``--file DIR``, opened without following any link) or block by block from the store, through one
``TreeHasher``: the per-file SHA-256s, the file CIDs and the directory nodes all come out of that
pass, and the bytes read are bounded by the signed size plus one. Whatever must outlive the pass is
captured by a sink while it is hashed: the ONNX files (small: the weights live in external data) for
the format check, every file when the caller loads or installs the tree.

When the published file list is at hand (``fileListCid`` in the manifest, verified against
``artifactSha256`` before use) a mismatch is reported file by file: missing, added, changed.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

from registry.content.filelist import FileList
from registry.errors import InputError, IntegrityError, PolicyError, RegistryError, UnreachableError
from registry.verify.report import Check, fail

if TYPE_CHECKING:
    from registry.chain.records import ReleaseRecord
    from registry.config import Settings
    from registry.content.base import ContentStore
    from registry.content.tree import FileSink, TreeResult
    from registry.manifest import Manifest
    from registry.policy import Policy

ENTRY_MODEL = "model.onnx"


@dataclass
class VerifiedTree:
    """What the tree checks leave for the ONNX check and the loaders."""

    files: FileList
    sink: "FileSink"
    result: "TreeResult"
    onnx_paths: list[str] = field(default_factory=list)

    def bytes_of(self, path: str) -> bytearray:
        from registry.content.sinks import DiskSink, MemorySink

        if isinstance(self.sink, MemorySink):
            return self.sink.files[path]
        assert isinstance(self.sink, DiskSink)
        return self.sink.read(path)


def entry_model(files: FileList) -> str:
    """The model a loader starts from: ``model.onnx`` at the top, else the tree's only ``.onnx`` file."""
    paths = files.paths
    if ENTRY_MODEL in paths:
        return ENTRY_MODEL
    models = [p for p in paths if p.lower().endswith(".onnx")]
    if len(models) == 1:
        return models[0]
    if not models:
        raise PolicyError("the tree holds no .onnx model")
    raise PolicyError(f"the tree holds {len(models)} .onnx files and no top-level {ENTRY_MODEL}: "
                      f"name the entry model {ENTRY_MODEL}")


def is_onnx(path: str) -> bool:
    return path.lower().endswith(".onnx")


def hash_tree(source: Any, profile: str, budget: int, sink: "FileSink", store: "ContentStore | None",
              progress: Callable[[int], None] | None,
              file_progress: Callable[[str, int], None] | None = None) -> "TreeResult":
    """One pass over the tree (a local directory path, or a CID in ``store``) -> CID and file list."""
    from registry.content.tree import TreeHasher, import_tree

    if isinstance(source, str) and store is None:
        return import_tree(source, profile, progress, sink=sink, budget=budget, file_progress=file_progress)
    assert store is not None
    from registry.content.base import BlockReadingStore
    from registry.content.unixfs import IterReader

    if isinstance(store, BlockReadingStore):
        return _verified_dag(source, profile, budget, sink, store, progress, file_progress)
    with TreeHasher(profile, progress=progress, budget=budget, file_progress=file_progress) as hasher:
        for item in store.open_tree(source, max_size=budget):
            consume = sink.begin(item.path)
            ok = False
            try:
                hasher.add(item.path, IterReader(item.chunks()), consume)
                ok = True
            finally:
                sink.end(item.path, ok)
            if hasher.over_budget:
                raise IntegrityError(f"the tree holds more than the signed {budget - 1} bytes")
        return hasher.finish()


def _verified_dag(source: Any, profile: str, budget: int, sink: "FileSink", store: Any,
                  progress: Callable[[int], None] | None,
                  file_progress: Callable[[str, int], None] | None) -> "TreeResult":
    """A tree read from one of our stores: every block was verified against the anchored root CID on
    the way in, so the CID holds by construction and only the per-file SHA-256 remains to compute
    (on a worker thread, while this one fetches and verifies the next blocks)."""
    from registry.content.cids import parse_cid
    from registry.content.filelist import FileEntry
    from registry.content.streamhash import BackgroundSha256
    from registry.content.tree import TreeResult

    root = parse_cid(source)
    entries = []
    total = 0
    with BackgroundSha256() as hasher:
        for item in store.open_tree(root, max_size=budget):
            if file_progress is not None:
                file_progress(item.path, 0)
            consume = sink.begin(item.path)
            ok = False
            size = 0
            hasher.reset(consume)  # the worker hashes, then hands the verified bytes to the sink
            try:
                for chunk in item.chunks():
                    n = len(chunk)
                    hasher.update(chunk)
                    size += n
                    total += n
                    if total >= budget:
                        raise IntegrityError(f"the tree holds more than the signed {budget - 1} bytes")
                    if progress is not None:
                        progress(n)
                digest = hasher.digest()
                ok = True
            finally:
                if not ok:  # let the worker finish with this file before it is closed
                    try:
                        hasher.reset()
                    except Exception:  # noqa: BLE001 - the error being raised already says what went wrong
                        pass
                sink.end(item.path, ok)
            entries.append(FileEntry(item.path, size, digest))
    return TreeResult(root, FileList.build(entries), profile)


def check_tree(record: "ReleaseRecord", man: "Manifest | None", directory: Any, settings: "Settings",
               store: "ContentStore | None", sink: "FileSink", progress: Any,
               file_progress: Callable[[str, int], None] | None = None) -> tuple[Check, Check, VerifiedTree | None]:
    """The sha256 and cid checks of a tree; the VerifiedTree only when both pass."""
    expected_size = record.artifact_size
    budget = expected_size + 1
    profiles = _candidate_profiles(man, settings, record.artifact_cid)
    source_text = f"directory {directory}" if directory is not None else "store (verified block by block)"
    result = None
    for i, profile in enumerate(profiles):
        try:
            if directory is not None:
                result = hash_tree(str(directory), profile, budget, sink, None, progress, file_progress)
            else:
                from registry.content.stores import open_store

                store = store or open_store(settings)
                result = hash_tree(record.artifact_cid, profile, budget, sink, store, progress, file_progress)
        except RegistryError as exc:
            error = UnreachableError if isinstance(exc, UnreachableError) else (
                InputError if isinstance(exc, InputError) else IntegrityError)
            evidence = {"expected_size": expected_size, "source": source_text}
            detail = f"cannot read the tree: {exc}"
            if directory is not None and "more than the" in str(exc):
                detail = _explain_scan(record, man, str(directory), settings, store, evidence) or detail
            return (fail("sha256", detail, evidence, error=error), Check("cid", "skip", "no bytes to hash"), None)
        # multiformats is imported here, not before the hashing: the importer's worker loads it
        # while the bytes are hashed, instead of the main thread before the first byte is read
        from registry.content.cids import cid_bytes_v1, cid_from_bytes, display

        if cid_bytes_v1(result.cid) == record.artifact_cid or i == len(profiles) - 1:
            break
        _reset(sink)
    assert result is not None
    listing = result.files
    evidence: dict[str, Any] = {"expected": record.artifact_sha256.hex(), "actual": result.sha256.hex(),
                                "expected_size": expected_size, "actual_size": result.size, "files": len(listing.entries),
                                "source": source_text, "kind": "directory"}
    if result.ignored:
        evidence["ignored_hidden"] = list(result.ignored)
    if result.sha256 == record.artifact_sha256 and result.size == expected_size:
        sha = Check("sha256", "pass", f"sha256:{result.sha256.hex()} (file list of {len(listing.entries)} files)",
                    evidence)
    else:
        detail = _explain(record, man, listing, settings, store, evidence)
        sha = fail("sha256", detail, evidence)
    actual_cid = cid_bytes_v1(result.cid)
    cid_evidence = {"expected": _show(record.artifact_cid, cid_from_bytes, display),
                    "actual": _show(actual_cid, cid_from_bytes, display), "profile": result.profile}
    if actual_cid != record.artifact_cid:
        cid = fail("cid", f"tree CID recomputed from the files ({cid_evidence['actual']}) does not match the release "
                          f"({cid_evidence['expected']})", cid_evidence)
    else:
        note = " (fetched and verified block by block)" if directory is None else ""
        cid = Check("cid", "pass", f"{cid_evidence['actual']} (ipfs add -r, {result.profile}){note}", cid_evidence)
    if sha.status != "pass" or cid.status != "pass":
        return sha, cid, None
    return sha, cid, VerifiedTree(listing, sink, result, [p for p in listing.paths if is_onnx(p)])


def _candidate_profiles(man: "Manifest | None", settings: "Settings", cid: bytes) -> list[str]:
    from registry.content.unixfs import PROFILES

    if man is not None and man.cid_profile in PROFILES:
        return [man.cid_profile]
    first = settings.profile.cid_profile if settings.profile.cid_profile in PROFILES else "kubo-v1"
    ordered = [first] + [p for p in PROFILES if p != first]
    # a dag-pb CIDv1 cannot come from kubo-v0, whose CIDs stay v0 (they are anchored as their v1 twin)
    return ordered


def _reset(sink: "FileSink") -> None:
    from registry.content.sinks import DiskSink, MemorySink

    if isinstance(sink, MemorySink):
        sink.drop()
    elif isinstance(sink, DiskSink):
        import os
        import shutil

        for child in list(sink.path.iterdir()):
            if child.is_dir() and not child.is_symlink():
                shutil.rmtree(child)
            else:
                os.unlink(child)


def _explain(record: "ReleaseRecord", man: "Manifest | None", actual: FileList, settings: "Settings",
             store: "ContentStore | None", evidence: dict[str, Any]) -> str:
    """Which files differ, when the published file list can be fetched and trusted; else the digests."""
    published = _published_list(record, man, settings, store)
    if published is None:
        if actual.total_size != record.artifact_size:
            return f"the tree holds {actual.total_size} bytes, the signed size is {record.artifact_size}"
        return "file list SHA-256 does not match the release (a file was added, removed, renamed or changed)"
    theirs = {e.path: e for e in published.entries}
    ours = {e.path: e for e in actual.entries}
    missing = sorted(set(theirs) - set(ours))
    added = sorted(set(ours) - set(theirs))
    changed = sorted(p for p in set(ours) & set(theirs) if ours[p] != theirs[p])
    evidence.update(missing=missing[:50], added=added[:50], changed=changed[:50])
    return _describe(missing, added, changed)


def _explain_scan(record: "ReleaseRecord", man: "Manifest | None", directory: str, settings: "Settings",
                  store: "ContentStore | None", evidence: dict[str, Any]) -> str | None:
    """For a local tree too big to read: which names and sizes differ from the published list."""
    from registry.content.tree import scan_tree

    published = _published_list(record, man, settings, store)
    if published is None:
        return None
    try:
        scan = scan_tree(directory)
    except RegistryError:
        return None
    theirs = {e.path: e.size for e in published.entries}
    ours = {f.path: f.size for f in scan.files}
    missing = sorted(set(theirs) - set(ours))
    added = sorted(set(ours) - set(theirs))
    changed = sorted(p for p in set(ours) & set(theirs) if ours[p] != theirs[p])
    evidence.update(missing=missing[:50], added=added[:50], changed=changed[:50])
    return _describe(missing, added, changed)


def _describe(missing: list[str], added: list[str], changed: list[str]) -> str:
    parts = []
    for label, items in (("missing", missing), ("added", added), ("changed", changed)):
        if items:
            parts.append(f"{label}: {', '.join(items[:5])}" + (f" (+{len(items) - 5})" if len(items) > 5 else ""))
    return "the tree differs from the release's file list (" + "; ".join(parts or ["order"]) + ")"


def _published_list(record: "ReleaseRecord", man: "Manifest | None", settings: "Settings",
                    store: "ContentStore | None") -> FileList | None:
    import hashlib

    from registry.content.filelist import MAX_LIST_BYTES, parse_file_list

    cid = getattr(man, "file_list_cid", None) if man is not None else None
    if cid is None:
        return None
    try:
        from registry.content.stores import open_store

        raw = (store or open_store(settings)).get_bytes(cid, max_size=MAX_LIST_BYTES)
        if hashlib.sha256(raw).digest() != record.artifact_sha256:
            return None  # not the list this release anchors: say nothing rather than trust it
        return parse_file_list(raw)
    except RegistryError:
        return None


def _show(binary: bytes, cid_from_bytes: Any, display: Any) -> str:
    try:
        return str(display(cid_from_bytes(binary))["v1"])
    except Exception:
        return "0x" + binary.hex()


def check_tree_onnx(tree: VerifiedTree, pol: "Policy") -> Check:
    """Check 8 over every ONNX file of the tree, external data resolved inside the verified tree."""
    from registry.onnx_checks import check_onnx
    from registry.verify.external import TreeExternalData

    try:
        entry = entry_model(tree.files)
    except PolicyError as exc:
        return fail("onnx", str(exc))
    if pol.max_artifact_size is not None and tree.files.total_size > pol.max_artifact_size:
        return fail("onnx", f"artifact is {tree.files.total_size} bytes, policy max_artifact_size is "
                            f"{pol.max_artifact_size}")
    models: dict[str, Any] = {}
    refs: dict[str, list[Any]] = {}
    for path in [entry] + [p for p in tree.onnx_paths if p != entry]:
        hook = TreeExternalData(tree.files, path)
        try:
            facts = check_onnx(tree.bytes_of(path), None if pol is None else _no_size(pol), external_data=hook)
        except PolicyError as exc:
            return fail("onnx", f"{path}: {exc}")
        models[path] = facts.evidence()
        refs[path] = [r.__dict__ for r in hook.refs]
    facts = models[entry]
    external = sum(len(r) for r in refs.values())
    detail = (f"{len(models)} ONNX model(s), entry {entry}: IR {facts['ir_version']}, opset {facts['opset']}, "
              f"{facts['nodes']} nodes; {external} external tensor(s), all inside the verified tree")
    return Check("onnx", "pass", detail, {"entry": entry, "models": models, "external_data": refs})


def _no_size(pol: "Policy") -> "Policy":
    """The per-model size rule does not apply to one file of a tree (the whole tree was checked above)."""
    from dataclasses import replace

    return replace(pol, max_artifact_size=None)


def external_files(tree: VerifiedTree, model_path: str) -> dict[str, str]:
    """location (as written in the model) -> tree path, for every external tensor of ``model_path``."""
    import onnx

    from registry.verify.external import TreeExternalData

    model = onnx.ModelProto()
    model.ParseFromString(bytes(tree.bytes_of(model_path)))
    hook = TreeExternalData(tree.files, model_path)
    hook(model)
    return {ref.location: ref.path for ref in hook.refs}


def model_dir(path: str) -> str:
    return posixpath.dirname(path)
