"""Every attack in the issue ends in a clear rejection with the right check and exit code."""

from __future__ import annotations

import dataclasses
import hashlib
import os
import threading
from pathlib import Path

import pytest
from eth_account import Account
from hypothesis import HealthCheck, given, settings, strategies as st

from registry.verify import CHECK_NAMES, VerificationFailed, load_verified, verify

from tests._verify_fixtures import Offline, offline_release, publish_tiny, tiny_onnx

BASE = offline_release(Path("/nonexistent-registry-home"))


def _st(report):
    return {c.name: c.status for c in report.checks}


def test_offline_baseline_is_green():
    report = BASE.verify()
    assert report.ok, report.to_json()
    assert report.mode == "offline"
    assert _st(report)["not_revoked"] == "skip"
    assert [c.name for c in report.checks] == list(CHECK_NAMES)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(offset=st.integers(min_value=0), bit=st.integers(min_value=0, max_value=7))
def test_any_single_bit_flip_is_rejected(offset, bit):
    data = bytearray(BASE.data)
    data[offset % len(data)] ^= 1 << bit
    report = BASE.verify(data=bytes(data))
    assert not report.ok
    assert report.exit_code == 10
    assert _st(report)["sha256"] == "fail" and _st(report)["cid"] == "fail"
    assert _st(report)["onnx"] == "skip"  # failed bytes are never parsed


@settings(max_examples=30, deadline=None)
@given(cut=st.integers(min_value=1, max_value=len(BASE.data)))
def test_truncated_is_rejected(cut):
    report = BASE.verify(data=BASE.data[:-cut])
    assert report.exit_code == 10
    assert "truncated" in report.check("sha256").detail


@settings(max_examples=30, deadline=None)
@given(extra=st.binary(min_size=1, max_size=64))
def test_extended_is_rejected(extra):
    report = BASE.verify(data=BASE.data + extra)
    assert report.exit_code == 10
    assert "larger" in report.check("sha256").detail


def test_endless_file_stops_at_size_plus_one(tmp_path):
    # /dev/zero never ends: verification must stop reading after size + 1 bytes
    report = BASE.verify(data=None, file="/dev/zero")
    assert report.exit_code == 10
    assert report.check("sha256").evidence["actual_size"] == f">{BASE.manifest.release.artifact_size}"


class _EndlessStore:
    """A hostile store: ignores max_size and serves bytes forever."""

    def __init__(self):
        self.served = 0

    def open(self, cid, max_size=None):
        while True:
            self.served += 65536
            yield b"\0" * 65536

    def get_bytes(self, cid, max_size=None):
        return BASE.provenance


def test_hostile_endless_store_is_cut_off():
    store = _EndlessStore()
    report = BASE.verify(data=None, store=store)
    assert report.exit_code == 10
    assert store.served <= BASE.manifest.release.artifact_size + 2 * 65536


class _OtherBytesStore:
    def __init__(self, payload):
        self.payload = payload

    def open(self, cid, max_size=None):
        yield self.payload

    def get_bytes(self, cid, max_size=None):
        return BASE.provenance


def test_store_serving_other_bytes_is_rejected():
    report = BASE.verify(data=None, store=_OtherBytesStore(tiny_onnx(99)))
    assert report.exit_code == 10
    assert report.check("sha256").evidence["expected"] != report.check("sha256").evidence["actual"]


def test_corrupted_local_store_block_is_rejected(tmp_path):
    from registry.content.local import LocalStore

    store = LocalStore(tmp_path / "blocks", "kubo-v1")
    data = os.urandom(600_000)  # three leaves
    store.put_bytes(data, "kubo-v1")
    rel = offline_release(tmp_path, data)
    store.put_bytes(rel.provenance, "kubo-v1")
    leaf = next(p for p in (tmp_path / "blocks").rglob("*") if p.is_file() and p.stat().st_size == 262144)
    blob = bytearray(leaf.read_bytes())
    blob[7] ^= 0xFF
    leaf.write_bytes(blob)
    report = rel.verify(data=None, provenance=None, store=store)
    assert report.exit_code == 10, report.to_json()
    assert report.check("sha256").status == "fail"


