"""The data behind each page, as JSON-ready dicts: the HTML templates and the /api routes both
render exactly these, so the API can never disagree with what a person sees.

Lists, search and lineage come from the index. The release page's record, attestations and verdict
come from the chain and the bytes; when the chain does not answer, the page shows the index's copy
of the record and says that it could not be checked.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Mapping

from registry.errors import ChainError, InputError, RegistryError
from registry.index import queries
from registry.index.queries import CatalogQuery

if TYPE_CHECKING:
    from registry.chain.records import ReleaseRecord
    from registry.explorer.state import Explorer

PAGE_SIZE = 50


class NotFound(Exception):
    """An unknown model, release, alias or plot: a 404 page, never a traceback."""


@dataclass
class Redirect(Exception):
    url: str


@dataclass
class Unresolvable(Exception):
    """A reference that exists but resolves to an error (an alias whose target was revoked or whose
    publisher may no longer publish): a 409 page that says why and links to ``page``, never the bytes."""

    message: str
    page: str

    def __str__(self) -> str:
        return self.message


def _int(params: Mapping[str, str], key: str) -> int | None:
    value = (params.get(key) or "").strip()
    if not value:
        return None
    try:
        return max(0, int(value))
    except ValueError as exc:
        raise InputError(f"{key} must be a whole number of bytes") from exc


def _size(params: Mapping[str, str], key: str) -> int | None:
    """Sizes in bytes, or with a KiB/MiB/GiB (or K/M/G) suffix."""
    value = (params.get(key) or "").strip()
    if not value:
        return None
    units = {"k": 1024, "kib": 1024, "m": 1024**2, "mib": 1024**2, "g": 1024**3, "gib": 1024**3, "b": 1}
    lowered = value.lower()
    for unit, factor in sorted(units.items(), key=lambda kv: -len(kv[0])):
        if lowered.endswith(unit):
            number = lowered[: -len(unit)].strip()
            try:
                return int(float(number) * factor)
            except ValueError as exc:
                raise InputError(f"{key}: {value!r} is not a size") from exc
    return _int(params, key)


def _text(params: Mapping[str, str], key: str, limit: int = 200) -> str | None:
    value = (params.get(key) or "").strip()
    return value[:limit] or None


# --------------------------------------------------------------------------------------------
# Catalog
# --------------------------------------------------------------------------------------------


def catalog_query(params: Mapping[str, str], ops: list[str]) -> CatalogQuery:
    op_list = [o.strip() for o in ops for o in o.split(",") if o.strip()][:16]
    return CatalogQuery(
        q=_text(params, "q"), publisher=_text(params, "publisher", 42), task=_text(params, "task"),
        license=_text(params, "license"), ops=tuple(o[:64] for o in op_list), min_size=_size(params, "min_size"),
        max_size=_size(params, "max_size"), sort=params.get("sort") or "name",
        limit=min(_int(params, "limit") or PAGE_SIZE, queries.MAX_PAGE), offset=_int(params, "offset") or 0,
    )


def catalog_page(ex: "Explorer", query: CatalogQuery) -> dict[str, Any]:
    data = ex.catalog(query)
    data["facets"] = ex.facets()
    data["status"] = ex.status()
    return data


# --------------------------------------------------------------------------------------------
# Model
# --------------------------------------------------------------------------------------------


def _valid_name(name: str) -> str:
    from registry.release import is_valid_name

    if not is_valid_name(name):
        raise NotFound(f"no model named {name!r}")
    return name


def model_page(ex: "Explorer", name: str) -> dict[str, Any]:
    data = queries.model(ex.db(), _valid_name(name))
    if data is None:
        raise NotFound(f"no model {name} in the index")
    data["status"] = ex.status()
    data["card_html_ready"] = bool(data.get("card") and data["card"].get("card"))
    return data


def is_version_label(label: str) -> bool:
    """D3: ``NAME@X`` is a version when X starts with a digit, else ``latest`` or an alias
    (``registry.explorer.labels`` resolves those)."""
    return bool(label) and label[0].isdigit()


# --------------------------------------------------------------------------------------------
# Release
# --------------------------------------------------------------------------------------------


def _chain_record(ex: "Explorer", rid: bytes) -> tuple["ReleaseRecord | None", str | None, bool]:
    """(record, error, unknown): the chain's record; ``unknown`` when the chain says there is none."""
    client = ex.client()
    if client is None:
        return None, ex.client_error or "chain not reachable", False
    try:
        return client.get_by_id(rid), None, False
    except ChainError as exc:
        if getattr(exc, "error_name", None) == "UnknownRelease":
            return None, None, True
        return None, str(exc), False
    except RegistryError as exc:
        return None, str(exc), False


def _record_view(record: "ReleaseRecord") -> dict[str, Any]:
    from registry.chain.views import record_view

    return record_view(record)


