"""Event decoding and the handlers for the events PLAN D1-D3 add (aliases, namespaces, card digests),
fed with logs encoded in the agreed shapes, so they are exercised before the contract emits them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from eth_abi import encode
from eth_utils import keccak

from registry.errors import ChainError
from registry.index import db, queries
from registry.index.events import PLANNED_EVENTS, Event, decode_log, signature, specs
from registry.release import name_key, release_id

CONTRACT = "0x5FbDB2315678afecb367f032d93F642f64180aa3"
OWNER = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
OTHER = "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC"


def _topic_address(address: str) -> bytes:
    return b"\0" * 12 + bytes.fromhex(address[2:])


def log(name: str, topics: list[bytes], types: list[str], values: list[Any], block: int, index: int = 0) -> dict:
    abi = next(e for e in [*PLANNED_EVENTS, *_artifact_events()] if e["name"] == name)
    return {"address": CONTRACT, "blockNumber": block, "logIndex": index, "blockHash": keccak(b"%d" % block),
            "transactionHash": keccak(b"tx%d-%d" % (block, index)), "removed": False,
            "topics": [keccak(text=signature(abi)), *topics], "data": encode(types, values)}


def _artifact_events() -> list[dict]:
    from registry.chain.artifacts import load_artifact

    return [e for e in load_artifact().abi if e.get("type") == "event"]


def published(name: str, version: str, block: int, parent: bytes = b"\0" * 32, publisher: str = OWNER) -> dict:
    rid = release_id(name, version)
    sha = keccak(text=f"{name}@{version}")
    cid = bytes([1, 0x55, 0x12, 0x20]) + sha
    return log("ReleasePublished", [rid, name_key(name), sha],
               ["string", "string", "bytes", "uint64", "bytes32", "bytes", "bytes32", "address", "address"],
               [name, version, cid, 1234, sha, cid, parent, publisher, publisher], block)


def alias_set(name: str, alias: str, version: str, block: int, index: int = 0) -> dict:
    return log("AliasSet", [name_key(name), release_id(name, version)], ["string", "string"], [name, alias], block,
               index)


def alias_removed(name: str, alias: str, block: int) -> dict:
    return log("AliasRemoved", [name_key(name)], ["string", "string"], [name, alias], block)


@pytest.fixture
def conn(tmp_path: Path):
    connection = db.connect(tmp_path / "index.sqlite")
    yield connection
    connection.close()


def apply(conn, logs: list[dict]) -> None:
    events = [decode_log(item) for item in logs]
    with db.transaction(conn):
        touched = db.apply_events(conn, [e for e in events if e is not None])
        db.refresh_catalog(conn, touched)


def claim(name: str, owner: str, block: int) -> dict:
    return log("NameClaimed", [name_key(name), _topic_address(owner)], ["string"], [name], block)


def test_planned_events_decode_with_the_agreed_shapes():
    assert {s.name for s in specs().values()} >= {"AliasSet", "AliasRemoved", "NamespaceClaimed",
                                                  "NamespaceTransferred", "ReleasePublished"}
    event = decode_log(alias_set("acme/m", "production", "1.0.0", 7))
    assert event.name == "AliasSet" and event.block == 7
    assert event.args["alias"] == "production" and event.args["releaseId"] == release_id("acme/m", "1.0.0")
    assert decode_log({**alias_set("acme/m", "x", "1.0.0", 1), "topics": [keccak(text="Other()")]}) is None


def test_aliases_follow_set_move_and_remove(conn):
    apply(conn, [claim("acme/m", OWNER, 1), published("acme/m", "1.0.0", 2), published("acme/m", "1.1.0", 3),
                 alias_set("acme/m", "production", "1.0.0", 4), alias_set("acme/m", "staging", "1.1.0", 4, 1)])
    aliases = {a["alias"]: a["version"] for a in queries.model(conn, "acme/m")["aliases"]}
    assert aliases == {"production": "1.0.0", "staging": "1.1.0"}
    apply(conn, [alias_set("acme/m", "production", "1.1.0", 5), alias_removed("acme/m", "staging", 6)])
    assert {a["alias"]: a["version"] for a in queries.model(conn, "acme/m")["aliases"]} == {"production": "1.1.0"}
    assert queries.resolve_alias(conn, "acme/m", "production") == release_id("acme/m", "1.1.0")
    assert queries.release(conn, "acme/m", "1.1.0")["aliases"] == ["production"]
    with db.transaction(conn):  # a reorg back to block 4 restores the earlier pointers
        db.undo_above(conn, 4)
    assert {a["alias"]: a["version"] for a in queries.model(conn, "acme/m")["aliases"]} == {
        "production": "1.0.0", "staging": "1.1.0"}


def test_an_alias_on_a_later_revoked_release_is_marked(conn):
    rid = release_id("acme/m", "1.0.0")
    revoke = log("ReleaseRevoked", [rid, name_key("acme/m"), _topic_address(OWNER)], ["string"], ["bad"], 5)
    apply(conn, [claim("acme/m", OWNER, 1), published("acme/m", "1.0.0", 2),
                 alias_set("acme/m", "production", "1.0.0", 3), revoke])
    [alias] = queries.model(conn, "acme/m")["aliases"]
    assert alias["alias"] == "production" and alias["revoked"] is True


def test_namespace_owner_counts_as_publisher_d4(conn):
    """PLAN D4: a release counts while its publisher may publish the name, or owns the namespace."""
    removed = log("PublisherRemoved", [name_key("acme/m"), _topic_address(OTHER)], ["string"], ["acme/m"], 4)
    added = log("PublisherAdded", [name_key("acme/m"), _topic_address(OTHER)], ["string"], ["acme/m"], 2)
    apply(conn, [claim("acme/m", OWNER, 1), added, published("acme/m", "1.0.0", 3, publisher=OTHER), removed])
    assert queries.model(conn, "acme/m")["latest"] is None  # its publisher was removed
    ns = log("NamespaceClaimed", [keccak(text="acme"), _topic_address(OTHER)], ["string"], ["acme"], 5)
    apply(conn, [ns])
    model = queries.model(conn, "acme/m")
    assert model["namespace_owner"] == OTHER and model["latest"] == "1.0.0"


def test_card_digest_and_cid_from_a_v2_release_event(conn):
    """PLAN D1: ReleasePublished carries cardSha256/cardCid; handlers read them by name."""
    base = decode_log(published("acme/m", "1.0.0", 2))
    card_sha = keccak(text="card")
    args = dict(base.args, cardSha256=card_sha, cardCid=bytes([1, 0x55, 0x12, 0x20]) + card_sha)
    no_card = dict(decode_log(published("acme/m", "1.1.0", 3)).args, cardSha256=b"\0" * 32, cardCid=b"")
    with db.transaction(conn):
        db.apply_events(conn, [Event("ReleasePublished", 2, 0, base.block_hash, base.tx_hash, args),
                               Event("ReleasePublished", 3, 0, base.block_hash, base.tx_hash, no_card)])
    assert queries.release(conn, "acme/m", "1.0.0")["card_sha256"] == card_sha.hex()
    assert queries.release(conn, "acme/m", "1.1.0")["card_sha256"] is None  # no extra word for "no card"


def test_base_model_links_from_cards_join_the_lineage(conn):
    import json

    apply(conn, [claim("acme/base", OWNER, 1), published("acme/base", "1.0.0", 2), claim("acme/int8", OWNER, 3),
                 published("acme/int8", "1.0.0", 4)])
    card_sha = keccak(text="card")
    conn.execute("UPDATE releases SET card_sha256 = ? WHERE id = ?", (card_sha, release_id("acme/int8", "1.0.0")))
    conn.execute("INSERT INTO card_facts (card_sha256, status, base_model, base_model_relation, checked_at) "
                 "VALUES (?, 'ok', ?, 'quantized', 0)", (card_sha, json.dumps(["acme/base@1.0.0", "hf/bert"])))
    graph = queries.lineage(conn, release_id("acme/int8", "1.0.0")).to_json()
    refs = {n["ref"]: n for n in graph["nodes"]}
    assert set(refs) == {"acme/int8@1.0.0", "acme/base@1.0.0", "hf/bert"} and refs["hf/bert"]["external"]
    kinds = {(e["kind"], e.get("relation")) for e in graph["edges"]}
    assert kinds == {("base_model", "quantized")}


def test_a_log_that_does_not_decode_is_a_clear_chain_error(conn):
    from registry.index.sync import Follower, SyncResult

    class Client:
        address = CONTRACT
        rpc_url = "http://127.0.0.1:1"

    bad = {**alias_set("acme/m", "production", "1.0.0", 3), "data": b"\x01\x02"}
    with pytest.raises(ChainError, match="cannot decode"):
        Follower(Client(), conn)._decode([bad], SyncResult(None, None, 0, 0))
    foreign = {**alias_set("acme/m", "production", "1.0.0", 3), "address": OTHER}
    removed = {**alias_set("acme/m", "production", "1.0.0", 3), "removed": True}
    result = SyncResult(None, None, 0, 0)
    assert Follower(Client(), conn)._decode([foreign, removed], result) == []
    unknown = {**alias_set("acme/m", "production", "1.0.0", 3), "topics": [keccak(text="Unknown(uint256)")]}
    assert Follower(Client(), conn)._decode([unknown], result) == [] and result.ignored == 1
