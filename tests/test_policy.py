"""Policy files (TOML) and the rules they switch on, offline and on a real chain."""

from __future__ import annotations

from pathlib import Path

import pytest

from registry.errors import InputError
from registry.policy import Policy, load_policy, parse_policy, version_key
from registry.provenance import statement
from registry.verify import verify

from tests._verify_fixtures import offline_release, publish_tiny, tiny_onnx

ADDR = "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"


def test_full_policy_file(tmp_path):
    path = tmp_path / "policy.toml"
    path.write_text(f"""
trusted_publishers = ["{ADDR.lower()}"]
min_confirmations = 2
max_artifact_size = 1000
allowed_ops = ["Gemm", "Relu"]
opset = [13, 18]
min_accuracy = 0.9
refuse_rollback = true
chain_id = 31337
[attestations]
required = 1
attesters = ["{ADDR}"]
""")
    pol = load_policy(path)
    assert pol.trusted_publishers == (ADDR,)
    assert pol.allowed_ops == frozenset({"Gemm", "Relu"})
    assert (pol.opset_min, pol.opset_max) == (13, 18)
    assert pol.required_attestations == 1 and pol.has_rules


@pytest.mark.parametrize("text", [
    "min_acuracy = 0.9",  # typo must not silently disable a rule
    "min_accuracy = 2",
    "min_accuracy = true",
    "trusted_publishers = ['0x12']",
    "opset = [18, 13]",
    "max_artifact_size = -1",
    "[attestations]\nrequired = 2\nattesters = []",
    "refuse_rollback = 'yes'",
    "not toml = = =",
])
def test_bad_policy_files(tmp_path, text):
    path = tmp_path / "p.toml"
    path.write_text(text)
    with pytest.raises(InputError):
        load_policy(path)


def test_missing_policy_file(tmp_path):
    with pytest.raises(InputError, match="cannot read"):
        load_policy(tmp_path / "none.toml")


def test_semver_ordering():
    versions = ["1.0.0-alpha", "1.0.0-alpha.1", "1.0.0-beta", "1.0.0-beta.2", "1.0.0-beta.11", "1.0.0-rc.1",
                "1.0.0", "1.0.1", "1.10.0", "2.0.0"]
    assert sorted(versions, key=version_key) == versions


def test_min_accuracy(tmp_path):
    rel = offline_release(tmp_path)  # provenance says 0.97
    assert rel.verify(policy=Policy(min_accuracy=0.95)).ok
    report = rel.verify(policy=Policy(min_accuracy=0.98))
    assert report.exit_code == 14 and "below" in report.check("policy").detail
    none = offline_release(tmp_path, provenance_doc=statement(rel.manifest.release.artifact_sha256.hex(), "m", {}))
    assert "no accuracy" in none.verify(policy=Policy(min_accuracy=0.5)).check("policy").detail


def test_rollback(tmp_path):
    rel = offline_release(tmp_path, version="1.2.0")
    assert rel.verify(policy=Policy(refuse_rollback=True), installed_version="1.1.9").ok
    report = rel.verify(policy=Policy(refuse_rollback=True), installed_version="1.10.0")
    assert report.exit_code == 14 and "rollback" in report.check("policy").detail


def test_trusted_publishers_from_policy(tmp_path):
    rel = offline_release(tmp_path)
    assert rel.verify(trust=[], policy=Policy(trusted_publishers=(rel.publisher.address,))).ok
    assert rel.verify(trust=[], policy=Policy(trusted_publishers=(ADDR,))).exit_code == 11


def test_onnx_rules_from_policy(tmp_path):
    rel = offline_release(tmp_path)
    assert rel.verify(policy=Policy(allowed_ops=frozenset({"Gemm", "Relu"}))).ok
    assert rel.verify(policy=Policy(allowed_ops=frozenset({"Gemm"}))).exit_code == 14
    assert rel.verify(policy=Policy(max_artifact_size=10)).exit_code == 14
    assert rel.verify(policy=Policy(opset_min=18, opset_max=20)).exit_code == 14


def test_offline_cannot_satisfy_chain_rules(tmp_path):
    rel = offline_release(tmp_path)
    report = rel.verify(policy=Policy(required_attestations=1, attesters=(ADDR,)))
    assert report.exit_code == 14 and "offline" in report.check("policy").detail


def test_attestations_and_confirmations_on_chain(deployed, tmp_path):
    pub = publish_tiny(deployed, tmp_path)
    attesters = deployed.accounts[4:7]
    pol = Policy(required_attestations=2, attesters=tuple(a.address for a in attesters), min_confirmations=3)
    report = verify(pub.ref, file=pub.model, settings=pub.settings, policy=pol)
    assert report.exit_code == 14
    detail = report.check("policy").detail
    assert "0 of 2" in detail and "confirmations" in detail
    rid = pub.result.record.id
    deployed.client.attest(rid, True, b"\x01" * 32, attesters[0])
    deployed.client.attest(rid, False, b"\x02" * 32, attesters[1])  # a failed verdict does not count
    deployed.client.attest(rid, True, b"\x03" * 32, deployed.accounts[8])  # not listed: does not count
    report = verify(pub.ref, file=pub.model, settings=pub.settings, policy=pol)
    assert "1 of 2" in report.check("policy").detail
    deployed.client.attest(rid, True, b"\x04" * 32, attesters[2])
    deployed.rpc("anvil_mine", [hex(3)])
    report = verify(pub.ref, file=pub.model, settings=pub.settings, policy=pol)
    assert report.ok, report.to_json()
    assert report.check("policy").evidence["confirmations"] >= 3
