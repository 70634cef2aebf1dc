"""Checks 5-6 as a user or an attacker meets them: which bytes pass, what the verdict says, what is kept.

Fast (no chain): the release record is built from the bytes, and ``check_bytes`` judges what it is handed.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
from pathlib import Path

import pytest

from registry.chain.records import ReleaseRecord
from registry.config import load_settings
from registry.content import unixfs
from registry.content.cids import cid_bytes_v1, display
from registry.content.local import LocalStore
from registry.errors import InputError, IntegrityError, UnreachableError
from registry.verify.artifact import ArtifactBytes, Capture, check_bytes

from tests._verify_fixtures import offline_release

DATA = os.urandom(300_000)  # two 256 KiB chunks: every profile gives another CID


def _record(data: bytes, profile: str = "kubo-v1", **changes) -> ReleaseRecord:
    art = unixfs.import_bytes(data, profile)
    fields = dict(id=b"\1" * 32, name="acme/bytes", version="1.0.0", artifact_sha256=art.sha256,
                  artifact_cid=cid_bytes_v1(art.cid), artifact_size=art.size, provenance_sha256=b"\0" * 32,
                  provenance_cid=b"", parent=b"\0" * 32, publisher="0x" + "11" * 20, published_at=0, revoked_at=0,
                  revocation_reason="")
    fields.update(changes)
    return ReleaseRecord(**fields)


def _settings(tmp_path: Path):
    return load_settings(env={"REGISTRY_HOME": str(tmp_path / "home")})


def _check(record, tmp_path, *, man=None, file=None, data=None, store=None, capture=None, progress=None):
    artifact = ArtifactBytes()
    sha, cid = check_bytes(record, man, file, data, _settings(tmp_path), store, artifact, progress, None, capture)
    return sha, cid, artifact


def _v1(binary: bytes) -> str:
    return str(display(binary)["v1"])


@pytest.mark.parametrize("profile", sorted(unixfs.PROFILES))
def test_without_a_manifest_the_cid_is_recognised_under_whichever_profile_made_it(tmp_path, profile):
    record = _record(DATA, profile)
    sha, cid, artifact = _check(record, tmp_path, data=DATA)
    assert (sha.status, cid.status) == ("pass", "pass"), (sha, cid)
    assert cid.evidence["profile"] == profile
    assert cid.evidence["actual"] == cid.evidence["expected"] == _v1(record.artifact_cid)
    assert cid.detail == _v1(record.artifact_cid)  # read from memory: no note about blocks
    assert sha.detail == "sha256:" + hashlib.sha256(DATA).hexdigest()
    assert artifact.ok and bytes(artifact.data) == DATA and artifact.sha256 == hashlib.sha256(DATA).digest()


def test_a_manifest_pins_the_profile_the_cid_is_recomputed_under(tmp_path):
    v0 = offline_release(tmp_path, DATA).manifest
    record = _record(DATA, "kubo-v0")
    pinned_v1 = dataclasses.replace(v0, cid_profile="kubo-v1")
    sha, cid, artifact = _check(record, tmp_path, man=pinned_v1, data=DATA)
    assert sha.status == "pass" and cid.status == "fail"
    assert cid.evidence["profile"] == "kubo-v1"
    assert cid.evidence["expected"] == _v1(record.artifact_cid)
    assert cid.evidence["actual"] == _v1(cid_bytes_v1(unixfs.import_bytes(DATA, "kubo-v1").cid))
    assert cid.detail == (f"CID recomputed from the bytes ({cid.evidence['actual']}) does not match the release "
                          f"({cid.evidence['expected']})")
    assert cid.exit_code == IntegrityError.exit_code
    assert not artifact.ok and artifact.data is None

    pinned_v0 = dataclasses.replace(v0, cid_profile="kubo-v0")  # settings say kubo-v1; the manifest wins
    sha, cid, artifact = _check(record, tmp_path, man=pinned_v0, data=DATA)
    assert (sha.status, cid.status) == ("pass", "pass") and cid.evidence["profile"] == "kubo-v0"
    assert artifact.ok


def test_a_manifest_profile_this_version_does_not_know_falls_back_to_the_settings(tmp_path):
    man = offline_release(tmp_path, DATA).manifest
    future = dataclasses.replace(man, cid_profile="unixfs-v2-2031")
    sha, cid, artifact = _check(_record(DATA, "kubo-v1"), tmp_path, man=future, data=DATA)
    assert (sha.status, cid.status) == ("pass", "pass") and cid.evidence["profile"] == "kubo-v1"


def test_other_bytes_of_the_signed_size_fail_with_both_digests_in_the_evidence(tmp_path):
    record = _record(DATA)
    other = bytes([DATA[0] ^ 1]) + DATA[1:]
    sha, cid, artifact = _check(record, tmp_path, data=other)
    assert sha.status == "fail" and sha.detail == "artifact SHA-256 does not match the release"
    assert sha.exit_code == IntegrityError.exit_code
    assert sha.evidence == {"expected": hashlib.sha256(DATA).hexdigest(), "actual": hashlib.sha256(other).hexdigest(),
                            "expected_size": len(DATA), "actual_size": len(DATA), "source": "memory", "kind": "file"}
    assert cid.status == "fail" and cid.evidence["profile"] == "kubo-v1"
    assert not artifact.ok and artifact.data is None and artifact.sha256 == hashlib.sha256(other).digest()


def test_a_short_or_long_artifact_names_its_size(tmp_path):
    record = _record(DATA)
    sha, _, _ = _check(record, tmp_path, data=DATA[:-10])
    assert sha.detail == f"artifact is {len(DATA) - 10} bytes, the signed size is {len(DATA)} (truncated)"
    assert sha.evidence["actual_size"] == len(DATA) - 10 and sha.evidence["expected_size"] == len(DATA)
    sha, _, _ = _check(record, tmp_path, data=DATA + b"tail")
    assert sha.detail == (f"artifact is larger than the signed size {len(DATA)} (stopped reading at "
                          f"{len(DATA) + 1} bytes)")
    assert sha.evidence["actual_size"] == f">{len(DATA)}" and sha.evidence["kind"] == "file"


def test_an_unreadable_file_is_an_input_error_and_nothing_is_hashed(tmp_path):
    folder = tmp_path / "not-a-file"
    folder.mkdir()
    sha, cid, artifact = _check(_record(DATA), tmp_path, file=str(tmp_path / "missing.onnx"))
    assert sha.status == "fail" and sha.detail.startswith("cannot read the artifact: cannot read ")
    assert sha.exit_code == InputError.exit_code and sha.evidence == {"expected_size": len(DATA)}
    assert (cid.name, cid.status, cid.detail) == ("cid", "skip", "no bytes to hash")
    assert not artifact.ok


class _DownStore:
    """A gateway that does not answer."""

    def open(self, cid, max_size=None):
        raise UnreachableError("gateway http://gw.invalid did not answer")
        yield b""  # pragma: no cover


def test_a_store_that_does_not_answer_is_unreachable_not_an_integrity_failure(tmp_path):
    sha, cid, _ = _check(_record(DATA), tmp_path, store=_DownStore())
    assert (sha.name, sha.status, sha.exit_code) == ("sha256", "fail", UnreachableError.exit_code)
    assert sha.detail == "cannot read the artifact: gateway http://gw.invalid did not answer"
    assert (cid.status, cid.detail) == ("skip", "no bytes to hash")


class _StreamStore:
    """A store that does not verify blocks: hands out whatever it holds, however long."""

    def __init__(self, payload: bytes, piece: int = 65536) -> None:
        self.payload, self.piece = payload, piece

    def open(self, cid, max_size=None):
        for i in range(0, len(self.payload), self.piece):
            yield self.payload[i:i + self.piece]


def test_a_store_handing_out_the_signed_bytes_plus_one_is_refused(tmp_path):
    sha, cid, artifact = _check(_record(DATA), tmp_path, store=_StreamStore(DATA + b"!"))
    assert sha.status == "fail" and "larger than the signed size" in sha.detail
    assert not artifact.ok


def test_bytes_from_a_store_that_verifies_blocks_say_so_and_are_kept_whole(tmp_path):
    store = LocalStore(tmp_path / "blocks", "kubo-v1")
    data = os.urandom(700_000)  # three leaves
    store.put_bytes(data, "kubo-v1")
    seen: list[int] = []
    sha, cid, artifact = _check(_record(data), tmp_path, store=store, progress=seen.append)
    assert (sha.status, cid.status) == ("pass", "pass")
    assert sha.evidence["source"] == "store (verified block by block)"
    assert cid.detail.endswith(" (fetched and verified block by block)")
    assert bytes(artifact.data) == data and sum(seen) == len(data)


def test_bytes_from_a_plain_store_are_kept_whole(tmp_path):
    data = os.urandom(700_000)
    seen: list[int] = []
    sha, cid, artifact = _check(_record(data), tmp_path, store=_StreamStore(data, 100_003), progress=seen.append)
    assert (sha.status, cid.status) == ("pass", "pass") and cid.detail.endswith("(fetched and verified block by block)")
    assert bytes(artifact.data) == data and sum(seen) == len(data)


def test_staged_bytes_from_a_store_are_the_verified_bytes(tmp_path):
    store = LocalStore(tmp_path / "blocks", "kubo-v1")
    data = os.urandom(700_000)
    store.put_bytes(data, "kubo-v1")
    sha, cid, artifact = _check(_record(data), tmp_path, store=store, capture=Capture("stage", str(tmp_path)))
    try:
        assert artifact.ok and artifact.staged is not None and artifact.staged_name == "model.onnx"
        assert bytes(artifact.data) == data
        assert (Path(artifact.staged.path) / "model.onnx").read_bytes() == data
    finally:
        artifact.release()


@pytest.mark.parametrize("size", [0, 1, 2])
@pytest.mark.parametrize("mode", ["stage", "load"])
def test_the_smallest_files_are_kept_exactly_on_disk(tmp_path, size, mode):
    data = b"\x08\x07"[:size]
    model = tmp_path / "model.onnx"
    model.write_bytes(data)
    sha, cid, artifact = _check(_record(data), tmp_path, file=str(model), capture=Capture(mode, str(tmp_path)))
    try:
        assert (sha.status, cid.status) == ("pass", "pass"), (sha, cid)
        assert sha.evidence["source"] == f"file {model}"
        assert bytes(artifact.data) == data and artifact.staged is not None
    finally:
        artifact.release()


def test_a_bytearray_larger_than_a_batch_is_hashed_and_kept_whole(tmp_path, monkeypatch):
    monkeypatch.setattr(unixfs, "READ_BATCH", 1024 * 1024)
    data = bytearray(os.urandom(3 * 1024 * 1024 + 5))
    sha, cid, artifact = _check(_record(bytes(data)), tmp_path, data=data)
    assert (sha.status, cid.status) == ("pass", "pass")
    assert bytes(artifact.data) == data


def test_a_cid_that_does_not_decode_is_still_reported_in_hex(tmp_path):
    garbage = b"\x01\x99" + b"\x42" * 20
    sha, cid, _ = _check(_record(DATA, artifact_cid=garbage), tmp_path, data=DATA)
    assert sha.status == "pass" and cid.status == "fail"
    assert cid.evidence["expected"] == "0x" + garbage.hex()
    assert f"does not match the release (0x{garbage.hex()})" in cid.detail


def test_progress_counts_every_byte_from_memory_and_from_a_file(tmp_path, monkeypatch):
    monkeypatch.setattr(unixfs, "READ_BATCH", 1024 * 1024)
    data = os.urandom(2 * 1024 * 1024 + 9)
    model = tmp_path / "model.onnx"
    model.write_bytes(data)
    for source in ({"data": bytearray(data)}, {"data": data}, {"file": str(model)}):
        seen: list[int] = []
        sha, cid, _ = _check(_record(data), tmp_path, progress=seen.append, **source)
        assert (sha.status, cid.status) == ("pass", "pass") and sum(seen) == len(data), source
        assert sha.evidence["source"] == (f"file {model}" if "file" in source else "memory")


class _CountingStore(LocalStore):
    fetched = 0

    def _fetch_block(self, cid):
        self.fetched += 1
        return super()._fetch_block(cid)


def test_a_dag_declaring_more_than_the_signed_size_is_refused_before_its_leaves_are_fetched(tmp_path):
    store = _CountingStore(tmp_path / "blocks", "kubo-v1")
    data = os.urandom(1_000_000)  # four leaves under one root
    store.put_bytes(data, "kubo-v1")
    store.fetched = 0
    record = _record(data, artifact_size=300_000)
    sha, cid, artifact = _check(record, tmp_path, store=store)
    assert sha.status == "fail" and sha.exit_code == IntegrityError.exit_code and not artifact.ok
    assert store.fetched <= 2, store.fetched


def test_a_single_file_past_protobufs_limit_is_refused_unread_and_the_limit_itself_is_read(tmp_path):
    from registry.errors import PolicyError
    from registry.policy import Policy
    from registry.verify.artifact import MAX_SINGLE_FILE

    for size in (MAX_SINGLE_FILE + 1, MAX_SINGLE_FILE):
        artifact = ArtifactBytes()
        sha, cid = check_bytes(_record(DATA, artifact_size=size), None, None, DATA, _settings(tmp_path), None,
                               artifact, None, Policy(max_artifact_size=4 * 1024**3))
        if size > MAX_SINGLE_FILE:
            assert sha.exit_code == PolicyError.exit_code and "protobuf's limit" in sha.detail
            assert sha.evidence == {"expected_size": size}
        else:  # allowed to be read: the bytes in hand are simply short
            assert sha.exit_code == IntegrityError.exit_code and "(truncated)" in sha.detail
            continue
        assert (cid.name, cid.status, cid.detail) == ("cid", "skip", "no bytes to hash")
        assert not artifact.ok and artifact.sha256 is None


def test_a_declared_size_over_the_cap_is_refused_with_both_numbers(tmp_path):
    from registry.errors import PolicyError
    from registry.policy import Policy

    artifact = ArtifactBytes()
    sha, cid = check_bytes(_record(DATA), None, None, DATA, _settings(tmp_path), None, artifact, None,
                           Policy(max_artifact_size=len(DATA) - 1))
    assert sha.exit_code == PolicyError.exit_code and sha.evidence == {"expected_size": len(DATA), "cap": len(DATA) - 1}
    assert (cid.name, cid.status, cid.detail) == ("cid", "skip", "no bytes to hash")


def test_a_release_of_exactly_the_cap_is_read_and_one_byte_over_is_told_how_to_accept_it(tmp_path):
    from registry.policy import Policy

    artifact = ArtifactBytes()
    sha, cid = check_bytes(_record(DATA), None, None, DATA, _settings(tmp_path), None, artifact, None,
                           Policy(max_artifact_size=len(DATA)))
    assert (sha.status, cid.status) == ("pass", "pass") and artifact.ok
    sha, _ = check_bytes(_record(DATA), None, None, DATA, _settings(tmp_path), None, ArtifactBytes(), None,
                         Policy(max_artifact_size=len(DATA) - 1))
    assert sha.detail == (f"the release declares {len(DATA)} bytes, over the {len(DATA) - 1}-byte cap "
                          "(raise max_artifact_size in a policy to accept it); nothing was read")


class _KindlessStore:
    """A node that fails when asked whether the root is a file or a directory."""

    def __init__(self, error: Exception) -> None:
        self.error = error

    def kind(self, cid):
        raise self.error

    def open(self, cid, max_size=None):  # pragma: no cover - never reached
        raise AssertionError("bytes were requested after the root could not be read")


@pytest.mark.parametrize("error", [UnreachableError("node http://n.invalid did not answer"),
                                   IntegrityError("root block does not match its CID")])
def test_a_root_that_cannot_be_read_fails_the_digest_check_with_the_nodes_reason(tmp_path, error):
    sha, cid, artifact = _check(_record(DATA), tmp_path, store=_KindlessStore(error))
    assert (sha.name, sha.status, sha.exit_code) == ("sha256", "fail", type(error).exit_code)
    assert sha.detail == f"cannot read the artifact: {error}" and sha.evidence == {"expected_size": len(DATA)}
    assert (cid.name, cid.status, cid.detail) == ("cid", "skip", "no bytes to hash")
    assert not artifact.ok


# --- directory releases: the tree in hand, from a store, and kept on disk for load and pull ----------------------------

def _tree(tmp_path: Path) -> Path:
    folder = tmp_path / "tree"
    (folder / "tokenizer").mkdir(parents=True)
    (folder / "model.onnx").write_bytes(os.urandom(3000))
    (folder / "model.onnx.data").write_bytes(os.urandom(300_000))
    (folder / "tokenizer" / "vocab.txt").write_bytes(b"[PAD]\n[UNK]\n")
    return folder


def _tree_record(folder: Path, profile: str = "kubo-v1") -> ReleaseRecord:
    from registry.content.tree import import_tree

    art = import_tree(folder, profile)
    return _record(b"", artifact_sha256=art.sha256, artifact_cid=cid_bytes_v1(art.cid), artifact_size=art.size)


def _interrupt(_n: int) -> None:
    """A progress callback that stands for Ctrl-C in the middle of the read."""
    raise KeyboardInterrupt


def _staging_dirs(parent: Path) -> list[str]:
    return sorted(p.name for p in parent.iterdir() if p.name.startswith(".registry"))


def test_a_tree_in_hand_passes_reports_its_bytes_and_keeps_the_signed_digest(tmp_path):
    folder = _tree(tmp_path)
    record = _tree_record(folder)
    seen: list[int] = []
    sha, cid, artifact = _check(record, tmp_path, file=str(folder), progress=seen.append)
    assert (sha.status, cid.status) == ("pass", "pass"), (sha, cid)
    assert artifact.ok and artifact.kind == "directory" and artifact.sha256 == record.artifact_sha256
    assert sum(seen) == record.artifact_size

    (folder / "tokenizer" / "vocab.txt").write_bytes(b"[PAD]\n[UNX]\n")  # same size, other bytes
    sha, cid, artifact = _check(record, tmp_path, file=str(folder))
    assert sha.status == "fail" and not artifact.ok and artifact.tree is None
    assert artifact.sha256 == bytes.fromhex(sha.evidence["actual"]) != record.artifact_sha256

    (folder / "tokenizer" / "vocab.txt").write_bytes(b"[PAD]\n[UNK]\n[EVIL]")  # past the signed size: no digest
    sha, cid, artifact = _check(record, tmp_path, file=str(folder))
    assert sha.status == "fail" and "actual" not in sha.evidence and artifact.sha256 is None


def test_a_tree_is_fetched_from_the_store_handed_in_not_the_configured_one(tmp_path):
    folder = _tree(tmp_path)
    store = LocalStore(tmp_path / "elsewhere", "kubo-v1")
    store.put_tree(folder, "kubo-v1")
    seen: list[int] = []
    record = _tree_record(folder)
    sha, cid, artifact = _check(record, tmp_path, store=store, progress=seen.append)
    assert (sha.status, cid.status) == ("pass", "pass"), (sha, cid)
    assert cid.detail.endswith("(fetched and verified block by block)") and sum(seen) == record.artifact_size


# What each use keeps on disk: a pull's files are readable by others and fsynced (a pull survives a
# crash); a load's copy is the caller's alone and goes away with the session.
KEPT_MODES = pytest.mark.parametrize("mode, file_mode, fsynced", [("stage", 0o644, True), ("load", 0o600, False)])


@pytest.fixture
def parent(tmp_path: Path) -> Path:
    """The directory a kept copy is made in (a pull target, or where private copies go)."""
    target = tmp_path / "target"
    target.mkdir()
    return target


@pytest.fixture
def synced(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The file descriptors fsynced while the test runs (os.fsync still does its work)."""
    seen: list[int] = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (seen.append(fd), real_fsync(fd)))
    return seen


