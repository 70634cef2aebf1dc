"""One compression run: load, baseline, steps, evaluation, outputs written atomically.

Everything a run produces goes into a temporary directory beside the output directory and is
renamed into place only when complete, so a failure never leaves half a model behind. The ONNX
variants (FP32 baseline, export, quantized) are all measured against the FP32 ONNX baseline.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import platform
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, ContextManager, Iterator

import numpy as np

from registry.compress.data import Dataset, check_targets, load_npz
from registry.compress.recipe import Recipe, Step
from registry.errors import CompressionError, InputError

Advance = Callable[[int], None]
ProgressFactory = Callable[[str, "int | None"], ContextManager[Advance]]


@contextlib.contextmanager
def _no_progress(_label: str, _total: int | None) -> Iterator[Advance]:
    yield lambda _n: None


@dataclass
class StepRecord:
    name: str
    params: dict[str, Any]
    metrics_before: dict[str, Any]
    metrics_after: dict[str, Any]
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "params": self.params, "metrics_before": self.metrics_before,
                "metrics_after": self.metrics_after, "details": self.details}


@dataclass
class Variant:
    name: str
    model: bytes
    metrics: dict[str, Any]


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

    @property
    def target_met(self) -> bool:
        return bool(self.target.get("met", True))

    def summary(self) -> dict[str, Any]:
        return {"out_dir": str(self.out_dir), "model": str(self.out_dir / "model.onnx"), "sha256": self.sha256,
                "size_bytes": self.size, "provenance": str(self.out_dir / "provenance.json"),
                "provenance_sha256": self.provenance_sha256, "metrics": self.metrics, "baseline": self.baseline,
                "variant": self.chosen, "variants": self.variants, "target": self.target,
                "steps": [{"name": s.name, "metrics_after": s.metrics_after} for s in self.steps]}


# ---- inputs -------------------------------------------------------------------------------------

@dataclass
class Inputs:
    evaluation: Dataset
    finetune: Dataset | None
    calibration: Dataset | None
    base_sha256: str
    base_format: str
    torch_model: Any = None
    onnx_model: bytes | None = None
    outputs: int = 0


def _needs(recipe: Recipe) -> tuple[bool, bool]:
    finetune = any(s.type in ("prune", "structured_prune", "finetune", "distill") and s.params.get("epochs", 0) > 0
                   for s in recipe.steps)
    calibration = any(s.type == "quantize" and s.params["mode"] in ("static", "mixed") for s in recipe.steps)
    return finetune, calibration


def load_inputs(recipe: Recipe) -> Inputs:
    """Reads and cross-checks model and data before any work, so bad input fails fast."""
    from registry.compress.data import file_sha256

    if "evaluation" not in recipe.data:
        raise InputError("no evaluation data given (--eval-data or [data] evaluation)")
    need_ft, need_cal = _needs(recipe)
    for key, needed in (("finetune", need_ft), ("calibration", need_cal)):
        if needed and key not in recipe.data:
            raise InputError(f"the recipe needs {key} data (--{'finetune' if key == 'finetune' else 'calib'}-data "
                             f"or [data] {key})")
    sets = {k: load_npz(v, k) for k, v in recipe.data.items()}
    model = recipe.model
    if "onnx" in model:
        p = Path(model["onnx"])
        if not p.is_file():
            raise InputError(f"ONNX model {p} does not exist")
        data = p.read_bytes()
        outputs = _probe_onnx(data, sets["evaluation"].x)
        inputs = Inputs(sets["evaluation"], sets.get("finetune"), sets.get("calibration"),
                        hashlib.sha256(data).hexdigest(), "onnx", onnx_model=data, outputs=outputs)
    else:
        if "factory" not in model or "weights" not in model:
            raise InputError("a PyTorch model needs a factory ('module:factory') and a state-dict file")
        import torch

        from registry.compress.models import build_model, load_state, probe
        from registry.compress.train import deterministic

        with deterministic(recipe.seed):
            net = build_model(model["factory"], model.get("kwargs"))
        load_state(net, model["weights"], model["factory"])
        outputs = 0
        for role, ds in sets.items():
            outputs = probe(net, torch.from_numpy(ds.x), role)
        inputs = Inputs(sets["evaluation"], sets.get("finetune"), sets.get("calibration"),
                        file_sha256(Path(model["weights"])), "pytorch-state-dict", torch_model=net, outputs=outputs)
    for role, ds in sets.items():
        if role == "calibration" or (role == "finetune" and not need_ft):
            continue  # calibration needs inputs only; unused fine-tuning targets are never read
        check_targets(ds, recipe.task, inputs.outputs, role)
    return inputs


def _probe_onnx(data: bytes, x: np.ndarray) -> int:
    from registry.compress.evaluate import onnx_outputs

    try:
        out = onnx_outputs(data, x[:2])
    except Exception as exc:  # onnxruntime raises its own types for bad graphs and shapes
        raise InputError(f"ONNX model cannot run on the evaluation data: {str(exc).splitlines()[0][:200]}") from exc
    if out.ndim != 2:
        raise InputError(f"ONNX model must return (batch, outputs), got shape {out.shape}")
    return int(out.shape[1])


# ---- the run ------------------------------------------------------------------------------------

def _drop(base: dict[str, Any], now: dict[str, Any], task: str, relative: bool) -> float:
    """Accuracy points lost (classification) or cosine-to-reference points lost (otherwise)."""
    key = "accuracy" if task == "classification" else "cosine"
    b, n = float(base.get(key, 1.0)), float(now.get(key, 1.0))
    if relative:
        return (b - n) / b * 100.0 if b else 0.0
    return (b - n) * 100.0


def tool_versions() -> dict[str, str]:
    import onnx
    import onnxruntime
    import torch

    import registry
    from registry.compress.export import EXPORTER

    versions = {"python": platform.python_version(), "torch": torch.__version__, "onnx": onnx.__version__,
                "onnxruntime": onnxruntime.__version__, "numpy": np.__version__, "registry": registry.__version__,
                "exporter": EXPORTER}
    with contextlib.suppress(ImportError):
        import onnxconverter_common

        versions["onnxconverter_common"] = onnxconverter_common.__version__
    return versions


class _Runner:
    def __init__(self, recipe: Recipe, inputs: Inputs, progress: ProgressFactory, latency: bool) -> None:
        self.recipe = recipe
        self.inputs = inputs
        self.progress = progress
        ev = recipe.evaluation
        self.threads = int(ev["threads"])
        self.runs = int(ev["latency_runs"]) if latency else 0
        self.warmup = int(ev["warmup"])
        self.x, self.y = inputs.evaluation.x, inputs.evaluation.y
        self.reference: np.ndarray | None = None
        self.opset = next((s.params["opset"] for s in recipe.steps if s.type == "export"), 17)
        self.histograms: list[tuple[str, np.ndarray, np.ndarray]] = []

    def eval_onnx(self, data: bytes, with_latency: bool = True) -> dict[str, Any]:
        from registry.compress.evaluate import evaluate_onnx

        m, _ = evaluate_onnx(data, self.x, self.y, self.recipe.task, self.reference, self.threads,
                             self.runs if with_latency else 0, self.warmup)
        return m.to_dict()

    def eval_torch(self, model: Any) -> dict[str, Any]:
        from registry.compress.evaluate import evaluate_torch

        m, _ = evaluate_torch(model, self.x, self.y, self.recipe.task, self.reference, self.opset)
        return m.to_dict()

    def run(self) -> tuple[dict[str, Any], list[StepRecord], list[Variant]]:
        from registry.compress.evaluate import onnx_outputs

        inputs = self.inputs
        if inputs.onnx_model is not None:
            baseline_bytes = inputs.onnx_model
        else:
            from registry.compress.export import export_onnx

            baseline_bytes = export_onnx(inputs.torch_model, self.x, self.opset)
        self.reference = onnx_outputs(baseline_bytes, self.x, self.threads)
        baseline = self.eval_onnx(baseline_bytes)
        variants = [Variant("fp32-onnx", baseline_bytes, baseline)]
        current: Any = inputs.torch_model if inputs.onnx_model is None else inputs.onnx_model
        metrics = self.eval_torch(current) if inputs.onnx_model is None else baseline
        records: list[StepRecord] = []
        for index, step in enumerate(self.recipe.steps):
            before = metrics
            current, details = getattr(self, "step_" + step.type)(current, step, index)
            if isinstance(current, bytes):
                metrics = self.eval_onnx(current)
                variants.append(Variant(step.type if step.type == "export" else f"quantize-{step.params['mode']}",
                                        current, metrics))
            else:
                metrics = self.eval_torch(current)
            records.append(StepRecord(step.type, dict(step.params), before, metrics, details))
        return baseline, records, variants

    # -- torch steps --
    def _train_cfg(self, step: Step, index: int) -> Any:
        from registry.compress.train import TrainConfig

        p = step.params
        return TrainConfig(epochs=p["epochs"], lr=p["lr"], batch_size=p["batch_size"],
                           weight_decay=p["weight_decay"], seed=self.recipe.seed + index)

    def _fit(self, model: Any, step: Step, index: int, label: str, **kwargs: Any) -> Any:
        from registry.compress.train import fit

        cfg = self._train_cfg(step, index)
        if cfg.epochs == 0:
            return None
        assert self.inputs.finetune is not None
        with self.progress(label, cfg.epochs) as advance:
            return fit(model, self.inputs.finetune, self.recipe.task, cfg,
                       on_epoch=lambda *_: advance(1), **kwargs)

    def step_prune(self, model: Any, step: Step, index: int) -> tuple[Any, dict[str, Any]]:
        from registry.compress import prune as P

        p = step.params
        before = P.weight_vector(model).numpy().copy()
        masks: P.Masks | None = None
        rounds = []
        if p["method"] in ("sparsity", "percentile"):
            amounts = P.schedule(p["amount"], p["iterations"], p["schedule"])
        else:
            amounts = [p["amount"]] * p["iterations"]
        for i, amount in enumerate(amounts):
            masks = P.magnitude_masks(model, method=p["method"], value=amount, scope=p["scope"], previous=masks)
            P.apply_masks(model, masks)
            self._fit(model, step, index, f"prune {i + 1}/{len(amounts)}: fine-tune", after_step=P.mask_hook(model, masks))
            rounds.append({"amount": amount, "sparsity": P.sparsity(model)})
        self.histograms.append((f"step {index + 1}: prune", before, P.weight_vector(model).numpy().copy()))
        return model, {"rounds": rounds, "sparsity": P.sparsity(model)}

    def step_structured_prune(self, model: Any, step: Step, index: int) -> tuple[Any, dict[str, Any]]:
        import torch

        from registry.compress import prune as P

        p = step.params
        before = P.weight_vector(model).numpy().copy()
        links = P.chain_links(model, torch.from_numpy(self.x[:1]))
        if not links:
            raise InputError("structured pruning found no hidden Linear/Conv2d layer to narrow")
        original = P.widths(model, links)
        rounds = []
        for i, ratio in enumerate(P.schedule(p["ratio"], p["iterations"], "linear")):
            targets = {k: max(1, int(round(w * (1 - ratio)))) for k, w in original.items()}
            changed = P.remove_units(model, P.chain_links(model, torch.from_numpy(self.x[:1])), targets,
                                     p["criterion"])
            self._fit(model, step, index, f"structured prune {i + 1}/{p['iterations']}: fine-tune",
                      after_step=_keep_zeros(model))
            rounds.append({"ratio": ratio, "widths": {str(k): v[1] for k, v in changed.items()}})
        self.histograms.append((f"step {index + 1}: structured prune", before, P.weight_vector(model).numpy().copy()))
        final = P.widths(model, P.chain_links(model, torch.from_numpy(self.x[:1])))
        return model, {"rounds": rounds, "widths_before": {str(k): v for k, v in original.items()},
                       "widths_after": {str(k): v for k, v in final.items()}}

    def step_finetune(self, model: Any, step: Step, index: int) -> tuple[Any, dict[str, Any]]:
        result = self._fit(model, step, index, "fine-tune", after_step=_keep_zeros(model))
        return model, {"epochs_run": result.epochs_run if result else 0}

    def step_distill(self, teacher: Any, step: Step, index: int) -> tuple[Any, dict[str, Any]]:
        import torch

        from registry.compress.distill import DistillConfig, distill
        from registry.compress.models import build_model, probe
        from registry.compress.train import deterministic

        p = step.params
        with deterministic(self.recipe.seed + index):
            student = build_model(p["student"], p["student_kwargs"])
        width = probe(student, torch.from_numpy(self.x), "evaluation")
        if width != self.inputs.outputs:
            raise InputError(f"student {p['student']} has {width} outputs, the teacher has {self.inputs.outputs}")
        cfg = self._train_cfg(step, index)
        assert self.inputs.finetune is not None
        with self.progress("distill: epochs", cfg.epochs) as advance:
            result = distill(teacher, student, self.inputs.finetune, self.recipe.task, cfg,
                             DistillConfig(p["temperature"], p["alpha"], p["val_fraction"], p["patience"]),
                             on_epoch=lambda *_: advance(1))
        return student, {"epochs_run": result.epochs_run, "best_epoch": result.best_epoch,
                         "best_validation": max(result.val_scores) if result.val_scores else None}

    # -- ONNX steps --
    def step_export(self, model: Any, step: Step, _index: int) -> tuple[bytes, dict[str, Any]]:
        from registry.compress.export import EXPORTER, export_onnx, parity

        data = export_onnx(model, self.x, step.params["opset"])
        diff = parity(model, data, self.x, step.params["atol"], self.threads)
        return data, {"exporter": EXPORTER, "max_abs_diff": diff}

    def step_quantize(self, data: bytes, step: Step, _index: int) -> tuple[bytes, dict[str, Any]]:
        from registry.compress import quantize as Q

        p = step.params
        cal = self.inputs.calibration.x if self.inputs.calibration is not None else None
        if p["mode"] == "dynamic":
            return Q.dynamic_int8(data, p["per_channel"]), {}
        if p["mode"] == "fp16":
            return Q.fp16(data), {}
        assert cal is not None
        if p["mode"] == "static":
            with self.progress("calibrate", cal.shape[0]) as advance:
                return Q.static_int8(data, cal, p["calibration"], p["per_channel"], progress=advance), \
                    {"preprocessed": True}
        reference = self.eval_onnx(data, with_latency=False)

        def drop_of(candidate: bytes) -> float:
            return _drop(reference, self.eval_onnx(candidate, with_latency=False), self.recipe.task, p["relative"])

        nodes = len(Q.quantizable_nodes(Q.preprocess(data)))
        with self.progress("mixed precision: calibrate", None) as advance:
            res = Q.mixed_precision(data, cal, drop_of, p["max_drop"], p["calibration"], p["per_channel"],
                                    progress=advance)
        return res.model, {"preprocessed": True, "quantizable_nodes": nodes, "fp32_nodes": res.fp32_nodes,
                           "sensitivity": res.sensitivity, "drop": res.drop, "met": res.met, "trials": res.trials}


def _keep_zeros(model: Any) -> Callable[[], None] | None:
    """Earlier unstructured pruning survives later fine-tuning: zeros are masked back after each
    step (otherwise fine-tuning would silently regrow them)."""
    from registry.compress import prune as P

    zeros = {name: m.weight.detach() != 0 for name, m in P.prunable(model)}
    if all(bool(z.all()) for z in zeros.values()):
        return None
    return P.mask_hook(model, zeros)


def _choose(variants: list[Variant], baseline: dict[str, Any], recipe: Recipe) -> tuple[Variant, dict[str, Any]]:
    """The last variant if it meets the target; else the smallest that does; else the most accurate."""
    final = variants[-1]
    target = dict(recipe.target)
    drops = {v.name: _drop(baseline, v.metrics, recipe.task, bool(target.get("relative"))) for v in variants}
    target["drop"] = drops[final.name]
    if "max_drop" not in target:
        target["met"] = True
        return final, target
    ok = [v for v in variants[1:] if drops[v.name] <= target["max_drop"]]
    if drops[final.name] <= target["max_drop"]:
        target["met"] = True
        return final, target
    target["met"] = False
    pool = ok or variants[1:] or variants
    chosen = min(pool, key=lambda v: v.metrics["size_bytes"]) if ok else \
        min(pool, key=lambda v: (drops[v.name], v.metrics["size_bytes"]))
    target["drop"] = drops[chosen.name]
    target["final_drop"] = drops[final.name]
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
    return value


def run(recipe: Recipe, out_dir: str | Path, *, progress: ProgressFactory | None = None, force: bool = False,
        measure_latency: bool = True, base_ref: str | None = None, reports: bool = True) -> RunResult:
    """Runs ``recipe`` and writes model.onnx, provenance.json, metrics.json, report.md (+ plots)."""
    from registry.provenance import provenance_sha256, statement, write_provenance

    out = Path(out_dir)
    if out.exists() and (not out.is_dir() or any(out.iterdir())) and not force:
        raise InputError(f"output directory {out} exists and is not empty (use --force to replace it)")
    inputs = load_inputs(recipe)
    runner = _Runner(recipe, inputs, progress or _no_progress, measure_latency)
    baseline, records, variants = runner.run()
    chosen, target = _choose(variants, baseline, recipe)
    sha = hashlib.sha256(chosen.model).hexdigest()
    variant_rows = [{"name": v.name, "size_bytes": v.metrics["size_bytes"],
                     "size_ratio": v.metrics["size_bytes"] / baseline["size_bytes"],
                     "drop": _drop(baseline, v.metrics, recipe.task, bool(recipe.target.get("relative"))),
                     **{k: v.metrics[k] for k in ("accuracy", "cosine", "mse") if k in v.metrics},
                     "latency": v.metrics.get("latency", {})} for v in variants]
    base_model: dict[str, Any] = {"sha256": inputs.base_sha256, "format": inputs.base_format}
    if base_ref:
        base_model["ref"] = base_ref
    if "factory" in recipe.model:
        base_model["factory"] = recipe.model["factory"]
    predicate = _clean({
        "base_model": base_model,
        "recipe": recipe.to_dict(),
        "steps": [r.to_dict() for r in records],
        "data": {f"{k}_sha256": ds.sha256 for k, ds in (("finetune", inputs.finetune),
                                                         ("calibration", inputs.calibration),
                                                         ("evaluation", inputs.evaluation)) if ds is not None},
        "tools": tool_versions(),
        "seeds": {"recipe": recipe.seed, "torch": recipe.seed, "steps": "recipe seed + step index"},
        "baseline": {k: v for k, v in baseline.items() if k != "latency"},
        "variant": chosen.name,
        "target": target,
        "metrics": chosen.metrics,
    })
    doc = statement(sha, "model.onnx", predicate)
    metrics_doc = _clean({"model_sha256": sha, "variant": chosen.name, "metrics": chosen.metrics, "baseline": baseline,
                          "target": target, "variants": variant_rows, "steps": [r.to_dict() for r in records]})
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    try:
        os.chmod(tmp, 0o777 & ~_umask())
        (tmp / "model.onnx").write_bytes(chosen.model)
        write_provenance(doc, tmp / "provenance.json")
        (tmp / "metrics.json").write_text(json.dumps(metrics_doc, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        if reports:
            from registry.compress.report import write_report

            write_report(tmp, metrics_doc, runner.histograms, sha)
        for f in tmp.iterdir():
            os.chmod(f, 0o666 & ~_umask())
        _replace_dir(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return RunResult(out_dir=out, sha256=sha, size=len(chosen.model), metrics=chosen.metrics, baseline=baseline,
                     steps=records, variants=variant_rows, chosen=chosen.name, target=target,
                     provenance_sha256=provenance_sha256(doc).hex())


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
