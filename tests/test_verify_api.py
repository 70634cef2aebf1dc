"""The Python API as a device uses it: no torch anywhere, ``registry.verify(...)`` callable, typed failure."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest

from registry.manifest import write_manifest
from registry.verify import VerificationFailed, load_verified, verify
from registry.verify.procedure import verify_artifact, verify_bytes
from registry.verify.report import CHECK_NAMES

from tests._verify_fixtures import offline_release, tiny_onnx


def test_full_verify_and_load_of_a_small_model_never_import_torch(tmp_path):
    rel = offline_release(tmp_path)
    model = tmp_path / "model.onnx"
    model.write_bytes(rel.data)
    manifest = write_manifest(rel.manifest, tmp_path / "m.release.json")
    prov = tmp_path / "prov.json"
    prov.write_bytes(rel.provenance)
    code = f"""
import sys
import registry
import registry.verify
report = registry.verify({rel.ref!r}, file={str(model)!r}, manifest={str(manifest)!r},
                         trust=[{rel.publisher.address!r}], offline=True, provenance={str(prov)!r})
assert report.ok, report.to_json()
session = registry.verify.load_verified({rel.ref!r}, file={str(model)!r}, manifest={str(manifest)!r},
                                        trust=[{rel.publisher.address!r}], offline=True, provenance={str(prov)!r})
