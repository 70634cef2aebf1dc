"""Metrics for every variant, PyTorch or ONNX, measured the same way so they compare.

Each task has its own metrics, named for what they are:

* classification: ``accuracy`` (top-1, a fraction), macro ``precision_macro``/``recall_macro``/
  ``f1_macro``, and ``agreement`` (share of samples whose top-1 class equals the FP32 model's);
* regression: ``mse`` (mean squared error, in squared target units);
* embedding: cosine similarity of each sample's output to the FP32 baseline's output, as
  ``cosine_mean``, ``cosine_min``, ``cosine_p1``, ``cosine_p5`` over ``cosine_samples`` samples.

A graph whose output is per token (batch, sequence, hidden) is pooled for an embedding task the way
the recipe says (mean over the attention mask, or the first token). Latency is not measured here:
see latency.py, which interleaves every variant so load on a shared machine hits all alike.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from registry.compress.data import is_classification


@dataclass
class Metrics:
    size_bytes: int
    parameters: int
    nonzero: int | None
    accuracy: float | None = None
    precision_macro: float | None = None
    recall_macro: float | None = None
    f1_macro: float | None = None
    agreement: float | None = None
    mse: float | None = None
    cosine_mean: float | None = None
    cosine_min: float | None = None
    cosine_p1: float | None = None
    cosine_p5: float | None = None
    cosine_samples: int | None = None
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
    return {"accuracy": float(np.mean(pred == y)), "precision_macro": float(np.mean(precision)),
            "recall_macro": float(np.mean(recall)), "f1_macro": float(np.mean(f1))}


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per-sample cosine similarity between two output matrices (zero vectors count as equal)."""
    a64, b64 = a.astype(np.float64).reshape(len(a), -1), b.astype(np.float64).reshape(len(b), -1)
    num = np.sum(a64 * b64, axis=1)
    den = np.linalg.norm(a64, axis=1) * np.linalg.norm(b64, axis=1)
    return np.where(den > 0, num / np.where(den > 0, den, 1.0), 1.0)


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    """Mean per-sample cosine similarity."""
    return float(np.mean(cosines(a, b)))


def cosine_stats(a: np.ndarray, b: np.ndarray) -> dict[str, Any]:
    c = cosines(a, b)
    return {"cosine_mean": float(np.mean(c)), "cosine_min": float(np.min(c)),
            "cosine_p1": float(np.percentile(c, 1)), "cosine_p5": float(np.percentile(c, 5)),
            "cosine_samples": int(c.size)}