@KEPT_MODES
def test_a_kept_tree_is_a_private_directory_with_the_modes_its_use_needs(tmp_path, parent, synced, mode, file_mode,
                                                                        fsynced):
    folder = _tree(tmp_path)
    sha, cid, artifact = _check(_tree_record(folder), tmp_path, file=str(folder), capture=Capture(mode, str(parent)))
    try:
        assert artifact.ok
        kept = artifact.tree.sink.path
        assert kept.parent == parent and kept.name.startswith(".registry-tree-")
        assert os.stat(kept).st_mode & 0o777 == 0o700
        for rel in ("model.onnx", "model.onnx.data", "tokenizer/vocab.txt"):
            assert (kept / rel).read_bytes() == (folder / rel).read_bytes()
            assert os.stat(kept / rel).st_mode & 0o777 == file_mode, rel
        assert (len(synced) >= 3) is fsynced, synced  # every file of a pull is on disk
    finally:
        artifact.release()
    assert _staging_dirs(parent) == []


def test_a_tree_names_each_file_as_its_bytes_are_read(tmp_path):
    folder = _tree(tmp_path)
    record = _tree_record(folder)
    started: list[tuple[str, int]] = []
    artifact = ArtifactBytes()
    sha, cid = check_bytes(record, None, str(folder), None, _settings(tmp_path), None, artifact, None,
                           file_progress=lambda path, size: started.append((path, size)))
    assert (sha.status, cid.status) == ("pass", "pass")
    assert sorted({path for path, _ in started}) == ["model.onnx", "model.onnx.data", "tokenizer/vocab.txt"]


