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


def _scalar(name: str, value: float, dtype: int = TensorProto.INT64) -> onnx.NodeProto:
    return helper.make_node("Constant", [], [name], value=helper.make_tensor(name, dtype, [], [value]))


def test_range_of_constants_counts_its_elements_at_the_limit():
    data = _model([_scalar("a", 2), _scalar("b", 17), _scalar("d", 1), helper.make_node("Range", ["a", "b", "d"], ["y"])],
                  1, TensorProto.INT64)
    _at_limit(data, 15, "Range")
    down = _model([_scalar("a", 17), _scalar("b", 2), _scalar("d", -3), helper.make_node("Range", ["a", "b", "d"], ["y"])],
                  1, TensorProto.INT64)
    _at_limit(down, 5, "Range")


def test_range_over_a_shape_needs_a_whole_constant_step():
    def model(step: float) -> bytes:
        return _model([helper.make_node("Shape", ["x"], ["s"]), _ints("i", [0]),
                       helper.make_node("Gather", ["s", "i"], ["n0"], axis=0),
                       helper.make_node("Squeeze", ["n0", "i"], ["n"]),
                       helper.make_node("Cast", ["n"], ["nf"], to=TensorProto.FLOAT),
                       _scalar("a", 0.0, TensorProto.FLOAT), _scalar("d", step, TensorProto.FLOAT),
                       helper.make_node("Range", ["a", "nf", "d"], ["y"])], 1)

    check_onnx(model(1.0))
    check_onnx(model(-1.0))
    with pytest.raises(PolicyError, match="Range node 'y' has a step that is not a constant of magnitude >= 1"):
        check_onnx(model(0.5))
    check_onnx(model(0.5), Policy(allow_unbounded_ops=frozenset({"Range"})))


def _resize(scales: list[float] | None, sizes: list[int] | None) -> bytes:
    nodes = [helper.make_node("Constant", [], ["roi"], value=helper.make_tensor("roi", TensorProto.FLOAT, [0], []))]
    ins = ["x", "roi", "", ""]
    if scales is not None:
        nodes.append(helper.make_node("Constant", [], ["sc"], value=helper.make_tensor("sc", TensorProto.FLOAT, [2], scales)))
        ins[2] = "sc"
    if sizes is not None:
        nodes.append(_ints("sz", sizes))
        ins[3] = "sz"
    return _model([*nodes, helper.make_node("Resize", ins, ["y"])])


def test_resize_is_bounded_by_its_scales_or_its_sizes():
    _at_limit(_resize([3.0, 5.0], None), 15, "Resize")
    _at_limit(_resize([0.5, 5.0], None), 5, "Resize")
    _at_limit(_resize(None, [3, 5]), 15, "Resize")


def test_resize_by_scales_from_data_is_refused():
    nodes = [helper.make_node("Constant", [], ["roi"], value=helper.make_tensor("roi", TensorProto.FLOAT, [0], [])),
             _ints("i", [0]), helper.make_node("Slice", ["x", "i", "i"], ["row"]),
             helper.make_node("Reshape", ["x", "n"], ["flat"]), _ints("n", [-1]), _ints("two", [2]),
             helper.make_node("Slice", ["flat", "i", "two"], ["sc"]),
             helper.make_node("Resize", ["x", "roi", "sc"], ["y"])]
    nodes.sort(key=lambda n: n.op_type != "Constant")
    with pytest.raises(PolicyError, match="^Resize node 'y' takes its output size from a value that is not"):
        check_onnx(_model(nodes))


def test_resize_to_the_shape_of_a_real_tensor_passes():
    nodes = [helper.make_node("Constant", [], ["roi"], value=helper.make_tensor("roi", TensorProto.FLOAT, [0], [])),
             helper.make_node("Shape", ["x"], ["sz"]), helper.make_node("Resize", ["x", "roi", "", "sz"], ["y"])]
    check_onnx(_model(nodes))


def test_pad_by_constants_grows_by_one_plus_both_sides_per_axis():
    data = _model([_ints("p", [1, 0, 1, 3]), helper.make_node("Pad", ["x", "p"], ["y"])])
    _at_limit(data, (1 + 1 + 1) * (1 + 0 + 3), "Pad")
    neg = _model([_ints("p", [0, -1, 0, -1]), helper.make_node("Pad", ["x", "p"], ["y"])])
    _at_limit(neg, 3, "Pad")  # cropping counts as growth: never an under-estimate


def test_pad_by_a_shape_is_bounded_by_its_length():
    data = _model([helper.make_node("Shape", ["x"], ["s"]), helper.make_node("Concat", ["s", "s"], ["p"], axis=0),
                   helper.make_node("Pad", ["x", "p"], ["y"])])
    check_onnx(data)
    big = _model([helper.make_node("Shape", ["x"], ["s"]), _ints("c", [2, 2]), helper.make_node("Add", ["s", "c"], ["t"]),
                  helper.make_node("Concat", ["t", "t"], ["p"], axis=0), helper.make_node("Pad", ["x", "p"], ["y"])])
    _at_limit(big, 2 ** 4, "Pad")


