"""Metrics for every variant, PyTorch or ONNX, measured the same way so they compare.

Accuracy-style metrics come from the evaluation split; cosine similarity is always against the
reference (FP32 base) outputs, which is the meaningful number for embedding models. Latency is
onnxruntime with a fixed thread count (recorded), after warm-up, at batch 1 and batch 64.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

LATENCY_BATCHES = (1, 64)


@dataclass
class Metrics:
    size_bytes: int
    parameters: int
    nonzero: int
    accuracy: float | None = None
    precision: float | None = None
    recall: float | None = None
    f1: float | None = None
    mse: float | None = None
    cosine: float | None = None
    latency: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None and v != {}}


def classification(logits: np.ndarray, y: np.ndarray, classes: int) -> dict[str, float]:
    """Top-1 accuracy and macro precision/recall/F1 (a class never predicted has precision 0)."""
    pred = logits.argmax(1)
    precision, recall, f1 = [], [], []
    for c in range(classes):
        tp = float(np.sum((pred == c) & (y == c)))
        fp = float(np.sum((pred == c) & (y != c)))
        fn = float(np.sum((pred != c) & (y == c)))
        if tp + fn == 0 and tp + fp == 0:
            continue  # class absent from both labels and predictions: no information
        p = tp / (tp + fp) if tp + fp else 0.0
        r = tp / (tp + fn) if tp + fn else 0.0
        precision.append(p)
        recall.append(r)
        f1.append(2 * p * r / (p + r) if p + r else 0.0)
    return {"accuracy": float(np.mean(pred == y)), "precision": float(np.mean(precision)),
            "recall": float(np.mean(recall)), "f1": float(np.mean(f1))}


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    """Mean per-sample cosine similarity between two output matrices."""
    a64, b64 = a.astype(np.float64).reshape(len(a), -1), b.astype(np.float64).reshape(len(b), -1)
    num = np.sum(a64 * b64, axis=1)
    den = np.linalg.norm(a64, axis=1) * np.linalg.norm(b64, axis=1)
    return float(np.mean(np.where(den > 0, num / np.where(den > 0, den, 1.0), 1.0)))


def quality(outputs: np.ndarray, y: np.ndarray, task: str, reference: np.ndarray | None) -> dict[str, float]:
    out: dict[str, float] = {}
    if task == "classification":
        out.update(classification(outputs, y, outputs.shape[1]))
    elif task == "regression":
        out["mse"] = float(np.mean((outputs.astype(np.float64) - y.reshape(outputs.shape)) ** 2))
    if reference is not None:
        out["cosine"] = cosine(outputs, reference)
    return out


def session(onnx_bytes: bytes, threads: int) -> Any:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    return ort.InferenceSession(onnx_bytes, opts, providers=["CPUExecutionProvider"])


def onnx_outputs(onnx_bytes: bytes, x: np.ndarray, threads: int = 1, batch: int = 512) -> np.ndarray:
    sess = session(onnx_bytes, threads)
    name = sess.get_inputs()[0].name
    parts = [sess.run(None, {name: x[i:i + batch]})[0] for i in range(0, x.shape[0], batch)]
    return np.concatenate(parts).astype(np.float32)


def onnx_counts(onnx_bytes: bytes) -> tuple[int, int]:
    """(parameters, non-zero) over initializers, not counting quantization scales/zero points."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load_from_string(onnx_bytes)
    total = nonzero = 0
    for init in model.graph.initializer:
        if init.name.endswith(("_scale", "_zero_point")) or len(init.dims) == 0:
            continue
        arr = numpy_helper.to_array(init)
        total += int(arr.size)
        nonzero += int(np.count_nonzero(arr))
    return total, nonzero


def latency(onnx_bytes: bytes, x: np.ndarray, threads: int, warmup: int, runs: int,
            batches: tuple[int, ...] = LATENCY_BATCHES) -> dict[str, Any]:
    """p50/p95 in milliseconds per batch size; inputs tiled if the data has fewer rows."""
    sess = session(onnx_bytes, threads)
    name = sess.get_inputs()[0].name
    result: dict[str, Any] = {"threads": threads, "warmup": warmup, "runs": runs}
    for b in batches:
        reps = -(-b // x.shape[0])
        feed = {name: np.ascontiguousarray(np.concatenate([x] * reps)[:b])}
        for _ in range(warmup):
            sess.run(None, feed)
        times = []
        for _ in range(runs):
            t0 = time.perf_counter()
            sess.run(None, feed)
            times.append((time.perf_counter() - t0) * 1000.0)
        result[f"batch{b}"] = {"p50_ms": float(np.percentile(times, 50)), "p95_ms": float(np.percentile(times, 95))}
    return result


def evaluate_onnx(onnx_bytes: bytes, x: np.ndarray, y: np.ndarray, task: str, reference: np.ndarray | None,
                  threads: int = 1, latency_runs: int = 0, warmup: int = 10) -> tuple[Metrics, np.ndarray]:
    outputs = onnx_outputs(onnx_bytes, x, threads)
    params, nonzero = onnx_counts(onnx_bytes)
    m = Metrics(size_bytes=len(onnx_bytes), parameters=params, nonzero=nonzero,
                **quality(outputs, y, task, reference))
    if latency_runs > 0:
        m.latency = latency(onnx_bytes, x, threads, warmup, latency_runs)
    return m, outputs


def evaluate_torch(model: Any, x: np.ndarray, y: np.ndarray, task: str, reference: np.ndarray | None,
                   opset: int) -> tuple[Metrics, np.ndarray]:
    """Size is that of the model's ONNX export, so PyTorch and ONNX steps share one size axis."""
    import torch

    from registry.compress.export import export_onnx
    from registry.compress.models import count_parameters
    from registry.compress.train import predict

    outputs = predict(model, torch.from_numpy(np.ascontiguousarray(x))).numpy()
    params, nonzero = count_parameters(model)
    size = len(export_onnx(model, x, opset))
    return Metrics(size_bytes=size, parameters=params, nonzero=nonzero,
                   **quality(outputs, y, task, reference)), outputs
