"""Quantization with onnxruntime's tools: dynamic INT8, static INT8 (QDQ), FP16, mixed precision.

Static INT8 follows onnxruntime's recipe for x86 CPUs: pre-processing (shape inference and graph
optimisation) first, QDQ format, unsigned 8-bit activations and signed 8-bit weights, optional
per-channel weights, and MinMax/Entropy/Percentile calibration on the calibration split only.
Mixed precision keeps the nodes that hurt accuracy most in FP32 until the drop is acceptable.
"""

from __future__ import annotations

import contextlib
import io
import logging
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import onnx

from registry.errors import CompressionError, InputError

CALIBRATION = ("minmax", "entropy", "percentile")
QUANTIZABLE_OPS = ("MatMul", "Gemm", "Conv")

Progress = Callable[[int], None]


def _calibration_method(name: str):  # noqa: ANN202 - onnxruntime enum
    from onnxruntime.quantization import CalibrationMethod

    try:
        return {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy,
                "percentile": CalibrationMethod.Percentile}[name]
    except KeyError:
        raise InputError(f"unknown calibration method {name!r} (use {', '.join(CALIBRATION)})") from None


class _Reader:
    """Feeds the calibration split in fixed-size batches, in file order (deterministic ranges)."""

    def __init__(self, name: str, x: np.ndarray, batch: int, progress: Progress | None) -> None:
        self._batches = [x[i:i + batch] for i in range(0, x.shape[0], batch)]
        self._name = name
        self._i = 0
        self._progress = progress

    def get_next(self) -> dict[str, np.ndarray] | None:
        if self._i >= len(self._batches):
            return None
        batch = self._batches[self._i]
        self._i += 1
        if self._progress is not None:
            self._progress(batch.shape[0])
        return {self._name: np.ascontiguousarray(batch)}

    def rewind(self) -> None:
        self._i = 0


def _input_name(data: bytes) -> str:
    return onnx.load_from_string(data).graph.input[0].name


@contextlib.contextmanager
def _quiet():  # noqa: ANN202
    """onnxruntime's quantizer logs advice on the root logger and prints to stdout; the library
    must stay silent (stdout may carry ``--json``)."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            yield
    finally:
        root.setLevel(level)


def dynamic_int8(data: bytes, per_channel: bool = False) -> bytes:
    """Weights INT8 ahead of time, activation ranges computed per batch at run time."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with tempfile.TemporaryDirectory() as tmp, _quiet():
        src, dst = Path(tmp) / "in.onnx", Path(tmp) / "out.onnx"
        src.write_bytes(data)
        quantize_dynamic(src, dst, per_channel=per_channel, weight_type=QuantType.QInt8)
        return _normalise(dst.read_bytes())


def preprocess(data: bytes) -> bytes:
    """onnxruntime's quant_pre_process: symbolic shape inference and graph optimisation."""
    from onnxruntime.quantization.shape_inference import quant_pre_process

    with tempfile.TemporaryDirectory() as tmp, _quiet():
        src, dst = Path(tmp) / "in.onnx", Path(tmp) / "pre.onnx"
        src.write_bytes(data)
        try:
            quant_pre_process(str(src), str(dst))
        except Exception:  # noqa: BLE001 - symbolic inference gives up on some Reshapes; ONNX inference suffices
            quant_pre_process(str(src), str(dst), skip_symbolic_shape=True)
        return _normalise(dst.read_bytes())


def static_int8(data: bytes, calibration: np.ndarray, method: str = "minmax", per_channel: bool = True,
                exclude: tuple[str, ...] = (), batch: int = 32, progress: Progress | None = None,
                prepared: bool = False) -> bytes:
    """QDQ INT8. ``data`` is pre-processed first unless ``prepared`` (mixed precision does it once)."""
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static

    if calibration.shape[0] == 0:
        raise InputError("calibration data is empty")
    model_bytes = data if prepared else preprocess(data)
    # Histogram calibrators need equal batch shapes: use the largest divisor of the row count.
    n = calibration.shape[0]
    batch = max(d for d in range(1, min(batch, n) + 1) if n % d == 0)
    reader = _Reader(_input_name(model_bytes), calibration, batch, progress)
    extra = {"CalibMovingAverage": False}
    if method == "percentile":
        extra["CalibPercentile"] = 99.99
    with tempfile.TemporaryDirectory() as tmp, _quiet():
        src, dst = Path(tmp) / "in.onnx", Path(tmp) / "out.onnx"
        src.write_bytes(model_bytes)
        quantize_static(src, dst, reader, quant_format=QuantFormat.QDQ, per_channel=per_channel,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                        op_types_to_quantize=list(QUANTIZABLE_OPS), nodes_to_exclude=list(exclude),
                        calibrate_method=_calibration_method(method), extra_options=extra)
        return _normalise(dst.read_bytes())


def fp16(data: bytes) -> bytes:
    """FP16 weights and compute, FP32 inputs/outputs so callers need not change."""
    from onnxconverter_common import float16

    model = float16.convert_float_to_float16(onnx.load_from_string(data), keep_io_types=True)
    return _normalise(model.SerializeToString())


def quantizable_nodes(data: bytes) -> list[str]:
    model = onnx.load_from_string(data)
    names = [n.name for n in model.graph.node if n.op_type in QUANTIZABLE_OPS]
    if any(not n for n in names):
        raise CompressionError("the graph has unnamed quantizable nodes; cannot choose which to keep in FP32")
    return names


@dataclass
class MixedResult:
    model: bytes
    fp32_nodes: list[str]
    sensitivity: dict[str, float]
    drop: float
    met: bool
    trials: list[dict[str, object]] = field(default_factory=list)


def mixed_precision(data: bytes, calibration: np.ndarray, drop_of: Callable[[bytes], float], max_drop: float,
                    method: str = "minmax", per_channel: bool = True,
                    progress: Progress | None = None) -> MixedResult:
    """Accuracy-aware INT8: sensitivity of a node = the drop when only that node is quantized.
    Nodes fall back to FP32 in order of harm until ``drop_of(model) <= max_drop``. ``met`` is False
    only if even the all-FP32 fallback misses (then the least-bad variant is returned)."""
    prepared = preprocess(data)
    nodes = quantizable_nodes(prepared)
    sensitivity: dict[str, float] = {}
    for node in nodes:
        others = tuple(n for n in nodes if n != node)
        sensitivity[node] = drop_of(static_int8(prepared, calibration, method, per_channel, others,
                                                progress=progress, prepared=True))
    order = sorted(nodes, key=lambda n: (-sensitivity[n], nodes.index(n)))
    trials: list[dict[str, object]] = []
    best: tuple[float, bytes, list[str]] | None = None
    for k in range(len(order) + 1):
        excluded = order[:k]
        if k == len(order):
            candidate = prepared
        else:
            candidate = static_int8(prepared, calibration, method, per_channel, tuple(excluded),
                                    progress=progress, prepared=True)
        drop = drop_of(candidate)
        trials.append({"fp32_nodes": list(excluded), "drop": drop})
        if best is None or drop < best[0]:
            best = (drop, candidate, list(excluded))
        if drop <= max_drop:
            return MixedResult(candidate, list(excluded), sensitivity, drop, True, trials)
    assert best is not None
    return MixedResult(best[1], best[2], sensitivity, best[0], False, trials)


def _normalise(data: bytes) -> bytes:
    from registry.compress.export import normalise

    return normalise(data)
