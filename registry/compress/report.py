"""report.md with a results table and PNG plots (weights before/after pruning, accuracy vs size).

matplotlib's Agg backend only: no display is needed and nothing global is changed for the caller.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np


def _fmt(value: Any, pct: bool = False) -> str:
    if value is None:
        return "-"
    if pct:
        return f"{value * 100:.2f}%"
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _latency(metrics: dict[str, Any], batch: int) -> str:
    lat = metrics.get("latency", {}).get(f"batch{batch}")
    return f"{lat['p50_ms']:.3f} / {lat['p95_ms']:.3f}" if lat else "-"


def write_report(out: Path, doc: dict[str, Any], histograms: list[tuple[str, np.ndarray, np.ndarray]],
                 sha: str) -> None:
    from matplotlib.figure import Figure

    plots = []
    for i, (label, before, after) in enumerate(histograms):
        fig = Figure(figsize=(8, 3.2))
        for ax, (title, w) in zip(fig.subplots(1, 2), (("before", before), ("after", after))):
            nz = w[w != 0]
            ax.hist(nz, bins=80, color="#4472c4")
            ax.set_title(f"{label}: {title} ({len(w) - len(nz)} of {len(w)} zero)", fontsize=8)
            ax.set_xlabel("weight (non-zero)")
        fig.tight_layout()
        name = f"weights_{i + 1}.png"
        fig.savefig(out / name, dpi=90)
        plots.append((f"Weights, {label}", name))

    baseline = doc["baseline"]
    points = [("baseline", baseline)] + [(f"{i + 1}. {s['name']}", s["metrics_after"]) for i, s in
                                         enumerate(doc["steps"])]
    key = "accuracy" if "accuracy" in baseline else "cosine"
    fig = Figure(figsize=(6, 4))
    ax = fig.subplots()
    xs = [p[1]["size_bytes"] / 1024 for p in points]
    ys = [p[1].get(key, float("nan")) for p in points]
    ax.plot(xs, ys, "o-", color="#c00000")
    # Steps that change neither size nor accuracy (export, say) land on one point: one joined label.
    labels: dict[tuple[float, float], list[str]] = {}
    for (label, _), x, y in zip(points, xs, ys):
        labels.setdefault((x, y), []).append(label)
    for (x, y), names in labels.items():
        ax.annotate(", ".join(names), (x, y), fontsize=7, xytext=(3, 3), textcoords="offset points")
    ax.set_xscale("log")
    ax.set_xlabel("ONNX size (KiB, log)")
    ax.set_ylabel(key)
    ax.set_title(f"{key} vs size per step", fontsize=9)
    fig.tight_layout()
    fig.savefig(out / "accuracy_vs_size.png", dpi=90)
    plots.append((f"{key} vs size", "accuracy_vs_size.png"))

    target = doc["target"]
    lines = [
        "# Compression report", "",
        f"Artifact `model.onnx` sha256 `{sha}` (variant **{doc['variant']}**).", "",
        f"Target: max drop {target.get('max_drop', 'none')}"
        f"{' (relative %)' if target.get('relative') else ' (points)'}; drop {target['drop']:.3f}; "
        f"met: **{target.get('met', True)}**.", "",
        "## Variants vs the FP32 ONNX baseline", "",
        "| variant | ONNX bytes | size ratio | accuracy | drop | p50 ratio b64 | p50/p95 ms b1 | p50/p95 ms b64 |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    base_p50 = baseline.get("latency", {}).get("batch64", {}).get("p50_ms")
    for v in doc["variants"]:
        p50 = v.get("latency", {}).get("batch64", {}).get("p50_ms")
        ratio = f"{p50 / base_p50:.2f}x" if p50 and base_p50 else "-"
        lines.append(f"| {v['name']} | {v['size_bytes']} | {1 / v['size_ratio']:.2f}x smaller | "
                     f"{_fmt(v.get('accuracy', v.get('cosine')))} | {v['drop']:.2f} | {ratio} | "
                     f"{_latency(v, 1)} | {_latency(v, 64)} |")
    lines += ["", "## Steps", "",
              "| # | step | params | accuracy before -> after | size before -> after | non-zero before -> after |",
              "| --- | --- | --- | --- | --- | --- |"]
    for i, s in enumerate(doc["steps"]):
        b, a = s["metrics_before"], s["metrics_after"]
        params = ", ".join(f"{k}={v}" for k, v in s["params"].items())
        lines.append(f"| {i + 1} | {s['name']} | {params} | {_fmt(b.get(key))} -> {_fmt(a.get(key))} | "
                     f"{b['size_bytes']} -> {a['size_bytes']} | {b['nonzero']} -> {a['nonzero']} |")
    notes = []
    for i, s in enumerate(doc["steps"]):
        d = s.get("details", {})
        if "fp32_nodes" in d:
            notes.append(f"- step {i + 1} (mixed precision): {len(d['fp32_nodes'])} of {d['quantizable_nodes']} "
                         f"quantizable nodes stayed FP32: {', '.join(d['fp32_nodes']) or 'none'} "
                         f"(drop {d['drop']:.3f}, met: {d['met']})")
        if "widths_after" in d:
            notes.append(f"- step {i + 1} (structured): widths {d['widths_before']} -> {d['widths_after']}")
        if "sparsity" in d:
            notes.append(f"- step {i + 1} (prune): final sparsity {d['sparsity'] * 100:.1f}% of prunable weights")
        if "max_abs_diff" in d:
            notes.append(f"- step {i + 1} (export, {d['exporter']}): max |ORT - PyTorch| = {d['max_abs_diff']:.3g}")
        if "best_epoch" in d:
            notes.append(f"- step {i + 1} (distill): best epoch {d['best_epoch']} of {d['epochs_run']} run")
    if notes:
        lines += [""] + notes
    threads = baseline.get("latency", {}).get("threads")
    if threads:
        lines += ["", f"Latency: onnxruntime CPU, intra_op_num_threads={threads}, "
                      f"{baseline['latency']['warmup']} warm-up runs, {baseline['latency']['runs']} timed runs."]
    lines += [""] + [f"![{title}]({name})" for title, name in plots] + [""]
    (out / "report.md").write_text("\n".join(lines), encoding="utf-8")
