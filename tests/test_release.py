"""registry.release: EIP-712 digest and signatures against the real contract, name/version rules."""

from __future__ import annotations

import dataclasses
import re
import secrets

import pytest
from eth_account import Account
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from registry.errors import InputError, SignatureError
from registry.release import (
    SECP256K1_N,
    Ref,
    Release,
    is_valid_alias,
    is_valid_name,
    is_valid_namespace,
    is_valid_version,
    parse_ref,
    recover_publisher,
    release_id,
    sign_release,
    signing_digest,
    typed_data,
    validate_name,
    validate_version,
)

CONTRACT = "0x5FbDB2315678afecb367f032d93F642f64180aa3"


def cid(digest: bytes, codec: int = 0x55) -> bytes:
    return bytes([0x01, codec, 0x12, 0x20]) + digest


def sample_release(**changes: object) -> Release:
    base = Release(
        name="acme/demo",
        version="1.0.0",
        artifact_sha256=secrets.token_bytes(32),
        artifact_cid=cid(secrets.token_bytes(32)),
        artifact_size=1234,
        provenance_sha256=secrets.token_bytes(32),
        provenance_cid=cid(secrets.token_bytes(32), 0x70),
        parent=b"\x00" * 32,
        nonce=0,
        deadline=2**64,
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


# ------------------------------------------------------------------------------------------
# Signing and recovery (pure)
# ------------------------------------------------------------------------------------------


def test_sign_and_recover_round_trip(dev_accounts: list) -> None:
    release = sample_release()
    signature = sign_release(release, dev_accounts[3], 31337, CONTRACT)
    assert len(signature) == 65
    assert recover_publisher(release, signature, 31337, CONTRACT) == dev_accounts[3].address


@pytest.mark.parametrize(
    "change",
    [
        {"version": "1.0.1"},
        {"artifact_size": 1235},
        {"nonce": 1},
        {"deadline": 2**64 + 1},
        {"parent": b"\x01" * 32},
        {"name": "acme/demo2"},
    ],
)
def test_any_field_change_changes_the_signer(dev_accounts: list, change: dict) -> None:
    release = sample_release()
    signature = sign_release(release, dev_accounts[1], 31337, CONTRACT)
    tampered = dataclasses.replace(release, **change)
    assert recover_publisher(tampered, signature, 31337, CONTRACT) != dev_accounts[1].address


def test_domain_binds_chain_and_contract(dev_accounts: list) -> None:
    release = sample_release()
    signature = sign_release(release, dev_accounts[1], 31337, CONTRACT)
    assert recover_publisher(release, signature, 1, CONTRACT) != dev_accounts[1].address
    other = "0x" + "11" * 20
    assert recover_publisher(release, signature, 31337, other) != dev_accounts[1].address
    assert signing_digest(release, 1, CONTRACT) != signing_digest(release, 31337, CONTRACT)


def test_malformed_signature_is_a_signature_error() -> None:
    with pytest.raises(SignatureError):
        recover_publisher(sample_release(), b"\x00" * 10, 31337, CONTRACT)


def test_typed_data_shape() -> None:
    data = typed_data(sample_release(), 31337, CONTRACT.lower())
    assert data["primaryType"] == "Release"
    assert data["domain"] == {
        "name": "ModelRegistry",
        "version": "1",
        "chainId": 31337,
        "verifyingContract": CONTRACT,
    }
    assert [f["name"] for f in data["types"]["Release"]] == [
        "name", "version", "artifactSha256", "artifactCid", "artifactSize",
        "provenanceSha256", "provenanceCid", "cardSha256", "cardCid", "parent", "nonce", "deadline",
    ]


def test_release_rejects_wrong_lengths() -> None:
    with pytest.raises(InputError):
        sample_release(artifact_sha256=b"\x00" * 31)
    with pytest.raises(InputError):
        sample_release(parent=b"")
    with pytest.raises(InputError):
        sample_release(artifact_size=-1)
    with pytest.raises(InputError):
        sample_release(artifact_size=2**64)
    with pytest.raises(InputError, match="both"):  # a card digest without its CID, and the reverse
        sample_release(card_sha256=b"\x01" * 32)
    with pytest.raises(InputError, match="both"):
        sample_release(card_cid=cid(b"\x01" * 32))
    with pytest.raises(InputError):
        sample_release(card_sha256=b"\x01" * 31, card_cid=cid(b"\x01" * 32))


def test_high_s_and_odd_v_signatures_are_refused(dev_accounts: list) -> None:
    """The contract (OpenZeppelin ECDSA) accepts only low-s, v in {27, 28}: the verifier must too."""
    release = sample_release()
    good = sign_release(release, dev_accounts[3], 31337, CONTRACT)
    r, s_value, v = good[:32], int.from_bytes(good[32:64], "big"), good[64]
    assert s_value <= SECP256K1_N // 2 and v in (27, 28)
    assert recover_publisher(release, good, 31337, CONTRACT) == dev_accounts[3].address
    # The malleated twin recovers to the same key with eth-account, but is not the canonical form.
    twin = r + (SECP256K1_N - s_value).to_bytes(32, "big") + bytes([55 - v])
    # eth-account alone is lenient: it recovers the same key from the twin and from v in {0, 1}.
    from eth_account.messages import encode_typed_data

    signable = encode_typed_data(full_message=typed_data(release, 31337, CONTRACT))
    assert Account.recover_message(signable, signature=twin) == dev_accounts[3].address
    assert Account.recover_message(signable, signature=good[:64] + bytes([v - 27])) == dev_accounts[3].address
    with pytest.raises(SignatureError, match="upper half"):
        recover_publisher(release, twin, 31337, CONTRACT)
    for bad_v in (0, 1, 29):
        with pytest.raises(SignatureError, match="v is"):
            recover_publisher(release, good[:64] + bytes([bad_v]), 31337, CONTRACT)
    for bad in (good[:64], good + b"\x00", b"\x00" * 65):
        with pytest.raises(SignatureError):
            recover_publisher(release, bad, 31337, CONTRACT)


def test_json_round_trip() -> None:
    release = sample_release(deadline=2**256 - 1, nonce=7)
    assert Release.from_json(release.to_json()) == release
    broken = release.to_json()
    del broken["artifactCid"]
    with pytest.raises(InputError):
        Release.from_json(broken)
    with pytest.raises(InputError):
        Release.from_json({**release.to_json(), "artifactSha256": "0xzz"})


# ------------------------------------------------------------------------------------------
# Against the contract on anvil
# ------------------------------------------------------------------------------------------


def test_digest_equals_contract_hash_release(deployed) -> None:
    client = deployed.client
    for release in (
        sample_release(),
        sample_release(name="a/b", version="0.0.1-rc.1+build.5", nonce=3, deadline=2**256 - 1, parent=b"\xff" * 32),
        sample_release(artifact_cid=b"", provenance_cid=b"\x01" * 100, artifact_size=2**64 - 1),
        sample_release(card_sha256=b"\x07" * 32, card_cid=cid(b"\x08" * 32)),
    ):
        assert signing_digest(release, client.chain_id, client.address) == client.hash_release(release)


def test_release_id_equals_contract(deployed) -> None:
    fn = deployed.client.contract.functions.computeReleaseId
    for name, version in [("acme/demo", "1.0.0"), ("x/y", "2.0.0-alpha+sha.1"), ("é/ü", "")]:
        assert release_id(name, version) == bytes(fn(name, version).call())


def test_contract_accepts_python_signature_and_records_signer(deployed) -> None:
    client = deployed.client
    signer, relayer = deployed.accounts[2], deployed.accounts[5]
    client.claim_namespace("acme", signer)
    release = client.prepare(sample_release(card_sha256=b"\x07" * 32, card_cid=cid(b"\x07" * 32)), signer.address)
    signature = sign_release(release, signer, client.chain_id, client.address)
    assert recover_publisher(release, signature, client.chain_id, client.address) == signer.address
    record = client.publish(release, signature, signer.address, relayer)
    assert record.publisher == signer.address
    assert record.id == release_id("acme/demo", "1.0.0")
    assert (record.card_sha256, record.card_cid) == (release.card_sha256, release.card_cid)
    # The contract refuses the malleated twin of a signature it would accept.
    second = client.prepare(sample_release(version="1.0.1"), signer.address)
    good = sign_release(second, signer, client.chain_id, client.address)
    twin = good[:32] + (SECP256K1_N - int.from_bytes(good[32:64], "big")).to_bytes(32, "big") + bytes([55 - good[64]])
    from registry.chain.errors import ContractRevert

    with pytest.raises(ContractRevert, match="InvalidSignature"):
        client.publish(second, twin, signer.address, relayer)


# ------------------------------------------------------------------------------------------
# Names, versions, refs
# ------------------------------------------------------------------------------------------

NAME_CHARS = "abcdefghijklmnopqrstuvwxyz0123456789._-"
SEMVER_OFFICIAL = re.compile(
    r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    r"(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?"
    r"(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?$",
    re.ASCII,
)


def reference_name_rule(name: str) -> bool:
    """The rule as DESIGN.md states it, written independently of the implementation."""
    parts = name.split("/")
    return len(parts) == 2 and all(
        1 <= len(p) <= 64 and all(c in NAME_CHARS for c in p) and p not in (".", "..") for p in parts
    )


@given(st.text(alphabet=NAME_CHARS + "/A Z_é\n", max_size=140))
def test_name_rule_agrees_with_spec(name: str) -> None:
    assert is_valid_name(name) == reference_name_rule(name)


@given(st.text(alphabet=NAME_CHARS, min_size=1, max_size=64), st.text(alphabet=NAME_CHARS, min_size=1, max_size=64))
def test_valid_names_accepted(owner: str, model: str) -> None:
    assume(owner not in (".", "..") and model not in (".", ".."))
    assert validate_name(f"{owner}/{model}") == f"{owner}/{model}"


@settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture], deadline=None)
@given(st.one_of(
    st.text(alphabet=NAME_CHARS + "/A", max_size=70),
    st.builds(lambda a, b: f"{a}/{b}", st.text(alphabet=NAME_CHARS, min_size=0, max_size=66),
              st.text(alphabet=NAME_CHARS + "/", min_size=0, max_size=66)),
))
@example("./demo")
@example("acme/..")
@example("a.b/c..d")
def test_name_rule_agrees_with_contract(anvil: str, _registry_deployment: str, dev_accounts: list, name: str) -> None:
    """The contract's publish accepts exactly the names validate_name accepts: a valid name gets as far
    as the namespace check (unclaimed here), an invalid one stops at InvalidName."""
    from registry.chain.client import RegistryClient
    from registry.chain.errors import ContractRevert
    from registry.chain.tx import revert_from

    client = RegistryClient.at(anvil, _registry_deployment)
    release = sample_release(name="a/b")
    fn = client.contract.functions.publish((name, *release.as_tuple()[1:]), dev_accounts[9].address, b"")
    try:
        fn.call({"from": dev_accounts[9].address})
        raise AssertionError("publish of an unsigned release cannot succeed")
    except AssertionError:
        raise
    except Exception as exc:
        decoded = revert_from(exc)
        assert isinstance(decoded, ContractRevert)
        assert decoded.error_name in ("UnknownNamespace", "InvalidName"), decoded
        contract_ok = decoded.error_name == "UnknownNamespace"
    assert contract_ok == is_valid_name(name)


@settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture], deadline=None)
@given(st.text(alphabet=NAME_CHARS + "/A", max_size=70))
@example(".")
@example("..")
@example("...")
def test_namespace_rule_agrees_with_contract(anvil: str, _registry_deployment: str, dev_accounts: list,
                                             namespace: str) -> None:
    """claimNamespace's grammar check (before the commitment lookup) accepts what validate_namespace does."""
    from registry.chain.client import RegistryClient
    from registry.chain.tx import revert_from

    client = RegistryClient.at(anvil, _registry_deployment)
    try:
        client.contract.functions.claimNamespace(namespace, b"\x00" * 32).call({"from": dev_accounts[9].address})
        raise AssertionError("a claim without a commitment cannot succeed")
    except AssertionError:
        raise
    except Exception as exc:
        decoded = revert_from(exc)
        assert getattr(decoded, "error_name", None) in ("UnknownCommitment", "InvalidNamespace"), decoded
        assert (decoded.error_name == "UnknownCommitment") == is_valid_namespace(namespace)


ALIAS_CASES = ["production", "a", "a" * 32, "a" * 33, "z9-", "latest", "latest-2", "Prod", "1prod", "-prod", "prod_1",
               "prod.1", "prod 1", "", "é", "staging", "x-y-z"]


