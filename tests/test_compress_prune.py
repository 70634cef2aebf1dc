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


def _prune(model: nn.Module, x: torch.Tensor, ratio: float, **kw) -> P.StructuredPruner:
    pruner = P.StructuredPruner.create(model, (x[:2],), ratio, **kw)
    pruner.step()
    return pruner


def test_structured_removes_dead_neurons_without_changing_outputs() -> None:
    model = _mlp().eval()
    with torch.no_grad():
        for layer in (model[0], model[2]):  # half of each hidden layer is dead (zero weight rows)...
            layer.weight[::2] = 0.0
            layer.bias[::2] = 0.0     # ...and outputs zero after ReLU
    x = torch.rand(20, 64)
    ref = model(x)
    _prune(model, x, 0.5)
    assert model[0].out_features == 16 and model[2].in_features == 16 and model[2].out_features == 8
    assert model[4].out_features == 10          # the output layer keeps its width
    assert torch.allclose(model(x), ref, atol=1e-5)


def test_structured_cnn_fixes_batchnorm_and_flatten() -> None:
    torch.manual_seed(0)
    model = digits_cnn(8, 16, 32).eval()
    x = torch.rand(10, 64)
    _prune(model, x, 0.5)
    assert (model[1].out_channels, model[2].num_features, model[4].in_channels) == (4, 4, 4)
    assert (model[4].out_channels, model[5].num_features) == (8, 8)
    assert model[9].in_features == 8 * 16   # flatten: 8 channels x 4x4 spatial
    assert model[11].out_features == 10 and model(x).shape == (10, 10)


def test_structured_residual_cnn_prunes_coupled_channels_together() -> None:
    from registry.compress.export import export_onnx
    from registry.compress.evaluate import onnx_outputs
    from registry.compress.zoo import digits_resnet

    torch.manual_seed(0)
    model = digits_resnet(16, 2).eval()
    x = torch.rand(6, 64)
    before = sum(p.numel() for p in model.parameters())
    _prune(model, x, 0.5)
    stem = model.stem[0].out_channels
    # the identity shortcut ties the stem, every block's second conv and the head together
    assert stem == 8 and all(b.conv2.out_channels == stem and b.conv1.in_channels == stem for b in model.blocks)
    assert model.head.in_features == stem and model.head.out_features == 10
    assert sum(p.numel() for p in model.parameters()) < 0.4 * before
    data = export_onnx(model, x.numpy())
    assert np.allclose(onnx_outputs(data, x.numpy()), model(x).detach().numpy(), atol=1e-5)


def test_structured_transformer_removes_heads_and_ffn_width(tmp_path) -> None:  # noqa: ANN001
    from registry.compress.hf import load_hf, tiny_bert

    hf = load_hf(tiny_bert(tmp_path / "tb"), "embedding")
    model = hf.module
    enc = hf.tokenizer(["the data set has one class", "a sample"], padding=True, return_tensors="pt")
    example = tuple(enc[n] for n in hf.input_names)
    before = model(*example)
    pruner = P.StructuredPruner.create(model, example, 0.5)
    pruner.step()
    assert pruner.transformer
    for layer in model.backbone.encoder.layer:
        att = layer.attention.self
        assert (att.num_attention_heads, att.query.out_features, att.all_head_size) == (2, 16, 16)
        assert layer.attention.output.dense.in_features == 16 and layer.attention.output.dense.out_features == 32
        assert layer.intermediate.dense.out_features == 32 and layer.output.dense.in_features == 32
    after = model(*example)
    assert after.shape == before.shape == (2, 32)  # the hidden size (the embedding width) is kept
    assert P.widths(model)["backbone.encoder.layer.0.attention.self.heads"] == 2


def test_structured_keeps_largest_norm_units_in_order() -> None:
    model = nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 2))
    with torch.no_grad():
        model[0].weight.copy_(torch.tensor(np.diag([1.0, 4.0, 2.0, 3.0]), dtype=torch.float32))
        model[0].bias.zero_()
        model[2].weight.fill_(0.1)
    _prune(model, torch.rand(2, 4), 0.5)
    assert torch.equal(model[0].weight, torch.tensor([[0.0, 4.0, 0.0, 0.0], [0.0, 0.0, 0.0, 3.0]]))
