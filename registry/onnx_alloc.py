"""Does this ONNX graph allocate a bounded amount of memory at run time?

Most operators produce outputs no larger than their inputs (or a fixed multiple of them). A few
take the *size* of their output from the value of an input tensor; a model can hand them a huge
constant (``ConstantOfShape([1e6, 1e6])``) or a shape computed from its data and take a node down
with one request. These **size-taking operators** are checked here, and refused by the default
policy unless their sizes are provably bounded (``Policy.allow_unbounded_ops`` opts out per op type):

=================  ===================================  =========================================
operator           size-determining inputs              growth factor over the inputs' sizes
=================  ===================================  =========================================
ConstantOfShape    shape                                product of the shape
Expand             shape                                product of the shape
Tile               repeats                              product of the repeats
Range              start, limit, delta                  number of elements
Pad                pads (Pad-2: attribute)              product of (1 + before + after)
CenterCropPad      shape                                product of the shape
Resize / Upsample  scales or sizes (Resize-10: input 1; product of the scales or sizes
                   Upsample-7: attribute)
OneHot             depth                                depth
Col2Im             image_shape, block_shape             product of the image shape
MaxUnpool          output_shape                         product of the output shape
DFT                dft_length                           dft_length
Hann/Hamming/BlackmanWindow  size                       size
MelWeightMatrix    num_mel_bins, dft_length             num_mel_bins * dft_length
Loop               M (trip count)                       M (a loop without M is unbounded)
=================  ===================================  =========================================

A value is *bounded* when it is computed only from constants and from ``Shape`` of tensors that
exist at run time, through ops that move or combine such values linearly (Gather, Slice, Concat,
Unsqueeze, Reshape, Cast, Where, Add, Sub, Max, Min, Mul by a constant, ...): it is then at most
``c + k * D`` where ``D`` is the largest dimension of a real tensor. A size is accepted when every
element is such a value with ``k <= 1`` and the constant part of the growth factor (exactly
computed for constants, ``c ** rank`` otherwise) is at most ``max_alloc_elements``. Anything
derived from tensor *data* (``Cast(x)`` of an input, ``Size``, a product of two shapes, a
fractional Range step) is not provably bounded and is refused. This is what real exports need:
the transformer graphs onnxruntime and torch produce (position ids by Range over Shape, masks by
Expand to a shape built from Shape) pass; a constant or data-driven blow-up does not.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from math import prod
from typing import Any, Iterable, Iterator

from registry.errors import PolicyError

# Default cap on the constant growth factor (elements): 2**28 floats are 1 GiB.
DEFAULT_MAX_ALLOC_ELEMENTS = 1 << 28
# Constant tensors larger than this are not read for their values (shape tensors are tiny).
_MAX_CONST_ELEMENTS = 4096

# op type -> indices of the inputs that decide the output size
SIZE_INPUTS: dict[str, tuple[int, ...]] = {
    "ConstantOfShape": (0,),
    "Expand": (1,),
    "Tile": (1,),
    "Range": (0, 1, 2),
    "Pad": (1,),
    "CenterCropPad": (1,),
    "Resize": (1, 2, 3),
    "Upsample": (1,),
    "OneHot": (1,),
    "Col2Im": (1, 2),
    "MaxUnpool": (2,),
    "DFT": (1,),
    "HannWindow": (0,),
    "HammingWindow": (0,),
    "BlackmanWindow": (0,),
    "MelWeightMatrix": (0, 1),
    "Loop": (0,),
}
SIZE_TAKING_OPS = frozenset(SIZE_INPUTS)

# Ops whose output elements are input elements moved around (bound = max of the listed inputs).
_MOVE = {
    "Identity": (0,), "Cast": (0,), "Reshape": (0,), "Squeeze": (0,), "Unsqueeze": (0,), "Flatten": (0,),
    "Gather": (0,), "GatherElements": (0,), "GatherND": (0,), "Slice": (0,), "Concat": None, "Where": (1, 2),
    "Max": None, "Min": None, "Abs": (0,), "Neg": (0,), "ReduceMax": (0,), "ReduceMin": (0,), "Transpose": (0,),
    "Expand": (0,), "Tile": (0,), "Relu": (0,),
    "Split": (0,), "Mod": (1,), "Range": (0, 1), "CastLike": (0,), "Clip": None,  # Clip may output its min or max
}
# Ops that may round a value up in magnitude (Ceil(1e-9) is 1): a bound below 1 would hide a scaled shape.
_ROUND = {"Floor", "Ceil", "Round"}
_BOOL = {"Sign", "Equal", "Less", "Greater", "LessOrEqual", "GreaterOrEqual", "Not", "And", "Or", "Xor", "IsNaN", "IsInf"}


@dataclass(frozen=True)
class Bound:
    """Every element's absolute value is at most ``c + k * D``; ``exact`` holds the values when known."""

    c: float
    k: float = 0.0
    exact: tuple[float, ...] | None = None


