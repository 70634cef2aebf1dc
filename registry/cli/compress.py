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


def _recipe(recipe: Optional[Path], flags: dict[str, Any], steps: list[dict[str, Any]]) -> Any:
    from registry.compress.recipe import load_recipe, parse_recipe
    from registry.errors import InputError

    if recipe is not None and steps:
        raise InputError("give either --recipe or step flags (--prune/--structured/--distill/--quantize), not both")
    base = load_recipe(recipe).to_dict() if recipe is not None else {"steps": steps}
    model = base.setdefault("model", {})
    if flags["model"]:
        model["factory"] = flags["model"]
    for key in ("weights", "onnx", "hf", "tokenizer"):
        if flags[key] is not None:
            model[key] = str(flags[key].resolve())
    if flags["pooling"]:
        model["pooling"] = flags["pooling"]
    if flags["output"]:
        model["output"] = flags["output"]
    for key in ("finetune", "calibration", "evaluation"):
        if flags[key] is not None:
            base.setdefault("data", {})[key] = str(flags[key].resolve())
    if flags["max_length"] is not None:
        base.setdefault("data", {})["max_length"] = flags["max_length"]
    for key in ("seed", "task"):
        if flags[key] is not None:
            base[key] = flags[key]
    for key in ("max_drop", "min_cosine", "min_cosine_min"):
        if flags[key] is not None:
            base.setdefault("target", {})[key] = flags[key]
    if flags["relative"]:
        base.setdefault("target", {})["relative"] = True
    for key in ("latency_runs", "threads", "sequence_length"):
        if flags[key] is not None:
            base.setdefault("evaluation", {})[key] = flags[key]
    if flags["batch_sizes"]:
        try:
            base.setdefault("evaluation", {})["batch_sizes"] = [int(b) for b in flags["batch_sizes"].split(",") if b]
        except ValueError:
            raise InputError(f"--batch-sizes {flags['batch_sizes']!r} must be comma-separated integers") from None
    if flags["attack"]:
        base.setdefault("robustness", {})["attack"] = flags["attack"]
    if flags["epsilon"] is not None:
        base.setdefault("robustness", {})["epsilon"] = flags["epsilon"]
    return parse_recipe(base)


def _steps(f: dict[str, Any]) -> list[dict[str, Any]]:
    train = {"epochs": f["epochs"]}
    if f["noise"] != "none":
        train.update(noise=f["noise"], noise_std=f["noise_std"])
    steps: list[dict[str, Any]] = []
    if f["distill"] or f["distill_layers"]:
        d: dict[str, Any] = {"type": "distill", "epochs": max(f["epochs"], 1) * 6}
        if f["distill"]:
            d["student"] = f["distill"]
        if f["distill_layers"]:
            d["layers"] = f["distill_layers"]
        steps.append(d)
    if f["prune"] is not None:
        steps.append({"type": "prune", "amount": f["prune"], "iterations": f["iterations"], **train})
    if f["structured"] is not None:
        steps.append({"type": "structured_prune", "ratio": f["structured"], "iterations": f["iterations"], **train})
    if f["finetune_epochs"]:
        steps.append({"type": "finetune", **train, "epochs": f["finetune_epochs"]})
    mode = f["quantize"]
    if mode:
        q: dict[str, Any] = {"type": "quantize", "mode": mode}
        if mode in ("static", "mixed"):
            q["calibration"] = f["calibration"]
        if mode in ("int4", "mixed"):
            q.update(block_size=f["block_size"], symmetric=f["symmetric"], method=f["int4_method"])
        if mode == "fp16":
            q["keep_io_types"] = f["keep_io_types"]
        if mode == "mixed":
            q["base"] = f["mixed_base"]
            q["fallback"] = f["fallback"]
            for key in ("max_drop", "min_cosine", "min_cosine_min"):
                if f[key] is not None:
                    q[key] = f[key]
        steps.append(q)
    return steps


