"""The recipe: which steps run, in which order, with which parameters, on which inputs.

A recipe is TOML (or built from CLI flags) and is validated completely before anything runs, with
every default filled in, so the provenance records the exact parameters used and ``reproduce``
can run it again. Unknown steps, unknown keys and out-of-range values are InputErrors.
"""

from __future__ import annotations

import copy
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from registry.compress.data import TASKS
from registry.errors import InputError

TORCH_STEPS = ("prune", "structured_prune", "distill", "finetune")
ONNX_STEPS = ("quantize",)
STEP_TYPES = TORCH_STEPS + ("export",) + ONNX_STEPS

Check = Callable[[Any], bool]


def _num(lo: float, hi: float, lo_open: bool = False, hi_open: bool = False) -> tuple[type, Check, str]:
    def ok(v: Any) -> bool:
        return (v > lo if lo_open else v >= lo) and (v < hi if hi_open else v <= hi)
    rng = f"{'(' if lo_open else '['}{lo:g}, {hi:g}{')' if hi_open else ']'}"
    return (float, ok, f"a number in {rng}")


def _int(lo: int, hi: int) -> tuple[type, Check, str]:
    return (int, lambda v: lo <= v <= hi, f"an integer in [{lo}, {hi}]")


def _choice(*options: str) -> tuple[type, Check, str]:
    return (str, lambda v: v in options, "one of " + ", ".join(options))


def _choice_int(*options: int) -> tuple[type, Check, str]:
    return (int, lambda v: v in options, "one of " + ", ".join(map(str, options)))


_BOOL = (bool, lambda v: True, "true or false")
_FACTORY = (str, lambda v: ":" in v, "'package.module:factory'")
_KWARGS = (dict, lambda v: True, "a table")
_OPT_NUM01 = (float, lambda v: 0 <= v <= 1, "a number in [0, 1]")
_TRAIN = {"epochs": (_int(0, 10_000), 5), "lr": (_num(0, 10, lo_open=True), 1e-3),
          "batch_size": (_int(1, 1 << 16), 64), "weight_decay": (_num(0, 1), 0.0),
          "noise": (_choice("none", "input", "weight"), "none"), "noise_std": (_num(0, 10), 0.0)}
QUANT_MODES = ("dynamic", "static", "fp16", "int4", "mixed")

SCHEMAS: dict[str, dict[str, tuple[tuple[type, Check, str], Any]]] = {
    "prune": {"method": (_choice("sparsity", "threshold", "percentile", "std"), "sparsity"),
              "scope": (_choice("global", "layer"), "global"),
              "amount": (_num(0, 1e9), None),
              "iterations": (_int(1, 100), 1), "schedule": (_choice("cubic", "linear"), "cubic"), **_TRAIN},
    "structured_prune": {"ratio": (_num(0, 1, hi_open=True), None), "iterations": (_int(1, 100), 1),
                         "criterion": (_choice("l1", "l2"), "l1"), "heads": (_BOOL, True), "ffn": (_BOOL, True),
                         **_TRAIN},
    "distill": {"student": (_FACTORY, ""), "student_kwargs": (_KWARGS, {}), "layers": (_int(0, 1000), 0),
                "temperature": (_num(0, 100, lo_open=True), 4.0), "alpha": (_num(0, 1), 0.7),
                "val_fraction": (_num(0, 0.9, lo_open=True), 0.15), "patience": (_int(1, 1000), 5), **_TRAIN},
    "finetune": dict(_TRAIN),
    "export": {"opset": (_int(13, 21), 17), "atol": (_num(0, 1), 1e-4)},
    "quantize": {"mode": (_choice(*QUANT_MODES), "static"),
                 "calibration": (_choice("minmax", "entropy", "percentile"), "minmax"),
                 "per_channel": (_BOOL, True),
                 "keep_io_types": (_BOOL, True),
                 "block_size": (_choice_int(16, 32, 64, 128, 256), 32),
                 "symmetric": (_BOOL, False),
                 "method": (_choice("rtn", "hqq", "gptq"), "rtn"),
                 "embeddings": (_BOOL, True),
                 "accuracy_level": (_choice_int(0, 1, 2, 3, 4), 4),
                 "base": (_choice("dynamic", "static", "int4"), "dynamic"),
                 "fallback": (_choice("fp32", "int8-block"), "int8-block"),
                 "max_drop": (_num(0, 100), None), "relative": (_BOOL, False),
                 "min_cosine": (_num(-1, 1), None), "min_cosine_min": (_num(-1, 1), None),
                 "rank_samples": (_int(1, 100_000), 32)},
}
# which quantize parameters each mode reads (the others are refused if given, and not recorded)
QUANT_PARAMS = {
    "dynamic": ("per_channel",),
    "static": ("calibration", "per_channel"),
    "fp16": ("keep_io_types",),
    "int4": ("block_size", "symmetric", "method", "embeddings", "accuracy_level"),
    "mixed": ("base", "fallback", "calibration", "per_channel", "block_size", "symmetric", "method", "embeddings",
              "max_drop", "relative", "min_cosine", "min_cosine_min", "rank_samples"),
}
_OPTIONAL = {"quantize": ("max_drop", "min_cosine", "min_cosine_min")}
_AMOUNT_RANGE = {"sparsity": (0.0, 1.0, False), "percentile": (0.0, 100.0, False), "threshold": (0.0, 1e9, False),
                 "std": (0.0, 100.0, False)}


