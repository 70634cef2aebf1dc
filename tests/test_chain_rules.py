"""The verifier holds the contract's rules: offline domain pins, fail-closed lineage depth and rollback,
k-of-n attestations read per listed attester, remote confirmation defaults, and publish's namespace step."""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

import pytest

from registry.errors import ChainError
from registry.release import Release
from registry.verify import MAX_PARENT_DEPTH, verify

from tests._verify_fixtures import offline_release, publish_tiny, tiny_onnx


def fake(name: str, version: str, parent: bytes = b"\x00" * 32) -> Release:
    digest, prov = secrets.token_bytes(32), secrets.token_bytes(32)
    return Release(name=name, version=version, artifact_sha256=digest,
                   artifact_cid=bytes([1, 0x55, 0x12, 0x20]) + digest, artifact_size=10, provenance_sha256=prov,
                   provenance_cid=bytes([1, 0x55, 0x12, 0x20]) + prov, parent=parent, deadline=2**40)


# ------------------------------------------------------------------------------------------
# Offline: the manifest's domain is pinned
# ------------------------------------------------------------------------------------------


def test_offline_manifest_for_another_chain_is_refused_on_the_local_profile(tmp_path: Path) -> None:
    foreign = offline_release(tmp_path, chain_id=1)
    report = foreign.verify()
    assert report.exit_code == 11
    assert report.check("signature").evidence["domain_source"] == "local profile"
    assert "signed for chain 1" in report.check("signature").detail
    assert offline_release(tmp_path).verify().ok  # the local chain's own id passes


def test_offline_chain_id_option_pins_the_domain(tmp_path: Path) -> None:
    rel = offline_release(tmp_path, chain_id=5)
    remote = rel.settings.__class__(home=rel.settings.home, profile=rel.settings.profile.__class__(
        name="remote", rpc_url="http://127.0.0.1:9"))  # a remote profile without a chain id
    unpinned = rel.verify(settings=remote)
    assert unpinned.exit_code == 11 and "needs the chain" in unpinned.check("signature").detail
    assert rel.verify(settings=remote, chain_id=5).ok
    wrong = rel.verify(settings=remote, chain_id=10)
    assert wrong.exit_code == 11 and wrong.check("signature").evidence["domain_source"] == "--chain-id"


def test_offline_needs_a_manifest_and_never_reads_the_chain(deployed, tmp_path: Path) -> None:
    pub = publish_tiny(deployed, tmp_path)
    report = verify(pub.ref, data=tiny_onnx(0), offline=True, settings=pub.settings)
    assert report.exit_code == 3 and "needs the release manifest" in report.check("resolve").detail
    # A client given with offline=True is not used: revocation is skipped, not read.
    deployed.client.revoke(pub.result.record.id, "x", deployed.publisher)
    offline = verify(pub.ref, file=pub.model, manifest=pub.manifest_path, trust=[deployed.publisher.address],
                     offline=True, client=deployed.client, settings=pub.settings)
    assert offline.mode == "offline" and offline.check("not_revoked").status == "skip"


# ------------------------------------------------------------------------------------------
# Lineage depth and rollback fail closed
# ------------------------------------------------------------------------------------------


def test_lineage_deeper_than_the_contract_follows_is_refused(deployed) -> None:
    from registry.verify.chain_checks import check_not_revoked

    client, owner = deployed.client, deployed.accounts[1]
    assert client.max_lineage_depth() == MAX_PARENT_DEPTH == 64
    client.claim_namespace("deep", owner)
    parent = b"\x00" * 32
    records = []
    for i in range(MAX_PARENT_DEPTH + 2):
        records.append(client.sign_and_publish(fake("deep/model", f"1.{i}.0", parent), owner))
        parent = records[-1].id
    at_limit, beyond = records[MAX_PARENT_DEPTH], records[MAX_PARENT_DEPTH + 1]
    assert check_not_revoked(at_limit, client).status == "pass"
    refused = check_not_revoked(beyond, client)
    assert refused.status == "fail" and refused.exit_code == 12 and "deeper than 64" in refused.detail
    # The contract agrees on both (what a PredictionFeed asks).
    assert client.lineage_ok(at_limit.id) and not client.lineage_ok(beyond.id)


def test_a_version_that_cannot_be_compared_fails_the_rollback_rule(tmp_path: Path) -> None:
    from registry.policy import Policy

    rel = offline_release(tmp_path, version="1.2.0")
    rollback = Policy(refuse_rollback=True)
    assert rel.verify(policy=rollback, installed_version="1.1.0").ok
    assert rel.verify(policy=rollback, installed_version="1.3.0").exit_code == 14
    for installed in ("1.2", "v1.0.0", "latest", "01.0.0"):
        report = rel.verify(policy=rollback, installed_version=installed)
        assert report.exit_code == 14, installed
        assert "cannot compare" in report.check("policy").detail


# ------------------------------------------------------------------------------------------
# k-of-n attestations: only the listed attesters are read
# ------------------------------------------------------------------------------------------


