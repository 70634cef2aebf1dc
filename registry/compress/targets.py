"""What each task's quality metric is called, its unit, and whether a variant meets the recipe's target.

A target is met only when one is set and every check in it passes: ``met`` is ``None`` (not
``True``) when the recipe sets none, and the report says "no target set". Targets by task:

* classification: ``max_drop``, the accuracy lost vs the FP32 ONNX baseline, in percentage points
  (or, with ``relative``, in percent of the baseline accuracy);
* regression: ``max_drop``, the increase of the MSE in percent of the baseline MSE;
* embedding: ``min_cosine`` (mean cosine similarity to the FP32 outputs) and ``min_cosine_min``
  (the worst sample's).
"""

from __future__ import annotations

from typing import Any

from registry.compress.data import is_classification
from registry.errors import InputError

# metric key -> (label, unit shown after the value)
LABELS: dict[str, tuple[str, str]] = {
    "accuracy": ("top-1 accuracy", "%"),
    "f1_macro": ("macro F1", "%"),
    "agreement": ("top-1 agreement with FP32", "%"),
    "mse": ("mean squared error", "target units²"),
    "cosine_mean": ("mean cosine similarity to FP32", ""),
    "cosine_min": ("min cosine similarity to FP32", ""),
    "cosine_p1": ("1st-percentile cosine similarity to FP32", ""),
    "cosine_p5": ("5th-percentile cosine similarity to FP32", ""),
}
TARGET_KEYS = ("max_drop", "relative", "min_cosine", "min_cosine_min")


def primary(task: str) -> str:
    """The metric a task is judged by (what plots and the variant choice use)."""
    if is_classification(task):
        return "accuracy"
    return "mse" if task == "regression" else "cosine_mean"


def drop_unit(task: str, relative: bool) -> str:
    if is_classification(task):
        return "% of baseline" if relative else "pp"
    return "% MSE increase" if task == "regression" else "cosine"


def drop(base: dict[str, Any], now: dict[str, Any], task: str, relative: bool = False) -> float | None:
    """Quality lost vs the baseline, in the unit ``drop_unit`` names (None when not measurable)."""
    key = primary(task)
    if key not in base or key not in now:
        return None
    b, n = float(base[key]), float(now[key])
    if is_classification(task):
        if relative:
            return (b - n) / b * 100.0 if b else 0.0
        return (b - n) * 100.0
    if task == "regression":
        return (n - b) / b * 100.0 if b else (0.0 if n == b else float("inf"))
    return b - n


def validate(target: dict[str, Any], task: str) -> None:
    """Refuses target keys that mean nothing for the task (a cosine bound on a classifier, say)."""
    if task == "embedding" and "max_drop" in target:
        raise InputError("task embedding is judged by cosine similarity to FP32: use --min-cosine / "
                         "--min-cosine-min ([target] min_cosine, min_cosine_min), not max_drop")
    if task != "embedding" and ("min_cosine" in target or "min_cosine_min" in target):
        raise InputError(f"min_cosine / min_cosine_min apply to task embedding, not {task}; use max_drop")


def is_set(target: dict[str, Any]) -> bool:
    return any(k in target for k in ("max_drop", "min_cosine", "min_cosine_min"))


def checks(target: dict[str, Any], base: dict[str, Any], now: dict[str, Any], task: str) -> list[dict[str, Any]]:
    """Each bound the target sets, with the measured value and whether it holds."""
    out: list[dict[str, Any]] = []
    relative = bool(target.get("relative"))
    if "max_drop" in target:
        value = drop(base, now, task, relative)
        out.append({"name": "drop", "unit": drop_unit(task, relative), "limit": float(target["max_drop"]),
                    "value": value, "met": value is not None and value <= float(target["max_drop"]) + 1e-12})
    for key, metric in (("min_cosine", "cosine_mean"), ("min_cosine_min", "cosine_min")):
        if key in target:
            value = now.get(metric)
            out.append({"name": metric, "unit": "", "limit": float(target[key]), "value": value,
                        "met": value is not None and value >= float(target[key])})
    return out


def evaluate(target: dict[str, Any], base: dict[str, Any], now: dict[str, Any], task: str) -> dict[str, Any]:
    """``{"set", "met", "checks", ...}``: met is None when no target is set."""
    result: dict[str, Any] = {k: v for k, v in target.items() if k in TARGET_KEYS}
    result["set"] = is_set(target)
    result["checks"] = checks(target, base, now, task)
    result["met"] = all(c["met"] for c in result["checks"]) if result["set"] else None
    return result


def score(base: dict[str, Any], now: dict[str, Any], task: str) -> float:
    """Higher is better, comparable across variants of one run (ranks variants that all miss)."""
    key = primary(task)
    value = now.get(key)
    if value is None:
        return float("-inf")
    if task == "regression":
        return -float(value)
    if task == "embedding":
        return float(value) + float(now.get("cosine_min", value))
    return float(value)