@dataclass(frozen=True)
class Step:
    type: str
    params: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.type, **self.params}


@dataclass
class Recipe:
    steps: list[Step]
    seed: int = 0
    task: str = "classification"
    model: dict[str, Any] = field(default_factory=dict)     # factory, kwargs, weights | onnx | hf; tokenizer
    data: dict[str, Any] = field(default_factory=dict)      # finetune, calibration, evaluation, max_length
    target: dict[str, Any] = field(default_factory=dict)    # max_drop, relative, min_cosine, min_cosine_min
    evaluation: dict[str, Any] = field(default_factory=dict)  # threads, latency_runs, warmup, batch_sizes, ...
    robustness: dict[str, Any] = field(default_factory=dict)  # attack, epsilon, ... (empty: not measured)

    def to_dict(self) -> dict[str, Any]:
        doc = {"seed": self.seed, "task": self.task, "model": copy.deepcopy(self.model), "data": dict(self.data),
               "target": dict(self.target), "evaluation": copy.deepcopy(self.evaluation),
               "steps": [s.to_dict() for s in self.steps]}
        if self.robustness:
            doc["robustness"] = dict(self.robustness)
        return doc


def _check_value(where: str, key: str, value: Any, spec: tuple[type, Check, str]) -> Any:
    kind, ok, text = spec
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if kind is not bool and isinstance(value, bool) or not isinstance(value, kind) or not ok(value):
        raise InputError(f"{where}: {key} = {value!r} is out of range (must be {text})")
    return value


def parse_step(raw: Any, index: int) -> Step:
    if not isinstance(raw, dict):
        raise InputError(f"recipe step {index + 1} is not a table")
    kind = raw.get("type")
    if kind not in SCHEMAS:
        raise InputError(f"recipe step {index + 1}: unknown step {kind!r} (known: {', '.join(STEP_TYPES)})")
    where = f"recipe step {index + 1} ({kind})"
    schema = SCHEMAS[kind]
    unknown = sorted(set(raw) - set(schema) - {"type"})
    if unknown:
        raise InputError(f"{where}: unknown parameter(s) {', '.join(unknown)}")
    params: dict[str, Any] = {}
    optional = _OPTIONAL.get(kind, ())
    for key, (spec, default) in schema.items():
        if key in raw:
            params[key] = _check_value(where, key, raw[key], spec)
        elif default is None and key not in optional:
            raise InputError(f"{where}: missing required parameter {key!r}")
        elif default is not None:
            params[key] = copy.deepcopy(default)
    if kind == "quantize":
        used = QUANT_PARAMS[params["mode"]]
        stray = sorted(k for k in raw if k not in ("type", "mode") and k not in used)
        if stray:
            raise InputError(f"{where}: parameter(s) {', '.join(stray)} do not apply to mode {params['mode']!r} "
                             f"(it reads: {', '.join(used)})")
        params = {k: v for k, v in params.items() if k == "mode" or k in used}
        if params["mode"] in ("int4", "mixed") and params.get("method") == "gptq" and not params.get("symmetric"):
            raise InputError(f"{where}: method 'gptq' needs symmetric = true (onnxruntime's GPTQ packs no zero points)")
    if kind == "distill" and bool(params["student"]) == bool(params["layers"]):
        raise InputError(f"{where}: give either student = 'module:factory' or layers = N (a Transformers model keeps "
                         "N of its layers), not both or neither")
    if kind == "prune":
        lo, hi, _ = _AMOUNT_RANGE[params["method"]]
        if not lo <= params["amount"] <= hi or (params["method"] in ("sparsity", "percentile") and
                                                params["amount"] >= hi):
            raise InputError(f"{where}: amount = {params['amount']!r} is out of range for method "
                             f"{params['method']!r} (must be in [{lo:g}, {hi:g}))")
        if params["iterations"] > 1 and params["method"] == "threshold":
            pass  # a fixed threshold applied repeatedly after fine-tuning is meaningful
    return Step(kind, params)


