"""Compression provenance: an in-toto Statement v1 about one artifact, hashed over RFC 8785 JSON.

The chain stores only ``sha256(canonical_json(doc))``; the document itself lives in the content
store. Hashing the *canonical* form means any two tools that agree on the document's meaning agree on
its digest, and writing the canonical bytes to disk means ``sha256sum doc.json`` equals the on-chain
value, so an auditor needs nothing but coreutils to check the binding.

Parsing is strict and never raises anything but ``ProvenanceError``: a device reads these documents
from an untrusted store, so malformed or hostile JSON must end in a clear rejection, not a traceback.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path
from typing import Any

import rfc8785

from registry import strictjson
from registry.errors import ProvenanceError
from registry.fsutil import atomic_write

STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PREDICATE_TYPE = "https://registry.dev/compression/v1"

# A provenance document is a few KiB; anything this large is hostile or a mistake.
MAX_DOCUMENT_BYTES = 4 * 1024 * 1024
# Nesting deeper than this is refused before parsing (see registry.strictjson).
MAX_DEPTH = strictjson.MAX_DEPTH
_HEX64 = re.compile(r"^[0-9a-f]{64}$")


def canonical_json(obj: Any) -> bytes:
    """RFC 8785 (JCS) bytes of ``obj``; ``ProvenanceError`` for values JCS cannot represent."""
    try:
        return rfc8785.dumps(obj)
    except (rfc8785.CanonicalizationError, TypeError, ValueError, RecursionError) as exc:
        raise ProvenanceError(f"provenance is not canonicalisable JSON: {exc}") from exc


def statement(artifact_sha256_hex: str, artifact_name: str, predicate: dict[str, Any]) -> dict[str, Any]:
    """An in-toto Statement v1 whose single subject is the artifact's SHA-256."""
    digest = _normalise_hex(artifact_sha256_hex)
    if not isinstance(artifact_name, str) or not artifact_name:
        raise ProvenanceError("provenance subject name must be a non-empty string")
    if not isinstance(predicate, dict):
        raise ProvenanceError("provenance predicate must be a JSON object")
    return {
        "_type": STATEMENT_TYPE,
        "subject": [{"name": artifact_name, "digest": {"sha256": digest}}],
        "predicateType": PREDICATE_TYPE,
        "predicate": predicate,
    }


def provenance_sha256(doc: dict[str, Any]) -> bytes:
    """The digest the chain records: SHA-256 over the canonical form."""
    return hashlib.sha256(canonical_json(doc)).digest()


def write_provenance(doc: dict[str, Any], path: str | os.PathLike[str]) -> Path:
    """Writes the canonical bytes atomically, so the file's sha256 equals ``provenance_sha256(doc)``."""
    validate(doc)
    data = canonical_json(doc)
    target = Path(path)
    atomic_write(target, data)
    return target


def load_provenance(source: str | os.PathLike[str] | bytes | bytearray) -> dict[str, Any]:
    """Parses and validates a provenance document from a path or raw bytes."""
    if isinstance(source, (bytes, bytearray)):
        data = bytes(source)
    else:
        from registry.fsutil import read_small_file

        data = read_small_file(source, limit=MAX_DOCUMENT_BYTES, what="provenance", error=ProvenanceError)
    doc = parse_json_strict(data, what="provenance")
    validate(doc)
    return doc


def parse_json_strict(data: bytes, *, what: str, limit: int = MAX_DOCUMENT_BYTES,
                      error: type[Exception] = ProvenanceError) -> Any:
    """JSON that a careful reader accepts (``registry.strictjson``), raising ``ProvenanceError`` by default."""
    return strictjson.parse_json_strict(data, what=what, limit=limit, error=error)  # type: ignore[arg-type]