def test_attestation_policy_reads_only_listed_attesters(deployed, tmp_path: Path, monkeypatch) -> None:
    from registry.policy import Policy

    pub = publish_tiny(deployed, tmp_path)
    rid = pub.result.record.id
    listed = deployed.accounts[7]
    for spammer in deployed.accounts[2:7]:  # anyone may attest; nobody listed them
        deployed.client.attest(rid, True, b"\x01" * 32, spammer)
    policy = Policy(required_attestations=1, attesters=(listed.address, deployed.accounts[8].address))
    monkeypatch.setattr(type(deployed.client), "attestations",
                        lambda *a, **k: (_ for _ in ()).throw(AssertionError("the whole list was read")))
    report = verify(pub.ref, file=pub.model, policy=policy, settings=pub.settings, client=deployed.client)
    assert report.exit_code == 14 and "0 of 1 required" in report.check("policy").detail
    deployed.client.attest(rid, True, b"\x02" * 32, listed)
    report = verify(pub.ref, file=pub.model, policy=policy, settings=pub.settings, client=deployed.client)
    assert report.ok and report.check("policy").evidence["passed_by"] == [listed.address]


# ------------------------------------------------------------------------------------------
# Confirmations: remote profiles default to a safe depth
# ------------------------------------------------------------------------------------------


def test_remote_profiles_default_to_a_safe_confirmation_depth(tmp_path: Path) -> None:
    from registry.config import DEFAULT_REMOTE_CONFIRMATIONS, Profile, load_settings, write_profile

    assert DEFAULT_REMOTE_CONFIRMATIONS >= 12
    home = {"REGISTRY_HOME": str(tmp_path)}
    assert load_settings(env=home).profile.confirmations == 0  # the embedded chain
    by_env = load_settings(env={**home, "REGISTRY_RPC_URL": "https://rpc.example"})
    assert by_env.profile.confirmations == DEFAULT_REMOTE_CONFIRMATIONS
    explicit = load_settings(env={**home, "REGISTRY_RPC_URL": "https://rpc.example", "REGISTRY_CONFIRMATIONS": "0"})
    assert explicit.profile.confirmations == 0
    (tmp_path / "profiles.toml").write_text('[profiles.sepolia]\nrpc_url = "https://rpc.example"\nchain_id = 11155111\n')
    assert load_settings("sepolia", env=home).profile.confirmations == DEFAULT_REMOTE_CONFIRMATIONS
    write_profile(tmp_path, Profile(name="dev", rpc_url="http://127.0.0.1:8545", chain_id=31337, confirmations=0))
    assert load_settings("dev", env=home).profile.confirmations == 0


def test_profile_add_documents_and_applies_the_default(registry_home: Path) -> None:
    import subprocess
    import sys

    cmd = [sys.executable, "-c", "from registry.cli import main; main()"]
    import os

    help_text = subprocess.run([*cmd, "profile", "add", "--help"], capture_output=True, text=True, timeout=60,
                               env={**os.environ, "COLUMNS": "400"}).stdout
    assert "Default for a remote profile: 12" in " ".join(help_text.replace("│", " ").split())
    added = subprocess.run([*cmd, "profile", "add", "sepolia", "--rpc-url", "https://rpc.example", "--chain-id",
                            "11155111", "--json"], capture_output=True, text=True, timeout=60)
    assert added.returncode == 0, added.stderr
    import json

    assert json.loads(added.stdout)["confirmations"] == 12


# ------------------------------------------------------------------------------------------
# Publish and namespaces
# ------------------------------------------------------------------------------------------


def test_publish_claims_the_signers_namespace_and_says_so(deployed, tmp_path: Path) -> None:
    from registry.publish import publish_model

    model = tmp_path / "m.onnx"
    model.write_bytes(tiny_onnx(9))
    said: list[str] = []
    result = publish_model(model, "fresh/model", "1.0.0", signer=deployed.publisher, client=deployed.client,
                           on_event=said.append)
    assert result.namespace_claimed
    assert deployed.client.namespace_owner("fresh") == (deployed.publisher.address, None)
    assert any("claiming it for" in m for m in said) and any("claimed namespace 'fresh'" in m for m in said)
    again = publish_model(model, "fresh/model", "1.0.1", signer=deployed.publisher, client=deployed.client)
    assert not again.namespace_claimed


def test_publish_into_someone_elses_namespace_is_refused_before_any_transaction(deployed, tmp_path: Path) -> None:
    from registry.publish import publish_model

    owner = deployed.accounts[1]
    deployed.client.claim_namespace("acme", owner)
    model = tmp_path / "m.onnx"
    model.write_bytes(tiny_onnx(10))
    nonce = deployed.client.next_nonce(deployed.publisher.address)
    with pytest.raises(ChainError, match="belongs to .*registry name add-publisher acme/model"):
        publish_model(model, "acme/model", "1.0.0", signer=deployed.publisher, client=deployed.client)
    with pytest.raises(ChainError, match="unclaimed"):
        publish_model(model, "other/model", "1.0.0", signer=deployed.publisher, client=deployed.client,
                      claim_namespace=False)
    assert deployed.client.next_nonce(deployed.publisher.address) == nonce
    assert deployed.client.namespace_owner("other") == (None, None)
    deployed.client.add_publisher("acme/model", deployed.publisher.address, owner)
    assert publish_model(model, "acme/model", "1.0.0", signer=deployed.publisher, client=deployed.client).record


# ------------------------------------------------------------------------------------------
# What checks 8 and 9 tell the operator: each rule's verdict, its evidence, every problem at once
# ------------------------------------------------------------------------------------------


