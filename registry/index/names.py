"""Namespaces and aliases as the index knows them: who owns a namespace and since when, and where an
alias pointed over time. Plain dicts, JSON-ready, like ``queries``.

Ownership and pointers are history an auditor asks about ("who moved ``production`` to 1.1.0, and
when?"); the chain's views give only the current state, the index keeps every event. As everywhere
in the index, nothing here is a verdict: the explorer asks the chain whether an alias resolves.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from registry.index import db
from registry.index.queries import MAX_PAGE, _catalog_item, hex0x


def namespace(conn: sqlite3.Connection, namespace: str, limit: int = MAX_PAGE) -> dict[str, Any] | None:
    """Owner, pending owner, ownership history and the models of ``namespace``; None if the index has
    never seen it (no claim and no name under it)."""
    owner, pending = db.namespace_state(conn, namespace)
    history = [
        {"kind": r["kind"], "account": None if r["account"] == db.ZERO_ADDRESS else r["account"],
         "previous": r["previous"], "block": r["block"], "at": r["timestamp"]}
        for r in conn.execute("SELECT e.*, b.timestamp FROM namespace_events e LEFT JOIN blocks b ON b.number = e.block "
                              "WHERE e.namespace = ? ORDER BY e.block, e.log_index", (namespace,))]
    prefix = (db._like_prefix(namespace + "/"),)
    total = conn.execute("SELECT COUNT(*) FROM catalog WHERE name LIKE ? ESCAPE '\\'", prefix).fetchone()[0]
    if not history and not total:
        return None
    rows = conn.execute("SELECT * FROM catalog WHERE name LIKE ? ESCAPE '\\' ORDER BY name LIMIT ?",
                        (*prefix, max(1, min(MAX_PAGE, limit)))).fetchall()
    return {"namespace": namespace, "claimed": owner is not None, "owner": owner, "pending_owner": pending,
            "history": history, "total": total, "models": [_catalog_item(r) for r in rows]}


def alias(conn: sqlite3.Connection, name: str, alias_name: str) -> dict[str, Any] | None:
    """Where ``name@alias_name`` points now and every move before (newest first); None if never set."""
    from registry.release import name_key

    key = name_key(name)
    rows = conn.execute(
        "SELECT a.block, a.release_id, b.timestamp, r.version, v.release_id IS NOT NULL AS revoked, r.publisher "
        "FROM alias_events a LEFT JOIN blocks b ON b.number = a.block LEFT JOIN releases r ON r.id = a.release_id "
        "LEFT JOIN revocations v ON v.release_id = a.release_id "
        "WHERE a.name_key = ? AND a.alias = ? ORDER BY a.block DESC, a.log_index DESC", (key, alias_name)).fetchall()
    if not rows:
        return None
    publishers = db.publishers_of(conn, key)
    ns_owner = db.namespace_owner(conn, name)
    history = []
    for row in rows:
        removed = row["release_id"] is None
        history.append({
            "action": "removed" if removed else "set", "block": row["block"], "at": row["timestamp"],
            "id": hex0x(row["release_id"]), "version": row["version"], "revoked": bool(row["revoked"]),
            "publisher_authorised": (not removed and row["publisher"] is not None
                                     and db.authorised(row["publisher"], publishers, ns_owner)),
        })
    current = None if history[0]["action"] == "removed" else dict(history[0])
    if current is not None:
        current["resolves"] = not current["revoked"] and current["publisher_authorised"]
    return {"name": name, "alias": alias_name, "ref": f"{name}@{alias_name}", "current": current,
            "history": history}
