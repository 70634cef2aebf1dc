"""Datasets for compression: ``.npz`` files with ``x`` and ``y``, validated before any training.

Fine-tuning, calibration and evaluation data are separate files so that provenance can name each
by digest; a reader of the provenance can then tell whether a model was calibrated on its own test
set. Validation happens up front so a bad file fails in one line, not deep inside a training loop.
"""

from __future__ import annotations

import hashlib
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from registry.errors import InputError

TASKS = ("classification", "regression", "embedding")


@dataclass(frozen=True)
class Dataset:
    """One split: inputs, targets, where it came from and its SHA-256 (hex, of the file bytes)."""

    x: np.ndarray
    y: np.ndarray
    path: str
    sha256: str

    def __len__(self) -> int:
        return int(self.x.shape[0])


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def load_npz(path: str | Path, role: str) -> Dataset:
    """Reads ``x`` (float32) and ``y``; raises InputError naming the file and the role on any defect."""
    p = Path(path)
    if not p.is_file():
        raise InputError(f"{role} data {p} does not exist")
    try:
        with np.load(p, allow_pickle=False) as npz:
            missing = {"x", "y"} - set(npz.files)
            if missing:
                raise InputError(f"{role} data {p} lacks array(s) {sorted(missing)} (need 'x' and 'y')")
            x = np.asarray(npz["x"])
            y = np.asarray(npz["y"])
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        raise InputError(f"{role} data {p} is not a readable .npz file: {exc}") from exc
    if x.ndim < 2 or x.shape[0] == 0:
        raise InputError(f"{role} data {p}: x must be (samples, features...), got shape {x.shape}")
    if y.shape[0] != x.shape[0]:
        raise InputError(f"{role} data {p}: x has {x.shape[0]} samples but y has {y.shape[0]}")
    if not np.issubdtype(x.dtype, np.number):
        raise InputError(f"{role} data {p}: x must be numeric, got {x.dtype}")
    x = x.astype(np.float32)
    if not np.all(np.isfinite(x)):
        raise InputError(f"{role} data {p}: x contains NaN or infinity")
    return Dataset(x=x, y=y, path=str(p), sha256=file_sha256(p))


def check_targets(data: Dataset, task: str, outputs: int, role: str) -> None:
    """Labels must index the model's outputs; regression targets must match its output width."""
    if task == "classification":
        if data.y.ndim != 1 or not np.issubdtype(data.y.dtype, np.integer):
            raise InputError(f"{role} data {data.path}: classification labels must be a 1-D integer array, "
                             f"got {data.y.dtype} {data.y.shape}")
        lo, hi = int(data.y.min()), int(data.y.max())
        if lo < 0 or hi >= outputs:
            raise InputError(f"{role} data {data.path}: labels out of range [{lo}, {hi}] for a model with "
                             f"{outputs} classes")
    elif task == "embedding" and role != "finetune":
        return  # quality is cosine similarity to the base model's outputs; y is not read
    else:  # regression, or embedding targets used for fine-tuning
        y = data.y.reshape(data.y.shape[0], -1)
        if y.shape[1] != outputs:
            raise InputError(f"{role} data {data.path}: targets have width {y.shape[1]}, model outputs {outputs}")
        if not np.all(np.isfinite(y.astype(np.float64))):
            raise InputError(f"{role} data {data.path}: targets contain NaN or infinity")


def split_indices(n: int, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A seeded (train, validation) split, so early stopping sees the same rows on every run."""
    order = np.random.default_rng(seed).permutation(n)
    n_val = max(1, int(round(n * fraction)))
    return np.sort(order[n_val:]), np.sort(order[:n_val])


def subset(data: Dataset, idx: np.ndarray) -> Dataset:
    return Dataset(x=data.x[idx], y=data.y[idx], path=data.path, sha256=data.sha256)


def write_npz(path: Path, x: np.ndarray, y: np.ndarray) -> None:
    """Uncompressed and without timestamps in the payload, so the same arrays give the same digest."""
    with open(path, "wb") as fh:
        np.savez(fh, x=x, y=y)
