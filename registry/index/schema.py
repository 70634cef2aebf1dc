"""The index's SQLite schema: append-only event tables, content facts, and one derived catalog table.

Every row that comes from a log carries its ``(block, log_index)``, and current state (owner,
publishers, aliases, an attester's verdict) is the newest row per key. Undoing a reorg is therefore
one ``DELETE ... WHERE block > fork`` per table, with nothing to reconstruct by hand. Facts read from
content (ONNX ops, provenance metrics, card fields) are keyed by digest, so they never need undoing.
``catalog`` is derived from the rest and recomputed for the names a batch touched.
"""

from __future__ import annotations

SCHEMA_VERSION = 3

# Tables whose rows come from logs: undone by block number on a reorg.
EVENT_TABLES = ("publisher_events", "releases", "revocations", "attestation_events", "alias_events",
                "namespace_events")
# Tables of schema 2 and earlier that the contract no longer has events for (names are owned
# through their namespace since contracts v2).
RETIRED_TABLES = ("name_events",)

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);

CREATE TABLE IF NOT EXISTS blocks (
    number INTEGER PRIMARY KEY,
    hash BLOB NOT NULL,
    timestamp INTEGER,
    has_events INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE IF NOT EXISTS publisher_events (
    block INTEGER NOT NULL, log_index INTEGER NOT NULL,
    name_key BLOB NOT NULL, name TEXT NOT NULL, publisher TEXT NOT NULL, added INTEGER NOT NULL,
    PRIMARY KEY (block, log_index)
);
CREATE INDEX IF NOT EXISTS publisher_events_by_key ON publisher_events (name_key, publisher, block, log_index);

CREATE TABLE IF NOT EXISTS releases (
    id BLOB PRIMARY KEY,
    name_key BLOB NOT NULL, name TEXT NOT NULL, version TEXT NOT NULL,
    artifact_sha256 BLOB NOT NULL, artifact_cid BLOB NOT NULL, artifact_size INTEGER NOT NULL,
    provenance_sha256 BLOB NOT NULL, provenance_cid BLOB NOT NULL,
    card_sha256 BLOB, card_cid BLOB,
    parent BLOB, publisher TEXT NOT NULL, submitter TEXT,
    block INTEGER NOT NULL, log_index INTEGER NOT NULL, tx BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS releases_by_name ON releases (name_key, block, log_index);
CREATE INDEX IF NOT EXISTS releases_by_parent ON releases (parent);
CREATE INDEX IF NOT EXISTS releases_by_block ON releases (block);
CREATE INDEX IF NOT EXISTS releases_by_artifact ON releases (artifact_sha256);

CREATE TABLE IF NOT EXISTS revocations (
    release_id BLOB PRIMARY KEY,
    name_key BLOB NOT NULL, revoked_by TEXT NOT NULL, reason TEXT NOT NULL,
    block INTEGER NOT NULL, log_index INTEGER NOT NULL, tx BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS revocations_by_block ON revocations (block);

CREATE TABLE IF NOT EXISTS attestation_events (
    block INTEGER NOT NULL, log_index INTEGER NOT NULL,
    release_id BLOB NOT NULL, attester TEXT NOT NULL, passed INTEGER NOT NULL, report_sha256 BLOB NOT NULL,
    PRIMARY KEY (block, log_index)
);
CREATE INDEX IF NOT EXISTS attestation_events_by_release ON attestation_events (release_id, attester, block, log_index);

CREATE TABLE IF NOT EXISTS alias_events (
    block INTEGER NOT NULL, log_index INTEGER NOT NULL,
    name_key BLOB NOT NULL, name TEXT NOT NULL, alias TEXT NOT NULL,
    release_id BLOB,                 -- NULL: the alias was removed
    PRIMARY KEY (block, log_index)
);
CREATE INDEX IF NOT EXISTS alias_events_by_key ON alias_events (name_key, alias, block, log_index);

CREATE TABLE IF NOT EXISTS namespace_events (
    block INTEGER NOT NULL, log_index INTEGER NOT NULL,
    ns_key BLOB NOT NULL, namespace TEXT NOT NULL,
    kind TEXT NOT NULL,              -- claimed | proposed | transferred
    account TEXT,                    -- the owner (claimed, transferred) or the proposed owner (zero: cancelled)
    previous TEXT,                   -- the owner before (proposed, transferred)
    PRIMARY KEY (block, log_index)
);
CREATE INDEX IF NOT EXISTS namespace_events_by_key ON namespace_events (namespace, block, log_index);

-- Facts read from content, keyed by digest (content-addressed: never undone).
CREATE TABLE IF NOT EXISTS artifact_facts (
    artifact_sha256 BLOB PRIMARY KEY,
    status TEXT NOT NULL,            -- ok | unavailable | malformed | too_large | unsupported
    ir_version INTEGER, opset INTEGER, nodes INTEGER, initializers INTEGER, parameters INTEGER,
    ops TEXT,                        -- JSON {op_type: count}
    op_types TEXT,                   -- ' Add Gemm Relu ' for filtering
    error TEXT, attempts INTEGER NOT NULL DEFAULT 0, checked_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS provenance_facts (
    provenance_sha256 BLOB PRIMARY KEY,
    status TEXT NOT NULL,
    task TEXT, base_ref TEXT, base_sha256 TEXT,
    document TEXT,                   -- the canonical JSON, as pinned
    error TEXT, attempts INTEGER NOT NULL DEFAULT 0, checked_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS card_facts (
    card_sha256 BLOB PRIMARY KEY,
    status TEXT NOT NULL,
    license TEXT, pipeline_tag TEXT, base_model_relation TEXT, title TEXT,
    tags TEXT, base_model TEXT,      -- JSON lists
    card TEXT,                       -- ModelCard.to_json()
    error TEXT, attempts INTEGER NOT NULL DEFAULT 0, checked_at INTEGER NOT NULL
);

-- Derived: one row per name, recomputed for the names each batch touches.
CREATE TABLE IF NOT EXISTS catalog (
    name_key BLOB PRIMARY KEY,
    name TEXT NOT NULL,
    owner TEXT,                      -- the namespace's owner
    release_count INTEGER NOT NULL,
    revoked_count INTEGER NOT NULL,
    latest_id BLOB, latest_version TEXT, latest_size INTEGER, latest_publisher TEXT, latest_block INTEGER,
    latest_revoked_ancestor TEXT,    -- NAME@VERSION of the nearest revoked ancestor of the latest release
    publishers TEXT NOT NULL,        -- ' 0xA 0xB ' (every publisher of a release, and current ones)
    license TEXT, task TEXT, op_types TEXT, opset INTEGER, title TEXT,
    search TEXT NOT NULL             -- lower-case text the q= filter matches
);
CREATE INDEX IF NOT EXISTS catalog_by_name ON catalog (name);
"""
