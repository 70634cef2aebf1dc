"""Verification before load: nine named checks, one report, and a runtime session only if all pass.

The checks run in the order of the design (resolve, not_revoked, publisher_authorised, signature,
sha256, cid, provenance, onnx, policy). Each records pass/fail/skip with its evidence (expected vs
actual digests, the recovered signer, the revocation reason), and the procedure keeps going where
the answer is still meaningful so an operator sees every problem at once. Bytes that failed
integrity are never parsed or loaded.

``load_verified`` hashes and loads the *same* in-memory bytes: the artifact is read once (bounded
by the signed size plus one byte, so an endless or extended stream is cut off), hashed, checked, and
that buffer goes to onnxruntime. No path is opened again after the check, so swapping the file
between check and load has no effect.

Importing this module is cheap and never imports torch; web3, eth-account, onnx and onnxruntime are
imported inside the functions that need them, because a device's first verify must be fast.
"""

from __future__ import annotations

import hashlib
import os
import sys
import types
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Literal, Sequence

from registry.errors import (
    ChainError,
    InputError,
    IntegrityError,
    PolicyError,
    ProvenanceError,
    RegistryError,
    RevokedError,
    SignatureError,
    UnreachableError,
)

if TYPE_CHECKING:
    import onnxruntime

    from registry.chain.client import RegistryClient
    from registry.chain.records import ReleaseRecord
    from registry.config import Settings
    from registry.content.base import ContentStore
    from registry.manifest import Manifest
    from registry.policy import Policy

CHECK_NAMES: tuple[str, ...] = (
    "resolve", "not_revoked", "publisher_authorised", "signature", "sha256", "cid", "provenance", "onnx", "policy",
)
# The error class a failing check stands for (its exit code is what a script on a device branches on).
CHECK_ERRORS: dict[str, type[RegistryError]] = {
    "resolve": ChainError,
    "not_revoked": RevokedError,
    "publisher_authorised": SignatureError,
    "signature": SignatureError,
    "sha256": IntegrityError,
    "cid": IntegrityError,
    "provenance": ProvenanceError,
    "onnx": PolicyError,
    "policy": PolicyError,
}
MAX_PARENT_DEPTH = 64
Status = Literal["pass", "fail", "skip"]


@dataclass
class Check:
    name: str
    status: Status
    detail: str = ""
    evidence: dict[str, Any] = field(default_factory=dict)
    exit_code: int | None = None  # set on failure: the class of the failure

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "status": self.status, "detail": self.detail,
                               "evidence": self.evidence}
        if self.exit_code is not None:
            out["exit_code"] = self.exit_code
        return out


@dataclass
class VerificationReport:
    ref: str
    checks: list[Check]
    release: "ReleaseRecord | None" = None
    mode: Literal["online", "offline"] = "online"
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(c.status != "fail" for c in self.checks) and any(c.status == "pass" for c in self.checks)

    @property
    def exit_code(self) -> int:
        """0 when ok, else the exit code of the first failing check (in verification order)."""
        for check in self.checks:
            if check.status == "fail":
                return check.exit_code or CHECK_ERRORS[check.name].exit_code
        return 0

    @property
    def first_failure(self) -> Check | None:
        return next((c for c in self.checks if c.status == "fail"), None)

    def check(self, name: str) -> Check:
        return next(c for c in self.checks if c.name == name)

    def summary(self) -> str:
        failure = self.first_failure
        if failure is None:
            return f"{self.ref}: verified ({self.mode})"
        return f"{self.ref}: {failure.name} failed: {failure.detail}"

    def to_json(self) -> dict[str, Any]:
        return {
            "ref": self.ref,
            "ok": self.ok,
            "exit_code": self.exit_code,
            "mode": self.mode,
            "notes": self.notes,
            "release": self.release.to_json() if self.release is not None else None,
            "checks": [c.to_json() for c in self.checks],
        }


