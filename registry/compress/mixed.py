"""Mixed precision: quantize everything, keep the nodes that hurt most at higher precision.

Two phases, both on the calibration split only (the evaluation split is never seen, so the figure
reported afterwards is not tuned on itself):

1. **Rank by measured sensitivity, in one session.** The FP32 graph is rewritten so each candidate
   node's weight is an overridable initializer and its activation input passes through a switchable
   ``DynamicQuantizeLinear -> DequantizeLinear`` (off: ``x + 0 * (q(x) - x)``). Turning one node on
   (its weight fed quantized-dequantized, its switch fed 1) measures the output error that node alone
   causes. One session and N+1 runs, instead of N quantizer passes over the whole model: this is what
   makes a 22 M-parameter transformer take seconds rather than minutes.
2. **Search with the real quantizer.** The most sensitive k nodes fall back (to FP32, or to block-wise
   weight-only INT8 for MatMuls, which keeps the size); k is found by galloping (0, 1, 2, 4, ...) and
   bisection, each candidate built by onnxruntime's own quantizer and checked against the target on
   the calibration split.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import onnx
from onnx import helper, numpy_helper

from registry.compress import quantize as Q
from registry.errors import CompressionError

Feeds = dict[str, np.ndarray]
BASES = ("dynamic", "static", "int4")
FALLBACKS = ("fp32", "int8-block")


@dataclass(frozen=True)
class Scheme:
    """What the base quantization does to a weight (for the sensitivity simulation and the real build)."""

    base: str = "dynamic"
    per_channel: bool = True
    calibration: str = "minmax"
    block_size: int = 32
    symmetric: bool = True
    embeddings: bool = True
    int4_method: str = "rtn"
    fallback: str = "int8-block"


@dataclass
class MixedResult:
    model: bytes
    fallback_nodes: list[str]
    sensitivity: dict[str, float]
    met: bool
    trials: list[dict[str, Any]] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)
    candidates: int = 0


# ---- fake quantization (numpy), mirroring what the real quantizers do to a weight ----------------

def _fq_int8(w: np.ndarray, axis: int | None) -> np.ndarray:
    """Symmetric INT8, per tensor or per channel along ``axis``."""
    if axis is None:
        scale = max(float(np.max(np.abs(w))), 1e-12) / 127.0
        return (np.clip(np.round(w / scale), -127, 127) * scale).astype(w.dtype)
    amax = np.max(np.abs(w), axis=tuple(i for i in range(w.ndim) if i != axis), keepdims=True)
    scale = np.maximum(amax, 1e-12) / 127.0
    return (np.clip(np.round(w / scale), -127, 127) * scale).astype(w.dtype)


def _fq_block(w: np.ndarray, axis: int, block: int, bits: int, symmetric: bool) -> np.ndarray:
    """Block-wise ``bits``-bit along ``axis`` (blocks of ``block`` consecutive values), like MatMulNBits."""
    moved = np.moveaxis(w, axis, -1)
    k = moved.shape[-1]
    pad = (-k) % block
    padded = np.pad(moved, [(0, 0)] * (moved.ndim - 1) + [(0, pad)])
    blocks = padded.reshape(*padded.shape[:-1], -1, block).astype(np.float64)
    if symmetric:
        qmax = 2 ** (bits - 1) - 1
        scale = np.maximum(np.max(np.abs(blocks), axis=-1, keepdims=True), 1e-12) / qmax
        deq = np.clip(np.round(blocks / scale), -qmax - 1, qmax) * scale
    else:
        qmax = 2 ** bits - 1
        lo = np.minimum(np.min(blocks, axis=-1, keepdims=True), 0.0)
        hi = np.maximum(np.max(blocks, axis=-1, keepdims=True), 0.0)
        scale = np.maximum(hi - lo, 1e-12) / qmax
        zp = np.clip(np.round(-lo / scale), 0, qmax)
        deq = (np.clip(np.round(blocks / scale) + zp, 0, qmax) - zp) * scale
    out = deq.reshape(*padded.shape)[..., :k]
    return np.moveaxis(out, -1, axis).astype(w.dtype)


@dataclass(frozen=True)
class _Candidate:
    node: str
    op: str
    weight: str
    activation: str | None
    out_axis: int | None   # per-channel axis of the weight
    in_axis: int           # reduction (input) axis, along which weight-only blocks run


def _candidates(model: Any, scheme: Scheme) -> list[_Candidate]:
    weights = {t.name: t for t in model.graph.initializer}
    ops = ("MatMul", "Gather") if scheme.base == "int4" else ("MatMul", "Gemm", "Conv", "Gather")
    names = set(Q.quantizable_nodes(model, ops))
    found = []
    for node in model.graph.node:
        if node.name not in names:
            continue
        if node.op_type == "Gather":
            if scheme.base == "int4" and not scheme.embeddings:
                continue
            if weights[node.input[0]].data_type != onnx.TensorProto.FLOAT:
                continue
            found.append(_Candidate(node.name, "Gather", node.input[0], None, None, 1))
            continue
        w = weights[node.input[1]]
        if w.data_type != onnx.TensorProto.FLOAT or len(w.dims) < 2:
            continue
        if node.op_type == "MatMul":
            out_axis, in_axis = len(w.dims) - 1, len(w.dims) - 2
        elif node.op_type == "Gemm":
            trans_b = next((a.i for a in node.attribute if a.name == "transB"), 0)
            out_axis, in_axis = (0, 1) if trans_b else (1, 0)
        else:  # Conv: (out, in, kh, kw)
            out_axis, in_axis = 0, 1
        act = None if scheme.base == "int4" else node.input[0]
        found.append(_Candidate(node.name, node.op_type, node.input[1], act, out_axis, in_axis))
    return found


def _fake(c: _Candidate, w: np.ndarray, scheme: Scheme) -> np.ndarray:
    if scheme.base == "int4":
        return _fq_block(w, c.in_axis, scheme.block_size, 4, scheme.symmetric)
    if c.op == "Gather":
        return _fq_int8(w, None)
    return _fq_int8(w, c.out_axis if scheme.per_channel else None)


def _probe_graph(data: bytes, cands: list[_Candidate]) -> tuple[bytes, dict[str, np.ndarray]]:
    """The FP32 graph with every candidate's weight overridable and a quantization switch on its input."""
    model = onnx.load_from_string(data)
    graph = model.graph
    weights = {t.name: t for t in graph.initializer}
    original: dict[str, np.ndarray] = {}
    inputs = {i.name for i in graph.input}
    for c in cands:
        if c.weight not in original:
            original[c.weight] = numpy_helper.to_array(weights[c.weight])
        if c.weight not in inputs:
            t = weights[c.weight]
            graph.input.append(helper.make_tensor_value_info(c.weight, t.data_type, list(t.dims)))
            inputs.add(c.weight)
    by_name = {c.node: c for c in cands if c.activation is not None}
    nodes = []
    for i, node in enumerate(graph.node):
        c = by_name.get(node.name)
        if c is not None:
            x, p = node.input[0], f"__mix{i}"
            graph.initializer.append(numpy_helper.from_array(np.array(0.0, np.float32), p + "_on"))
            graph.input.append(helper.make_tensor_value_info(p + "_on", onnx.TensorProto.FLOAT, []))
            nodes += [helper.make_node("DynamicQuantizeLinear", [x], [p + "_q", p + "_s", p + "_z"]),
                      helper.make_node("DequantizeLinear", [p + "_q", p + "_s", p + "_z"], [p + "_dq"]),
                      helper.make_node("Sub", [p + "_dq", x], [p + "_d"]),
                      helper.make_node("Mul", [p + "_d", p + "_on"], [p + "_md"]),
                      helper.make_node("Add", [x, p + "_md"], [p + "_x"])]
            node.input[0] = p + "_x"
            by_name[node.name] = _Candidate(c.node, c.op, c.weight, p + "_on", c.out_axis, c.in_axis)
        nodes.append(node)
    del graph.node[:]
    graph.node.extend(nodes)
    switched = [by_name.get(c.node, c) for c in cands]
    cands[:] = switched
    return model.SerializeToString(), original


