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


# --------------------------------------------------------------------------------------------
# External data anywhere in the model (issue 10): every place the format can hold a tensor
# --------------------------------------------------------------------------------------------


def _ext(name: str = "v", location: str = ".env", n: int = 4) -> TensorProto:
    tensor = TensorProto()
    tensor.name, tensor.data_type = name, TensorProto.FLOAT
    tensor.dims.extend([n])
    tensor.data_location = TensorProto.EXTERNAL
    for key, value in (("location", location), ("offset", "0"), ("length", str(4 * n))):
        entry = tensor.external_data.add()
        entry.key, entry.value = key, value
    return tensor


def _sparse(values: TensorProto) -> onnx.SparseTensorProto:
    return helper.make_sparse_tensor(values, helper.make_tensor("i", TensorProto.INT64, [4], [0, 1, 2, 3]), [4])


def _wrap(nodes: list, initializers: list = (), sparse: list = (), functions: list = (), training: list = ()) -> bytes:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [4])
    graph = helper.make_graph(nodes or [helper.make_node("Identity", ["x"], ["y"])], "g", [x], [y],
                              list(initializers), sparse_initializer=list(sparse))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("local", 1)],
                              functions=list(functions))
    model.ir_version = 8
    model.training_info.extend(training)
    return model.SerializeToString()


def _if_with(branch_node) -> list:
    out = helper.make_tensor_value_info("c", TensorProto.FLOAT, [4])
    then = helper.make_graph([branch_node], "then", [], [out])
    other = helper.make_graph([helper.make_node("Constant", [], ["c"], value=numpy_helper.from_array(
        np.zeros(4, np.float32)))], "else", [], [out])
    cond = helper.make_node("Constant", [], ["b"], value=helper.make_tensor("b", TensorProto.BOOL, [], [True]))
    return [cond, helper.make_node("If", ["b"], ["c"], then_branch=then, else_branch=other),
            helper.make_node("Add", ["x", "c"], ["y"])]


def _const(**attrs) -> onnx.NodeProto:
    return helper.make_node("Constant", [], ["c"], **attrs)


def _training_with(tensor: TensorProto) -> onnx.TrainingInfoProto:
    info = onnx.TrainingInfoProto()
    info.initialization.CopyFrom(helper.make_graph([], "init", [], [], [tensor]))
    return info


EXTERNAL_PLACES = {
    "initializer": lambda: _wrap([helper.make_node("Add", ["x", "v"], ["y"])], initializers=[_ext()]),
    "sparse initializer": lambda: _wrap([helper.make_node("Add", ["x", "v"], ["y"])], sparse=[_sparse(_ext())]),
    "Constant value (t)": lambda: _wrap([_const(value=_ext()), helper.make_node("Add", ["x", "c"], ["y"])]),
    "Constant sparse_value": lambda: _wrap([_const(sparse_value=_sparse(_ext())),
                                            helper.make_node("Add", ["x", "c"], ["y"])]),
    "attribute tensors": lambda: _wrap([helper.make_node("Identity", ["x"], ["y"], payload=[_ext()])]),
    "attribute sparse_tensors": lambda: _wrap([helper.make_node("Identity", ["x"], ["y"],
                                                                payload=[_sparse(_ext()), _sparse(_ext("w"))])]),
    "subgraph (If branch)": lambda: _wrap(_if_with(_const(sparse_value=_sparse(_ext())))),
    "subgraph in a subgraph": lambda: _wrap(_if_with(_if_with(_const(value=_ext()))[1])),
    "model-local function": lambda: _wrap(
        [helper.make_node("Leak", ["x"], ["y"], domain="local")],
        functions=[helper.make_function("local", "Leak", ["a"], ["b"],
                                        [_const(sparse_value=_sparse(_ext())), helper.make_node("Add", ["a", "c"], ["b"])],
                                        [helper.make_opsetid("", 17)])]),
    "training_info": lambda: _wrap([], training=[_training_with(_ext())]),
}


@pytest.mark.parametrize("place", sorted(EXTERNAL_PLACES))
def test_external_data_is_refused_wherever_a_tensor_can_be(place):
    """Today only graph initializers were checked: a Constant's sparse_value pointing at .env passed,
    and onnxruntime then read the file relative to the node's current directory."""
    with pytest.raises(PolicyError, match="external data"):
        check_onnx(EXTERNAL_PLACES[place]())