def test_expand_and_tile_by_a_shape_plus_a_constant_are_bounded_by_the_constant_to_the_rank():
    for op in ("Expand", "Tile"):
        data = _model([helper.make_node("Shape", ["x"], ["s0"]), _ints("c", [3, 3]),
                       helper.make_node("Add", ["s0", "c"], ["s"]), helper.make_node(op, ["x", "s"], ["y"])])
        _at_limit(data, 9, op)


def test_one_hot_depth_is_the_growth():
    data = _model([_ints("i", [0]), helper.make_node("Cast", ["x"], ["ix"], to=TensorProto.INT64),
                   _scalar("depth", 7), helper.make_node("Constant", [], ["v"], value=helper.make_tensor(
                       "v", TensorProto.FLOAT, [2], [0.0, 1.0])),
                   helper.make_node("OneHot", ["ix", "depth", "v"], ["y"])], 3)
    _at_limit(data, 7, "OneHot")


def test_a_window_of_constant_size_and_one_from_data():
    data = _model([_scalar("n", 9), helper.make_node("HannWindow", ["n"], ["y"])], 1, opset=18)
    _at_limit(data, 9, "HannWindow")
    from_data = _model([helper.make_node("Cast", ["x"], ["i"], to=TensorProto.INT64),
                        helper.make_node("ReduceMax", ["i"], ["n"], keepdims=0),
                        helper.make_node("HannWindow", ["n"], ["y"])], 1, opset=18)
    with pytest.raises(PolicyError, match="^HannWindow node 'y' takes its output size from a value that is not"):
        check_onnx(from_data)


def _identity_loop_body() -> onnx.GraphProto:
    """A Loop body that carries its condition and one float [N, 4] value through unchanged."""
    return helper.make_graph(
        [helper.make_node("Identity", ["c_in"], ["c_out"]), helper.make_node("Identity", ["v_in"], ["v_out"])], "body",
        [helper.make_tensor_value_info("i", TensorProto.INT64, []), helper.make_tensor_value_info("c_in", TensorProto.BOOL, []),
         helper.make_tensor_value_info("v_in", TensorProto.FLOAT, ["N", 4])],
        [helper.make_tensor_value_info("c_out", TensorProto.BOOL, []),
         helper.make_tensor_value_info("v_out", TensorProto.FLOAT, ["N", 4])])


def test_a_loop_with_a_constant_trip_count_is_limited_by_it():
    body = _identity_loop_body()
    data = _model([_scalar("m", 10), helper.make_node("Constant", [], ["t"], value=helper.make_tensor("t", TensorProto.BOOL, [], [True])),
                   helper.make_node("Loop", ["m", "t", "x"], ["y"], body=body)])
    _at_limit(data, 10, "Loop")


def _rounded_scale(op: str) -> list:
    """Shape * 1e9 * op(1e-9): the op makes the tiny factor 1, so the shape is scaled by 1e9."""
    tiny = [helper.make_node("Constant", [], ["t"], value=helper.make_tensor("t", TensorProto.DOUBLE, [1], [1e-9]))]
    if op == "Clip":
        tiny += [helper.make_node("Constant", [], ["lo"], value=helper.make_tensor("lo", TensorProto.DOUBLE, [], [1.0])),
                 helper.make_node("Clip", ["t", "lo"], ["r"])]
    else:
        tiny.append(helper.make_node(op, ["t"], ["r"]))
    return [helper.make_node("Shape", ["x"], ["d"]), helper.make_node("Cast", ["d"], ["f"], to=TensorProto.DOUBLE),
            helper.make_node("Constant", [], ["k"], value=helper.make_tensor("k", TensorProto.DOUBLE, [1], [1e9])),
            helper.make_node("Mul", ["f", "k"], ["g"]), *tiny, helper.make_node("Mul", ["g", "r"], ["h"]),
            helper.make_node("Cast", ["h"], ["s"], to=TensorProto.INT64)]


@pytest.mark.parametrize("op", ["Sign", "Ceil", "Round", "Clip"])
def test_ops_that_round_a_tiny_value_up_do_not_hide_a_scaled_shape(op):
    with pytest.raises(PolicyError, match="^ConstantOfShape node 'y' takes its size from a shape scaled by"):
        check_onnx(_cos(_rounded_scale(op)))


def test_a_scalar_size_from_a_shape_plus_a_constant_is_one_element_not_an_unknown_vector():
    def model(add: int) -> bytes:
        return _model([helper.make_node("Shape", ["x"], ["s"]), _ints("i", [0]),
                       helper.make_node("Gather", ["s", "i"], ["n0"], axis=0),
                       helper.make_node("Squeeze", ["n0", "i"], ["n1"]), _scalar("c", add),
                       helper.make_node("Add", ["n1", "c"], ["n"]), helper.make_node("HannWindow", ["n"], ["y"])], 1)

    check_onnx(model(2))
    _at_limit(model(1000), 1000, "HannWindow")