assert session is not None
bad = [m for m in ("torch", "web3", "sklearn") if m in sys.modules]
assert not bad, bad
print("ok")
"""
    env = {"REGISTRY_HOME": str(tmp_path / "home"), "PATH": "/usr/bin:/bin"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120,
                         cwd=Path(__file__).resolve().parents[1])
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


def test_report_json_shape(tmp_path):
    rel = offline_release(tmp_path)
    doc = rel.verify().to_json()
    assert doc["ok"] is True and doc["exit_code"] == 0 and doc["mode"] == "offline"
    assert [c["name"] for c in doc["checks"]] == ["resolve", "not_revoked", "publisher_authorised", "signature",
                                                  "sha256", "cid", "provenance", "onnx", "policy"]
    assert all(set(c) >= {"name", "status", "detail", "evidence"} for c in doc["checks"])
    import json

    json.dumps(doc)  # fully serialisable


def test_exit_code_is_the_first_failing_check(tmp_path):
    from eth_account import Account

    rel = offline_release(tmp_path, b"not onnx")
    report = rel.verify(trust=[Account.create().address], provenance=b"{}")
    failing = [c.name for c in report.checks if c.status == "fail"]
    assert failing[0] == "publisher_authorised" and "provenance" in failing and "onnx" in failing
    assert report.exit_code == 11


# ------------------------------------------------------------------------------------------------
# What the report tells its reader through every entry point (verify, verify_bytes, verify_artifact,
# load_verified), and that each option a caller passes reaches the check it is for.
# ------------------------------------------------------------------------------------------------


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def rel(tmp_path: Path):
    return offline_release(tmp_path / "home")


def _v(rel, ref: str, **kwargs):
    """The offline release verified under another reference."""
    args = dict(data=rel.data, manifest=rel.manifest, trust=[rel.publisher.address], offline=True,
                provenance=rel.provenance, settings=rel.settings)
    args.update(kwargs)
    return verify(ref, **args)


def test_a_bad_reference_fails_resolve_and_skips_every_other_check_by_name(rel):
    report = _v(rel, "not a reference")
    assert report.ref == "not a reference"
    assert [c.name for c in report.checks] == list(CHECK_NAMES)
    first, rest = report.checks[0], report.checks[1:]
    assert (first.name, first.status, report.exit_code) == ("resolve", "fail", 3)
    assert all(c.status == "skip" and c.detail == "resolve failed" for c in rest)
    assert not report.ok
    assert report.summary().startswith("not a reference: resolve failed")


def test_an_unreachable_rpc_is_exit_15_naming_the_rpc_and_the_offline_way(rel, tmp_path):
    from registry.config import load_settings

    url = f"http://127.0.0.1:{_closed_port()}"
    settings = load_settings(env={"REGISTRY_HOME": str(tmp_path / "home"), "REGISTRY_RPC_URL": url,
                                  "REGISTRY_CHAIN_ID": "31337", "REGISTRY_CONTRACT": rel.manifest.contract})
    report = verify(rel.ref, data=rel.data, manifest=rel.manifest, settings=settings)
    resolve = report.check("resolve")
    assert resolve.status == "fail" and report.exit_code == 15
    assert resolve.evidence == {"rpc": url}
    assert "--offline" in resolve.detail and resolve.detail.endswith("without revocation checks)")
    assert [c.status for c in report.checks[1:]] == ["skip"] * 8
    assert {c.detail for c in report.checks[1:]} == {"resolve failed"}


def test_a_manifest_for_another_release_is_named_in_the_refusal(rel):
    report = _v(rel, "acme/offline@2.0.0")
    resolve = report.check("resolve")
    assert resolve.status == "fail" and report.exit_code == 3
    assert "acme/offline@1.0.0" in resolve.detail and "acme/offline@2.0.0" in resolve.detail
    assert resolve.evidence == {"manifest": "acme/offline@1.0.0", "ref": "acme/offline@2.0.0"}
    assert {(c.status, c.detail) for c in report.checks[1:]} == {("skip", "resolve failed")}


def test_an_offline_pass_reports_the_manifest_as_the_record(rel):
    report = rel.verify()
    assert report.ok and report.mode == "offline", report.summary()
    assert report.check("resolve").status == "pass"
    assert report.summary() == f"{rel.ref}: verified (offline)"
    record = report.release
    assert (record.published_at, record.revoked_at, record.revocation_reason) == (0, 0, "")
    assert not record.has_card and record.card_cid == b""
    assert report.check("resolve").evidence == {
        "release_id": "0x" + rel.manifest.release_id.hex(), "chain_id": 31337, "contract": rel.manifest.contract,
        "publisher": rel.publisher.address, "source": "manifest"}
    assert rel.ref in report.check("resolve").detail and "offline" in report.check("resolve").detail
    assert report.check("not_revoked").status == "skip"


def test_a_digest_reference_must_be_the_manifests_bytes(rel):
    good = _v(rel, "sha256:" + rel.manifest.release.artifact_sha256.hex())
    assert good.ok, good.summary()
    other = _v(rel, "sha256:" + "ab" * 32)
    assert other.check("resolve").status == "fail" and other.exit_code == 3


def test_an_alias_reference_with_the_manifest_of_that_name_is_verified_offline(rel):
    assert _v(rel, "acme/offline@stable").ok
    refused = _v(rel, "acme/other@stable")
    assert refused.check("resolve").status == "fail"


def test_each_option_reaches_its_check(rel, tmp_path):
    from registry.config import load_settings

    # policy given as a path: its rule is applied
    policy = tmp_path / "policy.toml"
    policy.write_text("min_accuracy = 0.99\n")
    refused = rel.verify(policy=str(policy))
    assert refused.check("policy").status == "fail" and refused.exit_code == 14
    assert "0.97" in refused.check("policy").detail or "0.9700" in refused.check("policy").detail
    # installed_version feeds the rollback rule
    rollback = tmp_path / "rollback.toml"
    rollback.write_text("refuse_rollback = true\n")
    older = rel.verify(policy=str(rollback), installed_version="2.0.0")
    assert older.check("policy").status == "fail" and "2.0.0" in older.check("policy").detail
    assert rel.verify(policy=str(rollback), installed_version="0.9.0").ok
    # settings: a profile pinned to another chain refuses a manifest signed for 31337
    other = load_settings(env={"REGISTRY_HOME": str(tmp_path / "home"), "REGISTRY_CHAIN_ID": "5"})
    pinned = rel.verify(settings=other)
    assert pinned.check("signature").status == "fail" and "5" in pinned.check("signature").detail
    # chain_id (--chain-id) likewise
    assert rel.verify(chain_id=1).check("signature").status == "fail"
    assert rel.verify(chain_id=31337).ok
    # the policy reaches the ONNX check too: an op it does not allow is refused there
    ops = tmp_path / "ops.toml"
    ops.write_text('allowed_ops = ["Relu"]\n')
    narrow = rel.verify(policy=str(ops))
    assert narrow.check("onnx").status == "fail" and "Gemm" in narrow.check("onnx").detail
    # trusted publishers may come from the policy alone
    trusting = tmp_path / "trust.toml"
    trusting.write_text(f'trusted_publishers = ["{rel.publisher.address}"]\n')
    assert _v(rel, rel.ref, trust=[], policy=str(trusting)).ok
    # progress sees every byte hashed
    seen: list[int] = []
    assert rel.verify(progress=seen.append).ok
    assert sum(seen) == len(rel.data)


def test_verify_bytes_hands_out_bytes_only_when_every_check_passed(rel):
    report, data = verify_bytes(rel.ref, data=rel.data, manifest=rel.manifest, trust=[rel.publisher.address],
                                offline=True, provenance=rel.provenance, settings=rel.settings)
    assert report.ok and report.ref == rel.ref and bytes(data) == rel.data
    report, data = verify_bytes(rel.ref, data=rel.data, manifest=rel.manifest, offline=True,
                                provenance=rel.provenance, settings=rel.settings)  # untrusted publisher
    assert not report.ok and report.exit_code == 11 and data is None
    tampered = bytearray(rel.data)
    tampered[-1] ^= 1
    report, data = verify_bytes(rel.ref, data=bytes(tampered), manifest=rel.manifest, trust=[rel.publisher.address],
                                offline=True, provenance=rel.provenance, settings=rel.settings)
    assert report.exit_code == 10 and data is None


def test_verify_artifact_returns_the_report_for_the_ref_given(rel, tmp_path):
    report, artifact = verify_artifact(rel.ref, data=rel.data, manifest=rel.manifest, trust=[rel.publisher.address],
                                       offline=True, provenance=rel.provenance, settings=rel.settings)
    try:
        assert report.ok and report.ref == rel.ref and artifact.ok and bytes(artifact.data) == rel.data
    finally:
        artifact.release()
    # a failure in any check (here the last one, policy) leaves nothing for a loader or a stager
    policy = tmp_path / "strict.toml"
    policy.write_text("min_accuracy = 0.99\n")
    report, artifact = verify_artifact(rel.ref, data=rel.data, manifest=rel.manifest, trust=[rel.publisher.address],
                                       offline=True, provenance=rel.provenance, settings=rel.settings,
                                       policy=str(policy))
    assert report.exit_code == 14 and report.check("sha256").status == "pass"
    assert not artifact.ok and artifact.data is None


def test_load_verified_honours_the_callers_session_options_and_providers(rel):
    import numpy as np
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.enable_profiling = False
    options.add_session_config_entry("session.mutation_probe", "seen")
    kwargs = dict(data=rel.data, manifest=rel.manifest, trust=[rel.publisher.address], offline=True,
                  provenance=rel.provenance, settings=rel.settings)
    session = load_verified(rel.ref, session_options=options, **kwargs)
    assert session.get_session_options().intra_op_num_threads == 1
    assert session.get_session_options().get_session_config_entry("session.mutation_probe") == "seen"
    chosen = ["AzureExecutionProvider", "CPUExecutionProvider"]  # both ship in the CPU wheel
    session = load_verified(rel.ref, providers=chosen, **kwargs)
    assert session.get_providers() == chosen
    # without a choice: the CPU provider, asked for by its real name (no "unknown provider" warning)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        session = load_verified(rel.ref, **kwargs)
    assert session.get_providers() == ["CPUExecutionProvider"]
    out = session.run(None, {session.get_inputs()[0].name: np.zeros((1, 8), np.float32)})
    assert out[0].shape == (1, 3)
    with pytest.raises(VerificationFailed) as failed:
        load_verified(rel.ref, **{**kwargs, "trust": []})
    assert failed.value.exit_code == 11


def test_load_verified_of_other_bytes_loads_nothing(rel):
    with pytest.raises(VerificationFailed) as failed:
        load_verified(rel.ref, data=tiny_onnx(7), manifest=rel.manifest, trust=[rel.publisher.address], offline=True,
                      provenance=rel.provenance, settings=rel.settings)
    assert failed.value.report.check("sha256").status == "fail"
    assert failed.value.report.check("onnx").status == "skip"
    assert "integrity" in failed.value.report.check("onnx").detail


def test_a_profile_the_reader_cannot_use_fails_resolve_as_bad_input(rel, tmp_path):
    from registry.config import load_settings

    url = f"http://127.0.0.1:{_closed_port()}"
    settings = load_settings(env={"REGISTRY_HOME": str(tmp_path / "home"), "REGISTRY_RPC_URL": url})  # no contract
    report = verify(rel.ref, data=rel.data, manifest=rel.manifest, settings=settings)
    assert report.check("resolve").status == "fail" and report.exit_code == 3
    assert "contract" in report.check("resolve").detail
    assert {(c.status, c.detail) for c in report.checks[1:]} == {("skip", "resolve failed")}


def test_an_offline_release_with_a_card_checks_the_card(tmp_path):
    import hashlib

    from registry.content.cids import cid_bytes_v1
    from registry.content.unixfs import import_bytes

    card = b"---\nlicense: mit\n---\n# offline card\n"
    imported = import_bytes(card, "kubo-v1")
    rel = offline_release(tmp_path / "home", overrides={"card_sha256": hashlib.sha256(card).digest(),
                                                        "card_cid": cid_bytes_v1(imported.cid)})
    good = rel.verify(card=card)
    assert good.ok and good.release.has_card and good.check("provenance").evidence["card_source"] == "memory"
    bad = rel.verify(card=card + b"changed")
    assert bad.exit_code == 13 and "card" in bad.check("provenance").detail


# -- what the procedure reports when a part of it breaks (fast: an in-process node stands in for the RPC) --


class _Node:
    """A node serving one release; ``broken`` names the calls that crash (as a buggy RPC client would)."""

    def __init__(self, rel, chain_id=None, broken=(), delay=0.0):
        from registry.verify import procedure

        self.record = procedure._record_from_manifest(rel.manifest)
        self.chain_id = rel.manifest.chain_id if chain_id is None else chain_id
        self.address, self.rpc_url = rel.manifest.contract, "http://node.invalid"
        self.broken, self.delay, self.answered_at = set(broken), delay, None

    def _call(self, name):
        if name in self.broken:
            raise RuntimeError(f"{name} crashed")

    def get_by_id(self, release_id):
        import time

        self._call("get_by_id")
        time.sleep(self.delay)
        self.answered_at = time.monotonic()
        return self.record

    def may_publish(self, name, account):
        self._call("may_publish")
        return account == self.record.publisher

    def attestation_of(self, release_id, attester):
        self._call("attestation_of")
        return None


def test_a_crashing_node_fails_the_checks_it_answers_under_their_own_names(tmp_path):
    from registry.policy import Policy

    rel = offline_release(tmp_path)
    node = _Node(rel, broken={"may_publish", "attestation_of"})
    pol = Policy(required_attestations=1, attesters=("0x" + "22" * 20,))
    report = verify(rel.ref, data=rel.data, manifest=rel.manifest, client=node, provenance=rel.provenance,
                    settings=rel.settings, policy=pol)
    by = {c.name: c for c in report.checks}
    assert [c.name for c in report.checks] == list(CHECK_NAMES)
    assert by["publisher_authorised"].status == "fail"
    assert by["publisher_authorised"].detail == "unexpected RuntimeError: may_publish crashed"
    assert by["policy"].status == "fail" and by["policy"].detail == "unexpected RuntimeError: attestation_of crashed"
    assert by["signature"].status == "pass" and by["not_revoked"].status == "pass"


@pytest.mark.parametrize("check, target", [("signature", "check_signature"), ("onnx", "check_onnx")])
def test_a_check_that_crashes_fails_under_its_own_name_and_the_others_still_run(tmp_path, monkeypatch, check, target):
    from registry.verify import procedure

    def crash(*args, **kwargs):
        raise RuntimeError(f"{target} crashed")

    monkeypatch.setattr(procedure, target, crash)
    rel = offline_release(tmp_path)
    report = verify(rel.ref, data=rel.data, manifest=rel.manifest, client=_Node(rel), provenance=rel.provenance,
                    settings=rel.settings)
    by = {c.name: c for c in report.checks}
    assert [c.name for c in report.checks] == list(CHECK_NAMES) and not report.ok
    assert (by[check].status, by[check].detail) == ("fail", f"unexpected RuntimeError: {target} crashed")
    assert [c.name for c in report.checks if c.status == "fail"] == [check]


def test_a_release_with_a_crashing_lineage_read_fails_not_revoked_by_name(tmp_path):
    import dataclasses

    rel = offline_release(tmp_path, overrides={"parent": b"\7" * 32})
    node = _Node(rel)
    served = node.get_by_id

    def lineage_crashes(release_id):
        if release_id != node.record.id:
            raise RuntimeError("lineage crashed")
        return served(release_id)

    node.get_by_id = lineage_crashes
    report = verify(rel.ref, data=rel.data, manifest=rel.manifest, client=node, provenance=rel.provenance,
                    settings=rel.settings)
    check = report.check("not_revoked")
    assert check.status == "fail" and check.detail == "unexpected RuntimeError: lineage crashed"
    assert dataclasses.is_dataclass(report.release)


def test_online_the_signature_is_pinned_to_the_chain_the_node_serves(tmp_path):
    rel = offline_release(tmp_path)  # signed for chain 31337, which the local profile also expects
    report = verify(rel.ref, data=rel.data, manifest=rel.manifest, client=_Node(rel, chain_id=999),
                    provenance=rel.provenance, settings=rel.settings)
    check = report.check("signature")
    assert check.status == "fail" and "chain expects 999" in check.detail and report.exit_code == 11


class _CrashingStore:
    def open(self, cid, max_size=None):
        raise RuntimeError("store crashed")

    def get_bytes(self, cid, max_size=None):
        raise RuntimeError("store crashed")


def test_a_store_that_crashes_mid_read_is_an_integrity_failure_and_nothing_is_parsed(tmp_path):
    rel = offline_release(tmp_path)
    report = rel.verify(data=None, store=_CrashingStore())
    sha, cid, onnx = report.check("sha256"), report.check("cid"), report.check("onnx")
    assert sha.status == "fail" and sha.detail == "unexpected RuntimeError: store crashed" and report.exit_code == 10
    assert (cid.name, cid.status, cid.detail) == ("cid", "skip", "no bytes to hash")
    assert onnx.status == "skip" and onnx.detail == "artifact bytes did not pass integrity checks; not parsed"
    assert [c.name for c in report.checks] == list(CHECK_NAMES)


def test_the_policy_size_cap_applies_before_any_byte_is_read(tmp_path):
    from registry.policy import Policy

    rel = offline_release(tmp_path)
    report = rel.verify(policy=Policy(max_artifact_size=len(rel.data) - 1))
    assert report.check("sha256").status == "fail" and "nothing was read" in report.check("sha256").detail
    assert report.exit_code == 14


def test_the_manifest_profile_decides_the_cid_recomputed_by_verify(tmp_path):
    from registry.content.cids import cid_bytes_v1
    from registry.content.unixfs import import_bytes

    data = tiny_onnx(5)
    v0_cid = cid_bytes_v1(import_bytes(data, "kubo-v0").cid)
    rel = offline_release(tmp_path, data, overrides={"artifact_cid": v0_cid})  # manifest says kubo-v1
    report = rel.verify()
    assert report.check("sha256").status == "pass" and report.check("cid").status == "fail"
    assert report.exit_code == 10


def test_provenance_is_found_beside_the_file(tmp_path):
    from registry.verify.provenance_check import provenance_path_beside

    rel = offline_release(tmp_path)
    model = tmp_path / "model.onnx"
    model.write_bytes(rel.data)
    provenance_path_beside(model, rel.manifest.release.name, rel.manifest.release.version).write_bytes(rel.provenance)
    report = rel.verify(data=None, file=str(model), provenance=None, store=_CrashingStore())
    assert report.ok, report.to_json()


def test_a_trust_entry_that_is_not_an_address_is_bad_input(tmp_path):
    rel = offline_release(tmp_path)
    report = rel.verify(trust=["0x1234"])
    check = report.check("resolve")
    assert check.status == "fail" and report.exit_code == 3
    assert check.detail == "--trust '0x1234' is not a 0x-prefixed 20-byte address"


def test_an_unreachable_local_devnet_is_named_in_the_evidence(tmp_path, monkeypatch):
    from registry.errors import UnreachableError
    from registry.verify import procedure

    def down(settings):
        raise UnreachableError("no node answers")

    monkeypatch.setattr(procedure, "_connect", down)
    rel = offline_release(tmp_path)
    report = verify(rel.ref, data=rel.data, manifest=rel.manifest, settings=rel.settings)
    check = report.check("resolve")
    assert report.exit_code == 15 and check.evidence == {"rpc": rel.settings.profile.rpc_url or "local devnet"}
    assert check.evidence["rpc"] == "local devnet"


@pytest.mark.parametrize("given", ["data", "file"])
def test_with_a_manifest_the_bytes_are_hashed_before_the_chain_answers(tmp_path, monkeypatch, given):
    """Online with a manifest beside the bytes, hashing starts at once instead of after check 1's round trip."""
    import time

    from registry.verify import procedure

    rel = offline_release(tmp_path)
    node = _Node(rel, delay=0.5)
    monkeypatch.setattr(procedure, "_connect", lambda settings: node)
    started: list[float] = []
    real = procedure.check_bytes

    def spy(*args, **kwargs):
        started.append(time.monotonic())
        return real(*args, **kwargs)

    monkeypatch.setattr(procedure, "check_bytes", spy)
    model = tmp_path / "model.onnx"
    model.write_bytes(rel.data)
    source = {"data": rel.data} if given == "data" else {"file": str(model)}
    report = verify(rel.ref, manifest=rel.manifest, provenance=rel.provenance, settings=rel.settings, **source)
    assert report.ok and report.mode == "online", report.to_json()
    assert len(started) == 1 and started[0] < node.answered_at


