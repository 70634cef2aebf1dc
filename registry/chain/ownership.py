"""Who may publish what, and where aliases point: the namespace, publisher and alias calls of
``RegistryClient`` (mixed into it; split out of client.py to keep one idea per module).

Names are ``namespace/model``; a namespace is bound to one account and claimed by commit-reveal
(``claim_namespace`` does both steps, waiting for the block in between). A release counts only while
its publisher may publish its name (``may_publish``); aliases resolve only to releases that count.
"""

from __future__ import annotations

import secrets
import time
from typing import TYPE_CHECKING, Any, Callable, TypeVar

from eth_account.signers.local import LocalAccount
from eth_utils import to_checksum_address

from registry.chain.errors import ContractRevert
from registry.chain.lean import require_address, require_bytes32
from registry.chain.records import AliasRecord, NameInfo, ReleaseRecord
from registry.chain.tx import RECEIPT_TIMEOUT_S
from registry.errors import ChainError
from registry.release import name_key, validate_alias, validate_name, validate_namespace

if TYPE_CHECKING:
    from registry.chain.client import TxResult

T = TypeVar("T")
ZERO_ADDRESS = "0x0000000000000000000000000000000000000000"
PAGE = 100


_address = require_address  # shared with the lean reader (registry.chain.lean)
_bytes32 = require_bytes32


class OwnershipMixin:
    """Namespace, publisher and alias calls; RegistryClient provides the plumbing below."""

    contract: Any

    def _read(self, fn: Callable[[], T]) -> T:  # pragma: no cover - RegistryClient's
        raise NotImplementedError

    def _write(self, fn: Any, sender: LocalAccount) -> "TxResult":  # pragma: no cover - RegistryClient's
        raise NotImplementedError

    @property
    def block_number(self) -> int:  # pragma: no cover - RegistryClient's
        raise NotImplementedError

    def get_by_id(self, release_id: bytes) -> ReleaseRecord:  # pragma: no cover - RegistryClient's
        raise NotImplementedError

    def release_count(self, name: str) -> int:  # pragma: no cover - RegistryClient's
        raise NotImplementedError

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