def test_an_interrupted_check_of_a_tree_in_memory_raises_the_interrupt_itself(tmp_path):
    folder = _tree(tmp_path)
    with pytest.raises(KeyboardInterrupt):
        _check(_tree_record(folder), tmp_path, file=str(folder), progress=_interrupt)


@pytest.mark.parametrize("mode", ["stage", "load"])
def test_a_tree_that_fails_or_is_interrupted_leaves_no_copy_behind(tmp_path, parent, mode):
    folder = _tree(tmp_path)
    record = _tree_record(folder)
    with pytest.raises(KeyboardInterrupt):
        _check(record, tmp_path, file=str(folder), capture=Capture(mode, str(parent)), progress=_interrupt)
    assert _staging_dirs(parent) == []

    (folder / "model.onnx.data").write_bytes(os.urandom(300_000))
    sha, _, artifact = _check(record, tmp_path, file=str(folder), capture=Capture(mode, str(parent)))
    assert sha.status == "fail" and not artifact.ok
    assert _staging_dirs(parent) == []


@pytest.mark.parametrize("mode, where", [("stage", "pull target"), ("load", "private copy directory")])
def test_a_place_that_cannot_hold_the_copy_is_named_as_the_user_knows_it(tmp_path, mode, where):
    not_a_dir = tmp_path / "occupied"
    not_a_dir.write_bytes(b"a file where the directory should be")
    folder = _tree(tmp_path)
    with pytest.raises(InputError, match=f"^cannot write into {where} {not_a_dir}"):
        _check(_tree_record(folder), tmp_path, file=str(folder), capture=Capture(mode, str(not_a_dir)))
    model = folder / "model.onnx"
    with pytest.raises(InputError, match=f"^cannot write into {where} {not_a_dir}"):
        _check(_record(model.read_bytes()), tmp_path, file=str(model), capture=Capture(mode, str(not_a_dir)))