def test_large_initializer_fast_path_refuses_external_data():
    """The wire-level fast path must not lift a tensor that also points at external data out of the check."""
    n = STRIP_THRESHOLD // 4 + 1000
    for field in ("data_location", "external_data"):
        w = numpy_helper.from_array(np.arange(n, dtype=np.float32), "W")
        if field == "data_location":
            w.data_location = TensorProto.EXTERNAL
        else:
            entry = w.external_data.add()
            entry.key, entry.value = "location", "/etc/passwd"
        x = helper.make_tensor_value_info("X", TensorProto.FLOAT, [n])
        y = helper.make_tensor_value_info("Y", TensorProto.FLOAT, [n])
        graph = helper.make_graph([helper.make_node("Add", ["X", "W"], ["Y"])], "g", [x], [y], [w])
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
        model.ir_version = 8
        with pytest.raises(PolicyError, match="external data"):
            check_onnx(model.SerializeToString())


def test_fast_path_leaves_tensors_with_other_fields_to_the_full_check():
    """A large raw tensor that also carries a segment is not lifted out (the checker sees it whole)."""
    from registry.onnx_checks import _strip_large_initializers

    n = STRIP_THRESHOLD // 4 + 1000
    w = numpy_helper.from_array(np.arange(n, dtype=np.float32), "W")
    w.segment.begin, w.segment.end = 0, n
    x = helper.make_tensor_value_info("X", TensorProto.FLOAT, [n])
    y = helper.make_tensor_value_info("Y", TensorProto.FLOAT, [n])
    graph = helper.make_graph([helper.make_node("Add", ["X", "W"], ["Y"])], "g", [x], [y], [w])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    _slim, stripped = _strip_large_initializers(memoryview(model.SerializeToString()))
    assert stripped == []


# --------------------------------------------------------------------------------------------
# Custom domains and unbounded allocations (issue 10)
# --------------------------------------------------------------------------------------------


def _custom_domain_model(domain: str) -> bytes:
    model = onnx.load_from_string(tiny_onnx())
    model.opset_import.append(helper.make_opsetid(domain, 1))
    model.graph.node[1].CopyFrom(helper.make_node("Steal", ["h"], ["y"], domain=domain))
    return model.SerializeToString()


def test_custom_domain_is_refused_by_default_and_allowed_by_policy():
    data = _custom_domain_model("com.evil")
    with pytest.raises(PolicyError, match="custom domain"):
        check_onnx(data)
    with pytest.raises(PolicyError, match="custom domain"):
        check_onnx(data, Policy())
    facts = check_onnx(data, Policy(allowed_domains=frozenset({"com.evil"})))
    assert "com.evil::Steal" in facts.op_types


def test_onnxruntime_contrib_domain_is_default_but_a_policy_can_refuse_it():
    data = _custom_domain_model("com.microsoft")
    check_onnx(data)
    with pytest.raises(PolicyError, match="custom domain"):
        check_onnx(data, Policy(allowed_domains=frozenset()))


def _shape_model(nodes: list, rank: int = 2, out_type: int = TensorProto.FLOAT) -> bytes:
    inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])]
    y = helper.make_tensor_value_info("y", out_type, [f"d{i}" for i in range(rank)])
    graph = helper.make_graph(nodes, "g", inputs, [y])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model.SerializeToString()


def _ints(name: str, values: list[int]) -> onnx.NodeProto:
    return helper.make_node("Constant", [], [name], value=helper.make_tensor(name, TensorProto.INT64,
                                                                             [len(values)], values))


RANKS = {"Expand constant": 3, "Range constant": 1, "ConstantOfShape from data": 1}
HUGE = {
    "ConstantOfShape constant": [_ints("s", [1 << 20, 1 << 20]), helper.make_node("ConstantOfShape", ["s"], ["y"])],
    "Expand constant": [_ints("s", [1 << 16, 1 << 16, 4]), helper.make_node("Expand", ["x", "s"], ["y"])],
    "Tile constant": [_ints("r", [1 << 20, 1 << 12]), helper.make_node("Tile", ["x", "r"], ["y"])],
    "Range constant": [helper.make_node("Constant", [], ["a"], value=helper.make_tensor("a", TensorProto.FLOAT, [], [0.0])),
                       helper.make_node("Constant", [], ["b"], value=helper.make_tensor("b", TensorProto.FLOAT, [], [1e12])),
                       helper.make_node("Constant", [], ["d"], value=helper.make_tensor("d", TensorProto.FLOAT, [], [1.0])),
                       helper.make_node("Range", ["a", "b", "d"], ["y"])],
    "Pad constant": [_ints("p", [1 << 15, 1 << 15, 1 << 15, 1 << 15]), helper.make_node("Pad", ["x", "p"], ["y"])],
    "ConstantOfShape from data": [helper.make_node("Cast", ["x"], ["i"], to=TensorProto.INT64),
                                  helper.make_node("ReduceMax", ["i"], ["m"], keepdims=0),
                                  helper.make_node("Unsqueeze", ["m", "z"], ["s"]), _ints("z", [0]),
                                  helper.make_node("ConstantOfShape", ["s"], ["y"])],
    "Expand of a scaled shape": [helper.make_node("Shape", ["x"], ["s0"]), _ints("k", [1 << 30]),
                                 helper.make_node("Mul", ["s0", "k"], ["s"]), helper.make_node("Expand", ["x", "s"], ["y"])],
}