def test_policy_rules_report_their_evidence_and_every_problem_at_once(tmp_path: Path) -> None:
    from registry.policy import Policy

    rel = offline_release(tmp_path, version="1.2.0")  # provenance accuracy 0.97
    plain = rel.verify()
    assert plain.check("policy").status == "skip" and plain.check("policy").detail == "no policy rules to apply"
    met = rel.verify(policy=Policy(refuse_rollback=True, min_accuracy=0.97), installed_version="1.2.0")
    assert met.ok and (met.check("policy").status, met.check("policy").detail) == ("pass", "policy rules met")
    assert met.check("policy").evidence == {"installed_version": "1.2.0", "min_accuracy": 0.97, "accuracy": 0.97}
    no_install = rel.verify(policy=Policy(refuse_rollback=True))
    assert no_install.ok and no_install.check("policy").evidence == {}
    both = rel.verify(policy=Policy(refuse_rollback=True, min_accuracy=0.98, min_confirmations=1,
                                    required_attestations=1, attesters=(rel.publisher.address,)),
                      installed_version="1.10.0")
    detail = both.check("policy").detail
    assert both.exit_code == 14
    assert detail.split("; ") == [
        "rollback refused: 1.2.0 is older than installed 1.10.0",
        "accuracy 0.9700 is below the policy minimum 0.9800",
        "confirmations cannot be checked offline",
        "attestations cannot be checked offline",
    ]
    assert both.check("policy").evidence["min_confirmations"] == 1
    assert both.check("policy").evidence["required_attestations"] == 1


def test_a_provenance_without_accuracy_fails_an_accuracy_rule(tmp_path: Path) -> None:
    from registry.policy import Policy
    from registry.provenance import statement

    import hashlib

    data = tiny_onnx(2)
    rel = offline_release(tmp_path, data, provenance_doc=statement(hashlib.sha256(data).hexdigest(), "model.onnx",
                                                                     {"method": "none"}))
    report = rel.verify(policy=Policy(min_accuracy=0.5))
    assert report.exit_code == 14 and "records no accuracy" in report.check("policy").detail
    assert report.check("policy").evidence["accuracy"] is None


def test_the_onnx_check_reports_what_it_read(tmp_path: Path) -> None:
    rel = offline_release(tmp_path)
    onnx_check = rel.verify().check("onnx")
    assert onnx_check.status == "pass" and onnx_check.detail.startswith("ONNX IR ")
    assert "opset 17" in onnx_check.detail and "2 nodes" in onnx_check.detail
    assert onnx_check.evidence["op_types"] == ["Gemm", "Relu"]


def test_confirmations_and_attestations_are_counted_on_the_chain(deployed, tmp_path: Path) -> None:
    from registry.policy import Policy

    pub = publish_tiny(deployed, tmp_path)
    rid = pub.result.record.id
    deep = Policy(min_confirmations=3)
    shallow = verify(pub.ref, file=pub.model, policy=deep, settings=pub.settings, client=deployed.client)
    seen = shallow.check("policy").evidence["confirmations"]
    assert shallow.exit_code == 14 and f"{seen} confirmations, policy needs 3" in shallow.check("policy").detail
    for _ in range(3 - seen):
        deployed.rpc("evm_mine")
    deep_enough = verify(pub.ref, file=pub.model, policy=deep, settings=pub.settings, client=deployed.client)
    assert deep_enough.ok and deep_enough.check("policy").evidence["confirmations"] == 3
    good, bad, silent = deployed.accounts[2], deployed.accounts[3], deployed.accounts[4]
    deployed.client.attest(rid, True, b"\x01" * 32, good)
    deployed.client.attest(rid, False, b"\x02" * 32, bad)
    two = Policy(required_attestations=2, attesters=(good.address, bad.address, silent.address, good.address))
    report = verify(pub.ref, file=pub.model, policy=two, settings=pub.settings, client=deployed.client)
    assert report.exit_code == 14
    assert report.check("policy").detail == "1 of 2 required attestations from listed attesters"
    assert report.check("policy").evidence["passed_by"] == [good.address]
    assert report.check("policy").evidence["failed_by"] == [bad.address]
    one = Policy(required_attestations=1, attesters=(good.address,))
    assert verify(pub.ref, file=pub.model, policy=one, settings=pub.settings, client=deployed.client).ok


# ------------------------------------------------------------------------------------------
# Checks 2-4 as the operator reads them: verdict, detail and evidence, online and offline
# ------------------------------------------------------------------------------------------


