"""report.md with tables and PNG plots: what each variant costs and what each step changed.

Honest by construction: metrics carry their names and units (accuracy in %, drops in percentage
points, cosine similarity to the FP32 outputs as a plain number), a target reads "met" only when one
was set and every bound holds, latency is the interleaved p50 at the recipe's batch and sequence
sizes with its ratio to the FP32 baseline, and an unstructured-pruning step shows no size gain
because its file does not shrink. Plots use numbered markers with a legend (never free-floating
text that could overlap), constrained layout and a tight bounding box (nothing clipped).
matplotlib's Agg backend only: no display is needed and nothing global is changed for the caller.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from registry.compress.targets import LABELS, primary

MIB = 1024 * 1024


def _pct(v: Any) -> str:
    return "-" if v is None else f"{v * 100:.2f}%"


def _num(v: Any, digits: int = 4) -> str:
    return "-" if v is None else f"{v:.{digits}f}"


def _size(n: int) -> str:
    return f"{n / MIB:.2f} MiB" if n >= MIB else f"{n / 1024:.1f} KiB"


def _quality_columns(task: str) -> list[tuple[str, str, Any]]:
    if task in ("classification", "sequence-classification"):
        return [("accuracy", "top-1 accuracy", _pct), ("f1_macro", "macro F1", _pct),
                ("agreement", "agrees with FP32", _pct)]
    if task == "regression":
        return [("mse", "MSE (target units²)", lambda v: _num(v, 5))]
    return [("cosine_mean", "cosine to FP32: mean", _num), ("cosine_min", "min", _num),
            ("cosine_p1", "p1", _num), ("cosine_p5", "p5", _num)]


def _latency_cells(v: dict[str, Any], base: dict[str, Any], batches: list[int]) -> list[str]:
    cells = []
    for b in batches:
        lat = v.get("latency", {}).get(f"batch{b}")
        ref = base.get("latency", {}).get(f"batch{b}")
        if not lat:
            cells.append("-")
            continue
        ratio = f" ({lat['p50_ms'] / ref['p50_ms']:.2f}x)" if ref and ref["p50_ms"] > 0 else ""
        cells.append(f"{lat['p50_ms']:.3g} ms{ratio}")
    return cells


def _target_lines(target: dict[str, Any]) -> list[str]:
    if not target.get("set"):
        return ["Target: **no target set** (nothing to meet or miss)."]
    lines = [f"Target: **{'met' if target.get('met') else 'missed'}** by the chosen variant."]
    for c in target.get("checks", []):
        value = "-" if c["value"] is None else f"{c['value']:.4f}"
        bound = "<=" if c["name"] == "drop" else ">="
        unit = f" {c['unit']}" if c["unit"] else ""
        lines.append(f"- {c['name']}: {value}{unit} (bound {bound} {c['limit']:g}{unit}): "
                     f"{'met' if c['met'] else 'missed'}")
    if "final_variant" in target:
        lines.append(f"- the last step's variant ({target['final_variant']}) missed the target; the report keeps "
                     f"the variant above instead")
    return lines


def write_report(out: Path, doc: dict[str, Any], histograms: list[Any], cosines: dict[str, np.ndarray],
                 sha: str) -> list[str]:
    """Writes report.md and its plots into ``out``; returns the file names written."""
    task = doc["task"]
    files: list[str] = []
    plots: list[tuple[str, str]] = []
    for i, hist in enumerate(histograms):
        name = f"weights_{i + 1}.png"
        _weights_plot(out / name, hist)
        files.append(name)
        plots.append((f"Weights per layer, {hist.label} (left: all; right: zoomed around zero)", name))
    name = "quality_vs_size.png"
    _quality_plot(out / name, doc)
    files.append(name)
    plots.append((f"{LABELS[primary(task)][0]} vs ONNX size", name))
    if cosines:
        name = "cosine_per_sample.png"
        _cosine_plot(out / name, cosines)
        files.append(name)
        plots.append(("Per-sample cosine similarity to the FP32 outputs, per variant", name))

    settings = next((v.get("latency", {}).get("settings") for v in doc["variants"] if v.get("latency")), None) or {}
    batches = settings.get("batches", [])
    lines = ["# Compression report", "",
             f"Task **{task}**. Artifact `model.onnx` sha256 `{sha}` (variant **{doc['variant']}**).", ""]
    lines += _target_lines(doc["target"]) + [""]
    quality = _quality_columns(task)
    head = ["variant", "ONNX size", "vs FP32"] + [q[1] for q in quality] + \
        [f"drop ({doc['variants'][0].get('drop_unit', '')})"] + \
        [f"p50 b{b}" + (f" s{settings['sequence']}" if settings.get("sequence") else "") for b in batches]
    lines += ["## Variants vs the FP32 ONNX baseline", "", "| " + " | ".join(head) + " |",
              "| " + " | ".join(["---"] + ["---:"] * (len(head) - 1)) + " |"]
    for v in doc["variants"]:
        ratio = 1 / v["size_ratio"]
        size_cell = f"{ratio:.2f}x smaller" if ratio > 1.005 else ("same size" if ratio >= 0.995 else
                                                                      f"{1 / ratio:.2f}x larger")
        row = [v["name"], _size(v["size_bytes"]), size_cell] + [fmt(v.get(key)) for key, _, fmt in quality] + \
            [_num(v.get("drop"), 3)] + _latency_cells(v, doc["variants"][0], batches)
        lines.append("| " + " | ".join(row) + " |")
    if batches:
        lines += ["", f"Latency: p50 per batch (x = ratio to the FP32 baseline), onnxruntime CPU, "
                      f"intra_op_num_threads={settings['threads']}, batch sizes {batches}"
                      + (f", sequence length {settings['sequence']}" if settings.get("sequence") else "")
                      + f"; {settings['warmup']} warm-up runs, then {settings['rounds']} rounds of "
                        f"{settings['runs_per_round']} runs per variant, {settings['order']}."]
    key = primary(task)
    fmt_key = _pct if key == "accuracy" else _num
    lines += ["", "## Steps", "",
              f"| # | step | params | {LABELS[key][0]} before -> after | ONNX size before -> after | seconds |",
              "| --- | --- | --- | --- | --- | ---: |"]
    for i, s in enumerate(doc["steps"]):
        b, a = s["metrics_before"], s["metrics_after"]
        params = ", ".join(f"{k}={v}" for k, v in s["params"].items())
        lines.append(f"| {i + 1} | {s['name']} | {params} | {fmt_key(b.get(key))} -> {fmt_key(a.get(key))} | "
                     f"{_size(b['size_bytes'])} -> {_size(a['size_bytes'])} | {s['details'].get('seconds', '-')} |")
    lines += _robustness_lines(doc)
    notes = _notes(doc)
    if notes:
        lines += ["", "## Notes", ""] + notes
    lines += [""] + [f"![{title}]({name})" for title, name in plots] + [""]
    (out / "report.md").write_text("\n".join(lines), encoding="utf-8")
    return ["report.md"] + files


def _robustness_lines(doc: dict[str, Any]) -> list[str]:
    rows = []
    steps = doc["steps"]
    if steps and steps[0]["metrics_before"].get("robustness"):
        rows.append(("base model", steps[0]["metrics_before"]["robustness"]))
    for i, s in enumerate(steps):
        r = s["metrics_after"].get("robustness")
        if r:
            rows.append((f"after {i + 1}. {s['name']}", r))
    if not rows:
        return []
    first = rows[0][1]
    lines = ["", f"## Adversarial robustness ({first['attack'].upper()}, epsilon {first['epsilon']:g}, "
                 f"{first['samples']} evaluation samples)", "",
             "| state | clean accuracy | accuracy under attack | attack success rate | examples crafted by |",
             "| --- | ---: | ---: | ---: | --- |"]
    for label, r in rows:
        lines.append(f"| {label} | {_pct(r['accuracy_clean'])} | {_pct(r['accuracy_under_attack'])} | "
                     f"{_pct(r['attack_success_rate'])} | {r['source']} |")
    return lines


def _notes(doc: dict[str, Any]) -> list[str]:
    notes = []
    for i, s in enumerate(doc["steps"]):
        d = s.get("details", {})
        if "fallback_nodes" in d:
            crit = ", ".join(f"{k} {v}" for k, v in d["criterion"].items())
            notes.append(f"- step {i + 1} (mixed precision from {d['base']}): {len(d['fallback_nodes'])} of "
                         f"{d['candidates']} nodes fall back ({d['fallback']}), ranked by measured sensitivity; "
                         f"searched on the {d['measured_on']} for {crit}: "
                         f"{'met' if d['met_on_calibration'] else 'missed'} there; "
                         f"{d['search_seconds']['total']:.1f} s")
        if "changed_widths" in d:
            shown = ", ".join(f"{k} {v[0]}->{v[1]}" for k, v in list(d["changed_widths"].items())[:12])
            more = len(d["changed_widths"]) - 12
            notes.append(f"- step {i + 1} (structured, {d['library']}): {shown}" + (f" (+{more} more)" if more > 0 else ""))
        if "sparsity" in d:
            notes.append(f"- step {i + 1} (unstructured prune): {d['sparsity'] * 100:.1f}% of prunable weights are "
                         f"zero; {d['note']}")
        if "max_abs_diff" in d:
            shapes = ", ".join(f"b{c['batch']}" + (f"/s{c['sequence']}" if c["sequence"] else "")
                               for c in d.get("shapes", []))
            notes.append(f"- step {i + 1} (export, {d['exporter']}): max |ORT - PyTorch| = {d['max_abs_diff']:.3g} "
                         f"at {shapes}")
        if "best_epoch" in d:
            notes.append(f"- step {i + 1} (distill): best epoch {d['best_epoch']} of {d['epochs_run']} run")
        if d.get("noise", "none") != "none":
            notes.append(f"- step {i + 1}: Gaussian noise on {d['noise']}s (std {d['noise_std']:g}) during training")
    return notes


# ---- plots --------------------------------------------------------------------------------------

def _figure(width: float, height: float) -> Any:
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout="constrained")


def _save(fig: Any, path: Path) -> None:
    fig.savefig(path, dpi=100, bbox_inches="tight", pad_inches=0.15)


def _weights_plot(path: Path, hist: Any) -> None:
    layers = list(hist.layers.items())
    fig = _figure(10, 1.9 * len(layers) + 0.6)
    axes = fig.subplots(len(layers), 2, squeeze=False)
    for row, (name, (before, after)) in enumerate(layers):
        b, a = before.ravel(), after.ravel()
        nb, na = b[b != 0], a[a != 0]
        full, zoom = axes[row]
        both = np.concatenate([nb, na]) if nb.size + na.size else np.zeros(1)
        lo, hi = float(both.min()), float(both.max())
        bins = np.linspace(lo, hi, 81) if hi > lo else 10
        full.hist(nb, bins=bins, color="#9fb4d9", label="before")
        full.hist(na, bins=bins, histtype="step", color="#c00000", linewidth=1.2, label="after")
        full.set_title(f"{_short(name)}: {b.size} -> {a.size} weights, {b.size - nb.size} -> {a.size - na.size} "
                       "zero (not drawn)", fontsize=8, loc="left")
        width = float(np.median(np.abs(nb))) if nb.size else 1e-3
        zbins = np.linspace(-width, width, 61)
        zoom.hist(nb[np.abs(nb) <= width], bins=zbins, color="#9fb4d9", label="before")
        zoom.hist(na[np.abs(na) <= width], bins=zbins, histtype="step", color="#c00000", linewidth=1.2,
                  label="after")
        zoom.set_title(f"zoom: 0 < |w| <= {width:.3g} (the smaller half before)", fontsize=8, loc="left")
        for ax in (full, zoom):
            ax.tick_params(labelsize=7)
            ax.set_ylabel("count", fontsize=7)
        if row == len(layers) - 1:
            full.set_xlabel("weight value (non-zero)", fontsize=8)
            zoom.set_xlabel("weight value (non-zero, zoomed)", fontsize=8)
    axes[0][1].legend(fontsize=7, loc="upper right")
    fig.suptitle(hist.label, fontsize=9)
    _save(fig, path)


def _short(name: str, limit: int = 48) -> str:
    return name if len(name) <= limit else "…" + name[-(limit - 1):]


def _quality_plot(path: Path, doc: dict[str, Any]) -> None:
    task = doc["task"]
    key = primary(task)
    label, unit = LABELS[key]
    scale = 100.0 if unit == "%" else 1.0
    points = [("0. FP32 baseline", doc["baseline"])] + [(f"{i + 1}. {s['name']}", s["metrics_after"])
                                                         for i, s in enumerate(doc["steps"])]
    fig = _figure(7.5, 4.2)
    ax = fig.subplots()
    sizes = [p[1]["size_bytes"] for p in points]
    kib = max(sizes) < MIB
    xs = [n / (1024 if kib else MIB) for n in sizes]
    ys = [p[1][key] * scale if p[1].get(key) is not None else np.nan for p in points]
    ax.plot(xs, ys, "-", color="#bbbbbb", zorder=1)
    markers = "osD^v<>p*h"
    for i, ((name, _m), x, y) in enumerate(zip(points, xs, ys)):
        # earlier states drawn larger, so a later state on the same spot never hides them
        ax.scatter([x], [y], marker=markers[i % len(markers)], s=max(30, 170 - 28 * i), zorder=2 + i, label=name,
                   alpha=0.9, edgecolors="black", linewidths=0.5)
    ax.set_xscale("log")
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    ax.set_xlim(min(xs) / 1.35, max(xs) * 1.35)
    finite = [y for y in ys if np.isfinite(y)]
    if finite:
        pad = (max(finite) - min(finite)) * 0.12 or abs(max(finite)) * 0.01 or 0.01
        ax.set_ylim(min(finite) - pad, max(finite) + pad)
    ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _p: f"{v:g}"))
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel(f"ONNX size ({'KiB' if kib else 'MiB'}, log scale)", fontsize=9)
    ax.set_ylabel(f"{label}" + (f" ({unit})" if unit else ""), fontsize=9)
    ax.set_title(f"{label} vs size, per step", fontsize=10)
    ax.tick_params(labelsize=8)
    ax.grid(alpha=0.3)
    fig.legend(loc="outside right upper", fontsize=8, title="state after step", title_fontsize=8)
    _save(fig, path)


def _cosine_plot(path: Path, cosines: dict[str, np.ndarray]) -> None:
    fig = _figure(7.5, 4.0)
    ax = fig.subplots()
    others = {k: v for k, v in cosines.items() if k != "fp32-onnx"}
    if not others:
        others = cosines
    worst = min(float(np.min(v)) for v in others.values())
    lo = min(worst, 0.999)
    bins = np.linspace(lo, 1.0, 60)
    for name, values in others.items():
        ax.hist(np.clip(values, lo, 1.0), bins=bins, histtype="step", linewidth=1.4, label=name)
    ax.set_xlabel("cosine similarity to the FP32 output (1 = identical)", fontsize=9)
    ax.set_ylabel("samples", fontsize=9)
    ax.set_title("Per-sample cosine similarity to FP32", fontsize=10)
    ax.tick_params(labelsize=8)
    ax.grid(alpha=0.3)
    fig.legend(loc="outside right upper", fontsize=8, title="variant", title_fontsize=8)
    _save(fig, path)
