"""Using the tensor layout where models are published or produced: where the tree goes, and its provenance.

``registry publish --layout tensors`` and ``registry compress --layout tensors`` write the layout
(``registry.layout``) and publish or keep that tree instead of the model they were given. A
provenance statement is about exact bytes (its subject is their SHA-256), so a statement about the
original model is restated about the tree: the subject becomes the tree's file-list digest (what a
directory release anchors) and ``predicate.layout.source`` keeps the original name and digest, so
the record still says which exported bytes the compression steps produced.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

from registry.errors import InputError
from registry.layout import LAYOUTS, LayoutResult, write_tensor_layout
from registry.layout_source import COPY_PIECE, ENTRY


def default_layout_dir(model: str | os.PathLike[str]) -> Path:
    """Where ``publish --layout tensors`` writes the tree: ``<stem>.tensors`` beside the model."""
    path = Path(model)
    stem = path.stem if path.is_file() else path.name
    return path.resolve().parent / f"{stem}.tensors"


def layout_for_publish(model: str | os.PathLike[str], layout: str, layout_dir: str | os.PathLike[str] | None = None,
                       ) -> Path:
    """The path ``publish`` should hash: ``model`` itself (``as-is``), or its tensor layout, written first."""
    if layout not in LAYOUTS:
        raise InputError(f"unknown layout {layout!r} (known: {', '.join(LAYOUTS)})")
    if layout == "as-is":
        return Path(model)
    target = Path(layout_dir) if layout_dir is not None else default_layout_dir(model)
    return write_tensor_layout(model, target).path


def source_sha256(source: str | os.PathLike[str]) -> str:
    """The digest a provenance names for a model before layout: a file's SHA-256, a tree's file-list SHA-256."""
    from registry.content.tree import import_tree, is_tree

    if is_tree(source):
        return import_tree(source, "kubo-v1").sha256.hex()
    digest = hashlib.sha256()
    with open(source, "rb") as handle:
        while piece := handle.read(COPY_PIECE):
            digest.update(piece)
    return digest.hexdigest()


def rebased_statement(doc: dict[str, Any], tree_sha256: str, name: str, files: int | None = None) -> dict[str, Any]:
    """``doc`` about the laid-out tree: the subject becomes the tree, ``predicate.layout`` keeps the old one."""
    before = doc["subject"][0]
    out = dict(doc)
    out["subject"] = [{"name": name, "digest": {"sha256": tree_sha256}}]
    predicate = dict(doc["predicate"])
    layout: dict[str, Any] = {"kind": "tensors", "source": {"name": before.get("name"),
                                                            "sha256": before["digest"]["sha256"]}}
    if files is not None:
        layout["files"] = files
    predicate["layout"] = layout
    out["predicate"] = predicate
    return out


def rebase_provenance(provenance: str | os.PathLike[str] | bytes, source: str | os.PathLike[str],
                      tree_sha256: bytes, name: str) -> str | os.PathLike[str] | bytes:
    """A provenance about ``source`` restated about its tensor layout (canonical bytes); unchanged otherwise.

    Only a document whose subject is exactly ``source`` (by digest) is restated, so a provenance about
    something else still fails publish's subject check with its usual message.
    """
    from registry.provenance import canonical_json, load_provenance, subject_sha256

    doc = load_provenance(provenance)
    if subject_sha256(doc) == tree_sha256.hex() or subject_sha256(doc) != source_sha256(source):
        return provenance
    return canonical_json(rebased_statement(doc, tree_sha256.hex(), name))


def layout_compress_output(out_dir: str | os.PathLike[str]) -> tuple[LayoutResult, str]:
    """``registry compress --layout tensors``: ``out/model.onnx`` becomes the tree ``out/model/``.

    The provenance written by the pipeline names the single file; its subject becomes the tree (the
    SHA-256 of its canonical file list, what a directory release anchors) and ``predicate.layout.source``
    records the single file's digest, so the record still says which exported bytes the steps made.
    Returns the layout and the tree's SHA-256 (hex).
    """
    from registry.content.tree import import_tree
    from registry.provenance import load_provenance, write_provenance

    folder = Path(out_dir)
    single = folder / ENTRY
    result = write_tensor_layout(single, folder / "model", replace=True)
    digest = import_tree(result.path, "kubo-v1").sha256.hex()
    prov_path = folder / "provenance.json"
    if prov_path.is_file():
        doc = load_provenance(prov_path)
        write_provenance(rebased_statement(doc, digest, "model", len(result.files)), prov_path)
    single.unlink()
    return result, digest