def test_alias_rule_agrees_with_contract(deployed) -> None:
    """setAlias accepts exactly the aliases validate_alias accepts (the rest of the call is valid)."""
    from registry.chain.tx import revert_from

    client, owner = deployed.client, deployed.accounts[2]
    client.claim_namespace("acme", owner)
    record = client.sign_and_publish(sample_release(), owner)
    for alias in ALIAS_CASES:
        try:
            client.contract.functions.setAlias("acme/demo", alias, record.id).call({"from": owner.address})
            contract_ok = True
        except Exception as exc:
            decoded = revert_from(exc)
            assert getattr(decoded, "error_name", None) == "InvalidAlias", (alias, decoded)
            contract_ok = False
        assert contract_ok == is_valid_alias(alias), alias


VERSION_CHARS = "0123456789abcXYZ.-+"


@given(st.text(alphabet=VERSION_CHARS, max_size=20))
def test_version_rule_agrees_with_semver(version: str) -> None:
    assert is_valid_version(version) == bool(SEMVER_OFFICIAL.match(version))


@given(
    st.integers(0, 10**6), st.integers(0, 10**6), st.integers(0, 10**6),
    st.lists(st.from_regex(r"[0-9A-Za-z-]{1,6}", fullmatch=True), max_size=3),
)
def test_generated_semver_accepted_unless_leading_zero(major: int, minor: int, patch: int, pre: list[str]) -> None:
    version = f"{major}.{minor}.{patch}" + ("-" + ".".join(pre) if pre else "")
    leading_zero = any(p.isdigit() and len(p) > 1 and p[0] == "0" for p in pre)
    assert is_valid_version(version) == (not leading_zero)


