"""Read side of the index: catalog search, a model, a release, lineage. Plain dicts, JSON-ready.

Everything returned here is what the chain's events and the pinned documents *say*; pages that
show a verdict get it from ``registry.verify`` against the chain and the bytes, never from here.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from typing import Any, Iterable

from registry.index import db

MAX_PAGE = 200


def hex0x(value: bytes | None) -> str | None:
    return None if value is None else "0x" + bytes(value).hex()


def cid_text(binary: bytes | None) -> dict[str, Any] | None:
    if not binary:
        return None
    from registry.chain.views import cid_text as show

    return show(bytes(binary))


def status(conn: sqlite3.Connection) -> dict[str, Any]:
    meta = db.read_meta(conn)
    counts = conn.execute("SELECT (SELECT COUNT(*) FROM catalog) AS names, (SELECT COUNT(*) FROM releases) AS releases, "
                          "(SELECT COUNT(*) FROM revocations) AS revocations").fetchone()
    return {"cursor": meta.cursor, "chain_id": meta.chain_id, "contract": meta.contract,
            "start_block": meta.start_block, "names": counts["names"], "releases": counts["releases"],
            "revocations": counts["revocations"]}


# --------------------------------------------------------------------------------------------
# Catalog
# --------------------------------------------------------------------------------------------


@dataclass
class CatalogQuery:
    """The catalog's filters (all optional; combined with AND)."""

    q: str | None = None                 # substring of name, title, tags, task, license
    publisher: str | None = None         # an address that published (or may publish) the name
    task: str | None = None
    license: str | None = None
    ops: tuple[str, ...] = ()            # the latest release uses every one of these operators
    min_size: int | None = None          # bytes, latest release
    max_size: int | None = None
    sort: str = "name"                   # name | recent | size
    limit: int = 50
    offset: int = 0

    def to_json(self) -> dict[str, Any]:
        return {"q": self.q, "publisher": self.publisher, "task": self.task, "license": self.license,
                "ops": list(self.ops), "min_size": self.min_size, "max_size": self.max_size, "sort": self.sort,
                "limit": self.limit, "offset": self.offset}


def _like(text: str) -> str:
    return "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


_SORTS = {"name": "name", "recent": "latest_block DESC NULLS LAST, name", "size": "latest_size DESC NULLS LAST, name"}


def catalog(conn: sqlite3.Connection, query: CatalogQuery) -> dict[str, Any]:
    where: list[str] = []
    params: list[Any] = []
    if query.q:
        where.append("search LIKE ? ESCAPE '\\'")
        params.append(_like(query.q.lower()))
    if query.publisher:
        where.append("publishers LIKE ? ESCAPE '\\'")
        params.append(_like(" " + query.publisher.lower().strip() + " "))
    if query.task:
        where.append("task = ?")
        params.append(query.task)
    if query.license:
        where.append("license = ?")
        params.append(query.license)
    for op in query.ops:
        where.append("op_types LIKE ? ESCAPE '\\'")
        params.append(_like(" " + op + " "))
    if query.min_size is not None:
        where.append("latest_size >= ?")
        params.append(query.min_size)
    if query.max_size is not None:
        where.append("latest_size <= ?")
        params.append(query.max_size)
    clause = (" WHERE " + " AND ".join(where)) if where else ""
    order = _SORTS.get(query.sort, "name")
    limit = max(1, min(MAX_PAGE, query.limit))
    total = conn.execute(f"SELECT COUNT(*) FROM catalog{clause}", params).fetchone()[0]
    rows = conn.execute(f"SELECT * FROM catalog{clause} ORDER BY {order} LIMIT ? OFFSET ?",
                        (*params, limit, max(0, query.offset))).fetchall()
    return {"total": total, "query": query.to_json(), "models": [_catalog_item(r) for r in rows]}


def _catalog_item(row: sqlite3.Row) -> dict[str, Any]:
    return {
        "name": row["name"],
        "owner": row["owner"],
        "releases": row["release_count"],
        "revoked": row["revoked_count"],
        "latest": row["latest_version"],
        "latest_id": hex0x(row["latest_id"]),
        "latest_size": row["latest_size"],
        "latest_publisher": row["latest_publisher"],
        "all_revoked": row["release_count"] > 0 and row["latest_version"] is None,
        "latest_revoked_ancestor": row["latest_revoked_ancestor"],
        "license": row["license"],
        "task": row["task"],
        "ops": row["op_types"].split() if row["op_types"] else [],
        "opset": row["opset"],
        "title": row["title"],
    }


def facets(conn: sqlite3.Connection) -> dict[str, list[str]]:
    """Values the catalog's select boxes offer (tasks, licenses, operators)."""
    tasks = [r[0] for r in conn.execute("SELECT DISTINCT task FROM catalog WHERE task IS NOT NULL ORDER BY task")]
    licenses = [r[0] for r in conn.execute("SELECT DISTINCT license FROM catalog WHERE license IS NOT NULL ORDER BY 1")]
    ops: set[str] = set()
    for (text,) in conn.execute("SELECT DISTINCT op_types FROM catalog WHERE op_types IS NOT NULL"):
        ops.update(text.split())
    return {"tasks": tasks, "licenses": licenses, "ops": sorted(ops)}


