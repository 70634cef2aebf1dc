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
    check = parity(model, a, x, 1e-4)
    assert check["max_abs_diff"] < 1e-4 and {(c["batch"], c["sequence"]) for c in check["shapes"]} == {(450, None),
                                                                                                      (1, None)}
    with torch.no_grad():
        model[0].weight.add_(0.5)  # the ONNX no longer matches this model
    with pytest.raises(CompressionError, match="differs from PyTorch"):
        parity(model, a, x, 1e-4)


@pytest.mark.parametrize("method", ["minmax", "entropy", "percentile"])
def test_static_int8_is_smaller_deterministic_and_accurate(exported, method: str) -> None:  # noqa: ANN001
    data, x, y, cal = exported
    q1 = Q.static_int8(data, {"input": cal}, method)
    q2 = Q.static_int8(data, {"input": cal}, method)
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
    io = onnx.load_from_string(half).graph
    assert io.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT   # FP32 I/O kept by default
    raw = Q.fp16(data, keep_io_types=False)
    assert onnx.load_from_string(raw).graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT16


def test_calibration_progress_counts_every_sample(exported) -> None:  # noqa: ANN001
    data, _x, _y, cal = exported
    seen: list[int] = []
    Q.static_int8(data, {"input": cal}, progress=seen.append)
    assert sum(seen) == cal.shape[0]


def test_mixed_precision_ranks_then_falls_back_in_order_of_harm(exported) -> None:  # noqa: ANN001
    from registry.compress import mixed as M

    data, x, y, cal = exported
    feeds = {"input": cal}
    ref = onnx_outputs(data, feeds)

    def check_with(bound: float):  # noqa: ANN202
        def check(model: bytes):  # noqa: ANN202
            c = cosine(onnx_outputs(model, feeds), ref)
            return c >= bound, c, {"cosine_mean": c}
        return check

    scheme = M.Scheme(base="static", fallback="fp32")
    strict = M.mixed_precision(data, feeds, check_with(1.0), scheme)
    nodes = Q.quantizable_nodes(Q.preprocess(data))
    assert set(strict.sensitivity) == set(nodes) and all(v > 0 for v in strict.sensitivity.values())
    assert strict.met and strict.fallback_nodes == sorted(nodes, key=lambda n: -strict.sensitivity[n])
    loose = M.mixed_precision(data, feeds, check_with(-1.0), scheme)
    assert loose.met and loose.fallback_nodes == [] and len(loose.trials) == 1
    assert len(loose.model) < len(strict.model)
    # in between: the search stops at the first k that passes, most sensitive node first
    middle = M.mixed_precision(data, feeds, check_with(cosine(onnx_outputs(loose.model, feeds), ref) + 1e-4), scheme)
    assert 1 <= len(middle.fallback_nodes) <= len(nodes)
    assert middle.fallback_nodes == strict.fallback_nodes[:len(middle.fallback_nodes)]


def test_sensitivity_matches_quantizing_one_node_for_real(exported) -> None:  # noqa: ANN001
    """The one-session simulation ranks nodes the way quantizing each node alone does."""
    from registry.compress import mixed as M

    data, _x, _y, cal = exported
    feeds = {"input": cal}
    sens, nodes = M.sensitivity(data, feeds, M.Scheme(base="dynamic"))
    ref = onnx_outputs(data, feeds)
    real = {}
    for node in nodes:
        one = Q.dynamic_int8(data, exclude=tuple(n for n in nodes if n != node))
        real[node] = float(np.sum((onnx_outputs(one, feeds) - ref) ** 2))
    assert max(sens, key=sens.get) == max(real, key=real.get)


def test_metrics_and_counts(exported) -> None:  # noqa: ANN001
    data, x, y, _cal = exported
    m, _ = evaluate_onnx(data, {"input": x}, y, "classification", None)
    assert m.parameters == 64 * 256 + 256 + 256 * 128 + 128 + 128 * 10 + 10
    assert m.nonzero <= m.parameters and m.size_bytes == len(data)
    assert onnx_counts(data) == (m.parameters, m.nonzero)
    q, _ = evaluate_onnx(Q.dynamic_int8(data), {"input": x}, y, "classification", None)
    assert q.parameters == m.parameters and q.nonzero is None   # stored int8 zeros are not zero weights
    perfect = classification(np.eye(3)[[0, 1, 2, 2]], np.array([0, 1, 2, 2]), 3)
    assert perfect == {"accuracy": 1.0, "precision_macro": 1.0, "recall_macro": 1.0, "f1_macro": 1.0}
    wrong = classification(np.eye(3)[[1, 1, 2, 2]], np.array([0, 1, 2, 2]), 3)
    assert wrong["accuracy"] == 0.75 and wrong["recall_macro"] == pytest.approx((0 + 1 + 1) / 3)
