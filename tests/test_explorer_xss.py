"""Hostile text in every user-controlled field is shown as text, never as markup.

Names and versions cannot hold markup on chain (the contract's grammar), so they are attacked
through the URL and the forms, which the pages echo. Revocation reasons, provenance strings, tensor
names and card fields reach the pages from the chain and the store.
"""

from __future__ import annotations

import hashlib
import re

import numpy as np
import pytest

from tests._explorer_fixtures import index_now
from tests._verify_fixtures import publish_tiny

PAYLOAD = "<script>alert(1)</script><img src=x onerror=alert(2)>\"'&"
ESCAPED = "&lt;script&gt;alert(1)&lt;/script&gt;"


def hostile_onnx() -> bytes:
    """A valid model whose initializer and graph names are the payload."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    w = numpy_helper.from_array(np.ones((4, 2), dtype=np.float32), PAYLOAD)
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 2])
    graph = helper.make_graph([helper.make_node("MatMul", ["x", PAYLOAD], ["y"])], PAYLOAD, [x], [y], [w])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name=PAYLOAD)
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model.SerializeToString()


def _assert_text_only(html: str, where: str) -> None:
    assert "<script" not in html.lower(), f"{where}: a <script> element reached the page"
    assert "onerror=" not in re.sub(r"&[a-z#0-9]+;", "", html.replace("&lt;img src=x onerror=", "")), where


@pytest.fixture
def hostile(deployed, tmp_path):
    from registry.config import load_settings
    from registry.provenance import statement, write_provenance
    from registry.publish import publish_model

    provenance = {
        "base_model": {"sha256": "00" * 32, "ref": PAYLOAD, "format": PAYLOAD},
        "recipe": {"task": PAYLOAD},
        "steps": [{"name": PAYLOAD, "params": {PAYLOAD: PAYLOAD},
                   "metrics_before": {PAYLOAD: 1.0}, "metrics_after": {PAYLOAD: 2.0}}],
        "tools": {PAYLOAD: PAYLOAD},
        "data": {"evaluation_sha256": PAYLOAD},
        "metrics": {PAYLOAD: 0.5},
    }
    benign = publish_tiny(deployed, tmp_path, "evil/model", "1.0.0", seed=5)
    folder = tmp_path / "hostile"
    folder.mkdir()
    model = folder / "model.onnx"
    model.write_bytes(hostile_onnx())
    prov = folder / "provenance.json"
    write_provenance(statement(hashlib.sha256(model.read_bytes()).hexdigest(), "model.onnx", provenance), prov)
    publish_model(model, "evil/model", "1.1.0", provenance_path=prov, parent="evil/model@1.0.0",
                  settings=load_settings(), signer=deployed.publisher, client=deployed.client)
    deployed.client.revoke(benign.result.record.id, PAYLOAD, deployed.publisher)
    index_now(deployed)
    return deployed


@pytest.fixture
def client(hostile):
    from starlette.testclient import TestClient

    from registry.config import load_settings
    from registry.explorer.app import create_app
    from registry.explorer.state import Explorer

    with TestClient(create_app(Explorer(load_settings(), client=hostile.client))) as web:
        yield web


def test_hostile_chain_and_store_text_is_escaped_on_every_page(client):
    pages = {
        "catalog": "/",
        "catalog search": "/?q=" + PAYLOAD,
        "model": "/models/evil/model",
        "revoked release": "/models/evil/model/1.0.0",
        "hostile release": "/models/evil/model/1.1.0",
        "lineage": "/models/evil/model/1.1.0/lineage",
        "diff": "/diff?a=evil/model@1.0.0&b=evil/model@1.1.0",
    }
    for where, url in pages.items():
        response = client.get(url)
        assert response.status_code == 200, where
        _assert_text_only(response.text, where)
    release = client.get("/models/evil/model/1.1.0").text
    assert release.count(ESCAPED) >= 5  # step name, params, metrics, tools, base model, data...
    assert ESCAPED in client.get("/models/evil/model").text  # the revocation reason
    assert ESCAPED in client.get("/models/evil/model/1.0.0").text
    assert ESCAPED in client.get("/diff?a=evil/model@1.0.0&b=evil/model@1.1.0").text  # tensor name
    assert ESCAPED in client.get("/?q=" + PAYLOAD).text  # the echoed search box
    catalog = client.get("/").text
    assert ESCAPED in catalog  # the task (from provenance) in the table and the facet list
    svg = client.get("/models/evil/model/1.1.0/lineage.svg").text
    _assert_text_only(svg, "standalone svg")


def test_hostile_urls_and_forms_are_escaped(client):
    for url in ("/models/evil/" + PAYLOAD, "/models/evil/model/" + PAYLOAD, "/diff?a=" + PAYLOAD + "&b=x@1.0.0",
                "/?min_size=" + PAYLOAD, "/models/" + PAYLOAD + "/x/1.0.0/lineage"):
        response = client.get(url)
        assert response.status_code in (400, 404), url
        _assert_text_only(response.text, url)
        assert "Traceback" not in response.text


def test_the_json_api_carries_the_text_verbatim(client):
    data = client.get("/api/models/evil/model/1.1.0").json()
    assert data["provenance"]["steps"][0]["name"] == PAYLOAD
    assert client.get("/api/models/evil/model/1.0.0").json()["revocation_reason"] == PAYLOAD
    assert client.get("/api/models/evil/model/1.1.0").headers["content-type"] == "application/json"


def test_hostile_card_fields_are_text(hostile, client, tmp_path):
    """A card published for real (`registry publish --card`): pinned, its digest signed and carried in
    ReleasePublished, read back by the index from the store. Every field and the body hold the payload."""
    import yaml

    front = yaml.safe_dump({"license": PAYLOAD, "tags": [PAYLOAD], "base_model": PAYLOAD,
                            "base_model_relation": "quantized", "pipeline_tag": PAYLOAD, "datasets": [PAYLOAD],
                            "model-index": [{"name": PAYLOAD, "results": [{"task": {"type": PAYLOAD},
                                             "dataset": {"name": PAYLOAD},
                                             "metrics": [{"type": PAYLOAD, "value": PAYLOAD}]}]}]})
    card = (f"---\n{front}---\n# {PAYLOAD}\n\n{PAYLOAD}\n\n[click](javascript:alert(3))\n\n"
            f"![x](https://tracker.example/p.png)\n\n<iframe src=x></iframe>\n").encode()
    pub = publish_tiny(hostile, tmp_path, "evil/carded", "1.0.0", seed=9, card=card)
    assert pub.result.record.has_card
    index_now(hostile)
    for url in ("/models/evil/carded", "/models/evil/carded/1.0.0", "/", "/models/evil/carded/1.0.0/lineage",
                "/models/evil", "/?q=" + PAYLOAD):
        html = client.get(url).text
        _assert_text_only(html, url)
        assert "<iframe" not in html and 'href="javascript:' not in html, url
        assert 'src="https://tracker.example' not in html, url
    api = client.get("/api/models/evil/carded/1.0.0").json()
    assert api["card"]["status"] == "ok" and api["card"]["license"] == PAYLOAD
    assert api["verification"]["state"] == "verified"  # the card is part of check 7, and it matches
    page = client.get("/models/evil/carded/1.0.0").text
    assert page.count(ESCAPED) >= 6  # title, body, license, tags, base model, task, metric...
    assert ESCAPED in client.get("/models/evil/carded").text
    lineage = client.get("/models/evil/carded/1.0.0/lineage.svg").text  # the card's base_model is a node
    _assert_text_only(lineage, "lineage svg")
    assert "&lt;script&gt;" in lineage
