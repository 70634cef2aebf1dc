"""End-to-end runs: outputs, provenance, byte-identical reruns, bad input, atomic output dir."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from registry.compress.pipeline import run
from registry.compress.recipe import parse_recipe
from registry.compress.reproduce import reproduce
from registry.errors import InputError
from registry.provenance import load_provenance, provenance_sha256, subject_sha256

from _compress_fixtures import CNN_SMALL, Digits, cnn_weights, digits  # noqa: F401

STEPS = [
    {"type": "prune", "amount": 0.5, "iterations": 2, "epochs": 1},
    {"type": "structured_prune", "ratio": 0.5, "epochs": 1},
    {"type": "quantize", "mode": "static"},
]


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def first_run(digits: Digits, tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN201, F811
    out = tmp_path_factory.mktemp("run") / "out"
    return run(parse_recipe(digits.recipe(STEPS, evaluation={"latency_runs": 3, "warmup": 1})), out), out


def test_outputs_and_provenance(first_run) -> None:  # noqa: ANN001
    result, out = first_run
    assert sorted(p.name for p in out.iterdir()) == sorted(
        ["model.onnx", "provenance.json", "metrics.json", "report.md", "weights_1.png", "weights_2.png",
         "quality_vs_size.png"])
    assert _sha(out / "model.onnx") == result.sha256
    doc = load_provenance(out / "provenance.json")
    assert subject_sha256(doc) == result.sha256
    assert _sha(out / "provenance.json") == provenance_sha256(doc).hex() == result.provenance_sha256
    pred = doc["predicate"]
    assert pred["metrics"]["accuracy"] == result.metrics["accuracy"] > 0.8
    assert [s["name"] for s in pred["steps"]] == ["prune", "structured_prune", "export", "quantize"]
    for step in pred["steps"]:
        assert {"params", "metrics_before", "metrics_after"} <= set(step)
        assert step["metrics_after"]["size_bytes"] > 0
    prune, structured = pred["steps"][0], pred["steps"][1]
    assert prune["metrics_after"]["nonzero"] <= 0.51 * prune["metrics_before"]["nonzero"]
    # structured pruning physically shrinks the graph; the earlier zeros stay zero through fine-tuning
    assert structured["metrics_after"]["size_bytes"] < 0.45 * structured["metrics_before"]["size_bytes"]
    assert structured["metrics_after"]["nonzero"] < 0.7 * structured["metrics_after"]["parameters"]
    # inputs are recorded relative to the output directory (never absolute temp paths) and by digest
    recorded = pred["recipe"]["data"]["evaluation"]
    assert not Path(recorded).is_absolute() and pred["recipe"]["paths_relative_to"] == "the output directory"
    assert pred["data"]["evaluation_sha256"] == _sha(out / recorded)
    assert pred["data"]["calibration_sha256"] and pred["data"]["finetune_sha256"]
    assert pred["base_model"]["sha256"] == _sha(out / pred["recipe"]["model"]["weights"])
    zoo = Path(__file__).resolve().parents[1] / "registry" / "compress" / "zoo.py"
    assert pred["base_model"]["code"] == {"factory": "registry.compress.zoo:digits_mlp", "file": "zoo.py",
                                          "sha256": _sha(zoo)}
    assert pred["tools"]["exporter"] == "torch.onnx.export(dynamo=False)" and pred["tools"]["torch"]
    assert pred["tools"]["torch_pruning"] and "transformers" not in pred["tools"] or pred["tools"]["transformers"]
    assert {f["path"] for f in pred["report"]} == {"report.md", "weights_1.png", "weights_2.png",
                                                   "quality_vs_size.png"}
    for f in pred["report"]:
        assert _sha(out / f["path"]) == f["sha256"]
    assert pred["signature"]["inputs"] == [{"name": "input", "dtype": "float32", "shape": ["batch", 64]}]
    assert pred["seeds"]["recipe"] == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert [v["name"] for v in metrics["variants"]] == ["fp32-onnx", "export", "quantize-static"]
    assert metrics["baseline"]["latency"]["batch64"]["p50_ms"] > 0
    assert "| quantize-static |" in (out / "report.md").read_text()
    assert result.size < result.baseline["size_bytes"] / 6


def test_same_recipe_same_bytes(first_run, digits: Digits, tmp_path: Path) -> None:  # noqa: ANN001, F811
    result, _ = first_run
    again = run(parse_recipe(digits.recipe(STEPS)), tmp_path / "again", reports=False)
    assert again.sha256 == result.sha256
    other = run(parse_recipe(digits.recipe(STEPS, seed=1)), tmp_path / "seed1", reports=False)
    assert other.sha256 != result.sha256


def test_reproduce_matches_and_refuses_other_data(first_run, tmp_path: Path) -> None:  # noqa: ANN001
    _result, out = first_run
    rep = reproduce(out / "provenance.json")
    assert rep.match and rep.actual_sha256 == rep.expected_sha256
    doc = json.loads((out / "provenance.json").read_text())
    moved = tmp_path / "moved"
    moved.mkdir()
    for key, path in doc["predicate"]["recipe"]["data"].items():
        path = out / path
        data = np.load(path)
        x = data["x"].copy()
        if key == "finetune":
            x[0, 0] += 0.5   # one changed pixel: a different input, so reproduction must refuse
        np.savez(moved / Path(path).name, x=x, y=data["y"])
    with pytest.raises(InputError, match="finetune data .* is not the file the provenance records"):
        reproduce(out / "provenance.json", data_dir=str(moved))


def test_distillation_into_a_smaller_student(digits: Digits, tmp_path: Path) -> None:  # noqa: F811
    steps = [{"type": "distill", "student": "registry.compress.zoo:digits_mlp_small", "epochs": 6, "lr": 5e-3,
              "patience": 2}, {"type": "quantize", "mode": "dynamic"}]
    res = run(parse_recipe(digits.recipe(steps)), tmp_path / "out", reports=False)
    d = res.steps[0]
    assert d.details["epochs_run"] <= 6 and 1 <= d.details["best_epoch"] <= d.details["epochs_run"]
    assert d.metrics_after["parameters"] < d.metrics_before["parameters"] / 7
    assert res.metrics["accuracy"] > 0.7


def test_cnn_structured_then_fp16(digits: Digits, cnn_weights: Path, tmp_path: Path) -> None:  # noqa: F811
    raw = digits.recipe([{"type": "structured_prune", "ratio": 0.5, "epochs": 1},
                         {"type": "quantize", "mode": "fp16"}])
    raw["model"] = {"factory": CNN_SMALL, "weights": str(cnn_weights)}
    res = run(parse_recipe(raw), tmp_path / "out", reports=False)
    assert res.steps[0].details["changed_widths"] == {"1": [8, 4], "4": [16, 8], "9": [32, 16]}
    assert res.size < res.baseline["size_bytes"] / 4   # fixed graph overhead dominates such a tiny CNN


def test_onnx_input_quantize_only(first_run, digits: Digits, tmp_path: Path) -> None:  # noqa: ANN001, F811
    _result, out = first_run
    onnx_in = tmp_path / "in.onnx"
    from registry.compress.export import export_onnx
    from registry.compress.models import build_model, load_state

    x = np.load(digits.evaluation)["x"]
    onnx_in.write_bytes(export_onnx(load_state(build_model("registry.compress.zoo:digits_mlp"), digits.mlp, "m"), x))
    raw = digits.recipe([{"type": "quantize", "mode": "dynamic"}])
    raw["model"] = {"onnx": str(onnx_in)}
    res = run(parse_recipe(raw), tmp_path / "q", reports=False)
    assert res.chosen == "quantize-dynamic" and res.size < onnx_in.stat().st_size / 3
    assert load_provenance(tmp_path / "q" / "provenance.json")["predicate"]["base_model"]["format"] == "onnx"


def test_unmet_tolerance_keeps_the_best_variant(digits: Digits, tmp_path: Path) -> None:  # noqa: F811
    steps = [{"type": "structured_prune", "ratio": 0.97, "epochs": 0}, {"type": "quantize", "mode": "static"}]
    res = run(parse_recipe(digits.recipe(steps, target={"max_drop": 0.5})), tmp_path / "out", reports=False)
    assert not res.target_met and res.target["final_checks"][0]["value"] > 0.5
    assert res.chosen in ("export", "quantize-static")
    assert _sha(tmp_path / "out" / "model.onnx") == res.sha256
    doc = load_provenance(tmp_path / "out" / "provenance.json")
    assert doc["predicate"]["target"]["met"] is False


# ---- bad input: one clear line, nothing written ----------------------------------------------------

def _bad_data(path: Path, **arrays: np.ndarray) -> str:
    np.savez(path, **arrays)
    return str(path)


@pytest.mark.parametrize("case", ["factory", "module", "weights", "shape", "labels", "label_dtype", "missing_y",
                                  "garbage", "student"])
def test_bad_input_leaves_nothing(case: str, digits: Digits, tmp_path: Path) -> None:  # noqa: F811
    raw = digits.recipe([{"type": "prune", "amount": 0.5, "epochs": 0}])
    x = np.load(digits.evaluation)["x"]
    y = np.load(digits.evaluation)["y"]
    needle = {
        "factory": "has no attribute", "module": "cannot import", "weights": "does not fit",
        "shape": "does not fit the model", "labels": "labels out of range", "label_dtype": "integer array",
        "missing_y": "has no labels/targets", "garbage": "not a readable .npz", "student": "cannot import",
    }[case]
    if case == "factory":
        raw["model"]["factory"] = "registry.compress.zoo:nope"
    elif case == "module":
        raw["model"]["factory"] = "no_such_module_xyz:f"
    elif case == "weights":
        raw["model"]["factory"] = "registry.compress.zoo:digits_mlp_small"
    elif case == "shape":
        raw["data"]["evaluation"] = _bad_data(tmp_path / "e.npz", x=x[:, :50], y=y)
    elif case == "labels":
        raw["data"]["evaluation"] = _bad_data(tmp_path / "e.npz", x=x, y=y + 5)
    elif case == "label_dtype":
        raw["data"]["evaluation"] = _bad_data(tmp_path / "e.npz", x=x, y=y.astype(np.float32))
    elif case == "missing_y":
        raw["data"]["evaluation"] = _bad_data(tmp_path / "e.npz", x=x)
    elif case == "garbage":
        (tmp_path / "e.npz").write_bytes(b"PK\x03\x04 not really a zip")
        raw["data"]["evaluation"] = str(tmp_path / "e.npz")
    elif case == "student":
        raw["steps"] = [{"type": "distill", "student": "no_such_module_xyz:s", "epochs": 1}]
    out = tmp_path / "out"
    with pytest.raises(InputError) as info:
        run(parse_recipe(raw), out)
    assert needle in str(info.value) and "\n" not in str(info.value)
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_existing_output_is_kept_on_failure_and_needs_force(digits: Digits, tmp_path: Path) -> None:  # noqa: F811
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(InputError, match="not empty"):
        run(parse_recipe(digits.recipe([])), out)
    raw = digits.recipe([])
    raw["model"]["weights"] = str(tmp_path / "missing.pt")
    with pytest.raises(InputError, match="does not exist"):
        run(parse_recipe(raw), out, force=True)
    assert (out / "keep.txt").read_text() == "mine"
    res = run(parse_recipe(digits.recipe([])), out, force=True, reports=False)
    assert not (out / "keep.txt").exists() and _sha(out / "model.onnx") == res.sha256
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_embedding_task_is_scored_by_cosine(digits: Digits, tmp_path: Path) -> None:  # noqa: F811
    from registry.compress.export import export_onnx
    from registry.compress.models import build_model, load_state

    x = np.load(digits.evaluation)["x"]
    onnx_in = tmp_path / "emb.onnx"
    onnx_in.write_bytes(export_onnx(load_state(build_model("registry.compress.zoo:digits_mlp"), digits.mlp, "m"), x))
    raw = digits.recipe([{"type": "quantize", "mode": "mixed", "fallback": "fp32"}], task="embedding",
                        target={"min_cosine": 0.9995, "min_cosine_min": 0.99})
    raw["model"] = {"onnx": str(onnx_in)}
    res = run(parse_recipe(raw), tmp_path / "out", reports=False)
    assert "accuracy" not in res.metrics and res.metrics["cosine_mean"] >= 0.9995
    assert res.metrics["cosine_samples"] == len(x) and res.metrics["cosine_min"] <= res.metrics["cosine_p1"]
    assert res.target_met and res.target["met"] is True and [c["name"] for c in res.target["checks"]] == [
        "cosine_mean", "cosine_min"]
    details = res.steps[0].details
    assert details["candidates"] == 3 and details["measured_on"] == "calibration split"
    assert details["criterion"] == {"min_cosine": 0.9995, "min_cosine_min": 0.99}
    assert set(details["sensitivity"]) >= set(details["fallback_nodes"])


def test_no_target_is_not_met(digits: Digits, tmp_path: Path) -> None:  # noqa: F811
    res = run(parse_recipe(digits.recipe([{"type": "structured_prune", "ratio": 0.97, "epochs": 0}])),
              tmp_path / "out")
    assert res.target == {"relative": False, "set": False, "checks": [], "met": None}
    assert res.target_met   # nothing to miss: exit 0, and the report says so instead of "met: True"
    report = (tmp_path / "out" / "report.md").read_text()
    assert "no target set" in report and "**met**" not in report


def test_factory_with_two_named_typed_inputs(digits: Digits, tmp_path: Path) -> None:  # noqa: F811
    import torch

    from _compress_fixtures import two_inputs

    torch.manual_seed(0)
    torch.save(two_inputs().state_dict(), tmp_path / "w.pt")
    for role, path in (("evaluation", digits.evaluation), ("calibration", digits.calibration)):
        data = np.load(path)
        np.savez(tmp_path / f"{role}.npz", pixels=data["x"].astype(np.float64),   # float64 narrows safely
                 bucket=(np.arange(len(data["y"])) % 4).astype(np.int32), y=data["y"])
    raw = {"model": {"factory": "_compress_fixtures:two_inputs", "weights": str(tmp_path / "w.pt")},
           "data": {"evaluation": str(tmp_path / "evaluation.npz"), "calibration": str(tmp_path / "calibration.npz")},
           "evaluation": {"latency_runs": 2, "warmup": 0}, "steps": [{"type": "quantize", "mode": "static"}]}
    res = run(parse_recipe(raw), tmp_path / "out", reports=False)
    sig = load_provenance(tmp_path / "out" / "provenance.json")["predicate"]["signature"]
    assert sig["inputs"] == [{"name": "pixels", "dtype": "float32", "shape": ["batch", 64]},
                             {"name": "bucket", "dtype": "int64", "shape": ["batch"]}]
    assert res.chosen == "quantize-static" and "accuracy" in res.metrics and res.metrics["latency"]["batch1"]


@pytest.mark.parametrize("attack", ["fgsm", "pgd"])
def test_robustness_before_and_after_each_step_with_noise_training(attack: str, digits: Digits,  # noqa: F811
                                                                    tmp_path: Path) -> None:
    steps = [{"type": "finetune", "epochs": 1, "noise": "input", "noise_std": 0.1},
             {"type": "quantize", "mode": "dynamic"}]
    rob = {"attack": attack, "epsilon": 0.1, "steps": 5, "clip_min": 0.0, "clip_max": 1.0, "samples": 200}
    res = run(parse_recipe(digits.recipe(steps, robustness=rob)), tmp_path / "out")
    before = res.steps[0].metrics_before["robustness"]
    tuned = res.steps[0].metrics_after["robustness"]
    final = res.metrics["robustness"]
    assert before["source"] == tuned["source"] == "white-box on this model"
    assert final["source"].startswith("transfer") and final["samples"] == 200
    for r in (before, tuned, final):
        assert r["attack"] == attack and 0 <= r["accuracy_under_attack"] < r["accuracy_clean"]
        assert 0 < r["attack_success_rate"] <= 1
    assert res.steps[0].details["noise"] == "input"
    doc = load_provenance(tmp_path / "out" / "provenance.json")["predicate"]
    assert doc["metrics"]["robustness"]["attack"] == attack
    assert f"Adversarial robustness ({attack.upper()}" in (tmp_path / "out" / "report.md").read_text()


def test_pgd_is_at_least_as_strong_as_fgsm(digits: Digits) -> None:  # noqa: F811
    from registry.compress import robust
    from registry.compress.models import build_model, load_state
    from registry.compress.train import predict

    model = load_state(build_model("registry.compress.zoo:digits_mlp"), digits.mlp, "m")
    data = np.load(digits.evaluation)
    x, y = data["x"][:200], data["y"][:200]
    cfg = {"epsilon": 0.1, "steps": 10, "step_size": 0.0, "clip_min": 0.0, "clip_max": 1.0}
    acc = {}
    for attack in ("fgsm", "pgd"):
        adv = robust.craft(model, x, y, {**cfg, "attack": attack})
        assert np.max(np.abs(adv - x)) <= 0.1 + 1e-6 and adv.min() >= 0 and adv.max() <= 1
        acc[attack] = float(np.mean(predict(model, adv).numpy().argmax(1) == y))
    assert acc["pgd"] <= acc["fgsm"] + 0.01