def _const(values: Iterable[float]) -> Bound:
    vals = tuple(v if math.isfinite(v) else math.inf for v in (float(x) for x in values))
    return Bound(c=max((abs(v) for v in vals), default=0.0), k=0.0, exact=vals)


def check_allocations(model: Any, allow: frozenset[str], max_elements: int) -> None:
    """``PolicyError`` naming the first size-taking node whose output size is not provably bounded."""
    graphs = list(_graphs(model))
    if not any(node.op_type in SIZE_TAKING_OPS and node.op_type not in allow and node.domain in ("", "ai.onnx")
               for graph in graphs for node in graph.node):
        return
    if len(model.functions):
        model = _inlined(model)
    ranks = _ranks(model)
    env: dict[str, Bound | None] = {}
    _walk(model.graph, env, ranks, allow, max_elements)
    for training in model.training_info:
        for graph in (training.initialization, training.algorithm):
            _walk(graph, env, ranks, allow, max_elements)


def _inlined(model: Any) -> Any:
    """The model with its local functions inlined, so their bodies are checked in context."""
    from onnx import inliner

    try:
        return inliner.inline_local_functions(model)
    except Exception as exc:
        raise PolicyError(f"model-local functions could not be inlined for the allocation check ({type(exc).__name__})") from exc


def _graphs(model: Any) -> Iterator[Any]:
    def sub(graph: Any) -> Iterator[Any]:
        yield graph
        for node in graph.node:
            for attr in node.attribute:
                if attr.HasField("g"):
                    yield from sub(attr.g)
                for g in attr.graphs:
                    yield from sub(g)

    yield from sub(model.graph)
    for function in model.functions:
        yield function  # a FunctionProto has .node like a graph
    for training in model.training_info:
        yield from sub(training.initialization)
        yield from sub(training.algorithm)


def _ranks(model: Any) -> dict[str, int]:
    """Ranks of every value shape inference can tell (used when a shape vector's length is unknown)."""
    from onnx import shape_inference

    try:
        inferred = shape_inference.infer_shapes(model, check_type=False, strict_mode=False, data_prop=True)
    except Exception:  # inference is best effort here; the checker already ran
        return {}
    out: dict[str, int] = {}
    for info in [*inferred.graph.value_info, *inferred.graph.output, *inferred.graph.input]:
        tensor = info.type.tensor_type
        if tensor.HasField("shape"):
            dims = tensor.shape.dim
            out[info.name] = len(dims)
            if len(dims) == 1 and dims[0].HasField("dim_value"):
                out["#len:" + info.name] = int(dims[0].dim_value)
    return out


def _tensor_bound(tensor: Any) -> Bound | None:
    from onnx import numpy_helper

    if prod(tensor.dims) > _MAX_CONST_ELEMENTS:
        return None
    try:
        values = numpy_helper.to_array(tensor).reshape(-1)
    except Exception:
        return None
    if values.dtype.kind not in "iufb":
        return None
    return _const(values.tolist())


def _walk(graph: Any, env: dict[str, Bound | None], ranks: dict[str, int], allow: frozenset[str],
          max_elements: int) -> None:
    for init in graph.initializer:
        env[init.name] = _tensor_bound(init)
    for value in graph.input:  # a caller feeds inputs, even one with an initializer as its default
        env[value.name] = None
    for node in graph.node:
        for attr in node.attribute:  # subgraphs see the outer values
            for sub in ([attr.g] if attr.HasField("g") else []) + list(attr.graphs):
                _walk(sub, dict(env), ranks, allow, max_elements)
        if node.domain in ("", "ai.onnx") and node.op_type in SIZE_TAKING_OPS and node.op_type not in allow:
            _check_node(node, env, ranks, max_elements)
        result = _propagate(node, env)
        for name in node.output:
            if name:
                env[name] = result


