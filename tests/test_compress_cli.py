"""`registry compress` / `registry reproduce` as a user runs them: exit codes, --json, files."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from _compress_fixtures import MLP, Digits, digits  # noqa: F401

REGISTRY = [sys.executable, "-c", "from registry.cli import main; main()"]


def _run(args: list[str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "REGISTRY_HOME": str(tmp_path / "home")}
    return subprocess.run(REGISTRY + args, capture_output=True, text=True, env=env, timeout=600, cwd=tmp_path)


def _main(args: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
          tmp_path: Path) -> tuple[int, str, str]:
    """The console entry point in-process (same code path as the script, without a torch import per call)."""
    from registry.cli import main

    monkeypatch.setenv("REGISTRY_HOME", str(tmp_path / "home"))
    monkeypatch.setattr(sys, "argv", ["registry", *args])
    code = 0
    try:
        main()
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def _inputs(d: Digits) -> list[str]:
    return ["--model", MLP, "--weights", str(d.mlp), "--finetune-data", str(d.finetune),
            "--calib-data", str(d.calibration), "--eval-data", str(d.evaluation)]


def test_compress_flags_json_then_reproduce(digits: Digits, tmp_path: Path) -> None:  # noqa: F811
    out = tmp_path / "out"
    proc = _run(["compress", *_inputs(digits), "--structured", "0.5", "--epochs", "1", "--quantize", "dynamic",
                 "--latency-runs", "2", "--out", str(out), "--json"], tmp_path)
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    assert summary["variant"] == "quantize-dynamic" and summary["target"]["met"] is None   # no target was set
    assert (out / "model.onnx").stat().st_size == summary["size_bytes"]
    assert {v["name"] for v in summary["variants"]} == {"fp32-onnx", "export", "quantize-dynamic"}
    rep = _run(["reproduce", str(out / "provenance.json"), "--json"], tmp_path)
    assert rep.returncode == 0, rep.stderr
    assert json.loads(rep.stdout) == {"match": True, "expected_sha256": summary["sha256"],
                                      "actual_sha256": summary["sha256"], "variant": "quantize-dynamic"}
    again = _run(["compress", *_inputs(digits), "--out", str(out)], tmp_path)
    assert again.returncode == 3 and "not empty" in again.stderr


def test_recipe_file_and_unmet_target(digits: Digits, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,  # noqa: F811
                                      capsys: pytest.CaptureFixture[str]) -> None:
    recipe = tmp_path / "recipe.toml"
    recipe.write_text(
        f'seed = 0\n[model]\nfactory = "{MLP}"\nweights = "{digits.mlp}"\n'
        f'[data]\nevaluation = "{digits.evaluation}"\ncalibration = "{digits.calibration}"\n'
        '[target]\nmax_drop = 0.1\n[evaluation]\nlatency_runs = 0\n'
        '[[steps]]\ntype = "structured_prune"\nratio = 0.97\nepochs = 0\n'
        '[[steps]]\ntype = "quantize"\nmode = "static"\n', encoding="utf-8")
    out = tmp_path / "out"
    code, _out, err = _main(["compress", "--recipe", str(recipe), "--out", str(out)], monkeypatch, capsys, tmp_path)
    assert code == 7, err
    assert "target missed: drop" in err and "(bound 0.1)" in err and "kept the best variant" in err
    assert (out / "model.onnx").is_file() and (out / "provenance.json").is_file()
    code, stdout, err = _main(["compress", "--recipe", str(recipe), "--out", str(out), "--force", "--json"],
                              monkeypatch, capsys, tmp_path)
    assert code == 7 and "target missed" in err
    assert json.loads(stdout)["target"]["met"] is False   # exactly one JSON document


@pytest.mark.parametrize(("extra", "needle"), [
    (["--model", "registry.compress.zoo:missing"], "has no attribute 'missing'"),
    (["--quantize", "int3"], "mode = 'int3' is out of range"),
    (["--prune", "1.2"], "amount = 1.2 is out of range"),
])
def test_bad_input_exit_3_nothing_written(digits: Digits, tmp_path: Path, extra: list[str],  # noqa: F811
                                          needle: str, monkeypatch: pytest.MonkeyPatch,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    code, stdout, err = _main(["compress", *_inputs(digits), *extra, "--out", str(out), "--json"], monkeypatch,
                              capsys, tmp_path)
    assert code == 3
    assert err.strip().splitlines()[-1].startswith("error: ") and needle in err
    assert json.loads(stdout)["exit_code"] == 3
    assert not out.exists()


def test_cli_module_does_not_import_torch() -> None:
    code = ("import sys, registry.cli; "
            "bad = [m for m in ('torch', 'registry.compress.pipeline', 'onnxruntime') if m in sys.modules]; "
            "print(bad)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.stdout.strip() == "[]", proc.stdout + proc.stderr
