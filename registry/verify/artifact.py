"""Checks 5-6: the artifact's SHA-256 and CID, computed in one pass over one bounded copy."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from registry.errors import InputError, RegistryError
from registry.verify.report import Check, fail

if TYPE_CHECKING:
    from registry.chain.records import ReleaseRecord
    from registry.config import Settings
    from registry.content.base import ContentStore
    from registry.manifest import Manifest


@dataclass
class ArtifactBytes:
    """The one in-memory copy of the artifact: ``data`` is set only while every byte check passed."""

    data: bytearray | None = None
    ok: bool = False
    sha256: bytes | None = None


class _BoundedTee:
    """A ``readinto`` source that copies everything it yields into one buffer and stops at ``limit``.

    The buffer is the single in-memory copy that is hashed, checked and loaded; ``limit`` is the
    signed size plus one byte, so an extended file is detected without reading (or buffering) more.
    """

    def __init__(self, source: Any, limit: int, progress: Any = None) -> None:
        self._source = source
        self._buffer = bytearray(limit)
        self._view = memoryview(self._buffer)
        self._limit = limit
        self.total = 0
        self._progress = progress

    def readinto(self, buf: memoryview) -> int:
        room = self._limit - self.total
        if room <= 0:
            return 0
        target = buf[: min(len(buf), room)]
        n = self._source.readinto(target) or 0
        self._view[self.total:self.total + n] = target[:n]
        self.total += n
        if self._progress is not None and n:
            self._progress(n)
        return n

    def take(self) -> bytearray:
        """The buffer itself (no copy), trimmed to what was read."""
        self._view.release()
        data = self._buffer
        del data[self.total:]
        self._buffer = bytearray()
        return data


def check_bytes(record: "ReleaseRecord", man: "Manifest | None", file: Any, data: bytes | None,
                settings: "Settings", store: "ContentStore | None", artifact: ArtifactBytes,
                progress: Any) -> tuple[Check, Check]:
    from registry.content.cids import cid_bytes_v1, cid_from_bytes, display
    from registry.content.unixfs import (
        PROFILES,
        IterReader,
        import_bytes,
        import_stream,
    )

    expected_size = record.artifact_size
    limit = expected_size + 1
    source: str
    profile = man.cid_profile if man is not None else settings.profile.cid_profile
    if profile not in PROFILES:
        profile = settings.profile.cid_profile
    try:
        if data is not None:
            source = "memory"
            buf = bytearray(data[:limit])
            result = import_bytes(buf, profile)
        elif file is not None:
            source = f"file {file}"
            try:
                handle = open(file, "rb", buffering=0)
            except OSError as exc:
                raise InputError(f"cannot read {file}: {exc.strerror or exc}") from exc
            with handle:
                tee = _BoundedTee(handle, limit, progress)
                result = import_stream(tee, profile)
                buf = tee.take()
        else:
            from registry.content.stores import open_store

            source = "store (verified block by block)"
            store = store or open_store(settings)
            tee = _BoundedTee(IterReader(store.open(record.artifact_cid, max_size=expected_size)), limit, progress)
            result = import_stream(tee, profile)
            buf = tee.take()
    except RegistryError as exc:
        failed = fail("sha256", f"cannot read the artifact: {exc}", {"expected_size": expected_size},
                       error=type(exc))
        return failed, Check("cid", "skip", "no bytes to hash")

    actual_sha = result.sha256
    evidence = {"expected": record.artifact_sha256.hex(), "actual": actual_sha.hex(),
                "expected_size": expected_size, "actual_size": len(buf), "source": source}
    if len(buf) > expected_size:
        evidence["actual_size"] = f">{expected_size}"
        sha = fail("sha256", f"artifact is larger than the signed size {expected_size} (stopped reading at "
                              f"{limit} bytes)", evidence)
    elif len(buf) < expected_size:
        sha = fail("sha256", f"artifact is {len(buf)} bytes, the signed size is {expected_size} (truncated)",
                    evidence)
    elif actual_sha != record.artifact_sha256:
        sha = fail("sha256", "artifact SHA-256 does not match the release", evidence)
    else:
        sha = Check("sha256", "pass", f"sha256:{actual_sha.hex()}", evidence)

    expected_cid = record.artifact_cid
    actual_cid = cid_bytes_v1(result.cid)
    cid_evidence: dict[str, Any] = {"expected": _show_cid(expected_cid, cid_from_bytes, display),
                                    "actual": _show_cid(actual_cid, cid_from_bytes, display), "profile": profile}
    if actual_cid != expected_cid and len(buf) == expected_size and man is None:
        # Without a manifest the profile is unknown: try the others before calling it a mismatch.
        for other in PROFILES:
            if other == profile:
                continue
            alt = cid_bytes_v1(import_bytes(buf, other).cid)
            if alt == expected_cid:
                actual_cid, cid_evidence["profile"] = alt, other
                cid_evidence["actual"] = _show_cid(alt, cid_from_bytes, display)
                break
    if actual_cid != expected_cid:
        cid = fail("cid", f"CID recomputed from the bytes ({cid_evidence['actual']}) does not match the release "
                           f"({cid_evidence['expected']})", cid_evidence)
    else:
        note = " (fetched and verified block by block)" if source.startswith("store") else ""
        cid = Check("cid", "pass", f"{cid_evidence['actual']}{note}", cid_evidence)
    artifact.ok = sha.status == "pass" and cid.status == "pass"
    artifact.sha256 = actual_sha
    artifact.data = buf if artifact.ok else None
    return sha, cid


def _show_cid(binary: bytes, cid_from_bytes: Any, display: Any) -> str:
    try:
        return str(display(cid_from_bytes(binary))["v1"])
    except Exception:  # a hostile CID still gets reported, just in hex
        return "0x" + binary.hex()

