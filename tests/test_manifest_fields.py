"""The manifest field by field: every field a publisher writes survives the file, every malformed
field is refused with an error that names it, and each boundary is the chain's (binary CIDv1 of
36 bytes with the three codecs the contract stores, uint64/uint256 ranges, checksummed addresses).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from registry.errors import InputError
from registry.manifest import dumps, filename, load_manifest, parse_manifest, path_beside, write_manifest
from registry.release import release_id

from tests._verify_fixtures import offline_release

REL = offline_release(Path("/nonexistent-registry-home"))
CARD_CID = bytes([0x01, 0x55, 0x12, 0x20]) + b"\x5c" * 32
FILE_LIST_CID = bytes([0x01, 0x55, 0x12, 0x20]) + b"\x11" * 32
TX = "0x" + "ab" * 32


def full_manifest():
    """A manifest with every optional part: a card, the transaction and block, a directory's file list."""
    release = dataclasses.replace(REL.manifest.release, card_sha256=b"\x5c" * 32, card_cid=CARD_CID)
    return dataclasses.replace(REL.manifest, release=release, transaction=TX, block_number=1234,
                               file_list_cid=FILE_LIST_CID)


def doc(**changes):
    """The JSON of the plain manifest with ``release.x`` / top-level fields replaced."""
    data = json.loads(dumps(REL.manifest))
    for path, value in changes.items():
        target = data
        *parents, last = path.split(".")
        for key in parents:
            target = target[key]
        target[last] = value
    return data


def cid_hex(prefix: bytes, fill: int = 0x33, digest_len: int = 32) -> str:
    return "0x" + (prefix + bytes([fill]) * digest_len).hex()


# ------------------------------------------------------------------------------------------
# What is written is what is read
# ------------------------------------------------------------------------------------------


def test_every_optional_field_survives_the_file(tmp_path: Path) -> None:
    manifest = full_manifest()
    path = write_manifest(manifest, tmp_path / filename(manifest.release.name, manifest.release.version))
    assert load_manifest(path) == manifest
    written = json.loads(path.read_text())
    assert written["transaction"] == TX and written["blockNumber"] == 1234
    assert written["fileListCid"] == "0x" + FILE_LIST_CID.hex()
    assert written["release"]["cardCid"] == "0x" + CARD_CID.hex()
    # The display block renders every CID for people (base32 CIDv1), the card's included.
    assert set(written["display"]) == {"artifactCid", "provenanceCid", "cardCid"}
    assert all(value.startswith("bafk") for value in written["display"].values())


def test_a_manifest_without_the_optional_fields_writes_none_of_them() -> None:
    written = json.loads(dumps(REL.manifest))
    assert not {"transaction", "blockNumber", "fileListCid"} & set(written)
    assert set(written["display"]) == {"artifactCid", "provenanceCid"}
    assert parse_manifest(written) == REL.manifest


def test_block_zero_is_recorded() -> None:
    manifest = dataclasses.replace(REL.manifest, block_number=0)
    assert json.loads(dumps(manifest))["blockNumber"] == 0
    assert parse_manifest(json.loads(dumps(manifest))).block_number == 0


def test_the_file_is_stable_and_readable() -> None:
    """Sorted keys and one field per line: two publishes of the same release give the same bytes and
    a reviewer's diff shows only what changed."""
    text = dumps(full_manifest()).decode("utf-8")
    assert text.endswith("}\n")
    lines = text.splitlines()
    top = [line.split('"')[1] for line in lines if line.startswith('  "')]
    assert top == sorted(top) and "chainId" in top
    nested = [line.split('"')[1] for line in lines if line.startswith('    "')]
    assert "artifactSha256" in nested
    assert dumps(full_manifest()) == dumps(parse_manifest(json.loads(text)))


def test_manifest_lives_beside_the_artifact(tmp_path: Path) -> None:
    artifact = tmp_path / "models" / "digits.onnx"
    assert path_beside(artifact, "acme/digits", "1.2.0") == (tmp_path / "models" / "acme+digits@1.2.0.release.json").resolve()


def test_errors_name_the_file_they_come_from(tmp_path: Path) -> None:
    path = tmp_path / "acme+x@1.0.0.release.json"
    path.write_text(json.dumps(doc(**{"release.artifactSize": 0})))
    with pytest.raises(InputError, match=r"^manifest acme\+x@1\.0\.0\.release\.json: artifactSize out of range"):
        load_manifest(path)
    with pytest.raises(InputError, match="^manifest: artifactSize out of range"):
        load_manifest(json.dumps(doc(**{"release.artifactSize": 0})).encode())
    path.write_text("[1, 2")
    with pytest.raises(InputError, match=r"acme\+x@1\.0\.0\.release\.json"):
        load_manifest(path)


