"""Shared, per-worker fixtures for the compression tests: digits splits and tiny trained models.

Session-scoped under tmp_path_factory, so each xdist worker builds its own copy (no collisions) once.
Models are trained for a few epochs only: the tests check behaviour, not the figures (bench does).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

MLP = "registry.compress.zoo:digits_mlp"
CNN_SMALL = "registry.compress.zoo:digits_cnn_small"


@dataclass(frozen=True)
class Digits:
    root: Path
    finetune: Path
    calibration: Path
    evaluation: Path
    mlp: Path       # state dict of digits_mlp (64-256-128-10)

    def recipe(self, steps: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
        raw: dict[str, Any] = {
            "seed": 0,
            "model": {"factory": MLP, "weights": str(self.mlp)},
            "data": {"finetune": str(self.finetune), "calibration": str(self.calibration),
                     "evaluation": str(self.evaluation)},
            "evaluation": {"latency_runs": 0},
            "steps": steps,
        }
        raw.update(extra)
        return raw


@pytest.fixture(scope="session")
def digits(tmp_path_factory: pytest.TempPathFactory) -> Digits:
    import torch

    from registry.compress.data import load_npz
    from registry.compress.digits import write_digits_splits
    from registry.compress.train import TrainConfig, train_base

    root = tmp_path_factory.mktemp("digits")
    splits = write_digits_splits(root, seed=0)
    ft = load_npz(splits.finetune, "finetune")
    mlp = train_base(MLP, ft, TrainConfig(epochs=3, lr=3e-3, seed=0))
    torch.save(mlp.state_dict(), root / "mlp.pt")
    return Digits(root, splits.finetune, splits.calibration, splits.evaluation, root / "mlp.pt")


@pytest.fixture(scope="session")
def cnn_weights(digits: Digits) -> Path:
    """State dict of digits_cnn_small, trained briefly (only for tests that need a CNN)."""
    import torch

    from registry.compress.data import load_npz
    from registry.compress.train import TrainConfig, train_base

    cnn = train_base(CNN_SMALL, load_npz(digits.finetune, "finetune"), TrainConfig(epochs=2, lr=3e-3, seed=0))
    path = digits.root / "cnn.pt"
    torch.save(cnn.state_dict(), path)
    return path


class TwoInputs:
    """A factory model with two named, differently typed inputs (pixels: float, bucket: int64)."""

    @staticmethod
    def build():  # noqa: ANN205
        import torch
        from torch import nn

        class Model(nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.bucket = nn.Embedding(4, 8)
                self.body = nn.Linear(64 + 8, 10)

            def forward(self, pixels: torch.Tensor, bucket: torch.Tensor) -> torch.Tensor:
                return self.body(torch.cat([pixels, self.bucket(bucket)], dim=1))

        return Model()


def two_inputs():  # noqa: ANN201
    return TwoInputs.build()
