"""Fixtures for the verify/publish/pull suites: tiny real ONNX models and a published release."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest


def tiny_onnx(seed: int = 0, inputs: int = 8, outputs: int = 3, opset: int = 17) -> bytes:
    """A real ONNX model (Gemm + Relu) built with onnx.helper: no torch, milliseconds."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    w = numpy_helper.from_array(rng.standard_normal((inputs, outputs)).astype(np.float32), "W")
    b = numpy_helper.from_array(rng.standard_normal(outputs).astype(np.float32), "B")
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", inputs])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", outputs])
    graph = helper.make_graph(
        [helper.make_node("Gemm", ["x", "W", "B"], ["h"]), helper.make_node("Relu", ["h"], ["y"])],
        f"tiny{seed}", [x], [y], [w, b],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], producer_name="tests")
    model.ir_version = 8
    onnx.checker.check_model(model, full_check=True)
    return model.SerializeToString()


@dataclass
class Published:
    deployed: Any
    model: Path
    name: str
    version: str
    result: Any
    settings: Any

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.version}"

    @property
    def manifest_path(self) -> Path:
        return self.result.manifest_path


def publish_tiny(deployed: Any, tmp_path: Path, name: str = "acme/tiny", version: str = "1.0.0", seed: int = 0,
                 provenance: dict[str, Any] | None = None, parent: str | None = None) -> Published:
    from registry.config import load_settings
    from registry.provenance import statement, write_provenance
    from registry.publish import publish_model

    folder = tmp_path / f"{name.replace('/', '_')}-{version}"
    folder.mkdir(parents=True, exist_ok=True)
    model = folder / "model.onnx"
    model.write_bytes(tiny_onnx(seed))
    import hashlib

    digest = hashlib.sha256(model.read_bytes()).hexdigest()
    prov = folder / "provenance.json"
    write_provenance(statement(digest, "model.onnx", provenance or {"metrics": {"accuracy": 0.95}}), prov)
    settings = load_settings()
    result = publish_model(model, name, version, provenance_path=prov, parent=parent, settings=settings,
                           signer=deployed.publisher, client=deployed.client)
    return Published(deployed, model, name, version, result, settings)


@pytest.fixture
def published(deployed: Any, tmp_path: Path) -> Published:
    return publish_tiny(deployed, tmp_path)
