"""Datasets for compression: named arrays from ``.npz`` or text from JSON Lines, validated up front.

Fine-tuning, calibration and evaluation data are separate files so that provenance can name each
by digest; a reader of the provenance can then tell whether a model was calibrated on its own test
set. Validation happens before any work so a bad file fails in one line, not deep inside a loop.

Two formats:

* ``.npz``: every array except ``y`` is a model input, kept in its dtype (``input_ids`` stay
  int64); ``y`` holds labels or targets. One array named ``x`` (or any single array) feeds a
  single-input model whatever its input is called.
* ``.jsonl``: one JSON object per line, ``{"text": "...", "label": 3}`` (``label`` for
  classification, ``target`` a list of numbers for regression/embedding fine-tuning, both
  optional). The text is tokenized with the model's own tokenizer, padded to the longest line of
  the split and truncated at ``max_length``.
"""

from __future__ import annotations

import hashlib
import json
import zipfile
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from registry.errors import InputError

TASKS = ("classification", "sequence-classification", "regression", "embedding")
CLASSIFICATION = ("classification", "sequence-classification")
TARGET = "y"
MAX_JSONL_BYTES = 256 << 20
MAX_LINE_BYTES = 1 << 20
MAX_ROWS = 1_000_000


def is_classification(task: str) -> bool:
    return task in CLASSIFICATION


@dataclass(frozen=True)
class Dataset:
    """One split: named model inputs, targets (or None), where it came from, its SHA-256 (file bytes)."""

    inputs: dict[str, np.ndarray]
    y: np.ndarray | None
    path: str
    sha256: str
    texts: tuple[str, ...] | None = field(default=None, repr=False)

    def __len__(self) -> int:
        return int(next(iter(self.inputs.values())).shape[0])

    @property
    def x(self) -> np.ndarray:
        """The single input array of a one-input dataset."""
        if len(self.inputs) != 1:
            raise InputError(f"data {self.path} has several inputs ({', '.join(self.inputs)}); this step needs one")
        return next(iter(self.inputs.values()))

    def take(self, idx: np.ndarray | slice) -> "Dataset":
        texts = None if self.texts is None else tuple(np.asarray(self.texts, dtype=object)[idx])
        return replace(self, inputs={k: v[idx] for k, v in self.inputs.items()},
                       y=None if self.y is None else self.y[idx], texts=texts)

    def with_inputs(self, inputs: dict[str, np.ndarray]) -> "Dataset":
        return replace(self, inputs=inputs)


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def load_data(path: str | Path, role: str, tokenizer: Any = None, max_length: int = 128) -> Dataset:
    """Reads a split by its extension (``.npz`` or ``.jsonl``); InputError names the file and role."""
    p = Path(path)
    if not p.is_file():
        raise InputError(f"{role} data {p} does not exist")
    suffix = p.suffix.lower()
    if suffix == ".npz":
        return load_npz(p, role)
    if suffix in (".jsonl", ".ndjson"):
        if tokenizer is None:
            raise InputError(f"{role} data {p} is text (JSON Lines): give the model's tokenizer with --tokenizer DIR "
                             "(or load the model with --hf DIR)")
        return load_jsonl(p, role, tokenizer, max_length)
    raise InputError(f"{role} data {p}: unknown format {suffix or '(no extension)'!r} (use .npz or .jsonl)")