class VerificationFailed(RegistryError):
    """Raised by ``load_verified``/``pull`` when a check failed; carries the full report."""

    def __init__(self, report: VerificationReport) -> None:
        super().__init__(report.summary())
        self.report = report
        self.exit_code = report.exit_code


@dataclass
class _Artifact:
    data: bytearray | None = None
    ok: bool = False
    sha256: bytes | None = None


def verify(
    ref: str,
    *,
    file: str | os.PathLike[str] | None = None,
    manifest: "str | os.PathLike[str] | bytes | Manifest | None" = None,
    trust: Iterable[str] = (),
    policy: "Policy | str | os.PathLike[str] | None" = None,
    settings: "Settings | None" = None,
    data: bytes | None = None,
    provenance: str | os.PathLike[str] | bytes | None = None,
    offline: bool = False,
    installed_version: str | None = None,
    client: "RegistryClient | None" = None,
    store: "ContentStore | None" = None,
    progress: Any = None,
) -> VerificationReport:
    """Runs the nine checks and returns the report (never raises for a failed check).

    ``file``/``data`` give the artifact (else it is fetched from the store, block by block);
    ``manifest`` allows offline verification against ``trust``ed publishers (and is looked for
    beside ``file``); ``offline`` never touches an RPC; ``installed_version`` feeds the rollback rule.
    """
    report, _ = _run(ref, file=file, manifest=manifest, trust=trust, policy=policy, settings=settings, data=data,
                     provenance=provenance, offline=offline, installed_version=installed_version, client=client,
                     store=store, progress=progress)
    return report


def load_verified(ref: str, **kwargs: Any) -> "onnxruntime.InferenceSession":
    """Verifies, then builds an InferenceSession from the very bytes that were hashed.

    Raises ``VerificationFailed`` (with ``.report``) when any check fails; nothing is loaded then.
    """
    session_options = kwargs.pop("session_options", None)
    providers = kwargs.pop("providers", None) or ["CPUExecutionProvider"]
    report, artifact = _run(ref, **kwargs)
    if not report.ok or artifact.data is None or not artifact.ok:
        raise VerificationFailed(report)
    import onnxruntime

    try:
        # bytes() copies the private, already-verified buffer; nothing is read from disk again.
        return onnxruntime.InferenceSession(bytes(artifact.data), sess_options=session_options, providers=providers)
    except Exception as exc:  # onnxruntime raises its own Fail/InvalidGraph types
        raise PolicyError(f"onnxruntime refused the verified model: {str(exc).splitlines()[0][:300]}") from exc


def verify_bytes(ref: str, **kwargs: Any) -> tuple[VerificationReport, bytearray | None]:
    """The report and, only when it is ok, the verified bytes (what ``pull`` writes to disk)."""
    report, artifact = _run(ref, **kwargs)
    return report, (artifact.data if report.ok and artifact.ok else None)


# --------------------------------------------------------------------------------------------
# The procedure
# --------------------------------------------------------------------------------------------


def _fail(name: str, detail: str, evidence: dict[str, Any] | None = None,
          error: type[RegistryError] | None = None) -> Check:
    code = (error or CHECK_ERRORS[name]).exit_code
    return Check(name, "fail", detail, evidence or {}, exit_code=code)


