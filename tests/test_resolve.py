"""One reference resolver for every command: digests that several names share, bytes revoked
anywhere, aliases, SemVer labels; and verify/pull/load_verified taking each reference form."""

from __future__ import annotations

import dataclasses
import secrets
from pathlib import Path
from typing import Any

import pytest

from registry.chain.resolve import AmbiguousReference
from registry.errors import ChainError, InputError, RevokedError, SignatureError
from registry.release import Release
from registry.verify import load_verified, verify

from tests._verify_fixtures import publish_tiny, tiny_onnx


def fake(name: str, version: str, sha: bytes | None = None) -> Release:
    digest = sha or secrets.token_bytes(32)
    prov = secrets.token_bytes(32)
    return Release(name=name, version=version, artifact_sha256=digest,
                   artifact_cid=bytes([1, 0x55, 0x12, 0x20]) + digest, artifact_size=10, provenance_sha256=prov,
                   provenance_cid=bytes([1, 0x55, 0x12, 0x20]) + prov, deadline=2**40)


@pytest.fixture
def two_namespaces(deployed: Any) -> tuple[Any, Any]:
    victim, attacker = deployed.accounts[1], deployed.accounts[2]
    deployed.client.claim_namespace("victim", victim)
    deployed.client.claim_namespace("attacker", attacker)
    return victim, attacker


def test_digest_shared_by_two_names_is_refused_unless_trust_narrows_it(deployed, two_namespaces) -> None:
    client = deployed.client
    victim, attacker = two_namespaces
    shared = secrets.token_bytes(32)
    mine = client.sign_and_publish(fake("victim/model", "1.0.0", shared), victim)
    # The attacker re-publishes the same bytes under its own name (provenance could claim anything).
    theirs = client.sign_and_publish(fake("attacker/model", "9.9.9", shared), attacker)
    ref = "sha256:" + shared.hex()
    with pytest.raises(AmbiguousReference, match="2 names") as info:
        client.resolve(ref)
    assert "attacker/model" in str(info.value) and "victim/model" in str(info.value)
    # the message names the bytes (16 hex digits), both names as a list, and the ways out
    assert str(info.value).startswith(f"the bytes sha256:{shared.hex()[:16]}… are released under 2 names "
                                      "(attacker/model, victim/model): refused; use NAME@VERSION, or --trust")
    assert info.value.exit_code == InputError.exit_code == 3
    assert client.resolve(ref, trusted=[victim.address]) == mine
    assert client.resolve(ref, trusted=[attacker.address]) == theirs
    with pytest.raises(SignatureError, match="no release .* is by a trusted publisher") as info:
        client.resolve(ref, trusted=[deployed.accounts[5].address])
    assert str(info.value).startswith(f"no release of sha256:{shared.hex()[:16]}… is by a trusted publisher")
    assert f"(published by {', '.join(sorted([victim.address, attacker.address]))})" in str(info.value)
    # Same bytes, same name, two versions: not ambiguous, the newest that counts wins.
    again = client.sign_and_publish(fake("victim/model", "1.1.0", shared), victim)
    assert client.resolve(ref, trusted=[victim.address]) == again


def test_bytes_revoked_anywhere_are_revoked(deployed, two_namespaces) -> None:
    client = deployed.client
    victim, attacker = two_namespaces
    shared = secrets.token_bytes(32)
    mine = client.sign_and_publish(fake("victim/model", "1.0.0", shared), victim)
    client.revoke(mine.id, "backdoored weights", victim)
    client.sign_and_publish(fake("attacker/model", "2.0.0", shared), attacker)
    for trusted in ((), (attacker.address,)):
        with pytest.raises(RevokedError, match="backdoored weights"):
            client.resolve("sha256:" + shared.hex(), trusted=trusted)


def test_too_many_releases_of_one_digest_are_refused(deployed, two_namespaces, monkeypatch) -> None:
    import registry.chain.resolve as resolve

    client = deployed.client
    victim, _ = two_namespaces
    shared = secrets.token_bytes(32)
    for i in range(4):
        client.sign_and_publish(fake("victim/model", f"1.{i}.0", shared), victim)
    monkeypatch.setattr(resolve, "MAX_DIGEST_RELEASES", 3)
    reads: list[int] = []
    real = client.get_by_id
    monkeypatch.setattr(client, "get_by_id", lambda rid: (reads.append(1), real(rid))[1])
    with pytest.raises(AmbiguousReference, match="more than 3 releases") as info:
        client.resolve("sha256:" + shared.hex())
    assert str(info.value).endswith("refused as too ambiguous to check; use NAME@VERSION")
    assert reads == []  # refused from the id pages alone, before reading any record
    monkeypatch.setattr(resolve, "MAX_DIGEST_RELEASES", 4)
    assert client.resolve("sha256:" + shared.hex()).version == "1.3.0"


