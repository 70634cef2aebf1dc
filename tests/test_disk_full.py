"""A full disk, for real: a small tmpfs under the data dir, the pull target and the manifest
directory. Each ends in one line naming what filled up and exit 16, never a traceback; when the
chain part succeeded the line says the release is on chain and how to finish."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Iterator

import pytest

from tests._verify_fixtures import publish_tiny, tiny_onnx

ENTRY = "from registry.cli import main; main()"


@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[Path]:
    mount = tmp_path / "small"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount)], capture_output=True)
    if done.returncode != 0:
        pytest.skip("cannot mount a tmpfs here (needs root): disk-full tests skipped")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True)


def fill(mount: Path, leave: int = 0) -> Path:
    """Fills the file system, then frees about ``leave`` bytes."""
    filler = mount / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    try:
        for size in (1 << 16, 512, 1):
            try:
                while True:
                    os.write(fd, b"\0" * size)
            except OSError:
                pass
    finally:
        os.close(fd)
    if leave:
        os.truncate(filler, max(0, filler.stat().st_size - leave))
    return filler


def run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", ENTRY, *args], env=env, capture_output=True, text=True,
                          timeout=180)


def error_line(result: subprocess.CompletedProcess[str]) -> str:
    """The one error line; progress notes may precede it (e.g. a first publish claiming its namespace)."""
    lines = [line for line in result.stderr.splitlines() if line.strip() and not line.startswith("WARNING")]
    assert "Traceback" not in result.stderr, result.stderr
    errors = [line for line in lines if line.startswith("error: ")]
    assert len(errors) == 1 and lines[-1] == errors[0], result.stderr
    return errors[0]


def test_full_block_store_names_the_store_not_the_model(deployed, small_fs: Path, tmp_path: Path) -> None:
    env = {**os.environ, "REGISTRY_HOME": str(small_fs / "home")}
    model = tmp_path / "model.onnx"
    model.write_bytes(tiny_onnx(3) + os.urandom(3 << 20))  # larger than what is left
    fill(small_fs, leave=256 << 10)
    result = run(["publish", str(model), "--name", "acme/full", "--version", "1.0.0"], env)
    line = error_line(result)
    assert result.returncode == 16
    assert "block store" in line and "is full" in line and "cannot read" not in line
    assert deployed.client.release_count("acme/full") == 0  # nothing anchored with missing blocks
    assert not list(tmp_path.glob("*.release.json"))


def test_full_manifest_directory_says_the_release_is_on_chain(deployed, small_fs: Path, tmp_path: Path) -> None:
    env = {**os.environ}
    folder = small_fs / "models"
    folder.mkdir()
    model = folder / "model.onnx"
    model.write_bytes(tiny_onnx(4))
    filler = fill(small_fs)
    result = run(["publish", str(model), "--name", "acme/full", "--version", "2.0.0"], env)
    line = error_line(result)
    assert result.returncode == 16
    assert "manifest directory" in line and "is full" in line
    assert "acme/full@2.0.0 IS published on chain (transaction 0x" in line
    assert "run the same `registry publish` again" in line
    assert deployed.client.release_count("acme/full") == 1
    assert not list(folder.glob("*.release.json")) and not list(folder.glob(".*.tmp"))

    filler.unlink()  # space again: the same command finishes the job without a second release
    again = run(["publish", str(model), "--name", "acme/full", "--version", "2.0.0", "--json"], env)
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["already_published"] is True
    assert (folder / "acme+full@2.0.0.release.json").exists()
    assert deployed.client.release_count("acme/full") == 1


def test_full_pull_target_leaves_nothing_behind(deployed, small_fs: Path, tmp_path: Path) -> None:
    pub = publish_tiny(deployed, tmp_path)
    target = small_fs / "models"
    target.mkdir()
    fill(small_fs)
    result = run(["pull", pub.ref, "-o", str(target)], dict(os.environ))
    line = error_line(result)
    assert result.returncode == 16 and "pull target" in line and "is full" in line
    assert [p.name for p in target.iterdir()] == []  # no model, no manifest, no .part


def test_full_data_dir_while_saving_the_local_chain(small_fs: Path, tmp_path: Path, registry_home: Path) -> None:
    """The journal append fails: the command does not acknowledge, says the running chain has it and
    how to save it; after freeing space, `chain up` saves it and a re-run completes the publish."""
    from registry.chain import devnet

    home = small_fs / "home"
    (tmp_path / "blocks").mkdir()
    home.mkdir()
    (home / "blocks").symlink_to(tmp_path / "blocks")  # only the chain's files are on the small fs
    env = {k: v for k, v in os.environ.items() if not k.startswith("REGISTRY_")}
    env.update(REGISTRY_HOME=str(home), REGISTRY_DEVNET_PORT=str(devnet.free_port()))
    model = tmp_path / "model.onnx"
    model.write_bytes(tiny_onnx(5))
    first = tmp_path / "first.onnx"
    first.write_bytes(tiny_onnx(6))
    try:
        assert run(["publish", str(first), "--name", "acme/dd", "--version", "1.0.0"], env).returncode == 0
        # tmpfs allocates whole pages: an append that fits in the slack of the journal's last page
        # needs no new space and succeeds on a full disk. Publish until the slack is too small.
        journal = home / "chain" / "journal.jsonl"
        for extra in range(1, 4):
            entry = len(journal.read_bytes().rstrip(b"\n").rsplit(b"\n", 1)[-1]) + 1
            if -journal.stat().st_size % 4096 < entry - 128:
                break
            extra_model = tmp_path / f"extra{extra}.onnx"
            extra_model.write_bytes(tiny_onnx(100 + extra))
            assert run(["publish", str(extra_model), "--name", "acme/dd", "--version", f"0.{extra}.0"],
                       env).returncode == 0
        filler = fill(small_fs)
        result = run(["publish", str(model), "--name", "acme/dd", "--version", "1.1.0"], env)
        line = error_line(result)
        assert result.returncode == 16
        assert "data dir" in line and "is full" in line and "the running local chain still has it" in line
        assert "registry chain up" in line
        assert not list(tmp_path.glob("*.release.json")) or (tmp_path / "acme+dd@1.0.0.release.json").exists()
        assert not (tmp_path / "acme+dd@1.1.0.release.json").exists()  # not acknowledged

        filler.unlink()
        up = run(["chain", "up"], env)
        assert up.returncode == 0, up.stderr
        node = json.loads((home / "chain" / "node.json").read_text())
        os.kill(node["pid"], 9)  # what was saved by `chain up` survives a kill
        again = run(["publish", str(model), "--name", "acme/dd", "--version", "1.1.0", "--json"], env)
        assert again.returncode == 0, again.stderr
        assert json.loads(again.stdout)["already_published"] is True
    finally:
        run(["chain", "down", "--force"], env)