def _run(
    ref: str,
    *,
    file: str | os.PathLike[str] | None = None,
    manifest: Any = None,
    trust: Iterable[str] = (),
    policy: Any = None,
    settings: "Settings | None" = None,
    data: bytes | None = None,
    provenance: str | os.PathLike[str] | bytes | None = None,
    offline: bool = False,
    installed_version: str | None = None,
    client: "RegistryClient | None" = None,
    store: "ContentStore | None" = None,
    progress: Any = None,
) -> tuple[VerificationReport, _Artifact]:
    checks: list[Check] = []
    report = VerificationReport(ref=str(ref), checks=checks)
    artifact = _Artifact()

    def skip_rest(reason: str) -> tuple[VerificationReport, _Artifact]:
        done = {c.name for c in checks}
        checks.extend(Check(n, "skip", reason) for n in CHECK_NAMES if n not in done)
        return report, artifact

    # -- inputs a user can get wrong: reported under "resolve", never raised -------------------
    try:
        from registry.config import load_settings
        from registry.policy import Policy, load_policy
        from registry.release import parse_ref

        settings = settings or load_settings()
        pol: Policy = policy if isinstance(policy, Policy) else (load_policy(policy) if policy else Policy())
        parsed = parse_ref(ref)
        trusted = _trusted(trust, pol)
        man = _load_manifest(manifest, file, parsed)
    except Exception as exc:  # bad input is a RegistryError; anything else still ends in the report
        checks.append(_unexpected("resolve", exc))
        return skip_rest("resolve failed")

    # -- 1. resolve ----------------------------------------------------------------------------
    record = None
    if not offline and client is None:
        try:
            client = _connect(settings, quick=man is not None)
        except UnreachableError as exc:
            if man is None:
                checks.append(_fail("resolve", str(exc), {"rpc": settings.profile.rpc_url or "local devnet"},
                                    error=UnreachableError))
                return skip_rest("resolve failed")
            report.notes.append(f"RPC unreachable ({exc}); verified offline from the manifest")
        except Exception as exc:
            if man is None:
                checks.append(_unexpected("resolve", exc))
                return skip_rest("resolve failed")
            report.notes.append(f"chain not usable ({exc}); verified offline from the manifest")
    if man is not None and not _manifest_matches_ref(man, parsed):
        checks.append(_fail("resolve", f"manifest is for {man.ref}, not {ref}",
                            {"manifest": man.ref, "ref": str(ref)}, error=InputError))
        return skip_rest("resolve failed")
    try:
        if client is not None:
            record = client.get_by_id(man.release_id) if man is not None else client.resolve(parsed)
            if man is not None and parsed.kind == "latest":
                newest = client.resolve(parsed)
                if newest.id != record.id:
                    checks.append(_fail("resolve", f"manifest is for {man.ref}, but {parsed.name}@latest is "
                                                   f"{newest.ref}", {"manifest": man.ref, "latest": newest.ref},
                                        error=InputError))
                    return skip_rest("resolve failed")
            report.mode = "online"
            checks.append(Check("resolve", "pass", f"{record.ref} found on chain {client.chain_id}",
                                {"release_id": "0x" + record.id.hex(), "chain_id": client.chain_id,
                                 "contract": client.address, "publisher": record.publisher,
                                 "source": "chain"}))
        else:
            assert man is not None
            record = _record_from_manifest(man)
            report.mode = "offline"
            checks.append(Check("resolve", "pass", f"{man.ref} read from the manifest (offline)",
                                {"release_id": "0x" + man.release_id.hex(), "chain_id": man.chain_id,
                                 "contract": man.contract, "publisher": man.publisher, "source": "manifest"}))
    except Exception as exc:
        checks.append(_unexpected("resolve", exc))
        return skip_rest("resolve failed")
    report.release = record

    # -- 2.-4. chain facts and the signature ----------------------------------------------------
    checks.append(_guarded("not_revoked", lambda: _check_not_revoked(record, client)))
    checks.append(_guarded("publisher_authorised", lambda: _check_publisher(record, client, trusted)))
    checks.append(_guarded("signature", lambda: _check_signature(record, man, client, pol, settings)))

    # -- 5./6. sha256 and cid over one in-memory copy ------------------------------------------
    try:
        sha_check, cid_check = _check_bytes(record, man, file, data, settings, store, artifact, progress)
    except Exception as exc:  # a bug or an OS error mid-read must still end in a report, never a traceback
        artifact.ok, artifact.data = False, None
        sha_check, cid_check = _unexpected("sha256", exc), Check("cid", "skip", "no bytes to hash")
    checks.extend([sha_check, cid_check])

    # -- 7. provenance -------------------------------------------------------------------------
    prov_doc: dict[str, Any] | None = None
    try:
        prov_check, prov_doc = _check_provenance(record, man, file, provenance, settings, store, artifact)
    except Exception as exc:
        prov_check = _unexpected("provenance", exc)
    checks.append(prov_check)

    # -- 8. onnx -------------------------------------------------------------------------------
    if artifact.ok and artifact.data is not None:
        verified = artifact.data
        checks.append(_guarded("onnx", lambda: _check_onnx(verified, pol)))
    else:
        checks.append(Check("onnx", "skip", "artifact bytes did not pass integrity checks; not parsed"))

    # -- 9. policy -----------------------------------------------------------------------------
    checks.append(_guarded("policy", lambda: _check_policy(record, client, pol, prov_doc, installed_version)))
    if any(c.status == "fail" for c in checks):
        artifact.data = None  # nothing that failed any check is handed to a loader
    return report, artifact


