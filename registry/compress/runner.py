"""The steps of one run: PyTorch steps on a module, then export, then ONNX quantization.

Every state is measured the same way against the FP32 ONNX baseline's outputs on the evaluation
split; mixed precision alone reads the calibration split (never the evaluation split). Latency is
measured at the end, for every ONNX variant at once, interleaved (latency.py).
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field
from typing import Any, Callable, ContextManager, Iterator

import numpy as np

from registry.compress import targets as T
from registry.compress.data import is_classification
from registry.compress.inputs import Inputs
from registry.compress.recipe import Recipe, Step
from registry.errors import InputError

Advance = Callable[[int], None]
ProgressFactory = Callable[[str, "int | None"], ContextManager[Advance]]
MAX_HIST_LAYERS = 8


@contextlib.contextmanager
def no_progress(_label: str, _total: int | None) -> Iterator[Advance]:
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
class Histogram:
    """Weights of some layers before and after a step (what the report plots, per layer)."""

    label: str
    layers: dict[str, tuple[np.ndarray, np.ndarray]]


class Runner:
    def __init__(self, recipe: Recipe, inputs: Inputs, progress: ProgressFactory) -> None:
        self.recipe = recipe
        self.inputs = inputs
        self.progress = progress
        self.threads = int(recipe.evaluation["threads"])
        self.task = recipe.task
        self.feeds = inputs.evaluation.inputs
        self.y = inputs.evaluation.y
        self.reference: np.ndarray | None = None
        self.cal_reference: np.ndarray | None = None
        self.opset = next((s.params["opset"] for s in recipe.steps if s.type == "export"), 17)
        self.histograms: list[Histogram] = []
        self.cosines: dict[str, np.ndarray] = {}
        self.last_float: Any = None          # the last PyTorch model (source of transfer attacks)
        self.adversarial: tuple[np.ndarray, np.ndarray] | None = None
        self.pooling = inputs.pooling
        self.output = inputs.output

    # ---- measuring ------------------------------------------------------------------------------
    def eval_onnx(self, data: bytes, name: str | None = None) -> dict[str, Any]:
        from registry.compress.evaluate import evaluate_onnx

        m, out = evaluate_onnx(data, self.feeds, self.y, self.task, self.reference, self.threads, self.pooling,
                               output=self.output)
        return self._recorded(name, m, out, lambda: self._robust_onnx(data))

    def eval_torch(self, model: Any, name: str | None = None) -> dict[str, Any]:
        from registry.compress.evaluate import evaluate_torch

        m, out = evaluate_torch(model, self.feeds, self.y, self.task, self.reference, self.opset)
        return self._recorded(name, m, out, lambda: self._robust_torch(model))

    def _recorded(self, name: str | None, m: Any, out: np.ndarray, robustness: Callable[[], Any]) -> dict[str, Any]:
        """One variant's metrics as the report and provenance take them, its outputs' cosines kept
        for the plot, and robustness under attack when the recipe asks for it."""
        metrics = m.to_dict()
        self._keep_cosines(name, out)
        rob = robustness()
        if rob:
            metrics["robustness"] = rob
        return metrics

    def _keep_cosines(self, name: str | None, out: np.ndarray) -> None:
        if name and self.task == "embedding" and self.reference is not None:
            from registry.compress.evaluate import cosines

            self.cosines[name] = cosines(out, self.reference)

    def _robust_ok(self) -> bool:
        return bool(self.recipe.robustness) and is_classification(self.task) and self.y is not None

    def _robust_torch(self, model: Any) -> dict[str, Any] | None:
        if not self._robust_ok():
            return None
        from registry.compress import robust
        from registry.compress.train import predict

        x, y = robust.sample(next(iter(self.feeds.values())), self.y, self.recipe.robustness)
        adv = robust.craft(model, x, y, self.recipe.robustness)
        self.last_float = model
        self.adversarial = (adv, y)
        return robust.scores(predict(model, x).numpy(), predict(model, adv).numpy(), y, self.recipe.robustness,
                             "white-box on this model")

    def _robust_onnx(self, data: bytes) -> dict[str, Any] | None:
        if not self._robust_ok() or self.adversarial is None:
            return None
        from registry.compress import robust
        from registry.compress.evaluate import onnx_outputs

        adv, y = self.adversarial
        x = next(iter(self.feeds.values()))[:len(y)]
        name = next(iter(self.feeds))
        clean = onnx_outputs(data, {name: x}, self.threads)
        attacked = onnx_outputs(data, {name: adv}, self.threads)
        return robust.scores(clean, attacked, y, self.recipe.robustness,
                             "transfer from the last floating-point PyTorch model")

    # ---- the run --------------------------------------------------------------------------------
    def run(self) -> tuple[dict[str, Any], list[StepRecord], list[Variant]]:
        from registry.compress.evaluate import onnx_outputs

        inputs = self.inputs
        if inputs.onnx_model is not None:
            baseline_bytes = inputs.onnx_model
        else:
            from registry.compress.export import export_onnx

            if self._robust_ok():
                self._robust_torch(inputs.torch_model)  # adversarial set from the base model for the baseline
            with self.progress("export FP32 baseline", None):
                baseline_bytes = export_onnx(inputs.torch_model, self.feeds, self.opset)
        self.reference = onnx_outputs(baseline_bytes, self.feeds, self.threads, pooling=self.pooling,
                                      output=self.output)
        baseline = self.eval_onnx(baseline_bytes, "fp32-onnx")
        variants = [Variant("fp32-onnx", baseline_bytes, baseline)]
        current: Any = inputs.torch_model if inputs.onnx_model is None else inputs.onnx_model
        metrics = self.eval_torch(current) if inputs.onnx_model is None else baseline
        records: list[StepRecord] = []
        for index, step in enumerate(self.recipe.steps):
            before = metrics
            started = time.perf_counter()
            current, details = getattr(self, "step_" + step.type)(current, step, index)
            details["seconds"] = round(time.perf_counter() - started, 3)
            if isinstance(current, bytes):
                name = "export" if step.type == "export" else f"quantize-{step.params['mode']}"
                metrics = baseline if current == baseline_bytes else self.eval_onnx(current, name)
                variants.append(Variant(name, current, metrics))
            else:
                metrics = self.eval_torch(current)
            records.append(StepRecord(step.type, dict(step.params), before, metrics, details))
        return baseline, records, variants

    # ---- PyTorch steps --------------------------------------------------------------------------
    def _train_cfg(self, step: Step, index: int) -> Any:
        from registry.compress.train import TrainConfig

        p = step.params
        return TrainConfig(epochs=p["epochs"], lr=p["lr"], batch_size=p["batch_size"], weight_decay=p["weight_decay"],
                           seed=self.recipe.seed + index, noise=p.get("noise", "none"),
                           noise_std=p.get("noise_std", 0.0))

    def _self_targets(self, model: Any) -> np.ndarray | None:
        """An embedding model without target vectors recovers towards its own base model's outputs."""
        from registry.compress.train import predict

        ft = self.inputs.finetune
        if self.task != "embedding" or ft is None or ft.y is not None:
            return None
        if "targets" not in self.__dict__:
            self.targets = predict(self.inputs.torch_model if self.inputs.torch_model is not None else model,
                                   ft.inputs).numpy()
        return self.targets

    def _fit(self, model: Any, step: Step, index: int, label: str, **kwargs: Any) -> Any:
        from registry.compress.train import fit

        cfg = self._train_cfg(step, index)
        if cfg.epochs == 0:
            return None
        assert self.inputs.finetune is not None
        with self.progress(label, cfg.epochs) as advance:
            return fit(model, self.inputs.finetune, self.task, cfg, on_epoch=lambda *_: advance(1),
                       targets=self._self_targets(model), **kwargs)

    def _layers(self, model: Any) -> dict[str, np.ndarray]:
        from registry.compress import prune as P

        layers = P.prunable(model)
        if len(layers) > MAX_HIST_LAYERS:  # the largest few: where most weights (and most change) are
            layers = sorted(layers, key=lambda nm: -nm[1].weight.numel())[:MAX_HIST_LAYERS]
        return {name: m.weight.detach().numpy().copy() for name, m in layers}

    def _histogram(self, label: str, before: dict[str, np.ndarray], model: Any) -> None:
        after = {name: m.weight.detach().numpy().copy() for name, m in model.named_modules() if name in before
                 and hasattr(m, "weight")}
        self.histograms.append(Histogram(label, {k: (before[k], after[k]) for k in before if k in after}))

    def step_prune(self, model: Any, step: Step, index: int) -> tuple[Any, dict[str, Any]]:
        from registry.compress import prune as P

        p = step.params
        before = self._layers(model)
        masks: P.Masks | None = None
        rounds = []
        if p["method"] in ("sparsity", "percentile"):
            amounts = P.schedule(p["amount"], p["iterations"], p["schedule"])
        else:
            amounts = [p["amount"]] * p["iterations"]
        for i, amount in enumerate(amounts):
            masks = P.magnitude_masks(model, method=p["method"], value=amount, scope=p["scope"], previous=masks)
            P.apply_masks(model, masks)
            self._fit(model, step, index, f"prune {i + 1}/{len(amounts)}: fine-tune",
                      after_step=P.mask_hook(model, masks))
            rounds.append({"amount": amount, "sparsity": P.sparsity(model)})
        self._histogram(f"step {index + 1}: prune", before, model)
        return model, {"rounds": rounds, "sparsity": P.sparsity(model),
                       "note": "unstructured zeros: the ONNX file stores dense tensors, so size and latency "
                               "do not change"}

    def step_structured_prune(self, model: Any, step: Step, index: int) -> tuple[Any, dict[str, Any]]:
        import torch

        from registry.compress import prune as P

        p = step.params
        before = self._layers(model)
        example = tuple(torch.from_numpy(np.ascontiguousarray(v[:2])) for v in self.feeds.values())
        widths = P.widths(model)
        try:
            pruner = P.StructuredPruner.create(model, example, p["ratio"], p["iterations"], p["criterion"],
                                               p["heads"], p["ffn"])
        except InputError:
            raise
        except Exception as exc:  # torch-pruning raises on graphs it cannot trace
            raise InputError(f"structured pruning cannot trace this model: {str(exc).splitlines()[0][:200]}") from exc
        rounds = []
        for i in range(p["iterations"]):
            pruner.step()
            self._fit(model, step, index, f"structured prune {i + 1}/{p['iterations']}: fine-tune",
                      after_step=_keep_zeros(model))
            rounds.append({"round": i + 1, "parameters": int(sum(t.numel() for t in model.parameters()))})
        self._histogram(f"step {index + 1}: structured prune", before, model)
        after = P.widths(model)
        changed = {k: [v, after.get(k, 0)] for k, v in widths.items() if after.get(k, 0) != v}
        return model, {"rounds": rounds, "library": "torch-pruning", "changed_widths": changed,
                       "transformer": pruner.transformer}

    def step_finetune(self, model: Any, step: Step, index: int) -> tuple[Any, dict[str, Any]]:
        result = self._fit(model, step, index, "fine-tune", after_step=_keep_zeros(model))
        return model, {"epochs_run": result.epochs_run if result else 0,
                       "noise": step.params.get("noise", "none"), "noise_std": step.params.get("noise_std", 0.0)}

    def step_distill(self, teacher: Any, step: Step, index: int) -> tuple[Any, dict[str, Any]]:
        from registry.compress.distill import DistillConfig, distill, fewer_layers
        from registry.compress.models import build_model, probe
        from registry.compress.train import deterministic

        p = step.params
        if p.get("layers"):
            student = fewer_layers(teacher, p["layers"])
        else:
            with deterministic(self.recipe.seed + index):
                student = build_model(p["student"], p["student_kwargs"])
            names = getattr(teacher, "input_names", None)
            if names:
                student.input_names = list(names)
        width = probe(student, self.feeds, "evaluation")
        if width != self.inputs.outputs:
            raise InputError(f"student has {width} outputs, the teacher has {self.inputs.outputs}")
        cfg = self._train_cfg(step, index)
        assert self.inputs.finetune is not None
        with self.progress("distill: epochs", cfg.epochs) as advance:
            result = distill(teacher, student, self.inputs.finetune, self.task, cfg,
                             DistillConfig(p["temperature"], p["alpha"], p["val_fraction"], p["patience"]),
                             on_epoch=lambda *_: advance(1), targets=self._self_targets(teacher))
        return student, {"epochs_run": result.epochs_run, "best_epoch": result.best_epoch,
                         "best_validation": max(result.val_scores) if result.val_scores else None}

    # ---- ONNX steps -----------------------------------------------------------------------------
    def step_export(self, model: Any, step: Step, _index: int) -> tuple[bytes, dict[str, Any]]:
        from registry.compress.export import EXPORTER, export_onnx, parity

        with self.progress("export ONNX and check parity", None):
            data = export_onnx(model, self.feeds, step.params["opset"])
            check = parity(model, data, self.feeds, step.params["atol"], self.threads)
        return data, {"exporter": EXPORTER, **check}

    def step_quantize(self, data: bytes, step: Step, _index: int) -> tuple[bytes, dict[str, Any]]:
        from registry.compress import quantize as Q

        p = step.params
        cal = self.inputs.calibration.inputs if self.inputs.calibration is not None else None
        mode = p["mode"]
        if mode == "dynamic":
            with self.progress("quantize: dynamic INT8", None):
                return Q.dynamic_int8(data, p["per_channel"]), {"ops": list(Q.DYNAMIC_OPS)}
        if mode == "fp16":
            with self.progress("quantize: FP16", None):
                return Q.fp16(data, p["keep_io_types"]), {"converter": "onnxruntime.transformers.float16"}
        if mode == "int4":
            with self.progress("quantize: INT4 weight-only", None):
                model = Q.weight_only(data, bits=4, block_size=p["block_size"], symmetric=p["symmetric"],
                                      method=p["method"], embeddings=p["embeddings"],
                                      accuracy_level=p["accuracy_level"], calibration=cal)
            return model, {"quantizer": "onnxruntime MatMulNBitsQuantizer"}
        assert cal is not None
        if mode == "static":
            with self.progress("quantize: calibrate", next(iter(cal.values())).shape[0]) as advance:
                return Q.static_int8(data, cal, p["calibration"], p["per_channel"], progress=advance), \
                    {"preprocessed": True, "ops": list(Q.STATIC_OPS)}
        return self._mixed(data, p, cal)

    def _criterion(self, p: dict[str, Any]) -> dict[str, Any]:
        """The mixed step's own bounds, else the recipe's target, else a default that is said out loud."""
        target = self.recipe.target
        if self.task == "embedding":
            crit = {"min_cosine": p.get("min_cosine", target.get("min_cosine", 0.995))}
            low = p.get("min_cosine_min", target.get("min_cosine_min"))
            if low is not None:
                crit["min_cosine_min"] = low
            return crit
        return {"max_drop": p.get("max_drop", target.get("max_drop", 1.0)),
                "relative": bool(p.get("relative", target.get("relative", False)))}

    def _mixed(self, data: bytes, p: dict[str, Any], cal: dict[str, np.ndarray]) -> tuple[bytes, dict[str, Any]]:
        from registry.compress import mixed as M
        from registry.compress.evaluate import evaluate_onnx, onnx_outputs

        crit = self._criterion(p)
        cal_y = self.inputs.calibration.y if self.inputs.calibration is not None else None
        ref = onnx_outputs(data, cal, self.threads, pooling=self.pooling, output=self.output)
        base_m, _ = evaluate_onnx(data, cal, cal_y, self.task, ref, self.threads, self.pooling, output=self.output)
        base = base_m.to_dict()

        def check(model: bytes) -> tuple[bool, float, dict[str, Any]]:
            m, _ = evaluate_onnx(model, cal, cal_y, self.task, ref, self.threads, self.pooling, output=self.output)
            now = m.to_dict()
            result = T.evaluate(crit, base, now, self.task)
            shown = {k: now[k] for k in ("accuracy", "cosine_mean", "cosine_min", "mse") if k in now}
            return bool(result["met"]), T.score(base, now, self.task), shown

        scheme = M.Scheme(base=p["base"], per_channel=p["per_channel"], calibration=p["calibration"],
                          block_size=p["block_size"], symmetric=p["symmetric"], int4_method=p["method"],
                          embeddings=p["embeddings"], fallback=p["fallback"])
        with self.progress("mixed precision: rank nodes, then search", None) as advance:
            res = M.mixed_precision(data, cal, check, scheme, self.pooling, self.threads, p["rank_samples"],
                                    progress=advance)
        return res.model, {"criterion": crit, "measured_on": "calibration split", "base": p["base"],
                           "fallback": p["fallback"], "candidates": res.candidates,
                           "fallback_nodes": res.fallback_nodes, "sensitivity": res.sensitivity,
                           "met_on_calibration": res.met, "trials": res.trials,
                           "search_seconds": {k: round(v, 3) for k, v in res.seconds.items()}}


def _keep_zeros(model: Any) -> Callable[[], None] | None:
    """Earlier unstructured pruning survives later fine-tuning: zeros are masked back after each
    step (otherwise fine-tuning would silently regrow them)."""
    from registry.compress import prune as P

    zeros = {name: m.weight.detach() != 0 for name, m in P.prunable(model)}
    if all(bool(z.all()) for z in zeros.values()):
        return None
    return P.mask_hook(model, zeros)