@KEPT_MODES
def test_a_kept_file_is_a_private_directory_with_the_modes_its_use_needs(tmp_path, parent, synced, mode, file_mode,
                                                                        fsynced):
    model = tmp_path / "model.onnx"
    model.write_bytes(DATA)
    sha, cid, artifact = _check(_record(DATA), tmp_path, file=str(model), capture=Capture(mode, str(parent)))
    try:
        assert artifact.ok and artifact.staged_name == "model.onnx"
        kept = Path(artifact.staged.path)
        assert kept.parent == parent and kept.name.startswith(".registry-file-")
        assert os.stat(kept).st_mode & 0o777 == 0o700
        assert (kept / "model.onnx").read_bytes() == DATA
        assert os.stat(kept / "model.onnx").st_mode & 0o777 == file_mode
        assert bool(synced) is fsynced, synced
    finally:
        artifact.release()
    assert _staging_dirs(parent) == []


def test_without_a_manifest_a_file_on_disk_is_also_recognised_under_another_profile(tmp_path):
    model = tmp_path / "model.onnx"
    model.write_bytes(DATA)
    sha, cid, artifact = _check(_record(DATA, "kubo-v0"), tmp_path, file=str(model))
    assert (sha.status, cid.status) == ("pass", "pass") and cid.evidence["profile"] == "kubo-v0"
    assert bytes(artifact.data) == DATA


