"""Models for the update tests: a small MLP whose later versions change only their last layer."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

WIDTH = 320  # weights of 400 KiB (two 256 KiB chunks, a file each), biases of 1280 B (grouped per layer)
LAYERS = 4


def mlp_proto(seed: int = 0, last_seed: int | None = None, width: int = WIDTH, layers: int = LAYERS,
              extra_node: bool = False) -> Any:
    """Y = relu(...relu(X W0 + b0)... ) W_last + b_last; ``last_seed`` changes only the last layer's values.

    Names look like a PyTorch export's (``layer.3.weight``), so the layout groups the biases per layer.
    ``extra_node`` appends an Identity: the same weights with a different graph (a single file then
    shifts every tensor; the tensor layout does not)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    inits, nodes = [], []
    current = "X"
    for i in range(layers):
        r = np.random.default_rng(last_seed) if (i == layers - 1 and last_seed is not None) else rng
        w = r.standard_normal((width, width)).astype(np.float32) * 0.1
        b = r.standard_normal(width).astype(np.float32) * 0.1
        inits += [numpy_helper.from_array(w, f"layer.{i}.weight"), numpy_helper.from_array(b, f"layer.{i}.bias")]
        nodes.append(helper.make_node("MatMul", [current, f"layer.{i}.weight"], [f"mm{i}"]))
        nodes.append(helper.make_node("Add", [f"mm{i}", f"layer.{i}.bias"], [f"add{i}"]))
        if i < layers - 1:
            nodes.append(helper.make_node("Relu", [f"add{i}"], [f"h{i}"]))
            current = f"h{i}"
    out = f"add{layers - 1}"
    if extra_node:
        nodes.append(helper.make_node("Identity", [out], ["ident"]))
        out = "ident"
    nodes.append(helper.make_node("Identity", [out], ["Y"]))
    graph = helper.make_graph(nodes, "mlp", [helper.make_tensor_value_info("X", TensorProto.FLOAT, [None, width])],
                              [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [None, width])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="tests")
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def write_mlp(path: Path, **kwargs: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(mlp_proto(**kwargs).SerializeToString())
    return path


def run_model(path: Path, x: np.ndarray | None = None) -> np.ndarray:
    import onnxruntime

    x = np.ones((2, WIDTH), dtype=np.float32) if x is None else x
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {"X": x})[0]
