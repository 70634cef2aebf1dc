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
import secrets
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterable, TypeVar

from eth_account.signers.local import LocalAccount
from eth_utils import is_address, to_checksum_address
from web3 import Web3
from web3.exceptions import ContractLogicError, Web3RPCError

from registry.chain.artifacts import load_artifact
from registry.chain.confirm import confirm_receipt
from registry.chain.errors import ContractRevert
from registry.chain.records import AliasRecord, AttestationRecord, NameInfo, ReleaseRecord
from registry.chain.rpc import make_web3, with_retries
from registry.chain.tx import RECEIPT_TIMEOUT_S, revert_from, send_call
from registry.config import Settings
from registry.errors import ChainError, InputError
from registry.release import (
    Ref,
    name_key,
    Release,
    recover_publisher,
    sign_release,
    signing_digest,
    validate_alias,
    validate_name,
    validate_namespace,
    validate_version,
)

T = TypeVar("T")
ZERO_ADDRESS = "0x0000000000000000000000000000000000000000"
PAGE = 100
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
            return cls.at(info.rpc_url, info.contract, info.chain_id, profile.confirmations, profile.timeout_s,
                          profile.retries)
        if not profile.contract:
            raise InputError(
                f"profile {profile.name!r} has no contract address: set it with "
                f"`registry profile add {profile.name} --contract ADDR` or REGISTRY_CONTRACT"
            )
        assert profile.rpc_url is not None
        return cls.at(profile.rpc_url, profile.contract, profile.chain_id, profile.confirmations, profile.timeout_s,
                      profile.retries)

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

    # ----------------------------------------------------------------------------------------
    # Namespaces
    # ----------------------------------------------------------------------------------------

    def namespace_owner(self, namespace: str) -> tuple[str | None, str | None]:
        """(owner, pending owner) of the namespace; None where the chain has the zero address."""
        owner, pending = self._read(lambda: self.contract.functions.namespaceOwner(namespace).call())
        return (None if owner == ZERO_ADDRESS else owner, None if pending == ZERO_ADDRESS else pending)

    def commit_namespace(self, namespace: str, sender: LocalAccount, salt: bytes | None = None) -> tuple[TxResult, bytes]:
        """Step 1 of a claim: records the hiding commitment; returns the receipt and the salt to reveal."""
        validate_namespace(namespace)
        salt = salt if salt is not None else secrets.token_bytes(32)
        commitment = self._read(lambda: bytes(
            self.contract.functions.makeCommitment(namespace, sender.address, _bytes32(salt, "salt")).call()))
        return self._write(self.contract.functions.commitNamespace(commitment), sender), salt

    def reveal_namespace(self, namespace: str, salt: bytes, sender: LocalAccount) -> TxResult:
        """Step 2: claims the namespace with the salt of a commitment made in an earlier block."""
        validate_namespace(namespace)
        return self._write(self.contract.functions.claimNamespace(namespace, _bytes32(salt, "salt")), sender)

    def claim_namespace(self, namespace: str, sender: LocalAccount, timeout_s: float = RECEIPT_TIMEOUT_S,
                        on_wait: Callable[[str], None] | None = None) -> TxResult:
        """Claims ``namespace`` for ``sender`` by commit-reveal in one call: commit, wait until the
        chain has moved past the commitment's block, reveal. ChainError if someone owns it already."""
        validate_namespace(namespace)
        owner, _ = self.namespace_owner(namespace)
        if owner is not None:
            raise ChainError(f"namespace {namespace!r} is already claimed by {owner}")
        committed, salt = self.commit_namespace(namespace, sender)
        if on_wait is not None:
            on_wait(f"committed to namespace {namespace!r} in block {committed.block_number}; revealing in a later block")
        # The reveal is estimated and sent against the pending block, which is always later than the
        # commitment's; on a chain that mines only on demand (anvil) it is mined next.
        deadline = time.monotonic() + timeout_s
        while self.block_number < committed.block_number:
            if time.monotonic() > deadline:
                raise ChainError(f"the chain did not reach block {committed.block_number} within {timeout_s:.0f} s")
            time.sleep(0.2)
        return self.reveal_namespace(namespace, salt, sender)

    def propose_namespace_owner(self, namespace: str, new_owner: str, sender: LocalAccount) -> TxResult:
        return self._write(self.contract.functions.proposeNamespaceOwner(namespace, _address(new_owner)), sender)

    def accept_namespace_owner(self, namespace: str, sender: LocalAccount) -> TxResult:
        return self._write(self.contract.functions.acceptNamespaceOwner(namespace), sender)

    # ----------------------------------------------------------------------------------------
    # Names and their publishers
    # ----------------------------------------------------------------------------------------

    def add_publisher(self, name: str, account: str, sender: LocalAccount) -> TxResult:
        validate_name(name)
        return self._write(self.contract.functions.addPublisher(name, _address(account)), sender)

    def remove_publisher(self, name: str, account: str, sender: LocalAccount) -> TxResult:
        validate_name(name)
        return self._write(self.contract.functions.removePublisher(name, _address(account)), sender)

    def name_owner(self, name: str) -> tuple[str | None, str | None]:
        """(owner, pending owner) of the name's namespace; None where the chain has the zero address."""
        validate_name(name)
        return self.namespace_owner(name.split("/", 1)[0])

    def name_info(self, name: str, with_publishers: bool = False) -> NameInfo:
        """Owner and pending owner (its namespace's), release count; publishers too if asked."""
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
        """Who may publish ``name`` now: the namespace owner, then the accounts added to the name. The
        contract keeps those in a mapping (not enumerable), so candidates come from PublisherAdded
        events and each is re-checked with ``isPublisher``."""
        owner, _ = self.name_owner(name)
        key = name_key(name)
        event = self.contract.events.PublisherAdded
        logs = self._read(lambda: list(event.get_logs(argument_filters={"nameKey": key}, from_block=from_block)))
        candidates = list(dict.fromkeys(to_checksum_address(log["args"]["publisher"]) for log in logs))
        added = [account for account in candidates if account != owner and self.is_publisher(name, account)]
        return ([owner] if owner is not None else []) + added

    def is_publisher(self, name: str, account: str) -> bool:
        """Whether ``account`` was added as a publisher of the name (the namespace owner need not be)."""
        return bool(self._read(lambda: self.contract.functions.isPublisher(name, _address(account)).call()))

    def may_publish(self, name: str, account: str) -> bool:
        """Whether ``account`` may publish the name now (added publisher or namespace owner): the rule
        under which its releases count."""
        return bool(self._read(lambda: self.contract.functions.mayPublish(name, _address(account)).call()))

    # ----------------------------------------------------------------------------------------
    # Aliases
    # ----------------------------------------------------------------------------------------

    def set_alias(self, name: str, alias: str, release_id: bytes, sender: LocalAccount) -> TxResult:
        """Points ``name@alias`` at a valid release of the name (namespace owner only)."""
        validate_name(name)
        validate_alias(alias)
        rid = _bytes32(release_id, "release id")
        return self._write(self.contract.functions.setAlias(name, alias, rid), sender)

    def remove_alias(self, name: str, alias: str, sender: LocalAccount) -> TxResult:
        validate_name(name)
        return self._write(self.contract.functions.removeAlias(name, alias), sender)

    def resolve_alias(self, name: str, alias: str) -> ReleaseRecord:
        """The release ``name@alias`` points at. An alias whose target was revoked later raises
        RevokedError (exit 12), one whose target's publisher was removed SignatureError (exit 11),
        an unknown alias ChainError: never the bytes of a release that stopped counting."""
        from registry.errors import RevokedError, SignatureError

        try:
            info = self._read(lambda: self.contract.functions.resolveAlias(name, alias).call())
        except ContractRevert as exc:
            if exc.error_name == "UnknownAlias":
                raise exc.with_hint(f"{name} has no alias {alias!r}") from exc
            if exc.error_name == "ReleaseIsRevoked":
                target = self.get_by_id(bytes(exc.error_args[0]))
                raise RevokedError(f"{name}@{alias} points at {target.ref}, which was revoked: "
                                   f"{target.revocation_reason or '(no reason given)'}") from exc
            if exc.error_name == "ReleaseNotValid":
                target = self.get_by_id(bytes(exc.error_args[0]))
                raise SignatureError(f"{name}@{alias} points at {target.ref}, whose publisher {target.publisher} may "
                                     f"no longer publish {name}") from exc
            raise
        return ReleaseRecord.from_abi(info)

    def alias_target(self, name: str, alias: str) -> bytes | None:
        """The raw pointer (valid or not), None when there is no such alias."""
        target = self._read(lambda: bytes(self.contract.functions.aliasTarget(name, alias).call()))
        return None if target == bytes(32) else target

    def aliases(self, name: str) -> list[AliasRecord]:
        """Every alias of the name with its target id (paged reads)."""
        out: list[AliasRecord] = []
        while True:
            names, ids = self._read(lambda: self.contract.functions.aliasesOf(name, len(out), PAGE).call())
            out.extend(AliasRecord(name=name, alias=a, release_id=bytes(i)) for a, i in zip(names, ids))
            if len(names) < PAGE:
                return out
