"""One compression run: load, baseline, steps, evaluation, outputs written atomically.

Everything a run produces goes into a temporary directory beside the output directory and is
renamed into place only when complete, so a failure never leaves half a model behind. The ONNX
variants (FP32 baseline, export, quantized) are all measured against the FP32 ONNX baseline.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from registry.compress import targets as T
from registry.compress.inputs import Inputs, load_inputs
from registry.compress.recipe import PATH_KEYS, Recipe
from registry.compress.runner import ProgressFactory, Runner, StepRecord, Variant, no_progress
from registry.errors import CompressionError, InputError

QUALITY_KEYS = ("accuracy", "f1_macro", "agreement", "mse", "cosine_mean", "cosine_min", "cosine_p1", "cosine_p5")
__all__ = ["RunResult", "StepRecord", "Variant", "compress_model", "run", "tool_versions"]


@dataclass
class RunResult:
    out_dir: Path
    sha256: str
    size: int
    metrics: dict[str, Any]
    baseline: dict[str, Any]
    steps: list[StepRecord]
    variants: list[dict[str, Any]]
    chosen: str
    target: dict[str, Any]
    provenance_sha256: str
    task: str = "classification"

    @property
    def target_met(self) -> bool:
        """False only when a target was set and missed (no target: nothing to miss)."""
        return self.target.get("met") is not False

    def summary(self) -> dict[str, Any]:
        return {"out_dir": str(self.out_dir), "model": str(self.out_dir / "model.onnx"), "sha256": self.sha256,
                "size_bytes": self.size, "provenance": str(self.out_dir / "provenance.json"),
                "provenance_sha256": self.provenance_sha256, "task": self.task, "metrics": self.metrics,
                "baseline": self.baseline, "variant": self.chosen, "variants": self.variants, "target": self.target,
                "steps": [{"name": s.name, "metrics_after": s.metrics_after} for s in self.steps]}


def tool_versions() -> dict[str, str]:
    """Versions of every tool that touched the model in this process (imported means used)."""
    import sys

    import onnx
    import onnxruntime

    import registry
    from registry.compress.export import EXPORTER

    versions = {"python": platform.python_version(), "onnx": onnx.__version__,
                "onnxruntime": onnxruntime.__version__, "numpy": np.__version__, "registry": registry.__version__}
    optional = {"torch": "torch", "transformers": "transformers", "tokenizers": "tokenizers",
                "torch_pruning": "torch_pruning", "onnxconverter_common": "onnxconverter_common",
                "onnxscript": "onnxscript", "safetensors": "safetensors", "sklearn": "sklearn"}
    for key, module in optional.items():
        mod = sys.modules.get(module)
        if mod is not None:
            versions[key] = str(getattr(mod, "__version__", "unknown"))
    if "torch" in versions:
        versions["exporter"] = EXPORTER
    return dict(sorted(versions.items()))


def _choose(variants: list[Variant], baseline: dict[str, Any], recipe: Recipe) -> tuple[Variant, dict[str, Any]]:
    """The last variant if it meets the target (or none is set); else the smallest that does; else the
    one closest to the baseline's quality."""
    final = variants[-1]
    task = recipe.task
    judged = {v.name: T.evaluate(recipe.target, baseline, v.metrics, task) for v in variants}
    if not T.is_set(recipe.target) or judged[final.name]["met"]:
        return final, judged[final.name]
    pool = variants[1:] or variants
    ok = [v for v in pool if judged[v.name]["met"]]
    chosen = min(ok, key=lambda v: v.metrics["size_bytes"]) if ok else \
        max(pool, key=lambda v: (T.score(baseline, v.metrics, task), -v.metrics["size_bytes"]))
    target = dict(judged[chosen.name])
    target["final_variant"] = final.name
    target["final_checks"] = judged[final.name]["checks"]
    return chosen, target


def _clean(value: Any) -> Any:
    """JSON-safe: numpy scalars to Python, NaN refused (RFC 8785 cannot carry it)."""
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if isinstance(value, (np.floating, float)):
        f = float(value)
        if not np.isfinite(f):
            raise CompressionError(f"a metric is not finite ({f})")
        return f
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.bool_):
        return bool(value)
    return value


def _recorded_recipe(recipe: Recipe, out: Path) -> dict[str, Any]:
    doc = recipe.to_dict()
    for table in (doc["model"], doc["data"]):
        for key in PATH_KEYS:
            if isinstance(table.get(key), str):
                table[key] = os.path.relpath(Path(table[key]).resolve(), out.resolve())
    doc["paths_relative_to"] = "the output directory"
    return doc


def _check_robustness(recipe: Recipe, inputs: Inputs) -> None:
    if not recipe.robustness:
        return
    from registry.compress.data import is_classification

    if not is_classification(recipe.task):
        raise InputError(f"[robustness] applies to classification tasks, not {recipe.task}")
    feeds = inputs.evaluation.inputs
    if len(feeds) != 1 or not np.issubdtype(next(iter(feeds.values())).dtype, np.floating):
        raise InputError("[robustness] perturbs one float input; this model takes "
                         f"{', '.join(f'{k} ({v.dtype})' for k, v in feeds.items())}")
    if inputs.torch_model is None:
        raise InputError("[robustness] needs a PyTorch model to compute gradients (an ONNX input has none)")


