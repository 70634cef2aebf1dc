"""The index database: opening it, applying decoded events, undoing blocks, refreshing the catalog.

One writer (``registry index`` or the explorer's follower thread) and any number of readers: the
file is in WAL mode, so readers never wait for a sync and always see a consistent batch (each batch
of blocks is one transaction that also moves the cursor). Names are owned through their namespace
(D2): the namespace's events say who owns every name under it, and a namespace changing hands
refreshes the catalog rows of its names (their "latest" may change under D4).
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

from registry.errors import InputError
from registry.index.events import Event
from registry.index.schema import EVENT_TABLES, RETIRED_TABLES, SCHEMA, SCHEMA_VERSION

ZERO32 = b"\x00" * 32
ZERO_ADDRESS = "0x0000000000000000000000000000000000000000"
MAX_ANCESTORS = 64  # as registry.verify's MAX_PARENT_DEPTH


def index_path(settings: Any) -> Path:
    """``<data dir>/index/<profile>.sqlite``: one file per profile (it is a cache of that chain)."""
    return Path(settings.home) / "index" / f"{settings.profile.name}.sqlite"


def connect(path: str | Path, readonly: bool = False) -> sqlite3.Connection:
    """A connection in autocommit mode (transactions are explicit), WAL, with row access by name."""
    target = Path(path)
    if readonly:
        if not target.is_file():
            raise InputError(f"no index at {target}: run `registry index` first")
        conn = sqlite3.connect(f"file:{target}?mode=ro", uri=True, timeout=30, isolation_level=None,
                               check_same_thread=False)
    else:
        target.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(target, timeout=30, isolation_level=None, check_same_thread=False)
    conn.row_factory = sqlite3.Row
    try:
        conn.execute("PRAGMA busy_timeout = 30000")
        if not readonly:
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = NORMAL")
            _migrate(conn)
    except sqlite3.DatabaseError as exc:
        conn.close()
        raise InputError(f"{target} is not a registry index ({exc}); delete it or run `registry index --reset`") from exc
    return conn


def _migrate(conn: sqlite3.Connection) -> None:
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if version > SCHEMA_VERSION:
        raise InputError(f"index schema {version} is newer than this registry ({SCHEMA_VERSION}); upgrade it")
    if version < SCHEMA_VERSION:
        if 1 <= version < 3:
            # Schema 2 followed the planned name-ownership events; contracts v2 own names through
            # namespaces. Event rows are a cache of the chain: forget them (and the cursor) and let
            # the next sync read them again. Content facts are keyed by digest and stay.
            for table in (*RETIRED_TABLES, *EVENT_TABLES, "blocks", "catalog", "meta"):
                conn.execute(f"DROP TABLE IF EXISTS {table}")
        elif version >= 3:  # pragma: no cover - the next schema's upgrade path
            conn.execute("DROP TABLE IF EXISTS catalog")
        conn.executescript(SCHEMA)
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")


@dataclass
class Meta:
    chain_id: int | None
    contract: str | None
    cursor: int | None           # last block fully indexed
    start_block: int | None      # the contract's deployment block (where scans begin)


def read_meta(conn: sqlite3.Connection) -> Meta:
    rows = {r["key"]: r["value"] for r in conn.execute("SELECT key, value FROM meta")}

    def num(key: str) -> int | None:
        return int(rows[key]) if key in rows else None

    return Meta(chain_id=num("chain_id"), contract=rows.get("contract"), cursor=num("cursor"),
                start_block=num("start_block"))


def set_meta(conn: sqlite3.Connection, **values: Any) -> None:
    for key, value in values.items():
        if value is None:
            conn.execute("DELETE FROM meta WHERE key = ?", (key,))
        else:
            conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, str(value)))


def reset(conn: sqlite3.Connection) -> None:
    """Forgets everything (a different chain or contract, or ``--reset``); content facts are kept,
    since they are keyed by digest and stay true on any chain."""
    with transaction(conn):
        for table in EVENT_TABLES + ("blocks", "catalog", "meta"):
            conn.execute(f"DELETE FROM {table}")


class transaction:
    """``with transaction(conn):`` BEGIN IMMEDIATE ... COMMIT, ROLLBACK on any exception."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def __enter__(self) -> sqlite3.Connection:
        self.conn.execute("BEGIN IMMEDIATE")
        return self.conn

    def __exit__(self, kind: Any, exc: Any, tb: Any) -> None:
        self.conn.execute("ROLLBACK" if kind is not None else "COMMIT")


