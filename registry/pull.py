"""Pull: fetch, verify, and only then put the model, its manifest and provenance in place.

The artifact streams from the store into a private staging entry beside the target (a 0700
directory made in the destination, so the final rename stays on one file system) while it is
hashed: nothing is held in memory but the bounded read buffers and, for the ONNX check, the small
model proto. Only when every check passed is the staged file (or tree) renamed into place, with the
manifest, the provenance and, for a tree, its canonical file list beside it; any failure removes
the staging entry, so the destination never holds an unverified or partial model.

Every path is built as ``dest / name`` from names the registry makes itself; a rename replaces a
symlink planted at a final name instead of following it, and nothing under ``/proc``, ``/sys`` or
``/dev`` is written to.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from registry.errors import InputError, StorageError

if TYPE_CHECKING:
    from registry.content.cached import TransferStats
    from registry.verify import VerificationReport

_NAME_SEP = "+"
_PSEUDO_FS = ("/proc", "/sys", "/dev")


@dataclass(frozen=True)
class PullResult:
    report: "VerificationReport"
    model_path: Path
    manifest_path: Path
    provenance_path: Path
    files_path: Path | None = None
    transfer: "TransferStats | None" = None  # set by registry.update.pull_update: bytes fetched and reused

    @property
    def kind(self) -> str:
        return "directory" if self.files_path is not None else "file"

    def to_json(self) -> dict[str, Any]:
        out = {"model": str(self.model_path), "manifest": str(self.manifest_path),
               "provenance": str(self.provenance_path), "kind": self.kind, "report": self.report.to_json()}
        if self.files_path is not None:
            out["file_list"] = str(self.files_path)
        if self.transfer is not None:
            out["transfer"] = self.transfer.to_json()
        return out


def base_name(name: str, version: str) -> str:
    return f"{name.replace('/', _NAME_SEP)}@{version}"


def model_filename(name: str, version: str) -> str:
    return f"{base_name(name, version)}.onnx"


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


def check_target(target: Path) -> None:
    """One clear line for a destination that can never hold a model."""
    try:
        resolved = target.resolve()
    except (OSError, RuntimeError) as exc:
        raise InputError(f"cannot use {target} as the destination: {exc}") from exc
    for pseudo in _PSEUDO_FS:
        if resolved == Path(pseudo) or Path(pseudo) in resolved.parents:
            raise InputError(f"refusing to install into {target}: {pseudo} is a kernel pseudo-filesystem")
    if target.exists() and not target.is_dir():
        raise InputError(f"{target} exists and is not a directory")
    try:
        target.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"cannot create {target}: {exc.strerror or exc}") from exc


def pull(ref: str, dest: str | os.PathLike[str], **verify_kwargs: Any) -> PullResult:
    """Verifies ``ref`` (fetching from the store unless ``file``/``data`` is given) and installs it in ``dest``."""
    from registry.config import load_settings
    from registry.manifest import dumps, filename, load_manifest
    from registry.release import parse_ref
    from registry.verify import VerificationFailed
    from registry.verify.artifact import Capture
    from registry.verify.procedure import verify_artifact

    target = Path(dest)
    check_target(target)
    settings = verify_kwargs.setdefault("settings", None) or load_settings()
    verify_kwargs["settings"] = settings
    parsed = parse_ref(ref)
    if parsed.name is not None and "installed_version" not in verify_kwargs:
        verify_kwargs["installed_version"] = installed_version(target, parsed.name)

    client = verify_kwargs.get("client")
    if client is None and not verify_kwargs.get("offline"):
        try:
            from registry.chain.reads import connect_reader

            client = connect_reader(settings)
            verify_kwargs["client"] = client
        except Exception:  # verify reports the chain problem itself (or goes offline with a manifest)
            client = None

    verify_kwargs["capture"] = Capture("stage", str(target))
    report, artifact = verify_artifact(ref, **verify_kwargs)
    staged: list[Path] = []
    try:
        if not report.ok or not artifact.ok or report.release is None:
            failure = report.first_failure
            if failure is not None and failure.exit_code == StorageError.exit_code:
                raise StorageError(failure.detail.removeprefix("cannot read the artifact: "))  # not a verdict
            raise VerificationFailed(report)
        record = report.release
        manifest = verify_kwargs.get("manifest")
        if manifest is not None:
            manifest_bytes = dumps(manifest if not isinstance(manifest, (str, os.PathLike, bytes)) else
                                   load_manifest(manifest))
        else:
            profile = report.check("cid").evidence.get("profile") or settings.profile.cid_profile
            list_cid = None
            if artifact.tree is not None:
                from registry.content.cids import cid_bytes_v1
                from registry.content.unixfs import import_bytes

                list_cid = cid_bytes_v1(import_bytes(artifact.tree.files.encode(), profile).cid)
            manifest_bytes = _manifest_from_chain(client, record, profile, list_cid)
        provenance_bytes = _provenance_bytes(record, settings, verify_kwargs)

        base = base_name(record.name, record.version)
        manifest_path = target / filename(record.name, record.version)
        provenance_path = target / f"{base}.provenance.json"
        payloads = [(provenance_path, provenance_bytes), (manifest_path, manifest_bytes)]
        files_path = None
        if artifact.tree is not None:
            files_path = target / f"{base}.files.json"
            payloads.append((files_path, artifact.tree.files.encode()))
        for final, payload in payloads:
            staged.append(_stage(target, final.name, payload))
        # The model goes last: whoever sees it also finds its manifest and provenance beside it.
        for tmp, (final, _payload) in zip(staged, payloads):
            os.replace(tmp, final)
        staged.clear()
        if artifact.tree is not None:
            model_path = target / base
            _install_tree(Path(artifact.tree.sink.path), model_path)
        else:
            assert artifact.staged is not None and artifact.staged_name is not None
            model_path = target / model_filename(record.name, record.version)
            os.replace(artifact.staged.path / artifact.staged_name, model_path)
        return PullResult(report, model_path, manifest_path, provenance_path, files_path)
    except OSError as exc:
        from registry.fsutil import storage_error

        raise storage_error(exc, "pull target", target) from exc
    finally:
        for tmp in staged:
            tmp.unlink(missing_ok=True)
        artifact.release()


def _install_tree(staging: Path, final: Path) -> None:
    """Moves a verified staging tree to ``final`` (replacing what is there, never following a link)."""
    for root, dirs, _files in os.walk(staging):
        for d in dirs:
            os.chmod(os.path.join(root, d), 0o755)
    os.chmod(staging, 0o755)
    old: Path | None = None
    try:
        st = os.lstat(final)
    except FileNotFoundError:
        st = None
    if st is not None:
        import stat

        if stat.S_ISDIR(st.st_mode):
            old = Path(tempfile.mkdtemp(prefix=f".{final.name}.old-", dir=final.parent))
            os.rename(final, old / "tree")
        else:
            os.unlink(final)  # a file or a planted symlink under our name: replaced, never followed
    os.rename(staging, final)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


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
    os.chmod(tmp, 0o644)
    return Path(tmp)


def _manifest_from_chain(client: Any, record: Any, cid_profile: str, file_list_cid: bytes | None = None) -> bytes:
    from registry.chain.reads import signed_from_chain
    from registry.manifest import Manifest, dumps

    if client is None:
        raise InputError("pulling without a manifest needs the chain (to recover the signed release)")
    release, signature, tx = signed_from_chain(client, record)
    manifest = Manifest(release=release, signature=signature, publisher=record.publisher, chain_id=client.chain_id,
                        contract=client.address, cid_profile=cid_profile, transaction=tx,
                        file_list_cid=file_list_cid)
    return dumps(manifest)


def _provenance_bytes(record: Any, settings: Any, verify_kwargs: dict[str, Any]) -> bytes:
    import hashlib

    from registry.errors import ProvenanceError
    from registry.provenance import MAX_DOCUMENT_BYTES

    given = verify_kwargs.get("provenance")
    if isinstance(given, (bytes, bytearray)):
        raw = bytes(given)
    elif given is not None:
        from registry.fsutil import read_small_file

        raw = read_small_file(given, limit=MAX_DOCUMENT_BYTES, what="provenance", error=ProvenanceError)
    else:
        from registry.content.stores import open_store

        store = verify_kwargs.get("store") or open_store(settings)
        raw = store.get_bytes(record.provenance_cid, max_size=MAX_DOCUMENT_BYTES)
    if hashlib.sha256(raw).digest() != record.provenance_sha256:  # verified moments ago; re-check what we write
        raise ProvenanceError("provenance document changed between verification and install")
    return raw