def _order(steps: list[Step], onnx_input: bool) -> list[Step]:
    """Torch steps, then one export, then at most one quantize step; export is implicit."""
    if onnx_input:
        bad = [s.type for s in steps if s.type not in ONNX_STEPS]
        if bad:
            raise InputError(f"an ONNX input only allows quantize steps, not {', '.join(bad)}")
        if not steps:
            raise InputError("recipe has no steps")
    phase = 0
    for s in steps:
        p = 0 if s.type in TORCH_STEPS else 1 if s.type == "export" else 2
        if p < phase or (p == 1 and phase == 1):
            raise InputError(f"recipe step order: {s.type} cannot come after "
                             f"{'export' if phase == 1 else 'quantize'} (torch steps, then export, then quantize)")
        phase = max(phase, p)
    if sum(s.type == "quantize" for s in steps) > 1:
        raise InputError("recipe has more than one quantize step")
    if not onnx_input and not any(s.type == "export" for s in steps):
        at = next((i for i, s in enumerate(steps) if s.type == "quantize"), len(steps))
        steps = steps[:at] + [parse_step({"type": "export"}, at)] + steps[at:]
    return steps


MODEL_KEYS = ("factory", "kwargs", "weights", "onnx", "hf", "tokenizer", "pooling", "output")
DATA_KEYS = ("finetune", "calibration", "evaluation", "max_length")
PATH_KEYS = ("weights", "onnx", "hf", "tokenizer", "finetune", "calibration", "evaluation")
EVALUATION_DEFAULTS: dict[str, Any] = {"threads": 1, "latency_runs": 50, "warmup": 10, "batch_sizes": [1, 64]}
ROBUSTNESS_DEFAULTS: dict[str, Any] = {"attack": "fgsm", "epsilon": 0.1, "steps": 10, "step_size": 0.0,
                                       "samples": 0}


def _table(raw: dict[str, Any], key: str, known: tuple[str, ...]) -> dict[str, Any]:
    value = raw.get(key, {})
    if not isinstance(value, dict):
        raise InputError(f"recipe [{key}] must be a table")
    bad = sorted(set(value) - set(known))
    if bad:
        raise InputError(f"recipe [{key}]: unknown key(s) {', '.join(map(str, bad))} (known: {', '.join(known)})")
    return dict(value)


def _model(raw: dict[str, Any], task: str) -> dict[str, Any]:
    model = _table(raw, "model", MODEL_KEYS)
    for key in MODEL_KEYS:
        if key in model and key != "kwargs" and not isinstance(model[key], str):
            raise InputError(f"recipe [model]: {key} must be a string")
    sources = [k for k in ("factory", "onnx", "hf") if k in model]
    if len(sources) > 1:
        raise InputError(f"recipe [model]: give one of factory (+ weights), onnx or hf, not {' and '.join(sources)}")
    if "hf" in model and "tokenizer" not in model:
        model["tokenizer"] = model["hf"]
    if "pooling" in model and model["pooling"] not in ("mean", "cls"):
        raise InputError(f"recipe [model]: pooling = {model['pooling']!r} (must be mean or cls)")
    if "pooling" in model and task != "embedding":
        raise InputError("recipe [model]: pooling applies to task embedding only")
    if "hf" in model and task not in ("embedding", "sequence-classification", "classification"):
        raise InputError(f"a Hugging Face model (--hf) supports tasks embedding and sequence-classification, not {task}")
    return model


def _evaluation(raw: dict[str, Any]) -> dict[str, Any]:
    ev = {**EVALUATION_DEFAULTS, **_table(raw, "evaluation", (*EVALUATION_DEFAULTS, "sequence_length"))}
    where = "recipe [evaluation]"
    ev["threads"] = _check_value(where, "threads", ev["threads"], _int(1, 256))
    ev["latency_runs"] = _check_value(where, "latency_runs", ev["latency_runs"], _int(0, 100_000))
    ev["warmup"] = _check_value(where, "warmup", ev["warmup"], _int(0, 10_000))
    sizes = ev["batch_sizes"]
    if (not isinstance(sizes, list) or not sizes or len(sizes) > 8 or
            any(isinstance(b, bool) or not isinstance(b, int) or not 1 <= b <= 4096 for b in sizes)):
        raise InputError(f"{where}: batch_sizes = {sizes!r} (must be 1 to 8 integers in [1, 4096])")
    ev["batch_sizes"] = sorted(set(sizes))
    if "sequence_length" in ev:
        ev["sequence_length"] = _check_value(where, "sequence_length", ev["sequence_length"], _int(1, 65_536))
    return ev