# --------------------------------------------------------------------------------------------
# Releases
# --------------------------------------------------------------------------------------------

_RELEASE_SQL = (
    "SELECT r.*, b.timestamp AS published_at, v.reason AS revocation_reason, v.revoked_by, v.block AS revoked_block, "
    "vb.timestamp AS revoked_at, v.tx AS revocation_tx FROM releases r "
    "LEFT JOIN blocks b ON b.number = r.block "
    "LEFT JOIN revocations v ON v.release_id = r.id "
    "LEFT JOIN blocks vb ON vb.number = v.block "
)


def _release_item(conn: sqlite3.Connection, row: sqlite3.Row, details: bool = False) -> dict[str, Any]:
    item: dict[str, Any] = {
        "id": hex0x(row["id"]),
        "name": row["name"],
        "version": row["version"],
        "ref": f"{row['name']}@{row['version']}",
        "artifact_sha256": bytes(row["artifact_sha256"]).hex(),
        "artifact_size": row["artifact_size"],
        "provenance_sha256": bytes(row["provenance_sha256"]).hex(),
        "card_sha256": bytes(row["card_sha256"]).hex() if row["card_sha256"] else None,
        "parent": hex0x(row["parent"]),
        "publisher": row["publisher"],
        "submitter": row["submitter"],
        "block": row["block"],
        "tx": hex0x(row["tx"]),
        "published_at": row["published_at"],
        "revoked": row["revocation_reason"] is not None,
        "revocation": None if row["revocation_reason"] is None else {
            "reason": row["revocation_reason"], "by": row["revoked_by"], "block": row["revoked_block"],
            "at": row["revoked_at"], "tx": hex0x(row["revocation_tx"])},
    }
    if row["parent"] is not None:
        parent = conn.execute("SELECT name, version FROM releases WHERE id = ?", (row["parent"],)).fetchone()
        item["parent_ref"] = f"{parent['name']}@{parent['version']}" if parent else None
    else:
        item["parent_ref"] = None
    if details:
        item["artifact_cid"] = cid_text(row["artifact_cid"])
        item["provenance_cid"] = cid_text(row["provenance_cid"])
        item["card_cid"] = cid_text(row["card_cid"])
        item["children"] = [
            {"id": hex0x(c["id"]), "ref": f"{c['name']}@{c['version']}", "name": c["name"], "version": c["version"],
             "revoked": c["revoked"]}
            for c in conn.execute("SELECT r.id, r.name, r.version, v.release_id IS NOT NULL AS revoked FROM releases r "
                                  "LEFT JOIN revocations v ON v.release_id = r.id WHERE r.parent = ? "
                                  "ORDER BY r.block, r.log_index", (row["id"],))]
        item["attestations"] = attestations(conn, bytes(row["id"]))
        item["facts"] = artifact_facts(conn, bytes(row["artifact_sha256"]))
        publishers = db.publishers_of(conn, bytes(row["name_key"]))
        item["publisher_authorised"] = db.authorised(row["publisher"], publishers,
                                                     db.namespace_owner(conn, row["name"]))
    return item


def attestations(conn: sqlite3.Connection, release_id: bytes) -> list[dict[str, Any]]:
    """Each attester's newest verdict on the release."""
    latest: dict[str, dict[str, Any]] = {}
    for row in conn.execute("SELECT a.*, b.timestamp FROM attestation_events a LEFT JOIN blocks b ON b.number = a.block "
                            "WHERE a.release_id = ? ORDER BY a.block, a.log_index", (release_id,)):
        latest[row["attester"]] = {"attester": row["attester"], "passed": bool(row["passed"]),
                                   "report_sha256": bytes(row["report_sha256"]).hex(), "block": row["block"],
                                   "at": row["timestamp"]}
    return list(latest.values())


def artifact_facts(conn: sqlite3.Connection, sha: bytes) -> dict[str, Any] | None:
    row = conn.execute("SELECT * FROM artifact_facts WHERE artifact_sha256 = ?", (sha,)).fetchone()
    if row is None:
        return None
    return {"status": row["status"], "ir_version": row["ir_version"], "opset": row["opset"], "nodes": row["nodes"],
            "initializers": row["initializers"], "parameters": row["parameters"],
            "ops": json.loads(row["ops"]) if row["ops"] else {}, "error": row["error"]}


def provenance_document(conn: sqlite3.Connection, sha: bytes) -> dict[str, Any] | None:
    row = conn.execute("SELECT status, document, error FROM provenance_facts WHERE provenance_sha256 = ?",
                       (sha,)).fetchone()
    if row is None:
        return None
    return {"status": row["status"], "document": json.loads(row["document"]) if row["document"] else None,
            "error": row["error"]}