def test_a_range_between_infinities_is_refused():
    inf = float("inf")
    data = _model([_scalar("a", inf, TensorProto.FLOAT), _scalar("b", inf, TensorProto.FLOAT),
                   _scalar("d", 1.0, TensorProto.FLOAT), helper.make_node("Range", ["a", "b", "d"], ["y"])], 1)
    with pytest.raises(PolicyError, match="^Range node 'y' would allocate inf times"):
        check_onnx(data)


def test_opting_one_op_in_does_not_excuse_another():
    data = _model([_ints("r", [2, 2000]), helper.make_node("Tile", ["x", "r"], ["t"]),
                   _ints("s", [1, 8000]), helper.make_node("ConstantOfShape", ["s"], ["c"]),
                   helper.make_node("Add", ["t", "c"], ["y"])])
    with pytest.raises(PolicyError, match="^ConstantOfShape node 'c'"):
        check_onnx(data, Policy(max_alloc_elements=1000, allow_unbounded_ops=frozenset({"Tile"})))
    with pytest.raises(PolicyError, match="^Tile node 't'"):
        check_onnx(data, Policy(max_alloc_elements=1000, allow_unbounded_ops=frozenset({"ConstantOfShape"})))
    check_onnx(data, Policy(max_alloc_elements=1000, allow_unbounded_ops=frozenset({"Tile", "ConstantOfShape"})))


def test_constant_attribute_forms_are_exact():
    ints = [helper.make_node("Constant", [], ["s"], value_ints=[3, 5])]
    _at_limit(_cos(ints), 15)
    one = [helper.make_node("Constant", [], ["n"], value_int=7), _ints("z", [0]), helper.make_node("Unsqueeze", ["n", "z"], ["s"])]
    one.sort(key=lambda n: n.op_type != "Constant")
    _at_limit(_cos(one, 1), 7)


def test_a_shape_filled_by_constant_of_shape_carries_its_fill_value():
    """[6, 6] allocates 36 times: the one fill value is not the shape's exact contents (it was read as [6])."""
    chain = [_ints("two", [2]), helper.make_node("ConstantOfShape", ["two"], ["s"],
                                                 value=helper.make_tensor("v", TensorProto.INT64, [1], [6]))]
    _at_limit(_cos(chain), 36)


def test_a_branch_sees_the_constants_of_the_graph_around_it():
    branch = helper.make_graph([helper.make_node("ConstantOfShape", ["s"], ["c"])], "then", [],
                               [helper.make_tensor_value_info("c", TensorProto.FLOAT, ["a", "b"])])
    other = helper.make_graph([helper.make_node("Identity", ["x"], ["o"])], "else", [],
                              [helper.make_tensor_value_info("o", TensorProto.FLOAT, ["a", "b"])])
    data = _model([_ints("s", [3, 5]), helper.make_node("Constant", [], ["b"], value=helper.make_tensor("b", TensorProto.BOOL, [], [True])),
                   helper.make_node("If", ["b"], ["y"], then_branch=branch, else_branch=other)])
    _at_limit(data, 15)


def test_a_size_taking_op_in_a_foreign_domain_is_not_an_onnx_op():
    """``com.acme::ConstantOfShape`` is the custom domain's business (allowed_domains), not this check's."""
    graph = helper.make_graph([_ints("s", [1 << 20, 1 << 20]), helper.make_node("ConstantOfShape", ["s"], ["y"], domain="com.acme")],
                              "g", [], [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["a", "b"])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18), helper.make_opsetid("com.acme", 1)])
    model.ir_version = 8
    check_onnx(model.SerializeToString(), Policy(allowed_domains=frozenset({"com.acme"})))


def test_a_size_from_a_shape_times_a_fraction_or_from_a_comparison_is_bounded():
    half = _cos([helper.make_node("Shape", ["x"], ["d"]), _ints("two", [2]), helper.make_node("Div", ["d", "two"], ["s"])])
    check_onnx(half, _limit(1))
    flags = _cos([helper.make_node("Shape", ["x"], ["d"]), _ints("z", [0, 0]), helper.make_node("Greater", ["d", "z"], ["b"]),
                  helper.make_node("Cast", ["b"], ["s"], to=TensorProto.INT64)])
    check_onnx(flags, _limit(1))


def _floats(name: str, values: list[float]) -> onnx.NodeProto:
    return helper.make_node("Constant", [], [name], value=helper.make_tensor(
        name, TensorProto.FLOAT, [len(values)], values))


# Older opsets carry the same sizes elsewhere: Resize-10 takes (X, scales), Upsample-7 and Pad-2 take
# attributes. A model declaring such an opset must not slip its sizes past the check.
def test_resize_10_scales_are_its_second_input():
    data = _model([_floats("sc", [1.0, 1.0, 4.0, 5.0]), helper.make_node("Resize", ["x4", "sc"], ["y"])],
                  rank=4, inputs=[helper.make_tensor_value_info("x4", TensorProto.FLOAT, ["N", 1, 2, 2])], opset=10)
    _at_limit(data, 20, op="Resize")


