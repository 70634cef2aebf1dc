"""Atomic writes: the old file or the new one, never half of either, and private from the first byte."""

from __future__ import annotations

import stat
from pathlib import Path
from typing import Iterator

import pytest

from registry.errors import InputError
from registry.fsutil import atomic_write


def test_bytes_and_chunks_land_whole(tmp_path: Path) -> None:
    seen: list[int] = []
    assert atomic_write(tmp_path / "a" / "b.bin", b"hello") == 5
    assert atomic_write(tmp_path / "c.bin", iter([b"ab", b"", b"cde"]), progress=seen.append) == 5
    assert (tmp_path / "a" / "b.bin").read_bytes() == b"hello"
    assert (tmp_path / "c.bin").read_bytes() == b"abcde"
    assert seen == [2, 0, 3]


def test_a_failing_stream_leaves_the_old_file_and_no_temp(tmp_path: Path) -> None:
    dest = tmp_path / "model.onnx"
    dest.write_bytes(b"old")

    def broken() -> Iterator[bytes]:
        yield b"new bytes that never finish"
        raise ConnectionError("node went away")

    with pytest.raises(ConnectionError):
        atomic_write(dest, broken())
    assert dest.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.onnx"]


def test_a_failing_stream_creates_nothing_when_there_was_nothing(tmp_path: Path) -> None:
    def broken() -> Iterator[bytes]:
        yield b"x"
        raise OSError("disk full")

    with pytest.raises(OSError):
        atomic_write(tmp_path / "new.bin", broken())
    assert list(tmp_path.iterdir()) == []


def test_mode_is_applied(tmp_path: Path) -> None:
    atomic_write(tmp_path / "key.json", b"{}", mode=0o600)
    atomic_write(tmp_path / "pub.json", b"{}")
    assert stat.S_IMODE((tmp_path / "key.json").stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "pub.json").stat().st_mode) == 0o644


def test_replacing_keeps_readers_of_the_old_file_whole(tmp_path: Path) -> None:
    dest = tmp_path / "state.json"
    atomic_write(dest, b"one")
    with open(dest, "rb") as reader:
        atomic_write(dest, b"two")
        assert reader.read() == b"one"  # the rename swapped inodes; the open file is intact
    assert dest.read_bytes() == b"two"


def test_bad_destinations_are_input_errors(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="is a directory"):
        atomic_write(tmp_path, b"x")
    not_a_dir = tmp_path / "file.txt"
    not_a_dir.write_bytes(b"")
    with pytest.raises(InputError, match="cannot write into"):
        atomic_write(not_a_dir / "x.bin", b"x")


# --------------------------------------------------------------------------------------------
# Reading small inputs: regular files only, bounded (issue 10)
# --------------------------------------------------------------------------------------------

import os as _os  # noqa: E402
import subprocess as _subprocess  # noqa: E402
import sys as _sys  # noqa: E402

import pytest as _pytest  # noqa: E402


def _special(tmp_path, kind: str):
    if kind == "fifo":
        path = tmp_path / "input.fifo"
        _os.mkfifo(path)
        return path
    if kind == "dir":
        return tmp_path
    if kind == "symlink to /dev/zero":
        path = tmp_path / "zero.toml"
        path.symlink_to("/dev/zero")
        return path
    return "/dev/zero"


@_pytest.mark.parametrize("kind", ["fifo", "/dev/zero", "dir", "symlink to /dev/zero"])
def test_read_small_file_refuses_what_is_not_a_regular_file(tmp_path, kind):
    from registry.errors import InputError
    from registry.fsutil import read_small_file

    with _pytest.raises(InputError, match="regular file"):
        read_small_file(_special(tmp_path, kind), limit=1024, what="policy")


def test_read_small_file_limits_size(tmp_path):
    from registry.errors import InputError
    from registry.fsutil import read_small_file

    big = tmp_path / "big"
    big.write_bytes(b"x" * 2048)
    with _pytest.raises(InputError, match="larger than 1024"):
        read_small_file(big, limit=1024, what="policy")
    assert read_small_file(big, limit=2048, what="policy") == b"x" * 2048


