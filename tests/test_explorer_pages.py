"""The explorer's pages and their /api twins over a real anvil and the local store."""

from __future__ import annotations

import re

from tests._explorer_fixtures import index_now, registry_data, web  # noqa: F401


def test_catalog_lists_models_with_filters(web):  # noqa: F811
    page = web.get("/")
    assert page.status_code == 200
    assert "acme/digits" in page.text and "acme/digits-small" in page.text
    api = web.get("/api/models").json()
    assert [m["name"] for m in api["models"]] == ["acme/digits", "acme/digits-small"]
    assert api["models"][0]["latest"] == "1.1.0" and api["models"][0]["ops"] == ["Gemm", "Relu"]
    assert [m["name"] for m in web.get("/api/models", params={"q": "small"}).json()["models"]] == ["acme/digits-small"]
    assert web.get("/api/models", params={"op": "Conv"}).json()["total"] == 0
    assert web.get("/api/models", params={"op": "Gemm,Relu", "task": "classification"}).json()["total"] == 2
    assert web.get("/api/models", params={"max_size": "1B"}).json()["total"] == 0
    assert web.get("/api/models", params={"min_size": "abc"}).status_code == 400
    assert 'id="index-status"' in page.text and "up to date" in page.text


def test_model_page_shows_releases_parents_and_revocations(web, registry_data):  # noqa: F811
    d = registry_data.deployed
    d.client.revoke(registry_data.base.result.record.id, "calibration set leaked", d.publisher)
    index_now(d)
    page = web.get("/models/acme/digits")
    assert page.status_code == 200
    assert "REVOKED" in page.text and "calibration set leaked" in page.text
    data = web.get("/api/models/acme/digits").json()
    assert [r["version"] for r in data["releases"]] == ["1.1.0", "1.0.0"]
    assert data["releases"][1]["revoked"] and data["revocations"][0]["reason"] == "calibration set leaked"
    assert data["releases"][0]["parent_ref"] == "acme/digits@1.0.0"


def test_release_page_runs_the_nine_checks_and_caches_by_digest(web, registry_data):  # noqa: F811
    page = web.get("/models/acme/digits/1.1.0")
    assert page.status_code == 200
    assert "VERIFIED" in page.text
    for check in ("resolve", "not_revoked", "publisher_authorised", "signature", "sha256", "cid", "provenance",
                  "onnx", "policy"):
        assert f'id="check-{check}"' in page.text
    data = web.get("/api/models/acme/digits/1.1.0").json()
    assert data["verification"]["state"] == "verified" and data["verification"]["cached"] is True
    assert [s["name"] for s in data["provenance"]["steps"]] == ["structured_prune", "quantize"]
    first = data["provenance"]["steps"][0]["metrics"][0]
    assert (first["metric"], first["before"], first["after"], round(first["delta"], 6)) == ("accuracy", 0.97, 0.95,
                                                                                             -0.02)
    assert data["children"][0]["ref"] == "acme/digits-small@0.1.0"
    assert web.explorer.verifications.runs == 1  # the second view used the cache


def test_a_revocation_changes_the_cached_verdict(web, registry_data):  # noqa: F811
    assert web.get("/api/models/acme/digits/1.1.0").json()["verification"]["state"] == "verified"
    d = registry_data.deployed
    d.client.revoke(registry_data.base.result.record.id, "parent withdrawn", d.publisher)  # an ancestor
    data = web.get("/api/models/acme/digits/1.1.0").json()
    assert data["verification"]["state"] == "revoked" and not data["verification"]["cached"]
    assert "parent withdrawn" in web.get("/models/acme/digits/1.1.0").text


def test_store_down_shows_the_record_with_verification_unreachable(web, registry_data, monkeypatch):  # noqa: F811
    from registry.errors import UnreachableError

    store = web.explorer.store

    def down(*args, **kwargs):
        raise UnreachableError("IPFS node at http://127.0.0.1:9 did not answer")

    monkeypatch.setattr(store, "_fetch_block", down)
    page = web.get("/models/acme/digits-small/0.1.0")
    assert page.status_code == 200
    assert "UNREACHABLE" in page.text
    assert registry_data.small.result.record.artifact_sha256.hex() in page.text  # the record is shown
    data = web.get("/api/models/acme/digits-small/0.1.0").json()
    assert data["verification"]["state"] == "unreachable" and data["record_source"] == "chain"
    monkeypatch.undo()
    assert web.get("/api/models/acme/digits-small/0.1.0").json()["verification"]["state"] == "verified"


