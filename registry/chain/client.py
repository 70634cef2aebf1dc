"""RegistryClient: the only code that talks to ModelRegistry, returning typed records.

Reads retry with backoff (a flaky RPC is normal) and end in UnreachableError; reverts come back as
ChainError subclasses named after the contract's custom error; writes are signed locally and
wait for the receipt plus the profile's confirmations, after which the receipt is fetched again:
a transaction that a reorganisation dropped is reported, never trusted (``confirm``). The signer
of a release (the publisher) and the account paying for the transaction (the sender) are separate,
so a relayer can submit releases signed elsewhere.

Names are ``namespace/model``; a namespace is claimed by commit-reveal (``claim_namespace`` does
both steps, waiting for the block in between). Which release a reference means is decided in
``registry.chain.resolve`` under one set of rules (SemVer labels, aliases, digest ambiguity).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Callable, Iterable, TypeVar

from eth_account.signers.local import LocalAccount
from eth_utils import to_checksum_address
from web3 import Web3
from web3.exceptions import ContractLogicError, Web3RPCError

from registry.chain.artifacts import load_artifact
from registry.chain.confirm import confirm_receipt
from registry.chain.errors import ContractRevert
from registry.chain.ownership import PAGE, ZERO_ADDRESS, OwnershipMixin, _address, _bytes32
from registry.chain.records import AttestationRecord, ReleaseRecord
from registry.chain.rpc import make_web3, with_retries
from registry.chain.nonces import KeyLockGuard
from registry.chain.tx import register_guard, revert_from, send_call
from registry.config import Settings
from registry.errors import ChainError
from registry.release import (
    Ref,
    Release,
    recover_publisher,
    sign_release,
    signing_digest,
    validate_name,
    validate_version,
)

T = TypeVar("T")
__all__ = ["PAGE", "ZERO_ADDRESS", "RegistryClient", "TxResult"]
# Gas over the node's estimate: estimates run against the pending block, whose state may differ a
# little from the one the transaction lands in.
GAS_HEADROOM = 1.2


@dataclass(frozen=True)
class TxResult:
    """What a write left behind on chain."""

    tx_hash: str
    block_number: int
    gas_used: int

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


class RegistryClient(OwnershipMixin):
    """A connected ModelRegistry. Build with ``connect(settings)`` or ``at(rpc_url, contract)``.

    Namespaces, publishers and aliases come from ``OwnershipMixin`` (``registry.chain.ownership``)."""

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
        from registry.chain.devnet import ensure_running
        from registry.chain.reads import profile_target

        rpc_url, contract, chain_id = profile_target(settings, ensure_running)
        profile = settings.profile
        client = cls.at(rpc_url, contract, chain_id, profile.confirmations, profile.timeout_s, profile.retries)
        if not profile.is_local:
            register_guard(rpc_url, KeyLockGuard(settings.home / "locks"))  # one nonce at a time per key
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
        def build(params: dict[str, Any]) -> dict[str, Any]:
            # Estimated against the pending block: that is where the transaction goes, and a
            # namespace reveal only works in a block after its commitment's (``latest`` is that block).
            estimate = fn.estimate_gas({"from": params["from"]}, block_identifier="pending")
            return fn.build_transaction({**params, "gas": int(estimate * GAS_HEADROOM) + 10_000})

        receipt = send_call(self.w3, sender, build, 0, retries=self.retries)
        receipt = self.confirm(receipt)
        return TxResult(
            tx_hash="0x" + bytes(receipt["transactionHash"]).hex(),
            block_number=int(receipt["blockNumber"]),
            gas_used=int(receipt["gasUsed"]),
        )

    def confirm(self, receipt: Any) -> Any:
        """The receipt once the profile's confirmations are on top of it, fetched again after the
        wait (``registry.chain.confirm``): a transaction a reorganisation dropped raises ChainError."""
        return confirm_receipt(self.w3, receipt, self.confirmations, self.rpc_url, self.retries)

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
        """The newest valid release of ``name`` (not revoked, publisher still authorised)."""
        try:
            info = self._read(lambda: self.contract.functions.latest(name).call())
        except ContractRevert as exc:
            if exc.error_name == "NoActiveRelease":
                raise exc.with_hint(f"{name} has no release that is not revoked and whose publisher may still "
                                    "publish it") from exc
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

    def digest_page(self, sha256: bytes, cursor: int = 0, limit: int = PAGE) -> tuple[list[bytes], int]:
        """One page of release ids with this artifact SHA-256, newest first, and the next cursor (0: done)."""
        digest = _bytes32(sha256, "sha256 digest")
        ids, next_cursor = self._read(lambda: self.contract.functions.releasesByDigest(digest, cursor, limit).call())
        return [bytes(i) for i in ids], int(next_cursor)

    def digest_ids(self, sha256: bytes, limit: int | None = None) -> tuple[list[bytes], bool]:
        """Ids of releases with this artifact SHA-256, newest first, at most ``limit`` of them, and
        whether that was all. O(ids read), however long the list is (cursor paging)."""
        ids: list[bytes] = []
        cursor = 0
        while limit is None or len(ids) < limit:
            size = PAGE if limit is None else min(PAGE, limit - len(ids))
            page, cursor = self.digest_page(sha256, cursor, size)
            ids.extend(page)
            if cursor == 0:
                break
        return ids, cursor == 0

    def by_digest(self, sha256: bytes, limit: int | None = None) -> list[ReleaseRecord]:
        """Releases whose artifact has this SHA-256, in publish order (with ``limit``: the newest)."""
        ids, _ = self.digest_ids(sha256, limit)
        return [self.get_by_id(rid) for rid in reversed(ids)]

    def resolve(self, ref: str | Ref, trusted: Iterable[str] = ()) -> ReleaseRecord:
        """The release a reference means, under ``registry.chain.resolve``'s rules: ``NAME@VERSION``,
        ``NAME@latest`` (newest valid), ``NAME@ALIAS`` (refused once its target stops counting) or
        ``sha256:HEX`` (refused when several names have the bytes, unless ``trusted`` narrows it to
        one; revoked anywhere means revoked). Labels that are not SemVer are refused."""
        from registry.chain.resolve import resolve

        return resolve(self, ref, trusted)

    def is_revoked(self, release_id: bytes) -> bool:
        rid = _bytes32(release_id, "release id")
        return bool(self._read(lambda: self.contract.functions.isRevoked(rid).call()))

    def is_active(self, release_id: bytes) -> bool:
        """The release exists and is not revoked."""
        rid = _bytes32(release_id, "release id")
        return bool(self._read(lambda: self.contract.functions.isActive(rid).call()))

    def is_valid(self, release_id: bytes) -> bool:
        """The release counts: it exists, is not revoked, and its publisher may still publish the name."""
        rid = _bytes32(release_id, "release id")
        return bool(self._read(lambda: self.contract.functions.isValid(rid).call()))

    def lineage_ok(self, release_id: bytes) -> bool:
        """What PredictionFeed accepts: the release counts (``is_valid``) and no ancestor within the
        contract's MAX_LINEAGE_DEPTH parents is revoked; a deeper lineage is not ok (fail closed).
        One eth_call, cheap enough for an oracle node to ask on every poll."""
        rid = _bytes32(release_id, "release id")
        return bool(self._read(lambda: self.contract.functions.lineageValid(rid).call()))

    def max_lineage_depth(self) -> int:
        return self._read(lambda: int(self.contract.functions.MAX_LINEAGE_DEPTH().call()))

    # The rest of ``registry.chain.reads.ChainReader`` (the verifier's read-only interface).

    def get_code(self, address: str) -> bytes:
        account = _address(address)
        return self._read(lambda: bytes(self.w3.eth.get_code(account)))

    def eth_call(self, to: str, data: bytes) -> bytes:
        target = _address(to)
        return self._read(lambda: bytes(self.w3.eth.call({"to": target, "data": bytes(data)})))

    def published_in(self, release_id: bytes) -> tuple[int, bytes] | None:
        """(block number, transaction hash) of the release's latest ReleasePublished event, if any."""
        rid = _bytes32(release_id, "release id")
        logs = self._read(lambda: self.contract.events.ReleasePublished().get_logs(
            from_block=0, argument_filters={"releaseId": rid}))
        return (int(logs[-1]["blockNumber"]), bytes(logs[-1]["transactionHash"])) if logs else None

    def transaction_input(self, tx_hash: bytes) -> bytes:
        return self._read(lambda: bytes(self.w3.eth.get_transaction(bytes(tx_hash))["input"]))

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

    def attestation_count(self, release_id: bytes) -> int:
        rid = _bytes32(release_id, "release id")
        return self._read(lambda: int(self.contract.functions.attestationCount(rid).call()))

    def attestations(self, release_id: bytes, limit: int = 1000) -> list[AttestationRecord]:
        """Attesters' verdicts in the order they first judged it, paged; at most ``limit`` of them
        (anyone may attest, so the list may be long: policies read ``attestation_of`` instead)."""
        rid = _bytes32(release_id, "release id")
        out: list[AttestationRecord] = []
        while len(out) < limit:
            size = min(PAGE, limit - len(out))
            page = self._read(lambda: self.contract.functions.attestationsOf(rid, len(out), size).call())
            out.extend(AttestationRecord.from_abi(a) for a in page)
            if len(page) < size:
                break
        return out

    def attestation_of(self, release_id: bytes, attester: str) -> AttestationRecord | None:
        """``attester``'s latest verdict on the release (one O(1) read), or None if it gave none."""
        rid = _bytes32(release_id, "release id")
        account = _address(attester, "attester address")
        found = AttestationRecord.from_abi(self._read(lambda: self.contract.functions.attestationOf(rid, account).call()))
        return found if found.attested_at != 0 else None

    def attested_by(self, attester: str) -> list[bytes]:
        account = _address(attester, "attester address")
        ids: list[bytes] = []
        while True:
            page = self._read(lambda: self.contract.functions.attestedBy(account, len(ids), PAGE).call())
            ids.extend(bytes(i) for i in page)
            if len(page) < PAGE:
                return ids