def test_chain_checks_say_what_they_read_online(deployed, tmp_path: Path) -> None:
    import dataclasses

    from registry.manifest import load_manifest, write_manifest

    parent = publish_tiny(deployed, tmp_path, version="1.0.0", seed=40)
    child = publish_tiny(deployed, tmp_path, version="1.1.0", seed=41, parent=parent.ref)
    me = deployed.publisher.address
    report = verify(child.ref, file=child.model, settings=child.settings, trust=[me])
    assert report.ok, report.to_json()
    revoked = report.check("not_revoked")
    assert revoked.detail == "not revoked (nor its 1 ancestors)" and revoked.evidence == {"lineage": [parent.ref]}
    assert report.check("publisher_authorised").detail == f"{me} is a publisher of acme/tiny and trusted"
    assert report.check("publisher_authorised").evidence == {"publisher": me, "trusted": [me],
                                                             "may_publish_on_chain": True}
    sig = report.check("signature")
    assert sig.detail == f"EIP-712 signature recovers to {me}"
    assert sig.evidence["recovered"] == me == sig.evidence["publisher"] == sig.evidence["claimed_publisher"]
    assert sig.evidence["manifest_chain_id"] == deployed.chain_id and sig.evidence["pinned_by"][0] == "chain"
    assert sig.evidence["manifest_contract"].lower() == deployed.address.lower()
    assert isinstance(sig.evidence["nonce"], int)
    root = verify(parent.ref, settings=parent.settings)  # from the store, no manifest beside anything
    assert root.ok and root.check("not_revoked").detail == "not revoked"
    assert root.check("publisher_authorised").detail == f"{me} is a publisher of acme/tiny"
    assert root.check("signature").evidence == {"publisher": me, "source": "chain"}
    assert "publish time" in root.check("signature").detail
    # a manifest altered in a signed field is named by that field
    altered = load_manifest(child.manifest_path)
    altered = dataclasses.replace(altered, release=dataclasses.replace(altered.release, artifact_size=1))
    path = tmp_path / "altered.release.json"
    write_manifest(altered, path)
    bad = verify(child.ref, file=child.model, manifest=path, settings=child.settings)
    assert bad.check("signature").status == "fail"
    assert bad.check("signature").detail == "manifest differs from the chain record in artifact_size"
    assert bad.check("signature").evidence["manifest_differs_from_chain"] == ["artifact_size"]
    # revocation: the release itself, then an ancestor, each with its reason or the lack of one
    deployed.client.revoke(parent.result.record.id, "", deployed.publisher)
    gone = verify(parent.ref, file=parent.model, settings=parent.settings)
    assert gone.exit_code == 12 and gone.check("not_revoked").detail == f"{parent.ref} was revoked: (no reason given)"
    assert gone.check("not_revoked").evidence["reason"] == "" and gone.check("not_revoked").evidence["revoked_at"] > 0
    assert gone.check("not_revoked").evidence["release_id"] == "0x" + parent.result.record.id.hex()
    orphan = verify(child.ref, file=child.model, settings=child.settings)
    assert orphan.exit_code == 12
    assert orphan.check("not_revoked").detail == f"ancestor {parent.ref} was revoked: (no reason given)"
    assert orphan.check("not_revoked").evidence["lineage"] == [parent.ref]


def test_chain_checks_say_what_they_could_not_read_offline(tmp_path: Path) -> None:
    from registry.policy import Policy

    rel = offline_release(tmp_path)
    me = rel.publisher.address
    report = rel.verify()
    assert report.check("not_revoked").status == "skip" and "offline" in report.check("not_revoked").detail
    assert report.check("publisher_authorised").detail == f"{me} is a trusted publisher (offline)"
    assert report.check("signature").evidence["pinned_by"] == ["local profile"]
    untrusted = rel.verify(trust=[])
    assert untrusted.check("publisher_authorised").detail.startswith("offline verification needs trusted publishers")
    other = rel.verify(trust=["0x" + "11" * 20])
    assert other.check("publisher_authorised").detail == f"publisher {me} is not in the trusted set"
    assert other.check("publisher_authorised").evidence["trusted"] == ["0x" + "11" * 20]
    pinned = rel.verify(policy=Policy(contract="0x" + "22" * 20))
    sig = pinned.check("signature")
    assert sig.status == "fail" and "signed for contract" in sig.detail and sig.evidence["domain_source"] == "policy"
    assert sig.evidence["expected_contract"] == "0x" + "22" * 20
    chain = rel.verify(chain_id=5)
    assert chain.check("signature").evidence["expected_chain_id"] == 5
    assert "signed for chain 31337, --chain-id expects 5" in chain.check("signature").detail


def test_an_onnx_refusal_is_check_8s_with_the_rule_it_broke(tmp_path: Path) -> None:
    from registry.policy import Policy

    rel = offline_release(tmp_path)
    report = rel.verify(policy=Policy(allowed_ops=frozenset({"Relu"})))
    onnx_check = report.check("onnx")
    assert onnx_check.status == "fail" and report.exit_code == 14
    assert onnx_check.detail == "op types not in the policy's allow-list: Gemm"


def test_rule_texts_quote_at_most_64_characters_of_a_label_and_survive_a_failed_provenance(tmp_path: Path) -> None:
    from registry.policy import Policy

    rel = offline_release(tmp_path)
    long = "x" * 100
    report = rel.verify(policy=Policy(refuse_rollback=True), installed_version=long)
    assert f"installed {'x' * 64!r} (not SemVer 2.0.0): refused" in report.check("policy").detail
    # a provenance that failed gives the accuracy rule nothing to read: it says so, it does not crash
    failed = rel.verify(policy=Policy(min_accuracy=0.5), provenance=b'{"not": "the signed provenance"}')
    assert failed.check("provenance").status == "fail"
    assert failed.check("policy").detail == "provenance records no accuracy (predicate.metrics.accuracy)"


_REFUSED = {"code": -32005, "message": "query refused by the provider"}