def register(app: typer.Typer) -> None:
    @app.command("compress")
    def compress_cmd(
        out: Path = typer.Option(..., "--out", "-o", help="Output directory (model.onnx, provenance.json, report.md)."),
        recipe: Optional[Path] = typer.Option(None, "--recipe", "-r", help="TOML recipe listing the steps."),
        model: Optional[str] = typer.Option(None, "--model", "-m", help="PyTorch factory 'package.module:factory'."),
        weights: Optional[Path] = typer.Option(None, "--weights", "-w", help="State-dict file for --model."),
        onnx: Optional[Path] = typer.Option(None, "--onnx", help="Any ONNX model file (quantize steps only)."),
        hf: Optional[Path] = typer.Option(None, "--hf", help="Local Hugging Face model directory (config, weights, "
                                          "tokenizer); tasks embedding and sequence-classification."),
        tokenizer: Optional[Path] = typer.Option(None, "--tokenizer", help="Tokenizer directory for .jsonl text "
                                                 "(default with --hf: the model's own)."),
        pooling: Optional[str] = typer.Option(None, "--pooling", help="Embedding pooling: mean | cls."),
        output: Optional[str] = typer.Option(None, "--output-name", help="Which ONNX output is the answer "
                                             "(default: the first)."),
        finetune: Optional[Path] = typer.Option(None, "--finetune-data", help=".npz or .jsonl for fine-tuning."),
        calib: Optional[Path] = typer.Option(None, "--calib-data", help=".npz or .jsonl for calibration and the "
                                             "mixed-precision search (keep it apart from the evaluation data)."),
        evaluation: Optional[Path] = typer.Option(None, "--eval-data", help=".npz or .jsonl for evaluation."),
        max_length: Optional[int] = typer.Option(None, "--max-length", help="Truncate tokenized text to this "
                                                 "many tokens (default 128)."),
        seed: Optional[int] = typer.Option(None, "--seed", help="Seed for training, splits and initialisation."),
        task: Optional[str] = typer.Option(None, "--task", help="classification | sequence-classification | "
                                           "regression | embedding."),
        prune: Optional[float] = typer.Option(None, "--prune", help="Global magnitude pruning to this sparsity "
                                              "(zeros only: the file does not shrink)."),
        structured: Optional[float] = typer.Option(None, "--structured", help="Remove this fraction of channels "
                                                   "(attention heads and FFN width on a transformer)."),
        distill: Optional[str] = typer.Option(None, "--distill", help="Distil into this student factory."),
        distill_layers: Optional[int] = typer.Option(None, "--distill-layers", help="Distil a Transformers model "
                                                     "into a copy keeping this many layers."),
        finetune_epochs: int = typer.Option(0, "--finetune-epochs", help="Add a recovery fine-tuning step."),
        noise: str = typer.Option("none", "--noise", help="Noise-augmented training: none | input | weight."),
        noise_std: float = typer.Option(0.05, "--noise-std", help="Standard deviation of that noise."),
        quantize: Optional[str] = typer.Option(None, "--quantize", help="dynamic | static | fp16 | int4 | mixed."),
        calibration: str = typer.Option("minmax", "--calibration", help="minmax | entropy | percentile."),
        mixed_base: str = typer.Option("dynamic", "--mixed-base", help="Mixed precision from: dynamic | static | int4."),
        fallback: str = typer.Option("int8-block", "--fallback", help="Where sensitive nodes go: fp32 | int8-block."),
        block_size: int = typer.Option(32, "--block-size", help="INT4 block size (16-256)."),
        symmetric: bool = typer.Option(False, "--symmetric/--asymmetric", help="INT4 symmetric or with zero points."),
        int4_method: str = typer.Option("rtn", "--int4-method", help="rtn | hqq | gptq (data-aware)."),
        keep_io_types: bool = typer.Option(True, "--keep-io-types/--fp16-io", help="FP16: keep FP32 inputs/outputs."),
        epochs: int = typer.Option(5, "--epochs", help="Fine-tuning epochs per step (flag mode)."),
        iterations: int = typer.Option(1, "--iterations", help="Prune -> fine-tune rounds (flag mode)."),
        max_drop: Optional[float] = typer.Option(None, "--max-drop", help="Classification: accuracy drop allowed "
                                                 "(percentage points)."),
        relative: bool = typer.Option(False, "--relative", help="--max-drop is relative (percent of baseline)."),
        min_cosine: Optional[float] = typer.Option(None, "--min-cosine", help="Embedding: mean cosine to FP32 "
                                                   "must reach this."),
        min_cosine_min: Optional[float] = typer.Option(None, "--min-cosine-min", help="Embedding: every sample's "
                                                       "cosine to FP32 must reach this."),
        attack: Optional[str] = typer.Option(None, "--attack", help="Measure robustness: fgsm | pgd."),
        epsilon: Optional[float] = typer.Option(None, "--epsilon", help="Attack bound (L-infinity)."),
        latency_runs: Optional[int] = typer.Option(None, "--latency-runs", help="Timed runs per variant and batch "
                                                   "size (0: skip)."),
        batch_sizes: Optional[str] = typer.Option(None, "--batch-sizes", help="Latency batch sizes, e.g. 1,32."),
        sequence_length: Optional[int] = typer.Option(None, "--sequence-length", help="Latency sequence length."),
        threads: Optional[int] = typer.Option(None, "--threads", help="onnxruntime intra-op threads."),
        base_ref: Optional[str] = typer.Option(None, "--base-ref", help="Registry reference of the base model."),
        force: bool = typer.Option(False, "--force", help="Replace a non-empty output directory."),
        layout: str = typer.Option("file", "--layout", help="file: out/model.onnx. tensors: out/model/ (model.onnx "
                                   "plus a file per large tensor, small ones grouped per layer; a later version "
                                   "shares every unchanged tensor's blocks), provenance about that tree."),
        json_output: bool = typer.Option(False, "--json", help="Print a JSON summary."),
    ) -> None:
        """Prune, distil, quantize and export a model; write model.onnx with provenance and a report.

        Exit codes: 0 done (target met, or none set); 3 bad input (files, names, dtypes, recipe);
        7 target missed (the best variant is still written) or a compression tool failed.
        """
        from registry.compress.pipeline import run
        from registry.errors import CompressionError, InputError

        if layout not in ("file", "tensors"):
            raise InputError(f"unknown --layout {layout!r} (file or tensors)")
        flags = dict(locals())
        rec = _recipe(recipe, {**flags, "calibration": calib}, _steps(flags))
        with _one_line():
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
            missed = "; ".join(f"{c['name']} {_value(c['value'])} (bound {c['limit']:g})"
                               for c in t.get("final_checks", t["checks"]) if not c["met"])
            message = (f"target missed: {missed}; kept the best variant ({result.chosen}) in {out}")
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


