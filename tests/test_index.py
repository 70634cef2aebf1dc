"""The event index on a real anvil: names, releases, revocations, attestations, children, incremental
catch-up, the confirmation depth, and reorgs (anvil snapshots reverted under the index)."""

from __future__ import annotations

import sqlite3
from typing import Any

import pytest

from registry.index import queries
from registry.index.lineage import lineage
from registry.index.queries import CatalogQuery
from tests._verify_fixtures import publish_tiny


def _update(deployed: Any, **kwargs: Any) -> Any:
    from registry.config import load_settings
    from registry.index import update_index

    return update_index(load_settings(), client=deployed.client, **kwargs)


def _conn() -> sqlite3.Connection:
    from registry.config import load_settings
    from registry.index import connect, index_path

    return connect(index_path(load_settings()))


def test_index_knows_names_releases_revocations_attestations_and_children(deployed, tmp_path):
    a = publish_tiny(deployed, tmp_path, "acme/base", "1.0.0", seed=1)
    b = publish_tiny(deployed, tmp_path, "acme/base", "1.1.0", seed=2, parent="acme/base@1.0.0")
    c = publish_tiny(deployed, tmp_path, "acme/small", "0.1.0", seed=3, parent="acme/base@1.1.0")
    client = deployed.client
    client.revoke(a.result.record.id, "bad calibration", deployed.publisher)
    client.attest(b.result.record.id, True, b"\x11" * 32, deployed.accounts[3])
    client.attest(b.result.record.id, False, b"\x22" * 32, deployed.accounts[4])
    client.attest(b.result.record.id, True, b"\x33" * 32, deployed.accounts[4])  # replaces its verdict
    client.add_publisher("acme/base", deployed.accounts[5].address, deployed.publisher)

    update = _update(deployed)
    assert update.sync.releases == 3 and update.sync.reorg is None
    assert update.sync.to_block == client.block_number
    conn = _conn()

    listing = queries.catalog(conn, CatalogQuery())
    assert [m["name"] for m in listing["models"]] == ["acme/base", "acme/small"]
    base = listing["models"][0]
    assert base["releases"] == 2 and base["revoked"] == 1 and base["latest"] == "1.1.0"
    assert base["owner"] == deployed.publisher.address

    model = queries.model(conn, "acme/base")
    assert [r["version"] for r in model["releases"]] == ["1.1.0", "1.0.0"]
    assert model["revocations"][0]["version"] == "1.0.0" and model["revocations"][0]["reason"] == "bad calibration"
    current = {p["address"]: (p["role"], p["current"]) for p in model["publishers"]}
    assert current == {deployed.publisher.address: ("namespace owner", True),
                       deployed.accounts[5].address: ("publisher", True)}

    release = queries.release(conn, "acme/base", "1.1.0")
    assert release["parent_ref"] == "acme/base@1.0.0"
    assert [ch["ref"] for ch in release["children"]] == ["acme/small@0.1.0"]
    verdicts = {x["attester"]: (x["passed"], x["report_sha256"][:2]) for x in release["attestations"]}
    assert verdicts == {deployed.accounts[3].address: (True, "11"), deployed.accounts[4].address: (True, "33")}
    assert release["artifact_sha256"] == b.result.record.artifact_sha256.hex()
    assert release["published_at"] is not None

    revoked = queries.release(conn, "acme/base", "1.0.0")
    assert revoked["revoked"] and revoked["revocation"]["by"] == deployed.publisher.address
    assert queries.release(conn, "acme/base", "9.9.9") is None
    assert c.result.record.id.hex() in lineage(conn, a.result.record.id).to_json().__repr__()


def test_index_reads_ops_and_task_from_the_store(deployed, tmp_path):
    publish_tiny(deployed, tmp_path, "acme/ops", "1.0.0", provenance={"recipe": {"task": "classification"},
                                                                     "metrics": {"accuracy": 0.9}})
    update = _update(deployed)
    assert update.content.artifacts == 1 and update.content.provenance == 1
    conn = _conn()
    item = queries.catalog(conn, CatalogQuery(ops=("Gemm",)))["models"]
    assert [m["name"] for m in item] == ["acme/ops"]
    assert item[0]["ops"] == ["Gemm", "Relu"] and item[0]["opset"] == 17 and item[0]["task"] == "classification"
    assert queries.catalog(conn, CatalogQuery(ops=("Conv",)))["total"] == 0
    assert queries.catalog(conn, CatalogQuery(task="classification"))["total"] == 1
    facts = queries.release(conn, "acme/ops", "1.0.0")["facts"]
    assert facts["status"] == "ok" and facts["ops"] == {"Gemm": 1, "Relu": 1}


