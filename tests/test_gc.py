"""registry gc and the cheap sweep at each command: leftovers of dead writers go, a live writer's
files and blocks stay, and no block a pin or a release needs is ever deleted."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from registry.content.local import LocalStore
from registry.errors import ChainError
from registry.gc import collect_garbage, is_stale_temp, quick_sweep
from registry.publish import publish_model
from tests._verify_fixtures import publish_tiny, tiny_onnx

ENTRY = "from registry.cli import main; main()"


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def _temp(folder: Path, name: str, pid: int, size: int = 1000, suffix: str = ".tmp", age_s: float = 0) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f".{name}.p{pid}.abcd1234{suffix}"
    path.write_bytes(b"x" * size)
    if age_s:
        past = time.time() - age_s
        os.utime(path, (past, past))
    return path


def test_stale_temp_rules(tmp_path: Path) -> None:
    dead = _temp(tmp_path, "model.onnx", _dead_pid())
    mine = _temp(tmp_path, "model.onnx", os.getpid())  # this process is alive and was already running
    sleeper = subprocess.Popen(["sleep", "30"])
    try:
        recycled = _temp(tmp_path, "m.onnx", sleeper.pid, age_s=3600)  # pid now names a younger process
        assert is_stale_temp(dead) and not is_stale_temp(mine) and is_stale_temp(recycled)
    finally:
        sleeper.kill()
        sleeper.wait()
    old_legacy = tmp_path / ".model.onnx.k3j9x_2q.tmp"
    old_legacy.write_bytes(b"x")
    os.utime(old_legacy, (time.time() - 7200, time.time() - 7200))
    young_legacy = tmp_path / ".model.onnx.a8f7e6d5.part"
    young_legacy.write_bytes(b"x")
    assert is_stale_temp(old_legacy) and not is_stale_temp(young_legacy)
    for never in ("notes.tmp", ".notes.tmp", "model.onnx", ".model.onnx.p1.tmp.keep"):
        (tmp_path / never).write_bytes(b"x")
        assert not is_stale_temp(tmp_path / never), never
    link = tmp_path / f".x.p{_dead_pid()}.abcdabcd.tmp"
    link.symlink_to(tmp_path / "notes.tmp")
    assert not is_stale_temp(link)


def test_quick_sweep_cleans_the_data_dir_and_named_dirs_but_not_block_shards(tmp_path: Path) -> None:
    home = tmp_path / "home"
    dead = _dead_pid()
    in_chain = _temp(home / "chain", "state.snapshot", dead)
    in_store_tmp = _temp(home / "blocks" / ".tmp", "bafkrei", dead)
    in_shard = _temp(home / "blocks" / "ab", "bafkrei", dead)
    in_target = _temp(tmp_path / "models", "acme+m@1.0.0.onnx", dead, suffix=".part", size=5000)
    freed = quick_sweep(home, [tmp_path / "models"])
    assert freed == 7000
    assert not in_chain.exists() and not in_store_tmp.exists() and not in_target.exists()
    assert in_shard.exists()  # the cheap pass never walks the shards; `registry gc` does
    assert quick_sweep(tmp_path / "does-not-exist") == 0


def test_a_killed_writer_leaves_a_temp_that_the_next_command_removes(tmp_path: Path) -> None:
    """A real writer, SIGKILLed in the middle of an atomic write."""
    target = tmp_path / "out"
    target.mkdir()
    code = (
        "import os, signal\n"
        "from registry.fsutil import atomic_write\n"
        "def chunks():\n"
        "    yield b'x' * 100000\n"
        "    os.kill(os.getpid(), signal.SIGKILL)\n"
        f"atomic_write({str(target / 'model.onnx')!r}, chunks())\n"
    )
    assert subprocess.run([sys.executable, "-c", code]).returncode == -9
    left = [p for p in target.iterdir()]
    assert len(left) == 1 and left[0].name.startswith(".model.onnx.p") and is_stale_temp(left[0])
    env = {**os.environ, "REGISTRY_HOME": str(tmp_path / "home")}
    ran = subprocess.run([sys.executable, "-c", ENTRY, "gc", "--dir", str(target), "--json"], env=env,
                         capture_output=True, text=True, timeout=120)
    assert ran.returncode == 0, ran.stderr
    report = json.loads(ran.stdout)
    assert report["temp_bytes"] == 100000 and report["bytes_freed"] >= 100000
    assert not list(target.iterdir())


def _block_count(store: LocalStore) -> int:
    return sum(1 for shard in store.root.iterdir() if shard.is_dir() and len(shard.name) == 2
               for _ in shard.iterdir())


def test_gc_removes_the_blocks_of_a_failed_publish_only(deployed, tmp_path: Path) -> None:
    from registry.config import load_settings
    from registry.content.stores import open_store

    pub = publish_tiny(deployed, tmp_path)  # kept: pinned and on chain
    store = open_store(load_settings())
    assert isinstance(store, LocalStore)
    kept = _block_count(store)
    other = tmp_path / "other.onnx"
    other.write_bytes(tiny_onnx(77, inputs=500, outputs=300))  # a valid model of several blocks (600 kB)
    with pytest.raises(ChainError, match="already published with different content"):
        publish_model(other, pub.name, pub.version, signer=deployed.publisher, client=deployed.client, store=store)
    assert _block_count(store) > kept
    assert len(store.pins()) == 2  # the failed publish pinned nothing

    # this process wrote those blocks and is still alive: a concurrent gc must keep them
    protected = collect_garbage(load_settings())
    assert protected.blocks == [] and protected.kept_blocks == _block_count(store)

    lease = next((store.root / "writers").iterdir())
    lease.rename(lease.with_name(f"{_dead_pid()}.1"))  # as if this process had exited
    dry = collect_garbage(load_settings(), dry_run=True)
    assert dry.blocks and _block_count(store) > kept  # a dry run deletes nothing
    done = collect_garbage(load_settings())
    assert len(done.blocks) == len(dry.blocks) and done.bytes_freed >= 600_000
    assert _block_count(store) == kept and done.roots >= 2
    assert store.get_bytes(pub.result.artifact.cid) == pub.model.read_bytes()  # the release is whole


def test_gc_keeps_released_content_even_unpinned(deployed, tmp_path: Path) -> None:
    """A publish killed after the transaction but before the pin: the release on chain is a root."""
    from registry.config import load_settings
    from registry.content.stores import open_store

    pub = publish_tiny(deployed, tmp_path)
    store = open_store(load_settings())
    for cid in store.pins():
        store.unpin(cid)
    for lease in (store.root / "writers").iterdir():
        lease.rename(lease.with_name(f"{_dead_pid()}.1"))
    report = collect_garbage(load_settings())
    assert report.blocks == []
    assert store.get_bytes(pub.result.artifact.cid) == pub.model.read_bytes()


def test_gc_deletes_no_block_when_the_chain_cannot_be_read(registry_home, monkeypatch, tmp_path: Path) -> None:
    from registry.config import load_settings
    from registry.content.stores import open_store

    monkeypatch.setenv("REGISTRY_RPC_URL", "http://127.0.0.1:9")  # nothing listens on the discard port
    monkeypatch.setenv("REGISTRY_CHAIN_ID", "31337")
    monkeypatch.setenv("REGISTRY_CONTRACT", "0x" + "11" * 20)
    monkeypatch.setenv("REGISTRY_CONFIRMATIONS", "0")
    settings = load_settings()
    store = open_store(settings)
    store.put_bytes(os.urandom(1000))  # unpinned
    for lease in (store.root / "writers").iterdir():
        lease.rename(lease.with_name(f"{_dead_pid()}.1"))
    report = collect_garbage(settings, connect=_unreachable)
    assert report.blocks == [] and report.skipped and "no block was deleted" in report.skipped[0]
    assert _block_count(store) == 1


def _unreachable(settings):
    from registry.errors import UnreachableError

    raise UnreachableError("RPC node did not answer")


def test_gc_cli_summary(deployed, tmp_path: Path, capsys, monkeypatch) -> None:
    from registry.cli import main
    from registry.config import load_settings
    from registry.content.stores import open_store

    store = open_store(load_settings())
    store.put_bytes(os.urandom(3000))
    for lease in (store.root / "writers").iterdir():
        lease.rename(lease.with_name(f"{_dead_pid()}.1"))
    monkeypatch.setattr(sys, "argv", ["registry", "gc", "--dry-run"])
    with pytest.raises(SystemExit) as exit_info:
        main()
    assert exit_info.value.code == 0
    err = capsys.readouterr().err
    assert "would remove 0 stale temp files" in err and "1 unreachable blocks" in err and "would free" in err
    assert _block_count(store) == 1
    monkeypatch.setattr(sys, "argv", ["registry", "gc"])
    with pytest.raises(SystemExit):
        main()
    assert "freed 2.9 KiB" in capsys.readouterr().err and _block_count(store) == 0