# --------------------------------------------------------------------------------------------
# Applying events (inside the caller's transaction)
# --------------------------------------------------------------------------------------------


def apply_events(conn: sqlite3.Connection, events: Iterable[Event]) -> set[bytes]:
    """Writes each event's rows; returns the name keys whose catalog row must be refreshed."""
    touched: set[bytes] = set()
    for event in events:
        handler = HANDLERS.get(event.name)
        if handler is not None:
            key = handler(conn, event)
            if isinstance(key, bytes):
                touched.add(key)
            elif key:
                touched.update(key)
    return touched


def _where(event: Event) -> tuple[int, int]:
    return event.block, event.log_index


def _publisher(added: bool) -> Callable[[sqlite3.Connection, Event], bytes]:
    def handle(conn: sqlite3.Connection, e: Event) -> bytes:
        a = e.args
        conn.execute("INSERT OR REPLACE INTO publisher_events VALUES (?, ?, ?, ?, ?, ?)",
                     (*_where(e), bytes(a["nameKey"]), a["name"], a["publisher"], int(added)))
        return bytes(a["nameKey"])

    return handle


def _release_published(conn: sqlite3.Connection, e: Event) -> bytes:
    a = e.args
    card_sha, card_cid = _card_fields(a)
    parent = bytes(a["parent"])
    conn.execute(
        "INSERT OR REPLACE INTO releases VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (bytes(a["releaseId"]), bytes(a["nameKey"]), a["name"], a["version"], bytes(a["artifactSha256"]),
         bytes(a["artifactCid"]), int(a["artifactSize"]), bytes(a["provenanceSha256"]), bytes(a["provenanceCid"]),
         card_sha, card_cid, None if parent == ZERO32 else parent, a["publisher"], a.get("submitter"),
         e.block, e.log_index, e.tx_hash),
    )
    return bytes(a["nameKey"])


def _release_revoked(conn: sqlite3.Connection, e: Event) -> set[bytes]:
    a = e.args
    conn.execute("INSERT OR REPLACE INTO revocations VALUES (?, ?, ?, ?, ?, ?, ?)",
                 (bytes(a["releaseId"]), bytes(a["nameKey"]), a["by"], a["reason"], e.block, e.log_index, e.tx_hash))
    return {bytes(a["nameKey"])} | descendant_names(conn, bytes(a["releaseId"]))


def descendant_names(conn: sqlite3.Connection, release_id: bytes) -> set[bytes]:
    """Names with a release descending from ``release_id`` (their "ancestor revoked" flag may change)."""
    return {bytes(r[0]) for r in conn.execute(
        "WITH RECURSIVE d(id, depth) AS (SELECT ?, 0 UNION SELECT r.id, d.depth + 1 FROM releases r "
        f"JOIN d ON r.parent = d.id WHERE d.depth < {MAX_ANCESTORS}) "
        "SELECT DISTINCT r.name_key FROM releases r JOIN d ON r.id = d.id", (release_id,))}


def revoked_ancestor(conn: sqlite3.Connection, parent: bytes | None) -> str | None:
    """``NAME@VERSION`` of the nearest revoked ancestor (the verifier refuses such a release), or None.
    Follows at most ``MAX_ANCESTORS`` parents, the verifier's own bound."""
    current = parent
    for _ in range(MAX_ANCESTORS):
        if current is None:
            return None
        row = conn.execute("SELECT r.name, r.version, r.parent, v.release_id IS NOT NULL AS revoked FROM releases r "
                           "LEFT JOIN revocations v ON v.release_id = r.id WHERE r.id = ?", (current,)).fetchone()
        if row is None:
            return None
        if row["revoked"]:
            return f"{row['name']}@{row['version']}"
        current = row["parent"]
    return None


