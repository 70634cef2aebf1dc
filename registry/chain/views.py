"""Plain-data views of on-chain state for ``registry show`` / ``history`` (and their --json).

Kept apart from the CLI so other commands (verify's provenance rendering, the oracle's status)
can reuse and extend the same dictionaries: add keys, never rename them.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from registry.chain.client import RegistryClient
from registry.chain.records import ReleaseRecord
from registry.errors import ChainError


def iso_time(timestamp: int | None) -> str | None:
    if not timestamp:
        return None
    return datetime.fromtimestamp(timestamp, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def cid_text(binary: bytes) -> dict[str, Any]:
    """base32 CIDv1 (and Qm… for dag-pb) when the bytes parse as a CID, else the hex."""
    try:
        from registry.content.cids import display

        shown = display(binary)
        return {"v1": shown.get("v1"), "v0": shown.get("v0"), "hex": "0x" + binary.hex()}
    except Exception:
        return {"v1": None, "v0": None, "hex": "0x" + binary.hex()}


def record_view(record: ReleaseRecord) -> dict[str, Any]:
    data = record.to_json()
    data["ref"] = record.ref
    data["published_at_iso"] = iso_time(record.published_at)
    data["revoked_at_iso"] = iso_time(record.revoked_at)
    data["artifact_cid"] = cid_text(record.artifact_cid)
    data["provenance_cid"] = cid_text(record.provenance_cid)
    data["card_cid"] = cid_text(record.card_cid) if record.has_card else None
    return data


def parent_ref(client: RegistryClient, record: ReleaseRecord, known: dict[bytes, ReleaseRecord]) -> str | None:
    if not record.has_parent:
        return None
    parent = known.get(record.parent)
    if parent is None:
        try:
            parent = client.get_by_id(record.parent)
        except Exception:
            return "0x" + record.parent.hex()
    return parent.ref


def release_view(client: RegistryClient, record: ReleaseRecord) -> dict[str, Any]:
    """The release, its revocation, its parent and every attestation."""
    data = record_view(record)
    data["parent_ref"] = parent_ref(client, record, {})
    data["attestations"] = [
        {**a.to_json(), "attested_at_iso": iso_time(a.attested_at)} for a in client.attestations(record.id)
    ]
    data["chain"] = {"chain_id": client.chain_id, "contract": client.address}
    return data


def history_view(client: RegistryClient, name: str) -> dict[str, Any]:
    """All releases of ``name`` in publish order with parent lineage; revoked ones marked."""
    records = client.history(name)
    by_id = {r.id: r for r in records}
    owner, pending = client.name_owner(name)
    try:
        latest: ReleaseRecord | None = client.latest(name) if records else None
    except ChainError:  # no valid release (all revoked, or their publishers removed)
        latest = None
    aliases = alias_views(client, name, by_id)
    releases = []
    for record in records:
        item = record_view(record)
        item["parent_ref"] = parent_ref(client, record, by_id)
        item["latest"] = latest is not None and record.id == latest.id
        item["aliases"] = [a["alias"] for a in aliases if a["release_id"] == item["id"]]
        releases.append(item)
    return {
        "name": name,
        "owner": owner,
        "pending_owner": pending,
        "latest": latest.version if latest else None,
        "aliases": aliases,
        "releases": releases,
        "chain": {"chain_id": client.chain_id, "contract": client.address},
    }


def alias_views(client: RegistryClient, name: str, known: dict[bytes, ReleaseRecord] | None = None) -> list[dict[str, Any]]:
    """Every alias of ``name``: its target's version and whether it resolves (a revoked target or a
    removed publisher makes it an error, shown as such)."""
    known = known or {}
    out = []
    for entry in client.aliases(name):
        target = known.get(entry.release_id) or client.get_by_id(entry.release_id)
        item = entry.to_json()
        item["version"] = target.version
        item["resolves"] = not target.revoked and client.is_valid(entry.release_id)
        out.append(item)
    return out