def test_upsample_7_scales_attribute_is_bounded():
    data = _model([helper.make_node("Upsample", ["x4"], ["y"], scales=[1.0, 1.0, 4.0, 5.0])], rank=4,
                  inputs=[helper.make_tensor_value_info("x4", TensorProto.FLOAT, ["N", 1, 2, 2])], opset=7)
    _at_limit(data, 20, op="Upsample")


def test_pad_2_pads_attribute_is_bounded():
    data = _model([helper.make_node("Pad", ["x"], ["y"], pads=[0, 1, 0, 2])], opset=10)
    _at_limit(data, 4, op="Pad")  # axis 1: 1 + 1 + 2


def test_old_opset_forms_with_huge_sizes_are_refused():
    huge = [1.0, 1.0, 1e6, 1e6]
    x4 = [helper.make_tensor_value_info("x4", TensorProto.FLOAT, ["N", 1, 2, 2])]
    for data in (
        _model([_floats("sc", huge), helper.make_node("Resize", ["x4", "sc"], ["y"])], rank=4, inputs=x4, opset=10),
        _model([helper.make_node("Upsample", ["x4"], ["y"], scales=huge)], rank=4, inputs=x4, opset=7),
        _model([helper.make_node("Pad", ["x"], ["y"], pads=[0, 10**9, 0, 10**9])], opset=10),
    ):
        with pytest.raises(PolicyError, match=r"would allocate .* times its input"):
            check_onnx(data)


def test_a_quotient_of_constants_keeps_its_own_exact_values():
    # [30, 50] / 10 is [3, 5]: 15 times, not the dividend's 1500
    chain = [_ints("a", [30, 50]), _ints("b", [10]), helper.make_node("Div", ["a", "b"], ["s"])]
    _at_limit(_cos(chain), 15)


def test_a_range_step_divided_down_is_not_read_as_the_dividend():
    """Regression: Div handed on its dividend's exact values, so a step of 1 / 1e8 was read as 1 and
    Range(0, 1e8, 1 / 1e8), 1e16 elements, passed as 1e8; 100 / -1 read as 100 flipped a Range."""
    tiny = _model([_scalar("a", 0.0, TensorProto.FLOAT), _scalar("b", 1e8, TensorProto.FLOAT),
                   _scalar("one", 1.0, TensorProto.FLOAT), _scalar("big", 1e8, TensorProto.FLOAT),
                   helper.make_node("Div", ["one", "big"], ["d"]), helper.make_node("Range", ["a", "b", "d"], ["y"])], 1)
    with pytest.raises(PolicyError, match="^Range node 'y' has a step that is not a constant of magnitude >= 1"):
        check_onnx(tiny)
    flipped = _model([_scalar("h", 100), _scalar("m", -1), helper.make_node("Div", ["h", "m"], ["a"]),
                      _scalar("b", 0), _scalar("d", 1), helper.make_node("Range", ["a", "b", "d"], ["y"])], 1, TensorProto.INT64)
    _at_limit(flipped, 100, "Range")


def test_a_clip_without_a_minimum_is_bounded_by_its_input_and_maximum():
    # the absent min bounds nothing: 0.5 * 100 = 50 per element, 2500 for two
    chain = [helper.make_node("Constant", [], ["t"], value=helper.make_tensor("t", TensorProto.FLOAT, [2], [0.5, 0.5])),
             _scalar("hi", 0.5, TensorProto.FLOAT), helper.make_node("Clip", ["t", "", "hi"], ["c"]),
             helper.make_node("Constant", [], ["k"], value=helper.make_tensor("k", TensorProto.FLOAT, [1], [100.0])),
             helper.make_node("Mul", ["c", "k"], ["m"]), helper.make_node("Cast", ["m"], ["s"], to=TensorProto.INT64)]
    _at_limit(_cos(chain), 2500)


def _training(graph_nodes: list, where: str) -> bytes:
    model = onnx.load_from_string(_model([helper.make_node("Identity", ["x"], ["y"])]))
    graph = helper.make_graph(graph_nodes, "train", [], [helper.make_tensor_value_info("z", TensorProto.FLOAT, ["a", "b"])])
    info = model.training_info.add()
    getattr(info, where).CopyFrom(graph)
    return model.SerializeToString()


@pytest.mark.parametrize("where", ["initialization", "algorithm"])
def test_training_graphs_are_checked_like_the_inference_graph(where):
    data = _training([_ints("s", [3, 5]), helper.make_node("ConstantOfShape", ["s"], ["z"])], where)
    _at_limit(data, 15)
    shaped = _training([helper.make_node("Shape", ["x"], ["s"]), helper.make_node("ConstantOfShape", ["s"], ["z"])], where)
    check_onnx(shaped, _limit(1))


def test_a_size_with_a_one_in_it_grows_by_the_others():
    _at_limit(_cos([_ints("s", [1, 7])]), 7)