def quality(outputs: np.ndarray, y: np.ndarray | None, task: str, reference: np.ndarray | None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if is_classification(task):
        if y is not None:
            out.update(classification(outputs, y, outputs.shape[1]))
        if reference is not None:
            out["agreement"] = float(np.mean(outputs.argmax(1) == reference.argmax(1)))
    elif task == "regression":
        if y is not None:
            out["mse"] = float(np.mean((outputs.astype(np.float64) - y.reshape(outputs.shape)) ** 2))
    elif reference is not None:
        out.update(cosine_stats(outputs, reference))
    return out


def session(onnx_bytes: bytes, threads: int) -> Any:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    return ort.InferenceSession(onnx_bytes, opts, providers=["CPUExecutionProvider"])


def pool(out: np.ndarray, feeds: dict[str, np.ndarray], pooling: str | None) -> np.ndarray:
    """(batch, sequence, hidden) -> (batch, hidden): mean over attended tokens, or the first token."""
    if out.ndim != 3 or pooling is None:
        return out
    if pooling == "cls":
        return out[:, 0]
    mask = feeds.get("attention_mask")
    if mask is None or mask.shape[:2] != out.shape[:2]:
        return out.mean(1)
    m = mask[..., None].astype(out.dtype)
    return (out * m).sum(1) / np.maximum(m.sum(1), 1e-9)


def _right_padded(mask: np.ndarray) -> bool:
    return mask.ndim == 2 and bool(np.all(np.diff(mask.astype(np.int8), axis=1) <= 0))


def onnx_outputs(onnx_bytes: bytes | Any, feeds: dict[str, np.ndarray] | np.ndarray, threads: int = 1,
                 batch: int = 64, pooling: str | None = None, sess: Any = None,
                 output: str | None = None) -> np.ndarray:
    """The first output over all rows, in batches (pooled when asked and per-token).

    Token inputs with a right-padded ``attention_mask`` are run in batches of similar length, each
    cut to its longest row: padding a masked model ignores is not computed (a split padded to its
    longest sentence would otherwise cost several times more). Rows come back in their order."""
    sess = sess or session(onnx_bytes, threads)
    if not isinstance(feeds, dict):
        feeds = {sess.get_inputs()[0].name: feeds}
    names = [i.name for i in sess.get_inputs()]
    fetch = [output] if output else None
    n = int(next(iter(feeds.values())).shape[0])
    mask = feeds.get("attention_mask")
    if mask is not None and _right_padded(mask) and mask.shape[0] == n:
        lengths = mask.sum(1)
        order = np.argsort(lengths, kind="stable")
        seq = [k for k in names if feeds[k].ndim >= 2 and feeds[k].shape[:2] == mask.shape]
        parts, rows = [], []
        for i in range(0, n, batch):
            idx = order[i:i + batch]
            cut = max(1, int(lengths[idx].max()))
            part = {k: np.ascontiguousarray(feeds[k][idx][:, :cut] if k in seq else feeds[k][idx]) for k in names}
            out = pool(np.asarray(sess.run(fetch, part)[0]), part, pooling)
            if out.ndim != 2:
                break  # per-token outputs of different lengths do not stack: run unsorted below
            parts.append(out.astype(np.float32))
            rows.append(idx)
        else:
            result = np.empty((n, parts[0].shape[1]), np.float32)
            result[np.concatenate(rows)] = np.concatenate(parts)
            return result
    parts = []
    for i in range(0, n, batch):
        part = {k: feeds[k][i:i + batch] for k in names}
        parts.append(pool(np.asarray(sess.run(fetch, part)[0]), part, pooling).astype(np.float32))
    return np.concatenate(parts)


# Inputs of these ops from this position on are scales and zero points, not weights.
_QUANT_PARAMS_FROM = {"DequantizeLinear": 1, "QuantizeLinear": 1, "MatMulNBits": 2, "GatherBlockQuantized": 2,
                      "MatMulInteger": 2, "DynamicQuantizeMatMul": 2, "MatMulIntegerToFloat": 2,
                      "QLinearMatMul": 1, "QLinearConv": 1, "ConvInteger": 2}
_QUANTIZED_TYPES = (2, 3, 21, 22)  # UINT8, INT8, UINT4, INT4 initializers hold quantized weights


def onnx_counts(onnx_bytes: bytes | Any) -> tuple[int, int | None]:
    """(parameters, non-zero parameters) over weight initializers, not counting scales/zero points.

    A MatMulNBits weight counts its K x N elements, not its packed bytes. Non-zero is None for a
    quantized model: a stored integer 0 is not a zero weight (the zero point is), so a count of
    non-zero codes would mean nothing."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load_from_string(onnx_bytes) if isinstance(onnx_bytes, bytes) else onnx_bytes
    graph = model.graph
    params: set[str] = set()
    elements: dict[str, int] = {}
    for node in graph.node:
        start = _QUANT_PARAMS_FROM.get(node.op_type)
        if start is not None:
            params.update(node.input[start:])
        if node.op_type == "MatMulNBits" and len(node.input) > 1:
            attrs = {a.name: a.i for a in node.attribute}
            elements[node.input[1]] = int(attrs.get("K", 0)) * int(attrs.get("N", 0))
    total = nonzero = 0
    quantized = bool(elements)
    for init in graph.initializer:
        if init.name in params or len(init.dims) == 0 or init.name.endswith(("_scale", "_zero_point")):
            continue
        if init.name in elements:
            total += elements[init.name]
            continue
        if init.data_type in _QUANTIZED_TYPES:
            quantized = True
        arr = numpy_helper.to_array(init)
        total += int(arr.size)
        nonzero += int(np.count_nonzero(arr))
    return total, None if quantized else nonzero


def evaluate_onnx(onnx_bytes: bytes, feeds: dict[str, np.ndarray], y: np.ndarray | None, task: str,
                  reference: np.ndarray | None, threads: int = 1, pooling: str | None = None,
                  batch: int = 64, output: str | None = None) -> tuple[Metrics, np.ndarray]:
    outputs = onnx_outputs(onnx_bytes, feeds, threads, batch=batch, pooling=pooling, output=output)
    params, nonzero = onnx_counts(onnx_bytes)
    m = Metrics(size_bytes=len(onnx_bytes), parameters=params, nonzero=nonzero,
                **quality(outputs, y, task, reference))
    return m, outputs


def evaluate_torch(model: Any, feeds: dict[str, np.ndarray], y: np.ndarray | None, task: str,
                   reference: np.ndarray | None, opset: int) -> tuple[Metrics, np.ndarray]:
    """Size is that of the model's ONNX export, so PyTorch and ONNX steps share one size axis."""
    from registry.compress.export import export_onnx
    from registry.compress.models import count_parameters
    from registry.compress.train import predict

    outputs = predict(model, feeds).numpy()
    params, nonzero = count_parameters(model)
    size = len(export_onnx(model, feeds, opset))
    return Metrics(size_bytes=size, parameters=params, nonzero=nonzero,
                   **quality(outputs, y, task, reference)), outputs
