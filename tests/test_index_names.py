"""The index on a real anvil follows the v2 contract's namespaces, aliases and cards, and a reorg rolls
back an alias move and a namespace transfer (anvil snapshots reverted under the index)."""

from __future__ import annotations

import hashlib
from typing import Any

from registry.index import names, queries
from registry.index.queries import CatalogQuery
from tests._verify_fixtures import publish_tiny

CARD = b"""---
license: apache-2.0
pipeline_tag: image-classification
tags: [onnx, int8]
base_model: acme/base@1.0.0
base_model_relation: quantized
---
# Digits INT8

Quantized from acme/base.
"""


def _update(deployed: Any) -> Any:
    from registry.config import load_settings
    from registry.index import update_index

    return update_index(load_settings(), client=deployed.client)


def _conn() -> Any:
    from registry.config import load_settings
    from registry.index import connect, index_path

    return connect(index_path(load_settings()))


def _aliases(conn: Any, name: str) -> dict[str, str]:
    return {a["alias"]: a["version"] for a in queries.model(conn, name)["aliases"]}


def test_namespaces_aliases_and_cards_from_a_real_chain(deployed, tmp_path):
    client, owner, heir = deployed.client, deployed.publisher, deployed.accounts[3]
    one = publish_tiny(deployed, tmp_path, "acme/m", "1.0.0", seed=1)  # claims namespace acme on the way
    two = publish_tiny(deployed, tmp_path, "acme/m", "1.1.0", seed=2, card=CARD)
    client.set_alias("acme/m", "production", one.result.record.id, owner)
    client.set_alias("acme/m", "staging", two.result.record.id, owner)
    client.set_alias("acme/m", "production", two.result.record.id, owner)  # a move
    client.remove_alias("acme/m", "staging", owner)
    client.propose_namespace_owner("acme", heir.address, owner)

    update = _update(deployed)
    assert update.sync.ignored == 1  # NamespaceCommitted: hidden until the reveal, nothing to index
    assert update.content.cards == 1
    conn = _conn()
    assert _aliases(conn, "acme/m") == {"production": "1.1.0"}
    production = names.alias(conn, "acme/m", "production")
    assert [(h["action"], h["version"]) for h in production["history"]] == [("set", "1.1.0"), ("set", "1.0.0")]
    assert production["current"]["resolves"] is True
    staging = names.alias(conn, "acme/m", "staging")
    assert staging["current"] is None and [h["action"] for h in staging["history"]] == ["removed", "set"]
    assert queries.release(conn, "acme/m", "1.1.0")["aliases"] == ["production"]

    release = queries.release(conn, "acme/m", "1.1.0")
    assert release["card_sha256"] == hashlib.sha256(CARD).hexdigest() and release["card"]["status"] == "ok"
    assert release["card"]["card"]["base_model"] == ["acme/base@1.0.0"]
    assert queries.release(conn, "acme/m", "1.0.0")["card_sha256"] is None
    item = queries.catalog(conn, CatalogQuery(license="apache-2.0"))["models"]
    assert [(m["name"], m["task"], m["owner"]) for m in item] == [("acme/m", "image-classification", owner.address)]

    ns = names.namespace(conn, "acme")
    assert (ns["owner"], ns["pending_owner"]) == (owner.address, heir.address)
    assert [h["kind"] for h in ns["history"]] == ["claimed", "proposed"] and ns["history"][0]["at"]
    assert [m["name"] for m in ns["models"]] == ["acme/m"]

    client.accept_namespace_owner("acme", heir)
    _update(deployed)
    conn = _conn()
    model = queries.model(conn, "acme/m")
    assert (model["owner"], model["pending_owner"]) == (heir.address, None)
    # D4: the old owner signed both releases and is not a publisher of acme/m: neither counts now,
    # exactly as the chain says.
    assert model["latest"] is None and not client.is_valid(two.result.record.id)
    assert names.alias(conn, "acme/m", "production")["current"]["resolves"] is False
    client.add_publisher("acme/m", owner.address, heir)
    _update(deployed)
    assert queries.model(_conn(), "acme/m")["latest"] == "1.1.0" and client.is_valid(two.result.record.id)


def test_a_reorg_rolls_back_an_alias_move_and_a_namespace_transfer(deployed, tmp_path):
    client, owner, heir = deployed.client, deployed.publisher, deployed.accounts[3]
    one = publish_tiny(deployed, tmp_path, "acme/r", "1.0.0", seed=1)
    two = publish_tiny(deployed, tmp_path, "acme/r", "1.1.0", seed=2)
    client.set_alias("acme/r", "production", one.result.record.id, owner)
    _update(deployed)
    snapshot = deployed.rpc("evm_snapshot")

    client.set_alias("acme/r", "production", two.result.record.id, owner)  # rolled back below
    client.revoke(one.result.record.id, "rolled back too", owner)
    client.propose_namespace_owner("acme", heir.address, owner)
    client.accept_namespace_owner("acme", heir)
    _update(deployed)
    conn = _conn()
    assert _aliases(conn, "acme/r") == {"production": "1.1.0"}
    assert queries.model(conn, "acme/r")["owner"] == heir.address
    old_cursor = queries.status(conn)["cursor"]

    assert deployed.rpc("evm_revert", [snapshot]) is True
    client.set_alias("acme/r", "canary", two.result.record.id, owner)  # the other branch
    while client.block_number <= old_cursor + 1:
        deployed.rpc("evm_mine")
    update = _update(deployed)
    assert update.sync.reorg is not None and update.sync.reorg.fork_block < old_cursor
    conn = _conn()
    assert _aliases(conn, "acme/r") == {"production": "1.0.0", "canary": "1.1.0"}
    assert [h["version"] for h in names.alias(conn, "acme/r", "production")["history"]] == ["1.0.0"]
    model = queries.model(conn, "acme/r")
    assert (model["owner"], model["pending_owner"], model["latest"]) == (owner.address, None, "1.1.0")
    assert not queries.release(conn, "acme/r", "1.0.0")["revoked"]
    assert [h["kind"] for h in names.namespace(conn, "acme")["history"]] == ["claimed"]
    # the index now agrees with the chain
    assert client.alias_target("acme/r", "production") == one.result.record.id
    assert client.namespace_owner("acme") == (owner.address, None)