def card(conn: sqlite3.Connection, sha: bytes | None) -> dict[str, Any] | None:
    if sha is None:
        return None
    row = conn.execute("SELECT status, card, error FROM card_facts WHERE card_sha256 = ?", (sha,)).fetchone()
    if row is None:
        return {"status": "pending", "card": None, "error": None}
    return {"status": row["status"], "card": json.loads(row["card"]) if row["card"] else None, "error": row["error"]}


def release(conn: sqlite3.Connection, name: str, version: str) -> dict[str, Any] | None:
    from registry.release import release_id

    return release_by_id(conn, release_id(name, version))


def release_by_id(conn: sqlite3.Connection, rid: bytes) -> dict[str, Any] | None:
    row = conn.execute(_RELEASE_SQL + "WHERE r.id = ?", (rid,)).fetchone()
    if row is None:
        return None
    item = _release_item(conn, row, details=True)
    item["aliases"] = sorted(a for a, target in db.aliases_of(conn, bytes(row["name_key"])).items() if target == rid)
    item["revoked_ancestor"] = db.revoked_ancestor(conn, row["parent"])
    item["card"] = card(conn, bytes(row["card_sha256"]) if row["card_sha256"] else None)
    return item


def release_row(conn: sqlite3.Connection, rid: bytes) -> sqlite3.Row | None:
    return conn.execute("SELECT * FROM releases WHERE id = ?", (rid,)).fetchone()


# --------------------------------------------------------------------------------------------
# Models
# --------------------------------------------------------------------------------------------


def model(conn: sqlite3.Connection, name: str) -> dict[str, Any] | None:
    from registry.release import name_key

    key = name_key(name)
    summary = conn.execute("SELECT * FROM catalog WHERE name_key = ?", (key,)).fetchone()
    if summary is None:
        return None
    namespace = name.split("/", 1)[0]
    ns_owner, pending = db.namespace_state(conn, namespace)
    publishers = db.publishers_of(conn, key)
    releases = [_release_item(conn, r) for r in conn.execute(_RELEASE_SQL + "WHERE r.name_key = ? "
                                                               "ORDER BY r.block DESC, r.log_index DESC", (key,))]
    attested = {r["id"]: attestations(conn, bytes.fromhex(r["id"][2:])) for r in releases}
    by_id_all = {r["id"]: r for r in releases}
    flagged: dict[str, str | None] = {}
    for item in reversed(releases):  # publish order: a parent of the same name is done before its children
        parent = by_id_all.get(item["parent"]) if item["parent"] else None
        if item["parent"] is None:
            flagged[item["id"]] = None
        elif parent is not None:
            flagged[item["id"]] = parent["ref"] if parent["revoked"] else flagged.get(parent["id"])
        else:  # a parent of another name
            flagged[item["id"]] = db.revoked_ancestor(conn, bytes.fromhex(item["parent"][2:]))
    for item in releases:
        item["revoked_ancestor"] = flagged[item["id"]]
        item["attestations"] = attested[item["id"]]
        item["publisher_authorised"] = db.authorised(item["publisher"], publishers, ns_owner)
    by_id = {r["id"]: r for r in releases}
    aliases = []
    for alias, rid in db.aliases_of(conn, key).items():
        target = by_id.get(hex0x(rid), {})
        aliases.append({"alias": alias, "id": hex0x(rid), "version": target.get("version"),
                        "revoked": target.get("revoked", False),
                        # D3/D4: NAME@ALIAS is an error once its target is revoked or stops counting
                        "resolves": bool(target) and not target["revoked"] and target["publisher_authorised"]})
    card_release = next((r for r in releases if r["card_sha256"] and not r["revoked"]), None)
    return {
        "name": name,
        "namespace": namespace,
        "owner": ns_owner,
        "pending_owner": pending,
        # Who may publish (D2/D4): the namespace owner always, then every account ever added for the name.
        "publishers": ([{"address": ns_owner, "current": True, "role": "namespace owner"}] if ns_owner else [])
        + [{"address": a, "current": on, "role": "publisher"} for a, on in sorted(publishers.items())
           if a != ns_owner],
        "latest": summary["latest_version"],
        "latest_id": hex0x(summary["latest_id"]),
        "license": summary["license"],
        "task": summary["task"],
        "releases": releases,
        "revocations": [{"ref": r["ref"], "version": r["version"], **(r["revocation"] or {})}
                        for r in releases if r["revoked"]],
        "aliases": aliases,
        "card_release": card_release["ref"] if card_release else None,
        "card": card(conn, bytes.fromhex(card_release["card_sha256"])) if card_release else None,
    }


def resolve_alias(conn: sqlite3.Connection, name: str, alias: str) -> bytes | None:
    from registry.release import name_key

    return db.aliases_of(conn, name_key(name)).get(alias)


def ids(values: Iterable[str]) -> list[bytes]:
    return [bytes.fromhex(v[2:]) for v in values]
