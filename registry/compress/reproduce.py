"""``registry reproduce``: re-run the recipe a provenance document records and compare digests.

Inputs are found by the paths the recipe recorded (or overrides), and each is checked against the
digest in the provenance first: re-running on different data proves nothing, so that is an error,
not a mismatch.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from registry.compress.data import file_sha256
from registry.compress.pipeline import ProgressFactory, run
from registry.compress.recipe import parse_recipe
from registry.errors import InputError, ProvenanceError


@dataclass(frozen=True)
class Reproduction:
    match: bool
    expected_sha256: str
    actual_sha256: str
    variant: str

    def to_dict(self) -> dict[str, Any]:
        return {"match": self.match, "expected_sha256": self.expected_sha256, "actual_sha256": self.actual_sha256,
                "variant": self.variant}


def reproduce(provenance: str | Path, *, weights: str | None = None, onnx: str | None = None,
              data_dir: str | None = None, out_dir: str | Path | None = None,
              progress: ProgressFactory | None = None) -> Reproduction:
    from registry.provenance import load_provenance, subject_sha256

    doc = load_provenance(provenance)
    expected = subject_sha256(doc)
    pred = doc["predicate"]
    raw = pred.get("recipe")
    if not isinstance(raw, dict):
        raise ProvenanceError("provenance has no recipe to re-run")
    raw = dict(raw)
    raw.pop("paths_relative_to", None)
    raw["model"] = dict(raw.get("model", {}))
    raw["data"] = dict(raw.get("data", {}))
    if weights:
        raw["model"]["weights"] = str(Path(weights).resolve())
    if onnx:
        raw["model"]["onnx"] = str(Path(onnx).resolve())
    if data_dir:
        for key, value in raw["data"].items():
            if isinstance(value, str):
                raw["data"][key] = str((Path(data_dir) / Path(value).name).resolve())
    # recorded paths are relative to the directory holding the provenance (the run's output directory)
    recipe = parse_recipe(raw, Path(provenance).resolve().parent)
    base = pred.get("base_model", {})
    if "hf" in recipe.model:
        from registry.compress.hf import files_digest, model_files

        p = Path(recipe.model["hf"])
        if not p.is_dir():
            raise InputError(f"base model {p} (recorded in the provenance) does not exist; pass its location")
        if base.get("sha256") and files_digest(model_files(p)) != base["sha256"]:
            raise InputError(f"base model {p} is not the model the provenance records (file digests differ)")
    else:
        _check_digest(recipe.model.get("weights") or recipe.model.get("onnx"), base.get("sha256"), "base model")
    for key, path in recipe.data.items():
        if key == "max_length":
            continue
        _check_digest(path, pred.get("data", {}).get(f"{key}_sha256"), f"{key} data")
    scratch = Path(tempfile.mkdtemp(prefix="registry-reproduce-"))
    target = Path(out_dir) if out_dir else scratch / "out"
    try:
        result = run(recipe, target, progress=progress, measure_latency=False, reports=out_dir is not None,
                     force=out_dir is not None)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return Reproduction(result.sha256 == expected, expected, result.sha256, result.chosen)


def _check_digest(path: str | None, recorded: str | None, role: str) -> None:
    if not path:
        raise InputError(f"the recorded recipe names no {role}")
    p = Path(path)
    if not p.is_file():
        raise InputError(f"{role} {p} (recorded in the provenance) does not exist; pass its location")
    if recorded and file_sha256(p) != recorded:
        raise InputError(f"{role} {p} is not the file the provenance records (sha256 differs)")
