"""PyTorch -> ONNX with the TorchScript exporter, pinned, and a numeric parity check.

The exporter is pinned (``dynamo=False``, fixed opset, fixed names) because the two exporters emit
different graphs; a changed graph is a changed digest, and provenance records which was used.
"""

from __future__ import annotations

import io
import warnings

import numpy as np
import onnx
import torch
from torch import nn

from registry.errors import CompressionError

EXPORTER = "torch.onnx.export(dynamo=False)"
DEFAULT_OPSET = 17
INPUT = "input"
OUTPUT = "output"


def export_onnx(model: nn.Module, sample: np.ndarray, opset: int = DEFAULT_OPSET) -> bytes:
    """Serialised ONNX with a dynamic batch axis. Deterministic for the same weights."""
    model = model.eval()
    x = torch.from_numpy(np.ascontiguousarray(sample[:1]))
    buf = io.BytesIO()
    with torch.no_grad(), warnings.catch_warnings():
        # The TorchScript exporter is deprecated but pinned on purpose (see module docstring).
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(model, (x,), buf, dynamo=False, opset_version=opset, input_names=[INPUT],
                          output_names=[OUTPUT], dynamic_axes={INPUT: {0: "batch"}, OUTPUT: {0: "batch"}},
                          do_constant_folding=True)
    return normalise(buf.getvalue())


def normalise(data: bytes) -> bytes:
    """Drops free-text fields that carry no meaning, so only the graph decides the digest."""
    model = onnx.load_from_string(data)
    model.doc_string = ""
    model.graph.doc_string = ""
    return model.SerializeToString(deterministic=True)


def parity(model: nn.Module, onnx_bytes: bytes, x: np.ndarray, atol: float, threads: int = 1) -> float:
    """Max |ORT - PyTorch| over ``x``; CompressionError when it exceeds ``atol``."""
    from registry.compress.evaluate import onnx_outputs
    from registry.compress.train import predict

    ref = predict(model, torch.from_numpy(np.ascontiguousarray(x))).numpy()
    got = onnx_outputs(onnx_bytes, x, threads)
    diff = float(np.max(np.abs(ref - got))) if ref.size else 0.0
    if not diff <= atol:
        raise CompressionError(f"ONNX export differs from PyTorch by {diff:.3g} (tolerance {atol:g})")
    return diff
