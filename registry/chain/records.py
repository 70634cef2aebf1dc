"""What the registry's views return, as typed, immutable Python values.

web3 hands back anonymous tuples; everything above the client works with these instead, so a
field added to the contract breaks in one place.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from registry.release import Release


@dataclass(frozen=True)
class ReleaseRecord:
    """A stored release (``ModelRegistry.ReleaseInfo``)."""

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
        (rid, name, version, a_sha, a_cid, a_size, p_sha, p_cid, parent, publisher, published, revoked, reason) = info
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
        )


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
    """What the chain can tell about a name (publishers are a mapping, so not enumerable)."""

    name: str
    owner: str | None
    pending_owner: str | None
    release_count: int
    publishers: list[str] | None = None  # from events; None when not looked up or not available

    @property
    def claimed(self) -> bool:
        return self.owner is not None

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "claimed": self.claimed,
            "owner": self.owner,
            "pending_owner": self.pending_owner,
            "release_count": self.release_count,
            "publishers": self.publishers,
        }
