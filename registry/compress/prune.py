"""Pruning: unstructured magnitude masks, and structured removal of whole neurons/channels.

Unstructured pruning zeroes weights (smaller only once compressed, or on sparse kernels); structured
pruning rebuilds the layers narrower so the exported ONNX graph, its file and its latency shrink.
Both are deterministic: ties between equal magnitudes are broken by position (stable sort).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

from registry.errors import InputError

Masks = dict[str, torch.Tensor]

PASS_THROUGH = (nn.ReLU, nn.ReLU6, nn.GELU, nn.Tanh, nn.Sigmoid, nn.LeakyReLU, nn.SiLU, nn.ELU, nn.Identity,
                nn.Dropout, nn.MaxPool2d, nn.AvgPool2d)


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

@dataclass(frozen=True)
class Link:
    """One prunable layer (index in the Sequential) and what its output feeds."""

    index: int
    bn: int | None        # BatchNorm directly fixing up this layer's outputs
    successor: int        # next Linear/Conv2d, whose inputs shrink with our outputs
    spatial: int          # >1 when a Flatten turns our channels into spatial*channel features


def _flatten_sizes(model: nn.Sequential, sample: torch.Tensor) -> dict[int, tuple[int, ...]]:
    shapes: dict[int, tuple[int, ...]] = {}
    hooks = [m.register_forward_hook(lambda _m, inp, _o, i=i: shapes.__setitem__(i, tuple(inp[0].shape)))
             for i, m in enumerate(model) if isinstance(m, nn.Flatten)]
    try:
        with torch.no_grad():
            model.eval()(sample[:1])
    finally:
        for h in hooks:
            h.remove()
    return shapes


def chain_links(model: nn.Module, sample: torch.Tensor) -> list[Link]:
    """Finds which prunable layer feeds which; refuses anything it cannot see through."""
    if not isinstance(model, nn.Sequential):
        raise InputError("structured pruning needs an nn.Sequential model (a chain of Linear/Conv2d layers)")
    layers = list(model)
    flat_in = _flatten_sizes(model, sample)
    weighted = [i for i, m in enumerate(layers) if isinstance(m, (nn.Linear, nn.Conv2d))]
    links = []
    for a, b in zip(weighted, weighted[1:]):
        if isinstance(layers[a], nn.Conv2d) and layers[a].groups != 1:
            raise InputError(f"structured pruning does not handle grouped convolution (layer {a})")
        bn, spatial = None, 1
        for k in range(a + 1, b):
            m = layers[k]
            if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
                if bn is not None:
                    raise InputError(f"two BatchNorm layers between layers {a} and {b}")
                bn = k
            elif isinstance(m, nn.Flatten):
                shape = flat_in[k]
                spatial = int(torch.tensor(shape[2:]).prod()) if len(shape) > 2 else 1
            elif not isinstance(m, PASS_THROUGH):
                raise InputError(f"structured pruning cannot see through {type(m).__name__} (layer {k})")
        if isinstance(layers[a], nn.Conv2d) and isinstance(layers[b], nn.Linear) and spatial == 1 and \
                layers[b].in_features != layers[a].out_channels:
            raise InputError(f"cannot map channels of layer {a} to features of layer {b}")
        links.append(Link(index=a, bn=bn, successor=b, spatial=spatial))
    return links


def widths(model: nn.Sequential, links: list[Link]) -> dict[int, int]:
    return {lk.index: _out(model[lk.index]) for lk in links}


def _out(m: nn.Module) -> int:
    return m.out_features if isinstance(m, nn.Linear) else m.out_channels


def _importance(m: nn.Module, criterion: str) -> torch.Tensor:
    w = m.weight.detach().flatten(1)
    return w.abs().sum(1) if criterion == "l1" else w.pow(2).sum(1).sqrt()


def _rows(m: nn.Module, keep: torch.Tensor) -> nn.Module:
    if isinstance(m, nn.Linear):
        new = nn.Linear(m.in_features, len(keep), bias=m.bias is not None)
    else:
        new = nn.Conv2d(m.in_channels, len(keep), m.kernel_size, m.stride, m.padding, m.dilation,
                        bias=m.bias is not None, padding_mode=m.padding_mode)
    with torch.no_grad():
        new.weight.copy_(m.weight[keep])
        if m.bias is not None:
            new.bias.copy_(m.bias[keep])
    return new


def _cols(m: nn.Module, cols: torch.Tensor) -> nn.Module:
    if isinstance(m, nn.Linear):
        new = nn.Linear(len(cols), m.out_features, bias=m.bias is not None)
    else:
        new = nn.Conv2d(len(cols), m.out_channels, m.kernel_size, m.stride, m.padding, m.dilation,
                        bias=m.bias is not None, padding_mode=m.padding_mode)
    with torch.no_grad():
        new.weight.copy_(m.weight[:, cols])
        if m.bias is not None:
            new.bias.copy_(m.bias)
    return new


def _bn(m: nn.Module, keep: torch.Tensor) -> nn.Module:
    new = type(m)(len(keep), eps=m.eps, momentum=m.momentum, affine=m.affine,
                  track_running_stats=m.track_running_stats)
    with torch.no_grad():
        if m.affine:
            new.weight.copy_(m.weight[keep])
            new.bias.copy_(m.bias[keep])
        if m.track_running_stats:
            new.running_mean.copy_(m.running_mean[keep])
            new.running_var.copy_(m.running_var[keep])
            new.num_batches_tracked.copy_(m.num_batches_tracked)
    return new


def remove_units(model: nn.Sequential, links: list[Link], targets: dict[int, int],
                 criterion: str = "l1") -> dict[int, tuple[int, int]]:
    """Shrinks each linked layer to ``targets[index]`` outputs, keeping the largest-norm units (in
    their original order), and fixes up its BatchNorm and the next layer's inputs. Returns
    ``{index: (before, after)}``."""
    changed: dict[int, tuple[int, int]] = {}
    for lk in links:
        layer = model[lk.index]
        before = _out(layer)
        n_keep = max(1, min(before, targets.get(lk.index, before)))
        if n_keep == before:
            continue
        order = torch.argsort(_importance(layer, criterion), descending=True, stable=True)
        keep = torch.sort(order[:n_keep]).values
        model[lk.index] = _rows(layer, keep).train(layer.training)
        if lk.bn is not None:
            model[lk.bn] = _bn(model[lk.bn], keep).train(model[lk.bn].training)
        cols = keep
        if lk.spatial > 1:
            cols = (keep[:, None] * lk.spatial + torch.arange(lk.spatial)[None, :]).flatten()
        model[lk.successor] = _cols(model[lk.successor], cols).train(model[lk.successor].training)
        changed[lk.index] = (before, n_keep)
    return changed
