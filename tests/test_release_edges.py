"""registry.release at the edges of its rules: the exact ranges, the exact signature forms, the
reference grammar's limits. Each case is a value a publisher, a wallet or an attacker can send, and
each boundary is the contract's (uint64/uint256 fields, OpenZeppelin ECDSA, SemVer labels of at most
64 bytes), so a rule that drifts by one lets through something the chain refuses or the reverse.
"""

from __future__ import annotations

import pytest

from registry.errors import InputError, SignatureError
from registry.release import (
    MAX_UINT64,
    MAX_UINT256,
    SECP256K1_N,
    ZERO32,
    Ref,
    Release,
    check_signature_form,
    is_valid_namespace,
    is_valid_version,
    name_key,
    parse_ref,
)

from tests.test_release import sample_release


def _cid(byte: int) -> bytes:
    return bytes([0x01, 0x55, 0x12, 0x20]) + bytes([byte]) * 32


# ------------------------------------------------------------------------------------------
# Field ranges: what the ABI can carry, no more and no less
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [0, 1, MAX_UINT64])
def test_artifact_size_accepts_the_whole_uint64_range(size: int) -> None:
    assert sample_release(artifact_size=size).artifact_size == size


@pytest.mark.parametrize("size", [-1, MAX_UINT64 + 1])
def test_artifact_size_outside_uint64_is_refused(size: int) -> None:
    with pytest.raises(InputError, match="artifact size"):
        sample_release(artifact_size=size)


@pytest.mark.parametrize("field", ["nonce", "deadline"])
@pytest.mark.parametrize("value", [0, MAX_UINT256])
def test_nonce_and_deadline_accept_the_whole_uint256_range(field: str, value: int) -> None:
    assert getattr(sample_release(**{field: value}), field) == value


@pytest.mark.parametrize("field", ["nonce", "deadline"])
@pytest.mark.parametrize("value", [-1, MAX_UINT256 + 1])
def test_nonce_or_deadline_out_of_range_is_refused_alone(field: str, value: int) -> None:
    # The other field is valid: each is checked on its own.
    with pytest.raises(InputError, match="nonce/deadline"):
        sample_release(**{field: value})


def test_json_round_trip_keeps_every_field() -> None:
    release = sample_release(card_sha256=b"\x07" * 32, card_cid=_cid(7), parent=b"\x09" * 32, nonce=12,
                             deadline=1_700_000_000)
    again = Release.from_json(release.to_json())
    assert again == release
    assert (again.card_sha256, again.card_cid, again.parent, again.deadline) == (
        b"\x07" * 32, _cid(7), b"\x09" * 32, 1_700_000_000)


def test_json_without_optional_fields_means_no_card_and_no_parent() -> None:
    doc = sample_release(card_sha256=b"\x07" * 32, card_cid=_cid(7), parent=b"\x09" * 32).to_json()
    for key in ("cardSha256", "cardCid", "parent"):
        del doc[key]
    release = Release.from_json(doc)
    assert (release.card_sha256, release.card_cid, release.parent) == (ZERO32, b"", ZERO32)
    assert not release.has_card


@pytest.mark.parametrize("prefix", ["0x", "0X", ""])
def test_json_hex_prefix_is_optional_and_case_blind(prefix: str) -> None:
    release = sample_release()
    doc = release.to_json()
    doc["artifactSha256"] = prefix + release.artifact_sha256.hex()
    assert Release.from_json(doc).artifact_sha256 == release.artifact_sha256


# ------------------------------------------------------------------------------------------
# Signature forms: exactly what OpenZeppelin's ECDSA.tryRecover accepts
# ------------------------------------------------------------------------------------------


def _sig(r: int, s: int, v: int = 27) -> bytes:
    return r.to_bytes(32, "big") + s.to_bytes(32, "big") + bytes([v])


@pytest.mark.parametrize("r, s", [
    (1, 1),                              # the smallest r and s
    (SECP256K1_N - 1, SECP256K1_N // 2),  # the largest r, and s at the low-s bound itself
])
def test_signature_forms_the_contract_accepts_pass(r: int, s: int) -> None:
    check_signature_form(_sig(r, s))
    check_signature_form(_sig(r, s, 28))


@pytest.mark.parametrize("r, s, why", [
    (0, 1, "r or s out of range"),
    (SECP256K1_N, 1, "r or s out of range"),
    (1, 0, "r or s out of range"),
    (1, SECP256K1_N // 2 + 1, "upper half"),  # the malleated twin of a low-s signature
])
def test_signature_forms_the_contract_refuses_fail(r: int, s: int, why: str) -> None:
    with pytest.raises(SignatureError, match=why):
        check_signature_form(_sig(r, s))


# ------------------------------------------------------------------------------------------
# Names, versions, references
# ------------------------------------------------------------------------------------------


def test_a_namespace_must_be_a_string() -> None:
    # "123/x" would be a valid name: a number must not pass as the namespace "123".
    for value in (123, None, b"acme", ["acme"]):
        assert is_valid_namespace(value) is False  # type: ignore[arg-type]
    assert is_valid_namespace("123") is True


def test_version_may_use_all_64_bytes_and_no_more() -> None:
    longest = "1.0.0-" + "a" * 58
    assert len(longest) == 64 and is_valid_version(longest)
    assert not is_valid_version(longest + "b")
    assert parse_ref(f"acme/x@{longest}").version == longest


@pytest.mark.parametrize("ref", [
    Ref(kind="digest", sha256=b"\xab" * 32),
    Ref(kind="latest", name="acme/x"),
    Ref(kind="alias", name="acme/x", alias="production"),
    Ref(kind="version", name="acme/x", version="1.2.3-rc.1"),
])
def test_a_reference_prints_as_what_parses_back_to_it(ref: Ref) -> None:
    text = str(ref)
    assert parse_ref(text) == ref
    assert text in ("sha256:" + "ab" * 32, "acme/x@latest", "acme/x@production", "acme/x@1.2.3-rc.1")


@pytest.mark.parametrize("bad", [None, 5, b"acme/x@1.0.0"])
def test_a_reference_that_is_not_text_is_an_input_error(bad: object) -> None:
    with pytest.raises(InputError):
        parse_ref(bad)  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", ["acme/x@1.0.0\n", "acme/x@1.0.0\x1b[2J", "acme/x@1.0.0\t", "\x00"])
def test_a_reference_with_control_characters_is_refused(bad: str) -> None:
    with pytest.raises(InputError, match="printable ASCII"):
        parse_ref(bad)


def test_a_huge_reference_is_refused_in_one_short_line() -> None:
    # argv can carry megabytes: the error must not echo them back to the terminal or a log.
    with pytest.raises(InputError) as caught:
        parse_ref("acme/x" + "y" * 100_000)
    assert len(str(caught.value)) < 400


# ------------------------------------------------------------------------------------------
# The name key agrees with the contract's
# ------------------------------------------------------------------------------------------


def test_name_key_is_the_contracts_name_key(deployed) -> None:
    """Event filters (oracle node, ownership views) match on this key: it must be the chain's."""
    client = deployed.client
    owner, helper = deployed.accounts[2], deployed.accounts[3]
    client.claim_namespace("acme", owner)
    result = client.add_publisher("acme/demo", helper.address, owner)
    receipt = client.w3.eth.get_transaction_receipt(result.tx_hash)
    added = [log for log in receipt["logs"] if len(log["topics"]) == 3]
    assert added and bytes(added[0]["topics"][1]) == name_key("acme/demo")
    assert name_key("acme/demo") != name_key("acme/demo2")
