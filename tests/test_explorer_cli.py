"""`registry index`, `registry diff`, `registry card draft|check` and `registry serve` as commands."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import httpx
import pytest

from tests._explorer_fixtures import populate, registry_data  # noqa: F401
from tests._verify_fixtures import publish_tiny


def run(args: list[str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> tuple[int, str, str]:
    from registry.cli import main

    monkeypatch.setattr(sys, "argv", ["registry", *args])
    try:
        main()
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_index_command_catches_up_then_reads_only_new_blocks(deployed, tmp_path, capsys, monkeypatch):
    publish_tiny(deployed, tmp_path, "acme/cli", "1.0.0", seed=1)
    code, out, err = run(["index", "--json"], capsys, monkeypatch)
    assert code == 0, err
    first = json.loads(out)
    assert first["releases"] == 1 and first["behind"] == 0 and first["content"]["artifacts"] == 1
    publish_tiny(deployed, tmp_path, "acme/cli", "1.1.0", seed=2)
    code, out, _ = run(["index"], capsys, monkeypatch)
    assert code == 0
    code, out, err = run(["index"], capsys, monkeypatch)
    assert "no new blocks" in err and "0 behind" in err
    code, out, _ = run(["index", "--json", "--reset"], capsys, monkeypatch)
    assert json.loads(out)["releases"] == 2


def test_index_against_a_dead_rpc_is_exit_15(registry_home, capsys, monkeypatch):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        monkeypatch.setenv("REGISTRY_RPC_URL", f"http://127.0.0.1:{port}")
        monkeypatch.setenv("REGISTRY_CONTRACT", "0x" + "11" * 20)
        code, _, err = run(["index"], capsys, monkeypatch)
    assert code == 15 and err.startswith("error:") and "Traceback" not in err


def test_diff_command(registry_data, capsys, monkeypatch):  # noqa: F811
    code, out, err = run(["diff", "acme/digits@1.0.0", "acme/digits@1.1.0", "--json"], capsys, monkeypatch)
    assert code == 0, err
    data = json.loads(out)
    assert data["a"]["ref"] == "acme/digits@1.0.0" and data["b"]["ref"] == "acme/digits@1.1.0"
    assert data["tensors"]["counts"] == {"added": 0, "removed": 0, "changed": 2, "unchanged": 0}
    assert data["provenance"]["steps"]["added"] == ["quantize"]
    code, out, err = run(["diff", "acme/digits@1.0.0", "acme/digits@1.1.0"], capsys, monkeypatch)
    assert code == 0 and "tensors" in err and "accuracy: 0.95 -> 0.94" in err

    code, _, err = run(["diff", "acme/digits@1.0.0", "acme/digits@9.0.0"], capsys, monkeypatch)
    assert code == 6 and "9.0.0" in err
    code, _, err = run(["diff", "acme/digits@1.0.0", "not-a-ref"], capsys, monkeypatch)
    assert code == 3


def test_diff_of_two_files_shows_tensors_and_ops(tmp_path, registry_home, capsys, monkeypatch):
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    def model(extra_op: bool, scale: float) -> bytes:
        w = numpy_helper.from_array(np.full((4, 2), scale, dtype=np.float32), "W")
        nodes = [helper.make_node("MatMul", ["x", "W"], ["h"])]
        inits = [w]
        if extra_op:
            inits.append(numpy_helper.from_array(np.ones(2, dtype=np.float32), "bias"))
            nodes.append(helper.make_node("Add", ["h", "bias"], ["y"]))
        else:
            nodes.append(helper.make_node("Relu", ["h"], ["y"]))
        graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                                  [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2])], inits)
        m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17 if not extra_op else 18)])
        m.ir_version = 8
        return m.SerializeToString()

    a, b = tmp_path / "a.onnx", tmp_path / "b.onnx"
    a.write_bytes(model(False, 1.0))
    b.write_bytes(model(True, 2.0))
    code, out, err = run(["diff", str(a), str(b), "--json"], capsys, monkeypatch)
    assert code == 0, err
    d = json.loads(out)
    assert d["ops"]["added"] == {"Add": 1} and d["ops"]["removed"] == {"Relu": 1}
    assert d["opsets"]["changed"] == [{"domain": "ai.onnx", "a": 17, "b": 18}]
    assert [t["name"] for t in d["tensors"]["added"]] == ["bias"] and d["tensors"]["bytes"]["added"] == 8
    assert d["tensors"]["changed"][0]["name"] == "W" and d["tensors"]["changed"][0]["changed"] == ["values"]
    (tmp_path / "junk.onnx").write_bytes(b"\x0a\xff\xff\xff\xff\x0f")
    code, _, err = run(["diff", str(a), str(tmp_path / "junk.onnx")], capsys, monkeypatch)
    assert code == 14 and "not an ONNX model" in err


def test_diff_refuses_bytes_the_store_altered(registry_data, capsys, monkeypatch):  # noqa: F811
    from registry.config import load_settings
    from registry.content.stores import open_store

    block = open_store(load_settings()).block_path(registry_data.child.result.record.artifact_cid)
    block.write_bytes(block.read_bytes()[:-1] + b"\x00")
    code, _, err = run(["diff", "acme/digits@1.0.0", "acme/digits@1.1.0"], capsys, monkeypatch)
    assert code == 10 and "Traceback" not in err


def test_card_draft_and_check(tmp_path, registry_home, capsys, monkeypatch):
    from registry.provenance import statement, write_provenance

    prov = tmp_path / "provenance.json"
    write_provenance(statement("ab" * 32, "model.onnx", {
        "base_model": {"sha256": "cd" * 32, "ref": "acme/digits@1.0.0"},
        "steps": [{"name": "quantize", "params": {"mode": "dynamic"}, "metrics_before": {"accuracy": 0.96},
                   "metrics_after": {"accuracy": 0.955}}],
        "metrics": {"accuracy": 0.955}}), prov)
    report = tmp_path / "report"
    report.mkdir()
    png = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
    (report / "accuracy_vs_size.png").write_bytes(png)
    card = tmp_path / "CARD.md"
    code, out, err = run(["card", "draft", "--provenance", str(prov), "-o", str(card), "--name", "acme/digits-int8",
                          "--report", str(report), "--json"], capsys, monkeypatch)
    assert code == 0, err
    drafted = json.loads(out)
    assert drafted["card"]["base_model_relation"] == "quantized"
    assert drafted["plots"][0]["title"] == "accuracy vs size"
    from registry.config import load_settings
    from registry.content.stores import open_store

    assert open_store(load_settings()).get_bytes(drafted["plots"][0]["cid"]) == png  # pinned
    code, _, err = run(["card", "draft", "--provenance", str(prov), "-o", str(card)], capsys, monkeypatch)
    assert code == 3 and "exists" in err  # never overwrites an edited card silently

    code, out, err = run(["card", "check", str(card), "--json"], capsys, monkeypatch)
    assert code == 0 and json.loads(out)["base_model"] == ["acme/digits@1.0.0"]
    code, _, err = run(["card", "check", str(card)], capsys, monkeypatch)
    assert code == 0 and "quantized" in err

    card.write_text("---\na: &x 1\nb: *x\n---\n")
    code, _, err = run(["card", "check", str(card)], capsys, monkeypatch)
    assert code == 3 and ("alias" in err or "anchor" in err)


def test_serve_command_serves_the_catalog(registry_data):  # noqa: F811
    """`registry serve` as a user runs it: a subprocess on a loopback port, stopped with SIGINT."""
    import signal

    from tests._browser import free_port

    port = free_port()
    proc = subprocess.Popen([sys.executable, "-c", "from registry.cli import main; main()", "serve", "--port",
                             str(port), "--interval", "0.5"], env=dict(os.environ), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                status = httpx.get(f"http://127.0.0.1:{port}/api/status", timeout=2)
                break
            except httpx.TransportError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise AssertionError(proc.stderr.read() if proc.poll() is not None else "serve did not start")
                time.sleep(0.2)
        assert status.status_code == 200 and status.json()["behind"] == 0
        models = httpx.get(f"http://127.0.0.1:{port}/api/models", timeout=10).json()
        assert [m["name"] for m in models["models"]] == ["acme/digits", "acme/digits-small"]
        rebinding = httpx.get(f"http://127.0.0.1:{port}/", headers={"host": "evil.example"}, timeout=10)
        assert rebinding.status_code == 400  # a DNS-rebinding page cannot read it
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_publish_with_a_missing_card_writes_a_draft_then_publishes_the_edited_card(deployed, tmp_path, capsys,
                                                                                   monkeypatch):
    """`registry publish --card CARD.md` before CARD.md exists: the draft is written from the
    provenance, nothing is signed or sent (exit 3); the publisher edits it and the same command
    publishes exactly the edited bytes, which the index and the explorer then show."""
    import hashlib

    from registry.card import parse_card
    from registry.provenance import statement, write_provenance
    from tests._verify_fixtures import tiny_onnx

    model = tmp_path / "model.onnx"
    model.write_bytes(tiny_onnx(40))
    prov = tmp_path / "provenance.json"
    write_provenance(statement(hashlib.sha256(model.read_bytes()).hexdigest(), "model.onnx", {
        "base_model": {"sha256": "cd" * 32, "ref": "acme/digits@1.0.0"},
        "recipe": {"task": "classification"},
        "steps": [{"name": "quantize", "params": {"mode": "static"}, "metrics_before": {"accuracy": 0.97},
                   "metrics_after": {"accuracy": 0.962}}],
        "metrics": {"accuracy": 0.962}}), prov)
    card = tmp_path / "CARD.md"
    args = ["publish", str(model), "--name", "acme/digits-int8", "--version", "1.0.0", "--provenance", str(prov),
            "--card", str(card)]
    code, _, err = run(args, capsys, monkeypatch)
    assert code == 3 and "nothing published" in err and "edit it" in err
    assert deployed.client.release_count("acme/digits-int8") == 0
    assert deployed.client.namespace_owner("acme") == (None, None)  # not even the namespace claim ran
    drafted = parse_card(card.read_bytes())
    assert drafted.base_model == ("acme/digits@1.0.0",) and drafted.base_model_relation == "quantized"
    assert "| 1 | quantize | mode=static | accuracy=0.97 | accuracy=0.962 |" in drafted.body
    assert drafted.title == "acme/digits-int8 1.0.0"

    edited = card.read_text().replace("license: other", "license: apache-2.0")
    card.write_text(edited)
    code, out, err = run([*args, "--json"], capsys, monkeypatch)
    assert code == 0, err
    published = json.loads(out)
    assert published["card_sha256"] == hashlib.sha256(edited.encode()).hexdigest()

    code, out, err = run(["index", "--json"], capsys, monkeypatch)
    assert code == 0 and json.loads(out)["content"]["cards"] == 1
    from registry.config import load_settings
    from registry.index import connect, index_path, queries

    conn = connect(index_path(load_settings()))
    model_page = queries.model(conn, "acme/digits-int8")
    assert model_page["license"] == "apache-2.0" and model_page["card"]["card"]["base_model_relation"] == "quantized"

    # without --provenance the draft comes from the minimal statement publish would anchor
    other = tmp_path / "OTHER.md"
    code, _, err = run(["publish", str(model), "--name", "acme/plain", "--version", "1.0.0", "--card", str(other)],
                       capsys, monkeypatch)
    assert code == 3 and "no --provenance" in err and parse_card(other.read_bytes()).base_model == ()