def _robustness(raw: dict[str, Any]) -> dict[str, Any]:
    if "robustness" not in raw:
        return {}
    rob = {**ROBUSTNESS_DEFAULTS, **_table(raw, "robustness", (*ROBUSTNESS_DEFAULTS, "clip_min", "clip_max"))}
    where = "recipe [robustness]"
    rob["attack"] = _check_value(where, "attack", rob["attack"], _choice("fgsm", "pgd"))
    rob["epsilon"] = _check_value(where, "epsilon", rob["epsilon"], _num(0, 1e6, lo_open=True))
    rob["steps"] = _check_value(where, "steps", rob["steps"], _int(1, 1000))
    rob["step_size"] = _check_value(where, "step_size", rob["step_size"], _num(0, 1e6))
    rob["samples"] = _check_value(where, "samples", rob["samples"], _int(0, 1_000_000))
    for key in ("clip_min", "clip_max"):
        if key in rob:
            rob[key] = _check_value(where, key, rob[key], _num(-1e9, 1e9))
    if "clip_min" in rob and "clip_max" in rob and rob["clip_min"] >= rob["clip_max"]:
        raise InputError(f"{where}: clip_min must be below clip_max")
    return rob


def _target(raw: dict[str, Any], task: str) -> dict[str, Any]:
    from registry.compress import targets

    target = _table(raw, "target", targets.TARGET_KEYS)
    where = "recipe [target]"
    if "max_drop" in target:
        target["max_drop"] = _check_value(where, "max_drop", target["max_drop"], _num(0, 1e6))
    for key in ("min_cosine", "min_cosine_min"):
        if key in target:
            target[key] = _check_value(where, key, target[key], _num(-1, 1))
    target["relative"] = _check_value(where, "relative", target.get("relative", False), _BOOL)
    targets.validate(target, task)
    return target


def parse_recipe(raw: dict[str, Any], base_dir: Path | None = None) -> Recipe:
    """Validates a recipe document; relative paths are resolved against ``base_dir``."""
    known = {"seed", "task", "model", "data", "target", "evaluation", "robustness", "steps"}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise InputError(f"recipe: unknown key(s) {', '.join(unknown)}")
    seed = _check_value("recipe", "seed", raw.get("seed", 0), _int(0, 2**32 - 1))
    task = _check_value("recipe", "task", raw.get("task", "classification"), _choice(*TASKS))
    model = _model(raw, task)
    data = _table(raw, "data", DATA_KEYS)
    for key in ("finetune", "calibration", "evaluation"):
        if key in data and not isinstance(data[key], str):
            raise InputError(f"recipe [data]: {key} must be a path")
    if "max_length" in data:
        data["max_length"] = _check_value("recipe [data]", "max_length", data["max_length"], _int(2, 65_536))
    target = _target(raw, task)
    evaluation = _evaluation(raw)
    robustness = _robustness(raw)
    if base_dir is not None:
        for table in (model, data):
            for key in PATH_KEYS:
                if isinstance(table.get(key), str):
                    table[key] = str((base_dir / table[key]).resolve())
    raw_steps = raw.get("steps", [])
    if not isinstance(raw_steps, list):
        raise InputError("recipe: steps must be an array of tables ([[steps]])")
    steps = _order([parse_step(s, i) for i, s in enumerate(raw_steps)], onnx_input="onnx" in model)
    if any(s.type == "distill" and s.params.get("layers") for s in steps) and "hf" not in model:
        raise InputError("distill with layers = N needs a Transformers model (--hf DIR); give student = "
                         "'module:factory' for other models")
    return Recipe(steps=steps, seed=seed, task=task, model=model, data=data, target=target, evaluation=evaluation,
                  robustness=robustness)


def load_recipe(path: str | Path) -> Recipe:
    p = Path(path)
    from registry.fsutil import read_small_file

    try:  # a regular file of at most 1 MiB: a FIFO or /dev/zero is refused, not waited on
        raw = tomllib.loads(read_small_file(p, limit=1 << 20, what="recipe").decode("utf-8"))
    except (tomllib.TOMLDecodeError, ValueError, RecursionError) as exc:  # ValueError: bad UTF-8, huge integers
        raise InputError(f"recipe {p} is not valid TOML: {exc}") from exc
    return parse_recipe(raw, p.resolve().parent)