def test_a_zero_filled_shape_plus_a_constant_is_bounded_by_the_constant():
    chain = [_ints("two", [2]), helper.make_node("ConstantOfShape", ["two"], ["zf"]), _ints("k", [2]),
             helper.make_node("Cast", ["zf"], ["z"], to=TensorProto.INT64),
             helper.make_node("Mul", ["z", "k"], ["m"]), _ints("c", [5, 5]), helper.make_node("Add", ["m", "c"], ["s"])]
    chain.sort(key=lambda n: n.op_type != "Constant")
    _at_limit(_cos(chain), 25)


def test_ceil_of_a_constant_may_round_up_by_one():
    chain = [helper.make_node("Constant", [], ["f"], value=helper.make_tensor("f", TensorProto.FLOAT, [2], [3.0, 5.0])),
             helper.make_node("Ceil", ["f"], ["g"]), helper.make_node("Cast", ["g"], ["s"], to=TensorProto.INT64)]
    _at_limit(_cos(chain), 36)
    from_data = _cos([helper.make_node("Ceil", ["x"], ["g"]), helper.make_node("Cast", ["g"], ["gi"], to=TensorProto.INT64),
                      helper.make_node("ReduceMax", ["gi"], ["m"], keepdims=0), helper.make_node("Shape", ["x"], ["d"]),
                      helper.make_node("Add", ["d", "m"], ["s"])])
    with pytest.raises(PolicyError, match="^ConstantOfShape node 'y' takes its output size from a value that is not"):
        check_onnx(from_data)


def test_ceil_keeps_a_shape_scale():
    chain = [helper.make_node("Shape", ["x"], ["d"]), _ints("two", [2]), helper.make_node("Mul", ["d", "two"], ["m"]),
             helper.make_node("Cast", ["m"], ["f"], to=TensorProto.FLOAT), helper.make_node("Ceil", ["f"], ["g"]),
             helper.make_node("Cast", ["g"], ["s"], to=TensorProto.INT64)]
    with pytest.raises(PolicyError, match="^ConstantOfShape node 'y' takes its size from a shape scaled by 2"):
        check_onnx(_cos(chain))


def test_slice_bounds_by_its_data_not_by_its_ends():
    chain = [_ints("c", [3, 5]), _ints("b", [0]), _ints("e", [1000]), helper.make_node("Slice", ["c", "b", "e"], ["s"])]
    _at_limit(_cos(chain), 25)


@pytest.mark.parametrize("op", ["Add", "Mul", "Div"])
def test_arithmetic_with_a_value_from_data_is_not_provably_bounded(op):
    data_value = [helper.make_node("Cast", ["x"], ["xi"], to=TensorProto.INT64), helper.make_node("ReduceMax", ["xi"], ["v"], keepdims=0)]
    for first, second in (("d", "v"), ("v", "two")):
        chain = [helper.make_node("Shape", ["x"], ["d"]), _ints("two", [2, 2]), *data_value,
                 helper.make_node(op, [first, second], ["s"])]
        with pytest.raises(PolicyError, match="^ConstantOfShape node 'y' takes its output size from a value that is not"):
            check_onnx(_cos(chain))


def test_a_division_by_a_shape_is_not_provably_bounded():
    chain = [helper.make_node("Shape", ["x"], ["d"]), _ints("c", [8, 8]), helper.make_node("Div", ["c", "d"], ["s"])]
    with pytest.raises(PolicyError, match="^ConstantOfShape node 'y' takes its output size from a value that is not"):
        check_onnx(_cos(chain))


@pytest.mark.parametrize("order", [("d", "d"), ("two", "d")])
def test_a_sum_or_product_that_doubles_a_shape_is_refused(order):
    op = "Add" if order == ("d", "d") else "Mul"
    chain = [helper.make_node("Shape", ["x"], ["d"]), _ints("two", [2]), helper.make_node(op, list(order), ["s"])]
    with pytest.raises(PolicyError, match="^ConstantOfShape node 'y' takes its size from a shape scaled by 2"):
        check_onnx(_cos(chain))


def test_a_shape_op_of_a_foreign_domain_is_not_a_shape():
    graph = helper.make_graph([helper.make_node("Shape", ["x"], ["s"], domain="com.acme"),
                               helper.make_node("ConstantOfShape", ["s"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["a", "b"])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18), helper.make_opsetid("com.acme", 1)])
    model.ir_version = 8
    with pytest.raises(PolicyError, match="^ConstantOfShape node 'y' takes its output size from a value that is not"):
        check_onnx(model.SerializeToString(), Policy(allowed_domains=frozenset({"com.acme"})))