def _guarded(name: str, run: Any) -> Check:
    try:
        return run()
    except RegistryError as exc:
        return _fail(name, str(exc), error=type(exc))
    except Exception as exc:
        return _unexpected(name, exc)


def _unexpected(name: str, exc: BaseException) -> Check:
    if isinstance(exc, RegistryError):
        return _fail(name, str(exc), error=type(exc))
    message = str(exc).splitlines()[0][:200] if str(exc) else ""
    return _fail(name, f"unexpected {type(exc).__name__}: {message}", {"exception": type(exc).__name__})


# --------------------------------------------------------------------------------------------
# Inputs
# --------------------------------------------------------------------------------------------


def _trusted(trust: Iterable[str], pol: "Policy") -> frozenset[str]:
    from eth_utils import is_address, to_checksum_address

    out = set(pol.trusted_publishers)
    for item in trust:
        if not isinstance(item, str) or not is_address(item):
            raise InputError(f"--trust {str(item)[:60]!r} is not a 0x-prefixed 20-byte address")
        out.add(to_checksum_address(item))
    return frozenset(out)


def _load_manifest(manifest: Any, file: Any, parsed: Any) -> "Manifest | None":
    from registry.manifest import Manifest, load_manifest, path_beside

    if isinstance(manifest, Manifest):
        return manifest
    if manifest is not None:
        return load_manifest(manifest)
    if file is not None and parsed.kind == "version":
        beside = path_beside(file, parsed.name, parsed.version)
        if beside.is_file():
            return load_manifest(beside)
    return None


def _manifest_matches_ref(man: "Manifest", parsed: Any) -> bool:
    if parsed.kind == "version":
        return (man.release.name, man.release.version) == (parsed.name, parsed.version)
    if parsed.kind == "latest":
        return man.release.name == parsed.name
    return man.release.artifact_sha256 == parsed.sha256


def _connect(settings: "Settings", quick: bool) -> "RegistryClient":
    """The profile's registry. With a manifest in hand one quick attempt is enough: offline is fine."""
    from dataclasses import replace

    from registry.chain.client import RegistryClient

    if quick and not settings.profile.is_local:
        settings = replace(settings, profile=replace(settings.profile, retries=0,
                                                      timeout_s=min(settings.profile.timeout_s, 3.0)))
    return RegistryClient.connect(settings)


def _record_from_manifest(man: "Manifest") -> "ReleaseRecord":
    from registry.chain.records import ReleaseRecord

    rel = man.release
    return ReleaseRecord(
        id=rel.id, name=rel.name, version=rel.version, artifact_sha256=rel.artifact_sha256,
        artifact_cid=rel.artifact_cid, artifact_size=rel.artifact_size, provenance_sha256=rel.provenance_sha256,
        provenance_cid=rel.provenance_cid, parent=rel.parent, publisher=man.publisher, published_at=0,
        revoked_at=0, revocation_reason="",
    )


# --------------------------------------------------------------------------------------------
# Checks 2-4: chain facts and the signature
# --------------------------------------------------------------------------------------------


