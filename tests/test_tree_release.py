"""Directory releases end to end on a real chain: publish, verify, pull, load_verified, and the bad inputs
of issue 16 (one clear failure, nothing left behind)."""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from registry.errors import InputError, PolicyError
from registry.policy import Policy
from registry.pull import pull
from registry.verify import VerificationFailed, load_verified, verify

from tests._tree_fixtures import onnx_with_external_data, set_external


def _publish(deployed, folder: Path, version: str = "1.0.0", name: str = "acme/ext"):
    from registry.config import load_settings
    from registry.publish import publish_model

    settings = load_settings()
    return publish_model(folder, name, version, settings=settings, signer=deployed.publisher, client=deployed.client,
                         manifest_dir=folder.parent)


def _tree(tmp_path: Path, n: int = 4096) -> Path:
    folder = tmp_path / "model"
    onnx_with_external_data(folder, n=n, extra={"tokenizer/vocab.txt": b"a\nb\n", "config.json": b'{"k": 1}'})
    return folder


def test_publish_verify_pull_and_load_a_directory(deployed, tmp_path):
    folder = _tree(tmp_path)
    pub = _publish(deployed, folder)
    ref = pub.record.ref
    assert pub.manifest.file_list_cid is not None
    assert pub.record.artifact_size == sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
    assert pub.record.artifact_sha256 == pub.artifact.files.sha256
    report = verify(ref, file=folder, manifest=pub.manifest_path, client=deployed.client)
    assert report.ok, report.to_json()
    assert report.check("onnx").evidence["external_data"]["model.onnx"][0]["path"] == "model.onnx.data"
    # from the store, block by block
    assert verify(ref, client=deployed.client).ok
    dest = tmp_path / "device"
    result = pull(ref, dest, client=deployed.client)
    assert result.kind == "directory"
    for path in folder.rglob("*"):
        if path.is_file():
            assert (result.model_path / path.relative_to(folder)).read_bytes() == path.read_bytes()
    assert not [p for p in dest.iterdir() if p.name.startswith(".")], "staging left behind"
    assert verify(ref, file=result.model_path, client=deployed.client).ok  # the manifest is found beside it
    x = np.ones(4096, np.float32)
    expected = x + np.frombuffer((folder / "model.onnx.data").read_bytes(), np.float32)
    session = load_verified(ref, file=folder, client=deployed.client)
    assert np.allclose(session.run(None, {"X": x})[0], expected)


def test_load_verified_of_a_tree_uses_a_private_copy_and_removes_it(deployed, tmp_path, monkeypatch):
    import registry.verify.artifact as artifact

    folder = _tree(tmp_path)
    pub = _publish(deployed, folder)
    seen = []
    real = artifact.Capture.tree_sink

    def spy(self):
        sink = real(self)
        seen.append(sink)
        return sink

    monkeypatch.setattr(artifact.Capture, "tree_sink", spy)
    session = load_verified(pub.record.ref, file=folder, client=deployed.client)
    assert session.run(None, {"X": np.zeros(4096, np.float32)})[0].shape == (4096,)
    from registry.content.sinks import DiskSink

    assert isinstance(seen[0], DiskSink)
    assert oct(os.stat(seen[0].path.parent).st_mode)  # the parent exists
    assert not seen[0].path.exists(), "the private copy must be removed once the session is built"


def test_the_loaded_bytes_are_the_verified_bytes(deployed, tmp_path):
    """Swapping the external data after the check cannot reach the runtime (no path is re-read)."""
    folder = _tree(tmp_path)
    pub = _publish(deployed, folder)
    from registry.verify import procedure

    original = procedure.check_onnx

    def swap_then_check(*args, **kwargs):
        (folder / "model.onnx.data").write_bytes(bytes(4096 * 4))
        return original(*args, **kwargs)

    procedure.check_onnx = swap_then_check
    try:
        session = load_verified(pub.record.ref, file=folder, client=deployed.client)
    finally:
        procedure.check_onnx = original
    out = session.run(None, {"X": np.zeros(4096, np.float32)})[0]
    assert np.any(out != 0), "the runtime saw the swapped (all-zero) weights"


