"""Knowledge distillation: a smaller student learns the teacher's softened outputs and the labels.

Loss = alpha * T^2 * KL(softmax(teacher/T) || softmax(student/T)) + (1 - alpha) * CE(student, y)
(Hinton et al. 2015; the T^2 keeps soft-target gradients on the same scale as T changes).
Early stopping watches a seeded validation split carved out of the fine-tuning data, and the best
epoch's weights are kept.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from registry.compress.data import Dataset, split_indices, subset
from registry.compress.train import EpochHook, TrainConfig, TrainResult, fit


@dataclass(frozen=True)
class DistillConfig:
    temperature: float = 4.0
    alpha: float = 0.7
    val_fraction: float = 0.15
    patience: int = 5


def distill_loss(teacher: nn.Module, temperature: float, alpha: float, task: str):  # noqa: ANN201
    from registry.compress.data import is_classification

    teacher.eval()

    def loss(out: torch.Tensor, xs: tuple[torch.Tensor, ...], y: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            soft = teacher(*xs)
        if not is_classification(task):  # regression/embedding: match the teacher's outputs directly
            if task == "embedding" and alpha >= 1.0:
                return F.mse_loss(out, soft)
            return alpha * F.mse_loss(out, soft) + (1 - alpha) * F.mse_loss(out, y.reshape(out.shape).to(out.dtype))
        t = temperature
        kl = F.kl_div(F.log_softmax(out / t, dim=1), F.log_softmax(soft / t, dim=1), reduction="batchmean",
                      log_target=True)
        return alpha * t * t * kl + (1 - alpha) * F.cross_entropy(out, y)

    return loss


def distill(teacher: nn.Module, student: nn.Module, data: Dataset, task: str, train: TrainConfig,
            cfg: DistillConfig, on_epoch: EpochHook | None = None, targets=None) -> TrainResult:  # noqa: ANN001
    """``targets`` stand in for labels where the data has none (an embedding student learns the
    teacher's own outputs: alpha then weighs nothing but the teacher)."""
    train_idx, val_idx = split_indices(len(data), cfg.val_fraction, train.seed)
    alpha = 1.0 if targets is not None and task == "embedding" else cfg.alpha
    return fit(student, subset(data, train_idx), task, train,
               loss=distill_loss(teacher, cfg.temperature, alpha, task),
               validation=subset(data, val_idx), patience=cfg.patience, on_epoch=on_epoch,
               targets=None if targets is None else targets[train_idx],
               val_targets=None if targets is None else targets[val_idx])


def fewer_layers(teacher: nn.Module, keep: int) -> nn.Module:
    """A Transformers student with ``keep`` of the teacher's encoder layers, evenly spaced and copied
    with their weights (DistilBERT's initialisation), embeddings and head shared by copy."""
    import copy

    from registry.errors import InputError

    student = copy.deepcopy(teacher)
    layers = _encoder_layers(student)
    if layers is None:
        raise InputError("distill layers = N needs a model with an encoder layer list (BERT-style encoder.layer)")
    total = len(layers)
    if not 1 <= keep < total:
        raise InputError(f"distill layers = {keep}: the model has {total} layers (keep between 1 and {total - 1})")
    picked = sorted({round(i * (total - 1) / max(1, keep - 1)) for i in range(keep)}) if keep > 1 else [total - 1]
    kept = nn.ModuleList([layers[i] for i in picked])
    parent = _encoder(student)
    parent.layer = kept
    config = getattr(getattr(student, "backbone", student), "config", None)
    if config is not None:
        config.num_hidden_layers = len(kept)
    return student


def _encoder(model: nn.Module) -> nn.Module | None:
    for m in model.modules():
        if isinstance(getattr(m, "layer", None), nn.ModuleList) and type(m).__name__.endswith("Encoder"):
            return m
    return None


def _encoder_layers(model: nn.Module) -> nn.ModuleList | None:
    enc = _encoder(model)
    return None if enc is None else enc.layer
