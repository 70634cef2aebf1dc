"""Deterministic training on CPU: the same seed and data give bit-identical weights.

Byte-identical ONNX output starts here: seeded initialisation and batch order, deterministic
kernels, and one intra-op thread (float sums in a different order round differently).
"""

from __future__ import annotations

import copy
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, Iterator

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

if TYPE_CHECKING:
    from registry.compress.data import Dataset

LossFn = Callable[[torch.Tensor, tuple[torch.Tensor, ...], torch.Tensor], torch.Tensor]
EpochHook = Callable[[int, int, float], None]
Feeds = dict[str, np.ndarray]


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
    noise: str = "none"          # "input": Gaussian noise on float inputs; "weight": on weights, per step
    noise_std: float = 0.0


@dataclass
class TrainResult:
    epochs_run: int = 0
    best_epoch: int = 0
    losses: list[float] = field(default_factory=list)
    val_scores: list[float] = field(default_factory=list)


def task_loss(task: str) -> LossFn:
    from registry.compress.data import is_classification

    if is_classification(task):
        return lambda out, _x, y: F.cross_entropy(out, y)
    return lambda out, _x, y: F.mse_loss(out, y.reshape(out.shape).to(out.dtype))


def input_names(model: nn.Module) -> list[str]:
    from registry.compress.export import names_of

    return names_of(model)[0]


def as_feeds(model: nn.Module, data: "Dataset | Feeds | torch.Tensor | np.ndarray") -> Feeds:
    """Named numpy inputs for ``model`` from a Dataset, a feed dict or one array."""
    names = input_names(model)
    if isinstance(data, dict):
        return data
    if isinstance(data, torch.Tensor):
        return {names[0]: data.numpy()}
    if isinstance(data, np.ndarray):
        return {names[0]: data}
    if len(names) == 1 and len(data.inputs) == 1:
        return {names[0]: next(iter(data.inputs.values()))}
    return {n: data.inputs[n] for n in names}


def tensors(data: "Dataset", task: str, model: nn.Module | None = None,
            targets: np.ndarray | None = None) -> tuple[tuple[torch.Tensor, ...], torch.Tensor]:
    from registry.compress.data import is_classification

    feeds = as_feeds(model, data) if model is not None else data.inputs
    names = input_names(model) if model is not None else list(feeds)
    xs = tuple(torch.from_numpy(np.ascontiguousarray(feeds[n])) for n in names)
    y_np = targets if targets is not None else data.y
    y = torch.from_numpy(np.ascontiguousarray(y_np))
    y = y.long() if is_classification(task) and targets is None else y.float()
    return xs, y


def predict(model: nn.Module, data: "Feeds | torch.Tensor | np.ndarray", batch: int = 256) -> torch.Tensor:
    feeds = as_feeds(model, data)
    names = input_names(model)
    xs = [torch.from_numpy(np.ascontiguousarray(feeds[n])) for n in names]
    model.eval()
    with torch.no_grad():
        n = xs[0].shape[0]
        return torch.cat([model(*[x[i:i + batch] for x in xs]) for i in range(0, n, batch)])


def score(model: nn.Module, data: "Dataset", task: str, targets: np.ndarray | None = None) -> float:
    """Higher is better: accuracy for classification, negative MSE otherwise (early stopping)."""
    from registry.compress.data import is_classification

    xs, y = tensors(data, task, model, targets)
    out = predict(model, {n: x.numpy() for n, x in zip(input_names(model), xs)})
    if is_classification(task) and targets is None:
        return float((out.argmax(1) == y).float().mean())
    return -float(F.mse_loss(out, y.reshape(out.shape)))


def _noisy_inputs(xs: tuple[torch.Tensor, ...], std: float, gen: torch.Generator) -> tuple[torch.Tensor, ...]:
    """Gaussian noise on float inputs only (token ids and masks stay exact)."""
    return tuple(x + torch.randn(x.shape, generator=gen, dtype=x.dtype) * std if x.is_floating_point() else x
                 for x in xs)


def fit(model: nn.Module, data: "Dataset", task: str, cfg: TrainConfig, *, loss: LossFn | None = None,
        after_step: Callable[[], None] | None = None, validation: "Dataset | None" = None,
        patience: int | None = None, on_epoch: EpochHook | None = None,
        targets: np.ndarray | None = None, val_targets: np.ndarray | None = None) -> TrainResult:
    """Adam over seeded mini-batches. ``after_step`` re-applies pruning masks after each update;
    with ``validation`` the best epoch's weights are kept and training stops after ``patience``
    epochs without improvement. ``targets`` replace ``data.y`` (an embedding model learns its FP32
    base's outputs). ``cfg.noise`` adds seeded Gaussian noise to float inputs or to the weights
    (the weights are perturbed for the forward/backward pass and restored before the update)."""
    loss_fn = loss or task_loss(task if targets is None else "regression")
    xs, y = tensors(data, task, model, targets)
    result = TrainResult()
    if cfg.epochs <= 0:
        return result
    with deterministic(cfg.seed):
        params = [p for p in model.parameters() if p.requires_grad]
        opt = torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
        gen = torch.Generator().manual_seed(cfg.seed)
        noise_gen = torch.Generator().manual_seed(cfg.seed + 1)
        best_score, best_state, stale = -float("inf"), None, 0
        n = xs[0].shape[0]
        for epoch in range(cfg.epochs):
            model.train()
            order = torch.randperm(n, generator=gen)
            total = 0.0
            for i in range(0, n, cfg.batch_size):
                idx = order[i:i + cfg.batch_size]
                batch = tuple(x[idx] for x in xs)
                if cfg.noise == "input" and cfg.noise_std > 0:
                    batch = _noisy_inputs(batch, cfg.noise_std, noise_gen)
                saved = None
                if cfg.noise == "weight" and cfg.noise_std > 0:
                    saved = [p.detach().clone() for p in params]
                    with torch.no_grad():
                        for p in params:
                            p.add_(torch.randn(p.shape, generator=noise_gen, dtype=p.dtype) * cfg.noise_std)
                opt.zero_grad(set_to_none=True)
                value = loss_fn(model(*batch), batch, y[idx])
                value.backward()
                if saved is not None:
                    with torch.no_grad():
                        for p, s in zip(params, saved):
                            p.copy_(s)
                opt.step()
                if after_step is not None:
                    after_step()
                total += float(value.detach()) * idx.shape[0]
            result.losses.append(total / n)
            result.epochs_run = epoch + 1
            if on_epoch is not None:
                on_epoch(epoch + 1, cfg.epochs, result.losses[-1])
            if validation is not None:
                current = score(model, validation, task, val_targets)
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