def load_npz(path: str | Path, role: str) -> Dataset:
    """Every array but ``y`` is an input, kept in its dtype; shapes and values are checked here."""
    p = Path(path)
    if not p.is_file():
        raise InputError(f"{role} data {p} does not exist")
    try:
        with np.load(p, allow_pickle=False) as npz:
            arrays = {name: np.asarray(npz[name]) for name in npz.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise InputError(f"{role} data {p} is not a readable .npz file: {str(exc)[:200]}") from exc
    y = arrays.pop(TARGET, None)
    if not arrays:
        raise InputError(f"{role} data {p} has no input arrays (only {TARGET!r}); name them after the model's inputs "
                         "or use 'x' for a single input")
    rows = None
    for name, arr in arrays.items():
        if arr.ndim < 1 or arr.shape[0] == 0:
            raise InputError(f"{role} data {p}: input {name!r} must be (samples, ...), got shape {arr.shape}")
        if not (np.issubdtype(arr.dtype, np.number) or arr.dtype == np.bool_):
            raise InputError(f"{role} data {p}: input {name!r} must be numeric, got {arr.dtype}")
        if np.issubdtype(arr.dtype, np.complexfloating):
            raise InputError(f"{role} data {p}: input {name!r} is complex ({arr.dtype}); models take real numbers")
        if np.issubdtype(arr.dtype, np.floating) and not np.all(np.isfinite(arr)):
            raise InputError(f"{role} data {p}: input {name!r} contains NaN or infinity")
        if rows is None:
            rows = arr.shape[0]
        elif arr.shape[0] != rows:
            raise InputError(f"{role} data {p}: inputs have different sample counts ({', '.join(arrays)})")
    if y is not None and (y.ndim == 0 or y.shape[0] != rows):
        raise InputError(f"{role} data {p}: inputs have {rows} samples but {TARGET!r} has "
                         f"{y.shape[0] if y.ndim else 'no'} rows")
    return Dataset(inputs=arrays, y=y, path=str(p), sha256=file_sha256(p))


def load_jsonl(path: Path, role: str, tokenizer: Any, max_length: int) -> Dataset:
    """JSON Lines text, tokenized with ``tokenizer`` (a Hugging Face tokenizer)."""
    size = path.stat().st_size
    if size > MAX_JSONL_BYTES:
        raise InputError(f"{role} data {path} is {size} bytes; the limit for JSON Lines is {MAX_JSONL_BYTES}")
    texts: list[str] = []
    labels: list[Any] = []
    with open(path, "rb") as fh:
        for number, raw in enumerate(fh, 1):
            if len(raw) > MAX_LINE_BYTES:
                raise InputError(f"{role} data {path}:{number}: line longer than {MAX_LINE_BYTES} bytes")
            if not raw.strip():
                continue
            if len(texts) >= MAX_ROWS:
                raise InputError(f"{role} data {path}: more than {MAX_ROWS} lines")
            try:
                row = json.loads(raw.decode("utf-8"))
            except (UnicodeDecodeError, ValueError) as exc:
                raise InputError(f"{role} data {path}:{number}: not a JSON object ({str(exc)[:120]})") from None
            if not isinstance(row, dict):
                raise InputError(f"{role} data {path}:{number}: each line must be a JSON object with a \"text\" field")
            text = row.get("text")
            if not isinstance(text, str) or not text.strip():
                raise InputError(f"{role} data {path}:{number}: \"text\" must be a non-empty string")
            unknown = sorted(set(row) - {"text", "label", "target"})
            if unknown:
                raise InputError(f"{role} data {path}:{number}: unknown field(s) {', '.join(unknown)} "
                                 "(known: text, label, target)")
            texts.append(text)
            labels.append(row.get("label", row.get("target")))
    if not texts:
        raise InputError(f"{role} data {path} has no lines")
    y = _jsonl_targets(labels, path, role)
    try:
        encoded = tokenizer(texts, padding="longest", truncation=True, max_length=max_length, return_tensors="np")
    except Exception as exc:  # tokenizers raise their own types on odd configurations
        raise InputError(f"{role} data {path}: the tokenizer failed: {str(exc).splitlines()[0][:200]}") from exc
    inputs = {name: np.ascontiguousarray(np.asarray(arr).astype(np.int64)) for name, arr in encoded.items()}
    return Dataset(inputs=inputs, y=y, path=str(path), sha256=file_sha256(path), texts=tuple(texts))


def _jsonl_targets(values: list[Any], path: Path, role: str) -> np.ndarray | None:
    present = [v is not None for v in values]
    if not any(present):
        return None
    if not all(present):
        first = present.index(False) + 1
        raise InputError(f"{role} data {path}: some lines have a label/target and some do not (line {first})")
    if all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        return np.asarray(values, dtype=np.int64)
    try:
        arr = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        raise InputError(f"{role} data {path}: labels must be integers and targets lists of numbers of one "
                         "length") from None
    if not np.all(np.isfinite(arr)):
        raise InputError(f"{role} data {path}: targets contain NaN or infinity")
    return arr.astype(np.float32)


def check_targets(data: Dataset, task: str, outputs: int, role: str) -> None:
    """Labels must index the model's outputs; regression targets must match its output width."""
    if data.y is None:
        if is_classification(task) or task == "regression":  # embedding: quality is cosine to the base model
            raise InputError(f"{role} data {data.path} has no labels/targets ('{TARGET}' array or \"label\" field); "
                             f"task {task} needs them")
        return
    if is_classification(task):
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
        if not np.issubdtype(data.y.dtype, np.number):
            raise InputError(f"{role} data {data.path}: targets must be numeric, got {data.y.dtype}")
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
    return data.take(idx)


def write_npz(path: Path, x: np.ndarray | None = None, y: np.ndarray | None = None, **inputs: np.ndarray) -> None:
    """Uncompressed and without timestamps in the payload, so the same arrays give the same digest."""
    arrays = dict(inputs)
    if x is not None:
        arrays["x"] = x
    if y is not None:
        arrays[TARGET] = y
    with open(path, "wb") as fh:
        np.savez(fh, **arrays)


def write_jsonl(path: Path, texts: list[str], labels: list[int] | None = None) -> None:
    """One ``{"text": ...}`` object per line (UTF-8, sorted keys), so the same texts give the same digest."""
    lines = []
    for i, text in enumerate(texts):
        row: dict[str, Any] = {"text": text}
        if labels is not None:
            row["label"] = int(labels[i])
        lines.append(json.dumps(row, ensure_ascii=False, sort_keys=True))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