def test_an_oversized_manifest_file_is_refused_by_name(tmp_path: Path) -> None:
    path = tmp_path / "big.release.json"
    path.write_text(json.dumps({**doc(), "display": {"pad": "x" * 70_000}}))
    with pytest.raises(InputError, match="manifest"):
        load_manifest(path)
    with pytest.raises(InputError, match="manifest"):
        load_manifest(path.read_bytes())


# ------------------------------------------------------------------------------------------
# Each malformed field is refused, and the error says which field
# ------------------------------------------------------------------------------------------

BAD_FIELDS = {
    "artifactSha256": "0x" + "ab" * 31,
    "artifactCid": "0x" + "ab" * 35,
    "artifactSize": 0,
    "provenanceSha256": "0x" + "ab" * 33,
    "provenanceCid": "0x" + "ab" * 37,
    "cardSha256": "0x" + "ab" * 31,
    "cardCid": "0x" + "ab" * 37,
    "parent": "0x" + "ab" * 31,
    "nonce": "-1",
    "deadline": str(2**256),
}


@pytest.mark.parametrize("field", sorted(BAD_FIELDS))
def test_a_malformed_release_field_is_named(field: str) -> None:
    with pytest.raises(InputError, match=rf"^manifest: {field} "):
        parse_manifest(doc(**{f"release.{field}": BAD_FIELDS[field]}))


@pytest.mark.parametrize("field, value", [
    ("releaseId", "0x" + "ab" * 31),
    ("signature", "0xzz"),
    ("publisher", "0x1234"),
    ("contract", "0x" + "ab" * 19),
    ("chainId", 0),
    ("blockNumber", -1),
    ("fileListCid", "0x" + "ab" * 35),
])
def test_a_malformed_top_level_field_is_named(field: str, value: object) -> None:
    with pytest.raises(InputError, match=rf"^manifest: {field} "):
        parse_manifest(doc(**{field: value}))


@pytest.mark.parametrize("field", ["artifactCid", "provenanceCid", "fileListCid"])
@pytest.mark.parametrize("length", [35, 37])
def test_a_cid_of_the_wrong_length_is_refused_even_with_a_good_prefix(field: str, length: int) -> None:
    value = cid_hex(bytes([0x01, 0x55, 0x12, 0x20]), digest_len=length - 4)
    target = f"release.{field}" if field != "fileListCid" else field
    with pytest.raises(InputError, match=rf"{field} must be 36 bytes"):
        parse_manifest(doc(**{target: value}))


# The contract stores three codecs (raw, dag-pb, dag-cbor) with sha2-256: a manifest may carry any of
# them (every artifact over 256 KiB has a dag-pb root), and nothing else.
@pytest.mark.parametrize("codec", [0x55, 0x70, 0x71])
@pytest.mark.parametrize("field", ["artifactCid", "provenanceCid", "cardCid", "fileListCid"])
def test_each_stored_codec_is_accepted(codec: int, field: str) -> None:
    value = cid_hex(bytes([0x01, codec, 0x12, 0x20]))
    changes = {f"release.{field}" if field != "fileListCid" else field: value}
    if field == "cardCid":
        changes["release.cardSha256"] = "0x" + "5c" * 32
    manifest = parse_manifest(doc(**changes))
    assert manifest.to_json()["release" if field != "fileListCid" else "fileListCid"] is not None
    assert value[2:] in json.dumps(manifest.to_json())


@pytest.mark.parametrize("prefix, why", [
    (bytes([0x00, 0x55, 0x12, 0x20]), "CID version 0"),
    (bytes([0x02, 0x55, 0x12, 0x20]), "CID version 2"),
    (bytes([0x01, 0x29, 0x12, 0x20]), "dag-json codec"),
    (bytes([0x01, 0x72, 0x12, 0x20]), "libp2p-key codec"),
    (bytes([0x01, 0x55, 0x13, 0x20]), "sha2-512 multihash"),
    (bytes([0x01, 0x55, 0x12, 0x21]), "digest length byte 33"),
])
@pytest.mark.parametrize("field", ["artifactCid", "provenanceCid", "cardCid", "fileListCid"])
def test_a_cid_with_one_wrong_prefix_byte_is_refused(prefix: bytes, why: str, field: str) -> None:
    changes = {f"release.{field}" if field != "fileListCid" else field: cid_hex(prefix)}
    if field == "cardCid":
        changes["release.cardSha256"] = "0x" + "5c" * 32
    with pytest.raises(InputError, match=rf"{field} is not a binary CIDv1"):
        parse_manifest(doc(**changes))