def test_a_provenance_read_that_crashes_leaves_the_policy_judging_no_document(tmp_path):
    from registry.policy import Policy

    rel = offline_release(tmp_path)
    report = rel.verify(provenance=None, store=_CrashingStore(), policy=Policy(min_accuracy=0.5))
    assert report.check("provenance").detail == "unexpected RuntimeError: store crashed"
    assert report.check("policy").detail == "provenance records no accuracy (predicate.metrics.accuracy)"


def test_offline_the_card_is_fetched_by_the_cid_the_manifest_signs(tmp_path):
    import hashlib

    from registry.content.cids import cid_bytes_v1
    from registry.content.local import LocalStore

    card = b"# acme/offline\n\nA tiny model.\n"
    store = LocalStore(tmp_path / "not-the-configured-store", "kubo-v1")
    cid = store.put_bytes(card, "kubo-v1")
    rel = offline_release(tmp_path / "home", overrides={"card_sha256": hashlib.sha256(card).digest(),
                                                        "card_cid": cid_bytes_v1(cid.cid)})
    report = rel.verify(store=store)
    assert report.ok, report.to_json()
    assert report.check("provenance").evidence["card_source"] == "store (verified block by block)"


def test_a_card_travelling_beside_the_model_file_is_read_from_there(tmp_path):
    import hashlib

    from registry.content.cids import cid_bytes_v1
    from registry.content.unixfs import import_bytes
    from registry.verify.card_check import card_path_beside

    card = b"# acme/offline\n\nShipped next to the model.\n"
    rel = offline_release(tmp_path / "home", overrides={"card_sha256": hashlib.sha256(card).digest(),
                                                        "card_cid": cid_bytes_v1(import_bytes(card, "kubo-v1").cid)})
    model = tmp_path / "model.onnx"
    model.write_bytes(rel.data)
    beside = card_path_beside(model, rel.manifest.release.name, rel.manifest.release.version)
    beside.write_bytes(card)
    report = rel.verify(data=None, file=model)
    assert report.ok, report.to_json()
    assert report.check("provenance").evidence["card_source"] == f"file {beside.name}"


