"""Lineage as the index knows it: one release's ancestors and descendants across names.

Two kinds of edge join releases:

- ``parent``: the signed ``parent`` field of a release (a release id, usually of the same name, but
  a release of another name may be the parent too);
- ``base_model``: the ``base_model`` of a release's signed model card (``owner/model@version``, or
  ``owner/model`` for that name's newest release that counts), with the card's
  ``base_model_relation`` (quantized, pruned, distilled...). A base that is not a release of this
  registry (a Hub id) is drawn as an external node.

The graph holds the focus, its ancestors over both edges, every release of each name on that path
(the versions around it), and its descendants over both edges, capped at ``MAX_NODES`` nodes and
``MAX_DEPTH`` generations each way (the cap is reported, never silent). Revocations mark nodes. Card
edges are what a publisher *claims* about its model; a verifier follows only ``parent``.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass, field
from typing import Any, Iterator

from registry.index.db import _like_prefix, aliases_of
from registry.index.queries import hex0x, release_row

MAX_NODES = 200
MAX_DEPTH = 64
MAX_BASES = 8  # base_model entries read per card


@dataclass
class Lineage:
    focus: str
    nodes: dict[str, dict[str, Any]] = field(default_factory=dict)
    edges: list[dict[str, Any]] = field(default_factory=list)
    truncated: bool = False

    def to_json(self) -> dict[str, Any]:
        return {"focus": self.focus, "nodes": list(self.nodes.values()), "edges": self.edges,
                "truncated": self.truncated}


@dataclass(frozen=True)
class _Link:
    """An edge from ``source`` (a release row, or an external base's name) to a release row."""

    source: "sqlite3.Row | str"
    target: sqlite3.Row
    kind: str
    relation: str | None = None


class _Builder:
    def __init__(self, conn: sqlite3.Connection, focus: sqlite3.Row) -> None:
        self.conn = conn
        self.focus = bytes(focus["id"])
        self.graph = Lineage(focus=hex0x(self.focus) or "")
        self._edges: set[tuple[str, str, str]] = set()

    def add(self, row: sqlite3.Row) -> bool:
        """Adds a release node; False when it was there already or the cap is reached."""
        key = hex0x(row["id"]) or ""
        if key in self.graph.nodes:
            return False
        if len(self.graph.nodes) >= MAX_NODES:
            self.graph.truncated = True
            return False
        revoked = self.conn.execute("SELECT reason FROM revocations WHERE release_id = ?", (row["id"],)).fetchone()
        self.graph.nodes[key] = {"id": key, "name": row["name"], "version": row["version"],
                                 "ref": f"{row['name']}@{row['version']}", "revoked": revoked is not None,
                                 "revocation_reason": revoked["reason"] if revoked else None,
                                 "focus": bytes(row["id"]) == self.focus, "external": False}
        return True

    def has(self, row: sqlite3.Row) -> bool:
        return (hex0x(row["id"]) or "") in self.graph.nodes

    def add_external(self, base: str) -> str | None:
        key = f"ext:{base}"
        if key not in self.graph.nodes:
            if len(self.graph.nodes) >= MAX_NODES:
                self.graph.truncated = True
                return None
            self.graph.nodes[key] = {"id": key, "name": base, "version": None, "ref": base, "revoked": False,
                                     "revocation_reason": None, "focus": False, "external": True}
        return key

    def link(self, link: _Link) -> None:
        """Records the edge when both ends are in the graph (an external source is added here)."""
        target = hex0x(link.target["id"]) or ""
        source = (self.add_external(link.source) if isinstance(link.source, str)
                  else hex0x(link.source["id"]))
        if source is None or source not in self.graph.nodes or target not in self.graph.nodes or source == target:
            return  # a card naming its own release as base says nothing
        if (source, target, link.kind) in self._edges:
            return
        self._edges.add((source, target, link.kind))
        edge: dict[str, Any] = {"from": source, "to": target, "kind": link.kind}
        if link.kind == "base_model":
            edge["relation"] = link.relation
        self.graph.edges.append(edge)


def lineage(conn: sqlite3.Connection, rid: bytes) -> Lineage | None:
    """The lineage graph around release ``rid`` (see the module notes); None if the index lacks it."""
    focus = release_row(conn, rid)
    if focus is None:
        return None
    build = _Builder(conn, focus)
    build.add(focus)
    names = {bytes(focus["name_key"])}
    frontier = [focus]
    seen = {bytes(focus["id"])}
    for _ in range(MAX_DEPTH):  # ancestors, over parent and card edges
        nxt = []
        for row in frontier:
            for link in ups(conn, row):
                if isinstance(link.source, str) or bytes(link.source["id"]) in seen:
                    continue
                seen.add(bytes(link.source["id"]))
                names.add(bytes(link.source["name_key"]))
                build.add(link.source)
                if build.has(link.source):
                    nxt.append(link.source)
        if not nxt:
            break
        frontier = nxt
    for key in sorted(names):  # the versions around the path
        for row in conn.execute("SELECT * FROM releases WHERE name_key = ? ORDER BY block, log_index LIMIT ?",
                                (key, MAX_NODES)):
            build.add(row)
    frontier = [focus]
    seen = {bytes(focus["id"])}
    for _ in range(MAX_DEPTH):  # descendants, over parent and card edges, in any name
        nxt = []
        for row in frontier:
            for link in downs(conn, row):
                if bytes(link.target["id"]) in seen:
                    continue
                seen.add(bytes(link.target["id"]))
                build.add(link.target)  # it may be there already (a version of a name on the path)
                if build.has(link.target):
                    nxt.append(link.target)
        if not nxt:
            break
        frontier = nxt
    for node_id in list(build.graph.nodes):  # every edge between the nodes (and to external bases)
        if node_id.startswith("ext:"):
            continue
        row = release_row(conn, bytes.fromhex(node_id[2:]))
        if row is not None:
            for link in ups(conn, row):
                build.link(link)
    return build.graph


def ups(conn: sqlite3.Connection, row: sqlite3.Row) -> Iterator[_Link]:
    """Edges into ``row``: from its parent, and from each ``base_model`` of its signed card."""
    if row["parent"] is not None:
        parent = release_row(conn, bytes(row["parent"]))
        if parent is not None:
            yield _Link(parent, row, "parent")
    card = _card_bases(conn, row)
    if card is None:
        return
    bases, relation = card
    for base in bases:
        found = resolve_base(conn, base)
        yield _Link(found if found is not None else base, row, "base_model", relation)


def downs(conn: sqlite3.Connection, row: sqlite3.Row) -> Iterator[_Link]:
    """Edges out of ``row``: releases whose parent it is, and releases whose card names it as base
    (by ``name@version``, or by ``name`` while it is that name's newest release that counts)."""
    for child in conn.execute("SELECT * FROM releases WHERE parent = ? ORDER BY block, log_index LIMIT ?",
                              (row["id"], MAX_NODES)):
        yield _Link(row, child, "parent")
    refs = [f"{row['name']}@{row['version']}"]
    latest = conn.execute("SELECT latest_id FROM catalog WHERE name_key = ?", (row["name_key"],)).fetchone()
    if latest is not None and latest["latest_id"] is not None and bytes(latest["latest_id"]) == bytes(row["id"]):
        refs.append(row["name"])
    for ref in refs:
        # base_model is stored as a JSON list: the ref appears as a JSON string, quotes included
        pattern = "%" + _like_prefix(json.dumps(ref))
        for child in conn.execute(
                "SELECT r.*, c.base_model AS bases, c.base_model_relation AS relation FROM card_facts c "
                "JOIN releases r ON r.card_sha256 = c.card_sha256 WHERE c.status = 'ok' AND "
                "c.base_model LIKE ? ESCAPE '\\' ORDER BY r.block, r.log_index LIMIT ?", (pattern, MAX_NODES)):
            if ref in json.loads(child["bases"])[:MAX_BASES]:
                yield _Link(row, release_row(conn, bytes(child["id"])) or child, "base_model", child["relation"])


def _card_bases(conn: sqlite3.Connection, row: sqlite3.Row) -> tuple[list[str], str | None] | None:
    if row["card_sha256"] is None:
        return None
    found = conn.execute("SELECT base_model, base_model_relation FROM card_facts WHERE card_sha256 = ? "
                         "AND status = 'ok'", (row["card_sha256"],)).fetchone()
    if found is None or not found["base_model"]:
        return None
    return [str(b) for b in json.loads(found["base_model"])[:MAX_BASES]], found["base_model_relation"]


def resolve_base(conn: sqlite3.Connection, base: str) -> sqlite3.Row | None:
    """A card's ``base_model`` as a release of this registry: ``owner/model@version``,
    ``owner/model@alias`` (where the index says it points), or ``owner/model`` (that name's newest
    release that counts); None for anything else (a Hub id)."""
    from registry.errors import InputError
    from registry.release import is_valid_name, name_key, parse_ref, release_id

    try:
        if "@" in base:
            ref = parse_ref(base)
            if ref.kind == "version":
                assert ref.name is not None and ref.version is not None
                return release_row(conn, release_id(ref.name, ref.version))
            if ref.kind == "alias":
                assert ref.name is not None and ref.alias is not None
                target = aliases_of(conn, name_key(ref.name)).get(ref.alias)
                return release_row(conn, target) if target is not None else None
            name = ref.name
        else:
            name = base
        if name is None or not is_valid_name(name):
            return None
        found = conn.execute("SELECT latest_id FROM catalog WHERE name = ?", (name,)).fetchone()
        if found is None or found["latest_id"] is None:
            return None
        return release_row(conn, bytes(found["latest_id"]))
    except InputError:
        return None
