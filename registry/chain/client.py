"""RegistryClient: the only code that talks to ModelRegistry, returning typed records.

Reads retry with backoff (a flaky RPC is normal) and end in UnreachableError; reverts come back as
ChainError subclasses named after the contract's custom error; writes are signed locally and
wait for the receipt plus the profile's confirmations. The signer of a release (the publisher)
and the account paying for the transaction (the sender) are separate, so a relayer can submit
releases signed elsewhere.
"""

from __future__ import annotations

import dataclasses
import sys
from dataclasses import dataclass
from typing import Any, Callable, TypeVar

from eth_account.signers.local import LocalAccount
from eth_utils import is_address, to_checksum_address
from web3 import Web3
from web3.exceptions import ContractLogicError, Web3RPCError

from registry.chain.artifacts import load_artifact
from registry.chain.errors import ContractRevert
from registry.chain.records import AttestationRecord, NameInfo, ReleaseRecord
from registry.chain.rpc import make_web3, with_retries
from registry.chain.nonces import KeyLockGuard
from registry.chain.tx import register_guard, revert_from, send_call
from registry.config import Settings
from registry.errors import ChainError, InputError
from registry.release import (
    Ref,
    name_key,
    Release,
    parse_ref,
    recover_publisher,
    sign_release,
    signing_digest,
    validate_name,
    validate_version,
)

T = TypeVar("T")
ZERO_ADDRESS = "0x0000000000000000000000000000000000000000"
PAGE = 100


@dataclass(frozen=True)
class TxResult:
    """What a write left behind on chain."""

    tx_hash: str
    block_number: int
    gas_used: int

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _address(value: str, what: str = "address") -> str:
    if not isinstance(value, str) or not is_address(value):
        raise InputError(f"invalid {what} {value!r}: expected a 0x-prefixed 20-byte hex address")
    return to_checksum_address(value)


def _bytes32(value: bytes, what: str) -> bytes:
    if not isinstance(value, (bytes, bytearray)) or len(value) != 32:
        raise InputError(f"{what} must be 32 bytes")
    return bytes(value)