@pytest.mark.parametrize("change", ["added", "missing", "changed", "renamed"])
def test_tree_that_disagrees_with_the_file_list_is_refused_file_by_file(deployed, tmp_path, change):
    folder = _tree(tmp_path)
    pub = _publish(deployed, folder)
    if change == "added":
        (folder / "extra.bin").write_bytes(b"x")
    elif change == "missing":
        (folder / "config.json").unlink()
    elif change == "changed":
        (folder / "tokenizer" / "vocab.txt").write_bytes(b"a\nc\n")
    else:
        os.rename(folder / "config.json", folder / "config2.json")
    report = verify(pub.record.ref, file=folder, manifest=pub.manifest_path, client=deployed.client)
    assert report.exit_code == 10
    detail = report.check("sha256").detail
    word = {"renamed": "missing"}.get(change, change)
    assert word in detail, detail
    assert report.check("onnx").status == "skip"


def test_symlink_fifo_and_device_in_a_tree_are_refused_at_publish_and_verify(deployed, tmp_path):
    from registry.publish import publish_model

    folder = _tree(tmp_path)
    pub = _publish(deployed, folder)
    (folder / "link").symlink_to("/etc/passwd")
    with pytest.raises(InputError, match="symbolic link"):
        publish_model(folder, "acme/ext", "2.0.0", signer=deployed.publisher, client=deployed.client)
    report = verify(pub.record.ref, file=folder, manifest=pub.manifest_path, client=deployed.client)
    assert not report.ok and "symbolic link" in report.check("sha256").detail
    (folder / "link").unlink()
    os.mkfifo(folder / "pipe")
    report = verify(pub.record.ref, file=folder, manifest=pub.manifest_path, client=deployed.client)
    assert not report.ok and "FIFO" in report.check("sha256").detail


@pytest.mark.parametrize("fields,message", [
    ({"location": "../outside.bin"}, "'..'"),
    ({"location": "/etc/passwd"}, "absolute"),
    ({"location": "missing.data"}, "not a file of this release"),
    ({"offset": "16", "length": "16384"}, "past the end"),
    ({"length": "8"}, "needs 16384"),
    ({"offset": "-1"}, "not a decimal"),
])
def test_external_data_that_leaves_the_tree_or_its_file_is_refused_before_any_transaction(deployed, tmp_path, fields,
                                                                                          message):
    from registry.publish import publish_model

    folder = _tree(tmp_path)
    set_external(folder / "model.onnx", **fields)
    (tmp_path / "outside.bin").write_bytes(bytes(16384))
    before = deployed.client.w3.eth.block_number
    with pytest.raises(PolicyError, match="would never verify") as info:
        publish_model(folder, "acme/ext", "1.0.0", signer=deployed.publisher, client=deployed.client)
    assert message in str(info.value)
    assert deployed.client.w3.eth.block_number == before


def test_single_file_that_could_never_verify_is_refused_before_any_transaction(deployed, tmp_path):
    from registry.publish import publish_model

    raw = tmp_path / "raw.onnx"
    raw.write_bytes(b"not a model at all")
    stub_dir = tmp_path / "stub"
    onnx_with_external_data(stub_dir)
    before = deployed.client.w3.eth.block_number
    for path in (raw, stub_dir / "model.onnx"):
        with pytest.raises(PolicyError, match="would never verify"):
            publish_model(path, "acme/stub", "1.0.0", signer=deployed.publisher, client=deployed.client)
    assert deployed.client.w3.eth.block_number == before


def test_pull_of_a_tree_that_fails_leaves_nothing(deployed, tmp_path):
    folder = _tree(tmp_path)
    pub = _publish(deployed, folder)
    for block in (deployed.home / "blocks").rglob("*"):
        if block.is_file() and block.stat().st_size == 4096 * 4:
            data = bytearray(block.read_bytes())
            data[10] ^= 1
            block.write_bytes(data)
    dest = tmp_path / "device"
    dest.mkdir()
    with pytest.raises(VerificationFailed) as info:
        pull(pub.record.ref, dest, client=deployed.client)
    assert info.value.exit_code == 10
    assert list(dest.iterdir()) == []