def _refusing_rpc(upstream: str, refuse) -> Any:
    """A JSON-RPC front for the real node that refuses some calls, as public RPCs refuse log queries
    or rate-limit: ``refuse(call) -> bool`` picks them; everything else is forwarded unchanged."""
    import json

    from tests._rpc_proxy import RpcProxy

    def intercept(body: Any) -> tuple[int, bytes] | None:
        calls = body if isinstance(body, list) else [body]
        if not any(refuse(c) for c in calls):
            return None
        answers = [{"jsonrpc": "2.0", "id": c.get("id"), "error": _REFUSED} for c in calls]
        return 200, json.dumps(answers if isinstance(body, list) else answers[0]).encode()

    return RpcProxy(upstream, intercept)


def test_a_provider_that_refuses_the_reads_a_rule_needs_fails_that_rule_saying_why(deployed, tmp_path: Path) -> None:
    from registry.chain.lean import keccak
    from registry.config import load_settings
    from registry.policy import Policy

    pub = publish_tiny(deployed, tmp_path)
    selector = "0x" + keccak(b"attestationOf(bytes32,address)")[:4].hex()
    proxy = _refusing_rpc(deployed.rpc_url, lambda call: call.get("method") == "eth_getLogs" or (
        call.get("method") == "eth_call" and str(call["params"][0].get("data", call["params"][0].get("input", "")))
        .startswith(selector)))
    try:
        settings = load_settings(env={"REGISTRY_HOME": str(deployed.home), "REGISTRY_RPC_URL": proxy.url,
                                      "REGISTRY_CHAIN_ID": str(deployed.chain_id),
                                      "REGISTRY_CONTRACT": deployed.address, "REGISTRY_CONFIRMATIONS": "0"})
        rules = Policy(min_confirmations=1, required_attestations=1, attesters=(deployed.accounts[2].address,))
        report = verify(pub.ref, file=pub.model, policy=rules, settings=settings)
        problems = report.check("policy").detail.split("; ")
        assert report.check("policy").status == "fail" and len(problems) == 2, report.check("policy").detail
        assert problems[0].startswith("cannot count confirmations: ") and "refused by the provider" in problems[0]
        assert problems[1].startswith("cannot read attestations: ") and "refused by the provider" in problems[1]
        assert [c.status for c in report.checks[:7]] == ["pass"] * 7
    finally:
        proxy.close()


def test_a_provider_that_refuses_the_publisher_read_fails_that_check_not_the_verify(deployed, tmp_path: Path) -> None:
    from registry.chain.lean import keccak
    from registry.config import load_settings

    pub = publish_tiny(deployed, tmp_path)
    selector = "0x" + keccak(b"mayPublish(string,address)")[:4].hex()
    proxy = _refusing_rpc(deployed.rpc_url, lambda call: call.get("method") == "eth_call" and str(
        call["params"][0].get("data", call["params"][0].get("input", ""))).startswith(selector))
    try:
        settings = load_settings(env={"REGISTRY_HOME": str(deployed.home), "REGISTRY_RPC_URL": proxy.url,
                                      "REGISTRY_CHAIN_ID": str(deployed.chain_id),
                                      "REGISTRY_CONTRACT": deployed.address, "REGISTRY_CONFIRMATIONS": "0"})
        report = verify(pub.ref, file=pub.model, settings=settings)
        check = report.check("publisher_authorised")
        assert check.status == "fail" and check.detail.startswith("cannot read publishers: ")
        assert report.exit_code == check.exit_code != 0
        assert check.evidence == {"publisher": deployed.publisher.address, "trusted": []}
        assert report.check("sha256").status == "pass" and report.check("not_revoked").status == "pass"
    finally:
        proxy.close()


# ------------------------------------------------------------------------------------------
# The chain checks' decisions against a scripted reader (no anvil): what each verdict rests on
# ------------------------------------------------------------------------------------------


class _ScriptedReader:
    """A ChainReader whose answers a test fixes: releases by id, may_publish, a wallet's code and reply."""

    def __init__(self, chain_id: int = 31337, address: str = "0x" + "ab" * 20, releases: dict | None = None,
                 allowed: bool | Exception = True, code: bytes = b"", wallet_reply: bytes = b"",
                 expect_digest: bytes | None = None) -> None:
        self.chain_id, self.address, self.releases = chain_id, address, releases or {}
        self.allowed, self.code, self.wallet_reply, self.expect_digest = allowed, code, wallet_reply, expect_digest
        self.asked: list[tuple[str, str]] = []
        self.calls: list[tuple[str, bytes]] = []

    def get_by_id(self, release_id: bytes) -> Any:
        if release_id not in self.releases:
            raise ChainError("no such release")
        return self.releases[release_id]

    def may_publish(self, name: str, publisher: str) -> bool:
        self.asked.append((name, publisher))
        if isinstance(self.allowed, Exception):
            raise self.allowed
        return self.allowed

    def get_code(self, address: str) -> bytes:
        return self.code

    def eth_call(self, to: str, data: bytes) -> bytes:
        self.calls.append((to, data))
        if self.expect_digest is not None and self.expect_digest not in data:
            return b"\xff" * 32
        return self.wallet_reply