@pytest.mark.parametrize("source", ["file", "plain store"])
def test_no_more_than_the_signed_size_plus_one_byte_is_read_from_a_longer_source(tmp_path, source):
    data = os.urandom(5000)
    longer = data + os.urandom(3000)
    seen: list[int] = []
    if source == "file":
        model = tmp_path / "model.onnx"
        model.write_bytes(longer)
        sha, _, artifact = _check(_record(data), tmp_path, file=str(model), progress=seen.append)
    else:  # one byte per chunk: the cap is counted read by read
        sha, _, artifact = _check(_record(data), tmp_path, store=_StreamStore(longer, 1), progress=seen.append)
    assert sha.detail == f"artifact is larger than the signed size {len(data)} (stopped reading at {len(data) + 1} bytes)"
    assert sum(seen) == len(data) + 1 and not artifact.ok


def test_a_store_handing_out_one_byte_more_a_byte_at_a_time_is_refused(tmp_path):
    data = os.urandom(3000)
    sha, _, artifact = _check(_record(data), tmp_path, store=_StreamStore(data + b"!", 1))
    assert sha.status == "fail" and "larger than the signed size" in sha.detail and not artifact.ok


class _SizeBlindStore(LocalStore):
    """Verifies every block against its CID but ignores the size it is told to stop at."""

    def open(self, cid, max_size=None):
        return super().open(cid)