def test_pull_never_follows_a_symlink_planted_in_the_target(deployed, tmp_path):
    folder = _tree(tmp_path)
    pub = _publish(deployed, folder)
    dest = tmp_path / "device"
    dest.mkdir()
    outside = tmp_path / "outside"
    outside.mkdir()
    (dest / "acme+ext@1.0.0").symlink_to(outside)
    (dest / "acme+ext@1.0.0.provenance.json").symlink_to(outside / "prov.json")
    result = pull(pub.record.ref, dest, client=deployed.client)
    assert list(outside.iterdir()) == []
    assert result.model_path.is_dir() and not result.model_path.is_symlink()
    assert not result.provenance_path.is_symlink()


def test_pull_into_proc_or_sys_is_one_clear_line(deployed, tmp_path):
    folder = _tree(tmp_path)
    pub = _publish(deployed, folder)
    for target in ("/proc/self", "/sys/kernel", "/proc/registry-test"):
        with pytest.raises(InputError, match="pseudo-filesystem"):
            pull(pub.record.ref, target, client=deployed.client)


def test_disk_that_fills_during_pull_leaves_nothing_at_the_target(deployed, tmp_path):
    """RLIMIT_FSIZE makes every write past 64 KiB fail, as a full disk would."""
    from tests._verify_fixtures import pull_with_a_full_disk

    folder = _tree(tmp_path, n=200_000)
    pub = _publish(deployed, folder)
    dest = tmp_path / "device"
    dest.mkdir()
    out = pull_with_a_full_disk(pub.record.ref, dest, 65536)
    assert out.returncode not in (0, 1), out.stderr[-2000:]
    assert "Traceback" not in out.stderr, out.stderr[-2000:]
    assert list(dest.iterdir()) == []


def test_hidden_files_are_not_part_of_the_release(deployed, tmp_path):
    folder = _tree(tmp_path)
    (folder / ".gitattributes").write_text("* binary")
    pub = _publish(deployed, folder)
    assert ".gitattributes" not in pub.artifact.files.paths
    report = verify(pub.record.ref, file=folder, client=deployed.client)
    assert report.ok and report.check("sha256").evidence["ignored_hidden"] == [".gitattributes"]
    result = pull(pub.record.ref, tmp_path / "d", client=deployed.client)
    assert not (result.model_path / ".gitattributes").exists()


def test_declared_size_over_the_cap_is_refused_before_reading(deployed, tmp_path):
    folder = _tree(tmp_path)
    pub = _publish(deployed, folder)
    report = verify(pub.record.ref, file=folder, client=deployed.client, policy=Policy(max_artifact_size=100))
    assert report.exit_code == 14
    assert "nothing was read" in report.check("sha256").detail


def test_per_file_digests_equal_model_signing(tmp_path):
    """The package's own manifest for the same tree records the digests our file list holds."""
    pytest.importorskip("model_signing")
    from model_signing import hashing

    from registry.content.tree import import_tree

    folder = _tree(tmp_path, n=300_000)
    manifest = hashing.Config().use_file_serialization(hashing_algorithm="sha256").hash(folder)
    theirs = {rd.identifier: rd.digest.digest_value for rd in manifest.resource_descriptors()}
    ours = {e.path: e.sha256 for e in import_tree(folder, "kubo-v1").files.entries}
    assert theirs == ours
    assert all(hashlib.sha256((folder / p).read_bytes()).digest() == d for p, d in ours.items())
    shutil.rmtree(folder)


def test_the_verifier_never_allocates_the_declared_size(tmp_path):
    """A release that declares 1.9 GiB but whose store or file holds 1 KiB costs kilobytes, not gigabytes."""
    import tracemalloc

    from tests._verify_fixtures import offline_release, tiny_onnx

    data = tiny_onnx(3)
    rel = offline_release(tmp_path, data, overrides={"artifact_size": 1900 * 1024 * 1024})
    model = tmp_path / "model.onnx"
    model.write_bytes(data)
    tracemalloc.start()
    try:
        report = rel.verify(data=None, file=model)
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert report.exit_code == 10 and "truncated" in report.check("sha256").detail
    assert peak < 64 * 1024 * 1024, f"peak {peak} bytes"
    # past protobuf's 2 GiB a single file could never verify: refused before reading a byte
    big = offline_release(tmp_path, data, overrides={"artifact_size": 3 * 1024**3})
    report = big.verify(data=None, file=model)
    assert report.exit_code == 14 and "nothing was read" in report.check("sha256").detail
