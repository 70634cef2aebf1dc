"""Cross-model lineage from signed cards and the parent field, with cards published for real: the
card's ``base_model`` links a release to a release of another name (both ways: the base's lineage
shows what was derived from it), ``parent`` links versions, a Hub id is an external node."""

from __future__ import annotations

import re

from registry.index.lineage import lineage
from registry.release import release_id
from tests._explorer_fixtures import index_now, registry_data, web  # noqa: F401
from tests._verify_fixtures import publish_tiny


def card(base: str | list[str], relation: str) -> bytes:
    import yaml

    front = yaml.safe_dump({"license": "mit", "base_model": base, "base_model_relation": relation})
    return f"---\n{front}---\n# derived\n".encode()


def _conn():
    from registry.config import load_settings
    from registry.index import connect, index_path

    return connect(index_path(load_settings()))


def _edges(graph: dict) -> set[tuple[str, str, str, str | None]]:
    refs = {n["id"]: n["ref"] for n in graph["nodes"]}
    return {(refs[e["from"]], refs[e["to"]], e["kind"], e.get("relation")) for e in graph["edges"]}


def test_card_base_models_and_parents_make_one_graph_across_names(web, registry_data, tmp_path):  # noqa: F811
    d = registry_data.deployed
    publish_tiny(d, tmp_path, "acme/digits-int8", "1.0.0", seed=21, card=card("acme/digits@1.0.0", "quantized"))
    publish_tiny(d, tmp_path, "acme/digits-int8", "1.1.0", seed=22, parent="acme/digits-int8@1.0.0")
    # an unversioned base means that name's newest release that counts; a Hub id stays outside
    publish_tiny(d, tmp_path, "labs/distilled", "1.0.0", seed=23,
                 card=card(["acme/digits", "sentence-transformers/all-MiniLM-L6-v2"], "distilled"))
    index_now(d)
    conn = _conn()

    base = lineage(conn, release_id("acme/digits", "1.0.0")).to_json()
    assert {
        ("acme/digits@1.0.0", "acme/digits@1.1.0", "parent", None),
        ("acme/digits@1.1.0", "acme/digits-small@0.1.0", "parent", None),
        ("acme/digits@1.0.0", "acme/digits-int8@1.0.0", "base_model", "quantized"),  # derived in another name
        ("acme/digits-int8@1.0.0", "acme/digits-int8@1.1.0", "parent", None),       # and its own versions
        ("acme/digits@1.1.0", "labs/distilled@1.0.0", "base_model", "distilled"),
        ("sentence-transformers/all-MiniLM-L6-v2", "labs/distilled@1.0.0", "base_model", "distilled"),
    } == _edges(base)

    leaf = lineage(conn, release_id("acme/digits-int8", "1.1.0")).to_json()
    refs = {n["ref"] for n in leaf["nodes"]}
    assert {"acme/digits-int8@1.0.0", "acme/digits@1.0.0"} <= refs  # up through the card to the base
    assert ("acme/digits@1.0.0", "acme/digits-int8@1.0.0", "base_model", "quantized") in _edges(leaf)

    page = web.get("/models/acme/digits-int8/1.1.0/lineage")
    svg = re.search(r"<svg.*?</svg>", page.text, re.S).group(0)
    assert 'href="/models/acme/digits/1.0.0"' in svg and "quantized" in svg and 'stroke-dasharray="6 4"' in svg
    external = web.get("/api/models/labs/distilled/1.0.0/lineage").json()["graph"]["nodes"]
    assert [n["ref"] for n in external if n["external"]] == ["sentence-transformers/all-MiniLM-L6-v2"]

    # revoking the base is marked on the derived release's graph (the card edge is a claim, shown)
    d.client.revoke(registry_data.base.result.record.id, "leaked eval set", d.publisher)
    index_now(d)
    nodes = {n["ref"]: n for n in web.get("/api/models/acme/digits-int8/1.0.0/lineage").json()["graph"]["nodes"]}
    assert nodes["acme/digits@1.0.0"]["revoked"] and nodes["acme/digits@1.0.0"]["revocation_reason"] == "leaked eval set"


def test_a_card_naming_itself_or_a_cycle_does_not_loop(registry_data, tmp_path):  # noqa: F811
    d = registry_data.deployed
    publish_tiny(d, tmp_path, "loop/a", "1.0.0", seed=31, card=card("loop/b", "finetune"))
    publish_tiny(d, tmp_path, "loop/b", "1.0.0", seed=32, card=card(["loop/a", "loop/b@1.0.0"], "finetune"))
    index_now(d)
    graph = lineage(_conn(), release_id("loop/a", "1.0.0")).to_json()
    assert {n["ref"] for n in graph["nodes"]} == {"loop/a@1.0.0", "loop/b@1.0.0"}
    assert _edges(graph) == {("loop/b@1.0.0", "loop/a@1.0.0", "base_model", "finetune"),
                             ("loop/a@1.0.0", "loop/b@1.0.0", "base_model", "finetune")}  # no self-loop
    assert not graph["truncated"]
