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
                 provenance: dict[str, Any] | None = None, parent: str | None = None, signer: Any = None,
                 card: bytes | None = None) -> Published:
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
                           signer=signer or deployed.publisher, client=deployed.client, card=card)
    return Published(deployed, model, name, version, result, settings)


@pytest.fixture
def published(deployed: Any, tmp_path: Path) -> Published:
    return publish_tiny(deployed, tmp_path)


# --------------------------------------------------------------------------------------------
# Offline releases: signed manifests without a chain (fast enough for hypothesis)
# --------------------------------------------------------------------------------------------

OFFLINE_CHAIN_ID = 31337
OFFLINE_CONTRACT = "0x5FbDB2315678afecb367f032d93F642f64180aa3"


@dataclass
class Offline:
    data: bytes
    provenance: bytes
    manifest: Any
    publisher: Any
    settings: Any

    @property
    def ref(self) -> str:
        return self.manifest.ref

    def verify(self, **kwargs: Any) -> Any:
        from registry.verify import verify

        args = dict(data=self.data, manifest=self.manifest, trust=[self.publisher.address], offline=True,
                    provenance=self.provenance, settings=self.settings)
        args.update(kwargs)
        return verify(self.ref, **args)


def offline_release(home: Path, data: bytes | None = None, *, signer: Any = None, claimed: str | None = None,
                    name: str = "acme/offline", version: str = "1.0.0", provenance_doc: dict[str, Any] | None = None,
                    provenance_bytes: bytes | None = None, chain_id: int = OFFLINE_CHAIN_ID,
                    contract: str = OFFLINE_CONTRACT, overrides: dict[str, Any] | None = None) -> Offline:
    """A release of ``data`` signed by ``signer`` (a fresh key by default), with no chain involved."""
    import dataclasses

    from eth_account import Account

    from registry.config import load_settings
    from registry.content.cids import cid_bytes_v1
    from registry.content.unixfs import import_bytes
    from registry.manifest import Manifest
    from registry.provenance import canonical_json, statement
    from registry.release import Release, sign_release

    data = tiny_onnx(1) if data is None else data
    signer = signer or Account.create()
    art = import_bytes(data, "kubo-v1")
    if provenance_bytes is None:
        doc = provenance_doc or statement(art.sha256.hex(), "model.onnx", {"metrics": {"accuracy": 0.97}})
        provenance_bytes = canonical_json(doc)
    prov = import_bytes(provenance_bytes, "kubo-v1")
    release = Release(name=name, version=version, artifact_sha256=art.sha256, artifact_cid=cid_bytes_v1(art.cid),
                      artifact_size=art.size, provenance_sha256=prov.sha256, provenance_cid=cid_bytes_v1(prov.cid),
                      nonce=0, deadline=2**40)
    if overrides:
        release = dataclasses.replace(release, **overrides)
    signature = sign_release(release, signer, chain_id, contract)
    manifest = Manifest(release=release, signature=signature, publisher=claimed or signer.address,
                        chain_id=chain_id, contract=contract, cid_profile="kubo-v1")
    settings = load_settings(env={"REGISTRY_HOME": str(home)})
    return Offline(data=data, provenance=provenance_bytes, manifest=manifest, publisher=signer, settings=settings)


def pull_with_a_full_disk(ref: str, dest: Path, limit: int) -> Any:
    """``registry pull REF -o DEST`` in a subprocess whose writes fail past ``limit`` bytes, as a
    full disk would (RLIMIT_FSIZE, with SIGXFSZ ignored so the write returns EFBIG)."""
    import os
    import subprocess
    import sys

    script = (
        "import resource, signal, sys\n"
        "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
        f"resource.setrlimit(resource.RLIMIT_FSIZE, ({limit}, {limit}))\n"
        "from registry.cli import main\n"
        f"sys.argv = ['registry', 'pull', {ref!r}, '-o', {str(dest)!r}]\n"
        "main()\n"
    )
    return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                          env=dict(os.environ))
