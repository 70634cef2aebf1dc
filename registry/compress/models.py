"""Loading the model to compress: ``module:factory`` plus a state-dict file, or an ONNX file.

The factory is imported by name (so the recipe and provenance can name it, and ``reproduce`` can
rebuild it); the state dict must fit it exactly, since a silently half-loaded model would make
every later metric meaningless.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from registry.errors import InputError


def import_factory(spec: str) -> Any:
    """Resolves ``package.module:callable``; InputError on a malformed spec or a failed import."""
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise InputError(f"model factory {spec!r} must look like 'package.module:factory'")
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # any import-time failure is the user's module, not our bug
        raise InputError(f"cannot import {module_name!r} for factory {spec!r}: {exc}") from exc
    target: Any = module
    for part in attr.split("."):
        if not hasattr(target, part):
            raise InputError(f"module {module_name!r} has no attribute {attr!r}")
        target = getattr(target, part)
    if not callable(target):
        raise InputError(f"{spec!r} is not callable")
    return target


def build_model(spec: str, kwargs: dict[str, Any] | None = None) -> nn.Module:
    factory = import_factory(spec)
    try:
        model = factory(**(kwargs or {}))
    except Exception as exc:
        raise InputError(f"factory {spec!r} failed: {exc}") from exc
    if not isinstance(model, nn.Module):
        raise InputError(f"factory {spec!r} returned {type(model).__name__}, not a torch.nn.Module")
    return model


def load_state(model: nn.Module, path: str | Path, spec: str) -> nn.Module:
    """Loads weights with ``weights_only=True`` (no pickle code runs) and ``strict=True``."""
    p = Path(path)
    if not p.is_file():
        raise InputError(f"state dict {p} does not exist")
    try:
        state = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise InputError(f"cannot read state dict {p}: {exc}") from exc
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise InputError(f"{p} does not hold a state dict")
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()
        detail = " ".join(line.strip() for line in first[:3])
        raise InputError(f"state dict {p} does not fit {spec}: {detail}") from exc
    return model.eval()


def probe(model: nn.Module, feeds: "dict[str, np.ndarray] | torch.Tensor", role: str) -> int:
    """Runs two samples through the model: returns its output width, or InputError if shapes clash."""
    from registry.compress.export import names_of

    names, _ = names_of(model)
    if isinstance(feeds, torch.Tensor):
        feeds = {names[0]: feeds.numpy()}
    try:
        xs = [torch.from_numpy(np.ascontiguousarray(feeds[n][:2])) for n in names]
        with torch.no_grad():
            out = model.eval()(*xs)
    except Exception as exc:
        shapes = ", ".join(f"{n} {tuple(feeds[n].shape[1:])}" for n in names if n in feeds)
        raise InputError(f"{role} data with sample shape {shapes} does not fit the model: "
                         f"{str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__}") from exc
    if not isinstance(out, torch.Tensor) or out.ndim != 2:
        raise InputError(f"model must return a (batch, outputs) tensor, got "
                         f"{getattr(out, 'shape', type(out).__name__)}")
    return int(out.shape[1])


def forward_names(model: nn.Module, arrays: list[str]) -> list[str]:
    """Input names for a factory model: its single input is ``input``; several inputs bind by the
    names of ``forward``'s parameters, which the data's arrays must match."""
    import inspect

    if len(arrays) <= 1:
        return ["input"]
    params = [p.name for p in inspect.signature(model.forward).parameters.values()
              if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    missing = [a for a in arrays if a not in params]
    if missing:
        raise InputError(f"the data has array(s) {', '.join(missing)} but {type(model).__name__}.forward takes "
                         f"({', '.join(params)})")
    return [p for p in params if p in arrays]


def code_digest(spec: str) -> dict[str, str]:
    """SHA-256 of the source file that defines the factory: the model's code, as provenance records it."""
    import hashlib
    import inspect

    target = import_factory(spec)
    try:
        source = inspect.getsourcefile(target) or inspect.getfile(target)
        data = Path(source).read_bytes()
    except (OSError, TypeError):
        return {"factory": spec}
    return {"factory": spec, "file": Path(source).name, "sha256": hashlib.sha256(data).hexdigest()}


def count_parameters(model: nn.Module) -> tuple[int, int]:
    """(parameters, non-zero parameters), counting weights and biases, not BatchNorm buffers."""
    total = nonzero = 0
    for p in model.parameters():
        total += p.numel()
        nonzero += int(torch.count_nonzero(p.detach()).item())
    return total, nonzero
