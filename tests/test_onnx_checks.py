"""ONNX checks on in-memory bytes, including the wire-level fast path for large initializers."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from hypothesis import given, settings, strategies as st
from onnx import TensorProto, helper, numpy_helper

from registry.errors import PolicyError
from registry.onnx_checks import STRIP_THRESHOLD, check_onnx
from registry.policy import Policy

from tests._verify_fixtures import tiny_onnx


def _big_model(n: int, corrupt: int = 0, ir: int = 8) -> bytes:
    w = numpy_helper.from_array(np.arange(n, dtype=np.float32), "W")
    if corrupt:
        w.raw_data = w.raw_data[:-corrupt]
    x = helper.make_tensor_value_info("X", TensorProto.FLOAT, [n])
    y = helper.make_tensor_value_info("Y", TensorProto.FLOAT, [n])
    graph = helper.make_graph([helper.make_node("Add", ["X", "W"], ["Y"])], "g", [x], [y], [w])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = ir
    return model.SerializeToString()


def test_tiny_model_passes():
    facts = check_onnx(tiny_onnx())
    assert facts.opset == 17 and facts.op_types == ("Gemm", "Relu") and facts.large_initializers == 0


def test_large_initializer_is_length_checked_not_copied():
    n = STRIP_THRESHOLD // 4 + 1000
    facts = check_onnx(_big_model(n))
    assert facts.large_initializers == 1
    with pytest.raises(PolicyError, match="raw_data"):
        check_onnx(_big_model(n, corrupt=4))


def test_large_initializer_result_matches_plain_checker_and_runs():
    import onnxruntime

    n = STRIP_THRESHOLD // 4 + 10
    data = _big_model(n)
    onnx.checker.check_model(onnx.load_from_string(data), full_check=True)
    check_onnx(data)
    sess = onnxruntime.InferenceSession(data, providers=["CPUExecutionProvider"])
    out = sess.run(None, {"X": np.ones(n, np.float32)})[0]
    assert out[5] == 6.0


def test_checker_failures_are_policy_errors():
    model = onnx.load_from_string(tiny_onnx())
    model.graph.node[0].input[1] = "missing"
    with pytest.raises(PolicyError, match="checker"):
        check_onnx(model.SerializeToString())


def test_opset_range():
    with pytest.raises(PolicyError, match="opset 11"):
        check_onnx(tiny_onnx(opset=11), Policy(opset_min=13))


def test_custom_domain_refused_by_allow_list():
    model = onnx.load_from_string(tiny_onnx())
    model.opset_import.append(helper.make_opsetid("com.evil", 1))
    node = model.graph.node.add()
    node.CopyFrom(helper.make_node("Steal", ["y"], ["z"], domain="com.evil"))
    with pytest.raises(PolicyError):
        check_onnx(model.SerializeToString(), Policy(allowed_ops=frozenset({"Gemm", "Relu"})))


@settings(max_examples=200, deadline=None)
@given(data=st.binary(max_size=2000))
def test_random_bytes_never_traceback(data):
    try:
        check_onnx(data)
    except PolicyError:
        pass


@settings(max_examples=100, deadline=None)
@given(offset=st.integers(min_value=0), value=st.integers(min_value=0, max_value=255))
def test_corrupted_models_never_traceback(offset, value):
    data = bytearray(tiny_onnx())
    data[offset % len(data)] = value
    try:
        check_onnx(bytes(data))
    except PolicyError:
        pass


def _packed_model(data_type: int, n: int, corrupt: int = 0) -> bytes:
    """A DequantizeLinear over a large packed 4-bit initializer of ``n`` (odd) elements."""
    rng = np.random.default_rng(0)
    low = -8 if data_type == TensorProto.INT4 else 0
    values = rng.integers(low, low + 16, size=n)
    w = helper.make_tensor("W", data_type, [n], values.tolist())
    raw = numpy_helper.from_array(numpy_helper.to_array(w), "W")  # the packed raw_data form
    if corrupt:
        raw.raw_data = raw.raw_data[:-corrupt]
    scale = numpy_helper.from_array(np.array(0.5, np.float32), "s")
    y = helper.make_tensor_value_info("Y", TensorProto.FLOAT, [n])
    graph = helper.make_graph([helper.make_node("DequantizeLinear", ["W", "s"], ["Y"])], "g", [], [y], [raw, scale])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)])
    model.ir_version = 10
    return model.SerializeToString()


@pytest.mark.parametrize("data_type", [TensorProto.INT4, TensorProto.UINT4])
def test_large_packed_4bit_initializer_is_sized_by_bits(data_type: int) -> None:
    import onnxruntime

    n = 2 * STRIP_THRESHOLD + 3           # odd: the last byte holds one value
    data = _packed_model(data_type, n)
    facts = check_onnx(data)
    assert facts.large_initializers == 1
    out = onnxruntime.InferenceSession(data, providers=["CPUExecutionProvider"]).run(None, {})[0]
    assert out.shape == (n,)
    with pytest.raises(PolicyError, match=r"raw_data is \d+ bytes, shape \[\d+\] of type \d+ needs \d+"):
        check_onnx(_packed_model(data_type, n, corrupt=1))
