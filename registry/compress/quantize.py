"""Quantization with onnxruntime's own tools: dynamic/static INT8, FP16, INT4 (and INT8) weight-only.

* Dynamic INT8 (``quantize_dynamic``): weights INT8 ahead of time (per channel by default),
  activations per batch at run time; MatMul, Conv and the embedding ``Gather`` (a transformer's
  largest tensor) are all quantized.
* Static INT8 (``quantize_static``): onnxruntime's x86 recipe: pre-processing (shape inference and
  graph optimisation), QDQ format, uint8 activations and int8 weights, MinMax/Entropy/Percentile
  calibration on the calibration split only, fed every graph input by name.
* FP16 (``onnxruntime.transformers.float16``): weights and compute in half precision, with FP32
  graph inputs/outputs unless the recipe says otherwise.
* Weight-only INT4/INT8 (``MatMulNBitsQuantizer``): block-wise MatMul weights (``MatMulNBits``) and,
  optionally, 4-bit embeddings (``GatherBlockQuantized``); round-to-nearest, HQQ, or GPTQ (data-aware,
  on the calibration split).

Every failure inside onnxruntime's tools becomes one ``CompressionError`` line.
"""

from __future__ import annotations

import contextlib
import io
import logging
import tempfile
import warnings
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import onnx

from registry.errors import CompressionError, InputError

CALIBRATION = ("minmax", "entropy", "percentile")
INT4_METHODS = ("rtn", "hqq", "gptq")
DYNAMIC_OPS = ("MatMul", "Conv", "Gather", "Attention", "EmbedLayerNormalization")
STATIC_OPS = ("MatMul", "Gemm", "Conv", "Gather")
WEIGHT_OPS = ("MatMul", "Gemm", "Conv", "Gather")

Progress = Callable[[int], None]
Feeds = dict[str, np.ndarray]


def _calibration_method(name: str):  # noqa: ANN202 - onnxruntime enum
    from onnxruntime.quantization import CalibrationMethod

    try:
        return {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy,
                "percentile": CalibrationMethod.Percentile}[name]
    except KeyError:
        raise InputError(f"unknown calibration method {name!r} (use {', '.join(CALIBRATION)})") from None


class Reader:
    """Feeds a split in fixed-size batches of every named input, in file order (deterministic ranges)."""

    def __init__(self, feeds: Feeds, batch: int, progress: Progress | None = None) -> None:
        n = int(next(iter(feeds.values())).shape[0])
        self._batches = [{k: np.ascontiguousarray(v[i:i + batch]) for k, v in feeds.items()}
                         for i in range(0, n, batch)]
        self._i = 0
        self._progress = progress

    def get_next(self) -> Feeds | None:
        if self._i >= len(self._batches):
            return None
        batch = self._batches[self._i]
        self._i += 1
        if self._progress is not None:
            self._progress(int(next(iter(batch.values())).shape[0]))
        return batch

    def rewind(self) -> None:
        self._i = 0

    def __iter__(self) -> Iterator[Feeds]:
        return iter(list(self._batches))

    def __deepcopy__(self, memo: dict) -> "Reader":  # GPTQ copies its reader; the arrays need not be copied
        clone = Reader.__new__(Reader)
        clone._batches, clone._i, clone._progress = self._batches, 0, None
        return clone


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """onnxruntime's quantizers log advice on the root logger and print to stdout; the library must
    stay silent (stdout may carry ``--json``)."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        root.setLevel(level)


@contextlib.contextmanager
def guard(what: str) -> Iterator[None]:
    """One CompressionError line for whatever onnxruntime's tools raise on a model they cannot handle."""
    try:
        with quiet():
            yield
    except (CompressionError, InputError):
        raise
    except Exception as exc:  # noqa: BLE001 - third-party tools raise anything (RuntimeError, AssertionError, ...)
        text = str(exc).strip()
        line = text.splitlines()[0] if text else type(exc).__name__
        raise CompressionError(f"{what} failed: {line[:240]}") from exc