@contextlib.contextmanager
def _one_line() -> Iterator[None]:
    """A failure the library did not foresee still ends in one line (REGISTRY_DEBUG=1 shows the traceback)."""
    import os

    from registry.errors import CompressionError, RegistryError

    try:
        yield
    except (RegistryError, KeyboardInterrupt, SystemExit):
        raise
    except MemoryError as exc:
        raise CompressionError("out of memory while compressing (try fewer calibration/evaluation rows)") from exc
    except Exception as exc:  # noqa: BLE001 - the CLI promises one line, never a traceback
        if os.environ.get("REGISTRY_DEBUG"):
            raise
        text = str(exc).strip()
        line = text.splitlines()[0][:240] if text else ""
        raise CompressionError(f"compression failed: {type(exc).__name__}: {line} "
                               "(REGISTRY_DEBUG=1 shows the traceback)") from exc


def _value(v: Any) -> str:
    return "-" if v is None else f"{v:.4f}"


def _render(result: Any) -> None:
    from registry.compress.targets import LABELS, primary

    c = console()
    c.print(f"model      {result.out_dir / 'model.onnx'}  ({result.size} bytes, variant {result.chosen})")
    c.print(f"sha256     {result.sha256}")
    c.print(f"provenance {result.out_dir / 'provenance.json'}  sha256 {result.provenance_sha256}")
    key = primary(result.task)
    label, unit = LABELS[key]
    for row in result.variants:
        value = row.get(key)
        shown = "-" if value is None else (f"{value * 100:.2f}%" if unit == "%" else f"{value:.4f}")
        drop = "-" if row.get("drop") is None else f"{row['drop']:+.3f} {row.get('drop_unit', '')}"
        c.print(f"  {row['name']:18} {row['size_bytes']:>10} B  {1 / row['size_ratio']:6.2f}x smaller  "
                f"{label} {shown}  drop {drop}", soft_wrap=True)
    t = result.target
    if not t.get("set"):
        c.print("target     none set")
    else:
        c.print(f"target     {'met' if t.get('met') else 'missed'}")
    c.print(f"report     {result.out_dir / 'report.md'}")
