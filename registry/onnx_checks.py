"""Is this artifact an ONNX model a device may load? Checked on the verified in-memory bytes.

Rules: it parses as an ONNX ModelProto and passes ``onnx.checker`` (full check, with shape
inference); no tensor anywhere points at external data (initializers, sparse initializers, every
node attribute: ``t``, ``tensors``, ``sparse_tensor``, ``sparse_tensors`` and the subgraphs in ``g``
and ``graphs``, recursively; model-local functions; ``training_info``), because the runtime would
read such a file from disk, relative to wherever it runs; the default-domain opset lies in a range;
every op is in a standard ONNX domain, onnxruntime's own ``com.microsoft`` contrib domain, a
model-local function, or a domain the policy allows (``allowed_domains``); size-taking operators
allocate a provably bounded amount (``registry.onnx_alloc``; ``allow_unbounded_ops`` opts out);
optionally every op type is in an allow-list and the artifact is under a size limit.

Why a wire-level pre-pass: for a model with a 1 GiB initializer, ``onnx.load`` copies the whole
tensor into Python and ``onnx.checker`` serialises it again (seconds each), while the weights
themselves carry no structure to check beyond their length. So large ``raw_data`` initializers are
cut out at the protobuf wire level, their length is checked against dtype x shape here, and the
checker sees the graph with those tensors as typed graph inputs: the same structure, none of the
copying. The SHA-256 and CID of the full bytes were already checked before this runs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from math import prod
from typing import TYPE_CHECKING, Any, Callable, Iterator

from registry.errors import PolicyError

if TYPE_CHECKING:
    from registry.policy import Policy

# Initializers whose raw_data is larger than this are checked by length and kept out of the checker.
STRIP_THRESHOLD = 1 << 20
DEFAULT_OPSET_MIN = 7
# Standard ONNX domains, plus onnxruntime's built-in contrib ops (its quantizer emits them, e.g.
# MatMulNBits for INT4): kernels of the runtime we load with, not code a model brings along.
STANDARD_DOMAINS = frozenset({"", "ai.onnx", "ai.onnx.ml", "ai.onnx.preview.training"})
DEFAULT_ALLOWED_DOMAINS = STANDARD_DOMAINS | {"com.microsoft"}

# ModelProto / GraphProto / TensorProto field numbers (onnx.proto3, stable since IR v3).
_MODEL_GRAPH = 7
_GRAPH_INITIALIZER = 5
_TENSOR_DIMS, _TENSOR_TYPE, _TENSOR_NAME, _TENSOR_RAW, _TENSOR_LOCATION = 1, 2, 8, 9, 14
_TENSOR_DOC = 12
# bits per element of each fixed-size TensorProto.DataType. Sub-byte types are packed densely in raw_data
# (two 4-bit, four 2-bit, four 6-bit values per 1, 1, 3 bytes), so a tensor of n elements takes
# ceil(n * bits / 8) bytes (onnx.numpy_helper packs them the same way). Strings have no fixed size.
_BITS = {1: 32, 2: 8, 3: 8, 4: 16, 5: 16, 6: 32, 7: 64, 9: 8, 10: 16, 11: 64, 12: 32, 13: 64, 14: 64, 15: 128, 16: 16,
         17: 8, 18: 8, 19: 8, 20: 8, 21: 4, 22: 4, 23: 4, 24: 8, 25: 2, 26: 2, 27: 6, 28: 6}


def _raw_length(data_type: int, dims: tuple[int, ...]) -> int | None:
    """Bytes of raw_data a tensor of this type and shape must have; None when unknown or malformed."""
    bits = _BITS.get(data_type)
    if bits is None or any(d < 0 for d in dims):
        return None
    return -(-prod(dims) * bits // 8)


@dataclass(frozen=True)
class OnnxFacts:
    """What the check learned: reported as evidence, used by policy rules."""

    ir_version: int
    opset: int
    op_types: tuple[str, ...]
    nodes: int
    producer: str
    size: int
    large_initializers: int = 0
    domains: tuple[str, ...] = field(default_factory=tuple)

    def evidence(self) -> dict[str, object]:
        return {
            "ir_version": self.ir_version,
            "opset": self.opset,
            "op_types": list(self.op_types),
            "nodes": self.nodes,
            "producer": self.producer,
            "size": self.size,
            "large_initializers_length_checked": self.large_initializers,
        }


@dataclass(frozen=True)
class _Stripped:
    name: str
    data_type: int
    dims: tuple[int, ...]
    raw_length: int


def check_onnx(data: bytes | memoryview, policy: "Policy | None" = None,
               external_data: Callable[[Any], None] | None = None) -> OnnxFacts:
    """All ONNX rules on ``data``; ``PolicyError`` with one clear line on the first violation.

    ``external_data`` (directory releases only, see ``registry.verify.external``) checks and lifts
    out the tensors whose external data lives in verified files of the same tree; any external
    data it leaves in the model is refused as before.
    """
    import onnx

    view = memoryview(data)
    size = len(view)
    if policy is not None and policy.max_artifact_size is not None and size > policy.max_artifact_size:
        raise PolicyError(f"artifact is {size} bytes, policy max_artifact_size is {policy.max_artifact_size}")
    try:
        slim, stripped = _strip_large_initializers(view)
    except _WireError as exc:
        raise PolicyError(f"not an ONNX model: {exc}") from exc
    model = onnx.ModelProto()
    try:
        model.ParseFromString(slim)
    except Exception as exc:  # protobuf's DecodeError and friends
        raise PolicyError(f"not an ONNX model: protobuf parse failed ({type(exc).__name__})") from exc
    if not model.HasField("graph") or model.ir_version <= 0:
        raise PolicyError("not an ONNX model: no graph or no IR version")

    if external_data is not None:
        external_data(model)
    _reject_external_data(model)
    for tensor in stripped:
        expected = _raw_length(tensor.data_type, tensor.dims)
        if expected != tensor.raw_length:
            raise PolicyError(
                f"initializer {tensor.name!r}: raw_data is {tensor.raw_length} bytes, shape {list(tensor.dims)} "
                f"of type {tensor.data_type} needs {expected}"
            )
        _add_as_input(model, tensor)

    try:
        onnx.checker.check_model(model, full_check=True)
    except Exception as exc:  # ValidationError, InferenceError, and C++ errors surfaced as RuntimeError
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise PolicyError(f"onnx.checker rejected the model: {message[:300]}") from exc

    opset = _default_opset(model)
    low = policy.opset_min if policy is not None else DEFAULT_OPSET_MIN
    high = policy.opset_max if policy is not None and policy.opset_max is not None else onnx.defs.onnx_opset_version()
    if opset is None:
        raise PolicyError("model imports no default-domain (ai.onnx) opset")
    if not low <= opset <= high:
        raise PolicyError(f"opset {opset} is outside the accepted range [{low}, {high}]")

    op_types = sorted({node.op_type for node in _all_nodes(model.graph) if node.domain in ("", "ai.onnx")})
    foreign = sorted({f"{node.domain}::{node.op_type}" for node in _all_nodes(model.graph)
                      if node.domain not in ("", "ai.onnx")})
    _check_domains(model, policy)
    if policy is not None and policy.allowed_ops is not None:
        refused = sorted(set(op_types) - policy.allowed_ops) + foreign
        if refused:
            raise PolicyError(f"op types not in the policy's allow-list: {', '.join(refused[:10])}")
    from registry.onnx_alloc import DEFAULT_MAX_ALLOC_ELEMENTS, check_allocations

    check_allocations(
        model,
        allow=policy.allow_unbounded_ops if policy is not None else frozenset(),
        max_elements=(policy.max_alloc_elements if policy is not None and policy.max_alloc_elements is not None
                      else DEFAULT_MAX_ALLOC_ELEMENTS),
    )
    return OnnxFacts(
        ir_version=model.ir_version,
        opset=opset,
        op_types=tuple(op_types) + tuple(foreign),
        nodes=sum(1 for _ in _all_nodes(model.graph)),
        producer=f"{model.producer_name} {model.producer_version}".strip(),
        size=size,
        large_initializers=len(stripped),
        domains=tuple(sorted({imp.domain or "ai.onnx" for imp in model.opset_import})),
    )


def _default_opset(model: object) -> int | None:
    for imp in model.opset_import:  # type: ignore[attr-defined]
        if imp.domain in ("", "ai.onnx"):
            return int(imp.version)
    return None


def _all_nodes(graph: object) -> Iterator[object]:
    """Every node, including those inside If/Loop/Scan subgraphs."""
    for node in graph.node:  # type: ignore[attr-defined]
        yield node
        for attr in node.attribute:
            if attr.HasField("g"):
                yield from _all_nodes(attr.g)
            for sub in attr.graphs:
                yield from _all_nodes(sub)


def _every_node(model: object) -> Iterator[object]:
    """Nodes of the main graph, of model-local functions and of training graphs, subgraphs included."""
    yield from _all_nodes(model.graph)  # type: ignore[attr-defined]
    for function in model.functions:  # type: ignore[attr-defined]
        yield from _all_nodes(function)
    for training in model.training_info:  # type: ignore[attr-defined]
        yield from _all_nodes(training.initialization)
        yield from _all_nodes(training.algorithm)


def _check_domains(model: object, policy: "Policy | None") -> None:
    """Custom-domain ops are refused unless the policy lists the domain (calls to the model's own
    functions are fine: their bodies are checked like the graph)."""
    allowed = DEFAULT_ALLOWED_DOMAINS
    if policy is not None and policy.allowed_domains is not None:
        allowed = STANDARD_DOMAINS | policy.allowed_domains
    local = {(f.domain, f.name) for f in model.functions}  # type: ignore[attr-defined]
    for node in _every_node(model):
        domain = node.domain  # type: ignore[attr-defined]
        if domain not in allowed and (domain, node.op_type) not in local:  # type: ignore[attr-defined]
            raise PolicyError(
                f"op {domain[:80]!r}::{node.op_type[:80]!r} is in a custom domain; "  # type: ignore[attr-defined]
                "a policy must list the domain in allowed_domains to accept it"
            )


def _model_tensors(model: object) -> Iterator[object]:
    """Every TensorProto the format can hold, wherever it is."""
    yield from _graph_tensors(model.graph)  # type: ignore[attr-defined]
    for function in model.functions:  # type: ignore[attr-defined]
        for attr in function.attribute_proto:
            yield from _attr_tensors(attr)
        for node in function.node:
            for attr in node.attribute:
                yield from _attr_tensors(attr)
    for training in model.training_info:  # type: ignore[attr-defined]
        yield from _graph_tensors(training.initialization)
        yield from _graph_tensors(training.algorithm)


def _graph_tensors(graph: object) -> Iterator[object]:
    yield from graph.initializer  # type: ignore[attr-defined]
    for sparse in graph.sparse_initializer:  # type: ignore[attr-defined]
        yield sparse.values
        yield sparse.indices
    for node in graph.node:  # type: ignore[attr-defined]
        for attr in node.attribute:
            yield from _attr_tensors(attr)


def _attr_tensors(attr: object) -> Iterator[object]:
    if attr.HasField("t"):  # type: ignore[attr-defined]
        yield attr.t  # type: ignore[attr-defined]
    yield from attr.tensors  # type: ignore[attr-defined]
    if attr.HasField("sparse_tensor"):  # type: ignore[attr-defined]
        yield attr.sparse_tensor.values  # type: ignore[attr-defined]
        yield attr.sparse_tensor.indices  # type: ignore[attr-defined]
    for sparse in attr.sparse_tensors:  # type: ignore[attr-defined]
        yield sparse.values
        yield sparse.indices
    if attr.HasField("g"):  # type: ignore[attr-defined]
        yield from _graph_tensors(attr.g)  # type: ignore[attr-defined]
    for sub in attr.graphs:  # type: ignore[attr-defined]
        yield from _graph_tensors(sub)


def _reject_external_data(model: object) -> None:
    import onnx

    for tensor in _model_tensors(model):
        if tensor.data_location == onnx.TensorProto.EXTERNAL or len(tensor.external_data):  # type: ignore[attr-defined]
            location = next((e.value for e in tensor.external_data if e.key == "location"), "?")  # type: ignore[attr-defined]
            outside = location.startswith(("/", "\\")) or ".." in location.replace("\\", "/").split("/")
            where = "outside the artifact directory" if outside else "a separate file"
            raise PolicyError(
                f"tensor {tensor.name[:80]!r} uses external data at {location[:200]!r} ({where}); "  # type: ignore[attr-defined]
                "a release covers one file, so external data is refused"
            )


def _add_as_input(model: object, tensor: _Stripped) -> None:
    from onnx import helper

    graph = model.graph  # type: ignore[attr-defined]
    if any(inp.name == tensor.name for inp in graph.input):
        return
    graph.input.append(helper.make_tensor_value_info(tensor.name, tensor.data_type, list(tensor.dims)))


# --------------------------------------------------------------------------------------------
# Protobuf wire format, just enough to lift big initializers out without copying them
# --------------------------------------------------------------------------------------------


class _WireError(ValueError):
    pass


def _varint(buf: memoryview, pos: int, end: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= end or shift > 63:
            raise _WireError("truncated or overlong varint")
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7


def _encode_varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _fields(buf: memoryview, start: int, end: int) -> Iterator[tuple[int, int, int, int, int]]:
    """Yields (field number, wire type, field start, value start, value end) for one message."""
    pos = start
    while pos < end:
        field_start = pos
        key, pos = _varint(buf, pos, end)
        number, wire = key >> 3, key & 7
        if number == 0:
            raise _WireError("field number 0")
        if wire == 0:
            _, value_end = _varint(buf, pos, end)
            value_start = pos
        elif wire == 1:
            value_start, value_end = pos, pos + 8
        elif wire == 2:
            length, value_start = _varint(buf, pos, end)
            value_end = value_start + length
        elif wire == 5:
            value_start, value_end = pos, pos + 4
        else:
            raise _WireError(f"unsupported wire type {wire}")
        if value_end > end:
            raise _WireError("field runs past the end of its message")
        pos = value_end
        yield number, wire, field_start, value_start, value_end


def _strip_large_initializers(buf: memoryview) -> tuple[bytes, list[_Stripped]]:
    """The model bytes with big raw_data initializers removed, and what was removed."""
    stripped: list[_Stripped] = []
    out: list[bytes | memoryview] = []
    for number, wire, field_start, value_start, value_end in _fields(buf, 0, len(buf)):
        if number != _MODEL_GRAPH or wire != 2:
            out.append(buf[field_start:value_end])
            continue
        graph_parts: list[bytes | memoryview] = []
        for g_number, g_wire, g_field_start, g_value_start, g_value_end in _fields(buf, value_start, value_end):
            if g_number == _GRAPH_INITIALIZER and g_wire == 2 and g_value_end - g_value_start > STRIP_THRESHOLD:
                tensor = _describe_tensor(buf, g_value_start, g_value_end)
                if tensor is not None:
                    stripped.append(tensor)
                    continue
            graph_parts.append(buf[g_field_start:g_value_end])
        graph = b"".join(graph_parts)
        out.append(_encode_varint((_MODEL_GRAPH << 3) | 2) + _encode_varint(len(graph)))
        out.append(graph)
    return b"".join(out), stripped


def _describe_tensor(buf: memoryview, start: int, end: int) -> _Stripped | None:
    """A raw_data tensor's name, type, dims and data length; None if it is not a plain raw tensor."""
    dims: list[int] = []
    name, data_type, raw_length, external = "", 0, -1, False
    for number, wire, _fs, value_start, value_end in _fields(buf, start, end):
        if number == _TENSOR_DIMS and wire == 0:
            dims.append(_signed(_varint(buf, value_start, value_end)[0]))
        elif number == _TENSOR_DIMS and wire == 2:
            pos = value_start
            while pos < value_end:
                value, pos = _varint(buf, pos, value_end)
                dims.append(_signed(value))
        elif number == _TENSOR_TYPE and wire == 0:
            data_type = _varint(buf, value_start, value_end)[0]
        elif number == _TENSOR_NAME and wire == 2:
            name = bytes(buf[value_start:value_end]).decode("utf-8", "replace")
        elif number == _TENSOR_RAW and wire == 2:
            raw_length = value_end - value_start
        elif number == _TENSOR_LOCATION:
            external = True
        elif number != _TENSOR_DOC:  # typed data, external_data, segment, metadata: leave to the full check
            return None
    if raw_length < 0 or external or not name:
        return None
    return _Stripped(name=name, data_type=data_type, dims=tuple(dims), raw_length=raw_length)


def _signed(value: int) -> int:
    return value - (1 << 64) if value >= 1 << 63 else value