def _through_files(data: bytes, fn: Callable[[Path, Path], None]) -> bytes:
    with tempfile.TemporaryDirectory(prefix="registry-quant-") as tmp:
        src, dst = Path(tmp) / "in.onnx", Path(tmp) / "out.onnx"
        src.write_bytes(data)
        fn(src, dst)
        return _normalise(dst.read_bytes())


def dynamic_int8(data: bytes, per_channel: bool = True, exclude: tuple[str, ...] = (),
                 ops: tuple[str, ...] = DYNAMIC_OPS) -> bytes:
    """Weights INT8 ahead of time, activation ranges computed per batch at run time."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    # the dynamic quantizer rewrites Gemm as MatMul (+ Add) named "<gemm>_MatMul" before it excludes by name
    excluded = list(exclude) + [f"{name}_MatMul" for name in exclude]

    def go(src: Path, dst: Path) -> None:
        quantize_dynamic(src, dst, per_channel=per_channel, weight_type=QuantType.QInt8,
                         op_types_to_quantize=list(ops), nodes_to_exclude=excluded,
                         extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT})

    with guard("dynamic INT8 quantization"):
        return _through_files(data, go)


@contextlib.contextmanager
def _cwd(path: Path) -> Iterator[None]:
    """onnxruntime's symbolic shape inference dumps ``sym_shape_infer_temp.onnx`` (and its external data)
    into the working directory when it gives up; run it where that litter lands in a temp dir."""
    import os

    old = os.getcwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(old)


def preprocess(data: bytes) -> bytes:
    """onnxruntime's quant_pre_process: symbolic shape inference and graph optimisation."""
    from onnxruntime.quantization.shape_inference import quant_pre_process

    def go(src: Path, dst: Path) -> None:
        with _cwd(src.parent):
            try:
                quant_pre_process(str(src), str(dst), auto_merge=True)
            except Exception:  # noqa: BLE001 - symbolic inference gives up on some graphs; ONNX inference suffices
                quant_pre_process(str(src), str(dst), skip_symbolic_shape=True)

    with guard("quantization pre-processing"):
        return _through_files(data, go)


def static_int8(data: bytes, calibration: Feeds, method: str = "minmax", per_channel: bool = True,
                exclude: tuple[str, ...] = (), batch: int = 32, progress: Progress | None = None,
                prepared: bool = False, ops: tuple[str, ...] = STATIC_OPS) -> bytes:
    """QDQ INT8. ``data`` is pre-processed first unless ``prepared`` (mixed precision does it once)."""
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static

    n = int(next(iter(calibration.values())).shape[0]) if calibration else 0
    if n == 0:
        raise InputError("calibration data is empty")
    model_bytes = data if prepared else preprocess(data)
    # Histogram calibrators need equal batch shapes: use the largest divisor of the row count.
    batch = max(d for d in range(1, min(batch, n) + 1) if n % d == 0)
    reader = Reader(calibration, batch, progress)
    extra: dict[str, Any] = {"CalibMovingAverage": False, "MatMulConstBOnly": True,
                             "DefaultTensorType": onnx.TensorProto.FLOAT}
    if method == "percentile":
        extra["CalibPercentile"] = 99.99

    def go(src: Path, dst: Path) -> None:
        quantize_static(src, dst, reader, quant_format=QuantFormat.QDQ, per_channel=per_channel,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                        op_types_to_quantize=list(ops), nodes_to_exclude=list(exclude),
                        calibrate_method=_calibration_method(method), extra_options=extra)

    with guard("static INT8 quantization"):
        return _through_files(model_bytes, go)


def fp16(data: bytes, keep_io_types: bool = True) -> bytes:
    """FP16 weights and compute (onnxruntime's transformer-aware converter: it keeps the ops that
    need FP32, such as range and shape arithmetic, in FP32 with correct Casts)."""
    from onnxruntime.transformers.float16 import convert_float_to_float16

    with guard("FP16 conversion"):
        model = convert_float_to_float16(onnx.load_from_string(data), keep_io_types=keep_io_types)
        return _normalise(model.SerializeToString())


