"""The CLI on directories: ``registry cid DIR``, ``ipfs put/get`` of a tree, and progress per file on a terminal."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from registry.content.tree import import_tree

from tests._tree_fixtures import onnx_with_external_data
from tests.test_content_cli import run  # noqa: F401  (same entry-point helper)


@pytest.fixture(autouse=True)
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("REGISTRY_HOME", str(tmp_path / "home"))
    for var in ("REGISTRY_IPFS_API", "REGISTRY_PROFILE", "REGISTRY_CID_PROFILE"):
        monkeypatch.delenv(var, raising=False)
    return tmp_path / "home"


def _tree(tmp_path: Path) -> Path:
    folder = tmp_path / "model"
    onnx_with_external_data(folder, n=100_000, extra={"tokenizer/vocab.txt": b"a\nb\n"})
    return folder


def test_cid_of_a_directory(monkeypatch, capsys, tmp_path):
    folder = _tree(tmp_path)
    code, out, _ = run(monkeypatch, capsys, "cid", str(folder), "--profile", "kubo-v0", "--json")
    assert code == 0
    doc = json.loads(out)
    expected = import_tree(folder, "kubo-v0")
    assert (doc["cid"], doc["sha256"], doc["kind"]) == (str(expected.cid), expected.sha256.hex(), "directory")
    assert [f["path"] for f in doc["files"]] == ["model.onnx", "model.onnx.data", "tokenizer/vocab.txt"]


def test_cid_of_a_directory_with_a_symlink_is_one_line(monkeypatch, capsys, tmp_path):
    folder = _tree(tmp_path)
    (folder / "evil").symlink_to("/etc/passwd")
    code, out, err = run(monkeypatch, capsys, "cid", str(folder))
    assert code == 3
    assert err.count("\n") == 1 and "symbolic link" in err


def test_ipfs_put_and_get_a_tree(monkeypatch, capsys, tmp_path):
    folder = _tree(tmp_path)
    code, out, _ = run(monkeypatch, capsys, "ipfs", "put", str(folder), "--json")
    assert code == 0
    put = json.loads(out)
    dest = tmp_path / "copy"
    code, out, err = run(monkeypatch, capsys, "ipfs", "get", put["cid"], "-o", str(dest), "--json")
    assert code == 0, err
    got = json.loads(out)
    assert got["sha256"] == put["sha256"] and got["files"] == 3
    for path in folder.rglob("*"):
        if path.is_file():
            assert (dest / path.relative_to(folder)).read_bytes() == path.read_bytes()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
    code, _, err = run(monkeypatch, capsys, "ipfs", "get", put["cid"], "-o", str(dest))
    assert code == 3 and "already exists" in err
    # export and re-import the whole tree as a CAR
    car = tmp_path / "tree.car"
    assert run(monkeypatch, capsys, "ipfs", "export-car", put["cid"], "-o", str(car))[0] == 0
    monkeypatch.setenv("REGISTRY_HOME", str(tmp_path / "home2"))
    code, out, err = run(monkeypatch, capsys, "ipfs", "import-car", str(car), "--json")
    assert code == 0, err
    assert json.loads(out)["roots"] == [put["cid"]]


def test_progress_per_file_on_a_terminal_and_quiet_with_json(tmp_path):
    import pty

    folder = _tree(tmp_path)
    env = dict(os.environ, REGISTRY_HOME=str(tmp_path / "home"), COLUMNS="160")

    def run_on_tty(*args: str) -> tuple[int, str]:
        master, slave = pty.openpty()
        proc = subprocess.Popen([sys.executable, "-c", "from registry.cli import main; main()", *args],
                                stdout=subprocess.DEVNULL, stderr=slave, env=env)
        os.close(slave)
        chunks = []
        while True:
            try:
                data = os.read(master, 65536)
            except OSError:
                break
            if not data:
                break
            chunks.append(data)
        os.close(master)
        return proc.wait(timeout=60), b"".join(chunks).decode(errors="replace")

    code, screen = run_on_tty("cid", str(folder))
    assert code == 0
    assert "model.onnx.data" in screen and "hashing model" in screen
    code, screen = run_on_tty("cid", str(folder), "--json")
    assert code == 0 and "model.onnx.data" not in screen and screen.strip() == ""


def test_kubo_put_tree_checks_the_node_cid(tmp_path):
    """`ipfs put DIR` to a Kubo node: the node's tree CID must be ours; a node that answers another is refused."""
    from registry.content.kubo import KuboStore
    from registry.errors import IntegrityError

    from tests._content_fixtures import FakeKubo

    folder = _tree(tmp_path)
    server = FakeKubo(tmp_path / "kubo-blocks")
    try:
        store = KuboStore(server.url, profile="kubo-v0", retries=0)
        result = store.put_tree(folder)
        assert result.cid == import_tree(folder, "kubo-v0").cid
        assert server.add_params[-1]["cid-version"] == "0"
        # the node holds the tree: read it back, verified block by block
        paths = sorted(item.path for item in store.open_tree(result.cid))
        assert paths == result.files.paths
        server.mode = "wrong-bytes-add"
        with pytest.raises(IntegrityError, match="refusing the node's CID"):
            store.put_tree(folder)
    finally:
        server.close()