def _release_attested(conn: sqlite3.Connection, e: Event) -> bytes | None:
    a = e.args
    conn.execute("INSERT OR REPLACE INTO attestation_events VALUES (?, ?, ?, ?, ?, ?)",
                 (*_where(e), bytes(a["releaseId"]), a["attester"], int(bool(a["passed"])), bytes(a["reportSha256"])))
    row = conn.execute("SELECT name_key FROM releases WHERE id = ?", (bytes(a["releaseId"]),)).fetchone()
    return bytes(row["name_key"]) if row else None


# -- D1: the card digest and CID travel in ReleasePublished --------------------------------------


def _card_fields(args: Any) -> tuple[bytes | None, bytes | None]:
    """(card sha256, card CID) from ReleasePublished; (None, None) without a card (a zero digest and
    an empty CID: a publish without a card writes no card word, and the index stores none either)."""
    sha = bytes(args.get("cardSha256") or b"")
    cid = bytes(args.get("cardCid") or b"")
    if not sha or sha == ZERO32:
        return None, None
    return sha, cid or None


# -- D3: aliases ---------------------------------------------------------------------------------


def _alias_set(conn: sqlite3.Connection, e: Event) -> bytes:
    a = e.args
    conn.execute("INSERT OR REPLACE INTO alias_events VALUES (?, ?, ?, ?, ?, ?)",
                 (*_where(e), bytes(a["nameKey"]), a["name"], a["aliasName"], bytes(a["releaseId"])))
    return bytes(a["nameKey"])


def _alias_removed(conn: sqlite3.Connection, e: Event) -> bytes:
    a = e.args
    conn.execute("INSERT OR REPLACE INTO alias_events VALUES (?, ?, ?, ?, ?, NULL)",
                 (*_where(e), bytes(a["nameKey"]), a["name"], a["aliasName"]))
    return bytes(a["nameKey"])


# -- D2: namespaces (the namespace owner owns every name under it) -------------------------------


def _namespace(kind: str) -> Callable[[sqlite3.Connection, Event], set[bytes]]:
    """A namespace's owner changed: every name under it may get a different owner and "latest" (D4)."""

    def handle(conn: sqlite3.Connection, e: Event) -> set[bytes]:
        a = e.args
        account = a["owner"] if kind == "claimed" else a["to"]
        previous = None if kind == "claimed" else a["from"]
        conn.execute("INSERT OR REPLACE INTO namespace_events VALUES (?, ?, ?, ?, ?, ?, ?)",
                     (*_where(e), bytes(a["namespaceKey"]), a["namespace"], kind, account, previous))
        return names_in_namespace(conn, a["namespace"])

    return handle


def names_in_namespace(conn: sqlite3.Connection, namespace: str) -> set[bytes]:
    """Keys of the names under ``namespace`` that the index knows (from releases or publishers)."""
    prefix = _like_prefix(namespace + "/")
    return {bytes(r[0]) for r in conn.execute(
        "SELECT name_key FROM releases WHERE name LIKE ? ESCAPE '\\' UNION "
        "SELECT name_key FROM publisher_events WHERE name LIKE ? ESCAPE '\\'", (prefix, prefix))}


Handler = Callable[[sqlite3.Connection, Event], "bytes | set[bytes] | None"]
HANDLERS: dict[str, Handler] = {
    "PublisherAdded": _publisher(True),
    "PublisherRemoved": _publisher(False),
    "ReleasePublished": _release_published,
    "ReleaseRevoked": _release_revoked,
    "ReleaseAttested": _release_attested,
    "AliasSet": _alias_set,
    "AliasRemoved": _alias_removed,
    "NamespaceClaimed": _namespace("claimed"),
    "NamespaceTransferProposed": _namespace("proposed"),
    "NamespaceTransferred": _namespace("transferred"),
}


