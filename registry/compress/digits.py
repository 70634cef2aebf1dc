"""The example data: scikit-learn's bundled 8x8 digits, split by a fixed seed.

Bundled with scikit-learn, so nothing is downloaded. Three disjoint splits: fine-tuning (training),
calibration (quantization ranges) and evaluation (every reported metric). Pixels are scaled to
[0, 1] and kept flat (64 features); the CNN reshapes them itself, so one file set serves both models.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from registry.compress.data import write_npz


@dataclass(frozen=True)
class DigitsSplits:
    finetune: Path
    calibration: Path
    evaluation: Path


def write_digits_splits(out_dir: str | Path, seed: int = 0, calibration: int = 200,
                        evaluation: int = 450) -> DigitsSplits:
    from sklearn.datasets import load_digits

    digits = load_digits()
    x = (digits.data / 16.0).astype(np.float32)
    y = digits.target.astype(np.int64)
    order = np.random.default_rng(seed).permutation(len(y))
    ev, cal, ft = order[:evaluation], order[evaluation:evaluation + calibration], order[evaluation + calibration:]
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = DigitsSplits(out / "finetune.npz", out / "calibration.npz", out / "evaluation.npz")
    for path, idx in ((paths.finetune, ft), (paths.calibration, cal), (paths.evaluation, ev)):
        idx = np.sort(idx)
        write_npz(path, x[idx], y[idx])
    return paths
