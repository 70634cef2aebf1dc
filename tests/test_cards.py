"""Model cards: publish pins the card and signs its digest; verify hashes the card (given, beside
the artifact, or from the store) and a changed card fails like changed provenance (exit 13)."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from registry.release import MAX_CARD_BYTES
from registry.verify import verify
from registry.verify.card_check import card_path_beside

from tests._verify_fixtures import publish_tiny, tiny_onnx

CARD = b"""---
license: apache-2.0
tags: [onnx, int8]
base_model: acme/tiny-fp32
base_model_relation: quantized
---
# acme/tiny

A tiny Gemm+Relu model for tests.
"""


def test_publish_pins_the_card_and_signs_its_digest(deployed, tmp_path: Path) -> None:
    from registry.content.stores import open_store

    pub = publish_tiny(deployed, tmp_path, card=CARD)
    record = pub.result.record
    assert record.has_card and record.card_sha256 == hashlib.sha256(CARD).digest()
    assert pub.result.manifest.release.card_cid == record.card_cid
    doc = json.loads(pub.manifest_path.read_text())
    assert doc["schema"] == "registry.release-manifest/v2"
    assert doc["release"]["cardSha256"] == "0x" + hashlib.sha256(CARD).hexdigest()
    assert open_store(pub.settings).get_bytes(record.card_cid) == CARD
    assert pub.result.to_json()["card_sha256"] == hashlib.sha256(CARD).hexdigest()

    report = verify(pub.ref, file=pub.model, settings=pub.settings)
    assert report.ok, report.to_json()
    check = report.check("provenance")
    assert "model card matches" in check.detail and check.evidence["card_source"].startswith("store")


def test_a_changed_card_fails_verification(deployed, tmp_path: Path) -> None:
    pub = publish_tiny(deployed, tmp_path, card=CARD)
    changed = CARD.replace(b"apache-2.0", b"mit")
    report = verify(pub.ref, file=pub.model, settings=pub.settings, card=changed)
    assert report.exit_code == 13
    assert "model card SHA-256 does not match" in report.check("provenance").detail
    # A card travelling beside the artifact is the one checked.
    beside = card_path_beside(pub.model, pub.name, pub.version)
    beside.write_bytes(changed)
    assert verify(pub.ref, file=pub.model, settings=pub.settings).exit_code == 13
    beside.write_bytes(CARD)
    assert verify(pub.ref, file=pub.model, settings=pub.settings).ok
    # Offline, from the manifest: the same rule.
    offline = verify(pub.ref, file=pub.model, manifest=pub.manifest_path, trust=[deployed.publisher.address],
                     settings=pub.settings, offline=True, card=changed)
    assert offline.exit_code == 13
    assert verify(pub.ref, file=pub.model, manifest=pub.manifest_path, trust=[deployed.publisher.address],
                  settings=pub.settings, offline=True).ok


def test_a_release_without_a_card_ignores_card_files(deployed, tmp_path: Path) -> None:
    pub = publish_tiny(deployed, tmp_path)
    assert not pub.result.record.has_card
    report = verify(pub.ref, file=pub.model, settings=pub.settings, card=b"anything")
    assert report.ok and "card" not in report.check("provenance").detail


def test_oversized_empty_or_odd_cards_are_refused_before_any_transaction(deployed, tmp_path: Path) -> None:
    from registry.errors import InputError
    from registry.publish import publish_model

    model = tmp_path / "m.onnx"
    model.write_bytes(tiny_onnx(5))
    # ... and so are cards every reader would refuse (registry.card's limits): an anchor bomb, a
    # Python tag, a relation without a base model, bytes that are not UTF-8
    unreadable = (b"---\na: &x [1]\nb: *x\n---\n", b"---\na: !!python/object:os.system x\n---\n",
                  b"---\nbase_model_relation: quantized\n---\n", b"\xff\xfe# card")
    for card in (b"x" * (MAX_CARD_BYTES + 1), b"", tmp_path, tmp_path / "missing.md", *unreadable):
        with pytest.raises(InputError):
            publish_model(model, "acme/cards", "1.0.0", signer=deployed.publisher, client=deployed.client, card=card)
    assert deployed.client.release_count("acme/cards") == 0


def test_cli_publish_and_verify_with_a_card(deployed, tmp_path: Path) -> None:
    model = tmp_path / "model.onnx"
    model.write_bytes(tiny_onnx(6))
    card = tmp_path / "CARD.md"
    card.write_bytes(CARD)
    env = dict(os.environ)

    def run(*args: object) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-c", "from registry.cli import main; main()", *map(str, args)],
                              capture_output=True, text=True, env=env, timeout=120)

    published = run("publish", model, "--name", "acme/carded", "--version", "1.0.0", "--card", card, "--json")
    assert published.returncode == 0, published.stderr
    assert json.loads(published.stdout)["card_sha256"] == hashlib.sha256(CARD).hexdigest()
    assert json.loads(published.stdout)["namespace_claimed"] is True
    ok = run("verify", "acme/carded@1.0.0", "--file", model, "--card", card)
    assert ok.returncode == 0, ok.stderr
    card.write_bytes(CARD + b"\nedited after publishing\n")
    changed = run("verify", "acme/carded@1.0.0", "--file", model, "--card", card)
    assert changed.returncode == 13 and "model card" in changed.stderr