def _like_prefix(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


# --------------------------------------------------------------------------------------------
# Undoing blocks (reorgs)
# --------------------------------------------------------------------------------------------


def undo_above(conn: sqlite3.Connection, fork: int) -> tuple[set[bytes], int]:
    """Deletes every row from blocks after ``fork``; returns (names touched, rows removed)."""
    touched: set[bytes] = set()
    removed = 0
    for table in ("publisher_events", "releases", "revocations", "alias_events"):
        touched.update(bytes(r[0]) for r in conn.execute(
            f"SELECT DISTINCT name_key FROM {table} WHERE block > ?", (fork,)))
    touched.update(bytes(r[0]) for r in conn.execute(
        "SELECT DISTINCT r.name_key FROM attestation_events a JOIN releases r ON r.id = a.release_id "
        "WHERE a.block > ?", (fork,)))
    for (rid,) in conn.execute("SELECT release_id FROM revocations WHERE block > ?", (fork,)).fetchall():
        touched.update(descendant_names(conn, bytes(rid)))
    for (namespace,) in conn.execute("SELECT DISTINCT namespace FROM namespace_events WHERE block > ?",
                                     (fork,)).fetchall():
        touched.update(names_in_namespace(conn, namespace))
    for table in EVENT_TABLES:
        removed += conn.execute(f"DELETE FROM {table} WHERE block > ?", (fork,)).rowcount
    conn.execute("DELETE FROM blocks WHERE number > ?", (fork,))
    return touched, removed


# --------------------------------------------------------------------------------------------
# Current state, as the newest row per key
# --------------------------------------------------------------------------------------------


def namespace_state(conn: sqlite3.Connection, namespace: str) -> tuple[str | None, str | None]:
    """(owner, pending owner) of ``namespace`` from its events (D2); None when unclaimed or none pending."""
    owner: str | None = None
    pending: str | None = None
    for row in conn.execute("SELECT kind, account FROM namespace_events WHERE namespace = ? "
                            "ORDER BY block, log_index", (namespace,)):
        if row["kind"] in ("claimed", "transferred"):
            owner, pending = row["account"], None
        else:
            pending = None if row["account"] in (None, ZERO_ADDRESS) else row["account"]
    return owner, pending


def namespace_owner(conn: sqlite3.Connection, name: str) -> str | None:
    """The owner of ``name``: the owner of its namespace (D2), None while unclaimed."""
    return namespace_state(conn, name.split("/", 1)[0])[0]


def publishers_of(conn: sqlite3.Connection, name_key: bytes) -> dict[str, bool]:
    """Every account ever added as a publisher -> whether it still is one."""
    state: dict[str, bool] = {}
    for row in conn.execute("SELECT publisher, added FROM publisher_events WHERE name_key = ? "
                            "ORDER BY block, log_index", (name_key,)):
        state[row["publisher"]] = bool(row["added"])
    return state


def aliases_of(conn: sqlite3.Connection, name_key: bytes) -> dict[str, bytes]:
    """alias -> release id, for the aliases currently set (D3)."""
    state: dict[str, bytes | None] = {}
    for row in conn.execute("SELECT alias, release_id FROM alias_events WHERE name_key = ? ORDER BY block, log_index",
                            (name_key,)):
        state[row["alias"]] = bytes(row["release_id"]) if row["release_id"] is not None else None
    return {alias: rid for alias, rid in sorted(state.items()) if rid is not None}


def authorised(publisher: str, publishers: dict[str, bool], ns_owner: str | None) -> bool:
    """D4: a release counts only while its publisher may still publish the name (an added publisher
    or the namespace owner)."""
    return publishers.get(publisher, False) or (ns_owner is not None and publisher == ns_owner)


# --------------------------------------------------------------------------------------------
# The derived catalog
# --------------------------------------------------------------------------------------------


def refresh_catalog(conn: sqlite3.Connection, name_keys: Iterable[bytes] | None = None) -> int:
    """Recomputes the catalog rows of ``name_keys`` (every name when None); returns rows written."""
    if name_keys is None:
        keys = {bytes(r[0]) for r in conn.execute(
            "SELECT name_key FROM publisher_events UNION SELECT name_key FROM releases")}
        conn.execute("DELETE FROM catalog")
    else:
        keys = set(name_keys)
    count = 0
    for key in keys:
        row = _catalog_row(conn, key)
        if row is None:
            conn.execute("DELETE FROM catalog WHERE name_key = ?", (key,))
            continue
        conn.execute(f"INSERT OR REPLACE INTO catalog ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})",
                     tuple(row.values()))
        count += 1
    return count


def _catalog_row(conn: sqlite3.Connection, key: bytes) -> dict[str, Any] | None:
    releases = conn.execute(
        "SELECT r.*, v.release_id IS NOT NULL AS revoked FROM releases r LEFT JOIN revocations v ON v.release_id = r.id "
        "WHERE r.name_key = ? ORDER BY r.block, r.log_index", (key,)).fetchall()
    name_row = conn.execute("SELECT name FROM publisher_events WHERE name_key = ? LIMIT 1", (key,)).fetchone()
    if not releases and name_row is None:
        return None
    name = releases[0]["name"] if releases else name_row["name"]
    publishers = publishers_of(conn, key)
    ns_owner = namespace_owner(conn, name)
    latest = next((r for r in reversed(releases) if not r["revoked"] and authorised(r["publisher"], publishers,
                                                                                      ns_owner)), None)
    everyone = sorted({r["publisher"] for r in releases} | {p for p, on in publishers.items() if on})
    facts: dict[str, Any] = {}
    card: dict[str, Any] = {}
    task: str | None = None
    if latest is not None:
        art = conn.execute("SELECT op_types, opset FROM artifact_facts WHERE artifact_sha256 = ? AND status = 'ok'",
                           (latest["artifact_sha256"],)).fetchone()
        facts = dict(art) if art else {}
        prov = conn.execute("SELECT task FROM provenance_facts WHERE provenance_sha256 = ? AND status = 'ok'",
                            (latest["provenance_sha256"],)).fetchone()
        task = prov["task"] if prov else None
    with_card = next((r for r in reversed(releases) if r["card_sha256"] is not None and not r["revoked"]), None)
    if with_card is not None:
        found = conn.execute("SELECT license, pipeline_tag, title, tags FROM card_facts WHERE card_sha256 = ? "
                             "AND status = 'ok'", (with_card["card_sha256"],)).fetchone()
        card = dict(found) if found else {}
    tags = " ".join(json.loads(card["tags"])) if card.get("tags") else ""
    task = card.get("pipeline_tag") or task
    search = " ".join(filter(None, [name, card.get("title"), tags, task, card.get("license")])).lower()
    return {
        "name_key": key,
        "name": name,
        "owner": ns_owner,
        "release_count": len(releases),
        "revoked_count": sum(1 for r in releases if r["revoked"]),
        "latest_id": latest["id"] if latest else None,
        "latest_version": latest["version"] if latest else None,
        "latest_size": latest["artifact_size"] if latest else None,
        "latest_publisher": latest["publisher"] if latest else None,
        "latest_block": latest["block"] if latest else None,
        "latest_revoked_ancestor": revoked_ancestor(conn, latest["parent"]) if latest else None,
        "publishers": " " + " ".join(p.lower() for p in everyone) + " ",
        "license": card.get("license"),
        "task": task,
        "op_types": facts.get("op_types"),
        "opset": facts.get("opset"),
        "title": card.get("title"),
        "search": search,
    }


def names_using(conn: sqlite3.Connection, column: str, digest: bytes) -> set[bytes]:
    """Names with a release whose ``column`` (artifact/provenance/card digest) is ``digest``."""
    assert column in ("artifact_sha256", "provenance_sha256", "card_sha256")
    return {bytes(r[0]) for r in conn.execute(f"SELECT DISTINCT name_key FROM releases WHERE {column} = ?", (digest,))}


def rows(conn: sqlite3.Connection, sql: str, params: tuple[Any, ...] = ()) -> Iterator[sqlite3.Row]:
    yield from conn.execute(sql, params)