def _record(name: str = "acme/m", version: str = "1.0.0", parent: bytes = b"\x00" * 32, revoked_at: int = 0,
            reason: str = "", publisher: str = "0x" + "11" * 20, release: Release | None = None) -> Any:
    from registry.chain.records import ReleaseRecord

    rel = release or fake(name, version, parent)
    return ReleaseRecord(id=rel.id, name=rel.name, version=rel.version, artifact_sha256=rel.artifact_sha256,
                         artifact_cid=rel.artifact_cid, artifact_size=rel.artifact_size,
                         provenance_sha256=rel.provenance_sha256, provenance_cid=rel.provenance_cid,
                         parent=rel.parent, publisher=publisher, published_at=1, revoked_at=revoked_at,
                         revocation_reason=reason, card_sha256=rel.card_sha256, card_cid=rel.card_cid)


def _lineage(depth: int, revoked_at_level: int | None = None) -> tuple[Any, dict]:
    """A release with ``depth`` ancestors; the ancestor ``revoked_at_level`` levels up (1 = parent) is revoked."""
    releases: dict = {}
    parent = b"\x00" * 32
    for level in range(depth, 0, -1):
        rec = _record(version=f"0.0.{level}", parent=parent,
                      revoked_at=7 if level == revoked_at_level else 0, reason="bad" if level == 1 else "")
        releases[rec.id] = rec
        parent = rec.id
    return _record(version="9.0.0", parent=parent), releases


def test_revocation_offline_is_skipped_and_a_revoked_release_fails_with_its_reason() -> None:
    from registry.errors import RevokedError
    from registry.verify.chain_checks import check_not_revoked

    offline = check_not_revoked(_record(revoked_at=5), None)
    assert (offline.status, offline.detail) == ("skip", "offline: no RPC, revocation not checked (re-verify when online)")
    revoked = check_not_revoked(_record(revoked_at=5, reason="leaked key"), _ScriptedReader())
    assert (revoked.status, revoked.exit_code) == ("fail", RevokedError.exit_code)
    assert "leaked key" in revoked.detail and revoked.evidence["revoked_at"] == 5
    assert revoked.evidence["release_id"] == "0x" + _record().id.hex()
    assert revoked.evidence["reason"] == "leaked key"
    unreasoned = check_not_revoked(_record(revoked_at=5), _ScriptedReader())
    assert "(no reason given)" in unreasoned.detail
    root = check_not_revoked(_record(), _ScriptedReader())
    assert (root.status, root.detail, root.evidence) == ("pass", "not revoked", {"lineage": []})


def test_a_revoked_ancestor_anywhere_within_the_depth_fails_and_names_it() -> None:
    from registry.errors import RevokedError
    from registry.verify.chain_checks import check_not_revoked

    rec, releases = _lineage(3, revoked_at_level=3)
    check = check_not_revoked(rec, _ScriptedReader(releases=releases))
    assert (check.status, check.exit_code) == ("fail", RevokedError.exit_code)
    assert check.evidence["revoked_ancestor"] == "acme/m@0.0.3"
    assert check.evidence["lineage"] == ["acme/m@0.0.1", "acme/m@0.0.2", "acme/m@0.0.3"]
    assert check.evidence["revoked_at"] == 7 and "ancestor acme/m@0.0.3 was revoked: (no reason given)" in check.detail
    parent_revoked = check_not_revoked(*(lambda r, rs: (r, _ScriptedReader(releases=rs)))(*_lineage(2, 1)))
    assert "ancestor acme/m@0.0.1 was revoked: bad" in parent_revoked.detail
    assert parent_revoked.evidence["reason"] == "bad"
    assert parent_revoked.evidence["release_id"] == "0x" + _record(version="0.0.1").id.hex()
    clean, releases = _lineage(3)
    ok = check_not_revoked(clean, _ScriptedReader(releases=releases))
    assert ok.status == "pass" and ok.detail == "not revoked (nor its 3 ancestors)"


def test_lineage_exactly_the_contracts_depth_passes_one_more_fails_closed() -> None:
    from registry.errors import RevokedError
    from registry.verify.chain_checks import MAX_PARENT_DEPTH, check_not_revoked

    assert MAX_PARENT_DEPTH == 64  # the contract's MAX_LINEAGE_DEPTH
    rec, releases = _lineage(MAX_PARENT_DEPTH)
    ok = check_not_revoked(rec, _ScriptedReader(releases=releases))
    assert ok.status == "pass" and len(ok.evidence["lineage"]) == MAX_PARENT_DEPTH
    rec, releases = _lineage(MAX_PARENT_DEPTH + 1)
    deep = check_not_revoked(rec, _ScriptedReader(releases=releases))
    assert (deep.status, deep.exit_code) == ("fail", RevokedError.exit_code)
    assert deep.evidence["max_depth"] == MAX_PARENT_DEPTH and len(deep.evidence["lineage"]) == MAX_PARENT_DEPTH
    assert "deeper than 64" in deep.detail
    assert deep.detail.endswith("(the contract's MAX_LINEAGE_DEPTH; publish a new root release)")


def test_an_unreadable_ancestor_fails_revocation_with_the_chains_exit_code() -> None:
    from registry.verify.chain_checks import check_not_revoked

    rec, releases = _lineage(2)
    del releases[rec.parent]
    check = check_not_revoked(rec, _ScriptedReader(releases=releases))
    assert (check.status, check.exit_code) == ("fail", ChainError.exit_code)
    assert "cannot read the lineage" in check.detail and check.evidence == {"lineage": []}
    assert check.name == "not_revoked"


