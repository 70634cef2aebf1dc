"""Verified models are loaded with no readable directory around them (registry.runtime)."""

from __future__ import annotations

import numpy as np
import onnxruntime
import pytest
from onnx import TensorProto, helper

from registry.errors import InputError, PolicyError
from registry.runtime import session_from_bytes, session_from_tree

from tests._verify_fixtures import tiny_onnx

SECRET = b"SECRETSECRETSECR"


def _leaky_model(location: str) -> bytes:
    """A Constant whose sparse_value reads 16 bytes of ``location`` (what the ONNX check now refuses)."""
    values = TensorProto()
    values.name, values.data_type = "v", TensorProto.FLOAT
    values.dims.extend([4])
    values.data_location = TensorProto.EXTERNAL
    for key, value in (("location", location), ("offset", "0"), ("length", "16")):
        entry = values.external_data.add()
        entry.key, entry.value = key, value
    sparse = helper.make_sparse_tensor(values, helper.make_tensor("i", TensorProto.INT64, [4], [0, 1, 2, 3]), [4])
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [4])
    graph = helper.make_graph([helper.make_node("Constant", [], ["c"], sparse_value=sparse),
                               helper.make_node("Add", ["x", "c"], ["y"])], "g", [x], [y])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model.SerializeToString()


def test_plain_bytes_loading_reads_the_current_directory(tmp_path, monkeypatch):
    """The threat, shown with onnxruntime alone: bytes resolve external data against the cwd."""
    (tmp_path / ".env").write_bytes(SECRET)
    monkeypatch.chdir(tmp_path)
    session = onnxruntime.InferenceSession(_leaky_model(".env"), providers=["CPUExecutionProvider"])
    assert session.run(None, {"x": np.zeros(4, np.float32)})[0].tobytes() == SECRET


@pytest.mark.parametrize("location", [".env", "../.env", "/ABS/.env"])
def test_session_from_bytes_gives_onnxruntime_nothing_to_read(tmp_path, monkeypatch, location):
    (tmp_path / ".env").write_bytes(SECRET)
    work = tmp_path / "work"
    work.mkdir()
    (work / ".env").write_bytes(SECRET)
    monkeypatch.chdir(work)
    with pytest.raises(PolicyError, match="onnxruntime refused"):
        session_from_bytes(_leaky_model(location.replace("/ABS", str(tmp_path))))


def test_session_from_bytes_runs_a_verified_model_and_leaves_no_directory(tmp_path, monkeypatch):
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    session = session_from_bytes(tiny_onnx())
    assert session.run(None, {"x": np.ones((2, 8), np.float32)})[0].shape == (2, 3)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("name", ["/etc/passwd", "../x", "a//b", "", "a/./b", "a\\b"])
def test_session_from_tree_refuses_paths_that_leave_the_directory(name):
    with pytest.raises(InputError):
        session_from_tree({"model.onnx": tiny_onnx(), name: b"x"}, "model.onnx")