def test_catalog_filters(deployed, tmp_path):
    publish_tiny(deployed, tmp_path, "acme/alpha", "1.0.0", seed=1)
    publish_tiny(deployed, tmp_path, "other/beta_x", "1.0.0", seed=2)
    _update(deployed, content=False)
    conn = _conn()

    def names(**kw: Any) -> list[str]:
        return [m["name"] for m in queries.catalog(conn, CatalogQuery(**kw))["models"]]

    assert names(q="ALPHA") == ["acme/alpha"]
    assert names(q="beta_") == ["other/beta_x"]
    assert names(q="%") == []  # LIKE wildcards are literal
    assert names(publisher=deployed.publisher.address.lower()) == ["acme/alpha", "other/beta_x"]
    assert names(publisher="0x" + "12" * 20) == []
    size = queries.catalog(conn, CatalogQuery())["models"][0]["latest_size"]
    assert names(min_size=size + 1) == [] and names(max_size=size) == ["acme/alpha", "other/beta_x"]
    assert names(license="mit") == []


def test_incremental_catch_up_reads_only_new_blocks(deployed, tmp_path):
    publish_tiny(deployed, tmp_path, "acme/inc", "1.0.0", seed=1)
    first = _update(deployed)
    again = _update(deployed)
    assert again.sync.from_block is None and again.sync.events == 0  # nothing new
    publish_tiny(deployed, tmp_path, "acme/inc", "1.1.0", seed=2)
    third = _update(deployed)
    assert third.sync.from_block == first.sync.to_block + 1
    assert third.sync.releases == 1
    assert queries.model(_conn(), "acme/inc")["latest"] == "1.1.0"


def test_only_blocks_past_the_confirmation_depth_are_indexed(deployed, tmp_path, monkeypatch):
    monkeypatch.setenv("REGISTRY_CONFIRMATIONS", "3")
    for _ in range(5):
        deployed.rpc("evm_mine")
    publish_tiny(deployed, tmp_path, "acme/conf", "1.0.0")
    update = _update(deployed)
    assert update.sync.to_block == deployed.client.block_number - 3
    assert queries.release(_conn(), "acme/conf", "1.0.0") is None
    for _ in range(3):
        deployed.rpc("evm_mine")
    _update(deployed)
    assert queries.release(_conn(), "acme/conf", "1.0.0") is not None


def test_a_reorg_undoes_rolled_back_releases_and_revocations(deployed, tmp_path):
    kept = publish_tiny(deployed, tmp_path, "acme/reorg", "1.0.0", seed=1)
    snapshot = deployed.rpc("evm_snapshot")
    publish_tiny(deployed, tmp_path, "acme/reorg", "1.1.0", seed=2)
    deployed.client.revoke(kept.result.record.id, "rolled back later", deployed.publisher)
    _update(deployed)
    conn = _conn()
    assert queries.model(conn, "acme/reorg")["latest"] == "1.1.0"
    assert queries.release(conn, "acme/reorg", "1.0.0")["revoked"]
    old_cursor = queries.status(conn)["cursor"]

    assert deployed.rpc("evm_revert", [snapshot]) is True
    # the other branch: a different release, and enough blocks to pass the old cursor
    publish_tiny(deployed, tmp_path, "acme/reorg", "2.0.0", seed=3)
    while deployed.client.block_number <= old_cursor + 1:
        deployed.rpc("evm_mine")

    update = _update(deployed)
    assert update.sync.reorg is not None and update.sync.reorg.fork_block < old_cursor
    conn = _conn()
    assert queries.release(conn, "acme/reorg", "1.1.0") is None
    assert not queries.release(conn, "acme/reorg", "1.0.0")["revoked"]
    model = queries.model(conn, "acme/reorg")
    assert [r["version"] for r in model["releases"]] == ["2.0.0", "1.0.0"] and model["latest"] == "2.0.0"
    assert model["revocations"] == []


