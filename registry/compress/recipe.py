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


_BOOL = (bool, lambda v: True, "true or false")
_FACTORY = (str, lambda v: ":" in v, "'package.module:factory'")
_KWARGS = (dict, lambda v: True, "a table")
_TRAIN = {"epochs": (_int(0, 10_000), 5), "lr": (_num(0, 10, lo_open=True), 1e-3),
          "batch_size": (_int(1, 1 << 16), 64), "weight_decay": (_num(0, 1), 0.0)}

SCHEMAS: dict[str, dict[str, tuple[tuple[type, Check, str], Any]]] = {
    "prune": {"method": (_choice("sparsity", "threshold", "percentile", "std"), "sparsity"),
              "scope": (_choice("global", "layer"), "global"),
              "amount": (_num(0, 1e9), None),
              "iterations": (_int(1, 100), 1), "schedule": (_choice("cubic", "linear"), "cubic"), **_TRAIN},
    "structured_prune": {"ratio": (_num(0, 1, hi_open=True), None), "iterations": (_int(1, 100), 1),
                         "criterion": (_choice("l1", "l2"), "l1"), **_TRAIN},
    "distill": {"student": (_FACTORY, None), "student_kwargs": (_KWARGS, {}),
                "temperature": (_num(0, 100, lo_open=True), 4.0), "alpha": (_num(0, 1), 0.7),
                "val_fraction": (_num(0, 0.9, lo_open=True), 0.15), "patience": (_int(1, 1000), 5), **_TRAIN},
    "finetune": dict(_TRAIN),
    "export": {"opset": (_int(13, 21), 17), "atol": (_num(0, 1), 1e-4)},
    "quantize": {"mode": (_choice("dynamic", "static", "fp16", "mixed"), "static"),
                 "calibration": (_choice("minmax", "entropy", "percentile"), "minmax"),
                 "per_channel": (_BOOL, True), "max_drop": (_num(0, 100), 1.0), "relative": (_BOOL, False)},
}
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
    model: dict[str, Any] = field(default_factory=dict)     # factory, kwargs, weights | onnx
    data: dict[str, str] = field(default_factory=dict)      # finetune, calibration, evaluation
    target: dict[str, Any] = field(default_factory=dict)    # max_drop, relative
    evaluation: dict[str, Any] = field(default_factory=dict)  # threads, latency_runs, warmup

    def to_dict(self) -> dict[str, Any]:
        return {"seed": self.seed, "task": self.task, "model": copy.deepcopy(self.model), "data": dict(self.data),
                "target": dict(self.target), "evaluation": dict(self.evaluation),
                "steps": [s.to_dict() for s in self.steps]}


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
    for key, (spec, default) in schema.items():
        if key in raw:
            params[key] = _check_value(where, key, raw[key], spec)
        elif default is None:
            raise InputError(f"{where}: missing required parameter {key!r}")
        else:
            params[key] = copy.deepcopy(default)
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


def parse_recipe(raw: dict[str, Any], base_dir: Path | None = None) -> Recipe:
    """Validates a recipe document; relative paths are resolved against ``base_dir``."""
    known = {"seed", "task", "model", "data", "target", "evaluation", "steps"}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise InputError(f"recipe: unknown key(s) {', '.join(unknown)}")
    seed = _check_value("recipe", "seed", raw.get("seed", 0), _int(0, 2**32 - 1))
    task = _check_value("recipe", "task", raw.get("task", "classification"), _choice(*TASKS))
    model = dict(raw.get("model", {}))
    bad = sorted(set(model) - {"factory", "kwargs", "weights", "onnx"})
    if bad:
        raise InputError(f"recipe [model]: unknown key(s) {', '.join(bad)}")
    data = dict(raw.get("data", {}))
    bad = sorted(set(data) - {"finetune", "calibration", "evaluation"})
    if bad:
        raise InputError(f"recipe [data]: unknown key(s) {', '.join(bad)}")
    target = dict(raw.get("target", {}))
    bad = sorted(set(target) - {"max_drop", "relative"})
    if bad:
        raise InputError(f"recipe [target]: unknown key(s) {', '.join(bad)}")
    if "max_drop" in target:
        target["max_drop"] = _check_value("recipe [target]", "max_drop", target["max_drop"], _num(0, 100))
    target.setdefault("relative", False)
    evaluation = {"threads": 1, "latency_runs": 50, "warmup": 10, **dict(raw.get("evaluation", {}))}
    bad = sorted(set(evaluation) - {"threads", "latency_runs", "warmup"})
    if bad:
        raise InputError(f"recipe [evaluation]: unknown key(s) {', '.join(bad)}")
    evaluation["threads"] = _check_value("recipe [evaluation]", "threads", evaluation["threads"], _int(1, 256))
    evaluation["latency_runs"] = _check_value("recipe [evaluation]", "latency_runs", evaluation["latency_runs"],
                                              _int(0, 100_000))
    evaluation["warmup"] = _check_value("recipe [evaluation]", "warmup", evaluation["warmup"], _int(0, 10_000))
    if base_dir is not None:
        for table in (model, data):
            for key in ("weights", "onnx", "finetune", "calibration", "evaluation"):
                if isinstance(table.get(key), str):
                    table[key] = str((base_dir / table[key]).resolve())
    raw_steps = raw.get("steps", [])
    if not isinstance(raw_steps, list):
        raise InputError("recipe: steps must be an array of tables ([[steps]])")
    steps = _order([parse_step(s, i) for i, s in enumerate(raw_steps)], onnx_input="onnx" in model)
    return Recipe(steps=steps, seed=seed, task=task, model=model, data=data, target=target, evaluation=evaluation)


def load_recipe(path: str | Path) -> Recipe:
    p = Path(path)
    from registry.fsutil import read_small_file

    try:  # a regular file of at most 1 MiB: a FIFO or /dev/zero is refused, not waited on
        raw = tomllib.loads(read_small_file(p, limit=1 << 20, what="recipe").decode("utf-8"))
    except (tomllib.TOMLDecodeError, ValueError, RecursionError) as exc:  # ValueError: bad UTF-8, huge integers
        raise InputError(f"recipe {p} is not valid TOML: {exc}") from exc
    return parse_recipe(raw, p.resolve().parent)
