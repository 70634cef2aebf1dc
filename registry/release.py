"""A release as its publisher signs it: the EIP-712 ``Release`` struct of ModelRegistry (v2).

The contract checks the signature on chain; devices check it offline from a manifest. Both must
compute the same digest, so the typed data here mirrors ``ModelRegistry.hashRelease`` field for
field (the test suite compares the two on a real node). Name and version rules mirror the
contract's name check and ``_checkVersion``; the version is additionally held to full SemVer 2.0.0
off chain, since the contract only checks the character set.

Release v2 carries an optional model card (``card_sha256``/``card_cid``; zero and empty without
one). References add aliases (``NAME@production``), and recovery accepts only the low-s, v in
{27, 28} signatures that OpenZeppelin's ECDSA accepts on chain, so a malleated copy of a valid
signature is refused off chain as it is on chain.

Recovery is the lean path (``registry.chain.lean_sig``: the typed-data hash from the ABI, libsecp256k1
through coincurve), so a device that only verifies never imports eth-account, whose import pulls
eth-keyfile and py_ecc (half a second); signing and ``signing_digest`` still use eth-account, imported
where they are called, and the test suite checks that both paths agree with the contract.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from registry.chain.lean import keccak, to_checksum_address
from registry.errors import InputError, SignatureError

if TYPE_CHECKING:
    from eth_account.signers.local import LocalAccount

DOMAIN_NAME = "ModelRegistry"
DOMAIN_VERSION = "1"
ZERO32 = b"\x00" * 32
MAX_UINT64 = 2**64 - 1
MAX_UINT256 = 2**256 - 1

RELEASE_FIELDS: list[dict[str, str]] = [
    {"name": "name", "type": "string"},
    {"name": "version", "type": "string"},
    {"name": "artifactSha256", "type": "bytes32"},
    {"name": "artifactCid", "type": "bytes"},
    {"name": "artifactSize", "type": "uint64"},
    {"name": "provenanceSha256", "type": "bytes32"},
    {"name": "provenanceCid", "type": "bytes"},
    {"name": "cardSha256", "type": "bytes32"},
    {"name": "cardCid", "type": "bytes"},
    {"name": "parent", "type": "bytes32"},
    {"name": "nonce", "type": "uint256"},
    {"name": "deadline", "type": "uint256"},
]
EIP712_DOMAIN_FIELDS: list[dict[str, str]] = [
    {"name": "name", "type": "string"},
    {"name": "version", "type": "string"},
    {"name": "chainId", "type": "uint256"},
    {"name": "verifyingContract", "type": "address"},
]

_NAME_PART = r"[a-z0-9._-]{1,64}"
_NAME_RE = re.compile(rf"{_NAME_PART}/{_NAME_PART}", re.ASCII)
# The SemVer 2.0.0 grammar (semver.org's recommended regex), ASCII digits only.
_NUM = r"(?:0|[1-9][0-9]*)"
_PRE_ID = r"(?:0|[1-9][0-9]*|[0-9]*[a-zA-Z-][0-9a-zA-Z-]*)"
_BUILD_ID = r"[0-9a-zA-Z-]+"
_SEMVER_RE = re.compile(
    rf"{_NUM}\.{_NUM}\.{_NUM}(?:-{_PRE_ID}(?:\.{_PRE_ID})*)?(?:\+{_BUILD_ID}(?:\.{_BUILD_ID})*)?",
    re.ASCII,
)
_HEX64_RE = re.compile(r"[0-9a-fA-F]{64}", re.ASCII)
# An alias: what the contract's _checkAlias accepts ("latest" is reserved for the newest valid release).
_ALIAS_RE = re.compile(r"[a-z][a-z0-9-]{0,31}", re.ASCII)
MAX_VERSION_BYTES = 64
# The largest model card a release may pin (Markdown with front matter; Hugging Face cards are KBs).
MAX_CARD_BYTES = 1 << 20
# secp256k1's group order: OpenZeppelin's ECDSA refuses s above half of it (EIP-2).
SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141


@dataclass(frozen=True)
class Release:
    """The signed fields of one release (EIP-712 primary type ``Release``)."""

    name: str
    version: str
    artifact_sha256: bytes
    artifact_cid: bytes
    artifact_size: int
    provenance_sha256: bytes
    provenance_cid: bytes
    card_sha256: bytes = ZERO32
    card_cid: bytes = b""
    parent: bytes = ZERO32
    nonce: int = 0
    deadline: int = MAX_UINT256

    def __post_init__(self) -> None:
        for field_name in ("artifact_sha256", "provenance_sha256", "card_sha256", "parent"):
            value = getattr(self, field_name)
            if not isinstance(value, (bytes, bytearray)) or len(value) != 32:
                raise InputError(f"release {field_name} must be 32 bytes")
        for field_name in ("artifact_cid", "provenance_cid", "card_cid"):
            if not isinstance(getattr(self, field_name), (bytes, bytearray)):
                raise InputError(f"release {field_name} must be bytes (binary CIDv1)")
        if (bytes(self.card_sha256) == ZERO32) != (len(self.card_cid) == 0):
            raise InputError("release card_sha256 and card_cid must both be given or both be absent")
        if not 0 <= self.artifact_size <= MAX_UINT64:
            raise InputError(f"artifact size {self.artifact_size} out of range")
        if not 0 <= self.nonce <= MAX_UINT256 or not 0 <= self.deadline <= MAX_UINT256:
            raise InputError("release nonce/deadline out of range")

    @property
    def id(self) -> bytes:
        return release_id(self.name, self.version)

    @property
    def has_card(self) -> bool:
        return bytes(self.card_sha256) != ZERO32

    def as_tuple(self) -> tuple[Any, ...]:
        """The struct in ABI order, as web3 wants it for ``publish`` and ``hashRelease``."""
        return (
            self.name,
            self.version,
            bytes(self.artifact_sha256),
            bytes(self.artifact_cid),
            self.artifact_size,
            bytes(self.provenance_sha256),
            bytes(self.provenance_cid),
            bytes(self.card_sha256),
            bytes(self.card_cid),
            bytes(self.parent),
            self.nonce,
            self.deadline,
        )

    def message(self) -> dict[str, Any]:
        """The EIP-712 message (camelCase field names, as in the Solidity struct)."""
        return {f["name"]: v for f, v in zip(RELEASE_FIELDS, self.as_tuple())}

    def to_json(self) -> dict[str, Any]:
        """Hex for bytes, decimal strings for uint256 (JSON numbers lose precision past 2^53)."""
        return {
            "name": self.name,
            "version": self.version,
            "artifactSha256": "0x" + bytes(self.artifact_sha256).hex(),
            "artifactCid": "0x" + bytes(self.artifact_cid).hex(),
            "artifactSize": self.artifact_size,
            "provenanceSha256": "0x" + bytes(self.provenance_sha256).hex(),
            "provenanceCid": "0x" + bytes(self.provenance_cid).hex(),
            "cardSha256": "0x" + bytes(self.card_sha256).hex(),
            "cardCid": "0x" + bytes(self.card_cid).hex(),
            "parent": "0x" + bytes(self.parent).hex(),
            "nonce": str(self.nonce),
            "deadline": str(self.deadline),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "Release":
        """Inverse of ``to_json``; InputError on anything malformed."""
        try:
            return cls(
                name=str(data["name"]),
                version=str(data["version"]),
                artifact_sha256=_hex_bytes(data["artifactSha256"]),
                artifact_cid=_hex_bytes(data["artifactCid"]),
                artifact_size=int(data["artifactSize"]),
                provenance_sha256=_hex_bytes(data["provenanceSha256"]),
                provenance_cid=_hex_bytes(data["provenanceCid"]),
                card_sha256=_hex_bytes(data.get("cardSha256", "0x" + "00" * 32)),
                card_cid=_hex_bytes(data.get("cardCid", "0x")),
                parent=_hex_bytes(data.get("parent", "0x" + "00" * 32)),
                nonce=int(data["nonce"]),
                deadline=int(data["deadline"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise InputError(f"malformed release: {exc}") from exc


def _hex_bytes(value: Any) -> bytes:
    if not isinstance(value, str):
        raise ValueError(f"expected a hex string, got {type(value).__name__}")
    text = value[2:] if value.startswith(("0x", "0X")) else value
    return bytes.fromhex(text)


# --------------------------------------------------------------------------------------------
# Names, versions, references
# --------------------------------------------------------------------------------------------


def is_valid_name(name: str) -> bool:
    # "." and ".." parts are refused (as on chain): clients turn names into paths.
    return (
        isinstance(name, str)
        and _NAME_RE.fullmatch(name) is not None
        and not any(part in (".", "..") for part in name.split("/"))
    )


def validate_name(name: str) -> str:
    """``owner/model``: lower-case ``[a-z0-9._-]``, each part 1..64 characters and not ``.``/``..`` (as the contract)."""
    if not is_valid_name(name):
        raise InputError(
            f"invalid model name {name!r}: expected owner/model, lower-case [a-z0-9._-], each part 1-64 characters and not '.' or '..'"
        )
    return name


def is_valid_namespace(namespace: str) -> bool:
    """The ``owner`` part of ``owner/model``: 1..64 of lower-case ``[a-z0-9._-]``, not ``.``/``..``."""
    return is_valid_name(f"{namespace}/x") if isinstance(namespace, str) and "/" not in namespace else False


def validate_namespace(namespace: str) -> str:
    if not is_valid_namespace(namespace):
        raise InputError(f"invalid namespace {namespace!r}: expected 1-64 of lower-case [a-z0-9._-], not '.' or '..'")
    return namespace


def namespace_of(name: str) -> str:
    """The namespace of a valid ``namespace/model`` name."""
    return validate_name(name).split("/", 1)[0]


def is_valid_version(version: str) -> bool:
    return (
        isinstance(version, str)
        and len(version.encode("utf-8")) <= MAX_VERSION_BYTES
        and _SEMVER_RE.fullmatch(version) is not None
    )


def validate_version(version: str) -> str:
    """SemVer 2.0.0 and at most 64 bytes (the contract's limit)."""
    if not is_valid_version(version):
        raise InputError(f"invalid version {version!r}: expected SemVer 2.0.0 (e.g. 1.2.0 or 1.0.0-rc.1), at most 64 characters")
    return version


def is_valid_alias(alias: str) -> bool:
    return isinstance(alias, str) and alias != "latest" and _ALIAS_RE.fullmatch(alias) is not None


def validate_alias(alias: str) -> str:
    """``[a-z][a-z0-9-]{0,31}`` and not ``latest`` (the contract's rule)."""
    if not is_valid_alias(alias):
        raise InputError(f"invalid alias {alias!r}: expected a lower-case letter then up to 31 of [a-z0-9-], "
                         "and not 'latest'")
    return alias


REF_FORMS = "NAME@VERSION, NAME@latest, NAME@ALIAS or sha256:HEX"


@dataclass(frozen=True)
class Ref:
    """A parsed reference: ``NAME@VERSION``, ``NAME@latest``, ``NAME@ALIAS`` or ``sha256:HEX``."""

    kind: Literal["version", "latest", "alias", "digest"]
    name: str | None = None
    version: str | None = None
    sha256: bytes | None = None
    alias: str | None = None

    def __str__(self) -> str:
        if self.kind == "digest":
            assert self.sha256 is not None
            return "sha256:" + self.sha256.hex()
        label = {"version": self.version, "latest": "latest", "alias": self.alias}[self.kind]
        return f"{self.name}@{label}"


def parse_ref(ref: str) -> Ref:
    """Parses a reference; InputError with the expected forms on anything else.

    ``NAME@X`` is a version when X starts with a digit (full SemVer required), ``latest``, else an
    alias (``[a-z][a-z0-9-]{0,31}``).
    """
    if not isinstance(ref, str) or not ref:
        raise InputError(f"empty reference: expected {REF_FORMS}")
    if len(ref) > 512 or not ref.isascii() or not ref.isprintable():  # argv may hold any bytes (surrogates too)
        raise InputError(f"invalid reference {ref[:80].encode('ascii', 'backslashreplace').decode()!r}: "
                         f"expected printable ASCII {REF_FORMS}")
    if ref.startswith("sha256:"):
        digest = ref[len("sha256:"):]
        if not _HEX64_RE.fullmatch(digest):
            raise InputError(f"invalid digest reference {ref!r}: expected sha256: and 64 hex characters")
        return Ref(kind="digest", sha256=bytes.fromhex(digest))
    if "@" not in ref:
        raise InputError(f"invalid reference {ref!r}: expected {REF_FORMS}")
    name, _, label = ref.rpartition("@")
    validate_name(name)
    if label == "latest":
        return Ref(kind="latest", name=name)
    if label[:1].isdigit():
        validate_version(label)
        return Ref(kind="version", name=name, version=label)
    if not is_valid_alias(label):
        raise InputError(f"invalid reference {ref!r}: {label[:80]!r} is neither a SemVer version (1.2.0), "
                         "'latest', nor an alias ([a-z][a-z0-9-]{0,31})")
    return Ref(kind="alias", name=name, alias=label)


# --------------------------------------------------------------------------------------------
# Ids, EIP-712 typed data, signing and recovery
# --------------------------------------------------------------------------------------------


def release_id(name: str, version: str) -> bytes:
    """keccak256(abi.encode(keccak256(name), keccak256(version))): the contract's release id."""
    return keccak(keccak(name.encode("utf-8")) + keccak(version.encode("utf-8")))


def name_key(name: str) -> bytes:
    """keccak256(bytes(name)): the key the contract stores a name under."""
    return keccak(name.encode("utf-8"))


def domain(chain_id: int, contract: str) -> dict[str, Any]:
    return {
        "name": DOMAIN_NAME,
        "version": DOMAIN_VERSION,
        "chainId": int(chain_id),
        "verifyingContract": to_checksum_address(contract),
    }


def typed_data(release: Release, chain_id: int, contract: str) -> dict[str, Any]:
    """The full EIP-712 message (``eth_signTypedData_v4`` shape) for wallets and eth-account."""
    return {
        "types": {"EIP712Domain": EIP712_DOMAIN_FIELDS, "Release": RELEASE_FIELDS},
        "primaryType": "Release",
        "domain": domain(chain_id, contract),
        "message": release.message(),
    }


def signing_digest(release: Release, chain_id: int, contract: str) -> bytes:
    """keccak256(0x1901 || domainSeparator || structHash): what ``hashRelease`` returns (eth-account's
    encoding; ``registry.chain.lean_sig.signing_digest`` is the import-light twin recovery uses)."""
    from eth_account.messages import encode_typed_data

    signable = encode_typed_data(full_message=typed_data(release, chain_id, contract))
    return keccak(b"\x19" + signable.version + signable.header + signable.body)


def sign_release(release: Release, account: "LocalAccount", chain_id: int, contract: str) -> bytes:
    """A 65-byte (r, s, v) signature by ``account`` over the release's typed data."""
    signed = account.sign_typed_data(full_message=typed_data(release, chain_id, contract))
    return bytes(signed.signature)


def check_signature_form(signature: bytes) -> None:
    """What OpenZeppelin's ECDSA.tryRecover accepts: 65 bytes, v in {27, 28}, 0 < r, 0 < s <= n/2.

    eth-account would also recover from v in {0, 1} and from the high-s twin of a signature; the
    contract refuses both, so the verifier must too (one rule on and off chain)."""
    raw = bytes(signature)
    if len(raw) != 65:
        raise SignatureError(f"malformed release signature: {len(raw)} bytes, expected 65 (r, s, v)")
    r, s, v = int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:64], "big"), raw[64]
    if v not in (27, 28):
        raise SignatureError(f"malformed release signature: v is {v}, expected 27 or 28")
    if not 0 < r < SECP256K1_N or not 0 < s <= SECP256K1_N // 2:
        raise SignatureError("malformed release signature: s is in the upper half of the curve order "
                             "(a malleated signature; the contract refuses it too)" if s > SECP256K1_N // 2
                             else "malformed release signature: r or s out of range")


def recover_publisher(release: Release, signature: bytes, chain_id: int, contract: str) -> str:
    """The checksummed address that signed; SignatureError if the signature is malformed or not in
    the canonical low-s form the contract accepts."""
    from registry.chain.lean_sig import recover, signing_digest as lean_digest

    check_signature_form(signature)
    digest = lean_digest(release.message(), DOMAIN_NAME, DOMAIN_VERSION, int(chain_id), to_checksum_address(contract))
    return recover(digest, bytes(signature))