def _relative_error(out: np.ndarray, ref: np.ndarray) -> float:
    den = float(np.sum(ref.astype(np.float64) ** 2)) or 1.0
    return float(np.sum((out.astype(np.float64) - ref) ** 2)) / den


def sensitivity(data: bytes, calibration: Feeds, scheme: Scheme, pooling: str | None = None, threads: int = 1,
                rows: int = 32, progress: Callable[[int], None] | None = None) -> tuple[dict[str, float], list[str]]:
    """Output error (relative squared error vs FP32, on up to ``rows`` calibration samples) caused by
    quantizing each candidate node alone. Returns (node -> error, candidates in graph order)."""
    from registry.compress.evaluate import onnx_outputs, session

    cands = _candidates(onnx.load_from_string(data), scheme)
    if not cands:
        raise CompressionError("mixed precision found no quantizable node with a constant FP32 weight")
    probe, original = _probe_graph(data, cands)
    with Q.guard("mixed precision sensitivity probe"):
        sess = session(probe, threads)
    feeds = {k: v[:rows] for k, v in calibration.items()}
    ref = onnx_outputs(None, feeds, sess=sess, pooling=pooling).astype(np.float64)
    result: dict[str, float] = {}
    done_weights: dict[str, float] = {}
    for c in cands:
        extra: dict[str, np.ndarray] = {}
        if c.weight in done_weights and c.activation is None:
            result[c.node] = done_weights[c.weight]
            continue
        extra[c.weight] = _fake(c, original[c.weight], scheme)
        if c.activation is not None and c.activation.startswith("__mix"):
            extra[c.activation] = np.array(1.0, np.float32)
        out = onnx_outputs(None, {**feeds, **extra}, sess=_Fixed(sess, extra), pooling=pooling)
        result[c.node] = _relative_error(out, ref)
        done_weights[c.weight] = result[c.node]
        if progress is not None:
            progress(1)
    return result, [c.node for c in cands]


