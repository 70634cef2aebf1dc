"""What an ONNX model is made of: IR and opsets, operator counts, initializers (with digests).

The index uses the op set and opset for catalog filters; ``registry diff`` compares two models
tensor by tensor. Input bytes come from a store and may be hostile: parsing is bounded by the
caller's size limit, subgraphs are walked to a fixed depth, and any protobuf failure is one
``PolicyError`` rather than a traceback.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Iterator

from registry.errors import PolicyError

MAX_SUBGRAPH_DEPTH = 16


@dataclass(frozen=True)
class TensorFact:
    name: str
    dtype: str
    shape: tuple[int, ...]
    nbytes: int
    sha256: str | None          # None for external data (the bytes are not in the model file)

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "dtype": self.dtype, "shape": list(self.shape), "nbytes": self.nbytes,
                "sha256": self.sha256}


@dataclass(frozen=True)
class ModelFacts:
    size: int
    ir_version: int
    opsets: dict[str, int]
    ops: dict[str, int]                       # "op" or "domain::op" -> count (subgraphs included)
    tensors: dict[str, TensorFact] = field(default_factory=dict)
    inputs: tuple[str, ...] = ()
    outputs: tuple[str, ...] = ()
    producer: str = ""

    @property
    def opset(self) -> int | None:
        return self.opsets.get("") or self.opsets.get("ai.onnx")

    @property
    def nodes(self) -> int:
        return sum(self.ops.values())

    @property
    def parameters(self) -> int:
        total = 0
        for t in self.tensors.values():
            count = 1
            for d in t.shape:
                count *= d
            total += count
        return total

    def to_json(self, tensors: bool = False) -> dict[str, Any]:
        out: dict[str, Any] = {"size": self.size, "ir_version": self.ir_version, "opsets": self.opsets,
                               "opset": self.opset, "ops": self.ops, "nodes": self.nodes,
                               "initializers": len(self.tensors), "parameters": self.parameters,
                               "inputs": list(self.inputs), "outputs": list(self.outputs), "producer": self.producer}
        if tensors:
            out["tensors"] = [t.to_json() for t in self.tensors.values()]
        return out


def model_facts(data: bytes | bytearray | memoryview, with_digests: bool = True) -> ModelFacts:
    """Facts of an in-memory ONNX model (``PolicyError`` if it does not parse)."""
    import onnx

    model = onnx.ModelProto()
    try:
        model.ParseFromString(bytes(data))
    except Exception as exc:  # protobuf's DecodeError and friends
        raise PolicyError(f"not an ONNX model: {str(exc)[:200]}") from exc
    if not model.HasField("graph"):
        raise PolicyError("not an ONNX model: no graph")
    ops: Counter[str] = Counter()
    for node in _nodes(model.graph, 0):
        ops[f"{node.domain}::{node.op_type}" if node.domain not in ("", "ai.onnx") else node.op_type] += 1
    tensors = {t.name: _tensor_fact(t, with_digests) for t in model.graph.initializer}
    producer = f"{model.producer_name} {model.producer_version}".strip()
    return ModelFacts(
        size=len(data), ir_version=int(model.ir_version),
        opsets={o.domain or "": int(o.version) for o in model.opset_import},
        ops=dict(sorted(ops.items())), tensors=tensors,
        inputs=tuple(i.name for i in model.graph.input if i.name not in tensors),
        outputs=tuple(o.name for o in model.graph.output), producer=producer,
    )


def _nodes(graph: Any, depth: int) -> Iterator[Any]:
    if depth > MAX_SUBGRAPH_DEPTH:
        raise PolicyError(f"ONNX subgraphs nested deeper than {MAX_SUBGRAPH_DEPTH}")
    for node in graph.node:
        yield node
        for attr in node.attribute:
            if attr.HasField("g"):
                yield from _nodes(attr.g, depth + 1)
            for sub in attr.graphs:
                yield from _nodes(sub, depth + 1)


def _tensor_fact(tensor: Any, with_digest: bool) -> TensorFact:
    import onnx
    from onnx import helper

    try:
        dtype = helper.tensor_dtype_to_np_dtype(tensor.data_type)
        dtype_name, itemsize = str(dtype), dtype.itemsize
    except Exception:  # unknown or non-numpy types (strings, float8 on an old numpy)
        dtype_name, itemsize = onnx.TensorProto.DataType.Name(tensor.data_type) if tensor.data_type in \
            onnx.TensorProto.DataType.values() else f"type{tensor.data_type}", 0
    shape = tuple(int(d) for d in tensor.dims)
    count = 1
    for d in shape:
        count *= max(d, 0)
    external = tensor.data_location == onnx.TensorProto.EXTERNAL
    digest = None
    if with_digest and not external:
        digest = hashlib.sha256(_raw(tensor)).hexdigest()
    return TensorFact(name=tensor.name, dtype=dtype_name, shape=shape, nbytes=count * itemsize, sha256=digest)


def _raw(tensor: Any) -> bytes:
    """The tensor's value bytes as numpy lays them out, whichever field holds them (raw_data or a
    typed repeated field), so the same values give the same digest however they were serialised."""
    if tensor.raw_data:
        return bytes(tensor.raw_data)
    if len(tensor.string_data):
        return b"\x00".join(bytes(s) for s in tensor.string_data)
    from onnx import numpy_helper

    try:
        return numpy_helper.to_array(tensor).tobytes()
    except Exception:  # a malformed typed field: the digest of nothing still differs from real data
        return b""