@pytest.mark.parametrize("bad", ["", "1", "1.0", "01.0.0", "1.0.0-", "1.0.0+", "1.0.0-01", "v1.0.0", "1.0.0 ", "１.0.0",
                                 "1.0.0-" + "a" * 60])
def test_bad_versions_rejected(bad: str) -> None:
    with pytest.raises(InputError, match="invalid version"):
        validate_version(bad)


@pytest.mark.parametrize("good", ["0.0.0", "1.2.3", "1.0.0-rc.1", "1.0.0-0.3.7", "1.0.0+20130313144700", "1.0.0-x-y.z+a.b"])
def test_good_versions(good: str) -> None:
    assert validate_version(good) == good


@pytest.mark.parametrize("bad", ["Acme/demo", "acme", "acme/", "/demo", "a/b/c", "acme/de mo", "a" * 65 + "/x", "acme/démo",
                                 "./demo", "../demo", "acme/.", "acme/.."])
def test_bad_names_rejected(bad: str) -> None:
    with pytest.raises(InputError, match="invalid model name"):
        validate_name(bad)


def test_parse_ref() -> None:
    assert parse_ref("acme/demo@1.2.0") == Ref(kind="version", name="acme/demo", version="1.2.0")
    assert parse_ref("acme/demo@latest") == Ref(kind="latest", name="acme/demo")
    assert parse_ref("acme/demo@production") == Ref(kind="alias", name="acme/demo", alias="production")
    assert parse_ref("acme/demo@v1") == Ref(kind="alias", name="acme/demo", alias="v1")
    assert str(parse_ref("acme/demo@staging-2")) == "acme/demo@staging-2"
    digest = "ab" * 32
    assert parse_ref(f"sha256:{digest}") == Ref(kind="digest", sha256=bytes.fromhex(digest))
    assert parse_ref(f"sha256:{digest.upper()}").sha256 == bytes.fromhex(digest)
    assert str(parse_ref("acme/demo@1.0.0-rc.1")) == "acme/demo@1.0.0-rc.1"


@pytest.mark.parametrize("bad", ["", "acme/demo", "acme/demo@", "acme/demo@1", "acme/demo@1.0", "acme/demo@01.0.0",
                                 "acme/demo@1prod", "acme/demo@Prod", "acme/demo@-x", "acme/demo@a_b",
                                 "acme/demo@" + "a" * 33, "Acme/demo@1.0.0", "sha256:abc",
                                 "sha256:" + "g" * 64, "sha256:" + "a" * 65, "@1.0.0"])
def test_parse_ref_rejects(bad: str) -> None:
    with pytest.raises(InputError):
        parse_ref(bad)


def test_wrong_key_does_not_recover() -> None:
    release = sample_release()
    a, b = Account.create(), Account.create()
    assert recover_publisher(release, sign_release(release, a, 1, CONTRACT), 1, CONTRACT) != b.address
