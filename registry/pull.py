"""Pull: fetch, verify, and only then put the model, its manifest and provenance in place.

Everything is written to temporary files inside the destination directory (same file system, so
the final ``os.replace`` is atomic) and only after the full report is green; any failure removes
the temporaries, so the destination never holds an unverified or partial model. The files written
are the very bytes that were verified in memory.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from registry.errors import InputError

if TYPE_CHECKING:
    from registry.verify import VerificationReport

_NAME_SEP = "+"


@dataclass(frozen=True)
class PullResult:
    report: "VerificationReport"
    model_path: Path
    manifest_path: Path
    provenance_path: Path

    def to_json(self) -> dict[str, Any]:
        return {"model": str(self.model_path), "manifest": str(self.manifest_path),
                "provenance": str(self.provenance_path), "report": self.report.to_json()}


def model_filename(name: str, version: str) -> str:
    return f"{name.replace('/', _NAME_SEP)}@{version}.onnx"


def installed_version(dest: Path, name: str) -> str | None:
    """The newest version of ``name`` already pulled into ``dest`` (what the rollback rule compares)."""
    from registry.manifest import SUFFIX, load_manifest
    from registry.policy import version_key

    prefix = f"{name.replace('/', _NAME_SEP)}@"
    best: str | None = None
    if not dest.is_dir():
        return None
    for path in dest.glob(f"{prefix}*{SUFFIX}"):
        try:
            version = load_manifest(path).release.version
        except Exception:  # a damaged manifest just does not count as installed
            continue
        if best is None or version_key(version) > version_key(best):
            best = version
    return best


def pull(ref: str, dest: str | os.PathLike[str], **verify_kwargs: Any) -> PullResult:
    """Verifies ``ref`` (fetching from the store unless ``file``/``data`` is given) and installs it in ``dest``."""
    from registry.config import load_settings
    from registry.manifest import dumps, filename, load_manifest
    from registry.release import parse_ref
    from registry.verify import VerificationFailed, provenance_path_beside, verify_bytes

    target = Path(dest)
    if target.exists() and not target.is_dir():
        raise InputError(f"{target} exists and is not a directory")
    settings = verify_kwargs.setdefault("settings", None) or load_settings()
    verify_kwargs["settings"] = settings
    parsed = parse_ref(ref)
    if parsed.name is not None and "installed_version" not in verify_kwargs:
        verify_kwargs["installed_version"] = installed_version(target, parsed.name)

    client = verify_kwargs.get("client")
    if client is None and not verify_kwargs.get("offline"):
        try:
            from registry.chain.client import RegistryClient

            client = RegistryClient.connect(settings)
            verify_kwargs["client"] = client
        except Exception:  # verify reports the chain problem itself (or goes offline with a manifest)
            client = None

    report, data = verify_bytes(ref, **verify_kwargs)
    if not report.ok or data is None or report.release is None:
        raise VerificationFailed(report)
    record = report.release

    manifest = verify_kwargs.get("manifest")
    if manifest is not None:
        manifest_bytes = dumps(manifest if not isinstance(manifest, (str, os.PathLike, bytes)) else
                               load_manifest(manifest))
    else:
        manifest_bytes = _manifest_from_chain(client, record, settings)
    provenance_bytes = _provenance_bytes(record, settings, verify_kwargs)

    try:
        target.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        from registry.fsutil import storage_error

        raise storage_error(exc, "pull target", target) from exc
    model_path = target / model_filename(record.name, record.version)
    manifest_path = target / filename(record.name, record.version)
    provenance_path = provenance_path_beside(model_path, record.name, record.version)
    staged: list[tuple[Path, Path]] = []
    try:
        for final, payload in ((provenance_path, provenance_bytes), (manifest_path, manifest_bytes),
                               (model_path, data)):
            staged.append((_stage(target, final.name, payload), final))
        # The model goes last: whoever sees it also finds its manifest and provenance beside it.
        for tmp, final in staged:
            os.replace(tmp, final)
    except BaseException:
        for tmp, _final in staged:
            tmp.unlink(missing_ok=True)
        raise
    return PullResult(report, model_path, manifest_path, provenance_path)


def _stage(folder: Path, name: str, payload: bytes | bytearray) -> Path:
    """A complete, fsynced temp copy in ``folder``; a full disk is a StorageError naming the target."""
    from registry.fsutil import storage_error, temp_prefix

    try:
        fd, tmp = tempfile.mkstemp(prefix=temp_prefix(name), suffix=".part", dir=folder)
    except OSError as exc:
        raise storage_error(exc, "pull target", folder) from exc
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(payload)
            handle.flush()
            os.fsync(handle.fileno())
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise storage_error(exc, "pull target", folder) from exc
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return Path(tmp)


def _manifest_from_chain(client: Any, record: Any, settings: Any) -> bytes:
    from registry.manifest import Manifest, dumps
    from registry.publish import _signed_from_chain

    if client is None:
        raise InputError("pulling without a manifest needs the chain (to recover the signed release)")
    release, signature, tx = _signed_from_chain(client, record)
    manifest = Manifest(release=release, signature=signature, publisher=record.publisher, chain_id=client.chain_id,
                        contract=client.address, cid_profile=settings.profile.cid_profile, transaction=tx)
    return dumps(manifest)


def _provenance_bytes(record: Any, settings: Any, verify_kwargs: dict[str, Any]) -> bytes:
    import hashlib

    from registry.errors import ProvenanceError
    from registry.provenance import MAX_DOCUMENT_BYTES

    given = verify_kwargs.get("provenance")
    if isinstance(given, (bytes, bytearray)):
        raw = bytes(given)
    elif given is not None:
        raw = Path(given).read_bytes()
    else:
        from registry.content.stores import open_store

        store = verify_kwargs.get("store") or open_store(settings)
        raw = store.get_bytes(record.provenance_cid, max_size=MAX_DOCUMENT_BYTES)
    if hashlib.sha256(raw).digest() != record.provenance_sha256:  # verified moments ago; re-check what we write
        raise ProvenanceError("provenance document changed between verification and install")
    return raw
