"""Deterministic training on CPU: the same seed and data give bit-identical weights.

Byte-identical ONNX output starts here: seeded initialisation and batch order, deterministic
kernels, and one intra-op thread (float sums in a different order round differently).
"""

from __future__ import annotations

import copy
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Callable, Iterator

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from registry.compress.data import Dataset

LossFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]
EpochHook = Callable[[int, int, float], None]


@contextmanager
def deterministic(seed: int) -> Iterator[None]:
    """Seeds torch and pins deterministic, single-threaded kernels; restores the previous state."""
    threads = torch.get_num_threads()
    was_det = torch.are_deterministic_algorithms_enabled()
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(was_det)


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 10
    lr: float = 1e-3
    batch_size: int = 64
    weight_decay: float = 0.0
    seed: int = 0


@dataclass
class TrainResult:
    epochs_run: int = 0
    best_epoch: int = 0
    losses: list[float] = field(default_factory=list)
    val_scores: list[float] = field(default_factory=list)


def task_loss(task: str) -> LossFn:
    if task == "classification":
        return lambda out, _x, y: F.cross_entropy(out, y)
    return lambda out, _x, y: F.mse_loss(out, y.reshape(out.shape).to(out.dtype))


def tensors(data: Dataset, task: str) -> tuple[torch.Tensor, torch.Tensor]:
    x = torch.from_numpy(np.ascontiguousarray(data.x))
    y = torch.from_numpy(np.ascontiguousarray(data.y))
    y = y.long() if task == "classification" else y.float()
    return x, y


def predict(model: nn.Module, x: torch.Tensor, batch: int = 512) -> torch.Tensor:
    model.eval()
    with torch.no_grad():
        return torch.cat([model(x[i:i + batch]) for i in range(0, x.shape[0], batch)])


def score(model: nn.Module, data: Dataset, task: str) -> float:
    """Higher is better: accuracy for classification, negative MSE otherwise (early stopping)."""
    x, y = tensors(data, task)
    out = predict(model, x)
    if task == "classification":
        return float((out.argmax(1) == y).float().mean())
    return -float(F.mse_loss(out, y.reshape(out.shape)))


def fit(model: nn.Module, data: Dataset, task: str, cfg: TrainConfig, *, loss: LossFn | None = None,
        after_step: Callable[[], None] | None = None, validation: Dataset | None = None,
        patience: int | None = None, on_epoch: EpochHook | None = None) -> TrainResult:
    """Adam over seeded mini-batches. ``after_step`` re-applies pruning masks after each update;
    with ``validation`` the best epoch's weights are kept and training stops after ``patience``
    epochs without improvement."""
    loss_fn = loss or task_loss(task)
    x, y = tensors(data, task)
    result = TrainResult()
    if cfg.epochs <= 0:
        return result
    with deterministic(cfg.seed):
        opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        gen = torch.Generator().manual_seed(cfg.seed)
        best_score, best_state, stale = -float("inf"), None, 0
        for epoch in range(cfg.epochs):
            model.train()
            order = torch.randperm(x.shape[0], generator=gen)
            total = 0.0
            for i in range(0, x.shape[0], cfg.batch_size):
                idx = order[i:i + cfg.batch_size]
                opt.zero_grad(set_to_none=True)
                value = loss_fn(model(x[idx]), x[idx], y[idx])
                value.backward()
                opt.step()
                if after_step is not None:
                    after_step()
                total += float(value.detach()) * idx.shape[0]
            result.losses.append(total / x.shape[0])
            result.epochs_run = epoch + 1
            if on_epoch is not None:
                on_epoch(epoch + 1, cfg.epochs, result.losses[-1])
            if validation is not None:
                current = score(model, validation, task)
                result.val_scores.append(current)
                if current > best_score:
                    best_score, best_state, stale = current, copy.deepcopy(model.state_dict()), 0
                    result.best_epoch = epoch + 1
                else:
                    stale += 1
                    if patience is not None and stale >= patience:
                        break
        if best_state is not None:
            model.load_state_dict(best_state)
    model.eval()
    return result


def train_base(factory: str, data: Dataset, cfg: TrainConfig, kwargs: dict | None = None) -> nn.Module:
    """Trains an example model from scratch (seeded init), for tests, bench and demo."""
    from registry.compress.models import build_model

    with deterministic(cfg.seed):
        model = build_model(factory, kwargs)
    fit(model, data, "classification", cfg)
    return model