def _get(env: dict[str, Bound | None], node: Any, index: int) -> Bound | None:
    if index >= len(node.input) or not node.input[index]:
        return Bound(0.0, 0.0, ())  # absent optional input
    return env.get(node.input[index])


def _propagate(node: Any, env: dict[str, Bound | None]) -> Bound | None:
    """The bound of a node's outputs (None: not provably bounded)."""
    op = node.op_type if node.domain in ("", "ai.onnx") else None
    if op == "Constant":
        for attr in node.attribute:
            if attr.name == "value" and attr.HasField("t"):
                return _tensor_bound(attr.t)
            if attr.name == "value_int":
                return _const([attr.i])
            if attr.name == "value_ints":
                return _const(attr.ints)
        return None
    if op == "Shape":
        return Bound(0.0, 1.0)
    if op in _BOOL:
        return Bound(1.0, 0.0)
    if op in _ROUND:
        part = _get(env, node, 0)
        return None if part is None else Bound(part.c + 1.0, part.k)
    if op == "ConstantOfShape":
        for attr in node.attribute:
            if attr.name == "value" and attr.HasField("t"):
                fill = _tensor_bound(attr.t)  # one value repeated: its exact tuple is not the output's
                return None if fill is None else Bound(fill.c, fill.k)
        return Bound(0.0, 0.0)
    if op in _MOVE:
        indices = _MOVE[op] if _MOVE[op] is not None else range(len(node.input))
        parts = [_get(env, node, i) for i in indices]
        if any(p is None for p in parts):
            return None
        exact = parts[0].exact if op in ("Identity", "Reshape", "Squeeze", "Unsqueeze", "Flatten", "Cast") else None
        if op == "Concat" and all(p.exact is not None for p in parts):
            exact = tuple(v for p in parts for v in p.exact)  # type: ignore[union-attr]
        return Bound(max(p.c for p in parts), max(p.k for p in parts), exact)  # type: ignore[union-attr]
    if op in ("Add", "Sub"):
        a, b = _get(env, node, 0), _get(env, node, 1)
        if a is None or b is None:
            return None
        return Bound(a.c + b.c, a.k + b.k)
    if op == "Mul":
        a, b = _get(env, node, 0), _get(env, node, 1)
        if a is None or b is None or (a.k and b.k):
            return None
        return Bound(a.c * b.c, a.k * b.c + b.k * a.c)
    if op == "Div":  # (Mod is a move: |a mod b| < |b|)
        a, b = _get(env, node, 0), _get(env, node, 1)
        if a is None or b is None or b.exact is None or not b.exact or min(abs(v) for v in b.exact) < 1:
            return None
        return Bound(a.c, a.k, _quotients(a.exact, b.exact))
    return None


def _quotients(a: tuple[float, ...] | None, b: tuple[float, ...]) -> tuple[float, ...] | None:
    """The exact values of ``a / b`` when they are whole numbers (then integer and float Div agree).

    The dividend's own values are not the quotient's: a Range step ``1 / 1e8`` read as 1 would count
    1e8 times too few elements, and ``100 / -1`` read as 100 flips a Range's direction.
    """
    if a is None or len(b) not in (1, len(a)):
        return None
    quotients = [x / (b[0] if len(b) == 1 else b[i]) for i, x in enumerate(a)]
    return tuple(quotients) if all(q.is_integer() for q in quotients) else None