def test_non_constant_scales_are_refused_for_resize_and_upsample():
    resize = _model([helper.make_node("Constant", [], ["roi"], value=helper.make_tensor("roi", TensorProto.FLOAT, [0], [])),
                     _floats("c", [1.0, 2.0]), helper.make_node("Abs", ["c"], ["sc"]),
                     helper.make_node("Resize", ["x", "roi", "sc"], ["y"])])
    with pytest.raises(PolicyError, match="^Resize node 'y' has scales that are not constants"):
        check_onnx(resize)
    upsample = _model([_floats("c", [1.0, 2.0]), helper.make_node("Abs", ["c"], ["sc"]),
                       helper.make_node("Upsample", ["x", "sc"], ["y"])], opset=9)
    with pytest.raises(PolicyError, match="^Upsample node 'y' has scales that are not constants"):
        check_onnx(upsample)


def test_resize_to_a_shape_plus_a_constant_is_bounded_by_the_constant_to_the_rank():
    nodes = [helper.make_node("Constant", [], ["roi"], value=helper.make_tensor("roi", TensorProto.FLOAT, [0], [])),
             helper.make_node("Shape", ["x"], ["d"]), _ints("c", [9, 9]), helper.make_node("Add", ["d", "c"], ["sz"]),
             helper.make_node("Resize", ["x", "roi", "", "sz"], ["y"])]
    _at_limit(_model(nodes), 81, "Resize")


def test_resize_with_a_nan_scale_is_refused():
    data = _resize([float("nan"), 2.0], None)
    with pytest.raises(PolicyError, match="^Resize node 'y' would allocate inf times"):
        check_onnx(data)


def test_range_to_a_shape_plus_a_constant_counts_one_dimension():
    def model(add: int) -> bytes:
        return _model([helper.make_node("Shape", ["x"], ["s"]), _ints("i", [0]),
                       helper.make_node("Gather", ["s", "i"], ["n0"], axis=0),
                       helper.make_node("Squeeze", ["n0", "i"], ["n1"]), _scalar("c", add),
                       helper.make_node("Add", ["n1", "c"], ["n"]), _scalar("a", 0), _scalar("d", 1),
                       helper.make_node("Range", ["a", "n", "d"], ["y"])], 1, TensorProto.INT64)

    _at_limit(model(1000), 1000, "Range")


def test_a_range_with_a_zero_step_is_empty_not_a_traceback():
    data = _model([_scalar("a", 0), _scalar("b", 10), _scalar("d", 0), helper.make_node("Range", ["a", "b", "d"], ["y"])],
                  1, TensorProto.INT64)
    check_onnx(data, _limit(1))


def test_a_size_of_unknown_length_counts_as_a_long_vector():
    """A shape vector sliced by a data-driven end has no known length: a constant > 1 in it is refused."""
    def model(add: int) -> bytes:
        return _cos([helper.make_node("Shape", ["x"], ["d"]), helper.make_node("Cast", ["x"], ["xi"], to=TensorProto.INT64),
                      helper.make_node("ReduceMax", ["xi"], ["e1"], keepdims=0),
                      _ints("z", [0]), helper.make_node("Unsqueeze", ["e1", "z"], ["e"]),
                      helper.make_node("Slice", ["d", "z", "e"], ["p"]), _ints("c", [add]),
                      helper.make_node("Add", ["p", "c"], ["s"])])

    check_onnx(model(1), _limit(1))
    with pytest.raises(PolicyError, match=r"^ConstantOfShape node 'y' would allocate 1\.84e\+19 times"):
        check_onnx(model(2))


def test_a_branch_refuses_a_shape_plus_a_constant_of_unknown_length_there():
    """Inference does not report a branch's value shapes: the length counts as unknown (refused, not a traceback)."""
    branch = helper.make_graph([helper.make_node("Shape", ["x"], ["d"]), helper.make_node("Add", ["d", "c"], ["s"]),
                                helper.make_node("ConstantOfShape", ["s"], ["o"])], "then", [],
                               [helper.make_tensor_value_info("o", TensorProto.FLOAT, ["a", "b"])])
    other = helper.make_graph([helper.make_node("Identity", ["x"], ["o2"])], "else", [],
                              [helper.make_tensor_value_info("o2", TensorProto.FLOAT, ["a", "b"])])
    data = _model([_ints("c", [3, 3]), helper.make_node("Constant", [], ["b"], value=helper.make_tensor("b", TensorProto.BOOL, [], [True])),
                   helper.make_node("If", ["b"], ["y"], then_branch=branch, else_branch=other)])
    with pytest.raises(PolicyError, match=r"^ConstantOfShape node 'o' would allocate 3\.43e\+30 times"):
        check_onnx(data)


def test_a_loop_without_a_trip_count_is_refused_by_name():
    body = _identity_loop_body()
    t = helper.make_node("Constant", [], ["t"], value=helper.make_tensor("t", TensorProto.BOOL, [], [True]))
    for name, label in (("", "'y'"), ("forever", "'forever'")):
        data = _model([t, helper.make_node("Loop", ["", "t", "x"], ["y"], body=body, name=name)])
        with pytest.raises(PolicyError, match=rf"^Loop node {label} has no trip count \(M\): it can run without bound"):
            check_onnx(data)
        check_onnx(data, Policy(allow_unbounded_ops=frozenset({"Loop"})))


