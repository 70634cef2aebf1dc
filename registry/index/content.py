"""Facts read from content: ONNX ops and opset, provenance task and base model, card fields.

The chain gives digests and CIDs; the catalog's filters (op set, task, license) need what is *in*
the bytes. Each digest is read once through the content store, which verifies every block against
its CID, and the bytes are checked against the digest on chain before anything is parsed. Facts are
keyed by digest, so a reorg never invalidates them and 10,000 releases of 20 artifacts cost 20
reads. A store that does not answer leaves the fact ``unavailable`` and it is retried later with
backoff; a document that does not parse is ``malformed`` for good.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

from registry.errors import RegistryError, UnreachableError
from registry.index import db

if TYPE_CHECKING:
    from registry.content.base import ContentStore

MAX_ARTIFACT_BYTES = 512 * 1024 * 1024   # op sets of larger artifacts are not indexed ("too_large")
RETRY_BASE_S = 30
MAX_ATTEMPTS = 8


@dataclass
class EnrichResult:
    artifacts: int = 0
    provenance: int = 0
    cards: int = 0
    unavailable: int = 0

    def to_json(self) -> dict[str, int]:
        return {"artifacts": self.artifacts, "provenance": self.provenance, "cards": self.cards,
                "unavailable": self.unavailable}


def _due(table: str, key: str) -> str:
    """Digests that have no fact yet, or whose last try found the store unavailable and is due again."""
    return (f"NOT EXISTS (SELECT 1 FROM {table} f WHERE f.{key} = r.{key} AND "
            f"(f.status != 'unavailable' OR f.attempts >= {MAX_ATTEMPTS} OR "
            f"f.checked_at + {RETRY_BASE_S} * (1 << MIN(f.attempts, 10)) > :now))")


def enrich(conn: sqlite3.Connection, store: "ContentStore", limit: int = 200,
           max_artifact_bytes: int = MAX_ARTIFACT_BYTES, now: Callable[[], float] = time.time) -> EnrichResult:
    """Reads up to ``limit`` pending documents of each kind from ``store`` and records their facts."""
    result = EnrichResult()
    stamp = {"now": int(now()), "limit": limit}
    artifacts = conn.execute(
        "SELECT artifact_sha256, artifact_cid, MAX(artifact_size) AS size FROM releases r WHERE "
        + _due("artifact_facts", "artifact_sha256") + " GROUP BY artifact_sha256 LIMIT :limit", stamp).fetchall()
    for row in artifacts:
        fact = _artifact_fact(store, bytes(row["artifact_sha256"]), bytes(row["artifact_cid"]), int(row["size"]),
                              max_artifact_bytes)
        _store(conn, "artifact_facts", "artifact_sha256", bytes(row["artifact_sha256"]), fact, stamp["now"])
        result.artifacts += 1
        result.unavailable += fact["status"] == "unavailable"
    documents = conn.execute(
        "SELECT provenance_sha256, provenance_cid FROM releases r WHERE " + _due("provenance_facts", "provenance_sha256")
        + " GROUP BY provenance_sha256 LIMIT :limit", stamp).fetchall()
    for row in documents:
        fact = _provenance_fact(store, bytes(row["provenance_sha256"]), bytes(row["provenance_cid"]))
        _store(conn, "provenance_facts", "provenance_sha256", bytes(row["provenance_sha256"]), fact, stamp["now"])
        result.provenance += 1
        result.unavailable += fact["status"] == "unavailable"
    cards = conn.execute(
        "SELECT card_sha256, card_cid FROM releases r WHERE card_sha256 IS NOT NULL AND "
        + _due("card_facts", "card_sha256") + " GROUP BY card_sha256 LIMIT :limit", stamp).fetchall()
    for row in cards:
        fact = _card_fact(store, bytes(row["card_sha256"]), bytes(row["card_cid"] or b""))
        _store(conn, "card_facts", "card_sha256", bytes(row["card_sha256"]), fact, stamp["now"])
        result.cards += 1
        result.unavailable += fact["status"] == "unavailable"
    return result


def _store(conn: sqlite3.Connection, table: str, key: str, digest: bytes, fact: dict[str, Any], now: int) -> None:
    with db.transaction(conn):
        previous = conn.execute(f"SELECT attempts FROM {table} WHERE {key} = ?", (digest,)).fetchone()
        attempts = (previous["attempts"] + 1) if previous else 1
        row = {key: digest, **fact, "attempts": attempts, "checked_at": now}
        conn.execute(f"INSERT OR REPLACE INTO {table} ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})",
                     tuple(row.values()))
        if fact["status"] == "ok":
            db.refresh_catalog(conn, db.names_using(conn, key, digest))


def read_checked(store: "ContentStore", cid: bytes, sha256: bytes, limit: int) -> bytes:
    """Bytes of ``cid`` (blocks verified by the store) whose SHA-256 is ``sha256``, at most ``limit``."""
    from registry.errors import IntegrityError

    data = store.get_bytes(cid, max_size=limit)
    if hashlib.sha256(data).digest() != sha256:
        raise IntegrityError("content does not match the digest on chain")
    return data


def _failure(exc: BaseException) -> dict[str, Any]:
    status = "unavailable" if isinstance(exc, UnreachableError) else "malformed"
    return {"status": status, "error": str(exc).splitlines()[0][:300] if str(exc) else type(exc).__name__}


def _artifact_fact(store: "ContentStore", sha: bytes, cid: bytes, size: int, limit: int) -> dict[str, Any]:
    from registry.modelfacts import model_facts

    if size > limit:
        return {"status": "too_large", "error": f"{size} bytes is over the indexing limit of {limit}"}
    try:
        facts = model_facts(read_checked(store, cid, sha, size), with_digests=False)
    except RegistryError as exc:
        return _failure(exc)
    except Exception as exc:  # a directory CID, a store bug: keep indexing the rest
        return {"status": "unsupported", "error": f"{type(exc).__name__}: {str(exc)[:200]}"}
    op_types = " " + " ".join(sorted(facts.ops)) + " "
    return {"status": "ok", "ir_version": facts.ir_version, "opset": facts.opset, "nodes": facts.nodes,
            "initializers": len(facts.tensors), "parameters": facts.parameters, "ops": json.dumps(facts.ops),
            "op_types": op_types, "error": None}


def _provenance_fact(store: "ContentStore", sha: bytes, cid: bytes) -> dict[str, Any]:
    from registry.provenance import MAX_DOCUMENT_BYTES, load_provenance

    try:
        raw = read_checked(store, cid, sha, MAX_DOCUMENT_BYTES)
        doc = load_provenance(raw)
    except RegistryError as exc:
        return _failure(exc)
    except Exception as exc:
        return {"status": "unsupported", "error": f"{type(exc).__name__}: {str(exc)[:200]}"}
    pred = doc["predicate"]
    recipe = pred.get("recipe") if isinstance(pred.get("recipe"), dict) else {}
    base = pred.get("base_model") if isinstance(pred.get("base_model"), dict) else {}
    return {"status": "ok", "task": _text(recipe.get("task")), "base_ref": _text(base.get("ref")),
            "base_sha256": _text(base.get("sha256")), "document": raw.decode("utf-8"), "error": None}


def _card_fact(store: "ContentStore", sha: bytes, cid: bytes) -> dict[str, Any]:
    from registry.card import MAX_CARD_BYTES, parse_card

    if not cid:
        return {"status": "unavailable", "error": "the release has a card digest but no card CID"}
    try:
        card = parse_card(read_checked(store, cid, sha, MAX_CARD_BYTES))
    except RegistryError as exc:
        return _failure(exc)
    except Exception as exc:
        return {"status": "unsupported", "error": f"{type(exc).__name__}: {str(exc)[:200]}"}
    return {"status": "ok", "license": card.license, "pipeline_tag": card.pipeline_tag,
            "base_model_relation": card.base_model_relation, "title": card.title, "tags": json.dumps(list(card.tags)),
            "base_model": json.dumps(list(card.base_model)), "card": json.dumps(card.to_json()), "error": None}


def _text(value: Any, limit: int = 300) -> str | None:
    return value[:limit] if isinstance(value, str) else None
