"""The allocation check (registry/onnx_alloc.py), op by op: what a user sees for a size-taking op.

Each graph is a small real ONNX model built with onnx.helper and checked by ``check_onnx`` as the
verifier does; the verdicts are the ones a publisher or a device reads: refused with the op named,
accepted, or accepted because the policy opts the op in (``allow_unbounded_ops``).
"""

from __future__ import annotations

import onnx
import pytest
from onnx import TensorProto, helper

from registry.errors import PolicyError
from registry.onnx_checks import check_onnx
from registry.policy import Policy


def _model(nodes: list, rank: int = 2, out_type: int = TensorProto.FLOAT, inputs: list | None = None,
           opset: int = 18) -> bytes:
    """``nodes`` reading ``x`` (float [N, 4]) and writing ``y`` (rank ``rank``, any dims)."""
    ins = inputs if inputs is not None else [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])]
    out = helper.make_tensor_value_info("y", out_type, [f"d{i}" for i in range(rank)])
    graph = helper.make_graph(nodes, "g", ins, [out])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    return model.SerializeToString()


def _ints(name: str, values: list[int], dims: list[int] | None = None) -> onnx.NodeProto:
    return helper.make_node("Constant", [], [name], value=helper.make_tensor(
        name, TensorProto.INT64, [len(values)] if dims is None else dims, values))


def _limit(n: int) -> Policy:
    return Policy(max_alloc_elements=n)


def test_tile_by_constant_repeats_is_bounded_by_their_product():
    data = _model([_ints("r", [3, 5]), helper.make_node("Tile", ["x", "r"], ["y"])])
    check_onnx(data, _limit(15))
    with pytest.raises(PolicyError, match=r"^Tile node 'y' would allocate 15 times its input \(limit 14 elements\)"):
        check_onnx(data, _limit(14))
    check_onnx(data, Policy(max_alloc_elements=14, allow_unbounded_ops=frozenset({"Tile"})))


def _cos(chain: list, rank: int = 2) -> bytes:
    """``chain`` computes ``s`` (int64 shape); ``ConstantOfShape(s)`` allocates from it."""
    return _model([*chain, helper.make_node("ConstantOfShape", ["s"], ["y"])], rank)


def _at_limit(data: bytes, factor: int, op: str = "ConstantOfShape") -> None:
    check_onnx(data, _limit(factor))
    with pytest.raises(PolicyError, match=rf"^{op} node .* would allocate .*\(limit {factor - 1} elements\)"):
        check_onnx(data, _limit(factor - 1))
    check_onnx(data, Policy(max_alloc_elements=factor - 1, allow_unbounded_ops=frozenset({op})))


@pytest.mark.parametrize("op", ["Identity", "Reshape", "Squeeze", "Unsqueeze", "Flatten", "Cast"])
def test_ops_that_keep_values_keep_the_exact_shape(op):
    extra = {"Reshape": [_ints("t", [2])], "Squeeze": [_ints("t", [0])], "Unsqueeze": [_ints("t", [0])]}
    inputs = ["c", "t"] if op in extra else ["c"]
    attrs = {"to": TensorProto.INT64} if op == "Cast" else {}
    chain = [_ints("c", [3, 5], [1, 2] if op in ("Squeeze", "Flatten") else None), *extra.get(op, []),
             helper.make_node(op, inputs, ["s0"], **attrs)]
    if op == "Unsqueeze":
        chain.append(helper.make_node("Reshape", ["s0", "n"], ["s"]))
        chain.append(_ints("n", [2]))
    elif op == "Flatten":
        chain += [_ints("n", [2]), helper.make_node("Reshape", ["s0", "n"], ["s"])]
    else:
        chain.append(helper.make_node("Identity", ["s0"], ["s"]))
    chain.sort(key=lambda n: n.op_type != "Constant")
    _at_limit(_cos(chain), 15)


