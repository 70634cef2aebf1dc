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


# --------------------------------------------------------------------------------------------
# The fast path read at the wire: every encoding of a large initializer protobuf allows
# --------------------------------------------------------------------------------------------


def _varint(value: int) -> bytes:
    from registry.onnx_checks import _encode_varint

    return _encode_varint(value)


def _field(number: int, payload: bytes) -> bytes:
    return _varint((number << 3) | 2) + _varint(len(payload)) + payload


def _wire_tensor(dims: list[int], raw: bytes, data_type: int | None = TensorProto.FLOAT, name: bytes | None = b"W",
                 packed: bool = False, doc: bytes = b"") -> bytes:
    """A TensorProto written field by field (dims packed or not, negative dims as 64-bit varints)."""
    encoded = [_varint(d & (2**64 - 1)) for d in dims]
    out = _field(1, b"".join(encoded)) if packed else b"".join(_varint(1 << 3) + e for e in encoded)
    if data_type is not None:
        out += _varint(2 << 3) + _varint(data_type)
    out += (_field(8, name) if name is not None else b"") + _field(9, raw)
    if doc:
        out += _field(12, doc)
    return out


def _model_with(tensor: bytes, n: int, elem: int = TensorProto.FLOAT) -> bytes:
    """``Y = X + W`` with W the hand-written initializer, spliced into the graph's bytes."""
    x = helper.make_tensor_value_info("X", elem, [n])
    y = helper.make_tensor_value_info("Y", elem, [n])
    graph = helper.make_graph([helper.make_node("Add", ["X", "W"], ["Y"])], "g", [x], [y])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    graph_bytes = model.graph.SerializeToString() + _field(5, tensor)
    model.ClearField("graph")
    return model.SerializeToString() + _field(7, graph_bytes)


N = STRIP_THRESHOLD // 4 + 1000