def test_publisher_authorisation_trusted_set_offline_and_on_chain() -> None:
    from registry.errors import SignatureError
    from registry.verify.chain_checks import check_publisher

    pub, other = "0x" + "11" * 20, "0x" + "22" * 20
    rec = _record(publisher=pub)
    untrusted = check_publisher(rec, _ScriptedReader(), frozenset({other}))
    assert (untrusted.status, untrusted.exit_code) == ("fail", SignatureError.exit_code)
    assert "not in the trusted set" in untrusted.detail
    unpinned = check_publisher(rec, None, frozenset())
    assert (unpinned.status, unpinned.exit_code) == ("fail", SignatureError.exit_code)
    assert "--trust ADDR or policy trusted_publishers" in unpinned.detail
    assert unpinned.evidence == {"publisher": pub, "trusted": []}
    offline = check_publisher(rec, None, frozenset({pub}))
    assert offline.status == "pass" and "(offline)" in offline.detail
    assert offline.evidence == {"publisher": pub, "trusted": [pub]}
    reader = _ScriptedReader(allowed=True)
    online = check_publisher(rec, reader, frozenset())
    assert online.status == "pass" and reader.asked == [("acme/m", pub)]
    assert online.detail == f"{pub} is a publisher of acme/m" and online.evidence["may_publish_on_chain"] is True
    assert check_publisher(rec, _ScriptedReader(), frozenset({pub})).detail.endswith(" and trusted")
    removed = check_publisher(rec, _ScriptedReader(allowed=False), frozenset({pub}))
    assert (removed.status, removed.exit_code) == ("fail", SignatureError.exit_code)
    assert removed.evidence["may_publish_on_chain"] is False and removed.evidence["publisher"] == pub
    assert removed.detail.endswith("may no longer publish acme/m on chain (removed publisher or former namespace "
                                   "owner): its releases no longer count")
    broken = check_publisher(rec, _ScriptedReader(allowed=ChainError("rpc down")), frozenset())
    assert (broken.status, broken.exit_code) == ("fail", ChainError.exit_code) and "rpc down" in broken.detail


def _signed(tmp_path: Path, chain_id: int = 31337, contract: str = "0x" + "ab" * 20) -> Any:
    from eth_utils import to_checksum_address

    return offline_release(tmp_path, chain_id=chain_id, contract=to_checksum_address(contract))


def _record_of(off: Any, **changes: Any) -> Any:
    import dataclasses

    return _record(release=dataclasses.replace(off.manifest.release, **changes) if changes else off.manifest.release,
                   publisher=off.publisher.address)


def test_signature_domain_pins_each_source(tmp_path: Path) -> None:
    import dataclasses

    from registry.errors import SignatureError
    from registry.policy import Policy
    from registry.verify.chain_checks import check_signature

    off = _signed(tmp_path)
    rec, pol, s = _record_of(off), Policy(), off.settings
    chain_word = check_signature(rec, None, _ScriptedReader(), pol, s)
    assert (chain_word.status, chain_word.evidence) == ("pass", {"publisher": rec.publisher, "source": "chain"})
    assert chain_word.detail == "checked by the contract at publish time (no manifest to re-check)"
    ok = check_signature(rec, off.manifest, _ScriptedReader(), pol, s)
    assert ok.status == "pass" and ok.evidence["recovered"] == off.publisher.address
    assert ok.evidence["pinned_by"] == ["chain", "local profile"]
    assert ok.detail == f"EIP-712 signature recovers to {off.publisher.address}"
    other_chain = check_signature(rec, off.manifest, _ScriptedReader(chain_id=1), pol, s)
    assert (other_chain.status, other_chain.exit_code) == ("fail", SignatureError.exit_code)
    assert other_chain.evidence["domain_source"] == "chain" and other_chain.evidence["expected_chain_id"] == 1
    assert other_chain.detail == "manifest is signed for chain 31337, chain expects 1 (replayed from another chain?)"
    other_contract = check_signature(rec, off.manifest, _ScriptedReader(address="0x" + "cd" * 20), pol, s)
    assert other_contract.status == "fail" and other_contract.evidence["domain_source"] == "chain"
    assert other_contract.evidence["expected_contract"].lower() == "0x" + "cd" * 20
    assert other_contract.detail.startswith(f"manifest is signed for contract {off.manifest.contract}, chain expects")
    assert other_contract.detail.endswith("(replayed from another contract?)")
    contract_only = check_signature(rec, off.manifest, _ScriptedReader(), Policy(contract=off.manifest.contract), s)
    assert contract_only.status == "pass" and contract_only.evidence["pinned_by"] == ["chain", "policy", "local profile"]
    by_policy = check_signature(rec, off.manifest, None, Policy(chain_id=5), s)
    assert by_policy.status == "fail" and by_policy.evidence["domain_source"] == "policy"
    by_policy_contract = check_signature(rec, off.manifest, None, Policy(contract="0x" + "cd" * 20), s)
    assert by_policy_contract.status == "fail" and by_policy_contract.evidence["domain_source"] == "policy"
    remote = dataclasses.replace(s, profile=dataclasses.replace(s.profile, name="remote", rpc_url="http://127.0.0.1:9"))
    unpinned = check_signature(rec, off.manifest, None, pol, remote)  # nothing pins the chain
    assert unpinned.status == "fail" and unpinned.detail == (
        "offline verification needs the chain the manifest must be signed for: "
        "--chain-id, a policy chain_id, or a profile with a chain id")
    assert unpinned.evidence["claimed_publisher"] == off.publisher.address and unpinned.evidence["nonce"] == 0
    assert check_signature(rec, off.manifest, None, pol, remote, chain_id=31337).status == "pass"
    assert check_signature(rec, off.manifest, None, Policy(contract=off.manifest.contract), remote).status == "fail"
    pinned = dataclasses.replace(remote, profile=dataclasses.replace(remote.profile, chain_id=31337,
                                                                        contract="0x" + "cd" * 20))
    by_profile = check_signature(rec, off.manifest, None, pol, pinned)
    assert by_profile.status == "fail" and by_profile.evidence["domain_source"] == "profile"
    profile_chain = dataclasses.replace(remote, profile=dataclasses.replace(remote.profile, chain_id=7))
    assert check_signature(rec, off.manifest, None, pol, profile_chain).evidence["domain_source"] == "profile"
    by_option = check_signature(rec, off.manifest, None, pol, remote, chain_id=8)
    assert by_option.status == "fail" and by_option.evidence["domain_source"] == "--chain-id"