def _check_not_revoked(record: "ReleaseRecord", client: "RegistryClient | None") -> Check:
    if client is None:
        return Check("not_revoked", "skip", "offline: no RPC, revocation not checked (re-verify when online)")
    if record.revoked:
        return _fail("not_revoked", f"{record.ref} was revoked: {record.revocation_reason or '(no reason given)'}",
                     {"release_id": "0x" + record.id.hex(), "revoked_at": record.revoked_at,
                      "reason": record.revocation_reason})
    lineage: list[str] = []
    current = record
    try:
        for _ in range(MAX_PARENT_DEPTH):
            if not current.has_parent:
                break
            parent = client.get_by_id(current.parent)
            lineage.append(parent.ref)
            if parent.revoked:
                return _fail("not_revoked",
                             f"ancestor {parent.ref} was revoked: {parent.revocation_reason or '(no reason given)'}",
                             {"revoked_ancestor": parent.ref, "release_id": "0x" + parent.id.hex(),
                              "revoked_at": parent.revoked_at, "reason": parent.revocation_reason,
                              "lineage": lineage})
            current = parent
    except RegistryError as exc:
        return _fail("not_revoked", f"cannot read the lineage: {exc}", {"lineage": lineage}, error=type(exc))
    return Check("not_revoked", "pass", "not revoked" + (f" (nor its {len(lineage)} ancestors)" if lineage else ""),
                 {"lineage": lineage})


def _check_publisher(record: "ReleaseRecord", client: "RegistryClient | None", trusted: frozenset[str]) -> Check:
    evidence: dict[str, Any] = {"publisher": record.publisher, "trusted": sorted(trusted)}
    if trusted and record.publisher not in trusted:
        return _fail("publisher_authorised", f"publisher {record.publisher} is not in the trusted set", evidence)
    if client is None:
        if not trusted:
            return _fail("publisher_authorised",
                         "offline verification needs trusted publishers (--trust ADDR or policy trusted_publishers)",
                         evidence)
        return Check("publisher_authorised", "pass", f"{record.publisher} is a trusted publisher (offline)", evidence)
    try:
        allowed = client.is_publisher(record.name, record.publisher)
    except RegistryError as exc:
        return _fail("publisher_authorised", f"cannot read publishers: {exc}", evidence, error=type(exc))
    evidence["is_publisher_on_chain"] = allowed
    if not allowed:
        return _fail("publisher_authorised",
                     f"{record.publisher} is no longer a publisher of {record.name} on chain", evidence)
    detail = f"{record.publisher} is a publisher of {record.name}" + (" and trusted" if trusted else "")
    return Check("publisher_authorised", "pass", detail, evidence)


