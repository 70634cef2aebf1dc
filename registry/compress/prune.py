"""Pruning: unstructured magnitude masks, and dependency-aware structured removal of channels/heads.

Unstructured pruning zeroes weights: the ONNX file stores dense tensors, so it saves no bytes and no
time (the report says so: its size ratio stays 1.00x). Structured pruning (torch-pruning) rebuilds the
layers narrower, so the exported graph, its file and its latency shrink. Unstructured masks are
deterministic: ties between equal magnitudes are broken by position (stable sort).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import torch
from torch import nn

from registry.errors import InputError

Masks = dict[str, torch.Tensor]

def prunable(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """Weight-bearing layers whose weights are pruned (biases and BatchNorm are left alone)."""
    return [(name, m) for name, m in model.named_modules() if isinstance(m, (nn.Linear, nn.Conv2d))]


def weight_vector(model: nn.Module) -> torch.Tensor:
    """All prunable weights, flattened: what the before/after histograms plot."""
    return torch.cat([m.weight.detach().flatten() for _, m in prunable(model)])


def schedule(final: float, iterations: int, kind: str = "cubic") -> list[float]:
    """Sparsity after each iteration, ending at ``final``. Cubic (Zhu & Gupta 2017) prunes hard
    while many redundant weights remain and gently near the end."""
    out = []
    for i in range(1, iterations + 1):
        frac = i / iterations
        out.append(final * (1 - (1 - frac) ** 3) if kind == "cubic" else final * frac)
    out[-1] = final
    return out


def _lowest(scores: torch.Tensor, k: int) -> torch.Tensor:
    """Boolean mask keeping all but the ``k`` smallest entries; ties broken by position."""
    flat = scores.flatten()
    keep = torch.ones_like(flat, dtype=torch.bool)
    if k > 0:
        order = torch.argsort(flat, stable=True)
        keep[order[:k]] = False
    return keep.reshape(scores.shape)


def magnitude_masks(model: nn.Module, *, method: str, value: float, scope: str = "global",
                    previous: Masks | None = None) -> Masks:
    """Masks for one pruning round.

    method ``sparsity``: remove the fraction ``value`` of weights with the smallest magnitude, over
    all layers (``scope="global"``, so redundant layers lose more) or within each layer.
    method ``threshold``: remove every weight with ``|w| <= value``.
    method ``percentile``: per-layer adaptive threshold at the ``value``-th percentile of that
    layer's magnitudes. method ``std``: per-layer threshold ``value * std(w)`` (Han et al. 2015).
    Already-pruned weights stay pruned (their magnitude is zero, and the previous mask is ANDed).
    """
    layers = prunable(model)
    if not layers:
        raise InputError("model has no Linear or Conv2d layers to prune")
    mags = {name: m.weight.detach().abs() for name, m in layers}
    stds = {name: float(m.weight.detach().std()) for name, m in layers}
    masks: Masks = {}
    if method == "sparsity" and scope == "global":
        flat = torch.cat([t.flatten() for t in mags.values()])
        keep = _lowest(flat, int(round(value * flat.numel())))
        offset = 0
        for name, t in mags.items():
            masks[name] = keep[offset:offset + t.numel()].reshape(t.shape)
            offset += t.numel()
    else:
        for name, t in mags.items():
            if method == "sparsity":
                masks[name] = _lowest(t, int(round(value * t.numel())))
            elif method == "percentile":
                masks[name] = _lowest(t, int(round(value / 100.0 * t.numel())))
            elif method == "threshold":
                masks[name] = t > value
            elif method == "std":
                masks[name] = t > value * stds[name]
            else:
                raise InputError(f"unknown pruning method {method!r}")
    if previous:
        masks = {name: mask & previous[name] if name in previous else mask for name, mask in masks.items()}
    return masks


def apply_masks(model: nn.Module, masks: Masks) -> None:
    modules = dict(model.named_modules())
    with torch.no_grad():
        for name, mask in masks.items():
            modules[name].weight.mul_(mask.to(modules[name].weight.dtype))


def mask_hook(model: nn.Module, masks: Masks) -> Callable[[], None]:
    """Re-applies masks after each optimiser step so fine-tuning cannot regrow pruned weights."""
    return lambda: apply_masks(model, masks)


def sparsity(model: nn.Module) -> float:
    w = weight_vector(model)
    return float((w == 0).sum()) / max(1, w.numel())


# ---- structured pruning -------------------------------------------------------------------------

def _weighted(model: nn.Module) -> list[tuple[str, nn.Module]]:
    return [(n, m) for n, m in model.named_modules() if isinstance(m, (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d))]


def _out(m: nn.Module) -> int:
    return m.out_features if isinstance(m, nn.Linear) else m.out_channels


def _attention_modules(model: nn.Module) -> list[nn.Module]:
    """BERT-style self-attention blocks: query/key/value Linears and a head count."""
    return [m for m in model.modules() if all(isinstance(getattr(m, a, None), nn.Linear) for a in ("query", "key", "value"))
            and isinstance(getattr(m, "num_attention_heads", None), int)]


def _ffn_modules(model: nn.Module) -> list[nn.Linear]:
    """The FFN up-projections (BERT's ``intermediate.dense``): narrowing them narrows the FFN."""
    out = []
    for m in model.modules():
        inter = getattr(m, "intermediate", None)
        dense = getattr(inter, "dense", None)
        if isinstance(dense, nn.Linear) and isinstance(getattr(getattr(m, "output", None), "dense", None), nn.Linear):
            out.append(dense)
    return out


def is_transformer(model: nn.Module) -> bool:
    return bool(_attention_modules(model))


def _last_layer(model: nn.Module, example: tuple[torch.Tensor, ...]) -> list[nn.Module]:
    """The weight layer that runs last produces the model's outputs: its width must not change."""
    order: list[nn.Module] = []
    hooks = [m.register_forward_hook(lambda mod, _i, _o: order.append(mod)) for _, m in _weighted(model)]
    try:
        with torch.no_grad():
            model.eval()(*example)
    finally:
        for h in hooks:
            h.remove()
    if not order:
        raise InputError("structured pruning found no Linear/Conv layer in the model")
    return [order[-1]]


def widths(model: nn.Module) -> dict[str, int]:
    """Output width of every Linear/Conv layer (and head count of every attention block), by name."""
    out = {name: _out(m) for name, m in _weighted(model)}
    for name, m in model.named_modules():
        if m in _attention_modules(model):
            out[f"{name}.heads"] = int(m.num_attention_heads)
    return out


@dataclass
class StructuredPruner:
    """Dependency-aware structured pruning with torch-pruning (Fang et al., CVPR 2023).

    torch-pruning traces the model, groups every layer whose channels are coupled (a residual add,
    a BatchNorm, a concat, the input columns of the next layer) and removes whole channels of a group
    at once, so any nn.Module graph stays consistent: residual CNNs as well as Sequentials. On a
    transformer it removes whole attention heads (query/key/value rows and the output projection's
    columns together) and FFN width, and keeps the hidden size, so the output width never changes.
    ``ratio`` is reached in ``iterations`` equal steps (fine-tuning between them is the caller's)."""

    pruner: Any
    model: nn.Module
    transformer: bool

    @classmethod
    def create(cls, model: nn.Module, example: tuple[torch.Tensor, ...], ratio: float, iterations: int = 1,
               criterion: str = "l1", heads: bool = True, ffn: bool = True) -> "StructuredPruner":
        import torch_pruning as tp

        importance = tp.importance.GroupMagnitudeImportance(p=1 if criterion == "l1" else 2)
        common = dict(importance=importance, iterative_steps=iterations, forward_fn=lambda m, x: m(*x))
        attention = _attention_modules(model)
        if attention:
            roots: set[nn.Module] = set()
            num_heads: dict[nn.Module, int] = {}
            if heads:
                for att in attention:
                    for lin in (att.query, att.key, att.value):
                        num_heads[lin] = att.num_attention_heads
                        roots.add(lin)
            if ffn:
                roots.update(_ffn_modules(model))
            if not roots:
                raise InputError("structured pruning of a transformer needs heads = true or ffn = true")
            ignored = [m for m in model.modules() if isinstance(m, (nn.Linear, nn.Embedding, nn.LayerNorm))
                       and m not in roots]
            pruner = tp.pruner.BasePruner(model, example, pruning_ratio=ratio if ffn else 0.0,
                                          ignored_layers=ignored, num_heads=num_heads, prune_num_heads=heads,
                                          prune_head_dims=False, head_pruning_ratio=ratio if heads else 0.0, **common)
            return cls(pruner, model, True)
        for name, m in model.named_modules():
            if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Conv3d)) and m.groups not in (1, m.in_channels):
                raise InputError(f"structured pruning does not handle grouped convolution ({name})")
        pruner = tp.pruner.BasePruner(model, example, pruning_ratio=ratio, ignored_layers=_last_layer(model, example),
                                      **common)
        return cls(pruner, model, False)

    def step(self) -> None:
        self.pruner.step()
        if self.transformer:
            for att in _attention_modules(self.model):
                size = int(getattr(att, "attention_head_size", 0)) or 1
                att.num_attention_heads = att.query.out_features // size
                att.all_head_size = att.query.out_features