def test_online_signature_is_checked_over_the_chains_record(tmp_path: Path) -> None:
    from registry.policy import Policy
    from registry.verify.chain_checks import check_signature

    off = _signed(tmp_path)
    pol, s = Policy(), off.settings
    # the chain's record differs from what was signed: the signature no longer recovers to the publisher
    swapped = check_signature(_record_of(off, artifact_size=11, provenance_sha256=b"\x01" * 32), off.manifest,
                              _ScriptedReader(), pol, s)
    assert swapped.status == "fail" and "not the publisher" in swapped.detail
    assert swapped.detail.endswith(" (manifest differs from chain in artifact_size, provenance_sha256)")
    assert swapped.evidence["manifest_differs_from_chain"] == ["artifact_size", "provenance_sha256"]
    # offline the manifest's own fields are what was signed, so the same record passes
    assert check_signature(_record_of(off, artifact_size=11), off.manifest, None, pol, s).status == "pass"


def test_a_manifest_differing_from_the_signed_record_fails_even_when_the_signature_recovers(tmp_path: Path) -> None:
    import dataclasses

    from registry.policy import Policy
    from registry.verify.chain_checks import check_signature

    off = _signed(tmp_path)
    altered = dataclasses.replace(off.manifest, release=dataclasses.replace(off.manifest.release, artifact_size=99,
                                                                             provenance_sha256=b"\x01" * 32))
    check = check_signature(_record_of(off), altered, _ScriptedReader(), Policy(), off.settings)
    assert check.status == "fail"
    assert check.detail == "manifest differs from the chain record in artifact_size, provenance_sha256"
    assert check.evidence["recovered"] == off.publisher.address


def test_an_erc1271_wallet_publisher_is_asked_over_the_signed_digest(tmp_path: Path) -> None:
    from registry.chain.reads import ERC1271_MAGIC
    from registry.policy import Policy
    from registry.release import signing_digest
    from registry.verify.chain_checks import check_signature

    off = _signed(tmp_path)
    wallet = "0x" + "77" * 20
    rec = _record(release=off.manifest.release, publisher=wallet)
    digest = signing_digest(off.manifest.release, off.manifest.chain_id, off.manifest.contract)
    accepting = _ScriptedReader(code=b"\x60", wallet_reply=ERC1271_MAGIC + b"\x00" * 28, expect_digest=digest)
    ok = check_signature(rec, off.manifest, accepting, Policy(), off.settings)
    assert ok.status == "pass" and ok.evidence["erc1271"] is True and wallet in ok.detail
    assert ok.name == "signature"
    assert accepting.calls and accepting.calls[0][0] == wallet and off.manifest.signature in accepting.calls[0][1]
    refusing = _ScriptedReader(code=b"\x60", wallet_reply=b"\x00" * 32)
    refused = check_signature(rec, off.manifest, refusing, Policy(), off.settings)
    assert refused.status == "fail" and "erc1271" not in refused.evidence
    assert refused.detail == f"signature recovers to {off.publisher.address}, not the publisher {wallet}"
    no_code = _ScriptedReader(code=b"", wallet_reply=ERC1271_MAGIC)
    assert check_signature(rec, off.manifest, no_code, Policy(), off.settings).status == "fail"
    # offline a wallet cannot be asked: a signature by someone else fails
    assert check_signature(rec, off.manifest, None, Policy(), off.settings).status == "fail"


def test_a_malformed_signature_fails_the_signature_check_saying_why(tmp_path: Path) -> None:
    import dataclasses

    from registry.errors import SignatureError
    from registry.policy import Policy
    from registry.verify.chain_checks import check_signature

    off = _signed(tmp_path)
    bad_v = dataclasses.replace(off.manifest, signature=off.manifest.signature[:64] + bytes([29]))
    for client in (_ScriptedReader(), None):
        check = check_signature(_record_of(off), bad_v, client, Policy(), off.settings)
        assert (check.status, check.exit_code) == ("fail", SignatureError.exit_code)
        assert check.name == "signature" and "recovers" not in check.detail and check.detail != "None"
        assert check.evidence["claimed_publisher"] == off.publisher.address and "recovered" not in check.evidence
