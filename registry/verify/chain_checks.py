"""Checks 2-4: the chain's facts about a release (revocation and lineage, the publisher's
authorisation) and the EIP-712 signature, online against the record or offline against trust.

The rules are the contract's, so a verifier and a PredictionFeed agree on every release:

- lineage: at most ``MAX_PARENT_DEPTH`` parents are followed (the contract's MAX_LINEAGE_DEPTH);
  a revoked ancestor fails, and so does a lineage deeper than that (fail closed);
- authorisation: a release counts only while its publisher may still publish the name (a
  publisher of the name, or the namespace owner), so a removed publisher's releases fail;
- signatures: only the low-s, v in {27, 28} form the contract accepts;
- offline, the manifest's EIP-712 domain must match a chain id (and contract, when known) pinned by
  the profile, ``--chain-id`` or the policy: a manifest signed for another chain is refused.

Online, ``client`` is any ``registry.chain.reads.ChainReader``: the lean reader on a device, a
``RegistryClient`` where one is already connected.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from registry.errors import RegistryError, SignatureError
from registry.verify.report import Check, fail

if TYPE_CHECKING:
    from registry.chain.reads import ChainReader
    from registry.chain.records import ReleaseRecord
    from registry.config import Settings
    from registry.manifest import Manifest
    from registry.policy import Policy

# How far up the parent chain revocation is followed: the contract's MAX_LINEAGE_DEPTH.
MAX_PARENT_DEPTH = 64


def check_not_revoked(record: "ReleaseRecord", client: "ChainReader | None") -> Check:
    if client is None:
        return Check("not_revoked", "skip", "offline: no RPC, revocation not checked (re-verify when online)")
    if record.revoked:
        return fail("not_revoked", f"{record.ref} was revoked: {record.revocation_reason or '(no reason given)'}",
                     {"release_id": "0x" + record.id.hex(), "revoked_at": record.revoked_at,
                      "reason": record.revocation_reason})
    lineage: list[str] = []
    current = record
    try:
        for _ in range(MAX_PARENT_DEPTH):
            if not current.has_parent:
                break
            parent = client.get_by_id(current.parent)
            lineage.append(parent.ref)
            if parent.revoked:
                return fail("not_revoked",
                             f"ancestor {parent.ref} was revoked: {parent.revocation_reason or '(no reason given)'}",
                             {"revoked_ancestor": parent.ref, "release_id": "0x" + parent.id.hex(),
                              "revoked_at": parent.revoked_at, "reason": parent.revocation_reason,
                              "lineage": lineage})
            current = parent
        else:
            if current.has_parent:
                return fail("not_revoked", f"lineage deeper than {MAX_PARENT_DEPTH} releases: refused unchecked (the "
                                           "contract's MAX_LINEAGE_DEPTH; publish a new root release)",
                             {"lineage": lineage, "max_depth": MAX_PARENT_DEPTH})
    except RegistryError as exc:
        return fail("not_revoked", f"cannot read the lineage: {exc}", {"lineage": lineage}, error=type(exc))
    return Check("not_revoked", "pass", "not revoked" + (f" (nor its {len(lineage)} ancestors)" if lineage else ""),
                 {"lineage": lineage})


def check_publisher(record: "ReleaseRecord", client: "ChainReader | None", trusted: frozenset[str]) -> Check:
    evidence: dict[str, Any] = {"publisher": record.publisher, "trusted": sorted(trusted)}
    if trusted and record.publisher not in trusted:
        return fail("publisher_authorised", f"publisher {record.publisher} is not in the trusted set", evidence)
    if client is None:
        if not trusted:
            return fail("publisher_authorised",
                         "offline verification needs trusted publishers (--trust ADDR or policy trusted_publishers)",
                         evidence)
        return Check("publisher_authorised", "pass", f"{record.publisher} is a trusted publisher (offline)", evidence)
    try:
        allowed = client.may_publish(record.name, record.publisher)
    except RegistryError as exc:
        return fail("publisher_authorised", f"cannot read publishers: {exc}", evidence, error=type(exc))
    evidence["may_publish_on_chain"] = allowed
    if not allowed:
        return fail("publisher_authorised",
                     f"{record.publisher} may no longer publish {record.name} on chain (removed publisher or former "
                     "namespace owner): its releases no longer count", evidence)
    detail = f"{record.publisher} is a publisher of {record.name}" + (" and trusted" if trusted else "")
    return Check("publisher_authorised", "pass", detail, evidence)


def check_signature(record: "ReleaseRecord", man: "Manifest | None", client: "ChainReader | None",
                    pol: "Policy", settings: "Settings", chain_id: int | None = None) -> Check:
    from registry.chain.lean import to_checksum_address

    if man is None:
        # Online without a manifest: the contract ran SignatureChecker against this publisher when it
        # accepted the release, and nonce/deadline are not stored, so the chain's word is the evidence.
        return Check("signature", "pass", "checked by the contract at publish time (no manifest to re-check)",
                     {"publisher": record.publisher, "source": "chain"})
    from registry.release import recover_publisher

    evidence: dict[str, Any] = {"manifest_chain_id": man.chain_id, "manifest_contract": man.contract,
                                "nonce": man.release.nonce, "claimed_publisher": man.publisher}
    expected_domain: list[tuple[str, int | None, str | None]] = []
    if client is not None:
        expected_domain.append(("chain", client.chain_id, client.address))
    if pol.chain_id is not None or pol.contract is not None:
        expected_domain.append(("policy", pol.chain_id, pol.contract))
    if settings.profile.chain_id is not None or settings.profile.contract is not None:
        expected_domain.append(("profile", settings.profile.chain_id, settings.profile.contract))
    elif settings.profile.is_local:
        from registry.chain.devnet import CHAIN_ID as LOCAL_CHAIN_ID

        expected_domain.append(("local profile", LOCAL_CHAIN_ID, None))
    if chain_id is not None:
        expected_domain.append(("--chain-id", chain_id, None))
    if client is None and not any(expected is not None for _, expected, _ in expected_domain):
        return fail("signature", "offline verification needs the chain the manifest must be signed for: "
                                  "--chain-id, a policy chain_id, or a profile with a chain id", evidence)
    evidence["pinned_by"] = [source for source, _, _ in expected_domain]
    for source, expected_chain, contract in expected_domain:
        if expected_chain is not None and expected_chain != man.chain_id:
            evidence.update(expected_chain_id=expected_chain, domain_source=source)
            return fail("signature", f"manifest is signed for chain {man.chain_id}, {source} expects {expected_chain} "
                                      "(replayed from another chain?)", evidence)
        if contract is not None and to_checksum_address(contract) != man.contract:
            evidence.update(expected_contract=to_checksum_address(contract), domain_source=source)
            return fail("signature", f"manifest is signed for contract {man.contract}, {source} expects "
                                      f"{to_checksum_address(contract)} (replayed from another contract?)", evidence)
    # Online, the signed fields come from the chain's record, so a manifest altered in any field
    # (digest, size, parent, CIDs) fails here; nonce and deadline come from the manifest.
    release = record.to_release(man.release.nonce, man.release.deadline) if client is not None else man.release
    mismatched = _fields_differing(man.release, release)
    if mismatched:
        evidence["manifest_differs_from_chain"] = mismatched
    try:
        recovered = recover_publisher(release, man.signature, man.chain_id, man.contract)
    except SignatureError as exc:
        return fail("signature", str(exc), evidence)
    evidence["recovered"] = recovered
    evidence["publisher"] = record.publisher
    if recovered != record.publisher:
        if client is not None and _erc1271_valid(client, record.publisher, release, man.signature):
            evidence["erc1271"] = True
            return Check("signature", "pass", f"ERC-1271 wallet {record.publisher} accepts the signature", evidence)
        why = f" (manifest differs from chain in {', '.join(mismatched)})" if mismatched else ""
        return fail("signature", f"signature recovers to {recovered}, not the publisher {record.publisher}{why}",
                     evidence)
    if mismatched:
        return fail("signature", f"manifest differs from the chain record in {', '.join(mismatched)}", evidence)
    return Check("signature", "pass", f"EIP-712 signature recovers to {recovered}", evidence)


def _fields_differing(a: Any, b: Any) -> list[str]:
    names = ("artifact_sha256", "artifact_cid", "artifact_size", "provenance_sha256", "provenance_cid", "card_sha256",
             "card_cid", "parent")
    return [n for n in names if getattr(a, n) != getattr(b, n)]


def _erc1271_valid(client: "ChainReader", wallet: str, release: Any, signature: bytes) -> bool:
    """Contract-wallet publishers: ask the wallet (isValidSignature == 0x1626ba7e)."""
    from registry.chain.lean_sig import signing_digest
    from registry.chain.reads import erc1271_valid
    from registry.release import DOMAIN_NAME, DOMAIN_VERSION

    try:
        digest = signing_digest(release.message(), DOMAIN_NAME, DOMAIN_VERSION, client.chain_id, client.address)
    except Exception:  # a release that cannot be hashed cannot be accepted either
        return False
    return erc1271_valid(client, wallet, digest, signature)
