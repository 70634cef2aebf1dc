"""Aliases, namespaces and D4 in the explorer: NAME@ALIAS redirects where the chain resolves it (even
before the index has seen a move), never to a release that stopped counting; alias and namespace
pages; a namespace changing hands changes a cached verdict."""

from __future__ import annotations

import socket

from tests._explorer_fixtures import index_now, registry_data, web  # noqa: F401


def test_an_alias_redirects_where_the_chain_resolves_it(web, registry_data):  # noqa: F811
    d = registry_data.deployed
    d.client.set_alias("acme/digits", "production", registry_data.base.result.record.id, d.publisher)
    page = web.get("/models/acme/digits/production", follow_redirects=False)  # not indexed yet
    assert page.status_code == 302 and page.headers["location"] == "/models/acme/digits/1.0.0"
    api = web.get("/api/models/acme/digits/production", follow_redirects=False)
    assert api.status_code == 307 and api.headers["location"] == "/api/models/acme/digits/1.0.0"
    lineage = web.get("/models/acme/digits/production/lineage", follow_redirects=False)
    assert lineage.headers["location"] == "/models/acme/digits/1.0.0/lineage"
    index_now(d)
    d.client.set_alias("acme/digits", "production", registry_data.child.result.record.id, d.publisher)  # rollforward
    page = web.get("/models/acme/digits/production", follow_redirects=False)
    assert page.headers["location"] == "/models/acme/digits/1.1.0"  # the chain, not the stale index
    assert web.get("/models/acme/digits/nosuchalias").status_code == 404
    assert web.get("/models/acme/digits/Production").status_code == 404  # not an alias, not a version


def test_an_alias_whose_target_was_revoked_is_an_error_never_the_release(web, registry_data):  # noqa: F811
    d = registry_data.deployed
    d.client.set_alias("acme/digits", "production", registry_data.child.result.record.id, d.publisher)
    d.client.revoke(registry_data.child.result.record.id, "int8 drift", d.publisher)
    page = web.get("/models/acme/digits/production", follow_redirects=False)
    assert page.status_code == 409 and "location" not in page.headers
    assert "Resolves to an error" in page.text and "int8 drift" in page.text
    assert 'href="/models/acme/digits/@production"' in page.text
    api = web.get("/api/models/acme/digits/production", follow_redirects=False)
    assert api.status_code == 409 and "int8 drift" in api.json()["error"]
    assert api.json()["page"] == "/api/models/acme/digits/@production"
    index_now(d)
    alias = web.get("/api/models/acme/digits/@production").json()
    assert alias["chain"]["state"] == "refused" and "revoked" in alias["chain"]["message"]
    assert alias["current"]["version"] == "1.1.0" and alias["current"]["revoked"] and not alias["current"]["resolves"]
    html = web.get("/models/acme/digits/@production").text
    assert "RESOLVES TO AN ERROR" in html and "int8 drift" in html
    model = web.get("/models/acme/digits").text
    assert 'id="alias-production"' in model and "(resolves to an error)" in model


def test_an_alias_whose_publisher_was_removed_is_an_error(web, registry_data, tmp_path):  # noqa: F811
    """D4: a release counts only while its publisher may publish the name; so does an alias to it."""
    from tests._verify_fixtures import publish_tiny

    d = registry_data.deployed
    helper = d.accounts[6]
    d.client.add_publisher("acme/digits", helper.address, d.publisher)
    theirs = publish_tiny(d, tmp_path, "acme/digits", "1.2.0", seed=7, signer=helper)
    d.client.set_alias("acme/digits", "canary", theirs.result.record.id, d.publisher)
    assert web.get("/models/acme/digits/canary", follow_redirects=False).headers["location"].endswith("/1.2.0")
    d.client.remove_publisher("acme/digits", helper.address, d.publisher)
    page = web.get("/models/acme/digits/canary", follow_redirects=False)
    assert page.status_code == 409 and "may no longer publish" in page.text
    index_now(d)
    model = web.get("/api/models/acme/digits").json()
    assert {a["alias"]: a["resolves"] for a in model["aliases"]} == {"canary": False}


def test_with_the_chain_down_aliases_resolve_from_the_index_under_the_same_rules(registry_data, monkeypatch):  # noqa: F811
    from starlette.testclient import TestClient

    from registry.config import load_settings
    from registry.explorer.app import create_app
    from registry.explorer.state import Explorer

    d = registry_data.deployed
    d.client.set_alias("acme/digits", "production", registry_data.base.result.record.id, d.publisher)
    d.client.set_alias("acme/digits", "staging", registry_data.child.result.record.id, d.publisher)
    d.client.revoke(registry_data.child.result.record.id, "bad", d.publisher)
    index_now(d)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        monkeypatch.setenv("REGISTRY_RPC_URL", f"http://127.0.0.1:{s.getsockname()[1]}")
        with TestClient(create_app(Explorer(load_settings()))) as web:
            page = web.get("/models/acme/digits/production", follow_redirects=False)
            assert page.status_code == 302 and page.headers["location"] == "/models/acme/digits/1.0.0"
            refused = web.get("/models/acme/digits/staging", follow_redirects=False)
            assert refused.status_code == 409 and "revoked" in refused.text and "does not answer" in refused.text
            alias = web.get("/api/models/acme/digits/@staging").json()
            assert alias["chain"]["state"] == "unreachable" and alias["current"]["version"] == "1.1.0"
            assert web.get("/models/acme/digits/nosuch").status_code == 404


def test_the_namespace_page_lists_owner_history_and_models(web, registry_data):  # noqa: F811
    d = registry_data.deployed
    data = web.get("/api/models/acme").json()
    assert data["owner"] == d.publisher.address and data["pending_owner"] is None
    assert [m["name"] for m in data["models"]] == ["acme/digits", "acme/digits-small"]
    assert [h["kind"] for h in data["history"]] == ["claimed"]
    d.client.propose_namespace_owner("acme", d.accounts[3].address, d.publisher)
    index_now(d)
    page = web.get("/models/acme")
    assert page.status_code == 200 and "pending owner" in page.text and "proposed" in page.text
    assert 'href="/models/acme/digits"' in page.text
    model = web.get("/models/acme/digits").text
    assert 'href="/models/acme"' in model and "transfer to" in model
    for url in ("/models/nobody", "/models/BAD", "/api/models/nobody", "/models/acme/digits/@latest",
                "/models/acme/digits/@Bad"):
        assert web.get(url).status_code == 404, url


def test_a_namespace_changing_hands_changes_a_cached_verdict(web, registry_data):  # noqa: F811
    """The cache re-reads whether the publisher may still publish (D4): a transfer of the namespace
    withdraws the releases the old owner signed, and the page stops saying VERIFIED."""
    d = registry_data.deployed
    url = "/api/models/acme/digits/1.1.0"
    assert web.get(url).json()["verification"]["state"] == "verified"
    assert web.get(url).json()["verification"]["cached"] is True
    d.client.propose_namespace_owner("acme", d.accounts[3].address, d.publisher)
    d.client.accept_namespace_owner("acme", d.accounts[3])
    verdict = web.get(url).json()["verification"]
    assert verdict["state"] == "rejected" and verdict["exit_code"] == 11 and not verdict["cached"]
    failed = [c["name"] for c in verdict["checks"] if c["status"] == "fail"]
    assert failed == ["publisher_authorised"]
