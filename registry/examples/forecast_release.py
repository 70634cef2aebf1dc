"""The forecaster through the real pipeline: train, compress (prune + int8), publish with provenance.

This is what the oracle demo and the latency benchmark publish. The compression recipe runs the
compress helper's pipeline unchanged (the model is built from ``registry.examples.forecast:
build_model`` and its state dict), so the artifact on chain carries a full provenance record: base
weights digest, recipe, per-step metrics, data digests, tool versions and seeds. The compressed
model is scored here on held-out weeks in ppm as well, and is not published if it no longer beats
the naive forecast: a smaller model that is worse than "same as last week" helps nobody.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from registry.errors import CompressionError
from registry.examples import forecast

if TYPE_CHECKING:
    from registry.publish import PublishResult

FACTORY = "registry.examples.forecast:build_model"


@dataclass(frozen=True)
class CompressedForecaster:
    onnx_path: Path
    provenance_path: Path
    sha256: str
    size: int
    base_size: int
    mae_ppm: float
    naive_mae_ppm: float
    torch_mae_ppm: float
    window: int

    def to_json(self) -> dict[str, Any]:
        return {k: str(v) if isinstance(v, Path) else v for k, v in self.__dict__.items()}


def _save_npz(path: Path, x: np.ndarray, y: np.ndarray) -> str:
    with path.open("wb") as handle:
        np.savez(handle, x=x.astype(np.float32), y=y.astype(np.float32))
    return str(path)


def build_release(out_dir: str | Path, epochs: int = 40, seed: int = 0, sparsity: float = 0.5,
                  quantize: bool = True) -> CompressedForecaster:
    """Trains the forecaster and compresses it with the pipeline into ``out_dir/compressed``."""
    import torch

    from registry.compress.pipeline import run
    from registry.compress.recipe import parse_recipe

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    trained = forecast.train_forecaster(epochs=epochs, seed=seed)
    model = trained.model
    weights = out / "forecaster.pt"
    torch.save(model.state_dict(), weights)
    kwargs = {"window": trained.window, "hidden": forecast.DEFAULT_HIDDEN,
              "drift": float(model.drift), "std": float(model.std)}
    base_onnx = forecast.export_onnx(model, out / "forecaster-base.onnx", trained.window)

    series = forecast.load_series()
    x, y = forecast.make_windows(series, trained.window)
    split = trained.n_train
    data = {
        "finetune": _save_npz(out / "finetune.npz", x[:split], y[:split]),
        "calibration": _save_npz(out / "calibration.npz", x[split - 512 : split], y[split - 512 : split]),
        "evaluation": _save_npz(out / "evaluation.npz", x[split:], y[split:]),
    }
    steps: list[dict[str, Any]] = [
        {"type": "prune", "method": "sparsity", "amount": sparsity, "epochs": 3, "lr": 1e-3, "batch_size": 128},
        {"type": "export", "opset": 17, "atol": 1e-3},
    ]
    if quantize:
        steps.append({"type": "quantize", "mode": "dynamic"})
    recipe = parse_recipe({
        "seed": seed,
        "task": "regression",
        "model": {"factory": FACTORY, "kwargs": kwargs, "weights": str(weights)},
        "data": data,
        "target": {"max_drop": 1.0},
        "evaluation": {"threads": 1, "latency_runs": 20, "warmup": 5},
        "steps": steps,
    })
    result = run(recipe, out / "compressed", force=True, reports=False)
    onnx_path = result.out_dir / "model.onnx"

    import onnxruntime as ort

    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    pred = session.run(None, {name: x[split:]})[0].reshape(-1, 1)
    mae = float(np.abs(pred - y[split:]).mean())
    if mae >= trained.naive_mae:
        raise CompressionError(
            f"compressed forecaster MAE {mae:.3f} ppm does not beat the naive forecast ({trained.naive_mae:.3f} ppm)")
    summary = CompressedForecaster(
        onnx_path=onnx_path,
        provenance_path=result.out_dir / "provenance.json",
        sha256=result.sha256,
        size=result.size,
        base_size=base_onnx.stat().st_size,
        mae_ppm=round(mae, 4),
        naive_mae_ppm=round(trained.naive_mae, 4),
        torch_mae_ppm=round(trained.mae, 4),
        window=trained.window,
    )
    (out / "forecaster.json").write_text(json.dumps(summary.to_json(), indent=2) + "\n")
    return summary


def publish_release(built: CompressedForecaster, name: str, version: str, **publish_kwargs: Any) -> "PublishResult":
    """Publishes the compressed forecaster with its pipeline provenance."""
    from registry.publish import publish_model

    return publish_model(built.onnx_path, name, version, provenance_path=built.provenance_path, **publish_kwargs)