def test_packed_dims_are_read_like_unpacked_ones():
    raw = np.arange(N, dtype=np.float32).tobytes()
    for packed in (False, True):
        assert check_onnx(_model_with(_wire_tensor([N], raw, packed=packed), N)).large_initializers == 1
        with pytest.raises(PolicyError, match=rf"initializer 'W': raw_data is {4 * N - 4} bytes, shape \[{N}\]"):
            check_onnx(_model_with(_wire_tensor([N], raw[:-4], packed=packed), N))
    two = _wire_tensor([2, N // 2], raw[: 4 * 2 * (N // 2) - 4], packed=True)
    with pytest.raises(PolicyError, match=rf"shape \[2, {N // 2}\]"):  # both packed dims read, in order
        check_onnx(_model_with(two, N))


def test_a_negative_or_zero_dim_is_named_in_the_refusal():
    raw = np.zeros(N, np.float32).tobytes()
    for packed in (False, True):
        with pytest.raises(PolicyError, match=r"shape \[-1, " + str(N) + r"\] of type 1 needs None"):
            check_onnx(_model_with(_wire_tensor([-1, N], raw, packed=packed), N))
    with pytest.raises(PolicyError, match=r"shape \[-9223372036854775808\]"):  # the most negative int64
        check_onnx(_model_with(_wire_tensor([-(2**63)], raw), N))
    with pytest.raises(PolicyError, match=r"shape \[0\] of type 1 needs 0"):
        check_onnx(_model_with(_wire_tensor([0], raw), N))


def test_a_large_initializer_without_a_sized_type_is_refused_not_crashed():
    raw = np.zeros(N, np.float32).tobytes()
    for data_type in (None, TensorProto.STRING, 99):  # no type field (UNDEFINED), strings, unknown
        with pytest.raises(PolicyError, match="initializer 'W'"):
            check_onnx(_model_with(_wire_tensor([N], raw, data_type=data_type), N))


@pytest.mark.parametrize("data_type,dtype", [(TensorProto.INT8, np.int8), (TensorProto.FLOAT16, np.float16),
                                             (TensorProto.INT64, np.int64), (TensorProto.DOUBLE, np.float64),
                                             (TensorProto.INT32, np.int32), (TensorProto.UINT16, np.uint16)])
def test_item_sizes_of_other_types_decide_the_expected_length(data_type, dtype):
    n = STRIP_THRESHOLD // np.dtype(dtype).itemsize + 17
    raw = np.zeros(n, dtype).tobytes()
    assert check_onnx(_model_with(_wire_tensor([n], raw, data_type=data_type), n, data_type)).large_initializers == 1
    with pytest.raises(PolicyError, match=rf"raw_data is {len(raw)} bytes, .* needs {(n + 1) * np.dtype(dtype).itemsize}$"):
        check_onnx(_model_with(_wire_tensor([n + 1], raw, data_type=data_type), n, data_type))


def test_an_initializer_whose_name_is_not_utf8_is_a_policy_error():
    raw = np.zeros(N, np.float32).tobytes()
    with pytest.raises(PolicyError):
        check_onnx(_model_with(_wire_tensor([N], raw, name=b"W\xff\xfe"), N))


def test_a_large_initializer_with_a_doc_string_still_takes_the_fast_path():
    raw = np.arange(N, dtype=np.float32).tobytes()
    facts = check_onnx(_model_with(_wire_tensor([N], raw, doc=b"weights of the only layer"), N))
    assert facts.large_initializers == 1
    assert facts.evidence()["large_initializers_length_checked"] == 1


def test_a_large_tensor_that_is_only_a_doc_string_is_left_to_the_full_check():
    empty = _wire_tensor([0], b"", doc=b"x" * (STRIP_THRESHOLD + 10))
    x = helper.make_tensor_value_info("X", TensorProto.FLOAT, [0])
    y = helper.make_tensor_value_info("Y", TensorProto.FLOAT, [0])
    graph = helper.make_graph([helper.make_node("Add", ["X", "W"], ["Y"])], "g", [x], [y])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    graph_bytes = model.graph.SerializeToString() + _field(5, empty[: empty.index(_field(9, b""))]
                                                          + _field(12, b"x" * (STRIP_THRESHOLD + 10)))
    model.ClearField("graph")
    facts = check_onnx(model.SerializeToString() + _field(7, graph_bytes))
    assert facts.large_initializers == 0


def test_the_facts_a_report_shows():
    facts = check_onnx(tiny_onnx())
    evidence = facts.evidence()
    assert evidence["ir_version"] == facts.ir_version > 0 and evidence["opset"] == 17
    assert evidence["op_types"] == ["Gemm", "Relu"] and evidence["nodes"] == 2
    assert evidence["size"] == len(tiny_onnx()) and evidence["large_initializers_length_checked"] == 0
    model = onnx.load_from_string(tiny_onnx())
    assert evidence["producer"] == f"{model.producer_name} {model.producer_version}".strip()
    assert facts.domains == ("ai.onnx",)
    model.opset_import.append(helper.make_opsetid("com.microsoft", 1))
    model.producer_name, model.producer_version = "acme-compress", "2.1"
    facts = check_onnx(model.SerializeToString())
    assert facts.domains == ("ai.onnx", "com.microsoft") and facts.producer == "acme-compress 2.1"


def test_an_explicit_ai_onnx_domain_is_the_default_opset():
    model = onnx.load_from_string(tiny_onnx())
    del model.opset_import[:]
    model.opset_import.append(helper.make_opsetid("ai.onnx", 17))
    assert check_onnx(model.SerializeToString()).opset == 17


@pytest.mark.parametrize("location,where", [("/etc/passwd", "outside the artifact directory"),
                                            ("\\\\server\\share", "outside the artifact directory"),
                                            ("a/../../secret", "outside the artifact directory"),
                                            ("a\\..\\..\\secret", "outside the artifact directory"),
                                            ("weights.bin", "a separate file"),
                                            ("dir/x..y", "a separate file")])
def test_the_refusal_names_the_external_location_and_where_it_points(location, where):
    with pytest.raises(PolicyError) as info:
        check_onnx(_wrap([helper.make_node("Add", ["x", "v"], ["y"])], initializers=[_ext(location=location)]))
    assert repr(location)[1:-1] in str(info.value) and f"({where})" in str(info.value)


def test_external_data_without_a_location_is_refused_saying_so():
    tensor = _ext()
    del tensor.external_data[:]
    entry = tensor.external_data.add()
    entry.key, entry.value = "offset", "0"
    with pytest.raises(PolicyError, match=r"at '\?' \(a separate file\)"):
        check_onnx(_wrap([helper.make_node("Add", ["x", "v"], ["y"])], initializers=[tensor]))


def _graphs_attr_node(inner: onnx.NodeProto, tensor: TensorProto | None = None) -> onnx.NodeProto:
    """A custom-domain node carrying a list of subgraphs (attribute type GRAPHS)."""
    out = helper.make_tensor_value_info("z", TensorProto.FLOAT, [4])
    body = helper.make_graph([inner], "body", [], [out], [tensor] if tensor is not None else [])
    node = helper.make_node("Wrap", ["x"], ["y"], domain="com.acme")
    node.attribute.append(helper.make_attribute("bodies", [body]))
    return node


def _acme(node: onnx.NodeProto, functions: list = (), training: list = ()) -> bytes:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [4])
    graph = helper.make_graph([node], "g", [x], [y])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.acme", 1),
                                                    helper.make_opsetid("local", 1)], functions=list(functions))
    model.ir_version = 8
    model.training_info.extend(training)
    return model.SerializeToString()