def test_unknown_digest_and_removed_publishers(deployed, two_namespaces) -> None:
    client = deployed.client
    victim, _ = two_namespaces
    helper = deployed.accounts[3]
    with pytest.raises(ChainError, match="no release has artifact"):
        client.resolve("sha256:" + secrets.token_bytes(32).hex())
    client.add_publisher("victim/model", helper.address, victim)
    only = client.sign_and_publish(fake("victim/model", "1.0.0"), helper)
    client.remove_publisher("victim/model", helper.address, victim)
    with pytest.raises(ChainError, match="no longer publish") as info:
        client.resolve("sha256:" + only.artifact_sha256.hex())
    assert str(info.value).startswith(f"no release of sha256:{only.artifact_sha256.hex()[:16]}… still counts")
    assert str(info.value).endswith("may no longer publish victim/model")
    with pytest.raises(ChainError, match="NoActiveRelease"):
        client.resolve("victim/model@latest")


def test_labels_that_are_not_semver_are_refused(deployed, two_namespaces) -> None:
    """The contract checks only the character set: a label like 1.0 can be on chain, never resolved."""
    client = deployed.client
    victim, _ = two_namespaces
    bad = client.prepare(fake("victim/model", "1.0"), victim.address)
    fn = client.contract.functions.publish(bad.as_tuple(), victim.address, client.sign(bad, victim))
    client._write(fn, victim)  # straight to the contract: the Python client would refuse the label
    for ref in ("victim/model@latest", "sha256:" + bad.artifact_sha256.hex()):
        with pytest.raises(ChainError, match="not SemVer") as info:
            client.resolve(ref)
        assert str(info.value) == ("victim/model has a release labelled '1.0', which is not SemVer 2.0.0: refused "
                                   "(its order against other versions is undefined)")
    client.set_alias("victim/model", "production", bad.id, victim)
    with pytest.raises(ChainError, match="not SemVer"):
        client.resolve("victim/model@production")


def test_aliases_resolve_everywhere_a_reference_is_taken(deployed, tmp_path: Path) -> None:
    from registry.pull import pull

    one = publish_tiny(deployed, tmp_path, version="1.0.0", seed=1)
    two = publish_tiny(deployed, tmp_path, version="1.1.0", seed=2)
    owner = deployed.publisher
    deployed.client.set_alias("acme/tiny", "production", one.result.record.id, owner)
    ref = "acme/tiny@production"

    report = verify(ref, settings=one.settings)
    assert report.ok and report.release is not None and report.release.version == "1.0.0"
    session = load_verified(ref, settings=one.settings)
    assert session.get_inputs()[0].name == "x"
    pulled = pull(ref, tmp_path / "device", settings=one.settings)
    assert pulled.model_path.read_bytes() == one.model.read_bytes()

    # A manifest must agree with where the alias points now.
    stale = verify(ref, file=two.model, manifest=two.manifest_path, settings=two.settings)
    assert stale.exit_code == 3 and "but acme/tiny@production is acme/tiny@1.0.0" in stale.check("resolve").detail

    # Revoking the target turns the alias into an error (exit 12), never the revoked bytes.
    deployed.client.revoke(one.result.record.id, "bad calibration", owner)
    report = verify(ref, settings=one.settings)
    assert report.exit_code == 12 and report.check("resolve").status == "fail"
    assert "points at acme/tiny@1.0.0, which was revoked" in report.check("resolve").detail
    with pytest.raises(Exception) as info:
        load_verified(ref, settings=one.settings)
    assert getattr(info.value, "exit_code", None) == 12


def test_verify_by_digest_with_two_names_exits_3_with_the_list(deployed, tmp_path: Path) -> None:
    mine = publish_tiny(deployed, tmp_path, name="acme/tiny", version="1.0.0", seed=4)
    attacker = deployed.accounts[6]
    copy = dataclasses.replace(mine.result.manifest.release, name="evil/tiny", version="1.0.0")
    deployed.client.claim_namespace("evil", attacker)
    deployed.client.sign_and_publish(copy, attacker)
    ref = "sha256:" + mine.result.record.artifact_sha256.hex()
    report = verify(ref, data=tiny_onnx(4), settings=mine.settings)
    assert report.exit_code == 3
    assert "acme/tiny" in report.check("resolve").detail and "evil/tiny" in report.check("resolve").detail
    narrowed = verify(ref, data=tiny_onnx(4), settings=mine.settings, trust=[deployed.publisher.address])
    assert narrowed.ok and narrowed.release is not None and narrowed.release.name == "acme/tiny"
