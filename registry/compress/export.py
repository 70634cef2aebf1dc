"""PyTorch -> ONNX with the TorchScript exporter, pinned, with named dynamic axes and a parity check.

The exporter is pinned (``dynamo=False``, fixed opset, fixed names) because the two exporters emit
different graphs; a changed graph is a changed digest, and provenance records which was used.
Every input and output gets a dynamic batch axis; integer inputs of rank 2 or more (token ids,
masks) also get a dynamic ``sequence`` axis, and so does a rank-3 output. Parity is checked at
several batch sizes and sequence lengths, so a graph that baked in the traced length is caught.
"""

from __future__ import annotations

import io
import warnings
from typing import Any

import numpy as np
import onnx
import torch
from torch import nn

from registry.errors import CompressionError

EXPORTER = "torch.onnx.export(dynamo=False)"
DEFAULT_OPSET = 17
INPUT = "input"
OUTPUT = "output"


class Wrapped(nn.Module):
    """A module with named inputs and a named output: how the pipeline carries any model around."""

    def __init__(self, module: nn.Module, input_names: list[str], output_name: str = OUTPUT) -> None:
        super().__init__()
        self.module = module
        self.input_names = list(input_names)
        self.output_name = output_name

    def forward(self, *args: Any) -> Any:
        return self.module(*args)


def names_of(model: nn.Module) -> tuple[list[str], str]:
    """(input names, output name) of a pipeline model; a bare module has one input called ``input``."""
    return list(getattr(model, "input_names", [INPUT])), str(getattr(model, "output_name", OUTPUT))


def tensors(feeds: dict[str, np.ndarray], names: list[str]) -> tuple[torch.Tensor, ...]:
    return tuple(torch.from_numpy(np.ascontiguousarray(feeds[n])) for n in names)


def call(model: nn.Module, feeds: dict[str, np.ndarray]) -> torch.Tensor:
    names, _ = names_of(model)
    return model(*tensors(feeds, names))


def _dynamic_axes(feeds: dict[str, np.ndarray], names: list[str], output: str) -> dict[str, dict[int, str]]:
    axes: dict[str, dict[int, str]] = {}
    sequence = False
    for n in names:
        a = feeds[n]
        axes[n] = {0: "batch"}
        if a.ndim >= 2 and (np.issubdtype(a.dtype, np.integer) or a.dtype == np.bool_):
            axes[n][1] = "sequence"
            sequence = True
    axes[output] = {0: "batch", 1: "sequence"} if sequence else {0: "batch"}
    return axes


def export_onnx(model: nn.Module, sample: dict[str, np.ndarray] | np.ndarray, opset: int = DEFAULT_OPSET) -> bytes:
    """Serialised ONNX with named dynamic axes. Deterministic for the same weights."""
    names, output = names_of(model)
    feeds = sample if isinstance(sample, dict) else {names[0]: sample}
    model = model.eval()
    # two rows, so the tracer never specialises on a batch of one
    trace = {n: np.ascontiguousarray(np.concatenate([feeds[n][:2]] * 2)[:2]) for n in names}
    axes = _dynamic_axes(trace, names, output)
    out_probe = _probe_rank(model, trace)
    if out_probe < 3:
        axes[output] = {0: "batch"}
    buf = io.BytesIO()
    with torch.no_grad(), warnings.catch_warnings():
        # The TorchScript exporter is deprecated but pinned on purpose (see module docstring); tracer
        # warnings about Python values are checked by the multi-length parity test instead.
        warnings.simplefilter("ignore")
        try:
            torch.onnx.export(model, tensors(trace, names), buf, dynamo=False, opset_version=opset,
                              input_names=names, output_names=[output], dynamic_axes=axes,
                              do_constant_folding=True)
        except Exception as exc:  # the exporter raises many types for unsupported ops
            raise CompressionError(f"ONNX export failed: {str(exc).strip().splitlines()[0][:200]}") from exc
    return normalise(buf.getvalue())


def _probe_rank(model: nn.Module, feeds: dict[str, np.ndarray]) -> int:
    with torch.no_grad():
        return int(call(model, feeds).ndim)


def normalise(data: bytes) -> bytes:
    """Drops free-text fields that carry no meaning, so only the graph decides the digest."""
    model = onnx.load_from_string(data)
    model.doc_string = ""
    model.graph.doc_string = ""
    return model.SerializeToString(deterministic=True)


def parity_shapes(feeds: dict[str, np.ndarray], names: list[str]) -> list[tuple[int, int | None]]:
    """(batch, sequence length) pairs to compare at: the whole split, batch 1, and shorter sequences."""
    n = int(feeds[names[0]].shape[0])
    seq = [feeds[k].shape[1] for k in names if feeds[k].ndim >= 2 and np.issubdtype(feeds[k].dtype, np.integer)]
    if not seq:
        return [(n, None), (1, None)]
    full = int(seq[0])
    lengths = sorted({max(2, full // 4), max(2, full // 2), full})
    return [(n, full), (1, full)] + [(min(n, 8), length) for length in lengths if length != full]


def parity(model: nn.Module, onnx_bytes: bytes, feeds: dict[str, np.ndarray] | np.ndarray, atol: float,
           threads: int = 1) -> dict[str, Any]:
    """Max |ORT - PyTorch| at several batch sizes and sequence lengths; CompressionError above ``atol``."""
    from registry.compress.evaluate import onnx_outputs
    from registry.compress.train import predict

    names, _ = names_of(model)
    feeds = feeds if isinstance(feeds, dict) else {names[0]: feeds}
    worst = 0.0
    checked = []
    for batch, length in parity_shapes(feeds, names):
        part = {k: np.ascontiguousarray(v[:batch] if length is None or v.ndim < 2 or
                                        not np.issubdtype(v.dtype, np.integer) else v[:batch, :length])
                for k, v in feeds.items() if k in names}
        ref = predict(model, part).numpy()
        got = onnx_outputs(onnx_bytes, part, threads)
        diff = float(np.max(np.abs(ref - got))) if ref.size else 0.0
        checked.append({"batch": batch, "sequence": length, "max_abs_diff": diff})
        worst = max(worst, diff) if np.isfinite(diff) else float("inf")
        if not diff <= atol:
            where = f"batch {batch}" + (f", sequence {length}" if length else "")
            raise CompressionError(f"ONNX export differs from PyTorch by {diff:.3g} at {where} (tolerance {atol:g})")
    return {"max_abs_diff": worst, "shapes": checked}