def validate(doc: Any) -> None:
    """Checks the Statement shape the verifier relies on; ``ProvenanceError`` names the first problem."""
    if not isinstance(doc, dict):
        raise ProvenanceError("provenance must be a JSON object")
    if doc.get("_type") != STATEMENT_TYPE:
        raise ProvenanceError(f"provenance _type must be {STATEMENT_TYPE!r}")
    if not isinstance(doc.get("predicateType"), str) or not doc["predicateType"]:
        raise ProvenanceError("provenance predicateType must be a non-empty string")
    if not isinstance(doc.get("predicate"), dict):
        raise ProvenanceError("provenance predicate must be a JSON object")
    subjects = doc.get("subject")
    if not isinstance(subjects, list) or len(subjects) != 1:
        raise ProvenanceError("provenance must have exactly one subject (the artifact)")
    subject = subjects[0]
    if not isinstance(subject, dict) or not isinstance(subject.get("name"), str):
        raise ProvenanceError("provenance subject must be an object with a name")
    digest = subject.get("digest")
    if not isinstance(digest, dict) or not isinstance(digest.get("sha256"), str):
        raise ProvenanceError("provenance subject has no sha256 digest")
    if not _HEX64.match(digest["sha256"]):
        raise ProvenanceError("provenance subject sha256 must be 64 lower-case hex digits")
    metrics = doc["predicate"].get("metrics")
    if metrics is not None and not isinstance(metrics, dict):
        raise ProvenanceError("provenance predicate.metrics must be an object")


def subject_sha256(doc: dict[str, Any]) -> str:
    """The artifact digest (lower-case hex) the document is about."""
    validate(doc)
    return doc["subject"][0]["digest"]["sha256"]


def accuracy(doc: dict[str, Any]) -> float | None:
    """The final accuracy recorded in ``predicate.metrics.accuracy`` (what policy minimums compare)."""
    metrics = doc.get("predicate", {}).get("metrics") or {}
    value = metrics.get("accuracy") if isinstance(metrics, dict) else None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def render_lines(doc: dict[str, Any]) -> list[str]:
    """A plain-text summary for ``registry show``: subject, base model, steps with metrics, data, tools."""
    pred = doc.get("predicate", {}) if isinstance(doc, dict) else {}
    lines: list[str] = []
    try:
        lines.append(f"subject      {doc['subject'][0]['name']}  sha256:{subject_sha256(doc)}")
    except (ProvenanceError, KeyError, IndexError, TypeError):
        lines.append("subject      (malformed)")
    lines.append(f"predicate    {doc.get('predicateType', '?')}")
    base = pred.get("base_model")
    if isinstance(base, dict):
        ref = f"  ({base['ref']})" if base.get("ref") else ""
        lines.append(f"base model   sha256:{base.get('sha256', '?')}{ref}  format={base.get('format', '?')}")
    recipe = pred.get("recipe")
    if isinstance(recipe, dict) and recipe:
        lines.append("recipe       " + _short(recipe))
    steps = pred.get("steps")
    if isinstance(steps, list):
        for index, step in enumerate(steps, 1):
            if not isinstance(step, dict):
                continue
            lines.append(f"step {index:<7} {step.get('name', '?')}  params={_short(step.get('params', {}))}")
            before, after = step.get("metrics_before"), step.get("metrics_after")
            if before or after:
                lines.append(f"             metrics {_short(before or {})} -> {_short(after or {})}")
    for key in ("data", "tools", "seeds", "metrics"):
        value = pred.get(key)
        if isinstance(value, dict) and value:
            lines.append(f"{key:<12} {_short(value)}")
    return lines


def _short(value: Any, limit: int = 160) -> str:
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _normalise_hex(value: str) -> str:
    if not isinstance(value, str):
        raise ProvenanceError("artifact sha256 must be a hex string")
    text = value.lower().removeprefix("sha256:").removeprefix("0x")
    if not _HEX64.match(text):
        raise ProvenanceError(f"artifact sha256 must be 64 hex digits, got {value[:80]!r}")
    return text


def provenance_section(store: Any, record: Any) -> dict[str, Any]:
    """What ``registry show`` adds for a release: the document (fetched and checked against the chain) and
    its rendering. ``status`` is ``bound`` (digest matches and subject is the artifact), ``altered``,
    ``other-artifact``, ``malformed`` or ``unavailable``; never raises for a bad or missing document."""
    from registry.errors import RegistryError

    section: dict[str, Any] = {"status": "unavailable", "lines": [], "document": None}
    try:
        raw = store.get_bytes(record.provenance_cid, max_size=MAX_DOCUMENT_BYTES)
    except RegistryError as exc:
        section["lines"] = [f"not available from the store: {exc}"]
        return section
    if hashlib.sha256(raw).digest() != record.provenance_sha256:
        section.update(status="altered", lines=["document does not match the provenance sha256 on chain"])
        return section
    try:
        doc = load_provenance(raw)
    except ProvenanceError as exc:
        section.update(status="malformed", lines=[str(exc)])
        return section
    bound = subject_sha256(doc) == record.artifact_sha256.hex()
    section.update(status="bound" if bound else "other-artifact", document=doc, lines=render_lines(doc))
    return section