def test_cid_not_matching_the_bytes_is_rejected(tmp_path):
    other_cid = offline_release(tmp_path, tiny_onnx(42)).manifest.release.artifact_cid
    rel = offline_release(tmp_path, overrides={"artifact_cid": other_cid})
    report = rel.verify()
    assert _st(report)["sha256"] == "pass"
    assert _st(report)["cid"] == "fail"
    assert report.exit_code == 10


def test_manifest_signed_by_non_publisher(tmp_path):
    trusted = Account.create()
    forged = offline_release(tmp_path, signer=Account.create(), claimed=trusted.address)
    report = forged.verify(trust=[trusted.address])
    assert _st(report)["signature"] == "fail"
    assert report.check("signature").evidence["recovered"] != trusted.address
    assert report.exit_code == 11
    honest_but_untrusted = offline_release(tmp_path)
    report = honest_but_untrusted.verify(trust=[trusted.address])
    assert _st(report)["publisher_authorised"] == "fail" and report.exit_code == 11


@pytest.mark.parametrize("field,value", [("chain_id", 1), ("contract", "0x" + "11" * 20)])
def test_offline_replay_to_another_domain_is_rejected_by_policy_pin(tmp_path, field, value):
    from registry.policy import Policy

    rel = offline_release(tmp_path)
    man = dataclasses.replace(rel.manifest, **{field: value})  # forger edits the domain, keeps the signature
    report = rel.verify(manifest=man)
    assert report.exit_code == 11 and _st(report)["signature"] == "fail"
    # and a manifest honestly signed for another chain is refused when the device pins its chain
    other = offline_release(tmp_path, chain_id=1)
    report = other.verify(policy=Policy(chain_id=31337))
    assert report.exit_code == 11 and "chain 1" in report.check("signature").detail


def test_offline_changed_nonce_is_rejected(tmp_path):
    rel = offline_release(tmp_path)
    man = dataclasses.replace(rel.manifest, release=dataclasses.replace(rel.manifest.release, nonce=7))
    assert rel.verify(manifest=man).exit_code == 11


def test_provenance_for_another_artifact_is_rejected(tmp_path):
    from registry.provenance import statement

    doc = statement(hashlib.sha256(b"another model").hexdigest(), "other.onnx", {})
    rel = offline_release(tmp_path, provenance_doc=doc)
    report = rel.verify()
    assert _st(report)["provenance"] == "fail" and report.exit_code == 13
    assert "another artifact" in report.check("provenance").detail


def test_altered_provenance_is_rejected(tmp_path):
    rel = offline_release(tmp_path)
    report = rel.verify(provenance=rel.provenance.replace(b"0.97", b"0.99"))
    assert _st(report)["provenance"] == "fail" and report.exit_code == 13


def _external_data_model(location: str) -> bytes:
    import onnx

    model = onnx.load_from_string(tiny_onnx(3))
    tensor = model.graph.initializer[0]
    tensor.ClearField("raw_data")
    tensor.data_location = onnx.TensorProto.EXTERNAL
    entry = tensor.external_data.add()
    entry.key, entry.value = "location", location
    return model.SerializeToString()


@pytest.mark.parametrize("location", ["../../etc/passwd", "/etc/shadow", "weights.bin"])
def test_external_data_is_rejected(tmp_path, location):
    rel = offline_release(tmp_path, _external_data_model(location))
    report = rel.verify()
    assert _st(report)["onnx"] == "fail" and report.exit_code == 14
    assert "external data" in report.check("onnx").detail


@pytest.mark.parametrize("payload", [b"not onnx at all", os.urandom(4096), b"\x08\x07" * 10, b"{}"])
def test_not_onnx_is_rejected(tmp_path, payload):
    rel = offline_release(tmp_path, payload)
    report = rel.verify()
    assert _st(report)["sha256"] == "pass"
    assert _st(report)["onnx"] == "fail" and report.exit_code == 14
    with pytest.raises(VerificationFailed) as info:
        load_verified(rel.ref, data=rel.data, manifest=rel.manifest, trust=[rel.publisher.address], offline=True,
                      provenance=rel.provenance, settings=rel.settings)
    assert info.value.exit_code == 14


