"""The tensor layout: unchanged tensors keep their bytes and CIDs, the tree loads unchanged and passes every check."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from registry.content.tree import import_tree
from registry.content.unixfs import import_file
from registry.errors import InputError
from registry.layout import GROUP_ALIGN, file_stem, group_key, write_tensor_layout
from registry.layout_publish import layout_compress_output

from tests._tree_fixtures import onnx_with_external_data, set_external
from tests._update_fixtures import mlp_proto, run_model, write_mlp


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _file_cids(root: Path, profile: str = "kubo-v1") -> dict[str, str]:
    return {rel: str(import_file(root / rel, profile).cid) for rel in _files(root)}


def _check_tree(root: Path):  # noqa: ANN202
    from registry.content.sinks import MemorySink
    from registry.policy import Policy
    from registry.verify.tree import VerifiedTree, check_tree_onnx, is_onnx

    sink = MemorySink(is_onnx)
    result = import_tree(root, "kubo-v1", sink=sink)
    return check_tree_onnx(VerifiedTree(result.files, sink, result, [p for p in result.files.paths if is_onnx(p)]),
                           Policy())


def test_layout_of_a_single_file_loads_unchanged_and_passes_every_check(tmp_path):
    source = write_mlp(tmp_path / "v1.onnx", seed=1)
    before = source.read_bytes()
    result = write_tensor_layout(source, tmp_path / "out")
    files = _files(result.path)
    assert sorted(files) == ["groups/layer.0.bin", "groups/layer.1.bin", "groups/layer.2.bin", "groups/layer.3.bin",
                             "model.onnx", "tensors/layer.0.weight.bin", "tensors/layer.1.weight.bin",
                             "tensors/layer.2.weight.bin", "tensors/layer.3.weight.bin"]
    x = np.random.default_rng(3).standard_normal((4, 320)).astype(np.float32)
    assert np.array_equal(run_model(result.path / "model.onnx", x), run_model(source, x))
    check = _check_tree(result.path)
    assert check.status == "pass", check.detail
    assert len(check.evidence["external_data"]["model.onnx"]) == 8
    assert source.read_bytes() == before  # the source is never touched
    # one file per large tensor, at offset 0; the model holds the graph only
    assert len(files["tensors/layer.0.weight.bin"]) == 320 * 320 * 4
    assert len(files["model.onnx"]) < 4096


def test_layout_is_deterministic_and_rerunning_it_keeps_the_tree(tmp_path):
    source = write_mlp(tmp_path / "v1.onnx", seed=1)
    a = write_tensor_layout(source, tmp_path / "a")
    b = write_tensor_layout(source, tmp_path / "b")
    assert _files(a.path) == _files(b.path)
    assert import_tree(a.path, "kubo-v0").cid == import_tree(b.path, "kubo-v0").cid
    again = write_tensor_layout(source, tmp_path / "a")
    assert again.reused and _files(again.path) == _files(a.path)


def test_a_fine_tune_of_the_last_layer_changes_only_its_files(tmp_path):
    t1 = write_tensor_layout(write_mlp(tmp_path / "v1.onnx", seed=1), tmp_path / "t1").path
    t2 = write_tensor_layout(write_mlp(tmp_path / "v2.onnx", seed=1, last_seed=9), tmp_path / "t2").path
    c1, c2 = _file_cids(t1), _file_cids(t2)
    assert sorted(p for p in c1 if c1[p] != c2[p]) == ["groups/layer.3.bin", "tensors/layer.3.weight.bin"]
    # the same under every profile: each tensor file starts on a chunk boundary of all of them
    for profile in ("kubo-v0", "unixfs-v1-2025"):
        a, b = _file_cids(t1, profile), _file_cids(t2, profile)
        assert sorted(p for p in a if a[p] != b[p]) == ["groups/layer.3.bin", "tensors/layer.3.weight.bin"]


def test_a_changed_graph_keeps_every_tensor_file(tmp_path):
    """Same weights, one more node: a single file shifts every tensor; the layout changes model.onnx only."""
    v1 = write_mlp(tmp_path / "v1.onnx", seed=1)
    v2 = write_mlp(tmp_path / "v2.onnx", seed=1, extra_node=True)
    t1 = write_tensor_layout(v1, tmp_path / "t1").path
    t2 = write_tensor_layout(v2, tmp_path / "t2").path
    c1, c2 = _file_cids(t1), _file_cids(t2)
    assert [p for p in c1 if c1[p] != c2[p]] == ["model.onnx"]

    def leaves(path: Path) -> set[str]:
        out: set[str] = set()
        import_file(path, "kubo-v1", block_sink=lambda c, b: out.add(str(c)) if c.codec.name == "raw" else None)
        return out

    single_shared = len(leaves(v1) & leaves(v2)) / len(leaves(v2))
    assert single_shared < 0.5  # the single file re-sends (almost) everything


def test_a_directory_with_external_data_and_other_files(tmp_path):
    folder = tmp_path / "src"
    onnx_with_external_data(folder, n=200_000, extra={"tokenizer/vocab.txt": b"a\nb\n", "config.json": b"{}"})
    result = write_tensor_layout(folder, tmp_path / "out")
    files = _files(result.path)
    assert sorted(files) == ["config.json", "model.onnx", "tensors/W.bin", "tokenizer/vocab.txt"]
    assert files["tokenizer/vocab.txt"] == b"a\nb\n"
    assert "model.onnx.data" not in files  # replaced by the per-tensor file
    assert files["tensors/W.bin"] == (folder / "model.onnx.data").read_bytes()
    x = np.ones(200_000, dtype=np.float32)
    import onnxruntime

    def out(path: Path) -> np.ndarray:
        return onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"X": x})[0]

    assert np.array_equal(out(result.path / "model.onnx"), out(folder / "model.onnx"))
    assert _check_tree(result.path).status == "pass"


def test_group_members_are_aligned_and_sorted(tmp_path):
    from onnx import TensorProto, helper, numpy_helper

    inits = [numpy_helper.from_array(np.full(n, i, dtype=np.float32), f"block.2.{name}")
             for i, (name, n) in enumerate((("zeta", 300), ("alpha", 257), ("mid", 1000)))]
    nodes = [helper.make_node("Identity", [t.name], [f"o{i}"]) for i, t in enumerate(inits)]
    graph = helper.make_graph(nodes, "g", [], [helper.make_tensor_value_info(f"o{i}", TensorProto.FLOAT, None)
                                              for i in range(3)], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    src = tmp_path / "m.onnx"
    src.write_bytes(model.SerializeToString())
    result = write_tensor_layout(src, tmp_path / "out")
    placed = {p.name: p for p in result.placements}
    assert {p.file for p in placed.values()} == {"groups/block.2.bin"}
    assert [n for n, _ in sorted(((p.name, p.offset) for p in placed.values()), key=lambda t: t[1])] == \
        ["block.2.alpha", "block.2.mid", "block.2.zeta"]
    assert all(p.offset % GROUP_ALIGN == 0 for p in placed.values())
    import onnxruntime

    outs = onnxruntime.InferenceSession(str(result.path / "model.onnx"),
                                        providers=["CPUExecutionProvider"]).run(None, {})
    assert [float(o[0]) for o in outs] == [0.0, 1.0, 2.0]


def test_names_are_derived_from_the_tensor_and_never_collide():
    assert file_stem("encoder.layer.0.weight") == "encoder.layer.0.weight"
    odd = file_stem("onnx::MatMul_12")
    assert odd.startswith("onnx__MatMul_12.") and odd == file_stem("onnx::MatMul_12")
    assert file_stem("onnx::MatMul_12") != file_stem("onnx__MatMul_12")
    assert not file_stem("../../etc/passwd").startswith(".") and "/" not in file_stem("../../etc/passwd")
    assert len(file_stem("x" * 400).encode()) <= 120
    assert group_key("encoder.layer.5.attention.self.query.bias") == "encoder.layer.5"
    assert group_key("/encoder/layer.3/Add_output_0") == "encoder.layer.3"
    assert group_key("embeddings.LayerNorm.weight") == "embeddings"
    assert group_key("onnx::Add_7") == "onnx"


def test_names_that_differ_only_in_case_get_distinct_files(tmp_path):
    from onnx import TensorProto, helper, numpy_helper

    inits = [numpy_helper.from_array(np.full(20000, i, dtype=np.float32), name) for i, name in enumerate(("W", "w"))]
    graph = helper.make_graph([helper.make_node("Add", ["W", "w"], ["y"])], "g", [],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [20000])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    src = tmp_path / "m.onnx"
    src.write_bytes(model.SerializeToString())
    result = write_tensor_layout(src, tmp_path / "out")
    files = [p.file for p in result.placements]
    assert len({f.casefold() for f in files}) == 2
    check = _check_tree(result.path)
    assert check.status == "pass", check.detail


def test_bad_sources_are_one_clear_error_and_leave_nothing(tmp_path):
    not_onnx = tmp_path / "x.onnx"
    not_onnx.write_bytes(b"\x00garbage" * 10)
    with pytest.raises(InputError, match="not an ONNX model"):
        write_tensor_layout(not_onnx, tmp_path / "o1")
    folder = tmp_path / "src"
    onnx_with_external_data(folder, n=50_000)
    set_external(folder / "model.onnx", location="../secret.bin")
    (tmp_path / "secret.bin").write_bytes(bytes(200_000))
    with pytest.raises(InputError, match=r"'\.\.'"):
        write_tensor_layout(folder, tmp_path / "o2")
    folder2 = tmp_path / "src2"
    onnx_with_external_data(folder2, n=50_000)
    set_external(folder2 / "model.onnx", length="400")
    with pytest.raises(InputError, match="needs"):
        write_tensor_layout(folder2, tmp_path / "o3")
    with pytest.raises(InputError, match="inside"):
        write_tensor_layout(folder2, folder2 / "out")
    assert not any(p.name.startswith(("o1", "o2", "o3", ".o")) for p in tmp_path.iterdir())


def test_an_existing_different_target_is_refused_not_overwritten(tmp_path):
    target = tmp_path / "out"
    target.mkdir()
    (target / "mine.txt").write_text("keep me")
    with pytest.raises(InputError, match="differs"):
        write_tensor_layout(write_mlp(tmp_path / "v1.onnx"), target)
    assert (target / "mine.txt").read_text() == "keep me"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_compress_output_becomes_a_tree_whose_provenance_names_it(tmp_path):
    from registry.provenance import load_provenance, statement, write_provenance

    out = tmp_path / "compressed"
    model = write_mlp(out / "model.onnx", seed=4)
    digest = hashlib.sha256(model.read_bytes()).hexdigest()
    write_provenance(statement(digest, "model.onnx", {"steps": [{"name": "quantize"}]}), out / "provenance.json")
    result, tree_sha = layout_compress_output(out)
    assert not model.exists() and (out / "model" / "model.onnx").is_file()
    assert tree_sha == import_tree(out / "model", "kubo-v0").sha256.hex()
    doc = load_provenance(out / "provenance.json")
    assert doc["subject"] == [{"name": "model", "digest": {"sha256": tree_sha}}]
    assert doc["predicate"]["layout"]["source"] == {"name": "model.onnx", "sha256": digest}
    assert doc["predicate"]["steps"] == [{"name": "quantize"}]


def test_publish_with_the_tensor_layout_carries_the_provenance_over(deployed, tmp_path):
    from registry.config import load_settings
    from registry.provenance import load_provenance, statement, write_provenance
    from registry.publish import publish_model
    from registry.verify import verify

    model = write_mlp(tmp_path / "mlp.onnx", seed=2)
    prov = tmp_path / "provenance.json"
    write_provenance(statement(hashlib.sha256(model.read_bytes()).hexdigest(), "mlp.onnx", {"metrics": {}}), prov)
    settings = load_settings()
    result = publish_model(model, "acme/mlp", "1.0.0", provenance_path=prov, settings=settings,
                           signer=deployed.publisher, client=deployed.client, layout="tensors")
    assert result.artifact_path == tmp_path / "mlp.tensors"
    assert result.artifact.kind == "directory"
    assert result.artifact.sha256 == import_tree(tmp_path / "mlp.tensors", "kubo-v1").sha256
    report = verify("acme/mlp@1.0.0", settings=settings, client=deployed.client)
    assert report.ok, [c.detail for c in report.checks if c.status != "pass"]
    from registry.content.stores import open_store

    anchored = load_provenance(open_store(settings).get_bytes(result.record.provenance_cid))
    assert anchored["predicate"]["layout"]["source"]["name"] == "mlp.onnx"
    # re-running publish converges on the same release and keeps the same tree
    again = publish_model(model, "acme/mlp", "1.0.0", provenance_path=prov, settings=settings,
                          signer=deployed.publisher, client=deployed.client, layout="tensors")
    assert again.already_published and again.record.id == result.record.id


def test_cli_publish_layout_tensors(deployed, tmp_path, monkeypatch, capsys):
    from tests.test_content_cli import run

    model = write_mlp(tmp_path / "mlp.onnx", seed=5)
    code, out, err = run(monkeypatch, capsys, "publish", str(model), "--name", "acme/cli", "--version", "1.0.0",
                         "--layout", "tensors", "--layout-dir", str(tmp_path / "laid"), "--json")
    assert code == 0, err
    doc = json.loads(out)
    assert doc["path"] == str(tmp_path / "laid") and doc["artifact"]["kind"] == "directory"
    code, _out, err = run(monkeypatch, capsys, "publish", str(model), "--name", "acme/cli", "--version", "1.0.1",
                          "--layout", "shards")
    assert code == 3 and "unknown layout" in err


def test_layout_keeps_small_and_odd_tensors_inline(tmp_path):
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    small = numpy_helper.from_array(np.arange(8, dtype=np.float32), "tiny")
    text = helper.make_tensor("names", TensorProto.STRING, [2], [b"a", b"b"])
    big = numpy_helper.from_array(np.ones(70000, dtype=np.float32), "big")
    graph = helper.make_graph([helper.make_node("Identity", [n], [f"o_{n}"]) for n in ("tiny", "names", "big")], "g",
                              [], [helper.make_tensor_value_info(f"o_{n}", t, None) for n, t in
                                   (("tiny", TensorProto.FLOAT), ("names", TensorProto.STRING),
                                    ("big", TensorProto.FLOAT))], [small, text, big])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    src = tmp_path / "m.onnx"
    src.write_bytes(model.SerializeToString())
    result = write_tensor_layout(src, tmp_path / "out")
    assert [p.name for p in result.placements] == ["big"] and result.inline == 2
    laid = onnx.load(str(result.path / "model.onnx"), load_external_data=False)
    assert {t.name: t.data_location for t in laid.graph.initializer} == {"tiny": 0, "names": 0, "big": 1}
    assert mlp_proto  # the shared fixture module stays importable


def test_cli_compress_layout_tensors(tmp_path, monkeypatch, capsys):
    from tests._compress_fixtures import MLP
    from tests.test_compress_cli import _main

    d = _digits_fixture(tmp_path)
    out = tmp_path / "out"
    code, stdout, err = _main(["compress", "--model", MLP, "--weights", str(d.mlp), "--calib-data", str(d.calibration),
                               "--eval-data", str(d.evaluation), "--quantize", "dynamic", "--latency-runs", "0",
                               "--layout", "tensors", "--out", str(out), "--json"], monkeypatch, capsys, tmp_path)
    assert code == 0, err
    summary = json.loads(stdout)
    assert summary["layout"]["model"] == "model.onnx" and (out / "model" / "model.onnx").is_file()
    assert not (out / "model.onnx").exists()
    from registry.provenance import load_provenance

    doc = load_provenance(out / "provenance.json")
    assert doc["subject"][0]["digest"]["sha256"] == import_tree(out / "model", "kubo-v1").sha256.hex()
    assert doc["predicate"]["layout"]["source"]["sha256"] == summary["sha256"]
    assert _check_tree(out / "model").status == "pass"
    code, _o, err = _main(["compress", "--model", MLP, "--weights", str(d.mlp), "--eval-data", str(d.evaluation),
                           "--layout", "shards", "--out", str(tmp_path / "o2")], monkeypatch, capsys, tmp_path)
    assert code == 3 and "layout" in err


def _digits_fixture(tmp_path: Path):  # noqa: ANN202
    """The digits splits and a briefly trained MLP (as tests/_compress_fixtures builds them)."""
    import torch

    from registry.compress.data import load_npz
    from registry.compress.digits import write_digits_splits
    from registry.compress.train import TrainConfig, train_base
    from tests._compress_fixtures import MLP, Digits

    root = tmp_path / "digits"
    root.mkdir()
    splits = write_digits_splits(root, seed=0)
    mlp = train_base(MLP, load_npz(splits.finetune, "finetune"), TrainConfig(epochs=1, lr=3e-3, seed=0))
    torch.save(mlp.state_dict(), root / "mlp.pt")
    return Digits(root, splits.finetune, splits.calibration, splits.evaluation, root / "mlp.pt")