@pytest.mark.parametrize("op", ["Abs", "Neg", "Transpose", "Relu", "ReduceMax", "Slice"])
def test_ops_that_move_values_bound_them_by_their_largest(op):
    # [3, 5] through an op that forgets the exact values: each of 2 elements is at most 5, so 5 ** 2
    if op == "ReduceMax":
        chain = [_ints("c", [3, 5]), helper.make_node("ReduceMax", ["c"], ["m"], keepdims=1),
                 helper.make_node("Concat", ["m", "m"], ["s"], axis=0)]
    elif op == "Slice":
        chain = [_ints("c", [3, 5]), _ints("b", [0]), _ints("e", [2]), helper.make_node("Slice", ["c", "b", "e"], ["s"])]
    else:
        chain = [_ints("c", [3, 5]), helper.make_node(op, ["c"], ["s0"]), helper.make_node("Abs", ["s0"], ["s"])]
    chain.sort(key=lambda n: n.op_type != "Constant")
    _at_limit(_cos(chain), 25)


@pytest.mark.parametrize("op, other, factor", [("Add", [1, 1], 36), ("Sub", [1, 1], 36), ("Mul", [2, 2], 100),
                                               ("Div", [1, 1], 15), ("Max", [4, 4], 15 * 0 + 25), ("Min", [9, 9], 81)])
def test_arithmetic_on_constant_shapes_bounds_the_result(op, other, factor):
    chain = [_ints("a", [3, 5]), _ints("b", other), helper.make_node(op, ["a", "b"], ["s"])]
    _at_limit(_cos(chain), factor)


def test_concat_of_constants_is_exact():
    chain = [_ints("a", [3]), _ints("b", [5]), helper.make_node("Concat", ["a", "b"], ["s"], axis=0)]
    _at_limit(_cos(chain), 15)


def test_division_by_less_than_one_is_not_provably_bounded():
    chain = [_ints("a", [3, 5]), _ints("b", [0, 1]), helper.make_node("Div", ["a", "b"], ["s"])]
    with pytest.raises(PolicyError, match="ConstantOfShape node 'y' takes its output size from a value that is not"):
        check_onnx(_cos(chain))


def test_a_shape_scaled_by_more_than_one_is_refused_and_by_one_accepted():
    def model(k: int) -> bytes:
        return _cos([helper.make_node("Shape", ["x"], ["d"]), _ints("k", [k]), helper.make_node("Mul", ["d", "k"], ["s"])])

    check_onnx(model(1))
    with pytest.raises(PolicyError, match="scaled by 2"):
        check_onnx(model(2))
    check_onnx(model(2), Policy(allow_unbounded_ops=frozenset({"ConstantOfShape"})))


def test_an_initializer_that_is_also_an_input_is_not_a_constant():
    """A caller may override such an initializer at run time (onnxruntime does): its value bounds nothing."""
    s = helper.make_tensor_value_info("s", TensorProto.INT64, [2])
    out = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["a", "b"])
    graph = helper.make_graph([helper.make_node("ConstantOfShape", ["s"], ["y"])], "g", [s], [out],
                              [helper.make_tensor("s", TensorProto.INT64, [2], [2, 2])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 8
    with pytest.raises(PolicyError, match="ConstantOfShape node 'y' takes its output size from a value that is not"):
        check_onnx(model.SerializeToString())


def test_a_huge_constant_added_to_a_shape_is_refused_not_a_traceback():
    chain = [helper.make_node("Shape", ["x"], ["d"]), helper.make_node("Cast", ["d"], ["f"], to=TensorProto.DOUBLE),
             helper.make_node("Constant", [], ["big"], value=helper.make_tensor("big", TensorProto.DOUBLE, [2], [1e300, 1e300])),
             helper.make_node("Add", ["f", "big"], ["g"]), helper.make_node("Cast", ["g"], ["s"], to=TensorProto.INT64)]
    with pytest.raises(PolicyError, match="ConstantOfShape node 'y' would allocate"):
        check_onnx(_cos(chain))
