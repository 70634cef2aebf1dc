"""Check 7: the provenance document's digest is the release's, and its subject is the artifact."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from registry.errors import ProvenanceError, RegistryError, UnreachableError
from registry.verify.artifact import ArtifactBytes
from registry.verify.report import Check, fail

if TYPE_CHECKING:
    from registry.chain.records import ReleaseRecord
    from registry.config import Settings
    from registry.content.base import ContentStore
    from registry.manifest import Manifest


def check_provenance(record: "ReleaseRecord", man: "Manifest | None", file: Any, provenance: Any,
                     settings: "Settings", store: "ContentStore | None",
                     artifact: ArtifactBytes) -> tuple[Check, dict[str, Any] | None]:
    from registry.provenance import MAX_DOCUMENT_BYTES, load_provenance, subject_sha256

    raw: bytes | None = None
    source = ""
    try:
        if isinstance(provenance, (bytes, bytearray)):
            raw, source = bytes(provenance), "memory"
        elif provenance is not None:
            raw, source = _read_bounded(Path(provenance), MAX_DOCUMENT_BYTES), f"file {provenance}"
        elif file is not None and (beside := provenance_path_beside(file, record.name, record.version)).is_file():
            raw, source = _read_bounded(beside, MAX_DOCUMENT_BYTES), f"file {beside.name}"
        else:
            from registry.content.stores import open_store

            store = store or open_store(settings)
            raw = store.get_bytes(record.provenance_cid, max_size=MAX_DOCUMENT_BYTES)
            source = "store (verified block by block)"
    except RegistryError as exc:
        return fail("provenance", f"provenance document not available: {exc}",
                     {"expected_sha256": record.provenance_sha256.hex()},
                     error=UnreachableError if isinstance(exc, UnreachableError) else ProvenanceError), None
    actual = hashlib.sha256(raw).digest()
    evidence: dict[str, Any] = {"expected_sha256": record.provenance_sha256.hex(), "actual_sha256": actual.hex(),
                                "source": source}
    if actual != record.provenance_sha256:
        return fail("provenance", "provenance document SHA-256 does not match the release", evidence), None
    try:
        doc = load_provenance(raw)
        subject = subject_sha256(doc)
    except ProvenanceError as exc:
        return fail("provenance", str(exc), evidence), None
    evidence["subject_sha256"] = subject
    evidence["release_artifact_sha256"] = record.artifact_sha256.hex()
    if subject != record.artifact_sha256.hex():
        return fail("provenance", "provenance subject is another artifact "
                                   f"(sha256:{subject[:16]}…, release has sha256:{record.artifact_sha256.hex()[:16]}…)",
                     evidence), None
    return Check("provenance", "pass", "provenance bound to the artifact digest", evidence), doc


def provenance_path_beside(artifact: str | os.PathLike[str], name: str, version: str) -> Path:
    """Where ``pull`` leaves the provenance document: ``owner+model@V.provenance.json``."""
    from registry.manifest import NAME_SEPARATOR_IN_FILENAME

    return Path(artifact).resolve().parent / f"{name.replace('/', NAME_SEPARATOR_IN_FILENAME)}@{version}.provenance.json"


def _read_bounded(path: Path, limit: int) -> bytes:
    from registry.fsutil import read_small_file

    return read_small_file(path, limit=limit, what="provenance", error=ProvenanceError)

