"""``registry compress``, ``registry reproduce`` and ``registry digits-example``.

Thin: builds a recipe from a TOML file and/or flags, runs the library, renders the result. The
library (torch, onnxruntime) is imported inside the commands so ``--help`` stays fast.
"""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path
from typing import Any, Iterator, Optional

import typer

from registry.cli._render import console, print_json, wants_progress


def _progress_factory(enabled: bool):  # noqa: ANN202
    """Epochs and calibration samples are counts, not bytes: a bar with 'done/total' and elapsed time."""

    @contextlib.contextmanager
    def factory(label: str, total: int | None) -> Iterator[Any]:
        if not enabled:
            yield lambda _n: None
            return
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                      console=console(), transient=True) as bar:
            task = bar.add_task(label, total=total)
            yield lambda n: bar.advance(task, n)

    return factory


def _recipe(recipe: Optional[Path], model: Optional[str], weights: Optional[Path], onnx: Optional[Path],
            finetune: Optional[Path], calib: Optional[Path], evaluation: Optional[Path], seed: Optional[int],
            task: Optional[str], steps: list[dict[str, Any]], max_drop: Optional[float], relative: bool,
            latency_runs: Optional[int], threads: Optional[int]) -> Any:
    from registry.compress.recipe import load_recipe, parse_recipe
    from registry.errors import InputError

    if recipe is not None and steps:
        raise InputError("give either --recipe or step flags (--prune/--structured/--distill/--quantize), not both")
    base = load_recipe(recipe).to_dict() if recipe is not None else {"steps": steps}
    if model:
        base.setdefault("model", {})["factory"] = model
    for key, value in (("weights", weights), ("onnx", onnx)):
        if value is not None:
            base.setdefault("model", {})[key] = str(value.resolve())
    for key, value in (("finetune", finetune), ("calibration", calib), ("evaluation", evaluation)):
        if value is not None:
            base.setdefault("data", {})[key] = str(value.resolve())
    if seed is not None:
        base["seed"] = seed
    if task is not None:
        base["task"] = task
    if max_drop is not None:
        base.setdefault("target", {})["max_drop"] = max_drop
    if relative:
        base.setdefault("target", {})["relative"] = True
    for key, value in (("latency_runs", latency_runs), ("threads", threads)):
        if value is not None:
            base.setdefault("evaluation", {})[key] = value
    return parse_recipe(base)


