"""``registry diff A B``: what changed between two releases (or two ONNX files).

Size, IR version and opsets, operator counts, initializers added / removed / changed (dtype, shape,
bytes and a digest of the values), provenance steps and the deltas of the final metrics. A release's
bytes come from the content store, verified block by block against the CID, and are then checked
against the SHA-256 on chain before they are parsed; its provenance is held to its on-chain digest
the same way, so the diff describes exactly the bytes the chain anchors.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from registry.errors import InputError
from registry.modelfacts import ModelFacts, TensorFact, model_facts

if TYPE_CHECKING:
    from registry.chain.client import RegistryClient
    from registry.chain.records import ReleaseRecord
    from registry.config import Settings
    from registry.content.base import ContentStore

MAX_LISTED = 1000          # tensors listed per category (the counts stay exact)
MAX_FILE_BYTES = 2 * 1024**3


@dataclass
class Side:
    """One side of a diff: the label, the model's facts, and (for a release) its record and provenance."""

    label: str
    facts: ModelFacts
    sha256: str
    record: "ReleaseRecord | None" = None
    provenance: dict[str, Any] | None = None
    provenance_status: str = "none"

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {"label": self.label, "sha256": self.sha256, "size": self.facts.size,
                               "ir_version": self.facts.ir_version, "opset": self.facts.opset,
                               "nodes": self.facts.nodes, "initializers": len(self.facts.tensors),
                               "parameters": self.facts.parameters, "provenance": self.provenance_status}
        if self.record is not None:
            out.update(ref=self.record.ref, id="0x" + self.record.id.hex(), name=self.record.name,
                       version=self.record.version, publisher=self.record.publisher, revoked=self.record.revoked,
                       revocation_reason=self.record.revocation_reason if self.record.revoked else None)
        return out


# --------------------------------------------------------------------------------------------
# Loading each side
# --------------------------------------------------------------------------------------------


def load_release_side(ref: str, client: "RegistryClient", store: "ContentStore") -> Side:
    """A release's model and provenance, both held to their on-chain digests."""
    import hashlib

    from registry.errors import IntegrityError, RegistryError
    from registry.provenance import MAX_DOCUMENT_BYTES, load_provenance

    record = client.resolve(ref)
    if getattr(store, "kind", lambda _c: "file")(record.artifact_cid) == "directory":
        from registry.delta import tree_facts  # tensors identified by CID or range digest, from verified blocks

        side = Side(label=record.ref, facts=tree_facts(record, store), sha256=record.artifact_sha256.hex(),
                    record=record)
    else:
        data = store.get_bytes(record.artifact_cid, max_size=record.artifact_size)
        digest = hashlib.sha256(data).digest()
        if digest != record.artifact_sha256 or len(data) != record.artifact_size:
            raise IntegrityError(f"{record.ref}: the store's bytes do not match the release's SHA-256")
        side = Side(label=record.ref, facts=model_facts(data), sha256=digest.hex(), record=record)
    try:
        raw = store.get_bytes(record.provenance_cid, max_size=MAX_DOCUMENT_BYTES)
        if hashlib.sha256(raw).digest() != record.provenance_sha256:
            side.provenance_status = "altered"
        else:
            side.provenance, side.provenance_status = load_provenance(raw), "bound"
    except RegistryError as exc:
        side.provenance_status = f"unavailable: {str(exc)[:120]}"
    return side


def load_file_side(path: Path) -> Side:
    import hashlib

    if not path.is_file():
        raise InputError(f"cannot read {path}: not a regular file")
    if path.stat().st_size > MAX_FILE_BYTES:
        raise InputError(f"{path} is larger than {MAX_FILE_BYTES} bytes")
    data = path.read_bytes()
    return Side(label=str(path), facts=model_facts(data), sha256=hashlib.sha256(data).hexdigest())


def load_side(spec: str, client_factory: Any, store: "ContentStore | None") -> Side:
    """``NAME@VERSION``/``NAME@latest``/``sha256:HEX`` for a release, or a path to an ONNX file."""
    candidate = Path(spec)
    if "@" not in spec and not spec.startswith("sha256:"):
        if candidate.exists():
            return load_file_side(candidate)
        raise InputError(f"{spec!r} is neither a reference (NAME@VERSION) nor an existing file")
    from registry.release import parse_ref

    parse_ref(spec)
    assert store is not None
    return load_release_side(spec, client_factory(), store)


def diff_refs(a: str, b: str, settings: "Settings | None" = None, *, client: "RegistryClient | None" = None,
              store: "ContentStore | None" = None) -> dict[str, Any]:
    """The diff of two references or files (the library behind ``registry diff``)."""
    from registry.config import load_settings
    from registry.content.stores import open_store

    settings = settings or load_settings()
    needs_chain = any("@" in s or s.startswith("sha256:") for s in (a, b))
    cached: list[Any] = [client]

    def client_factory() -> Any:
        if cached[0] is None:
            from registry.chain.client import RegistryClient

            cached[0] = RegistryClient.connect(settings)
        return cached[0]

    store = store or (open_store(settings) if needs_chain else None)
    return diff_sides(load_side(a, client_factory, store), load_side(b, client_factory, store))


# --------------------------------------------------------------------------------------------
# Comparing
# --------------------------------------------------------------------------------------------