def _check_node(node: Any, env: dict[str, Bound | None], ranks: dict[str, int], max_elements: int) -> None:
    op = node.op_type
    label = f"{op} node {node.name or node.output[0]!r}"
    if op == "Loop" and (len(node.input) < 1 or not node.input[0]):
        raise _refuse(label, "has no trip count (M): it can run without bound")
    if op == "Resize" and len(node.input) > 3 and node.input[3]:
        indices: tuple[int, ...] = (3,)  # sizes win over scales
    elif op == "Resize" and len(node.input) == 2:
        indices = (1,)  # Resize-10: (X, scales); from opset 11 input 1 is the roi and scales come second
    elif op == "Resize":
        indices = (2,)
    else:
        indices = SIZE_INPUTS[op]
    bounds = [_get(env, node, i) for i in indices]
    old_form = _attribute_sizes(node)
    if old_form is not None:
        bounds = [old_form]
    if any(b is None for b in bounds):
        raise _refuse(label, "takes its output size from a value that is not provably bounded "
                             "(computed from tensor data, not from constants or Shape)")
    if op == "Range":
        start, limit, delta = bounds  # type: ignore[misc]
        if start.exact and limit.exact and delta.exact:
            step = delta.exact[0]
            span = 0.0 if step == 0 else (limit.exact[0] - start.exact[0]) / step
            factor = math.inf if math.isnan(span) else max(0.0, span)  # inf - inf: no count is known
            return _limit(label, factor, max_elements)
        if delta.exact is None or not delta.exact or abs(delta.exact[0]) < 1:
            raise _refuse(label, "has a step that is not a constant of magnitude >= 1")
        # |limit - start| is at most |start| + |limit|: the constant parts add up (Range(-c, c) has 2c
        # elements); each end's shape part is held to k <= 1 as everywhere else
        span_bound = Bound(start.c + limit.c)  # type: ignore[union-attr]
        _linear(label, [start, limit, span_bound], 1, max_elements)  # type: ignore[list-item]
        return
    if op in ("Resize", "Upsample"):
        (scale,) = bounds
        if scale.exact is None:  # type: ignore[union-attr]
            if (op == "Resize" and indices == (3,)):
                _linear(label, [scale], _rank(node.input[indices[0]], ranks), max_elements)  # type: ignore[list-item]
                return
            raise _refuse(label, "has scales that are not constants")
        return _limit(label, prod(max(1.0, v) for v in scale.exact), max_elements)  # type: ignore[union-attr]
    if op == "Pad":
        (pads,) = bounds
        if pads.exact is not None:  # type: ignore[union-attr]
            half = len(pads.exact) // 2  # type: ignore[union-attr]
            factor = prod(1 + abs(pads.exact[i]) + abs(pads.exact[i + half]) for i in range(half))  # type: ignore[index]
            return _limit(label, factor, max_elements)
        _linear(label, [pads], _rank(node.input[1], ranks), max_elements)  # type: ignore[list-item]
        return
    if all(b.exact is not None for b in bounds):  # type: ignore[union-attr]
        return _limit(label, prod(max(1.0, abs(v)) for b in bounds for v in b.exact), max_elements)  # type: ignore[union-attr]
    rank = sum(_rank(node.input[i], ranks) for i in indices if i < len(node.input) and node.input[i])
    _linear(label, bounds, rank, max_elements)  # type: ignore[arg-type]


def _attribute_sizes(node: Any) -> Bound | None:
    """Sizes that older opsets carry as attributes (Pad-2 ``pads``, Upsample-7 ``scales``), or None.

    A model that declares such an opset is held to the same limit as one that passes the sizes as
    an input; without this its sizes would never be read.
    """
    wanted = {"Pad": "pads", "Upsample": "scales"}.get(node.op_type)
    for attr in node.attribute:
        if attr.name == wanted:
            return _const(list(attr.ints) if node.op_type == "Pad" else list(attr.floats))
    return None


def _rank(name: str, ranks: dict[str, int]) -> int:
    """How many elements the 1-D size tensor ``name`` has (unknown: refuse by a huge rank)."""
    if ranks.get(name) == 0:  # a scalar (a window size, a depth, a trip count) is one element
        return 1
    return ranks.get("#len:" + name, 64)


def _linear(label: str, bounds: list[Bound], rank: int, max_elements: int) -> None:
    for bound in bounds:
        if bound.k > 1:
            raise _refuse(label, f"takes its size from a shape scaled by {bound.k:g}")
    constant = max((b.c for b in bounds), default=0.0)
    try:
        factor = max(1.0, constant) ** max(1, rank)
    except OverflowError:  # a float power past 1e308 raises instead of giving inf
        factor = math.inf
    _limit(label, factor, max_elements)


def _limit(label: str, factor: float, max_elements: int) -> None:
    if factor > max_elements:
        raise _refuse(label, f"would allocate {factor:.3g} times its input (limit {max_elements} elements)")


def _refuse(label: str, why: str) -> PolicyError:
    return PolicyError(f"{label} {why}; policy allow_unbounded_ops may opt in")