def release_page(ex: "Explorer", name: str, version: str) -> dict[str, Any]:
    from registry.release import is_valid_version, release_id

    _valid_name(name)
    if not is_valid_version(version):
        raise NotFound(f"no release {name}@{version}")
    rid = release_id(name, version)
    conn = ex.db()
    indexed = queries.release_by_id(conn, rid)
    record, chain_error, unknown = _chain_record(ex, rid)
    if record is None and (unknown or indexed is None):
        if chain_error and indexed is None:
            raise NotFound(f"no release {name}@{version} in the index, and the chain cannot be asked "
                           f"({chain_error})")
        raise NotFound(f"no release {name}@{version} on chain {ex.settings.profile.name}")
    data: dict[str, Any] = {"name": name, "version": version, "ref": f"{name}@{version}", "id": "0x" + rid.hex(),
                            "indexed": indexed, "chain_error": chain_error, "status": ex.status()}
    if record is not None:
        data["record"] = _record_view(record)
        data["record_source"] = "chain"
        client = ex.client()
        assert client is not None
        data["verification"] = ex.verifications.get(client, record).to_json()
        try:
            data["attestations"] = [a.to_json() for a in client.attestations(record.id)]
            data["attestations_source"] = "chain"
        except RegistryError:
            data["attestations"], data["attestations_source"] = indexed["attestations"] if indexed else [], "index"
        revoked = record.revoked
        reason = record.revocation_reason if revoked else None
    else:
        assert indexed is not None
        data["record"] = _indexed_record(indexed)
        data["record_source"] = "index"
        data["verification"] = {"state": "unreachable", "ok": False, "checks": [], "cached": False,
                                "notes": [f"the chain did not answer: {chain_error}"]}
        data["attestations"], data["attestations_source"] = indexed["attestations"], "index"
        revoked = indexed["revoked"]
        reason = indexed["revocation"]["reason"] if revoked else None
    data["revoked"] = revoked
    data["revocation_reason"] = reason
    data["revocation"] = indexed["revocation"] if indexed and indexed.get("revocation") else (
        {"reason": reason, "at": record.revoked_at if record else None, "by": None} if revoked else None)
    data["revoked_ancestor"] = indexed["revoked_ancestor"] if indexed else None
    data["children"] = indexed["children"] if indexed else []
    data["aliases"] = indexed["aliases"] if indexed else []
    data["parent_ref"] = indexed["parent_ref"] if indexed else None
    data["provenance"] = _provenance(ex, record, indexed)
    data["card"] = _card(ex, record, indexed)
    data["plots"] = _plots(data["card"])
    data["facts"] = indexed["facts"] if indexed else None
    return data


def _indexed_record(indexed: dict[str, Any]) -> dict[str, Any]:
    """The index's copy of a record, shaped like ``record_view`` (shown when the chain is down)."""
    from registry.chain.views import iso_time

    row = dict(indexed)
    row.update(artifact_cid=indexed["artifact_cid"] or {}, provenance_cid=indexed["provenance_cid"] or {},
               published_at_iso=iso_time(indexed["published_at"]), revocation_reason=(indexed["revocation"] or {}).get(
                   "reason"), revoked_at_iso=iso_time((indexed["revocation"] or {}).get("at")))
    row["card_cid"] = indexed.get("card_cid")
    return row


def _provenance(ex: "Explorer", record: "ReleaseRecord | None", indexed: dict[str, Any] | None) -> dict[str, Any]:
    """The provenance document, held to the chain's digest: from the index's copy or the store."""
    from registry.provenance import MAX_DOCUMENT_BYTES, load_provenance

    sha = record.provenance_sha256 if record else bytes.fromhex(indexed["provenance_sha256"]) if indexed else None
    if sha is None:
        return {"status": "unavailable", "document": None, "steps": []}
    cached = queries.provenance_document(ex.db(), sha)
    doc = cached["document"] if cached and cached["status"] == "ok" else None
    status = "bound" if doc else "unavailable"
    error = None
    if doc is None and record is not None:
        try:
            raw = ex.store.get_bytes(record.provenance_cid, max_size=MAX_DOCUMENT_BYTES)
            if hashlib.sha256(raw).digest() != record.provenance_sha256:
                status, error = "altered", "the store's document does not match the digest on chain"
            else:
                doc, status = load_provenance(raw), "bound"
        except RegistryError as exc:
            status, error = "unavailable", str(exc)
    return {"status": status, "error": error, **_provenance_view(doc)}


def _provenance_view(doc: dict[str, Any] | None) -> dict[str, Any]:
    if not doc:
        return {"document": None, "steps": [], "metrics": {}, "base_model": None, "data": {}, "tools": {},
                "seeds": {}}
    pred = doc.get("predicate") if isinstance(doc.get("predicate"), dict) else {}
    steps = []
    for step in pred.get("steps") or []:
        if not isinstance(step, dict):
            continue
        before = step.get("metrics_before") if isinstance(step.get("metrics_before"), dict) else {}
        after = step.get("metrics_after") if isinstance(step.get("metrics_after"), dict) else {}
        keys = [k for k in dict.fromkeys([*before, *after]) if _scalar(before.get(k)) or _scalar(after.get(k))]
        steps.append({"name": str(step.get("name", "?")), "params": _flat(step.get("params")),
                      "metrics": [{"metric": k, "before": before.get(k), "after": after.get(k),
                                   "delta": _delta(before.get(k), after.get(k))} for k in keys]})
    return {"document": doc, "steps": steps, "metrics": _flat(pred.get("metrics")),
            "base_model": _flat(pred.get("base_model")), "data": _flat(pred.get("data")),
            "tools": _flat(pred.get("tools")), "seeds": _flat(pred.get("seeds"))}


