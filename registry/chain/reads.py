"""What verification reads from the chain: one small read-only interface, two implementations.

A device that verifies needs a handful of views (resolve a reference, read a release and its
lineage, ask whether a publisher may publish, read attestations, call a contract wallet), not
web3.py, whose import alone costs more than a small model's whole verify. ``ChainReader`` names
exactly those reads. ``RegistryClient`` (web3.py; publish, the oracle, the explorer) has them, and
so has ``registry.chain.lean_client.LeanClient`` (JSON-RPC over ``http.client``, EIP-712 with
coincurve), which ``connect_reader`` returns: the verifier and ``pull`` are written against the
interface, so both paths apply the same rules (``registry.chain.resolve``) to the same answers.

The helpers below work on any ``ChainReader``: ERC-1271 wallet signatures, confirmations of a
release, and the signed Release read back from its publishing transaction.
"""

from __future__ import annotations

import sys

from typing import TYPE_CHECKING, Any, Callable, Iterable, Protocol, runtime_checkable

from registry.errors import ChainError, InputError

if TYPE_CHECKING:
    from registry.chain.records import AttestationRecord, ReleaseRecord
    from registry.config import Settings
    from registry.release import Ref, Release

# isValidSignature(bytes32,bytes)'s selector, which a wallet returns when it accepts the signature
ERC1271_MAGIC = bytes.fromhex("1626ba7e")


@runtime_checkable
class ChainReader(Protocol):
    """The reads a verifier makes (see the module docstring). Reverts are ``ContractRevert``s, an
    RPC that does not answer is ``UnreachableError``, whichever implementation answers."""

    address: str
    chain_id: int
    rpc_url: str

    def get_by_id(self, release_id: bytes) -> "ReleaseRecord": ...

    def get(self, name: str, version: str) -> "ReleaseRecord": ...

    def latest(self, name: str) -> "ReleaseRecord": ...

    def resolve_alias(self, name: str, alias: str) -> "ReleaseRecord": ...

    def digest_ids(self, sha256: bytes, limit: int | None = None) -> tuple[list[bytes], bool]: ...

    def is_valid(self, release_id: bytes) -> bool: ...

    def may_publish(self, name: str, account: str) -> bool: ...

    def attestation_of(self, release_id: bytes, attester: str) -> "AttestationRecord | None": ...

    def resolve(self, ref: "str | Ref", trusted: Iterable[str] = ()) -> "ReleaseRecord": ...

    def get_code(self, address: str) -> bytes: ...

    def eth_call(self, to: str, data: bytes) -> bytes: ...

    @property
    def block_number(self) -> int: ...

    def published_in(self, release_id: bytes) -> tuple[int, bytes] | None: ...

    def transaction_input(self, tx_hash: bytes) -> bytes: ...


def profile_target(settings: "Settings", local: "Callable[[Settings], Any]") -> tuple[str, str, int | None]:
    """(RPC URL, contract, expected chain id) of the profile. ``local(settings)`` returns the embedded
    devnet's ``DevnetInfo`` (starting it if it must); another profile must name its contract."""
    profile = settings.profile
    if profile.is_local:
        info = local(settings)
        if info.note:  # e.g. recovered from the last good snapshot: the user must hear it
            print(f"note: {info.note}", file=sys.stderr)
        return info.rpc_url, info.contract, info.chain_id
    if not profile.contract:
        raise InputError(
            f"profile {profile.name!r} has no contract address: set it with "
            f"`registry profile add {profile.name} --contract ADDR` or REGISTRY_CONTRACT"
        )
    assert profile.rpc_url is not None
    return profile.rpc_url, profile.contract, profile.chain_id


def connect_reader(settings: "Settings") -> ChainReader:
    """The profile's registry for reading, without web3.py (``LeanClient.connect``)."""
    from registry.chain.lean_client import LeanClient

    return LeanClient.connect(settings)


def erc1271_valid(reader: ChainReader, wallet: str, digest: bytes, signature: bytes) -> bool:
    """Whether the contract wallet at ``wallet`` accepts ``signature`` over ``digest`` (EIP-1271).
    Any failure of the wallet call (no code, a revert, a short answer) means "not valid"."""
    from registry.chain.lean import encode_args

    try:
        if not reader.get_code(wallet):
            return False
        call = ERC1271_MAGIC + encode_args([{"type": "bytes32"}, {"type": "bytes"}], (digest, bytes(signature)))
        return reader.eth_call(wallet, call)[:4] == ERC1271_MAGIC
    except Exception:  # any failure of the wallet call means "not valid"
        return False


def confirmations(reader: ChainReader, record: "ReleaseRecord") -> int:
    """Blocks on top of the one that anchored the release (from its ReleasePublished event)."""
    published = reader.published_in(record.id)
    if published is None:
        raise ChainError(f"no ReleasePublished event for {record.ref}")
    return reader.block_number - published[0]


def signed_from_chain(reader: ChainReader, record: "ReleaseRecord") -> tuple["Release", bytes, str]:
    """The exact signed Release and signature, read back from the publishing transaction's calldata.

    The chain stores neither nonce, deadline nor signature, but the transaction that published the
    release carries all three, so a manifest can always be rebuilt from the chain.
    """
    from registry.chain.lean import functions
    from registry.release import Release

    published = reader.published_in(record.id)
    if published is None:
        raise ChainError(f"no ReleasePublished event for {record.ref}")
    tx_hash = published[1]
    try:
        args = functions()["publish"].decode_input(reader.transaction_input(tx_hash))
    except ChainError as exc:
        raise ChainError(f"{record.ref} was published through another contract or call; its signature cannot be "
                         "recovered from the transaction") from exc
    values: Any = args[0]
    release = Release(
        name=values[0], version=values[1], artifact_sha256=bytes(values[2]), artifact_cid=bytes(values[3]),
        artifact_size=int(values[4]), provenance_sha256=bytes(values[5]), provenance_cid=bytes(values[6]),
        card_sha256=bytes(values[7]), card_cid=bytes(values[8]), parent=bytes(values[9]), nonce=int(values[10]),
        deadline=int(values[11]),
    )
    if release.id != record.id:
        raise ChainError(f"transaction 0x{tx_hash.hex()} published another release than {record.ref}")
    return release, bytes(args[2]), "0x" + tx_hash.hex()