def test_nodes_and_tensors_inside_a_list_of_subgraphs_are_checked():
    acme = Policy(allowed_domains=frozenset({"com.acme"}))
    inner = helper.make_node("Relu", ["x"], ["z"])
    assert check_onnx(_acme(_graphs_attr_node(inner)), acme).op_types == ("Relu", "com.acme::Wrap")
    hidden = helper.make_node("Evil", ["x"], ["z"], domain="com.evil")
    with pytest.raises(PolicyError, match="com.evil"):
        check_onnx(_acme(_graphs_attr_node(hidden)), acme)
    with pytest.raises(PolicyError, match="external data"):
        check_onnx(_acme(_graphs_attr_node(inner, _ext())), acme)


def test_custom_domain_ops_inside_functions_and_training_graphs_are_refused():
    evil = helper.make_node("Evil", ["a"], ["b"], domain="com.evil")
    function = helper.make_function("local", "Fn", ["a"], ["b"], [evil], [helper.make_opsetid("com.evil", 1)])
    with pytest.raises(PolicyError, match="com.evil"):
        check_onnx(_acme(helper.make_node("Fn", ["x"], ["y"], domain="local"), functions=[function]))
    for part in ("initialization", "algorithm"):
        info = onnx.TrainingInfoProto()
        getattr(info, part).CopyFrom(helper.make_graph([helper.make_node("Evil", [], ["q"], domain="com.evil")],
                                                       part, [], []))
        with pytest.raises(PolicyError, match="com.evil"):
            check_onnx(_acme(helper.make_node("Relu", ["x"], ["y"]), training=[info]))


def test_external_data_in_a_functions_attribute_or_a_training_algorithm_is_refused():
    function = helper.make_function("local", "Fn", ["a"], ["b"], [helper.make_node("Relu", ["a"], ["b"])],
                                    [helper.make_opsetid("", 17)])
    function.attribute_proto.append(helper.make_attribute("w", _ext()))
    with pytest.raises(PolicyError, match="external data"):
        check_onnx(_acme(helper.make_node("Fn", ["x"], ["y"], domain="local"), functions=[function]))
    info = onnx.TrainingInfoProto()
    info.algorithm.CopyFrom(helper.make_graph([], "algo", [], [], [_ext()]))
    with pytest.raises(PolicyError, match="external data"):
        check_onnx(_acme(helper.make_node("Relu", ["x"], ["y"]), training=[info]))