def test_load_verified_reads_the_path_once(tmp_path):
    """A FIFO can be read exactly once: if anything re-read the path after the check, this would hang."""
    import numpy as np

    fifo = tmp_path / "model.fifo"
    os.mkfifo(fifo)
    writer = threading.Thread(target=lambda: fifo.write_bytes(BASE.data), daemon=True)
    writer.start()
    session = load_verified(BASE.ref, file=fifo, manifest=BASE.manifest, trust=[BASE.publisher.address],
                            offline=True, provenance=BASE.provenance, settings=BASE.settings)
    writer.join(5)
    assert session.run(None, {"x": np.ones((1, 8), np.float32)})[0].shape == (1, 3)


# -- online attacks (anvil) ---------------------------------------------------------------------


def test_online_replay_with_another_chain_contract_or_nonce(deployed, tmp_path):
    from registry.manifest import load_manifest

    pub = publish_tiny(deployed, tmp_path)
    man = load_manifest(pub.manifest_path)
    for changed in (dataclasses.replace(man, chain_id=1),
                    dataclasses.replace(man, contract="0x" + "22" * 20),
                    dataclasses.replace(man, release=dataclasses.replace(man.release, nonce=man.release.nonce + 1))):
        report = verify(pub.ref, file=pub.model, manifest=changed, settings=pub.settings)
        assert report.check("signature").status == "fail", report.to_json()
        assert report.exit_code == 11


def test_online_manifest_with_other_digest_is_rejected(deployed, tmp_path):
    """A manifest re-signed by an outsider for other bytes does not match what the chain anchored."""
    from registry.manifest import load_manifest
    from registry.release import sign_release

    pub = publish_tiny(deployed, tmp_path)
    man = load_manifest(pub.manifest_path)
    forged_release = dataclasses.replace(man.release, artifact_sha256=b"\x01" * 32)
    attacker = Account.create()
    forged = dataclasses.replace(man, release=forged_release, publisher=attacker.address,
                                 signature=sign_release(forged_release, attacker, man.chain_id, man.contract))
    report = verify(pub.ref, file=pub.model, manifest=forged, settings=pub.settings)
    assert report.check("signature").status == "fail"
    assert report.exit_code == 11


def test_bytes_hashed_while_the_chain_is_read_are_judged_by_the_chain_record(deployed, tmp_path):
    """verify starts hashing a local file as soon as its manifest is read, before the chain answers.
    A manifest that names other bytes (the attacker's file, re-signed by the attacker) must not
    decide checks 5 and 6: the verdict is the chain's record, whatever the manifest said."""
    from registry.content.cids import cid_bytes_v1
    from registry.content.unixfs import import_bytes
    from registry.manifest import load_manifest
    from registry.release import sign_release

    pub = publish_tiny(deployed, tmp_path)
    theirs = tmp_path / "theirs.onnx"
    theirs.write_bytes(tiny_onnx(7))
    imported = import_bytes(theirs.read_bytes(), "kubo-v1")
    man = load_manifest(pub.manifest_path)
    forged_release = dataclasses.replace(man.release, artifact_sha256=imported.sha256,
                                         artifact_cid=cid_bytes_v1(imported.cid), artifact_size=imported.size)
    attacker = Account.create()
    forged = dataclasses.replace(man, release=forged_release, publisher=attacker.address, cid_profile="kubo-v1",
                                 signature=sign_release(forged_release, attacker, man.chain_id, man.contract))

    report = verify(pub.ref, file=theirs, manifest=forged, settings=pub.settings)  # connects itself: hashes first
    assert _st(report)["sha256"] == "fail" and _st(report)["cid"] == "fail", report.to_json()
    assert report.check("sha256").evidence["expected"] == man.release.artifact_sha256.hex()
    assert _st(report)["onnx"] == "skip" and not report.ok  # the attacker's bytes are never parsed
    with pytest.raises(VerificationFailed):
        load_verified(pub.ref, file=theirs, manifest=forged, settings=pub.settings)

    report = verify(pub.ref, file=pub.model, manifest=forged, settings=pub.settings)
    assert _st(report)["sha256"] == "pass" and _st(report)["cid"] == "pass"  # the chain's bytes, hashed again
    assert _st(report)["signature"] == "fail" and report.exit_code == 11


