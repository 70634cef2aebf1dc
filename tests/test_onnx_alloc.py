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