@_pytest.mark.parametrize("option", ["--policy", "--manifest", "--provenance"])
@_pytest.mark.parametrize("kind", ["fifo", "/dev/zero"])
def test_verify_inputs_that_hang_or_exhaust_memory_are_refused(tmp_path, option, kind, registry_home):
    """A FIFO hung `verify --policy` forever; /dev/zero read until memory ran out."""
    target = _special(tmp_path, kind)
    cmd = [_sys.executable, "-c", "from registry.cli import main; main()", "verify", "acme/m@1.0.0", "--offline",
           "--trust", "0x" + "11" * 20, option, str(target)]
    if option != "--manifest":
        manifest = tmp_path / "m.json"
        manifest.write_text("{}")
        cmd += ["--manifest", str(manifest)]
    out = _subprocess.run(cmd, capture_output=True, text=True, timeout=60, env=dict(_os.environ))
    assert out.returncode in (3, 13, 14), out.stdout + out.stderr
    assert "Traceback" not in out.stderr


@_pytest.mark.parametrize("kind", ["fifo", "/dev/zero"])
def test_recipe_and_policy_loaders_refuse_special_files(tmp_path, kind):
    from registry.compress.recipe import load_recipe
    from registry.errors import InputError
    from registry.policy import load_policy

    target = _special(tmp_path, kind)
    for loader in (load_recipe, load_policy):
        with _pytest.raises(InputError, match="regular file"):
            loader(target)


def test_machine_errors_are_storage_errors_naming_the_place(tmp_path: Path) -> None:
    import errno

    from registry.errors import StorageError
    from registry.fsutil import os_error, storage_error

    full = storage_error(OSError(errno.ENOSPC, "No space left on device"), "pull target", tmp_path)
    assert isinstance(full, StorageError) and full.exit_code == 16
    assert str(full) == f"pull target {tmp_path} is full (No space left on device)"
    assert "read-only" in str(storage_error(OSError(errno.EROFS, "Read-only file system"), "data dir", tmp_path))
    assert "not writable" in str(storage_error(OSError(errno.EACCES, "Permission denied"), "block store", tmp_path))
    assert isinstance(storage_error(OSError(errno.ENOTDIR, "Not a directory"), "x", tmp_path), InputError)
    assert isinstance(os_error(OSError(errno.EIO, "Input/output error", "f.bin")), StorageError)
    assert str(os_error(FileNotFoundError(errno.ENOENT, "No such file or directory", "m.onnx"))) == \
        "m.onnx: No such file or directory"


def test_a_failed_write_leaves_no_temp_and_the_old_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import errno
    import os as os_module

    from registry.errors import StorageError

    dest = tmp_path / "manifest.json"
    dest.write_bytes(b"old")
    real_fsync = os_module.fsync

    def full(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os_module, "fsync", full)
    with pytest.raises(StorageError, match="is full"):
        atomic_write(dest, b"new", where="manifest directory")
    monkeypatch.setattr(os_module, "fsync", real_fsync)
    assert dest.read_bytes() == b"old" and sorted(p.name for p in tmp_path.iterdir()) == ["manifest.json"]


def test_temp_names_carry_the_writer_pid(tmp_path: Path) -> None:
    import os as os_module

    from registry.fsutil import temp_prefix, writer_pid

    assert writer_pid(temp_prefix("a.b.onnx") + "k2j4x_9a.tmp") == os_module.getpid()
    assert writer_pid(".a.b.onnx.k2j4x_9a.tmp") is None and writer_pid("notes.tmp") is None


def test_an_os_error_escaping_a_command_is_one_line(monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    import errno
    import sys

    import registry.cli as cli

    def boom() -> None:
        raise OSError(errno.ENOSPC, "No space left on device", "/data/x")

    monkeypatch.setattr(cli, "app", boom)
    monkeypatch.setattr(sys, "argv", ["registry", "anything"])
    with pytest.raises(SystemExit) as exit_info:
        cli.main()
    assert exit_info.value.code == 16
    assert capsys.readouterr().err == "error: the file system holding /data/x is full (No space left on device)\n"
