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
    teacher.eval()

    def loss(out: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            soft = teacher(x)
        if task != "classification":  # regression/embedding: match the teacher's outputs directly
            return alpha * F.mse_loss(out, soft) + (1 - alpha) * F.mse_loss(out, y.reshape(out.shape))
        t = temperature
        kl = F.kl_div(F.log_softmax(out / t, dim=1), F.log_softmax(soft / t, dim=1), reduction="batchmean",
                      log_target=True)
        return alpha * t * t * kl + (1 - alpha) * F.cross_entropy(out, y)

    return loss


def distill(teacher: nn.Module, student: nn.Module, data: Dataset, task: str, train: TrainConfig,
            cfg: DistillConfig, on_epoch: EpochHook | None = None) -> TrainResult:
    train_idx, val_idx = split_indices(len(data), cfg.val_fraction, train.seed)
    return fit(student, subset(data, train_idx), task, train,
               loss=distill_loss(teacher, cfg.temperature, cfg.alpha, task),
               validation=subset(data, val_idx), patience=cfg.patience, on_epoch=on_epoch)