def test_revoked_parent_is_rejected(deployed, tmp_path):
    parent = publish_tiny(deployed, tmp_path, version="1.0.0", seed=10)
    child = publish_tiny(deployed, tmp_path, version="1.1.0", seed=11, parent=parent.ref)
    assert verify(child.ref, file=child.model, settings=child.settings).ok
    deployed.client.revoke(parent.result.record.id, "poisoned base model", deployed.publisher)
    report = verify(child.ref, file=child.model, settings=child.settings)
    assert report.exit_code == 12
    evidence = report.check("not_revoked").evidence
    assert evidence["revoked_ancestor"] == parent.ref and evidence["reason"] == "poisoned base model"


def test_removed_publisher_is_rejected(deployed, tmp_path):
    owner = deployed.publisher  # its first publish claims the namespace "acme"
    publish_tiny(deployed, tmp_path, version="0.9.0", seed=3)
    second = deployed.accounts[3]
    deployed.client.add_publisher("acme/tiny", second.address, owner)
    pub = publish_tiny(deployed, tmp_path, version="1.0.0", signer=second)
    assert verify(pub.ref, file=pub.model, settings=pub.settings).ok
    deployed.client.remove_publisher(pub.name, second.address, owner)
    report = verify(pub.ref, file=pub.model, settings=pub.settings)
    assert report.check("publisher_authorised").status == "fail"
    assert "may no longer publish" in report.check("publisher_authorised").detail
    assert report.exit_code == 11


def test_publish_refuses_provenance_for_another_artifact(deployed, tmp_path):
    from registry.errors import ProvenanceError
    from registry.provenance import statement, write_provenance
    from registry.publish import publish_model

    model = tmp_path / "m.onnx"
    model.write_bytes(tiny_onnx(8))
    prov = write_provenance(statement("ab" * 32, "x", {}), tmp_path / "p.json")
    with pytest.raises(ProvenanceError):
        publish_model(model, "acme/x", "1.0.0", provenance_path=prov, signer=deployed.publisher,
                      client=deployed.client)
    assert not list(tmp_path.glob("*.release.json"))


def test_republish_with_other_bytes_is_refused(deployed, tmp_path):
    from registry.errors import ChainError
    from registry.publish import publish_model

    pub = publish_tiny(deployed, tmp_path)
    other = tmp_path / "other.onnx"
    other.write_bytes(tiny_onnx(77))
    with pytest.raises(ChainError, match="different content"):
        publish_model(other, pub.name, pub.version, signer=deployed.publisher, client=deployed.client)
    assert deployed.client.release_count(pub.name) == 1


class _BrokenStore:
    """A store whose transport fails in a way nobody anticipated."""

    def open(self, cid, max_size=None):
        yield b"\x08"
        raise OSError(5, "Input/output error")

    def get_bytes(self, cid, max_size=None):
        raise RuntimeError("socket exploded")


def test_unexpected_errors_still_end_in_a_report():
    report = BASE.verify(data=None, provenance=None, store=_BrokenStore())
    assert not report.ok
    assert report.check("sha256").status == "fail" and "OSError" in report.check("sha256").detail
    assert report.check("provenance").status == "fail" and "RuntimeError" in report.check("provenance").detail
    assert report.check("onnx").status == "skip"


def test_directory_as_file_is_a_clean_failure(tmp_path):
    report = BASE.verify(data=None, file=tmp_path)
    assert not report.ok and report.check("sha256").status == "fail"
