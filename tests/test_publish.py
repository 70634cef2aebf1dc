"""publish: one pass, safe re-runs after interruptions at every step, clear refusals."""

from __future__ import annotations

import json

import pytest

from registry.errors import ChainError, InputError, RevokedError, UnreachableError
from registry.publish import publish_model

from tests._verify_fixtures import publish_tiny, tiny_onnx


def test_publish_result_and_manifest(deployed, tmp_path):
    model = tmp_path / "m.onnx"
    model.write_bytes(tiny_onnx(3))
    seen = []
    result = publish_model(model, "acme/m", "0.1.0", signer=deployed.publisher, client=deployed.client,
                           progress=seen.append)
    assert sum(seen) == model.stat().st_size
    assert result.provenance_generated and not result.already_published
    doc = json.loads(result.manifest_path.read_text())
    assert doc["release"]["artifactSha256"] == "0x" + result.artifact.sha256.hex()
    assert doc["publisher"] == deployed.publisher.address
    assert doc["chainId"] == deployed.chain_id and doc["transaction"].startswith("0x")
    record = deployed.client.get("acme/m", "0.1.0")
    assert record.artifact_size == model.stat().st_size


class _FailingClient:
    """Stands in for a node that goes away just before the transaction."""

    def __init__(self, real):
        self.real = real

    def __getattr__(self, name):
        if name == "publish":
            def boom(*args, **kwargs):
                raise UnreachableError("RPC node went away")
            return boom
        return getattr(self.real, name)


def test_interrupted_before_the_transaction_then_rerun(deployed, tmp_path):
    model = tmp_path / "m.onnx"
    model.write_bytes(tiny_onnx(4))
    with pytest.raises(UnreachableError):
        publish_model(model, "acme/m", "1.0.0", signer=deployed.publisher, client=_FailingClient(deployed.client))
    assert not list(tmp_path.glob("*.release.json"))  # no half record
    result = publish_model(model, "acme/m", "1.0.0", signer=deployed.publisher, client=deployed.client)
    assert not result.already_published
    assert deployed.client.release_count("acme/m") == 1


def test_interrupted_after_the_transaction_then_rerun(deployed, tmp_path):
    pub = publish_tiny(deployed, tmp_path)
    original = pub.manifest_path.read_bytes()
    pub.manifest_path.write_bytes(original[:40])  # a torn manifest from a crash
    again = publish_model(pub.model, pub.name, pub.version, provenance_path=pub.model.parent / "provenance.json",
                          signer=deployed.publisher, client=deployed.client)
    assert again.already_published
    assert pub.manifest_path.read_bytes() == original
    assert deployed.client.release_count(pub.name) == 1


def test_other_publisher_cannot_take_over_a_version(deployed, tmp_path):
    pub = publish_tiny(deployed, tmp_path)
    with pytest.raises(ChainError):
        publish_model(pub.model, pub.name, pub.version, provenance_path=pub.model.parent / "provenance.json",
                      signer=deployed.accounts[5], client=deployed.client)


def test_parent_must_exist_and_be_active(deployed, tmp_path):
    parent = publish_tiny(deployed, tmp_path, version="1.0.0")
    model = tmp_path / "child.onnx"
    model.write_bytes(tiny_onnx(9))
    with pytest.raises(ChainError):
        publish_model(model, parent.name, "1.1.0", parent=f"{parent.name}@9.9.9", signer=deployed.publisher,
                      client=deployed.client)
    deployed.client.revoke(parent.result.record.id, "bad", deployed.publisher)
    with pytest.raises(RevokedError):
        publish_model(model, parent.name, "1.1.0", parent=parent.ref, signer=deployed.publisher,
                      client=deployed.client)


@pytest.mark.parametrize("name,version", [("Acme/M", "1.0.0"), ("acme", "1.0.0"), ("acme/m", "1.0"),
                                          ("acme/m", "v1.0.0")])
def test_bad_labels(deployed, tmp_path, name, version):
    model = tmp_path / "m.onnx"
    model.write_bytes(tiny_onnx())
    with pytest.raises(InputError):
        publish_model(model, name, version, signer=deployed.publisher, client=deployed.client)


def test_missing_and_empty_files(deployed, tmp_path):
    with pytest.raises(InputError):
        publish_model(tmp_path / "none.onnx", "acme/m", "1.0.0", signer=deployed.publisher, client=deployed.client)
    empty = tmp_path / "empty.onnx"
    empty.write_bytes(b"")
    with pytest.raises(InputError):
        publish_model(empty, "acme/m", "1.0.0", signer=deployed.publisher, client=deployed.client)
