"""Part of check 7: a release's model card is the card its publisher signed.

A release may pin a model card (Markdown with YAML front matter); its SHA-256 and CID are in the
signed Release. The card documents what the artifact is, so a changed card is a provenance failure
(exit 13) like a changed provenance document: the verifier hashes the card's bytes (given, found
beside the artifact as ``owner+model@V.card.md``, or fetched from the store block by block against
its CID) and compares. Parsing the card is the explorer's business (``registry.card``); here only
bytes and digests matter, and the bytes are read with a size cap.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from registry.errors import ProvenanceError, RegistryError, UnreachableError
from registry.release import MAX_CARD_BYTES
from registry.verify.report import Check, fail

if TYPE_CHECKING:
    from registry.chain.records import ReleaseRecord
    from registry.config import Settings
    from registry.content.base import ContentStore

CARD_SUFFIX = ".card.md"


def card_path_beside(artifact: str | os.PathLike[str], name: str, version: str) -> Path:
    """Where a card travels next to its artifact: ``owner+model@V.card.md``."""
    from registry.manifest import NAME_SEPARATOR_IN_FILENAME

    return Path(artifact).resolve().parent / f"{name.replace('/', NAME_SEPARATOR_IN_FILENAME)}@{version}{CARD_SUFFIX}"


def read_card(path: str | os.PathLike[str]) -> bytes:
    """A card file's bytes, refusing anything but a regular file of at most MAX_CARD_BYTES."""
    from registry.errors import InputError

    target = Path(path)
    try:
        if not target.is_file():
            raise InputError(f"model card {target} is not a regular file")
        with target.open("rb") as handle:
            data = handle.read(MAX_CARD_BYTES + 1)
    except OSError as exc:
        raise InputError(f"cannot read model card {target}: {exc.strerror or exc}") from exc
    if len(data) > MAX_CARD_BYTES:
        raise InputError(f"model card {target.name} is larger than {MAX_CARD_BYTES} bytes")
    return data


def check_card(passed: Check, record: "ReleaseRecord", file: Any, card: Any, settings: "Settings",
               store: "ContentStore | None") -> Check:
    """``passed`` (the provenance check that passed) extended with the card's evidence, or the failure."""
    evidence: dict[str, Any] = dict(passed.evidence)
    evidence["card_expected_sha256"] = record.card_sha256.hex()
    try:
        if isinstance(card, (bytes, bytearray)):
            raw, source = bytes(card), "memory"
        elif card is not None:
            raw, source = read_card(card), f"file {Path(card).name}"
        elif file is not None and (beside := card_path_beside(file, record.name, record.version)).is_file():
            raw, source = read_card(beside), f"file {beside.name}"
        else:
            from registry.content.stores import open_store

            store = store or open_store(settings)
            raw = store.get_bytes(record.card_cid, max_size=MAX_CARD_BYTES)
            source = "store (verified block by block)"
    except RegistryError as exc:
        return fail("provenance", f"model card not available: {exc}", evidence,
                    error=UnreachableError if isinstance(exc, UnreachableError) else ProvenanceError)
    actual = hashlib.sha256(raw).digest()
    evidence.update(card_actual_sha256=actual.hex(), card_source=source, card_size=len(raw))
    if actual != record.card_sha256:
        evidence.update(expected_sha256=record.card_sha256.hex(), actual_sha256=actual.hex())
        return fail("provenance", "model card SHA-256 does not match the signed release (the card was changed)",
                    evidence)
    return Check("provenance", "pass", passed.detail + "; model card matches its signed digest", evidence)