def test_card_cid_is_empty_or_exactly_36_bytes() -> None:
    base = {"release.cardSha256": "0x" + "5c" * 32}
    assert parse_manifest(doc(**base, **{"release.cardCid": "0x" + CARD_CID.hex()})).release.card_cid == CARD_CID
    for length in (35, 37, 1):
        with pytest.raises(InputError, match="cardCid"):
            parse_manifest(doc(**base, **{"release.cardCid": "0x" + (CARD_CID * 2)[:length].hex()}))


# ------------------------------------------------------------------------------------------
# Ranges: the limits themselves are accepted
# ------------------------------------------------------------------------------------------


def test_integer_fields_accept_their_limits() -> None:
    manifest = parse_manifest(doc(**{"release.artifactSize": 2**64 - 1, "release.nonce": str(2**256 - 1),
                                     "release.deadline": str(2**256 - 1), "chainId": 2**64 - 1}))
    assert manifest.release.artifact_size == 2**64 - 1 and manifest.chain_id == 2**64 - 1
    assert manifest.release.nonce == manifest.release.deadline == 2**256 - 1
    assert parse_manifest(doc(**{"release.artifactSize": 1})).release.artifact_size == 1
    assert parse_manifest(doc(**{"chainId": 1})).chain_id == 1
    for field, value in (("release.artifactSize", 2**64), ("chainId", 2**64)):
        with pytest.raises(InputError, match="out of range"):
            parse_manifest(doc(**{field: value}))


def test_a_long_contract_wallet_signature_fits_up_to_4096_bytes() -> None:
    """ERC-1271 wallets (multisigs) sign with more than 65 bytes; the limit bounds what is read."""
    assert len(parse_manifest(doc(signature="0x" + "ab" * 4096)).signature) == 4096
    with pytest.raises(InputError, match="signature is longer than 4096 bytes"):
        parse_manifest(doc(signature="0x" + "ab" * 4097))


# ------------------------------------------------------------------------------------------
# Addresses: EIP-55 when mixed case, accepted as is when all one case
# ------------------------------------------------------------------------------------------

ADDRESS = "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"  # anvil's first account, checksummed


@pytest.mark.parametrize("field", ["publisher", "contract"])
def test_single_case_addresses_carry_no_checksum_and_are_accepted(field: str) -> None:
    for text in ("0x" + ADDRESS[2:].lower(), "0x" + ADDRESS[2:].upper()):
        assert getattr(parse_manifest(doc(**{field: text})), field) == ADDRESS


@pytest.mark.parametrize("field", ["publisher", "contract"])
def test_a_mixed_case_address_with_a_bad_checksum_is_refused(field: str) -> None:
    # Only the first hex digit is upper case: mixed case, so it must carry a valid EIP-55 checksum.
    bad = "0xF" + ADDRESS[3:].lower()
    with pytest.raises(InputError, match=f"{field} has a bad EIP-55 checksum"):
        parse_manifest(doc(**{field: bad}))
    flipped = ADDRESS[:-1] + ADDRESS[-1].upper() if ADDRESS[-1].islower() else ADDRESS
    assert parse_manifest(doc(**{field: ADDRESS})).to_json()[field] == ADDRESS
    assert flipped == ADDRESS  # the last digit is numeric: nothing to flip


def test_release_id_is_checked_against_the_invalid_name_it_claims() -> None:
    """An invalid name with a matching releaseId must still be refused: the id check cannot stand in
    for the name rule (a name like ../x would become a path on the device)."""
    for name, version in (("acme/..", "1.0.0"), ("Acme/x", "1.0.0"), ("acme/x", "1.0"), ("acme/x", "01.0.0")):
        bad = doc(**{"release.name": name, "release.version": version,
                     "releaseId": "0x" + release_id(name, version).hex()})
        with pytest.raises(InputError, match="invalid (model name|version)"):
            parse_manifest(bad)


def test_a_manifest_path_that_is_no_file_is_refused_as_a_manifest(tmp_path: Path) -> None:
    (tmp_path / "x").mkdir()
    with pytest.raises(InputError, match=r"^manifest .*x"):
        load_manifest(tmp_path / "x")
    big = tmp_path / "y.json"
    big.write_bytes(b" " * 2_000_000)
    with pytest.raises(InputError, match=r"^manifest .*y\.json"):
        load_manifest(big)


def test_a_release_id_of_the_wrong_length_is_named_with_its_length() -> None:
    short = "0x" + REL.manifest.release_id.hex()[:-2]
    with pytest.raises(InputError, match="releaseId must be 32 bytes, got 31"):
        parse_manifest(doc(releaseId=short))