def test_a_reorg_to_a_shorter_chain_is_caught(deployed, tmp_path):
    """The head drops below the cursor (a revert without new blocks): the index rolls back to it."""
    publish_tiny(deployed, tmp_path, "acme/short", "1.0.0", seed=1)
    snapshot = deployed.rpc("evm_snapshot")
    publish_tiny(deployed, tmp_path, "acme/short", "1.1.0", seed=2)
    _update(deployed)
    assert deployed.rpc("evm_revert", [snapshot]) is True
    update = _update(deployed)
    assert update.sync.reorg is not None
    assert update.sync.to_block == deployed.client.block_number
    assert queries.release(_conn(), "acme/short", "1.1.0") is None
    assert queries.model(_conn(), "acme/short")["latest"] == "1.0.0"


def test_an_index_of_another_contract_starts_over(deployed, tmp_path):
    from registry.index import db

    publish_tiny(deployed, tmp_path, "acme/where", "1.0.0")
    _update(deployed)
    conn = _conn()
    with db.transaction(conn):
        db.set_meta(conn, contract="0x" + "ab" * 20)
    update = _update(deployed)
    assert update.sync.reset_reason and "contract" in update.sync.reset_reason
    assert queries.release(_conn(), "acme/where", "1.0.0") is not None


def test_content_that_is_missing_from_the_store_is_retried_later(deployed, tmp_path):
    from registry.config import load_settings
    from registry.content.stores import open_store
    from registry.index.content import enrich

    pub = publish_tiny(deployed, tmp_path, "acme/gone", "1.0.0")
    store = open_store(load_settings())
    block = store.block_path(pub.result.record.artifact_cid)
    saved = block.read_bytes()
    block.unlink()
    update = _update(deployed)
    assert update.content.unavailable >= 1
    conn = _conn()
    assert queries.release(conn, "acme/gone", "1.0.0")["facts"]["status"] == "unavailable"
    block.write_bytes(saved)
    assert enrich(conn, store).artifacts == 0  # not due yet (backoff)
    assert enrich(conn, store, now=lambda: 10**10).artifacts == 1
    assert queries.release(conn, "acme/gone", "1.0.0")["facts"]["status"] == "ok"


def test_a_tampered_block_never_becomes_a_fact(deployed, tmp_path):
    from registry.config import load_settings
    from registry.content.stores import open_store

    pub = publish_tiny(deployed, tmp_path, "acme/evil", "1.0.0", provenance={"recipe": {"task": "classification"}})
    block = open_store(load_settings()).block_path(pub.result.record.provenance_cid)
    block.write_bytes(block.read_bytes().replace(b"classification", b"regression!!!!"))
    _update(deployed)
    conn = _conn()
    assert queries.catalog(conn, CatalogQuery(task="regression!!!!"))["total"] == 0
    assert queries.provenance_document(conn, pub.result.record.provenance_sha256)["status"] != "ok"


@pytest.mark.parametrize("bad", [b"not sqlite at all" * 100])
def test_a_corrupt_index_file_is_a_clear_error(registry_home, bad):
    from registry.config import load_settings
    from registry.errors import InputError
    from registry.index import connect, index_path

    path = index_path(load_settings())
    path.parent.mkdir(parents=True)
    path.write_bytes(bad)
    with pytest.raises(InputError, match="not a registry index"):
        connect(path)


def test_an_index_of_an_older_schema_is_read_again_from_the_chain(deployed, tmp_path):
    """Schema 2 followed the planned per-name ownership events; its rows are a cache, so an upgrade
    forgets them and the next sync reads everything back (content facts, keyed by digest, stay)."""
    publish_tiny(deployed, tmp_path, "acme/old", "1.0.0")
    _update(deployed)
    conn = _conn()
    conn.execute("CREATE TABLE name_events (block INTEGER, log_index INTEGER, name_key BLOB, name TEXT, kind TEXT, "
                 "account TEXT)")
    conn.execute("PRAGMA user_version = 2")
    conn.close()
    conn = _conn()
    assert queries.catalog(conn, CatalogQuery())["total"] == 0 and queries.status(conn)["cursor"] is None
    assert conn.execute("SELECT COUNT(*) FROM sqlite_master WHERE name = 'name_events'").fetchone()[0] == 0
    assert conn.execute("SELECT COUNT(*) FROM artifact_facts").fetchone()[0] == 1
    update = _update(deployed)
    assert update.sync.releases == 1 and update.content.artifacts == 0  # facts were kept
    listing = queries.catalog(_conn(), CatalogQuery())
    assert [m["name"] for m in listing["models"]] == ["acme/old"] and listing["models"][0]["latest"] == "1.0.0"
    assert listing["models"][0]["owner"] == deployed.publisher.address
