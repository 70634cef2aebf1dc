"""End-to-end: publish on a real anvil, verify online and offline, tamper and watch each check fail."""

from __future__ import annotations

import shutil

import pytest

from registry.verify import CHECK_NAMES, load_verified, verify, VerificationFailed

from tests._verify_fixtures import published, publish_tiny, tiny_onnx  # noqa: F401


def _status(report):
    return {c.name: c.status for c in report.checks}


def test_publish_writes_manifest_and_verify_is_all_green(published):
    assert published.manifest_path.is_file()
    report = verify(published.ref, file=published.model, settings=published.settings)
    assert [c.name for c in report.checks] == list(CHECK_NAMES)
    assert report.ok, report.to_json()
    assert report.exit_code == 0
    st = _status(report)
    assert all(st[n] == "pass" for n in CHECK_NAMES if n != "policy"), st
    assert report.check("signature").evidence["recovered"] == published.deployed.publisher.address


def test_verify_from_store_without_file(published):
    report = verify(published.ref, settings=published.settings)
    assert report.ok, report.to_json()
    assert "store" in report.check("sha256").evidence["source"]


def test_flipped_byte_is_integrity_failure(published, tmp_path):
    bad = tmp_path / "bad.onnx"
    data = bytearray(published.model.read_bytes())
    data[len(data) // 2] ^= 0x01
    bad.write_bytes(data)
    report = verify(published.ref, file=bad, manifest=published.manifest_path, settings=published.settings)
    assert not report.ok
    assert report.exit_code == 10
    assert _status(report)["sha256"] == "fail"
    assert _status(report)["onnx"] == "skip"


def test_load_verified_returns_session(published):
    import numpy as np

    session = load_verified(published.ref, file=published.model, settings=published.settings)
    out = session.run(None, {"x": np.ones((2, 8), np.float32)})[0]
    assert out.shape == (2, 3)


def test_load_verified_raises_with_report(published, tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(published.model.read_bytes() + b"\0")
    with pytest.raises(VerificationFailed) as info:
        load_verified(published.ref, file=bad, manifest=published.manifest_path, settings=published.settings)
    assert info.value.exit_code == 10
    assert info.value.report.check("sha256").status == "fail"


def test_republish_is_idempotent(published):
    from registry.publish import publish_model

    first = published.manifest_path.read_bytes()
    published.manifest_path.unlink()
    again = publish_model(published.model, published.name, published.version,
                          provenance_path=published.model.parent / "provenance.json", settings=published.settings,
                          signer=published.deployed.publisher, client=published.deployed.client)
    assert again.already_published
    assert published.manifest_path.read_bytes() == first
    assert published.deployed.client.release_count(published.name) == 1


def test_latest_and_digest_refs(deployed, tmp_path):
    old = publish_tiny(deployed, tmp_path, version="1.0.0", seed=20)
    new = publish_tiny(deployed, tmp_path, version="1.1.0", seed=21)
    report = verify(f"{new.name}@latest", file=new.model, settings=new.settings)
    assert report.ok and report.release.version == "1.1.0"
    stale = verify(f"{old.name}@latest", file=old.model, manifest=old.manifest_path, settings=old.settings)
    assert stale.exit_code == 3 and "latest is" in stale.check("resolve").detail
    assert stale.check("resolve").evidence == {"manifest": old.ref, "resolved": new.ref}
    assert all(c.status == "skip" and c.detail == "resolve failed" for c in stale.checks[1:])
    by_digest = verify("sha256:" + old.result.artifact.sha256.hex(), file=old.model, settings=old.settings)
    assert by_digest.ok and by_digest.release.version == "1.0.0"


def test_online_resolve_names_its_chain_and_trust_narrows_a_shared_digest(deployed, tmp_path):
    """The same bytes under two names: a digest reference is refused as ambiguous (exit 3) until
    --trust picks one publisher, with or without a manifest; a pass says where the record came from."""
    mine = publish_tiny(deployed, tmp_path, name="acme/shared", seed=30)
    theirs = publish_tiny(deployed, tmp_path / "b", name="other/shared", seed=30, signer=deployed.accounts[1])
    digest = "sha256:" + mine.result.artifact.sha256.hex()
    unknown = verify("acme/shared@9.9.9", file=mine.model, settings=mine.settings)
    assert unknown.check("resolve").status == "fail" and unknown.exit_code == 6
    assert {(c.status, c.detail) for c in unknown.checks[1:]} == {("skip", "resolve failed")}
    ambiguous = verify(digest, file=mine.model, settings=mine.settings)
    assert ambiguous.exit_code == 3 and "acme/shared" in ambiguous.check("resolve").detail
    for manifest in (None, mine.manifest_path):
        report = verify(digest, file=mine.model, manifest=manifest, trust=[deployed.publisher.address],
                        settings=mine.settings)
        assert report.ok and report.release.name == "acme/shared", report.to_json()
        assert report.mode == "online"
        evidence = report.check("resolve").evidence
        assert evidence["source"] == "chain" and evidence["chain_id"] == deployed.chain_id
        assert evidence["contract"].lower() == deployed.address.lower()
        assert evidence["publisher"] == deployed.publisher.address
        assert evidence["release_id"] == "0x" + report.release.id.hex()
        detail = report.check("resolve").detail
        assert "acme/shared@1.0.0" in detail and str(deployed.chain_id) in detail
    # a confirmations rule is read from the chain the reference was resolved on
    deep = tmp_path / "deep.toml"
    deep.write_text("min_confirmations = 1\n")
    deployed.rpc("evm_mine")
    confirmed = verify(mine.ref, file=mine.model, policy=str(deep), settings=mine.settings)
    assert confirmed.ok and confirmed.check("policy").evidence["confirmations"] >= 1, confirmed.to_json()
    other = verify(digest, file=theirs.model, trust=[deployed.accounts[1].address], settings=theirs.settings)
    assert other.ok and other.release.name == "other/shared"


def test_a_release_with_a_card_checks_the_card_beside_the_file_given_or_from_the_store(deployed, tmp_path):
    """The card is part of check 7: the signed card passes from the store, beside the file or given;
    a changed card fails provenance (exit 13); with a failed provenance the card is not what is reported."""
    card = b"---\nlicense: mit\n---\n# tiny\nA model card.\n"
    pub = publish_tiny(deployed, tmp_path, name="acme/carded", seed=31, card=card)
    from_store = verify(pub.ref, settings=pub.settings)
    assert from_store.ok, from_store.to_json()
    evidence = from_store.check("provenance").evidence
    assert evidence["card_source"].startswith("store") and evidence["card_size"] == len(card)
    assert "model card matches" in from_store.check("provenance").detail
    given = verify(pub.ref, file=pub.model, card=card, settings=pub.settings)
    assert given.ok and given.check("provenance").evidence["card_source"] == "memory"
    changed = verify(pub.ref, file=pub.model, card=card + b"\nAlso safe for children.\n", settings=pub.settings)
    assert changed.exit_code == 13 and "card" in changed.check("provenance").detail
    bad_prov = verify(pub.ref, file=pub.model, card=b"changed", provenance=b'{"other": 1}', settings=pub.settings)
    assert bad_prov.exit_code == 13 and "card" not in bad_prov.check("provenance").detail


def test_a_directory_release_gets_the_onnx_check_of_its_tree_with_the_policy(deployed, tmp_path):
    """Check 8 of a directory is the tree's: external data named in the evidence, the policy's op list
    applied to the entry model, and nothing parsed once a file of the tree fails integrity."""
    from registry.config import load_settings
    from registry.publish import publish_model

    from tests._tree_fixtures import onnx_with_external_data

    folder = tmp_path / "model"
    onnx_with_external_data(folder, n=1024, extra={"config.json": b'{"k": 1}'})
    pub = publish_model(folder, "acme/treeck", "1.0.0", settings=load_settings(), signer=deployed.publisher,
                        client=deployed.client, manifest_dir=folder.parent)
    ref = pub.record.ref
    report = verify(ref, file=folder, manifest=pub.manifest_path, client=deployed.client)
    assert report.ok and report.check("onnx").status == "pass", report.to_json()
    assert report.check("onnx").evidence["external_data"]["model.onnx"][0]["path"] == "model.onnx.data"
    policy = tmp_path / "ops.toml"
    policy.write_text('allowed_ops = ["Relu"]\n')
    narrow = verify(ref, file=folder, manifest=pub.manifest_path, client=deployed.client, policy=str(policy))
    assert narrow.check("onnx").status == "fail" and narrow.exit_code == 14
    seen: list = []
    assert verify(ref, file=folder, manifest=pub.manifest_path, client=deployed.client,
                  file_progress=lambda *args: seen.append(args)).ok
    assert seen, "file_progress was never called"
    session = load_verified(ref, file=folder, manifest=pub.manifest_path, client=deployed.client)
    assert session.get_inputs()[0].name == "X"
    (folder / "config.json").write_bytes(b'{"k": 2}')
    broken = verify(ref, file=folder, manifest=pub.manifest_path, client=deployed.client)
    assert broken.exit_code == 10 and broken.check("onnx").status == "skip"
