"""A model's inputs and outputs by name, dtype and shape, and binding data arrays to them.

Everything downstream (evaluation, calibration, latency, parity) feeds models a ``{name: array}``
dict built here, so a wrong name or an unsafe dtype is refused once, in one line, before any work:
``input_ids`` saved as float would otherwise reach an embedding lookup as garbage indices.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from registry.compress.data import Dataset
from registry.errors import InputError

Dim = int | str | None


@dataclass(frozen=True)
class TensorSpec:
    """One graph input or output: name, numpy dtype (None if not a tensor), shape (str = symbolic axis)."""

    name: str
    dtype: np.dtype | None
    shape: tuple[Dim, ...] | None

    @property
    def sequence_axis(self) -> bool:
        """Axis 1 is dynamic: a token sequence (or any variable-length second axis)."""
        return self.shape is not None and len(self.shape) >= 2 and not isinstance(self.shape[1], int)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "dtype": None if self.dtype is None else str(self.dtype),
                "shape": None if self.shape is None else [d if isinstance(d, int) else (d or "?") for d in self.shape]}


@dataclass(frozen=True)
class Signature:
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]

    @property
    def input_names(self) -> list[str]:
        return [s.name for s in self.inputs]

    def to_dict(self) -> dict[str, Any]:
        return {"inputs": [s.to_dict() for s in self.inputs], "outputs": [s.to_dict() for s in self.outputs]}


def onnx_signature(model: Any) -> Signature:
    """Graph inputs that are not initializers (those are weights with defaults), and graph outputs."""
    from onnx import helper

    graph = model.graph
    weights = {t.name for t in graph.initializer}

    def spec(value: Any) -> TensorSpec:
        tt = value.type.tensor_type if value.type.HasField("tensor_type") else None
        if tt is None:
            return TensorSpec(value.name, None, None)
        try:
            dtype = np.dtype(helper.tensor_dtype_to_np_dtype(tt.elem_type))
        except (KeyError, TypeError, ValueError):
            dtype = None
        shape = None
        if tt.HasField("shape"):
            shape = tuple(d.dim_value if d.HasField("dim_value") else (d.dim_param or None) for d in tt.shape.dim)
        return TensorSpec(value.name, dtype, shape)

    return Signature(tuple(spec(v) for v in graph.input if v.name not in weights),
                     tuple(spec(v) for v in graph.output))


def signature_of(data: bytes) -> Signature:
    import onnx

    return onnx_signature(onnx.load_from_string(data))


def bind(ds: Dataset, inputs: tuple[TensorSpec, ...] | list[TensorSpec], role: str, *,
         drop_extra: bool = False) -> dict[str, np.ndarray]:
    """The dataset's arrays in the model's input order, cast only where no value can change meaning.

    One array and one model input bind whatever their names. Otherwise every model input needs an
    array of its name; arrays the model does not take are an error for ``.npz`` (probably a typo) and
    dropped for tokenized text (``drop_extra``: tokenizers emit ``token_type_ids`` some graphs lack).
    Casts follow numpy's ``same_kind`` rule: int32 -> int64 and float64 -> float32 are fine,
    float -> int is refused.
    """
    arrays = ds.inputs
    if len(arrays) == 1 and len(inputs) == 1:
        pairs = [(inputs[0], next(iter(arrays.values())), next(iter(arrays)))]
    else:
        missing = [s.name for s in inputs if s.name not in arrays]
        if missing:
            raise InputError(f"{role} data {ds.path} lacks input(s) {', '.join(missing)} the model needs "
                             f"(the data has: {', '.join(arrays)})")
        extra = [name for name in arrays if name not in {s.name for s in inputs}]
        if extra and not drop_extra:
            raise InputError(f"{role} data {ds.path} has array(s) {', '.join(extra)} the model does not take "
                             f"(model inputs: {', '.join(s.name for s in inputs)})")
        pairs = [(s, arrays[s.name], s.name) for s in inputs]
    bound: dict[str, np.ndarray] = {}
    for spec, arr, given in pairs:
        bound[spec.name] = _conform(spec, arr, given, role, ds.path)
    return bound


def _conform(spec: TensorSpec, arr: np.ndarray, given: str, role: str, path: str) -> np.ndarray:
    where = f"{role} data {path}: array {given!r}" + (f" (model input {spec.name!r})" if given != spec.name else "")
    if spec.shape is not None:
        if len(spec.shape) != arr.ndim:
            raise InputError(f"{where} has shape {tuple(arr.shape)}; the model expects rank {len(spec.shape)} "
                             f"{_shape_text(spec.shape)}")
        for axis, (want, got) in enumerate(zip(spec.shape, arr.shape)):
            if isinstance(want, int) and want > 0 and axis > 0 and want != got:
                raise InputError(f"{where} has shape {tuple(arr.shape)}; the model expects {_shape_text(spec.shape)}")
    if spec.dtype is None or arr.dtype == spec.dtype:
        return np.ascontiguousarray(arr)
    if arr.dtype == np.bool_ and spec.dtype != np.bool_:
        ok = np.issubdtype(spec.dtype, np.number)
    else:
        ok = np.can_cast(arr.dtype, spec.dtype, casting="same_kind")
    if not ok:
        raise InputError(f"{where} is {arr.dtype}; the model expects {spec.dtype} and a cast would change values "
                         f"(save it as {spec.dtype})")
    if np.issubdtype(spec.dtype, np.integer) and np.issubdtype(arr.dtype, np.integer):
        info = np.iinfo(spec.dtype)
        if arr.size and (arr.min() < info.min or arr.max() > info.max):
            raise InputError(f"{where} has values outside {spec.dtype}")
    return np.ascontiguousarray(arr.astype(spec.dtype))


def _shape_text(shape: tuple[Dim, ...]) -> str:
    return "(" + ", ".join(str(d) if isinstance(d, int) and d > 0 else (d or "?") for d in shape) + ")"


def rows(feeds: dict[str, np.ndarray]) -> int:
    return int(next(iter(feeds.values())).shape[0])


def take(feeds: dict[str, np.ndarray], idx: slice | np.ndarray) -> dict[str, np.ndarray]:
    return {k: np.ascontiguousarray(v[idx]) for k, v in feeds.items()}


def shaped(feeds: dict[str, np.ndarray], inputs: tuple[TensorSpec, ...] | list[TensorSpec], batch: int,
           sequence: int | None) -> dict[str, np.ndarray]:
    """A feed of exactly ``batch`` rows (tiled if the data has fewer) and, for inputs with a dynamic
    sequence axis, exactly ``sequence`` positions (truncated, or padded with zeros: pad token and
    attention mask 0). What latency is measured on: the user's batch and sequence sizes."""
    n = rows(feeds)
    reps = -(-batch // n)
    out: dict[str, np.ndarray] = {}
    seq_inputs = {s.name for s in inputs if s.sequence_axis}
    for name, arr in feeds.items():
        a = np.concatenate([arr] * reps)[:batch] if reps > 1 else arr[:batch]
        if sequence is not None and name in seq_inputs and a.ndim >= 2:
            if a.shape[1] >= sequence:
                a = a[:, :sequence]
            else:
                pad = [(0, 0)] * a.ndim
                pad[1] = (0, sequence - a.shape[1])
                a = np.pad(a, pad)
        out[name] = np.ascontiguousarray(a)
    if sequence is not None and "attention_mask" in out and out["attention_mask"].shape[1:2] == (sequence,):
        # a latency probe at sequence length L attends to all L positions, as a batch of real L-token texts would
        out["attention_mask"] = np.ones_like(out["attention_mask"])
    return out
