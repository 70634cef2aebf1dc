"""Export and quantization: parity, determinism, real size reduction, mixed-precision fallback."""

from __future__ import annotations

import hashlib

import numpy as np
import onnx
import pytest
import torch

from registry.compress import quantize as Q
from registry.compress.data import load_npz
from registry.compress.evaluate import classification, cosine, evaluate_onnx, onnx_counts, onnx_outputs
from registry.compress.export import export_onnx, parity
from registry.compress.models import build_model, load_state
from registry.errors import CompressionError

from _compress_fixtures import MLP, Digits, digits  # noqa: F401


@pytest.fixture(scope="module")
def exported(digits: Digits) -> tuple[bytes, np.ndarray, np.ndarray, np.ndarray]:  # noqa: F811
    model = load_state(build_model(MLP), digits.mlp, MLP)
    ev = load_npz(digits.evaluation, "evaluation")
    cal = load_npz(digits.calibration, "calibration")
    return export_onnx(model, ev.x), ev.x, ev.y, cal.x


def test_export_parity_and_determinism(digits: Digits) -> None:  # noqa: F811
    model = load_state(build_model(MLP), digits.mlp, MLP)
    x = load_npz(digits.evaluation, "evaluation").x
    a, b = export_onnx(model, x), export_onnx(model, x)
    assert a == b
    onnx.checker.check_model(onnx.load_from_string(a))
    assert parity(model, a, x, 1e-4) < 1e-4
    with torch.no_grad():
        model[0].weight.add_(0.5)  # the ONNX no longer matches this model
    with pytest.raises(CompressionError, match="differs from PyTorch"):
        parity(model, a, x, 1e-4)


@pytest.mark.parametrize("method", ["minmax", "entropy", "percentile"])
def test_static_int8_is_smaller_deterministic_and_accurate(exported, method: str) -> None:  # noqa: ANN001
    data, x, y, cal = exported
    q1 = Q.static_int8(data, cal, method)
    q2 = Q.static_int8(data, cal, method)
    assert hashlib.sha256(q1).digest() == hashlib.sha256(q2).digest()
    assert len(q1) < len(data) / 3
    ops = {n.op_type for n in onnx.load_from_string(q1).graph.node}
    assert "QuantizeLinear" in ops and "DequantizeLinear" in ops
    ref = onnx_outputs(data, x)
    assert cosine(onnx_outputs(q1, x), ref) > 0.98
    assert classification(onnx_outputs(q1, x), y, 10)["accuracy"] >= classification(ref, y, 10)["accuracy"] - 0.03


def test_dynamic_and_fp16(exported) -> None:  # noqa: ANN001
    data, x, _y, _cal = exported
    dyn = Q.dynamic_int8(data)
    assert dyn == Q.dynamic_int8(data) and len(dyn) < len(data) / 3
    half = Q.fp16(data)
    assert 0.45 < len(half) / len(data) < 0.55
    assert np.allclose(onnx_outputs(half, x), onnx_outputs(data, x), atol=1e-2)


def test_calibration_progress_counts_every_sample(exported) -> None:  # noqa: ANN001
    data, _x, _y, cal = exported
    seen: list[int] = []
    Q.static_int8(data, cal, progress=seen.append)
    assert sum(seen) == cal.shape[0]


def test_mixed_precision_falls_back_in_order_of_harm(exported) -> None:  # noqa: ANN001
    data, x, y, cal = exported
    ref = classification(onnx_outputs(data, x), y, 10)["accuracy"]

    def drop_of(model: bytes) -> float:
        return (1 - cosine(onnx_outputs(model, x), onnx_outputs(data, x))) * 1000

    strict = Q.mixed_precision(data, cal, drop_of, max_drop=0.0)
    nodes = Q.quantizable_nodes(Q.preprocess(data))
    assert strict.met and set(strict.fp32_nodes) == set(nodes)    # only all-FP32 has zero drop
    assert set(strict.sensitivity) == set(nodes)
    harm = sorted(nodes, key=lambda n: -strict.sensitivity[n])
    assert strict.fp32_nodes == harm
    loose = Q.mixed_precision(data, cal, drop_of, max_drop=1e9)
    assert loose.met and loose.fp32_nodes == []
    assert len(loose.model) < len(strict.model)
    assert classification(onnx_outputs(loose.model, x), y, 10)["accuracy"] > ref - 0.05


def test_metrics_and_counts(exported) -> None:  # noqa: ANN001
    data, x, y, _cal = exported
    m, _ = evaluate_onnx(data, x, y, "classification", None, latency_runs=3, warmup=1)
    assert m.parameters == 64 * 256 + 256 + 256 * 128 + 128 + 128 * 10 + 10
    assert m.nonzero <= m.parameters and m.size_bytes == len(data)
    assert set(m.latency) >= {"threads", "batch1", "batch64"} and m.latency["batch64"]["p50_ms"] > 0
    assert onnx_counts(data) == (m.parameters, m.nonzero)
    perfect = classification(np.eye(3)[[0, 1, 2, 2]], np.array([0, 1, 2, 2]), 3)
    assert perfect == {"accuracy": 1.0, "precision": 1.0, "recall": 1.0, "f1": 1.0}
    wrong = classification(np.eye(3)[[1, 1, 2, 2]], np.array([0, 1, 2, 2]), 3)
    assert wrong["accuracy"] == 0.75 and wrong["recall"] == pytest.approx((0 + 1 + 1) / 3)
