"""Ready-to-compress example inputs: digits splits plus trained example base models."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from registry.errors import InputError

EXAMPLES = {"mlp": "registry.compress.zoo:digits_mlp", "cnn": "registry.compress.zoo:digits_cnn",
            "resnet": "registry.compress.zoo:digits_resnet"}


def prepare_digits(out: str | Path, seed: int = 0, epochs: int = 30, models: list[str] | None = None) -> dict[str, Any]:
    import torch

    from registry.compress.data import load_npz
    from registry.compress.digits import write_digits_splits
    from registry.compress.train import TrainConfig, train_base

    names = models if models is not None else list(EXAMPLES)
    unknown = [m for m in names if m not in EXAMPLES]
    if unknown:
        raise InputError(f"unknown example model(s) {unknown} (known: {', '.join(EXAMPLES)})")
    splits = write_digits_splits(out, seed)
    info: dict[str, Any] = {"finetune": str(splits.finetune), "calibration": str(splits.calibration),
                            "evaluation": str(splits.evaluation)}
    data = load_npz(splits.finetune, "finetune")
    for name in names:
        model = train_base(EXAMPLES[name], data, TrainConfig(epochs=epochs, lr=1e-3, seed=seed))
        path = Path(out) / f"{name}.pt"
        torch.save(model.state_dict(), path)
        info[name] = {"factory": EXAMPLES[name], "weights": str(path)}
    return info
