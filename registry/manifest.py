"""The release manifest, ``NAME@VERSION.release.json``: a signed release a device can check offline.

It carries everything the EIP-712 signature covers (the Release fields, the domain's chain id and
contract) plus the signature and the claimed publisher, so a device with a list of trusted
publisher addresses can verify an artifact with no RPC at all; online, the same file is compared
with the chain's record.

Manifests travel over untrusted channels, so the parser is deliberately strict: a schema version,
no unknown keys, hex of exact lengths, integers in range and never booleans, bounded size. Every
problem becomes one ``InputError`` line; nothing in here can raise anything else on bad input.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from registry.errors import InputError, ProvenanceError
from registry.fsutil import atomic_write
from registry.provenance import parse_json_strict

if TYPE_CHECKING:
    from registry.release import Release

# v2: the Release carries the model card's digest and CID (zero and "0x" without a card).
SCHEMA = "registry.release-manifest/v2"
SUFFIX = ".release.json"
MAX_MANIFEST_BYTES = 64 * 1024
MAX_UINT64 = 2**64 - 1
MAX_UINT256 = 2**256 - 1
# Inside a file name the "/" of owner/model becomes "+", which a model name can never contain.
NAME_SEPARATOR_IN_FILENAME = "+"

_ADDRESS = re.compile(r"^0x[0-9a-fA-F]{40}$")
_HEX = re.compile(r"^0x(?:[0-9a-f]{2})*$")
_DECIMAL = re.compile(r"^(?:0|[1-9][0-9]{0,77})$")
_CID_PROFILE = re.compile(r"^[a-z0-9][a-z0-9.-]{0,31}$")

_RELEASE_KEYS = {
    "name", "version", "artifactSha256", "artifactCid", "artifactSize", "provenanceSha256",
    "provenanceCid", "cardSha256", "cardCid", "parent", "nonce", "deadline",
}
_REQUIRED_KEYS = {"schema", "release", "releaseId", "signature", "publisher", "chainId", "contract", "cidProfile"}
# Informational fields a publisher may add; the verifier never trusts them.
_OPTIONAL_KEYS = {"transaction", "blockNumber", "display", "fileListCid"}


@dataclass(frozen=True)
class Manifest:
    """A parsed, structurally valid manifest. Whether it is *true* is what verify decides."""

    release: "Release"
    signature: bytes
    publisher: str
    chain_id: int
    contract: str
    cid_profile: str
    transaction: str | None = None
    block_number: int | None = None
    # directory releases: binary CIDv1 of the pinned canonical file list (its SHA-256 is artifactSha256)
    file_list_cid: bytes | None = None

    @property
    def release_id(self) -> bytes:
        return self.release.id

    @property
    def ref(self) -> str:
        return f"{self.release.name}@{self.release.version}"

    def to_json(self) -> dict[str, Any]:
        from registry.content.cids import cid_from_bytes, display

        doc: dict[str, Any] = {
            "schema": SCHEMA,
            "release": self.release.to_json(),
            "releaseId": "0x" + self.release_id.hex(),
            "signature": "0x" + self.signature.hex(),
            "publisher": self.publisher,
            "chainId": self.chain_id,
            "contract": self.contract,
            "cidProfile": self.cid_profile,
        }
        try:
            doc["display"] = {
                "artifactCid": display(cid_from_bytes(self.release.artifact_cid))["v1"],
                "provenanceCid": display(cid_from_bytes(self.release.provenance_cid))["v1"],
            }
            if self.release.card_cid:
                doc["display"]["cardCid"] = display(cid_from_bytes(self.release.card_cid))["v1"]
        except Exception:  # display is a convenience; a CID the helper cannot render is still recorded in hex
            pass
        if self.transaction:
            doc["transaction"] = self.transaction
        if self.block_number is not None:
            doc["blockNumber"] = self.block_number
        if self.file_list_cid is not None:
            doc["fileListCid"] = "0x" + self.file_list_cid.hex()
        return doc


def filename(name: str, version: str) -> str:
    """``owner+model@1.2.0.release.json`` (a model name's "/" cannot appear in a file name)."""
    return f"{name.replace('/', NAME_SEPARATOR_IN_FILENAME)}@{version}{SUFFIX}"


def path_beside(artifact: str | os.PathLike[str], name: str, version: str) -> Path:
    return Path(artifact).resolve().parent / filename(name, version)


def dumps(manifest: Manifest) -> bytes:
    return (json.dumps(manifest.to_json(), indent=2, sort_keys=True) + "\n").encode("utf-8")


def write_manifest(manifest: Manifest, path: str | os.PathLike[str]) -> Path:
    """Atomic write (temp file + rename): an interrupted publish never leaves half a manifest."""
    target = Path(path)
    atomic_write(target, dumps(manifest))
    return target


def load_manifest(source: str | os.PathLike[str] | bytes | bytearray) -> Manifest:
    """Reads and strictly parses a manifest; ``InputError`` names the first problem."""
    if isinstance(source, (bytes, bytearray)):
        data = bytes(source)
        where = "manifest"
    else:
        path = Path(source)
        where = f"manifest {path.name}"
        from registry.fsutil import read_small_file

        data = read_small_file(path, limit=MAX_MANIFEST_BYTES, what="manifest")  # regular files only
    try:
        raw = parse_json_strict(data, what=where, limit=MAX_MANIFEST_BYTES, error=InputError)
    except ProvenanceError as exc:  # pragma: no cover - parse_json_strict raises the class it is given
        raise InputError(str(exc)) from exc
    return parse_manifest(raw, where=where)


def parse_manifest(raw: Any, *, where: str = "manifest") -> Manifest:
    """Validates a decoded JSON value into a ``Manifest``."""
    from registry.release import Release, release_id

    def fail(message: str) -> InputError:
        return InputError(f"{where}: {message}")

    if not isinstance(raw, dict):
        raise fail("must be a JSON object")
    missing = _REQUIRED_KEYS - raw.keys()
    if missing:
        raise fail(f"missing {', '.join(sorted(missing))}")
    unknown = raw.keys() - _REQUIRED_KEYS - _OPTIONAL_KEYS
    if unknown:
        raise fail(f"unknown keys {', '.join(sorted(map(str, unknown))[:5])}")
    if raw["schema"] != SCHEMA:
        raise fail(f"unsupported schema {str(raw['schema'])[:60]!r} (expected {SCHEMA!r})")

    body = raw["release"]
    if not isinstance(body, dict):
        raise fail("release must be an object")
    if body.keys() != _RELEASE_KEYS:
        extra, absent = body.keys() - _RELEASE_KEYS, _RELEASE_KEYS - body.keys()
        raise fail(f"release fields wrong (missing {sorted(absent)}, unknown {sorted(map(str, extra))[:5]})")
    name, version = body["name"], body["version"]
    if not isinstance(name, str) or not isinstance(version, str):
        raise fail("release name and version must be strings")
    _check_name_and_version(name, version, fail)
    # Field errors already carry ``where``; only the Release's own cross-field checks are wrapped here.
    fields = dict(
        artifact_sha256=_hex(body["artifactSha256"], "artifactSha256", fail, exact=32),
        artifact_cid=_hex(body["artifactCid"], "artifactCid", fail, exact=36),
        artifact_size=_uint(body["artifactSize"], "artifactSize", fail, MAX_UINT64, minimum=1),
        provenance_sha256=_hex(body["provenanceSha256"], "provenanceSha256", fail, exact=32),
        provenance_cid=_hex(body["provenanceCid"], "provenanceCid", fail, exact=36),
        card_sha256=_hex(body["cardSha256"], "cardSha256", fail, exact=32),
        card_cid=_hex(body["cardCid"], "cardCid", fail, limit=36),
        parent=_hex(body["parent"], "parent", fail, exact=32),
        nonce=_uint(body["nonce"], "nonce", fail, MAX_UINT256),
        deadline=_uint(body["deadline"], "deadline", fail, MAX_UINT256),
    )
    try:
        release = Release(name=name, version=version, **fields)
    except InputError as exc:
        raise fail(str(exc)) from exc
    _check_cid_shape(release.artifact_cid, "artifactCid", fail)
    _check_cid_shape(release.provenance_cid, "provenanceCid", fail)
    if release.card_cid:
        if len(release.card_cid) != 36:
            raise fail(f"cardCid must be empty or 36 bytes, got {len(release.card_cid)}")
        _check_cid_shape(release.card_cid, "cardCid", fail)

    claimed_id = _hex(raw["releaseId"], "releaseId", fail, exact=32)
    if claimed_id != release_id(name, version):
        raise fail("releaseId does not match keccak256(name, version)")
    signature = _hex(raw["signature"], "signature", fail, limit=4096)
    if not signature:
        raise fail("signature is empty")
    publisher = _address(raw["publisher"], "publisher", fail)
    contract = _address(raw["contract"], "contract", fail)
    chain_id = _uint(raw["chainId"], "chainId", fail, MAX_UINT64, minimum=1)
    profile = raw["cidProfile"]
    if not isinstance(profile, str) or not _CID_PROFILE.match(profile):
        raise fail("cidProfile must be a short profile name such as 'kubo-v1'")

    transaction = raw.get("transaction")
    if transaction is not None and (not isinstance(transaction, str) or not re.fullmatch(r"0x[0-9a-f]{64}", transaction)):
        raise fail("transaction must be a 0x-prefixed 32-byte hash")
    block_number = raw.get("blockNumber")
    if block_number is not None:
        block_number = _uint(block_number, "blockNumber", fail, MAX_UINT64)
    if "display" in raw and not isinstance(raw["display"], dict):
        raise fail("display must be an object")
    file_list_cid = None
    if "fileListCid" in raw:
        file_list_cid = _hex(raw["fileListCid"], "fileListCid", fail, exact=36)
        _check_cid_shape(file_list_cid, "fileListCid", fail)
    return Manifest(
        release=release,
        signature=signature,
        publisher=publisher,
        chain_id=chain_id,
        contract=contract,
        cid_profile=profile,
        transaction=transaction,
        block_number=block_number,
        file_list_cid=file_list_cid,
    )


def _check_name_and_version(name: str, version: str, fail: Any) -> None:
    from registry.release import is_valid_name, is_valid_version

    if not is_valid_name(name):
        raise fail(f"invalid model name {name[:80]!r}")
    if not is_valid_version(version):
        raise fail(f"invalid version {version[:80]!r}")


def _hex(value: Any, field: str, fail: Any, *, exact: int | None = None, limit: int | None = None) -> bytes:
    if not isinstance(value, str) or not _HEX.match(value):
        raise fail(f"{field} must be 0x-prefixed lower-case hex")
    data = bytes.fromhex(value[2:])
    if exact is not None and len(data) != exact:
        raise fail(f"{field} must be {exact} bytes, got {len(data)}")
    if limit is not None and len(data) > limit:
        raise fail(f"{field} is longer than {limit} bytes")
    return data


def _uint(value: Any, field: str, fail: Any, maximum: int, minimum: int = 0) -> int:
    # uint256 travels as a decimal string (JSON numbers lose precision past 2^53); small ints as numbers.
    if isinstance(value, bool):
        raise fail(f"{field} must be an integer, not a boolean")
    if isinstance(value, str) and maximum != MAX_UINT256:
        raise fail(f"{field} must be a JSON number")
    if isinstance(value, str):
        if not _DECIMAL.match(value):
            raise fail(f"{field} must be a decimal integer")
        value = int(value)
    if not isinstance(value, int):
        raise fail(f"{field} must be an integer")
    if not minimum <= value <= maximum:
        raise fail(f"{field} out of range")
    return value


def _address(value: Any, field: str, fail: Any) -> str:
    from registry.chain.lean import to_checksum_address  # eth_utils' rules, without its import time

    if not isinstance(value, str) or not _ADDRESS.match(value):
        raise fail(f"{field} must be a 0x-prefixed 20-byte address")
    lowered = value[2:]
    if lowered != lowered.lower() and lowered != lowered.upper() and to_checksum_address(value) != value:
        raise fail(f"{field} has a bad EIP-55 checksum")
    return to_checksum_address(value)


def _check_cid_shape(cid: bytes, field: str, fail: Any) -> None:
    # The contract's binary CIDv1 form: 0x01, codec (raw, dag-pb, dag-cbor), sha2-256, 32-byte digest.
    if cid[0] != 0x01 or cid[1] not in (0x55, 0x70, 0x71) or cid[2] != 0x12 or cid[3] != 0x20:
        raise fail(f"{field} is not a binary CIDv1 (0x01 codec 0x12 0x20 digest)")