def _check_signature(record: "ReleaseRecord", man: "Manifest | None", client: "RegistryClient | None",
                     pol: "Policy", settings: "Settings") -> Check:
    from eth_utils import to_checksum_address

    if man is None:
        # Online without a manifest: the contract ran SignatureChecker against this publisher when it
        # accepted the release, and nonce/deadline are not stored, so the chain's word is the evidence.
        return Check("signature", "pass", "checked by the contract at publish time (no manifest to re-check)",
                     {"publisher": record.publisher, "source": "chain"})
    from registry.release import recover_publisher

    evidence: dict[str, Any] = {"manifest_chain_id": man.chain_id, "manifest_contract": man.contract,
                                "nonce": man.release.nonce, "claimed_publisher": man.publisher}
    expected_domain: list[tuple[str, int | None, str | None]] = []
    if client is not None:
        expected_domain.append(("chain", client.chain_id, client.address))
    if pol.chain_id is not None or pol.contract is not None:
        expected_domain.append(("policy", pol.chain_id, pol.contract))
    if settings.profile.chain_id is not None or settings.profile.contract is not None:
        expected_domain.append(("profile", settings.profile.chain_id, settings.profile.contract))
    for source, chain_id, contract in expected_domain:
        if chain_id is not None and chain_id != man.chain_id:
            evidence.update(expected_chain_id=chain_id, domain_source=source)
            return _fail("signature", f"manifest is signed for chain {man.chain_id}, {source} expects {chain_id} "
                                      "(replayed from another chain?)", evidence)
        if contract is not None and to_checksum_address(contract) != man.contract:
            evidence.update(expected_contract=to_checksum_address(contract), domain_source=source)
            return _fail("signature", f"manifest is signed for contract {man.contract}, {source} expects "
                                      f"{to_checksum_address(contract)} (replayed from another contract?)", evidence)
    # Online, the signed fields come from the chain's record, so a manifest altered in any field
    # (digest, size, parent, CIDs) fails here; nonce and deadline come from the manifest.
    release = record.to_release(man.release.nonce, man.release.deadline) if client is not None else man.release
    mismatched = _fields_differing(man.release, release)
    if mismatched:
        evidence["manifest_differs_from_chain"] = mismatched
    try:
        recovered = recover_publisher(release, man.signature, man.chain_id, man.contract)
    except SignatureError as exc:
        return _fail("signature", str(exc), evidence)
    evidence["recovered"] = recovered
    evidence["publisher"] = record.publisher
    if recovered != record.publisher:
        if client is not None and _erc1271_valid(client, record.publisher, release, man.signature):
            evidence["erc1271"] = True
            return Check("signature", "pass", f"ERC-1271 wallet {record.publisher} accepts the signature", evidence)
        why = f" (manifest differs from chain in {', '.join(mismatched)})" if mismatched else ""
        return _fail("signature", f"signature recovers to {recovered}, not the publisher {record.publisher}{why}",
                     evidence)
    if mismatched:
        return _fail("signature", f"manifest differs from the chain record in {', '.join(mismatched)}", evidence)
    return Check("signature", "pass", f"EIP-712 signature recovers to {recovered}", evidence)


def _fields_differing(a: Any, b: Any) -> list[str]:
    names = ("artifact_sha256", "artifact_cid", "artifact_size", "provenance_sha256", "provenance_cid", "parent")
    return [n for n in names if getattr(a, n) != getattr(b, n)]


def _erc1271_valid(client: "RegistryClient", wallet: str, release: Any, signature: bytes) -> bool:
    """Contract-wallet publishers: ask the wallet (isValidSignature == 0x1626ba7e)."""
    try:
        if not client.w3.eth.get_code(wallet):
            return False
        from registry.release import signing_digest

        digest = signing_digest(release, client.chain_id, client.address)
        from eth_abi import encode

        call = bytes.fromhex("1626ba7e") + encode(["bytes32", "bytes"], [digest, bytes(signature)])
        answer = bytes(client.w3.eth.call({"to": wallet, "data": call}))
        return answer[:4] == bytes.fromhex("1626ba7e")
    except Exception:  # any failure of the wallet call means "not valid"
        return False


# --------------------------------------------------------------------------------------------
# Checks 5-6: the bytes
# --------------------------------------------------------------------------------------------


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