def register(app: typer.Typer) -> None:
    @app.command("compress")
    def compress_cmd(
        out: Path = typer.Option(..., "--out", "-o", help="Output directory (model.onnx, provenance.json, report.md)."),
        recipe: Optional[Path] = typer.Option(None, "--recipe", "-r", help="TOML recipe listing the steps."),
        model: Optional[str] = typer.Option(None, "--model", "-m", help="PyTorch factory 'package.module:factory'."),
        weights: Optional[Path] = typer.Option(None, "--weights", "-w", help="State-dict file for --model."),
        onnx: Optional[Path] = typer.Option(None, "--onnx", help="ONNX input instead of PyTorch (quantize only)."),
        finetune: Optional[Path] = typer.Option(None, "--finetune-data", help=".npz (x, y) for fine-tuning."),
        calib: Optional[Path] = typer.Option(None, "--calib-data", help=".npz (x, y) for calibration."),
        evaluation: Optional[Path] = typer.Option(None, "--eval-data", help=".npz (x, y) for evaluation."),
        seed: Optional[int] = typer.Option(None, "--seed", help="Seed for training, splits and initialisation."),
        task: Optional[str] = typer.Option(None, "--task", help="classification | regression | embedding."),
        prune: Optional[float] = typer.Option(None, "--prune", help="Global magnitude pruning to this sparsity."),
        structured: Optional[float] = typer.Option(None, "--structured", help="Remove this fraction of units."),
        distill: Optional[str] = typer.Option(None, "--distill", help="Distil into this student factory."),
        quantize: Optional[str] = typer.Option(None, "--quantize", help="dynamic | static | fp16 | mixed."),
        calibration: str = typer.Option("minmax", "--calibration", help="minmax | entropy | percentile."),
        epochs: int = typer.Option(5, "--epochs", help="Fine-tuning epochs per step (flag mode)."),
        iterations: int = typer.Option(1, "--iterations", help="Prune -> fine-tune rounds (flag mode)."),
        max_drop: Optional[float] = typer.Option(None, "--max-drop", help="Accuracy drop allowed (points)."),
        relative: bool = typer.Option(False, "--relative", help="--max-drop is relative (percent of baseline)."),
        latency_runs: Optional[int] = typer.Option(None, "--latency-runs", help="Timed runs per batch size (0: skip)."),
        threads: Optional[int] = typer.Option(None, "--threads", help="onnxruntime intra-op threads."),
        base_ref: Optional[str] = typer.Option(None, "--base-ref", help="Registry reference of the base model."),
        force: bool = typer.Option(False, "--force", help="Replace a non-empty output directory."),
        layout: str = typer.Option("file", "--layout", help="file: out/model.onnx. tensors: out/model/ (model.onnx "
                                   "plus a file per large tensor, small ones grouped per layer; a later version "
                                   "shares every unchanged tensor's blocks), provenance about that tree."),
        json_output: bool = typer.Option(False, "--json", help="Print a JSON summary."),
    ) -> None:
        """Prune, distil, quantize and export a model; write model.onnx with provenance and a report."""
        if layout not in ("file", "tensors"):
            from registry.errors import InputError

            raise InputError(f"unknown --layout {layout!r} (file or tensors)")
        from registry.compress.pipeline import run
        from registry.errors import CompressionError

        steps: list[dict[str, Any]] = []
        if distill:
            steps.append({"type": "distill", "student": distill, "epochs": max(epochs, 1) * 6})
        if prune is not None:
            steps.append({"type": "prune", "amount": prune, "epochs": epochs, "iterations": iterations})
        if structured is not None:
            steps.append({"type": "structured_prune", "ratio": structured, "epochs": epochs,
                          "iterations": iterations})
        if quantize:
            q: dict[str, Any] = {"type": "quantize", "mode": quantize, "calibration": calibration}
            if quantize == "mixed" and max_drop is not None:
                q["max_drop"] = max_drop
            steps.append(q)
        rec = _recipe(recipe, model, weights, onnx, finetune, calib, evaluation, seed, task, steps, max_drop,
                      relative, latency_runs, threads)
        result = run(rec, out, progress=_progress_factory(wants_progress(json_output)), force=force,
                     base_ref=base_ref)
        laid = None
        if layout == "tensors":
            from registry.layout_publish import layout_compress_output

            laid = layout_compress_output(out)
        if json_output:
            print_json(dict(result.summary(), **({"layout": dict(laid[0].to_json(), sha256=laid[1])} if laid else {})))
        else:
            _render(result)
            if laid is not None:
                console().print(f"layout     {laid[0].path}/  ({len(laid[0].files)} files, tree sha256 {laid[1]}; "
                                "provenance.json now names this tree)")
        if not result.target_met:
            t = result.target
            message = (f"accuracy target missed: final drop {t.get('final_drop', t['drop']):.2f} > "
                       f"{t['max_drop']:g}; kept the best variant ({result.chosen}, drop {t['drop']:.2f}) in {out}")
            if json_output:  # the summary (target.met = false) is the one JSON document on stdout
                print(f"error: {message}", file=sys.stderr)
                raise typer.Exit(CompressionError.exit_code)
            raise CompressionError(message)

    @app.command("reproduce")
    def reproduce_cmd(
        provenance: Path = typer.Argument(..., help="provenance.json written by `registry compress`."),
        weights: Optional[Path] = typer.Option(None, "--weights", help="Base state dict, if moved."),
        onnx: Optional[Path] = typer.Option(None, "--onnx", help="Base ONNX model, if moved."),
        data_dir: Optional[Path] = typer.Option(None, "--data-dir", help="Directory holding the recorded .npz files."),
        out: Optional[Path] = typer.Option(None, "--out", help="Keep the re-run's outputs here."),
        json_output: bool = typer.Option(False, "--json", help="Print a JSON result."),
    ) -> None:
        """Re-run a recorded recipe and check the result has the recorded SHA-256."""
        from registry.compress.reproduce import reproduce
        from registry.errors import IntegrityError

        res = reproduce(provenance, weights=str(weights) if weights else None, onnx=str(onnx) if onnx else None,
                        data_dir=str(data_dir) if data_dir else None, out_dir=out,
                        progress=_progress_factory(wants_progress(json_output)))
        if json_output:
            print_json(res.to_dict())
        else:
            console().print(f"expected sha256 {res.expected_sha256}\nactual   sha256 {res.actual_sha256}")
            console().print("[green]reproduced: digests match[/]" if res.match else "[red]digests differ[/]")
        if not res.match:
            raise IntegrityError(f"re-run produced sha256 {res.actual_sha256}, provenance records "
                                 f"{res.expected_sha256}")

    @app.command("digits-example")
    def digits_example_cmd(
        out: Path = typer.Argument(..., help="Directory for the .npz splits and example state dicts."),
        seed: int = typer.Option(0, "--seed"),
        epochs: int = typer.Option(30, "--epochs", help="Training epochs for the example base models."),
        models: str = typer.Option("mlp,cnn", "--models", help="Which example models to train (mlp, cnn)."),
        json_output: bool = typer.Option(False, "--json"),
    ) -> None:
        """Writes scikit-learn digits splits (finetune/calibration/evaluation .npz) and trained example models."""
        from registry.compress.examples import prepare_digits

        info = prepare_digits(out, seed=seed, epochs=epochs, models=[m for m in models.split(",") if m])
        if json_output:
            print_json(info)
        else:
            for key, value in info.items():
                console().print(f"{key:12} {value}")


def _render(result: Any) -> None:
    c = console()
    c.print(f"model      {result.out_dir / 'model.onnx'}  ({result.size} bytes, variant {result.chosen})")
    c.print(f"sha256     {result.sha256}")
    c.print(f"provenance {result.out_dir / 'provenance.json'}  sha256 {result.provenance_sha256}")
    base = result.baseline
    for row in result.variants:
        acc = row.get("accuracy", row.get("cosine"))
        c.print(f"  {row['name']:18} {row['size_bytes']:>9} B  {1 / row['size_ratio']:6.2f}x smaller  "
                f"acc {acc:.4f}  drop {row['drop']:+.2f}")
    if "accuracy" in base:
        c.print(f"baseline accuracy {base['accuracy']:.4f}; final {result.metrics.get('accuracy', 0):.4f}")
