"""pull: only verified bytes ever reach the destination; any failure leaves it untouched."""

from __future__ import annotations

import pytest

from registry.policy import Policy
from registry.pull import pull
from registry.verify import VerificationFailed

from tests._verify_fixtures import publish_tiny


def _corrupt_store_blocks(home):
    blocks = [p for p in (home / "blocks").rglob("*") if p.is_file() and not p.name.startswith(".")]
    assert blocks
    for block in blocks:
        data = bytearray(block.read_bytes())
        if len(data) > 100:
            data[50] ^= 0xFF
            block.write_bytes(data)


def test_pull_installs_model_manifest_provenance(deployed, tmp_path):
    pub = publish_tiny(deployed, tmp_path)
    dest = tmp_path / "device"
    result = pull(pub.ref, dest, settings=pub.settings, client=deployed.client)
    assert result.report.ok
    assert result.model_path.read_bytes() == pub.model.read_bytes()
    assert result.manifest_path.read_bytes() == pub.manifest_path.read_bytes()
    assert sorted(p.name for p in dest.iterdir()) == sorted(
        [result.model_path.name, result.manifest_path.name, result.provenance_path.name])


def test_pull_with_corrupted_store_leaves_nothing(deployed, tmp_path):
    pub = publish_tiny(deployed, tmp_path)
    _corrupt_store_blocks(deployed.home)
    dest = tmp_path / "device"
    dest.mkdir()
    with pytest.raises(VerificationFailed) as info:
        pull(pub.ref, dest, settings=pub.settings, client=deployed.client)
    assert info.value.exit_code == 10
    assert list(dest.iterdir()) == []


def test_pull_of_revoked_release_leaves_nothing(deployed, tmp_path):
    pub = publish_tiny(deployed, tmp_path)
    deployed.client.revoke(pub.result.record.id, "recalled", deployed.publisher)
    dest = tmp_path / "device"
    with pytest.raises(VerificationFailed) as info:
        pull(pub.ref, dest, settings=pub.settings, client=deployed.client)
    assert info.value.exit_code == 12
    assert not dest.exists() or list(dest.iterdir()) == []


def test_pull_refuses_rollback(deployed, tmp_path):
    old = publish_tiny(deployed, tmp_path, version="1.0.0", seed=1)
    new = publish_tiny(deployed, tmp_path, version="1.1.0", seed=2)
    dest = tmp_path / "device"
    pol = Policy(refuse_rollback=True)
    pull(new.ref, dest, settings=new.settings, client=deployed.client, policy=pol)
    before = sorted(p.name for p in dest.iterdir())
    with pytest.raises(VerificationFailed) as info:
        pull(old.ref, dest, settings=old.settings, client=deployed.client, policy=pol)
    assert info.value.exit_code == 14
    assert "rollback" in info.value.report.check("policy").detail
    assert sorted(p.name for p in dest.iterdir()) == before
    # latest resolves to 1.1.0, which is what is installed: fine
    assert pull(f"{new.name}@latest", dest, settings=new.settings, client=deployed.client, policy=pol).report.ok


def test_pull_by_digest(deployed, tmp_path):
    pub = publish_tiny(deployed, tmp_path)
    result = pull("sha256:" + pub.result.artifact.sha256.hex(), tmp_path / "d", settings=pub.settings,
                  client=deployed.client)
    assert result.report.release.ref == pub.ref


def test_pull_never_follows_a_symlink_planted_at_the_model_name(deployed, tmp_path):
    """A link planted where the model will land must not redirect the manifest or provenance elsewhere."""
    pub = publish_tiny(deployed, tmp_path)
    dest = tmp_path / "device"
    dest.mkdir()
    outside = tmp_path / "outside"
    outside.mkdir()
    (dest / "acme+tiny@1.0.0.onnx").symlink_to(outside / "model.onnx")
    result = pull(pub.ref, dest, settings=pub.settings, client=deployed.client)
    assert list(outside.iterdir()) == []
    assert result.provenance_path.parent == dest and result.manifest_path.parent == dest
    assert not result.model_path.is_symlink()
    assert result.model_path.read_bytes() == pub.model.read_bytes()
