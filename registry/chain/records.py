"""What the registry's views return, as typed, immutable Python values.

web3 hands back anonymous tuples; everything above the client works with these instead, so a
field added to the contract breaks in one place.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from registry.release import ZERO32, Release


@dataclass(frozen=True)
class ReleaseRecord:
    """A stored release (``ModelRegistry.ReleaseInfo``). ``card_sha256`` is zero and ``card_cid``
    empty for a release without a model card."""

    id: bytes
    name: str
    version: str
    artifact_sha256: bytes
    artifact_cid: bytes
    artifact_size: int
    provenance_sha256: bytes
    provenance_cid: bytes
    parent: bytes
    publisher: str
    published_at: int
    revoked_at: int
    revocation_reason: str
    card_sha256: bytes = ZERO32
    card_cid: bytes = b""

    @property
    def has_card(self) -> bool:
        return self.card_sha256 != ZERO32

    @property
    def revoked(self) -> bool:
        return self.revoked_at != 0

    @property
    def has_parent(self) -> bool:
        return self.parent != b"\x00" * 32

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.version}"

    def to_release(self, nonce: int, deadline: int) -> Release:
        """The signed struct (nonce and deadline are not stored on chain, so the caller gives them)."""
        return Release(
            name=self.name,
            version=self.version,
            artifact_sha256=self.artifact_sha256,
            artifact_cid=self.artifact_cid,
            artifact_size=self.artifact_size,
            provenance_sha256=self.provenance_sha256,
            provenance_cid=self.provenance_cid,
            card_sha256=self.card_sha256,
            card_cid=self.card_cid,
            parent=self.parent,
            nonce=nonce,
            deadline=deadline,
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "id": "0x" + self.id.hex(),
            "name": self.name,
            "version": self.version,
            "artifact_sha256": self.artifact_sha256.hex(),
            "artifact_cid": "0x" + self.artifact_cid.hex(),
            "artifact_size": self.artifact_size,
            "provenance_sha256": self.provenance_sha256.hex(),
            "provenance_cid": "0x" + self.provenance_cid.hex(),
            "card_sha256": self.card_sha256.hex() if self.has_card else None,
            "card_cid": "0x" + self.card_cid.hex() if self.has_card else None,
            "parent": "0x" + self.parent.hex() if self.has_parent else None,
            "publisher": self.publisher,
            "published_at": self.published_at,
            "revoked": self.revoked,
            "revoked_at": self.revoked_at or None,
            "revocation_reason": self.revocation_reason if self.revoked else None,
        }

    @classmethod
    def from_abi(cls, info: Any) -> "ReleaseRecord":
        """From the ``ReleaseInfo`` tuple web3 decodes (positional, in struct order)."""
        (rid, name, version, a_sha, a_cid, a_size, p_sha, p_cid, c_sha, c_cid, parent, publisher, published, revoked,
         reason) = info
        return cls(
            id=bytes(rid),
            name=name,
            version=version,
            artifact_sha256=bytes(a_sha),
            artifact_cid=bytes(a_cid),
            artifact_size=int(a_size),
            provenance_sha256=bytes(p_sha),
            provenance_cid=bytes(p_cid),
            parent=bytes(parent),
            publisher=publisher,
            published_at=int(published),
            revoked_at=int(revoked),
            revocation_reason=reason,
            card_sha256=bytes(c_sha),
            card_cid=bytes(c_cid),
        )


@dataclass(frozen=True)
class AliasRecord:
    """``name@alias`` and the release id it points at (which may since have stopped counting)."""

    name: str
    alias: str
    release_id: bytes

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.alias}"

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "alias": self.alias, "ref": self.ref, "release_id": "0x" + self.release_id.hex()}


@dataclass(frozen=True)
class AttestationRecord:
    """One attester's latest verdict on a release."""

    attester: str
    passed: bool
    report_sha256: bytes
    attested_at: int

    def to_json(self) -> dict[str, Any]:
        return {
            "attester": self.attester,
            "passed": self.passed,
            "report_sha256": self.report_sha256.hex(),
            "attested_at": self.attested_at,
        }

    @classmethod
    def from_abi(cls, item: Any) -> "AttestationRecord":
        attester, passed, report, at = item
        return cls(attester=attester, passed=bool(passed), report_sha256=bytes(report), attested_at=int(at))


@dataclass(frozen=True)
class NameInfo:
    """What the chain can tell about a name. Its owner is its namespace's owner; publishers are a
    mapping on chain, so not enumerable (read from events and re-checked)."""

    name: str
    owner: str | None
    pending_owner: str | None
    release_count: int
    publishers: list[str] | None = None  # from events; None when not looked up or not available

    @property
    def claimed(self) -> bool:
        return self.owner is not None

    @property
    def namespace(self) -> str:
        return self.name.split("/", 1)[0]

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "namespace": self.namespace,
            "claimed": self.claimed,
            "owner": self.owner,
            "pending_owner": self.pending_owner,
            "release_count": self.release_count,
            "publishers": self.publishers,
        }