def weight_only(data: bytes, *, bits: int = 4, block_size: int = 32, symmetric: bool = True,
                method: str = "rtn", embeddings: bool = True, accuracy_level: int = 4,
                exclude: tuple[str, ...] = (), only: tuple[str, ...] | None = None,
                calibration: Feeds | None = None) -> bytes:
    """Block-wise weight-only quantization with onnxruntime's MatMulNBitsQuantizer.

    MatMul weights become MatMulNBits (``bits`` per weight, one scale per ``block_size`` inputs,
    symmetric or with zero points); ``embeddings`` also quantizes constant Gather tables to 4 bits
    (GatherBlockQuantized). ``method``: ``rtn`` (round to nearest), ``hqq`` (half-quadratic, no data)
    or ``gptq`` (data-aware: minimises the layer output error on ``calibration``). ``only`` restricts
    the MatMuls quantized (mixed precision); ``exclude`` keeps nodes as they are."""
    from onnxruntime.quantization import matmul_nbits_quantizer as mq

    model = onnx.load_from_string(data)
    names = {n.name for n in model.graph.node}
    keep = tuple(n for n in names if only is not None and n not in only) + tuple(exclude)
    with guard(f"INT{bits} weight-only quantization"):
        if method == "gptq":
            if calibration is None:
                raise InputError("GPTQ needs calibration data (--calib-data or [data] calibration)")
            cfg: Any = mq.GPTQWeightOnlyQuantConfig(calibration_data_reader=Reader(calibration, 8),
                                                    block_size=128, op_types_to_quantize=("MatMul",))
            q = mq.MatMulNBitsQuantizer(model, block_size=block_size, is_symmetric=symmetric,
                                        accuracy_level=accuracy_level, nodes_to_exclude=list(keep), algo_config=cfg)
        elif method == "hqq":
            cfg = mq.HQQWeightOnlyQuantConfig(block_size=block_size, bits=bits, op_types_to_quantize=("MatMul",))
            q = mq.MatMulNBitsQuantizer(model, nodes_to_exclude=list(keep), algo_config=cfg)
        else:
            cfg = mq.DefaultWeightOnlyQuantConfig(block_size=block_size, is_symmetric=symmetric,
                                                  accuracy_level=accuracy_level, bits=bits,
                                                  op_types_to_quantize=("MatMul",), quant_axes=(("MatMul", 0),))
            q = mq.MatMulNBitsQuantizer(model, nodes_to_exclude=list(keep), algo_config=cfg)
        q.process()
        model = q.model.model if hasattr(q.model, "model") else q.model
        if embeddings:
            cfg = mq.DefaultWeightOnlyQuantConfig(block_size=block_size, is_symmetric=symmetric, bits=4,
                                                  op_types_to_quantize=("Gather",), quant_axes=(("Gather", 1),))
            q = mq.MatMulNBitsQuantizer(model, nodes_to_exclude=list(keep), algo_config=cfg)
            q.process()
            model = q.model.model if hasattr(q.model, "model") else q.model
        return _normalise(model.SerializeToString())


def quantizable_nodes(data: bytes | Any, ops: tuple[str, ...] = WEIGHT_OPS) -> list[str]:
    """Nodes of ``ops`` whose weight is a constant initializer (what a quantizer can change)."""
    model = onnx.load_from_string(data) if isinstance(data, bytes) else data
    weights = {t.name for t in model.graph.initializer}
    names = []
    for node in model.graph.node:
        if node.op_type not in ops:
            continue
        index = 0 if node.op_type == "Gather" else 1
        if len(node.input) > index and node.input[index] in weights:
            names.append(node.name)
    if any(not n for n in names):
        raise CompressionError("the graph has unnamed quantizable nodes; cannot choose which to keep in FP32")
    return names


def _normalise(data: bytes) -> bytes:
    from registry.compress.export import normalise

    return normalise(data)