def test_a_crashing_onnx_check_of_a_directory_fails_under_its_own_name(tmp_path, monkeypatch):
    from registry.content.cids import cid_bytes_v1
    from registry.content.tree import import_tree
    from registry.provenance import statement
    from registry.verify import tree as tree_module
    from tests._tree_fixtures import onnx_with_external_data

    folder = tmp_path / "model"
    onnx_with_external_data(folder, n=64, extra={"tokenizer/vocab.txt": b"a\nb\n"})
    art = import_tree(folder, "kubo-v1")
    rel = offline_release(tmp_path / "home", provenance_doc=statement(art.sha256.hex(), "model", {"metrics": {}}),
                          overrides={"artifact_sha256": art.sha256, "artifact_cid": cid_bytes_v1(art.cid),
                                     "artifact_size": art.size})

    def crash(*args, **kwargs):
        raise RuntimeError("check_tree_onnx crashed")

    monkeypatch.setattr(tree_module, "check_tree_onnx", crash)
    report = rel.verify(data=None, file=folder)
    by = {c.name: c for c in report.checks}
    assert [c.name for c in report.checks] == list(CHECK_NAMES)
    assert (by["sha256"].status, by["cid"].status) == ("pass", "pass"), report.to_json()
    assert (by["onnx"].status, by["onnx"].detail) == ("fail", "unexpected RuntimeError: check_tree_onnx crashed")