def _measure_latency(runner: Runner, variants: list[Variant], recipe: Recipe, signature: Any,
                     progress: ProgressFactory) -> None:
    from registry.compress.latency import interleaved

    ev = recipe.evaluation
    runs = int(ev["latency_runs"])
    if runs <= 0:
        return
    unique: dict[str, bytes] = {}
    alias: dict[str, str] = {}
    for v in variants:
        same = next((k for k, data in unique.items() if data == v.model), None)
        if same is None:
            unique[v.name] = v.model
        alias[v.name] = same or v.name
    per_round = min(5, runs)
    rounds = -(-runs // per_round)
    batches = tuple(ev["batch_sizes"])
    with progress("latency (interleaved)", rounds * len(batches)) as advance:
        result = interleaved(unique, runner.feeds, signature.inputs, batches, ev.get("sequence_length"),
                             runner.threads, ev["warmup"], rounds, per_round, advance)
    for v in variants:
        v.metrics["latency"] = result[alias[v.name]]


def run(recipe: Recipe, out_dir: str | Path, *, progress: ProgressFactory | None = None, force: bool = False,
        measure_latency: bool = True, base_ref: str | None = None, reports: bool = True) -> RunResult:
    """Runs ``recipe`` and writes model.onnx, provenance.json, metrics.json, report.md (+ plots)."""
    from registry.compress.signature import signature_of
    from registry.provenance import provenance_sha256, statement, write_provenance

    out = Path(out_dir)
    if out.exists() and (not out.is_dir() or any(out.iterdir())) and not force:
        raise InputError(f"output directory {out} exists and is not empty (use --force to replace it)")
    progress = progress or no_progress
    with progress("load model and data", None):
        inputs = load_inputs(recipe)
    _check_robustness(recipe, inputs)
    runner = Runner(recipe, inputs, progress)
    baseline, records, variants = runner.run()
    signature = inputs.signature or signature_of(variants[0].model)
    if measure_latency:
        _measure_latency(runner, variants, recipe, signature, progress)
        baseline = variants[0].metrics
    chosen, target = _choose(variants, baseline, recipe)
    sha = hashlib.sha256(chosen.model).hexdigest()
    unit = T.drop_unit(recipe.task, bool(recipe.target.get("relative")))
    variant_rows = [{"name": v.name, "size_bytes": v.metrics["size_bytes"],
                     "size_ratio": v.metrics["size_bytes"] / baseline["size_bytes"],
                     "drop": T.drop(baseline, v.metrics, recipe.task, bool(recipe.target.get("relative"))),
                     "drop_unit": unit,
                     **{k: v.metrics[k] for k in QUALITY_KEYS if k in v.metrics},
                     "latency": v.metrics.get("latency", {})} for v in variants]
    base_model: dict[str, Any] = dict(inputs.base)
    if base_ref:
        base_model["ref"] = base_ref
    for key in ("factory", "kwargs"):
        if key in recipe.model:
            base_model[key] = recipe.model[key]
    out_abs = out.resolve()
    data_record: dict[str, Any] = {f"{k}_sha256": ds.sha256 for k, ds in inputs.sets.items()}
    data_record["files"] = {k: {"path": os.path.relpath(Path(ds.path).resolve(), out_abs), "sha256": ds.sha256,
                                "rows": len(ds), "format": Path(ds.path).suffix.lstrip(".")}
                            for k, ds in inputs.sets.items()}
    if inputs.tokenizer:
        data_record["tokenizer"] = inputs.tokenizer
    if inputs.calibration is not None and inputs.calibration.sha256 == inputs.evaluation.sha256:
        data_record["warning"] = "calibration and evaluation are the same file"
    predicate_core = {
        "base_model": base_model,
        "recipe": _recorded_recipe(recipe, out),
        "signature": signature.to_dict(),
        "steps": [r.to_dict() for r in records],
        "data": data_record,
        "tools": tool_versions(),
        "seeds": {"recipe": recipe.seed, "torch": recipe.seed, "steps": "recipe seed + step index"},
        "baseline": {k: v for k, v in baseline.items() if k != "latency"},
        "variant": chosen.name,
        "target": target,
        "metrics": chosen.metrics,
    }
    metrics_doc = _clean({"task": recipe.task, "model_sha256": sha, "variant": chosen.name,
                          "metrics": chosen.metrics, "baseline": baseline, "target": target,
                          "variants": variant_rows, "steps": [r.to_dict() for r in records],
                          "signature": signature.to_dict()})
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    try:
        os.chmod(tmp, 0o777 & ~_umask())
        (tmp / "model.onnx").write_bytes(chosen.model)
        (tmp / "metrics.json").write_text(json.dumps(metrics_doc, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        report_files: list[dict[str, Any]] = []
        if reports:
            from registry.compress.report import write_report

            names = write_report(tmp, metrics_doc, runner.histograms, runner.cosines, sha)
            report_files = [{"path": n, "sha256": _file_sha(tmp / n), "size": (tmp / n).stat().st_size}
                            for n in names]
        predicate = _clean({**predicate_core, "report": report_files})
        doc = statement(sha, "model.onnx", predicate)
        write_provenance(doc, tmp / "provenance.json")
        for f in tmp.iterdir():
            os.chmod(f, 0o666 & ~_umask())
        _replace_dir(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return RunResult(out_dir=out, sha256=sha, size=len(chosen.model), metrics=chosen.metrics, baseline=baseline,
                     steps=records, variants=variant_rows, chosen=chosen.name, target=target,
                     provenance_sha256=provenance_sha256(doc).hex(), task=recipe.task)


def _file_sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _replace_dir(tmp: Path, out: Path) -> None:
    """Moves the finished directory into place; an old one is set aside first and removed after."""
    if out.exists():
        old = out.with_name(f".{out.name}.old-{os.getpid()}")
        os.replace(out, old)
        try:
            os.replace(tmp, out)
        except BaseException:
            os.replace(old, out)
            raise
        shutil.rmtree(old, ignore_errors=True) if old.is_dir() else old.unlink()
    else:
        os.replace(tmp, out)


# Public name for registry/__init__.py (``run`` is too generic to export at the top level).
compress_model = run
