"""Pruning: exact sparsity, masks that survive fine-tuning, structured removal that keeps the function."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from registry.compress import prune as P
from registry.compress.zoo import digits_cnn, digits_mlp
from registry.errors import InputError


def _mlp() -> nn.Sequential:
    torch.manual_seed(0)
    return digits_mlp(32, 16)


@settings(max_examples=25, deadline=None)
@given(st.floats(0.0, 0.99), st.sampled_from(["global", "layer"]))
def test_sparsity_is_exact(amount: float, scope: str) -> None:
    model = _mlp()
    masks = P.magnitude_masks(model, method="sparsity", value=amount, scope=scope)
    P.apply_masks(model, masks)
    total = sum(m.weight.numel() for _, m in P.prunable(model))
    zeros = sum(int((m.weight == 0).sum()) for _, m in P.prunable(model))
    if scope == "global":
        assert zeros == round(amount * total)
    else:
        assert zeros == sum(round(amount * m.weight.numel()) for _, m in P.prunable(model))


def test_global_pruning_removes_the_smallest_magnitudes() -> None:
    model = _mlp()
    before = P.weight_vector(model).abs()
    P.apply_masks(model, P.magnitude_masks(model, method="sparsity", value=0.6))
    after = P.weight_vector(model)
    kept = before[after != 0]
    dropped = before[after == 0]
    assert float(kept.min()) >= float(dropped.max())


def test_threshold_percentile_and_std_methods() -> None:
    model = _mlp()
    masks = P.magnitude_masks(model, method="threshold", value=0.1)
    for name, m in P.prunable(model):
        assert torch.equal(masks[name], m.weight.abs() > 0.1)
    masks = P.magnitude_masks(model, method="percentile", value=50)
    for name, m in P.prunable(model):  # adaptive: each layer loses half, whatever its scale
        assert int((~masks[name]).sum()) == round(0.5 * m.weight.numel())
    masks = P.magnitude_masks(model, method="std", value=1.0)
    for name, m in P.prunable(model):
        assert torch.equal(masks[name], m.weight.abs() > m.weight.std())


def test_previous_masks_are_kept() -> None:
    model = _mlp()
    first = P.magnitude_masks(model, method="sparsity", value=0.3)
    with torch.no_grad():  # regrow everything: the old mask must still win
        for _, m in P.prunable(model):
            m.weight.add_(10.0)
    second = P.magnitude_masks(model, method="sparsity", value=0.1, previous=first)
    for name in first:
        assert not bool((second[name] & ~first[name]).any())


def test_schedule_is_monotone_and_ends_at_final() -> None:
    s = P.schedule(0.8, 4)
    assert s[-1] == 0.8 and all(a < b for a, b in zip(s, s[1:]))
    assert s[0] > 0.8 / 4  # cubic: prunes hardest first
    assert P.schedule(0.5, 1) == [0.5]


def test_structured_removes_dead_neurons_without_changing_outputs() -> None:
    model = _mlp().eval()
    with torch.no_grad():
        model[0].weight[::2] = 0.0   # half of layer 0 is dead (zero weight rows)...
        model[0].bias[::2] = 0.0     # ...and outputs zero after ReLU
    x = torch.rand(20, 64)
    ref = model(x)
    links = P.chain_links(model, x)
    changed = P.remove_units(model, links, {0: 16, 2: 16})
    assert changed == {0: (32, 16)}
    assert model[0].out_features == 16 and model[2].in_features == 16
    assert torch.allclose(model(x), ref, atol=1e-6)


def test_structured_cnn_fixes_batchnorm_and_flatten() -> None:
    torch.manual_seed(0)
    model = digits_cnn(8, 16, 32).eval()
    with torch.no_grad():  # make channels 1,3,5,7 of conv1 dead, including after BatchNorm
        for c in (1, 3, 5, 7):
            model[1].weight[c] = 0.0
            model[1].bias[c] = 0.0
            model[2].weight[c] = 0.0
            model[2].bias[c] = 0.0
        for c in range(0, 16, 2):  # and every other channel of conv2
            model[4].weight[c] = 0.0
            model[4].bias[c] = 0.0
            model[5].weight[c] = 0.0
            model[5].bias[c] = 0.0
        model[2].running_mean.uniform_(-0.5, 0.5)
        model[5].running_var.uniform_(0.5, 2.0)
    x = torch.rand(10, 64)
    ref = model(x)
    changed = P.remove_units(model, P.chain_links(model, x), {1: 4, 4: 8, 9: 32})
    assert changed == {1: (8, 4), 4: (16, 8)}
    assert model[2].num_features == 4 and model[5].num_features == 8
    assert model[9].in_features == 8 * 16   # flatten: 8 channels x 4x4 spatial
    assert torch.allclose(model(x), ref, atol=1e-5)


def test_structured_refuses_what_it_cannot_see_through() -> None:
    model = nn.Sequential(nn.Linear(64, 8), nn.LayerNorm(8), nn.Linear(8, 10))
    with pytest.raises(InputError, match="cannot see through LayerNorm"):
        P.chain_links(model, torch.rand(1, 64))

    class NotSequential(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x

    with pytest.raises(InputError, match="nn.Sequential"):
        P.chain_links(NotSequential(), torch.rand(1, 64))


def test_structured_keeps_largest_norm_units_in_order() -> None:
    model = nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 2))
    with torch.no_grad():
        model[0].weight.copy_(torch.tensor(np.diag([1.0, 4.0, 2.0, 3.0]), dtype=torch.float32))
    P.remove_units(model, P.chain_links(model, torch.rand(1, 4)), {0: 2})
    assert torch.equal(model[0].weight, torch.tensor([[0.0, 4.0, 0.0, 0.0], [0.0, 0.0, 0.0, 3.0]]))
