"""OpenSSF model signing (OMS) interop: a release's files as a Sigstore bundle ``model_signing`` verifies.

``export_oms`` verifies the release first (all nine checks), then signs *its* verified file list:
an in-toto Statement v1 with the ``https://model_signing/signature/v1.0`` predicate (``method:
files``, SHA-256 per file, in the package's path order), wrapped in a DSSE envelope and a Sigstore
bundle v0.3 whose verification material is the signing key's hint (SHA-256 of its PEM public key),
exactly what ``model_signing sign key`` writes. The key is P-256: ``model_signing`` refuses
secp256k1, so a publisher keeps a second key for this (``registry key new --curve p256``).

The per-file digests are the ones our canonical file list holds; the bundle's subject digest is
``model_signing``'s root (SHA-256 over the per-file digests in order, names left out), which is why
the registry anchors its own file-list digest instead. The bundle file's SHA-256 can be attested on
chain (``registry attest REF --report model.sig``), so a device trusting either the chain or the OMS
key reaches the same bytes.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from registry.errors import InputError, KeyAccessError
from registry.fsutil import atomic_write

if TYPE_CHECKING:
    from registry.content.filelist import FileList

STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PREDICATE_TYPE = "https://model_signing/signature/v1.0"
PAYLOAD_TYPE = "application/vnd.in-toto+json"
BUNDLE_MEDIA_TYPE = "application/vnd.dev.sigstore.bundle.v0.3+json"
IGNORE_PATHS = [".git", ".gitattributes", ".github", ".gitignore"]
MAX_KEY_BYTES = 64 * 1024


@dataclass(frozen=True)
class KeyFiles:
    private: Path
    public: Path
    hint: str

    def to_json(self) -> dict[str, str]:
        return {"private_key": str(self.private), "public_key": str(self.public), "hint": self.hint, "curve": "p256"}


def new_p256_key(path: str | os.PathLike[str], password: str | None) -> KeyFiles:
    """A fresh P-256 key: ``path`` (PKCS#8 PEM, 0600, encrypted when a password is given) and ``.pub`` beside."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    private = Path(path)
    public = private.with_suffix(".pub")
    for target in (private, public):
        if os.path.lexists(target):
            raise InputError(f"{target} already exists; refusing to overwrite a key")
    key = ec.generate_private_key(ec.SECP256R1())
    encryption = (serialization.BestAvailableEncryption(password.encode()) if password
                  else serialization.NoEncryption())
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption)
    pub = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    atomic_write(private, pem, mode=0o600)
    atomic_write(public, pub, mode=0o644)
    return KeyFiles(private, public, hashlib.sha256(pub).hexdigest())


def load_p256_key(path: str | os.PathLike[str], password: str | None) -> Any:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    target = Path(path)
    try:
        with target.open("rb") as handle:
            pem = handle.read(MAX_KEY_BYTES + 1)
    except OSError as exc:
        raise KeyAccessError(f"cannot read key {target}: {exc.strerror or exc}") from exc
    if len(pem) > MAX_KEY_BYTES:
        raise KeyAccessError(f"{target} is not a PEM key (over {MAX_KEY_BYTES} bytes)")
    try:
        key = serialization.load_pem_private_key(pem, password.encode() if password else None)
    except TypeError:
        raise KeyAccessError(f"{target} is encrypted: set REGISTRY_KEYSTORE_PASSWORD") from None
    except ValueError:
        raise KeyAccessError(f"{target}: not a PEM private key, or the password is wrong") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name != "secp256r1":
        curve = getattr(getattr(key, "curve", None), "name", type(key).__name__)
        raise KeyAccessError(f"{target} is a {curve} key; OpenSSF model signing needs P-256 "
                             "(create one with `registry key new --curve p256`)")
    return key


def model_signing_order(paths: list[str]) -> list[str]:
    """The order ``model_signing`` lists resources in (PurePosixPath order: component by component)."""
    return sorted(paths, key=PurePosixPath)


def statement(files: "FileList", model_name: str) -> dict[str, Any]:
    """The in-toto statement ``model_signing`` signs for these files."""
    by_path = {e.path: e for e in files.entries}
    ordered = [by_path[p] for p in model_signing_order(list(by_path))]
    root = hashlib.sha256(b"".join(e.sha256 for e in ordered)).hexdigest()
    return {
        "_type": STATEMENT_TYPE,
        "subject": [{"name": model_name, "digest": {"sha256": root}}],
        "predicateType": PREDICATE_TYPE,
        "predicate": {
            "serialization": {"method": "files", "hash_type": "sha256", "allow_symlinks": False,
                              "ignore_paths": IGNORE_PATHS},
            "resources": [{"name": e.path, "algorithm": "sha256", "digest": e.sha256.hex()} for e in ordered],
        },
    }


def pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE v1 pre-authentication encoding."""
    kind = payload_type.encode()
    return b"DSSEv1 %d %s %d %s" % (len(kind), kind, len(payload), payload)


def sign_bundle(doc: dict[str, Any], key: Any) -> dict[str, Any]:
    """A Sigstore bundle v0.3 (DSSE envelope, key hint) over ``doc`` signed with the P-256 ``key``."""
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    payload = json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()
    signature = key.sign(pae(PAYLOAD_TYPE, payload), ec.ECDSA(hashes.SHA256()))
    pub = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    return {
        "mediaType": BUNDLE_MEDIA_TYPE,
        "verificationMaterial": {"publicKey": {"hint": hashlib.sha256(pub).hexdigest()}, "tlogEntries": []},
        "dsseEnvelope": {
            "payload": base64.b64encode(payload).decode(),
            "payloadType": PAYLOAD_TYPE,
            "signatures": [{"sig": base64.b64encode(signature).decode(), "keyid": ""}],
        },
    }


@dataclass(frozen=True)
class OmsExport:
    path: Path
    sha256: bytes
    files: int
    ref: str
    subject: str

    def to_json(self) -> dict[str, Any]:
        return {"ref": self.ref, "signature": str(self.path), "sha256": self.sha256.hex(), "files": self.files,
                "model_name": self.subject,
                "attest": f"registry attest {self.ref} --pass --report {self.path}"}


def export_oms(ref: str, out: str | os.PathLike[str], key_path: str | os.PathLike[str], password: str | None,
               **verify_kwargs: Any) -> OmsExport:
    """Verifies ``ref`` and writes the OMS bundle for its verified files to ``out`` (atomically)."""
    from registry.content.filelist import FileEntry, FileList
    from registry.verify import VerificationFailed
    from registry.verify.procedure import verify_artifact

    key = load_p256_key(key_path, password)  # a wrong key fails before the (long) verification
    report, artifact = verify_artifact(ref, **verify_kwargs)
    try:
        if not report.ok or not artifact.ok or report.release is None:
            raise VerificationFailed(report)
        record = report.release
        if artifact.tree is not None:
            files = artifact.tree.files
            name = Path(str(verify_kwargs["file"])).name if verify_kwargs.get("file") else record.name.split("/")[-1]
        else:
            from registry.pull import model_filename

            given = verify_kwargs.get("file")
            filename = Path(str(given)).name if given else model_filename(record.name, record.version)
            files = FileList.build([FileEntry(filename, record.artifact_size, record.artifact_sha256)])
            name = filename
    finally:
        artifact.release()
    bundle = sign_bundle(statement(files, name), key)
    data = (json.dumps(bundle, indent=2) + "\n").encode()
    atomic_write(out, data)
    return OmsExport(Path(out), hashlib.sha256(data).digest(), len(files.entries), record.ref, name)
