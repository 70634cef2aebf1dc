"""`registry show` renders the provenance document, checked against the digest on chain."""

from __future__ import annotations

import json
import sys

import pytest

from tests._verify_fixtures import publish_tiny, published  # noqa: F401


def _show(args: list[str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> tuple[int, str, str]:
    from registry.cli import main

    monkeypatch.setattr(sys, "argv", ["registry", "show", *args])
    try:
        main()
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_show_renders_bound_provenance(published, capsys, monkeypatch) -> None:  # noqa: F811
    code, out, err = _show([published.ref, "--json"], capsys, monkeypatch)
    assert code == 0, err
    section = json.loads(out)["provenance"]
    assert section["status"] == "bound"
    assert section["document"]["predicate"]["metrics"] == {"accuracy": 0.95}

    code, _, err = _show([published.ref], capsys, monkeypatch)
    assert code == 0
    assert "provenance" in err and "bound" in err and "accuracy" in err


def test_show_reports_a_provenance_block_altered_in_the_store(published, capsys, monkeypatch) -> None:  # noqa: F811
    """The store verifies blocks against their CIDs: altered provenance bytes are never rendered as bound."""
    from registry.content.stores import open_store

    record = published.deployed.client.get(published.name, published.version)
    block = open_store(published.settings).block_path(record.provenance_cid)
    block.write_bytes(block.read_bytes().replace(b"0.95", b"0.99"))

    code, out, err = _show([published.ref, "--json"], capsys, monkeypatch)
    assert code == 0, err
    section = json.loads(out)["provenance"]
    assert section["status"] == "unavailable"
    assert section["document"] is None