def test_unknown_things_are_404_pages(web):  # noqa: F811
    for url in ("/models/acme/digits/9.9.9", "/models/acme/nope", "/models/acme/digits/production",
                "/models/BAD NAME/x", "/no/such/page", "/models/acme/digits/1.0.0/plots/bafkqaaa"):
        page = web.get(url)
        assert page.status_code == 404, url
        assert "Not found" in page.text and "Traceback" not in page.text
    api = web.get("/api/models/acme/digits/9.9.9")
    assert api.status_code == 404 and "9.9.9" in api.json()["error"]


def test_latest_redirects_to_the_version(web):  # noqa: F811
    page = web.get("/models/acme/digits/latest", follow_redirects=False)
    assert page.status_code == 302 and page.headers["location"] == "/models/acme/digits/1.1.0"
    api = web.get("/api/models/acme/digits/latest", follow_redirects=False)
    assert api.status_code == 307 and api.headers["location"] == "/api/models/acme/digits/1.1.0"


def test_lineage_is_an_svg_with_links_and_revoked_nodes(web, registry_data):  # noqa: F811
    d = registry_data.deployed
    d.client.revoke(registry_data.child.result.record.id, "bad quantization", d.publisher)
    index_now(d)
    page = web.get("/models/acme/digits/1.0.0/lineage")
    assert page.status_code == 200
    svg = re.search(r"<svg.*?</svg>", page.text, re.S).group(0)
    assert 'href="/models/acme/digits-small/0.1.0"' in svg and 'href="/models/acme/digits/1.1.0"' in svg
    assert "REVOKED 1.1.0" in svg
    graph = web.get("/api/models/acme/digits/1.0.0/lineage").json()["graph"]
    assert {n["ref"] for n in graph["nodes"]} == {"acme/digits@1.0.0", "acme/digits@1.1.0", "acme/digits-small@0.1.0"}
    assert len(graph["edges"]) == 2
    standalone = web.get("/models/acme/digits/1.0.0/lineage.svg")
    assert standalone.headers["content-type"].startswith("image/svg+xml") and "<svg" in standalone.text


def test_diff_page_side_by_side(web):  # noqa: F811
    page = web.get("/diff", params={"a": "acme/digits@1.0.0", "b": "acme/digits@1.1.0"})
    assert page.status_code == 200
    assert "quantize" in page.text
    data = web.get("/api/diff", params={"a": "acme/digits@1.0.0", "b": "acme/digits@1.1.0"}).json()["diff"]
    assert data["tensors"]["counts"]["changed"] == 2  # W and B: same shapes, other values
    assert data["provenance"]["steps"]["added"] == ["quantize"]
    assert {m["metric"]: round(m["delta"], 4) for m in data["provenance"]["metrics"]} == {"accuracy": -0.01}
    assert web.get("/diff", params={"a": "acme/digits@1.0.0", "b": "acme/digits@7.0.0"}).status_code == 404
    assert web.get("/diff", params={"a": "/etc/passwd", "b": "acme/digits@1.0.0"}).status_code == 400


def test_car_download_is_a_car_of_the_artifact(web, registry_data):  # noqa: F811
    import io

    from registry.content.car import read_car
    from registry.content.cids import cid_bytes_v1

    response = web.get("/models/acme/digits/1.1.0/artifact.car")
    assert response.status_code == 200 and response.headers["content-type"] == "application/vnd.ipld.car"
    roots, blocks = read_car(io.BytesIO(response.content))
    assert cid_bytes_v1(roots[0]) == registry_data.child.result.record.artifact_cid
    assert len(list(blocks)) >= 1
    assert web.get("/models/acme/digits/1.1.0/secrets.car").status_code == 404


def test_every_response_forbids_scripts_and_writes(web):  # noqa: F811
    page = web.get("/")
    assert "script-src" not in page.headers["content-security-policy"]  # default-src 'none' covers scripts
    assert page.headers["content-security-policy"].startswith("default-src 'none'")
    assert page.headers["x-content-type-options"] == "nosniff"
    assert web.post("/").status_code == 405
    assert "<script" not in page.text


def test_an_index_behind_the_chain_says_how_far(web, registry_data):  # noqa: F811
    for _ in range(7):
        registry_data.deployed.rpc("evm_mine")
    web.explorer._head = (0.0, None, None)  # drop the one-second head cache
    page = web.get("/")
    assert re.search(r"The index is 7 blocks behind the chain", page.text)
    assert web.get("/api/status").json()["behind"] == 7