class RegistryClient:
    """A connected ModelRegistry. Build with ``connect(settings)`` or ``at(rpc_url, contract)``."""

    def __init__(
        self,
        w3: Web3,
        address: str,
        chain_id: int,
        rpc_url: str,
        confirmations: int = 0,
        retries: int = 3,
    ) -> None:
        self.w3 = w3
        self.address = to_checksum_address(address)
        self.chain_id = chain_id
        self.rpc_url = rpc_url
        self.confirmations = confirmations
        self.retries = retries
        self.contract = w3.eth.contract(address=self.address, abi=load_artifact().abi)

    def __repr__(self) -> str:
        return f"RegistryClient(rpc_url={self.rpc_url!r}, chain_id={self.chain_id}, address={self.address!r})"

    # ----------------------------------------------------------------------------------------
    # Connecting
    # ----------------------------------------------------------------------------------------

    @classmethod
    def connect(cls, settings: Settings) -> "RegistryClient":
        """The profile's registry; on the local profile this starts anvil and deploys once."""
        profile = settings.profile
        if profile.is_local:
            from registry.chain.devnet import ensure_running

            info = ensure_running(settings)
            if info.note:  # e.g. recovered from the last good snapshot: the user must hear it
                print(f"note: {info.note}", file=sys.stderr)
            return cls.at(info.rpc_url, info.contract, info.chain_id, profile.confirmations, profile.timeout_s,
                          profile.retries)
        if not profile.contract:
            raise InputError(
                f"profile {profile.name!r} has no contract address: set it with "
                f"`registry profile add {profile.name} --contract ADDR` or REGISTRY_CONTRACT"
            )
        assert profile.rpc_url is not None
        client = cls.at(profile.rpc_url, profile.contract, profile.chain_id, profile.confirmations, profile.timeout_s,
                        profile.retries)
        register_guard(profile.rpc_url, KeyLockGuard(settings.home / "locks"))  # one nonce at a time per key
        return client

    @classmethod
    def at(
        cls,
        rpc_url: str,
        contract: str,
        chain_id: int | None = None,
        confirmations: int = 0,
        timeout_s: float = 10.0,
        retries: int = 3,
    ) -> "RegistryClient":
        """Checks the node's chain id (when one is expected) and that code exists at ``contract``."""
        address = _address(contract, "contract address")
        w3 = make_web3(rpc_url, timeout_s)
        try:
            actual = with_retries(lambda: int(w3.eth.chain_id), rpc_url, retries)
        except (ValueError, Web3RPCError) as exc:  # HTML, a JSON error, anything but a JSON-RPC node
            raise ChainError(f"{rpc_url} does not answer like an Ethereum JSON-RPC node ({type(exc).__name__})") from exc
        if chain_id is not None and actual != int(chain_id):
            raise ChainError(f"wrong chain: profile expects chain id {chain_id}, node at {rpc_url} says {actual}")
        code = with_retries(lambda: bytes(w3.eth.get_code(address)), rpc_url, retries)
        if not code:
            raise ChainError(f"no contract at {address} on chain {actual} ({rpc_url})")
        return cls(w3, address, actual, rpc_url, confirmations, retries)

    # ----------------------------------------------------------------------------------------
    # Plumbing
    # ----------------------------------------------------------------------------------------

    def _read(self, fn: Callable[[], T]) -> T:
        def attempt() -> T:
            try:
                return fn()
            except (ContractLogicError, Web3RPCError) as exc:
                raise revert_from(exc) from exc

        return with_retries(attempt, self.rpc_url, self.retries)

    def _write(self, fn: Any, sender: LocalAccount) -> TxResult:
        receipt = send_call(
            self.w3, sender, lambda params: fn.build_transaction(params), self.confirmations, retries=self.retries
        )
        return TxResult(
            tx_hash="0x" + bytes(receipt["transactionHash"]).hex(),
            block_number=int(receipt["blockNumber"]),
            gas_used=int(receipt["gasUsed"]),
        )

    @property
    def block_number(self) -> int:
        return self._read(lambda: int(self.w3.eth.block_number))

    # ----------------------------------------------------------------------------------------
    # Releases
    # ----------------------------------------------------------------------------------------

    def next_nonce(self, publisher: str) -> int:
        """The nonce the publisher's next release must carry (OpenZeppelin Nonces, sequential)."""
        account = _address(publisher, "publisher address")
        return self._read(lambda: int(self.contract.functions.nonces(account).call()))

    def hash_release(self, release: Release) -> bytes:
        """The contract's own EIP-712 digest of ``release`` (for cross-checking ``signing_digest``)."""
        return self._read(lambda: bytes(self.contract.functions.hashRelease(release.as_tuple()).call()))

    def signing_digest(self, release: Release) -> bytes:
        return signing_digest(release, self.chain_id, self.address)

    def prepare(self, release: Release, publisher: str) -> Release:
        """The release with the publisher's current nonce filled in."""
        return dataclasses.replace(release, nonce=self.next_nonce(publisher))

    def sign(self, release: Release, signer: LocalAccount) -> bytes:
        return sign_release(release, signer, self.chain_id, self.address)

    def publish(self, release: Release, signature: bytes, publisher: str, sender: LocalAccount) -> ReleaseRecord:
        """Anchors a release signed by ``publisher``; ``sender`` pays (may be a relayer)."""
        validate_name(release.name)
        validate_version(release.version)
        publisher = _address(publisher, "publisher address")
        fn = self.contract.functions.publish(release.as_tuple(), publisher, bytes(signature))
        self._write(fn, sender)
        return self.get_by_id(release.id)

    def publish_signed(self, release: Release, signature: bytes, sender: LocalAccount) -> ReleaseRecord:
        """Relayer path: the publisher is whoever the signature recovers to."""
        publisher = recover_publisher(release, signature, self.chain_id, self.address)
        return self.publish(release, signature, publisher, sender)

    def sign_and_publish(
        self, release: Release, signer: LocalAccount, sender: LocalAccount | None = None
    ) -> ReleaseRecord:
        """Fills the signer's nonce, signs and publishes (sender defaults to the signer)."""
        prepared = self.prepare(release, signer.address)
        signature = self.sign(prepared, signer)
        return self.publish(prepared, signature, signer.address, sender or signer)

    def get_by_id(self, release_id: bytes) -> ReleaseRecord:
        rid = _bytes32(release_id, "release id")
        return ReleaseRecord.from_abi(self._read(lambda: self.contract.functions.getRelease(rid).call()))

    def get(self, name: str, version: str) -> ReleaseRecord:
        try:
            info = self._read(lambda: self.contract.functions.getReleaseByVersion(name, version).call())
        except ContractRevert as exc:
            if exc.error_name == "UnknownRelease":
                raise exc.with_hint(f"no release {name}@{version}") from exc
            raise
        return ReleaseRecord.from_abi(info)

    def latest(self, name: str) -> ReleaseRecord:
        """The newest release of ``name`` that is not revoked."""
        try:
            info = self._read(lambda: self.contract.functions.latest(name).call())
        except ContractRevert as exc:
            if exc.error_name == "NoActiveRelease":
                raise exc.with_hint(f"{name} has no release that is not revoked") from exc
            raise
        return ReleaseRecord.from_abi(info)

    def release_count(self, name: str) -> int:
        return self._read(lambda: int(self.contract.functions.releaseCount(name).call()))

    def release_ids(self, name: str) -> list[bytes]:
        ids: list[bytes] = []
        while True:
            page = self._read(lambda: self.contract.functions.releasesOf(name, len(ids), PAGE).call())
            ids.extend(bytes(i) for i in page)
            if len(page) < PAGE:
                return ids

    def history(self, name: str) -> list[ReleaseRecord]:
        """Every release of ``name`` in publish order, revoked ones included."""
        return [self.get_by_id(rid) for rid in self.release_ids(name)]

    def by_digest(self, sha256: bytes) -> list[ReleaseRecord]:
        """Every release whose artifact has this SHA-256, in publish order."""
        digest = _bytes32(sha256, "sha256 digest")
        ids: list[bytes] = []
        while True:
            page = self._read(lambda: self.contract.functions.releasesByDigest(digest, len(ids), PAGE).call())
            ids.extend(bytes(i) for i in page)
            if len(page) < PAGE:
                break
        return [self.get_by_id(rid) for rid in ids]

    def resolve(self, ref: str | Ref) -> ReleaseRecord:
        """``NAME@VERSION``, ``NAME@latest`` (newest not revoked) or ``sha256:HEX`` (newest active match)."""
        parsed = parse_ref(ref) if isinstance(ref, str) else ref
        if parsed.kind == "version":
            assert parsed.name is not None and parsed.version is not None
            return self.get(parsed.name, parsed.version)
        if parsed.kind == "latest":
            assert parsed.name is not None
            return self.latest(parsed.name)
        assert parsed.sha256 is not None
        matches = self.by_digest(parsed.sha256)
        if not matches:
            raise ChainError(f"no release has artifact sha256:{parsed.sha256.hex()}")
        active = [m for m in matches if not m.revoked]
        return (active or matches)[-1]

    def is_revoked(self, release_id: bytes) -> bool:
        rid = _bytes32(release_id, "release id")
        return bool(self._read(lambda: self.contract.functions.isRevoked(rid).call()))

    def is_active(self, release_id: bytes) -> bool:
        rid = _bytes32(release_id, "release id")
        return bool(self._read(lambda: self.contract.functions.isActive(rid).call()))

    def revoke(self, release_id: bytes, reason: str, sender: LocalAccount) -> TxResult:
        rid = _bytes32(release_id, "release id")
        return self._write(self.contract.functions.revoke(rid, reason), sender)

    # ----------------------------------------------------------------------------------------
    # Attestations
    # ----------------------------------------------------------------------------------------

    def attest(self, release_id: bytes, passed: bool, report_sha256: bytes, sender: LocalAccount) -> TxResult:
        rid = _bytes32(release_id, "release id")
        report = _bytes32(report_sha256, "report sha256")
        return self._write(self.contract.functions.attest(rid, bool(passed), report), sender)

    def attestations(self, release_id: bytes) -> list[AttestationRecord]:
        rid = _bytes32(release_id, "release id")
        return [AttestationRecord.from_abi(a) for a in self._read(lambda: self.contract.functions.attestationsOf(rid).call())]

    def attested_by(self, attester: str) -> list[bytes]:
        account = _address(attester, "attester address")
        ids: list[bytes] = []
        while True:
            page = self._read(lambda: self.contract.functions.attestedBy(account, len(ids), PAGE).call())
            ids.extend(bytes(i) for i in page)
            if len(page) < PAGE:
                return ids

    # ----------------------------------------------------------------------------------------
    # Names
    # ----------------------------------------------------------------------------------------

    def claim_name(self, name: str, sender: LocalAccount) -> TxResult:
        validate_name(name)
        return self._write(self.contract.functions.claimName(name), sender)

    def add_publisher(self, name: str, account: str, sender: LocalAccount) -> TxResult:
        return self._write(self.contract.functions.addPublisher(name, _address(account)), sender)

    def remove_publisher(self, name: str, account: str, sender: LocalAccount) -> TxResult:
        return self._write(self.contract.functions.removePublisher(name, _address(account)), sender)

    def propose_owner(self, name: str, new_owner: str, sender: LocalAccount) -> TxResult:
        return self._write(self.contract.functions.proposeNameOwner(name, _address(new_owner)), sender)

    def accept_owner(self, name: str, sender: LocalAccount) -> TxResult:
        return self._write(self.contract.functions.acceptNameOwner(name), sender)

    def name_owner(self, name: str) -> tuple[str | None, str | None]:
        """(owner, pending owner); None where the chain has the zero address."""
        owner, pending = self._read(lambda: self.contract.functions.nameOwner(name).call())
        return (None if owner == ZERO_ADDRESS else owner, None if pending == ZERO_ADDRESS else pending)

    def name_info(self, name: str, with_publishers: bool = False) -> NameInfo:
        """Owner, pending owner, release count; publishers too if asked (see ``publishers``)."""
        owner, pending = self.name_owner(name)
        publishers = None
        if with_publishers and owner is not None:
            try:
                publishers = self.publishers(name)
            except ChainError:  # e.g. an RPC that limits eth_getLogs ranges
                publishers = None
        return NameInfo(name=name, owner=owner, pending_owner=pending, release_count=self.release_count(name),
                        publishers=publishers)

    def publishers(self, name: str, from_block: int = 0) -> list[str]:
        """Current publishers of ``name``. The contract keeps them in a mapping (not enumerable), so
        candidates come from PublisherAdded events and each is re-checked with ``isPublisher``."""
        key = name_key(name)
        event = self.contract.events.PublisherAdded
        logs = self._read(lambda: list(event.get_logs(argument_filters={"nameKey": key}, from_block=from_block)))
        candidates = list(dict.fromkeys(to_checksum_address(log["args"]["publisher"]) for log in logs))
        return [account for account in candidates if self.is_publisher(name, account)]

    def is_publisher(self, name: str, account: str) -> bool:
        return bool(self._read(lambda: self.contract.functions.isPublisher(name, _address(account)).call()))