def diff_sides(a: Side, b: Side) -> dict[str, Any]:
    return {
        "a": a.summary(),
        "b": b.summary(),
        "identical": a.sha256 == b.sha256,
        "size": _size(a.facts.size, b.facts.size),
        "opsets": _opsets(a.facts, b.facts),
        "ops": _ops(a.facts.ops, b.facts.ops),
        "tensors": _tensors(a.facts.tensors, b.facts.tensors),
        "io": {"inputs": {"a": list(a.facts.inputs), "b": list(b.facts.inputs)},
               "outputs": {"a": list(a.facts.outputs), "b": list(b.facts.outputs)}},
        "provenance": _provenance(a.provenance, b.provenance),
    }


def _size(a: int, b: int) -> dict[str, Any]:
    return {"a": a, "b": b, "delta": b - a, "ratio": (b / a) if a else None}


def _opsets(a: ModelFacts, b: ModelFacts) -> dict[str, Any]:
    domains = sorted(set(a.opsets) | set(b.opsets))
    changed = [{"domain": d or "ai.onnx", "a": a.opsets.get(d), "b": b.opsets.get(d)}
               for d in domains if a.opsets.get(d) != b.opsets.get(d)]
    return {"a": a.opsets, "b": b.opsets, "ir_version": {"a": a.ir_version, "b": b.ir_version}, "changed": changed}


def _ops(a: dict[str, int], b: dict[str, int]) -> dict[str, Any]:
    return {
        "added": {op: b[op] for op in sorted(set(b) - set(a))},
        "removed": {op: a[op] for op in sorted(set(a) - set(b))},
        "changed": {op: {"a": a[op], "b": b[op]} for op in sorted(set(a) & set(b)) if a[op] != b[op]},
        "nodes": {"a": sum(a.values()), "b": sum(b.values())},
    }


def _tensors(a: dict[str, TensorFact], b: dict[str, TensorFact]) -> dict[str, Any]:
    added = [b[n] for n in sorted(set(b) - set(a))]
    removed = [a[n] for n in sorted(set(a) - set(b))]
    changed: list[dict[str, Any]] = []
    unchanged = 0
    for name in sorted(set(a) & set(b)):
        ta, tb = a[name], b[name]
        what = [w for w, differs in (("dtype", ta.dtype != tb.dtype), ("shape", ta.shape != tb.shape),
                                     ("values", ta.sha256 != tb.sha256)) if differs]
        if what:
            changed.append({"name": name, "changed": what, "a": ta.to_json(), "b": tb.to_json(),
                            "bytes_delta": tb.nbytes - ta.nbytes})
        else:
            unchanged += 1
    return {
        "counts": {"added": len(added), "removed": len(removed), "changed": len(changed), "unchanged": unchanged},
        "bytes": {"a": sum(t.nbytes for t in a.values()), "b": sum(t.nbytes for t in b.values()),
                  "added": sum(t.nbytes for t in added), "removed": sum(t.nbytes for t in removed),
                  "changed_delta": sum(c["bytes_delta"] for c in changed)},
        "added": [t.to_json() for t in added[:MAX_LISTED]],
        "removed": [t.to_json() for t in removed[:MAX_LISTED]],
        "changed": changed[:MAX_LISTED],
        "truncated": any(len(x) > MAX_LISTED for x in (added, removed, changed)),
    }


def _steps(doc: dict[str, Any] | None) -> list[dict[str, Any]]:
    if not doc:
        return []
    steps = doc.get("predicate", {}).get("steps")
    if not isinstance(steps, list):
        return []
    out = []
    for step in steps:
        if isinstance(step, dict):
            out.append({"name": str(step.get("name", "?")), "params": step.get("params") or {},
                        "metrics_before": _numbers(step.get("metrics_before")),
                        "metrics_after": _numbers(step.get("metrics_after"))})
    return out


def _numbers(value: Any) -> dict[str, float]:
    if not isinstance(value, dict):
        return {}
    return {str(k): v for k, v in value.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}


def _provenance(a: dict[str, Any] | None, b: dict[str, Any] | None) -> dict[str, Any]:
    steps_a, steps_b = _steps(a), _steps(b)
    key = lambda s: (s["name"], json.dumps(s["params"], sort_keys=True, default=str))  # noqa: E731
    keys_a, keys_b = [key(s) for s in steps_a], [key(s) for s in steps_b]
    names_a, names_b = [s["name"] for s in steps_a], [s["name"] for s in steps_b]
    changed = [{"index": i + 1, "name": sa["name"], "params": {"a": sa["params"], "b": sb["params"]}}
               for i, (sa, sb) in enumerate(zip(steps_a, steps_b)) if sa["name"] == sb["name"] and key(sa) != key(sb)]
    metrics_a = _numbers((a or {}).get("predicate", {}).get("metrics"))
    metrics_b = _numbers((b or {}).get("predicate", {}).get("metrics"))
    deltas = [{"metric": k, "a": metrics_a.get(k), "b": metrics_b.get(k),
               "delta": (metrics_b[k] - metrics_a[k]) if k in metrics_a and k in metrics_b else None}
              for k in sorted(set(metrics_a) | set(metrics_b))]
    return {
        "steps": {"a": steps_a, "b": steps_b,
                  "added": [n for n in names_b if names_b.count(n) > names_a.count(n)],
                  "removed": [n for n in names_a if names_a.count(n) > names_b.count(n)],
                  "changed": changed, "same": keys_a == keys_b},
        "metrics": deltas,
    }
