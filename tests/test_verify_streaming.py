"""The one-pass hashing path: where the bytes are kept while they are hashed, what that costs in memory,
and that the pieces that moved to worker threads (leaf hashes, staging writes) still fail cleanly."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from registry.content import unixfs
from registry.content.streamhash import BackgroundSha256
from registry.errors import InputError

from tests._verify_fixtures import offline_release, tiny_onnx

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("profile", ["kubo-v0", "kubo-v1", "unixfs-v1-2025"])
def test_every_way_in_gives_the_same_cid(tmp_path, monkeypatch, profile):
    """Bytes in memory are hashed in place, a file through two reused buffers: same CID, digest, size,
    across batch and chunk boundaries."""
    monkeypatch.setattr(unixfs, "READ_BATCH", 2 * 1024 * 1024)  # several batches per file
    chunk = unixfs.PROFILES[profile].chunk_size
    for size in (0, 1, chunk - 1, chunk, chunk + 1, 5 * chunk + 7, 9 * 1024 * 1024 + 3):
        data = os.urandom(size)
        path = tmp_path / f"f{size}"
        path.write_bytes(data)
        from_file = unixfs.import_file(path, profile)
        from_bytes = unixfs.import_bytes(data, profile)
        from_chunks = unixfs.import_chunks([data[i:i + 100_003] for i in range(0, size, 100_003)], profile)
        assert from_file == from_bytes == from_chunks, (profile, size)
        assert from_file.sha256 == hashlib.sha256(data).digest() and from_file.size == size


def test_a_batch_may_not_end_inside_a_chunk():
    views = [memoryview(bytes(1000)), memoryview(bytes(1000))]
    with pytest.raises(ValueError, match="inside a chunk"):
        unixfs.import_batches(views, "kubo-v1")


def test_keep_sees_every_batch_in_order_after_it_is_hashed(monkeypatch):
    monkeypatch.setattr(unixfs, "READ_BATCH", 1024 * 1024)
    data = os.urandom(5 * 1024 * 1024 + 11)
    kept = bytearray()
    result = unixfs.import_batches(unixfs.read_batches(_Reader(data), unixfs.batch_size("kubo-v1")), "kubo-v1",
                                   keep=kept.extend)
    assert bytes(kept) == data and result == unixfs.import_bytes(data, "kubo-v1")


class _Reader:
    def __init__(self, data: bytes) -> None:
        self._view, self._pos = memoryview(data), 0

    def readinto(self, buf: memoryview) -> int:
        n = min(len(buf), len(self._view) - self._pos, 333_333)  # short reads, like a pipe
        buf[:n] = self._view[self._pos:self._pos + n]
        self._pos += n
        return n


def test_background_sha256_reports_the_keepers_failure():
    def full_disk(_view: memoryview) -> None:
        raise InputError("cannot write model.onnx: No space left on device")

    with BackgroundSha256(full_disk) as sha:
        sha.update(b"x" * 1000)
        with pytest.raises(InputError, match="No space left"):
            sha.digest()
    kept = bytearray()
    with BackgroundSha256() as sha:
        sha.update(b"abc")
        sha.reset(kept.extend)
        sha.update(b"def")
        assert sha.digest() == hashlib.sha256(b"def").digest() and bytes(kept) == b"def"


def test_a_declared_size_costs_no_memory_until_bytes_arrive(tmp_path):
    """The check keeps a single file in an anonymous map of the signed size that the kernel backs only
    as bytes arrive: a release declaring 1.9 GiB whose file holds a few KiB stays small (peak RSS read
    from the kernel, not from Python's allocator)."""
    data = tiny_onnx(3)
    model = tmp_path / "model.onnx"
    model.write_bytes(data)
    code = f"""
import resource, sys
sys.path.insert(0, {str(ROOT)!r})
from pathlib import Path
from tests._verify_fixtures import offline_release
rel = offline_release(Path({str(tmp_path)!r}), Path({str(model)!r}).read_bytes(),
                      overrides={{"artifact_size": 1900 * 1024 * 1024}})
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
report = rel.verify(data=None, file={str(model)!r})
assert report.exit_code == 10 and "truncated" in report.check("sha256").detail, report.to_json()
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert out.returncode == 0, out.stderr[-2000:]
    grown_kb = int(out.stdout.strip().splitlines()[-1])
    assert grown_kb < 64 * 1024, f"peak RSS grew by {grown_kb} KiB"


def test_single_file_load_hands_the_private_copy_to_the_runtime(tmp_path, monkeypatch):
    """load_verified writes the file into a fresh 0700 directory while hashing it, the runtime opens
    that file (no in-memory copy is handed over), and the directory is gone afterwards."""
    import registry.runtime as runtime
    from registry.verify import load_verified

    rel = offline_release(tmp_path)
    model = tmp_path / "model.onnx"
    model.write_bytes(rel.data)
    seen: list[tuple[Path, int, list[str]]] = []
    real = runtime.session_from_private_dir

    def spy(root, name, *args, **kwargs):
        seen.append((Path(root), os.stat(root).st_mode & 0o777, sorted(os.listdir(root))))
        assert (Path(root) / name).read_bytes() == rel.data
        return real(root, name, *args, **kwargs)

    def refuse(*_args, **_kwargs):
        raise AssertionError("the verified bytes were handed over from memory")

    monkeypatch.setattr(runtime, "session_from_private_dir", spy)
    monkeypatch.setattr(runtime, "session_from_bytes", refuse)
    session = load_verified(rel.ref, file=model, manifest=rel.manifest, trust=[rel.publisher.address],
                            offline=True, provenance=rel.provenance, settings=rel.settings)
    assert session.get_inputs()[0].name == "x"
    (root, mode, names), = seen
    assert mode == 0o700 and names == ["model.onnx"]
    assert root.parent == rel.settings.home / "tmp"
    assert not root.exists(), "the private copy must be removed once the session is built"


def test_a_single_file_that_fails_leaves_no_private_copy(tmp_path):
    from registry.verify import VerificationFailed, load_verified

    rel = offline_release(tmp_path)
    model = tmp_path / "model.onnx"
    model.write_bytes(rel.data[:-1] + bytes([rel.data[-1] ^ 1]))
    with pytest.raises(VerificationFailed):
        load_verified(rel.ref, file=model, manifest=rel.manifest, trust=[rel.publisher.address], offline=True,
                      provenance=rel.provenance, settings=rel.settings)
    private = rel.settings.home / "tmp"
    assert not private.exists() or list(private.iterdir()) == []


def test_disk_that_fills_during_a_single_file_pull_leaves_nothing(deployed, tmp_path):
    """The staging file is written by the hashing worker: its write error still ends the pull in one
    line, with nothing at the target (RLIMIT_FSIZE plays the full disk)."""
    from tests._verify_fixtures import publish_tiny, pull_with_a_full_disk

    pub = publish_tiny(deployed, tmp_path)
    dest = tmp_path / "device"
    dest.mkdir()
    out = pull_with_a_full_disk(pub.ref, dest, 100)
    assert out.returncode not in (0, 1), out.stderr[-2000:]
    assert "Traceback" not in out.stderr, out.stderr[-2000:]
    assert list(dest.iterdir()) == []


def test_chain_facts_are_read_while_the_bytes_are_hashed(tmp_path, monkeypatch):
    """Checks 2-4 wait on the RPC; they run beside the hashing instead of before it (the slow node's
    answer and the slow read overlap in time)."""
    import time

    from registry.verify import procedure

    rel = offline_release(tmp_path)
    record = procedure._record_from_manifest(rel.manifest)

    class SlowNode:
        chain_id, address, rpc_url = rel.manifest.chain_id, rel.manifest.contract, "http://slow.invalid"

        def get_by_id(self, release_id: bytes):
            assert release_id == record.id
            return record

        def may_publish(self, name: str, account: str) -> bool:
            spans["node"] = (time.monotonic(), time.monotonic() + 0.5)
            time.sleep(0.5)
            return account == record.publisher

    real = procedure.check_bytes

    def slow_read(*args, **kwargs):
        spans["read"] = (time.monotonic(), time.monotonic() + 0.5)
        time.sleep(0.5)
        return real(*args, **kwargs)

    spans: dict[str, tuple[float, float]] = {}
    monkeypatch.setattr(procedure, "check_bytes", slow_read)
    report = procedure.verify(rel.ref, data=rel.data, manifest=rel.manifest, client=SlowNode(),
                              provenance=rel.provenance, settings=rel.settings)
    assert report.ok, report.to_json()
    assert [c.name for c in report.checks][:6] == ["resolve", "not_revoked", "publisher_authorised", "signature",
                                                   "sha256", "cid"]
    (node_start, node_end), (read_start, read_end) = spans["node"], spans["read"]
    assert max(node_start, read_start) < min(node_end, read_end), f"no overlap: {spans}"


def test_a_read_that_fails_ahead_reaches_the_caller(monkeypatch):
    """The next batch is read on a helper thread: its OSError still comes out of the import, and the
    helper is gone afterwards."""
    import threading

    monkeypatch.setattr(unixfs, "READ_BATCH", 1024 * 1024)

    class Failing:
        def __init__(self) -> None:
            self.served = 0

        def readinto(self, buf: memoryview) -> int:
            if self.served >= 3 * 1024 * 1024:
                raise OSError(5, "Input/output error")
            buf[:] = bytes(len(buf))
            self.served += len(buf)
            return len(buf)

    with pytest.raises(OSError, match="Input/output error"):
        unixfs.import_stream(Failing(), "kubo-v1")
    assert not [t for t in threading.enumerate() if t.name.startswith("unixfs-read")]