def test_the_size_limit_is_inclusive_and_ir_version_zero_is_named():
    data = tiny_onnx()
    assert check_onnx(data, Policy(max_artifact_size=len(data))).size == len(data)
    with pytest.raises(PolicyError, match=f"artifact is {len(data)} bytes"):
        check_onnx(data, Policy(max_artifact_size=len(data) - 1))
    model = onnx.load_from_string(data)
    model.ir_version = 0
    with pytest.raises(PolicyError, match="no graph or no IR version"):
        check_onnx(model.SerializeToString())


def test_shape_errors_only_the_full_check_sees_are_refused_with_the_checkers_words():
    x = helper.make_tensor_value_info("X", TensorProto.FLOAT, [4])
    y = helper.make_tensor_value_info("Y", TensorProto.FLOAT, [4])
    w = numpy_helper.from_array(np.zeros(3, np.float32), "W")
    graph = helper.make_graph([helper.make_node("Add", ["X", "W"], ["Y"])], "g", [x], [y], [w])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    with pytest.raises(PolicyError, match=r"onnx.checker rejected the model: .*Incompatible dimensions"):
        check_onnx(model.SerializeToString())


def test_the_opset_range_is_inclusive_at_both_ends_and_a_policy_maximum_applies():
    data = tiny_onnx()  # opset 17
    assert check_onnx(data, Policy(opset_min=17, opset_max=17)).opset == 17
    with pytest.raises(PolicyError, match=r"opset 17 is outside the accepted range \[7, 16\]"):
        check_onnx(data, Policy(opset_max=16))
    with pytest.raises(PolicyError, match=r"\[18, "):
        check_onnx(data, Policy(opset_min=18))


def test_the_allow_list_refusal_names_only_the_ops_it_does_not_allow():
    with pytest.raises(PolicyError) as info:
        check_onnx(tiny_onnx(), Policy(allowed_ops=frozenset({"Gemm"})))
    assert str(info.value).endswith(": Relu")
    acme = Policy(allowed_ops=frozenset({"Relu"}), allowed_domains=frozenset({"com.acme"}))
    with pytest.raises(PolicyError) as info:
        check_onnx(_acme(_graphs_attr_node(helper.make_node("Relu", ["x"], ["z"]))), acme)
    assert str(info.value).endswith(": com.acme::Wrap")


def test_unknown_fixed_width_fields_are_skipped_at_their_width():
    """Fields of wire types 1 (8 bytes) and 5 (4 bytes), unknown to ONNX, around a large initializer."""
    raw = np.arange(N, dtype=np.float32).tobytes()
    fixed = _varint((99 << 3) | 1) + bytes(8) + _varint((98 << 3) | 5) + bytes(4)
    data = _model_with(_wire_tensor([N], raw), N)
    facts = check_onnx(fixed + data + fixed)
    assert facts.large_initializers == 1
    with pytest.raises(PolicyError, match="not an ONNX model"):
        check_onnx(data + _varint((99 << 3) | 1) + bytes(7))  # cut short


def test_the_fast_path_threshold_is_strictly_above_one_mebibyte():
    def model(n: int) -> bytes:
        return _model_with(_wire_tensor([n], bytes(n), data_type=TensorProto.UINT8), n, TensorProto.UINT8)

    n = STRIP_THRESHOLD - 16
    while len(_wire_tensor([n], bytes(n), data_type=TensorProto.UINT8)) < STRIP_THRESHOLD:
        n += 1
    assert len(_wire_tensor([n], bytes(n), data_type=TensorProto.UINT8)) == STRIP_THRESHOLD
    assert check_onnx(model(n)).large_initializers == 0
    assert check_onnx(model(n + 1)).large_initializers == 1


def test_an_ir_version_the_checker_cannot_take_gets_the_checkers_reason():
    model = onnx.load_from_string(tiny_onnx())
    model.ir_version = 1
    with pytest.raises(PolicyError, match="onnx.checker rejected the model: .*IR version"):
        check_onnx(model.SerializeToString())


