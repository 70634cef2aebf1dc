"""Which release a reference means: one set of rules for every command that takes a reference.

``verify``, ``pull``, ``load_verified``, ``show``, ``revoke``, ``attest`` and the oracle node all
resolve through here, so a reference cannot mean one release to one command and another to the next.

- ``NAME@VERSION``: that release (revoked or not: the verifier reports revocation itself).
- ``NAME@latest``: the contract's newest valid release (not revoked, publisher still authorised).
- ``NAME@ALIAS``: the release the name's owner pointed the alias at; an error, never the bytes,
  once that release is revoked or its publisher removed.
- ``sha256:HEX``: bytes are not a name. At most ``MAX_DIGEST_RELEASES`` releases with the digest
  are read (cursor pages, so a long list costs no more per page). If more carry it, the reference is
  refused (exit 3): spam must not be able to hide a release from the scan. Bytes revoked in *any*
  release are reported revoked (exit 12), so re-publishing a victim's revoked bytes under another
  name does not un-revoke them. If releases of more than one name remain, the reference is refused
  with the list (exit 3) unless the trusted publishers narrow it to one name.

Every resolved release must carry a SemVer 2.0.0 label: the contract checks only the character set,
and a label such as ``1.0`` or ``01.2.3`` cannot be ordered by the rollback rule, so it is refused.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Iterable

from registry.errors import ChainError, InputError, RevokedError, SignatureError
from registry.release import Ref, is_valid_version, parse_ref

if TYPE_CHECKING:
    from registry.chain.reads import ChainReader
    from registry.chain.records import ReleaseRecord

# The most releases one digest reference reads before refusing as too ambiguous to scan.
MAX_DIGEST_RELEASES = 64


class AmbiguousReference(InputError):
    """A ``sha256:`` reference matches releases of several names (or too many releases to check)."""


def resolve(client: "ChainReader", ref: "str | Ref", trusted: Iterable[str] = ()) -> "ReleaseRecord":
    """The release ``ref`` means on ``client``'s chain (see the module notes for the rules)."""
    parsed = parse_ref(ref) if isinstance(ref, str) else ref
    if parsed.kind == "version":
        assert parsed.name is not None and parsed.version is not None
        record = client.get(parsed.name, parsed.version)
    elif parsed.kind == "latest":
        assert parsed.name is not None
        record = client.latest(parsed.name)
    elif parsed.kind == "alias":
        assert parsed.name is not None and parsed.alias is not None
        record = client.resolve_alias(parsed.name, parsed.alias)
    else:
        assert parsed.sha256 is not None
        record = by_digest(client, parsed.sha256, trusted)
    require_semver(record)
    return record


resolve_ref = resolve  # the name the package re-exports (``registry.resolve_ref``)


def require_semver(record: "ReleaseRecord") -> None:
    if not is_valid_version(record.version):
        raise ChainError(f"{record.name} has a release labelled {record.version[:80]!r}, which is not SemVer 2.0.0: "
                         "refused (its order against other versions is undefined)")


def by_digest(client: "ChainReader", sha256: bytes, trusted: Iterable[str] = ()) -> "ReleaseRecord":
    """The one release a ``sha256:`` reference may mean, or an error that says why there is none."""
    from registry.chain.lean import to_checksum_address

    shown = "sha256:" + sha256.hex()
    ids, complete = client.digest_ids(sha256, MAX_DIGEST_RELEASES)
    if not ids:
        raise ChainError(f"no release has artifact {shown}")
    if not complete:
        raise AmbiguousReference(f"more than {MAX_DIGEST_RELEASES} releases carry {shown}: refused as too ambiguous "
                                 "to check; use NAME@VERSION")
    records = [client.get_by_id(rid) for rid in ids]  # newest first
    revoked = [r for r in records if r.revoked]
    if revoked:
        where = ", ".join(f"{r.ref} ({r.revocation_reason or 'no reason given'})" for r in revoked[:5])
        raise RevokedError(f"the bytes {shown[:23]}… were revoked in {len(revoked)} release(s): {where}")
    allowed = {to_checksum_address(t) for t in trusted}
    candidates = [r for r in records if r.publisher in allowed] if allowed else records
    if not candidates:
        raise SignatureError(f"no release of {shown[:23]}… is by a trusted publisher "
                             f"(published by {', '.join(sorted({r.publisher for r in records}))})")
    valid = [r for r in candidates if client.is_valid(r.id)]
    if not valid:
        raise ChainError(f"no release of {shown[:23]}… still counts: their publishers may no longer publish "
                         f"{', '.join(sorted({r.name for r in candidates}))}")
    names = sorted({r.name for r in valid})
    if len(names) > 1:
        raise AmbiguousReference(f"the bytes {shown[:23]}… are released under {len(names)} names ({', '.join(names)}): "
                                 "refused; use NAME@VERSION, or --trust (or a policy's trusted_publishers) to pick one")
    return valid[0]