def _scalar(value: Any) -> bool:
    return isinstance(value, (int, float, str)) and not isinstance(value, bool)


def _delta(a: Any, b: Any) -> float | None:
    numbers = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (a, b))
    return (b - a) if numbers else None


def _flat(value: Any) -> dict[str, Any]:
    """Scalars of a mapping, for a key/value table (nested values are shown as compact JSON)."""
    import json

    if not isinstance(value, dict):
        return {}
    out: dict[str, Any] = {}
    for key, item in list(value.items())[:100]:
        if isinstance(item, (dict, list)):
            text = json.dumps(item, sort_keys=True, default=str)
            out[str(key)] = text if len(text) <= 200 else text[:197] + "..."
        else:
            out[str(key)] = item
    return out


def _card(ex: "Explorer", record: "ReleaseRecord | None", indexed: dict[str, Any] | None) -> dict[str, Any] | None:
    """The release's signed card (D1). With the chain's record: the card whose digest the record
    carries, parsed from the index's facts (keyed by that digest, so never stale) or read from the
    store and checked against it. Without the chain: the index's copy, as the rest of the page."""
    from registry.card import MAX_CARD_BYTES, CardError, parse_card
    from registry.index.content import read_checked

    if record is None:
        card = indexed.get("card") if indexed else None
        if not card:
            return None
        if card.get("status") == "ok":
            return {"status": "ok", **card["card"]}
        return {"status": card["status"], "error": card.get("error")}
    if not record.has_card:
        return None
    known = queries.card(ex.db(), record.card_sha256)
    if known and known["status"] == "ok":
        return {"status": "ok", **known["card"]}
    try:
        return {"status": "ok", **parse_card(read_checked(ex.store, record.card_cid, record.card_sha256,
                                                          MAX_CARD_BYTES)).to_json()}
    except CardError as exc:
        return {"status": "malformed", "error": str(exc)}
    except RegistryError as exc:
        return {"status": "unavailable", "error": str(exc)}


def _plots(card: dict[str, Any] | None) -> list[dict[str, str]]:
    """The compression report's plots pinned with the card: listed in it, or ``ipfs://`` images in its body."""
    from registry.explorer.markdown import image_cids

    if not card or card.get("status") != "ok":
        return []
    plots = [dict(p) for p in card.get("plots") or []]
    listed = {p["cid"] for p in plots}
    plots += [{"title": cid, "cid": cid, "inline": "yes"} for cid in image_cids(card.get("body") or "")
              if cid not in listed]
    return plots[:64]


def plot_allowed(data: dict[str, Any], cid: str) -> bool:
    return any(p["cid"] == cid for p in data.get("plots") or [])


# --------------------------------------------------------------------------------------------
# Lineage and diff
# --------------------------------------------------------------------------------------------


def lineage_page(ex: "Explorer", name: str, version: str) -> dict[str, Any]:
    from registry.explorer.graph import layout
    from registry.release import is_valid_version, release_id

    _valid_name(name)
    if not is_valid_version(version):
        raise NotFound(f"no release {name}@{version}")
    from registry.index.lineage import lineage

    graph = lineage(ex.db(), release_id(name, version))
    if graph is None:
        raise NotFound(f"no release {name}@{version} in the index")
    data = graph.to_json()
    return {"name": name, "version": version, "ref": f"{name}@{version}", "graph": data, "layout": layout(data),
            "status": ex.status()}


def diff_page(ex: "Explorer", a: str | None, b: str | None) -> dict[str, Any]:
    """Two releases side by side; only references (``NAME@VERSION``), never paths on this machine."""
    from registry.diff import diff_sides, load_release_side
    from registry.release import parse_ref

    data: dict[str, Any] = {"a": a, "b": b, "diff": None, "error": None, "status": ex.status()}
    if not a or not b:
        return data
    for ref in (a, b):
        parsed = parse_ref(ref)
        if parsed.kind == "digest":
            raise InputError("the diff page takes NAME@VERSION or NAME@latest references")
    client = ex.client()
    if client is None:
        data["error"] = f"the chain does not answer: {ex.client_error}"
        return data
    try:
        sides = [load_release_side(ref, client, ex.store) for ref in (a, b)]
    except ChainError as exc:
        if getattr(exc, "error_name", None) in ("UnknownRelease", "NoActiveRelease"):
            raise NotFound(str(exc)) from exc
        raise
    except RegistryError as exc:
        data["error"] = str(exc)
        return data
    data["diff"] = diff_sides(*sides)
    for key, side in zip(("a", "b"), sides):
        assert side.record is not None
        cached = ex.verifications.peek(side.record)
        data["diff"][key]["verification"] = None if cached is None else {
            "ok": cached["ok"], "exit_code": cached["exit_code"]}
    return data