def test_the_directory_hook_sees_the_model_being_checked():
    seen: list[str] = []
    check_onnx(tiny_onnx(), external_data=lambda model: seen.append(model.graph.name))
    assert seen == [onnx.load_from_string(tiny_onnx()).graph.name]


def test_only_named_tensors_with_raw_bytes_take_the_fast_path():
    """An empty raw_data tensor is length-checked like any other; a nameless one is left to the checker."""
    big_doc = b"d" * (STRIP_THRESHOLD + 10)
    empty = _wire_tensor([0], b"", doc=big_doc)
    x = helper.make_tensor_value_info("X", TensorProto.FLOAT, [0])
    y = helper.make_tensor_value_info("Y", TensorProto.FLOAT, [0])
    graph = helper.make_graph([helper.make_node("Add", ["X", "W"], ["Y"])], "g", [x], [y])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    graph_bytes = model.graph.SerializeToString() + _field(5, empty)
    model.ClearField("graph")
    assert check_onnx(model.SerializeToString() + _field(7, graph_bytes)).large_initializers == 1
    from registry.onnx_checks import _strip_large_initializers

    nameless = _wire_tensor([N], np.zeros(N, np.float32).tobytes(), name=None)
    _slim, stripped = _strip_large_initializers(memoryview(_model_with(nameless, N)))
    assert stripped == []


# --------------------------------------------------------------------------------------------
# The allocation check looks everywhere a size-taking op can hide, at its exact limit
# --------------------------------------------------------------------------------------------


def _cos_model(shape: list[int], where: str = "graph") -> bytes:
    """``ConstantOfShape(shape)`` in the main graph, an If branch, a local function or an initializer."""
    out = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["a", "b"])
    const = _ints("s", shape)
    cos = helper.make_node("ConstantOfShape", ["s"], ["y"])
    functions, inits, nodes = [], [], [const, cos]
    if where == "initializer":
        inits, nodes = [helper.make_tensor("s", TensorProto.INT64, [len(shape)], shape)], [cos]
    elif where == "if":
        branch = helper.make_graph([const, helper.make_node("ConstantOfShape", ["s"], ["c"])], "then", [],
                                   [helper.make_tensor_value_info("c", TensorProto.FLOAT, ["a", "b"])])
        small = helper.make_graph([_ints("t", [1, 1]), helper.make_node("ConstantOfShape", ["t"], ["c"])], "else", [],
                                  [helper.make_tensor_value_info("c", TensorProto.FLOAT, ["a", "b"])])
        cond = helper.make_node("Constant", [], ["b"], value=helper.make_tensor("b", TensorProto.BOOL, [], [True]))
        nodes = [cond, helper.make_node("If", ["b"], ["y"], then_branch=branch, else_branch=small)]
    elif where == "function":
        functions = [helper.make_function("local", "Fill", [], ["o"],
                                          [_ints("s", shape), helper.make_node("ConstantOfShape", ["s"], ["o"])],
                                          [helper.make_opsetid("", 17)])]
        nodes = [helper.make_node("Fill", [], ["y"], domain="local")]
    graph = helper.make_graph(nodes, "g", [], [out], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("local", 1)],
                              functions=functions)
    model.ir_version = 8
    return model.SerializeToString()


@pytest.mark.parametrize("where", ["graph", "initializer", "if", "function"])
def test_a_huge_constant_of_shape_is_refused_wherever_it_is(where):
    with pytest.raises(PolicyError, match="ConstantOfShape"):
        check_onnx(_cos_model([1 << 20, 1 << 20], where))
    check_onnx(_cos_model([4, 4], where))


def test_the_allocation_limit_is_inclusive():
    check_onnx(_cos_model([4, 4]), Policy(max_alloc_elements=16))
    with pytest.raises(PolicyError, match="ConstantOfShape"):
        check_onnx(_cos_model([4, 5]), Policy(max_alloc_elements=16))