class _Fixed:
    """A session view that always adds the same overridable-initializer feeds (batched by rows)."""

    def __init__(self, sess: Any, fixed: dict[str, np.ndarray]) -> None:
        self._sess, self._fixed = sess, fixed

    def get_inputs(self) -> list[Any]:
        return self._sess.get_inputs()  # overridable initializers are not listed here

    def run(self, names: Any, feed: dict[str, np.ndarray]) -> Any:
        return self._sess.run(names, {**feed, **self._fixed})


def build(data: bytes, scheme: Scheme, fallback: list[str], calibration: Feeds, prepared: bytes | None) -> bytes:
    """The real model: base quantization with ``fallback`` nodes kept out, then (int8-block) those
    MatMuls quantized weight-only, block-wise to INT8 (same size class, activations stay FP32)."""
    keep = tuple(fallback)
    if scheme.base == "dynamic":
        model = Q.dynamic_int8(data, scheme.per_channel, exclude=keep)
    elif scheme.base == "static":
        model = Q.static_int8(prepared or data, calibration, scheme.calibration, scheme.per_channel, exclude=keep,
                              prepared=prepared is not None)
    else:
        model = Q.weight_only(data, bits=4, block_size=scheme.block_size, symmetric=scheme.symmetric,
                              method=scheme.int4_method, embeddings=scheme.embeddings, exclude=keep,
                              calibration=calibration)
    if scheme.fallback == "int8-block" and keep:
        matmuls = set(Q.quantizable_nodes(model, ("MatMul",)))
        chosen = tuple(n for n in keep if n in matmuls)
        if chosen:
            model = Q.weight_only(model, bits=8, block_size=scheme.block_size, symmetric=True, embeddings=False,
                                  only=chosen)
    return model


def mixed_precision(data: bytes, calibration: Feeds, check: Callable[[bytes], tuple[bool, float, dict[str, Any]]],
                    scheme: Scheme, pooling: str | None = None, threads: int = 1, rank_rows: int = 32,
                    progress: Callable[[int], None] | None = None) -> MixedResult:
    """Smallest fallback set (most sensitive first) whose model passes ``check`` on the calibration
    split. ``check(model) -> (ok, score, metrics)``; a higher score is better. ``met`` is False when
    even the full fallback misses; the best-scoring candidate is returned then."""
    t0 = time.perf_counter()
    prepared = Q.preprocess(data) if scheme.base == "static" else None
    source = prepared or data
    sens, order_graph = sensitivity(source, calibration, scheme, pooling, threads, rank_rows, progress)
    t1 = time.perf_counter()
    order = sorted(order_graph, key=lambda n: (-sens[n], order_graph.index(n)))
    trials: list[dict[str, Any]] = []
    cache: dict[int, tuple[bool, float, bytes]] = {}

    def attempt(k: int) -> tuple[bool, float, bytes]:
        if k not in cache:
            model = build(source, scheme, order[:k], calibration, prepared)
            ok, score, metrics = check(model)
            cache[k] = (ok, score, model)
            trials.append({"fallback": k, "ok": ok, "size_bytes": len(model), **metrics})
            if progress is not None:
                progress(1)
        return cache[k]

    # galloping search: few nodes usually need to fall back, so try k = 0, 1, 2, 4, ... and bisect the
    # last gap; the all-fallback model is built only if nothing smaller passes
    n = len(order)
    lo, hi = -1, None   # attempt(lo) fails (or lo = -1), attempt(hi) passes
    k = 0
    while k <= n:
        if attempt(k)[0]:
            hi = k
            break
        lo = k
        k = 1 if k == 0 else min(n, 2 * k) if k < n else n + 1
    if hi is None:
        best_k = max(cache, key=lambda k: (cache[k][1], -k))
    else:
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if attempt(mid)[0]:
                hi = mid
            else:
                lo = mid
        best_k = hi
    ok, _score, model = cache[best_k]
    seconds = {"rank": t1 - t0, "search": time.perf_counter() - t1, "total": time.perf_counter() - t0}
    return MixedResult(model, order[:best_k], sens, ok, trials, seconds, n)
