"""A small weekly CO2 forecaster: the model the oracle example publishes and serves.

The series is Mauna Loa CO2 (ppm, weekly, 1958-2001) bundled with statsmodels, so nothing is
downloaded. The network sees the last ``window`` weekly values in ppm and predicts next week's,
in ppm: normalisation is baked into the graph, so an oracle node feeds raw readings and gets a
raw answer, and nobody has to ship scaling constants beside the artifact. It predicts a
correction to the last value (a residual on the naive forecast), which trains in seconds and
must beat the naive forecast on held-out weeks to be worth publishing. Inputs are taken relative to
the last value, so the rising trend never leaves the range the network was trained on.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

DEFAULT_WINDOW = 52
DEFAULT_HIDDEN = 32
INPUT_NAME = "window"
OUTPUT_NAME = "forecast"


def load_series() -> np.ndarray:
    """Weekly CO2 in ppm as float32, with the dataset's 59 missing weeks linearly interpolated."""
    import statsmodels.api as sm

    frame = sm.datasets.co2.load_pandas().data
    series = frame["co2"].interpolate(method="linear").bfill().to_numpy(dtype=np.float32)
    if not np.all(np.isfinite(series)):
        raise ValueError("co2 series still has gaps after interpolation")
    return series


def make_windows(series: np.ndarray, window: int) -> tuple[np.ndarray, np.ndarray]:
    """(inputs [n, window], targets [n, 1]): each target is the value right after its window."""
    if window < 1 or len(series) <= window:
        raise ValueError(f"series of {len(series)} values is too short for window {window}")
    idx = np.arange(window)[None, :] + np.arange(len(series) - window)[:, None]
    return series[idx].astype(np.float32), series[window:, None].astype(np.float32)


def build_model(window: int = DEFAULT_WINDOW, hidden: int = DEFAULT_HIDDEN, drift: float = 0.0, std: float = 1.0):
    """The forecaster as a torch module (imported lazily: devices serving the ONNX need no torch)."""
    import torch
    from torch import nn

    class Forecaster(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.register_buffer("drift", torch.tensor(drift, dtype=torch.float32))
            self.register_buffer("std", torch.tensor(std, dtype=torch.float32))
            self.body = nn.Sequential(nn.Linear(window, hidden), nn.ReLU(), nn.Linear(hidden, 1))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            last = x[:, -1:]
            z = (x - last) / self.std
            return last + self.drift + self.body(z) * self.std

    return Forecaster()


@dataclass(frozen=True)
class TrainResult:
    model: object  # torch.nn.Module
    window: int
    mae: float
    naive_mae: float
    n_train: int
    n_test: int

    @property
    def metrics(self) -> dict[str, float]:
        return {
            "mae_ppm": round(self.mae, 4),
            "naive_mae_ppm": round(self.naive_mae, 4),
            "skill_vs_naive": round(1.0 - self.mae / self.naive_mae, 4),
            "n_train": self.n_train,
            "n_test": self.n_test,
        }


def train_forecaster(
    window: int = DEFAULT_WINDOW, hidden: int = DEFAULT_HIDDEN, epochs: int = 40, seed: int = 0, test_fraction: float = 0.2
) -> TrainResult:
    """Trains on the first weeks, scores MAE on the last ``test_fraction`` against the naive forecast."""
    import torch

    torch.manual_seed(seed)
    series = load_series()
    x, y = make_windows(series, window)
    split = int(len(x) * (1 - test_fraction))
    x_train, y_train, x_test, y_test = x[:split], y[:split], x[split:], y[split:]
    diffs = np.diff(series[: split + window])
    model = build_model(window, hidden, drift=float(diffs.mean()), std=float(diffs.std()))
    xt, yt = torch.from_numpy(x_train), torch.from_numpy(y_train)
    optimiser = torch.optim.Adam(model.parameters(), lr=3e-3)
    generator = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        order = torch.randperm(len(xt), generator=generator)
        for start in range(0, len(order), 128):
            batch = order[start : start + 128]
            optimiser.zero_grad()
            loss = torch.nn.functional.smooth_l1_loss(model(xt[batch]), yt[batch])
            loss.backward()
            optimiser.step()
    model.eval()
    with torch.no_grad():
        pred = model(torch.from_numpy(x_test)).numpy()
    mae = float(np.abs(pred - y_test).mean())
    naive = float(np.abs(x_test[:, -1:] - y_test).mean())
    return TrainResult(model=model, window=window, mae=mae, naive_mae=naive, n_train=split, n_test=len(x_test))


def export_onnx(model: object, path: str | Path, window: int = DEFAULT_WINDOW) -> Path:
    """Writes a self-contained ONNX file (dynamic batch) and checks it with the onnx checker."""
    import warnings

    import onnx
    import torch

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    example = torch.zeros(1, window, dtype=torch.float32)
    with warnings.catch_warnings():
        # the TorchScript exporter is deprecated, but it gives a plain self-contained graph for an MLP
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(
            model,
            (example,),
            str(path),
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}},
            opset_version=17,
            dynamo=False,
        )
    onnx.checker.check_model(onnx.load(str(path)), full_check=True)
    return path


def recent_window(window: int = DEFAULT_WINDOW, end: int | None = None) -> np.ndarray:
    """The ``window`` weeks ending at ``end`` (default: the newest): an oracle input for the demo."""
    series = load_series()
    end = len(series) if end is None else end
    if end < window or end > len(series):
        raise ValueError(f"end {end} out of range for window {window}")
    return series[end - window : end]