@pytest.mark.parametrize("case", sorted(HUGE))
def test_unbounded_allocation_is_refused_by_default_with_an_opt_in(case):
    nodes = HUGE[case]
    nodes = sorted(nodes, key=lambda n: n.op_type != "Constant")  # constants first (topological order)
    data = _shape_model(nodes, RANKS.get(case, 2))
    with pytest.raises(PolicyError, match="allow_unbounded_ops"):
        check_onnx(data)
    risky = next(n.op_type for n in nodes if n.op_type in ("ConstantOfShape", "Expand", "Tile", "Range", "Pad"))
    check_onnx(data, Policy(allow_unbounded_ops=frozenset({risky})))


def test_bounded_size_taking_ops_pass():
    """What real exports do: position ids by Range over Shape, a mask expanded to a shape from Shape,
    a small constant pad."""
    nodes = [
        helper.make_node("Shape", ["x"], ["s"]),
        _ints("one", [1]), _ints("zero", [0]),
        helper.make_node("Gather", ["s", "one"], ["n"], axis=0),
        helper.make_node("Squeeze", ["n", "zero"], ["n0"]),
        helper.make_node("Constant", [], ["start"], value=helper.make_tensor("st", TensorProto.INT64, [], [0])),
        helper.make_node("Constant", [], ["step"], value=helper.make_tensor("sp", TensorProto.INT64, [], [1])),
        helper.make_node("Range", ["start", "n0", "step"], ["pos"]),
        helper.make_node("Cast", ["pos"], ["posf"], to=TensorProto.FLOAT),
        helper.make_node("Expand", ["posf", "s"], ["e"]),
        helper.make_node("ConstantOfShape", ["s"], ["z"], value=helper.make_tensor("v", TensorProto.FLOAT, [1], [1.0])),
        _ints("pads", [0, 1, 0, 1]),
        helper.make_node("Add", ["e", "z"], ["sum"]),
        helper.make_node("Pad", ["sum", "pads"], ["y"]),
    ]
    data = _shape_model(nodes)
    check_onnx(data)
    import onnxruntime

    out = onnxruntime.InferenceSession(data, providers=["CPUExecutionProvider"]).run(
        None, {"x": np.zeros((2, 4), np.float32)})[0]
    assert out.shape == (2, 6)


def test_loop_without_trip_count_is_refused():
    body = helper.make_graph(
        [helper.make_node("Identity", ["cond_in"], ["cond_out"]), helper.make_node("Identity", ["v_in"], ["v_out"])],
        "body",
        [helper.make_tensor_value_info("i", TensorProto.INT64, []),
         helper.make_tensor_value_info("cond_in", TensorProto.BOOL, []),
         helper.make_tensor_value_info("v_in", TensorProto.FLOAT, ["N", 4])],
        [helper.make_tensor_value_info("cond_out", TensorProto.BOOL, []),
         helper.make_tensor_value_info("v_out", TensorProto.FLOAT, ["N", 4])])
    nodes = [helper.make_node("Constant", [], ["t"], value=helper.make_tensor("t", TensorProto.BOOL, [], [True])),
             helper.make_node("Loop", ["", "t", "x"], ["y"], body=body)]
    with pytest.raises(PolicyError, match="trip count"):
        check_onnx(_shape_model(nodes, 2))


def test_policy_file_takes_the_new_onnx_rules(tmp_path):
    from registry.policy import load_policy

    path = tmp_path / "policy.toml"
    path.write_text('allowed_domains = ["com.acme"]\nallow_unbounded_ops = ["Range"]\nmax_alloc_elements = 1000\n')
    pol = load_policy(path)
    assert pol.allowed_domains == frozenset({"com.acme"}) and pol.allow_unbounded_ops == frozenset({"Range"})
    assert pol.max_alloc_elements == 1000
    small = _shape_model(sorted([_ints("s", [100, 100]), helper.make_node("ConstantOfShape", ["s"], ["y"])],
                                key=lambda n: n.op_type != "Constant"))
    check_onnx(small)
    with pytest.raises(PolicyError, match="limit 1000"):
        check_onnx(small, pol)


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