def test_a_chain_that_is_down_leaves_the_index_pages_and_marks_verification_unreachable(registry_data, monkeypatch):  # noqa: F811
    import socket

    from starlette.testclient import TestClient

    from registry.config import load_settings
    from registry.explorer.app import create_app
    from registry.explorer.state import Explorer

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        monkeypatch.setenv("REGISTRY_RPC_URL", f"http://127.0.0.1:{s.getsockname()[1]}")
        explorer = Explorer(load_settings())
        with TestClient(create_app(explorer)) as web:
            catalog = web.get("/")
            assert catalog.status_code == 200 and "The chain does not answer" in catalog.text
            assert "acme/digits" in catalog.text
            page = web.get("/models/acme/digits/1.1.0")
            assert page.status_code == 200 and "UNREACHABLE" in page.text and "index copy, not verified" in page.text
            data = web.get("/api/models/acme/digits/1.1.0").json()
            assert data["record_source"] == "index" and data["verification"]["state"] == "unreachable"
            assert web.get("/models/acme/digits/7.7.7").status_code == 404
            explorer.sync_once()  # the follower records the failure instead of dying
            assert explorer.follower.last_error


def test_catalog_cache_follows_every_index_commit(web, registry_data, tmp_path):  # noqa: F811
    from tests._verify_fixtures import publish_tiny

    assert web.get("/api/models", params={"q": "acme"}).json()["total"] == 2
    publish_tiny(registry_data.deployed, tmp_path, "acme/third", "1.0.0", seed=9)
    index_now(registry_data.deployed)
    assert web.get("/api/models", params={"q": "acme"}).json()["total"] == 3
    registry_data.deployed.client.revoke(registry_data.small.result.record.id, "gone", registry_data.deployed.publisher)
    index_now(registry_data.deployed)
    small = next(m for m in web.get("/api/models", params={"q": "acme"}).json()["models"]
                 if m["name"] == "acme/digits-small")
    assert small["all_revoked"] and small["latest"] is None


def test_latest_is_resolved_on_chain_even_when_the_index_is_behind(web, registry_data, tmp_path):  # noqa: F811
    from tests._verify_fixtures import publish_tiny

    publish_tiny(registry_data.deployed, tmp_path, "acme/digits", "2.0.0", seed=11)  # not indexed yet
    page = web.get("/models/acme/digits/latest", follow_redirects=False)
    assert page.headers["location"] == "/models/acme/digits/2.0.0"
    release = web.get("/models/acme/digits/2.0.0")  # unknown to the index, known to the chain
    assert release.status_code == 200 and "VERIFIED" in release.text


def test_a_revoked_ancestor_is_unmistakable_on_descendants(web, registry_data):  # noqa: F811
    """Revoking acme/digits@1.0.0 makes 1.1.0 and acme/digits-small@0.1.0 (another name) unloadable."""
    d = registry_data.deployed
    d.client.revoke(registry_data.base.result.record.id, "poisoned base", d.publisher)
    index_now(d)
    catalog = {m["name"]: m for m in web.get("/api/models").json()["models"]}
    assert catalog["acme/digits-small"]["latest_revoked_ancestor"] == "acme/digits@1.0.0"
    assert catalog["acme/digits"]["latest_revoked_ancestor"] == "acme/digits@1.0.0"
    assert "ANCESTOR REVOKED" in web.get("/").text
    model = web.get("/api/models/acme/digits").json()
    assert [(r["version"], r["revoked_ancestor"]) for r in model["releases"]] == [("1.1.0", "acme/digits@1.0.0"),
                                                                                  ("1.0.0", None)]
    page = web.get("/models/acme/digits-small/0.1.0")
    assert "ANCESTOR REVOKED" in page.text and "poisoned base" in page.text  # the verifier's reason too
    assert web.get("/api/models/acme/digits-small/0.1.0").json()["verification"]["state"] == "revoked"


def test_a_revocation_the_index_has_not_seen_yet_shows_from_the_chain(web, registry_data):  # noqa: F811
    d = registry_data.deployed
    d.client.revoke(registry_data.child.result.record.id, "seen on chain first", d.publisher)  # no re-index
    page = web.get("/models/acme/digits/1.1.0")
    assert page.status_code == 200 and 'id="revoked-banner"' in page.text and "seen on chain first" in page.text


def test_a_release_whose_provenance_is_nowhere_still_renders(web, registry_data):  # noqa: F811
    from registry.config import load_settings
    from registry.content.stores import open_store
    from registry.index import connect, index_path

    conn = connect(index_path(load_settings()))
    conn.execute("DELETE FROM provenance_facts")
    conn.close()
    open_store(load_settings()).block_path(registry_data.small.result.record.provenance_cid).unlink()
    page = web.get("/models/acme/digits-small/0.1.0")
    assert page.status_code == 200 and "unavailable" in page.text
    assert web.get("/api/models/acme/digits-small/0.1.0").json()["verification"]["state"] == "unreachable"