def test_a_range_from_minus_c_to_c_counts_both_halves():
    """Regression: only the larger end's constant was counted, so Range(-c, c) passed at half its size."""
    data = _model([_scalar("c", 600), helper.make_node("Neg", ["c"], ["a"]), _scalar("b", 600), _scalar("d", 1),
                   helper.make_node("Range", ["a", "b", "d"], ["y"])], 1, TensorProto.INT64)
    _at_limit(data, 1200, "Range")


def test_an_empty_range_allocates_nothing_even_at_a_zero_limit():
    for start, limit, step in ((0, 10, 0), (10, 0, 1)):
        data = _model([_scalar("a", start), _scalar("b", limit), _scalar("d", step), helper.make_node("Range", ["a", "b", "d"], ["y"])],
                      1, TensorProto.INT64)
        check_onnx(data, _limit(0))


def test_an_empty_constant_adds_nothing_to_a_shape():
    empty = helper.make_node("Constant", [], ["e"], value=helper.make_tensor("e", TensorProto.INT64, [0], []))
    chain = [helper.make_node("Shape", ["x"], ["d"]), empty, helper.make_node("Concat", ["d", "e"], ["p"], axis=0),
             _ints("c", [1000]), helper.make_node("Add", ["p", "c"], ["s"])]
    _at_limit(_cos(chain), 1000 * 1000)


def test_a_quotient_by_a_vector_divides_element_by_element():
    chain = [_ints("a", [30, 50]), _ints("b", [10, 5]), helper.make_node("Div", ["a", "b"], ["s"])]
    _at_limit(_cos(chain), 30)


def test_a_division_by_an_empty_tensor_is_refused_not_a_traceback():
    empty = helper.make_node("Constant", [], ["e"], value=helper.make_tensor("e", TensorProto.INT64, [0], []))
    with pytest.raises(PolicyError, match="^ConstantOfShape node 'y' takes its output size from a value that is not"):
        check_onnx(_cos([_ints("a", [5]), empty, helper.make_node("Div", ["a", "e"], ["s"])], 0))


def test_a_fill_value_that_cannot_be_read_is_refused_not_a_traceback():
    data = _model([_ints("two", [2]), helper.make_node("ConstantOfShape", ["two"], ["f"], value=helper.make_tensor(
                       "v", TensorProto.BFLOAT16, [1], [6.0])),
                   helper.make_node("Cast", ["f"], ["s"], to=TensorProto.INT64), helper.make_node("ConstantOfShape", ["s"], ["y"])],
                  opset=20)
    with pytest.raises(PolicyError, match="^ConstantOfShape node 'y' takes its output size from a value that is not"):
        check_onnx(data)


def test_a_constant_of_the_largest_readable_size_is_read():
    big = helper.make_node("Constant", [], ["c"], value=helper.make_tensor("c", TensorProto.INT64, [4096], [3, 5] + [0] * 4094))
    chain = [big, _ints("b", [0]), _ints("e", [2]), helper.make_node("Slice", ["c", "b", "e"], ["s"])]
    _at_limit(_cos(chain), 25)
    bigger = helper.make_node("Constant", [], ["c"], value=helper.make_tensor("c", TensorProto.INT64, [4097], [3, 5] + [0] * 4095))
    with pytest.raises(PolicyError, match="^ConstantOfShape node 'y' takes its output size from a value that is not"):
        check_onnx(_cos([bigger, *chain[1:]]))


def test_a_loop_in_a_training_graph_is_limited_by_its_trip_count():
    """onnx.checker does not validate training graphs: even a Loop missing its condition is held to M."""
    body = helper.make_graph([helper.make_node("Identity", ["c_in"], ["c_out"])], "body",
                             [helper.make_tensor_value_info("i", TensorProto.INT64, []),
                              helper.make_tensor_value_info("c_in", TensorProto.BOOL, [])],
                             [helper.make_tensor_value_info("c_out", TensorProto.BOOL, [])])
    _at_limit(_training([_scalar("m", 10), helper.make_node("Loop", ["m"], ["z"], body=body)], "algorithm"), 10, "Loop")


# onnx.checker does not validate training graphs, so what it would refuse in the inference graph can
# reach the allocation check there; these verdicts are the check's own.
def test_a_training_graph_spelling_the_default_domain_ai_onnx_is_checked():
    const = _ints("s", [3, 5])
    const.domain = "ai.onnx"
    data = _training([const, helper.make_node("ConstantOfShape", ["s"], ["z"], domain="ai.onnx")], "algorithm")
    _at_limit(data, 15)


def test_a_constant_int_with_a_stray_tensor_field_is_read_as_its_int():
    attr = helper.make_attribute("value_int", 7)
    attr.t.CopyFrom(helper.make_tensor("t", TensorProto.INT64, [2], [1 << 30, 1 << 30]))
    const = helper.make_node("Constant", [], ["n"])
    const.attribute.append(attr)
    data = _training([const, _ints("zz", [0]), helper.make_node("Unsqueeze", ["n", "zz"], ["s"]),
                      helper.make_node("ConstantOfShape", ["s"], ["z"])], "algorithm")
    _at_limit(data, 7)


