"""Event decoding and the handlers, fed with logs encoded under the committed artifact's own event ABIs
(namespaces, publishers, releases with card digests, revocations, aliases): the state rules (D2-D4)
checked log by log, where a real chain would need many transactions to reach each case."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from eth_abi import encode
from eth_utils import keccak

from registry.errors import ChainError
from registry.index import db, queries
from registry.index.lineage import lineage
from registry.index.events import FOLLOWED, Event, decode_log, signature, specs
from registry.release import name_key, release_id

CONTRACT = "0x5FbDB2315678afecb367f032d93F642f64180aa3"
OWNER = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
OTHER = "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC"


def _topic_address(address: str) -> bytes:
    return b"\0" * 12 + bytes.fromhex(address[2:])


def log(name: str, topics: list[bytes], types: list[str], values: list[Any], block: int, index: int = 0) -> dict:
    abi = next(e for e in _artifact_events() if e["name"] == name)
    return {"address": CONTRACT, "blockNumber": block, "logIndex": index, "blockHash": keccak(b"%d" % block),
            "transactionHash": keccak(b"tx%d-%d" % (block, index)), "removed": False,
            "topics": [keccak(text=signature(abi)), *topics], "data": encode(types, values)}


def _artifact_events() -> list[dict]:
    from registry.chain.artifacts import load_artifact

    return [e for e in load_artifact().abi if e.get("type") == "event"]


def published(name: str, version: str, block: int, parent: bytes = b"\0" * 32, publisher: str = OWNER,
              card: bytes | None = None) -> dict:
    rid = release_id(name, version)
    sha = keccak(text=f"{name}@{version}")
    cid = bytes([1, 0x55, 0x12, 0x20]) + sha
    card_sha = b"\0" * 32 if card is None else card
    card_cid = b"" if card is None else bytes([1, 0x55, 0x12, 0x20]) + card
    return log("ReleasePublished", [rid, name_key(name), sha],
               ["string", "string", "bytes", "uint64", "bytes32", "bytes", "bytes32", "bytes", "bytes32", "address",
                "address"],
               [name, version, cid, 1234, sha, cid, card_sha, card_cid, parent, publisher, publisher], block)


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
    """The namespace of ``name`` claimed by ``owner`` (names are owned through their namespace)."""
    namespace = name.split("/", 1)[0]
    return log("NamespaceClaimed", [keccak(text=namespace), _topic_address(owner)], ["string"], [namespace], block)


def ns_transfer(kind: str, namespace: str, old: str, new: str, block: int) -> dict:
    return log(kind, [keccak(text=namespace), _topic_address(old), _topic_address(new)], ["string"], [namespace],
               block)


def test_every_followed_event_decodes_with_the_artifacts_own_shape():
    assert {s.name for s in specs().values()} == set(FOLLOWED)
    event = decode_log(alias_set("acme/m", "production", "1.0.0", 7))
    assert event.name == "AliasSet" and event.block == 7
    assert event.args["aliasName"] == "production" and event.args["releaseId"] == release_id("acme/m", "1.0.0")
    ns = decode_log(claim("acme/m", OWNER, 3))
    assert ns.args["namespaceKey"] == keccak(text="acme") and ns.args["owner"] == OWNER
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
    transfer = ns_transfer("NamespaceTransferred", "acme", OWNER, OTHER, 5)  # OTHER now owns every acme/ name
    apply(conn, [transfer])
    model = queries.model(conn, "acme/m")
    assert model["owner"] == OTHER and model["latest"] == "1.0.0"
    assert queries.catalog(conn, queries.CatalogQuery())["models"][0]["owner"] == OTHER


def test_card_digest_and_cid_from_the_release_event(conn):
    """D1: ReleasePublished carries cardSha256/cardCid; a zero digest means no card."""
    card_sha = keccak(text="card")
    apply(conn, [claim("acme/m", OWNER, 1), published("acme/m", "1.0.0", 2, card=card_sha),
                 published("acme/m", "1.1.0", 3)])
    assert queries.release(conn, "acme/m", "1.0.0")["card_sha256"] == card_sha.hex()
    assert queries.release(conn, "acme/m", "1.0.0")["card_cid"]["hex"] == "0x01551220" + card_sha.hex()
    assert queries.release(conn, "acme/m", "1.1.0")["card_sha256"] is None  # no extra word for "no card"


def test_base_model_links_from_cards_join_the_lineage(conn):
    import json

    apply(conn, [claim("acme/base", OWNER, 1), published("acme/base", "1.0.0", 2), claim("acme/int8", OWNER, 3),
                 published("acme/int8", "1.0.0", 4)])
    card_sha = keccak(text="card")
    conn.execute("UPDATE releases SET card_sha256 = ? WHERE id = ?", (card_sha, release_id("acme/int8", "1.0.0")))
    conn.execute("INSERT INTO card_facts (card_sha256, status, base_model, base_model_relation, checked_at) "
                 "VALUES (?, 'ok', ?, 'quantized', 0)", (card_sha, json.dumps(["acme/base@1.0.0", "hf/bert"])))
    graph = lineage(conn, release_id("acme/int8", "1.0.0")).to_json()
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


def test_a_namespace_transfer_is_pending_until_accepted_and_cancellable(conn):
    """D2: a proposal is pending (the owner does not change) until the new owner accepts; proposing
    the zero address cancels it. The catalog's owner of every name under the namespace follows."""
    zero = "0x" + "00" * 20
    apply(conn, [claim("acme/a", OWNER, 1), published("acme/a", "1.0.0", 2), published("acme/b", "1.0.0", 3),
                 ns_transfer("NamespaceTransferProposed", "acme", OWNER, OTHER, 4)])
    model = queries.model(conn, "acme/b")
    assert (model["owner"], model["pending_owner"]) == (OWNER, OTHER)
    apply(conn, [ns_transfer("NamespaceTransferProposed", "acme", OWNER, zero, 5)])
    assert queries.model(conn, "acme/b")["pending_owner"] is None
    apply(conn, [ns_transfer("NamespaceTransferProposed", "acme", OWNER, OTHER, 6),
                 ns_transfer("NamespaceTransferred", "acme", OWNER, OTHER, 7)])
    owners = {m["name"]: m["owner"] for m in queries.catalog(conn, queries.CatalogQuery())["models"]}
    assert owners == {"acme/a": OTHER, "acme/b": OTHER}
    # The releases OWNER signed stop counting (D4): OWNER is neither the owner nor a publisher now.
    assert queries.model(conn, "acme/a")["latest"] is None
    with db.transaction(conn):  # a reorg back to block 5 hands the namespace back
        touched, _ = db.undo_above(conn, 5)
        db.refresh_catalog(conn, touched)
    owners = {m["name"]: (m["owner"], m["latest"]) for m in queries.catalog(conn, queries.CatalogQuery())["models"]}
    assert owners == {"acme/a": (OWNER, "1.0.0"), "acme/b": (OWNER, "1.0.0")}
