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
    assert sha.exit_code == UnreachableError.exit_code
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