def test_a_range_with_an_empty_step_is_refused_not_a_traceback():
    empty = helper.make_node("Constant", [], ["e"], value=helper.make_tensor("e", TensorProto.INT64, [0], []))
    data = _training([_scalar("a", 0), _scalar("b", 10), empty, helper.make_node("Range", ["a", "b", "e"], ["z"])], "algorithm")
    with pytest.raises(PolicyError, match="^Range node 'z' has a step that is not a constant of magnitude >= 1"):
        check_onnx(data)


def test_a_zero_filled_shape_ignores_a_stray_tensor_attribute():
    fill = helper.make_node("ConstantOfShape", ["two"], ["f"])
    fill.attribute.append(helper.make_attribute("junk", helper.make_tensor("v", TensorProto.INT64, [1], [1 << 30])))
    data = _training([_ints("two", [2]), fill, helper.make_node("Cast", ["f"], ["fi"], to=TensorProto.INT64),
                      _ints("c", [1, 1]), helper.make_node("Add", ["fi", "c"], ["s"]),
                      helper.make_node("ConstantOfShape", ["s"], ["z"])], "algorithm")
    check_onnx(data, _limit(2))  # [2] zeros, then zeros + 1: one element, whatever the (unknown here) length


def test_col2im_without_its_block_shape_is_refused_with_its_image_growth():
    data = _training([helper.make_node("Shape", ["x"], ["d"]), _ints("c", [2, 2]), helper.make_node("Add", ["d", "c"], ["s"]),
                      helper.make_node("Col2Im", ["x", "s"], ["z"])], "algorithm")
    with pytest.raises(PolicyError, match=r"^Col2Im node 'z' would allocate 1\.84e\+19 times"):
        check_onnx(data)  # the image shape's length is unknown in a training graph: 2 ** 64; no block shape
    check_onnx(data, Policy(allow_unbounded_ops=frozenset({"Col2Im"})))


def test_an_absent_input_adds_no_elements_to_a_concatenated_shape():
    data = _training([_ints("a", [3, 5]), helper.make_node("Concat", ["a", ""], ["s"], axis=0),
                      helper.make_node("ConstantOfShape", ["s"], ["z"])], "algorithm")
    _at_limit(data, 15)


def test_pads_of_odd_length_are_not_read_optimistically():
    """Malformed pads (the checker refuses them, but not in a training graph) count each value once."""
    data = _training([_ints("p", [0, 5, 0]), helper.make_node("Pad", ["x", "p"], ["z"])], "algorithm")
    _at_limit(data, 6, "Pad")  # 1 + 0 + 5


def test_a_size_whose_length_comes_from_a_shape_value_has_that_length():
    """ConstantOfShape(Shape(Shape(x))) has Shape(x)'s length (2) only by data propagation: 2 ** 2, not 2 ** 64."""
    chain = [helper.make_node("Shape", ["x"], ["d"]), helper.make_node("Shape", ["d"], ["dd"]),
             helper.make_node("ConstantOfShape", ["dd"], ["zf"], value=helper.make_tensor("v", TensorProto.INT64, [1], [0])),
             _ints("c", [2]), helper.make_node("Add", ["zf", "c"], ["s"])]
    _at_limit(_cos(chain), 4)


@pytest.mark.parametrize("graph, policy", [
    ("elementwise", Policy()),
    ("tile allowed", Policy(allow_unbounded_ops=frozenset({"Tile"}))),
    ("custom-domain tile", Policy(allowed_domains=frozenset({"", "ai.onnx", "com.example"}))),
])
def test_a_graph_without_a_size_taking_op_to_judge_is_not_analysed(monkeypatch, graph, policy):
    """The analysis (shape ranks, a walk over every node) costs time on a large model: it runs only when
    some standard-domain size-taking op is left for it to judge."""
    import registry.onnx_alloc as alloc

    def analysed(*args, **kwargs):
        raise AssertionError("the graph was analysed")

    if graph == "elementwise":
        nodes = [helper.make_node("Relu", ["x"], ["r"]), helper.make_node("Add", ["r", "x"], ["y"])]
    else:
        domain = "com.example" if graph == "custom-domain tile" else ""
        nodes = [_ints("reps", [3, 5]), helper.make_node("Tile", ["x", "reps"], ["y"], domain=domain)]
    data = _model(nodes)
    if graph == "custom-domain tile":
        model = onnx.load_from_string(data)
        model.opset_import.append(helper.make_opsetid("com.example", 1))
        data = model.SerializeToString()
    monkeypatch.setattr(alloc, "_ranks", analysed)
    check_onnx(data, policy)
    with pytest.raises(AssertionError, match="the graph was analysed"):  # one size-taking op to judge: analysed
        check_onnx(_model([_ints("reps", [3, 5]), helper.make_node("Tile", ["x", "reps"], ["y"])]), Policy())