def _check_bytes(record: "ReleaseRecord", man: "Manifest | None", file: Any, data: bytes | None,
                 settings: "Settings", store: "ContentStore | None", artifact: _Artifact,
                 progress: Any) -> tuple[Check, Check]:
    from registry.content.cids import cid_bytes_v1, cid_from_bytes, display
    from registry.content.unixfs import PROFILES, IterReader, import_bytes, import_stream

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
        failed = _fail("sha256", f"cannot read the artifact: {exc}", {"expected_size": expected_size},
                       error=type(exc))
        return failed, Check("cid", "skip", "no bytes to hash")

    actual_sha = result.sha256
    evidence = {"expected": record.artifact_sha256.hex(), "actual": actual_sha.hex(),
                "expected_size": expected_size, "actual_size": len(buf), "source": source}
    if len(buf) > expected_size:
        evidence["actual_size"] = f">{expected_size}"
        sha = _fail("sha256", f"artifact is larger than the signed size {expected_size} (stopped reading at "
                              f"{limit} bytes)", evidence)
    elif len(buf) < expected_size:
        sha = _fail("sha256", f"artifact is {len(buf)} bytes, the signed size is {expected_size} (truncated)",
                    evidence)
    elif actual_sha != record.artifact_sha256:
        sha = _fail("sha256", "artifact SHA-256 does not match the release", evidence)
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
        cid = _fail("cid", f"CID recomputed from the bytes ({cid_evidence['actual']}) does not match the release "
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


# --------------------------------------------------------------------------------------------
# Check 7: provenance
# --------------------------------------------------------------------------------------------


def _check_provenance(record: "ReleaseRecord", man: "Manifest | None", file: Any, provenance: Any,
                      settings: "Settings", store: "ContentStore | None",
                      artifact: _Artifact) -> tuple[Check, dict[str, Any] | None]:
    from registry.provenance import MAX_DOCUMENT_BYTES, load_provenance, subject_sha256

    raw: bytes | None = None
    source = ""
    try:
        if isinstance(provenance, (bytes, bytearray)):
            raw, source = bytes(provenance), "memory"
        elif provenance is not None:
            raw, source = _read_bounded(Path(provenance), MAX_DOCUMENT_BYTES), f"file {provenance}"
        elif file is not None and (beside := provenance_path_beside(file, record.name, record.version)).is_file():
            raw, source = _read_bounded(beside, MAX_DOCUMENT_BYTES), f"file {beside.name}"
        else:
            from registry.content.stores import open_store

            store = store or open_store(settings)
            raw = store.get_bytes(record.provenance_cid, max_size=MAX_DOCUMENT_BYTES)
            source = "store (verified block by block)"
    except RegistryError as exc:
        return _fail("provenance", f"provenance document not available: {exc}",
                     {"expected_sha256": record.provenance_sha256.hex()},
                     error=UnreachableError if isinstance(exc, UnreachableError) else ProvenanceError), None
    actual = hashlib.sha256(raw).digest()
    evidence: dict[str, Any] = {"expected_sha256": record.provenance_sha256.hex(), "actual_sha256": actual.hex(),
                                "source": source}
    if actual != record.provenance_sha256:
        return _fail("provenance", "provenance document SHA-256 does not match the release", evidence), None
    try:
        doc = load_provenance(raw)
        subject = subject_sha256(doc)
    except ProvenanceError as exc:
        return _fail("provenance", str(exc), evidence), None
    evidence["subject_sha256"] = subject
    evidence["release_artifact_sha256"] = record.artifact_sha256.hex()
    if subject != record.artifact_sha256.hex():
        return _fail("provenance", "provenance subject is another artifact "
                                   f"(sha256:{subject[:16]}…, release has sha256:{record.artifact_sha256.hex()[:16]}…)",
                     evidence), None
    return Check("provenance", "pass", "provenance bound to the artifact digest", evidence), doc


def provenance_path_beside(artifact: str | os.PathLike[str], name: str, version: str) -> Path:
    """Where ``pull`` leaves the provenance document: ``owner+model@V.provenance.json``."""
    from registry.manifest import NAME_SEPARATOR_IN_FILENAME

    return Path(artifact).resolve().parent / f"{name.replace('/', NAME_SEPARATOR_IN_FILENAME)}@{version}.provenance.json"


def _read_bounded(path: Path, limit: int) -> bytes:
    try:
        with path.open("rb") as handle:
            data = handle.read(limit + 1)
    except OSError as exc:
        raise ProvenanceError(f"cannot read {path}: {exc.strerror or exc}") from exc
    if len(data) > limit:
        raise ProvenanceError(f"{path.name} is larger than {limit} bytes")
    return data


# --------------------------------------------------------------------------------------------
# Checks 8-9: format and policy
# --------------------------------------------------------------------------------------------


def _check_onnx(data: bytes, pol: "Policy") -> Check:
    from registry.onnx_checks import check_onnx

    try:
        facts = check_onnx(data, pol)
    except PolicyError as exc:
        return _fail("onnx", str(exc))
    return Check("onnx", "pass", f"ONNX IR {facts.ir_version}, opset {facts.opset}, {facts.nodes} nodes",
                 facts.evidence())


def _check_policy(record: "ReleaseRecord", client: "RegistryClient | None", pol: "Policy",
                  doc: dict[str, Any] | None, installed_version: str | None) -> Check:
    from registry.policy import version_key
    from registry.provenance import accuracy

    if not pol.has_rules:
        return Check("policy", "skip", "no policy rules to apply")
    evidence: dict[str, Any] = {}
    problems: list[str] = []
    if pol.refuse_rollback and installed_version is not None:
        evidence["installed_version"] = installed_version
        try:
            older = version_key(record.version) < version_key(installed_version)
        except ValueError:
            older = False
        if older:
            problems.append(f"rollback refused: {record.version} is older than installed {installed_version}")
    if pol.min_accuracy is not None:
        value = accuracy(doc) if doc is not None else None
        evidence["min_accuracy"] = pol.min_accuracy
        evidence["accuracy"] = value
        if value is None:
            problems.append("provenance records no accuracy (predicate.metrics.accuracy)")
        elif value < pol.min_accuracy:
            problems.append(f"accuracy {value:.4f} is below the policy minimum {pol.min_accuracy:.4f}")
    if pol.min_confirmations:
        evidence["min_confirmations"] = pol.min_confirmations
        if client is None:
            problems.append("confirmations cannot be checked offline")
        else:
            try:
                confirmations = _confirmations(client, record)
            except RegistryError as exc:
                problems.append(f"cannot count confirmations: {exc}")
            else:
                evidence["confirmations"] = confirmations
                if confirmations < pol.min_confirmations:
                    problems.append(f"{confirmations} confirmations, policy needs {pol.min_confirmations}")
    if pol.required_attestations:
        evidence["required_attestations"] = pol.required_attestations
        if client is None:
            problems.append("attestations cannot be checked offline")
        else:
            try:
                attestations = client.attestations(record.id)
            except RegistryError as exc:
                problems.append(f"cannot read attestations: {exc}")
            else:
                listed = set(pol.attesters)
                passed = sorted(a.attester for a in attestations if a.passed and a.attester in listed)
                failed = sorted(a.attester for a in attestations if not a.passed and a.attester in listed)
                evidence.update(passed_by=passed, failed_by=failed)
                if len(passed) < pol.required_attestations:
                    problems.append(f"{len(passed)} of {pol.required_attestations} required attestations from "
                                    "listed attesters")
    if problems:
        return _fail("policy", "; ".join(problems), evidence)
    return Check("policy", "pass", "policy rules met", evidence)


def _confirmations(client: "RegistryClient", record: "ReleaseRecord") -> int:
    """Blocks on top of the one that anchored the release (from its ReleasePublished event)."""
    def read() -> int:
        logs = client.contract.events.ReleasePublished().get_logs(
            from_block=0, argument_filters={"releaseId": record.id})
        if not logs:
            raise ChainError(f"no ReleasePublished event for {record.ref}")
        return int(client.w3.eth.block_number) - int(logs[-1]["blockNumber"])

    from registry.chain.rpc import with_retries

    return with_retries(read, client.rpc_url, client.retries)


def describe_exit_codes() -> Sequence[tuple[int, str]]:
    return (
        (0, "verified"),
        (3, "bad input (reference, manifest, policy file)"),
        (6, "chain refused (unknown release, wrong chain, no contract)"),
        (10, "integrity: SHA-256, CID or size mismatch"),
        (11, "signature or publisher authorisation"),
        (12, "revoked (the release or an ancestor)"),
        (13, "provenance missing, altered or for another artifact"),
        (14, "format/policy: not acceptable ONNX or a policy rule refuses it"),
        (15, "unreachable: RPC, store or gateway did not answer"),
    )


class _CallableModule(types.ModuleType):
    """``registry.verify(ref, ...)`` must work even after ``import registry.verify`` made the package
    attribute the module: the module itself then forwards calls to ``verify``."""

    def __call__(self, *args: Any, **kwargs: Any) -> VerificationReport:
        return verify(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