def test_a_verified_dag_one_byte_longer_than_signed_is_refused_as_too_large(tmp_path):
    store = _SizeBlindStore(tmp_path / "blocks", "kubo-v1")
    data = os.urandom(700_001)
    store.put_bytes(data, "kubo-v1")
    sha, cid, artifact = _check(_record(data, artifact_size=len(data) - 1), tmp_path, store=store)
    assert sha.detail == (f"artifact is larger than the signed size {len(data) - 1} (stopped reading at "
                          f"{len(data)} bytes)")
    assert not artifact.ok


def test_without_lazily_backed_memory_the_file_is_kept_in_an_ordinary_buffer(tmp_path, monkeypatch):
    import mmap

    import registry.verify.artifact as artifact_module

    class _FileMapsOnly(mmap.mmap):
        def __new__(cls, fileno, *args, **kwargs):
            if fileno == -1:
                raise OSError(12, "Cannot allocate memory")
            return mmap.mmap.__new__(cls, fileno, *args, **kwargs)

    class _NoAnonymousMaps:
        mmap = _FileMapsOnly

        def __getattr__(self, name):
            return getattr(mmap, name)

    monkeypatch.setattr(artifact_module, "mmap", _NoAnonymousMaps())
    monkeypatch.setattr(unixfs, "READ_BATCH", 1024 * 1024)
    data = os.urandom(2 * 1024 * 1024 + 3)
    model = tmp_path / "model.onnx"
    model.write_bytes(data)
    sha, cid, artifact = _check(_record(data), tmp_path, file=str(model))
    assert (sha.status, cid.status) == ("pass", "pass")
    assert bytes(artifact.data) == data and isinstance(artifact.data.obj, bytearray)
