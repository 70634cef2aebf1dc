"""The verification procedure: nine named checks, one report, and a runtime session only if all pass.

The checks run in the order of the design (resolve, not_revoked, publisher_authorised, signature,
sha256, cid, provenance, onnx, policy). Each records pass/fail/skip with its evidence (expected vs
actual digests, the recovered signer, the revocation reason), and the procedure keeps going where
the answer is still meaningful so an operator sees every problem at once. Bytes that failed
integrity are never parsed or loaded. The report keeps that order even where the work overlaps:
checks 2-4 read the chain while 5-6 hash the bytes, and with a manifest beside a local file the
hashing starts before check 1 has reached the chain (the bytes are still judged against the
chain's record, never the manifest's).

``load_verified`` hashes and loads the *same* in-memory bytes: the artifact is read once (bounded
by the signed size plus one byte, so an endless or extended stream is cut off), hashed, checked, and
that buffer goes to onnxruntime. No path is opened again after the check, so swapping the file
between check and load has no effect.

Importing this module is cheap and never imports torch; onnx and onnxruntime are imported inside
the functions that need them, because a device's first verify must be fast. The chain is read
through ``registry.chain.reads.ChainReader``: connected here, that is the lean reader (JSON-RPC over
``http.client``, recovery with coincurve), so a verify never imports web3, eth-account or py_ecc; a
caller may pass any reader, e.g. a ``RegistryClient`` it already holds.

The checks themselves live in one module per group (chain_checks, artifact, provenance_check,
card_check, rules); this module orders them, feeds them their inputs and decides what reaches a loader.

The chain is never skipped by accident: only an explicit ``offline=True`` (``--offline``) or
``offline = true`` in the policy verifies from a manifest alone. An RPC that does not answer is a
failed resolve (exit 15), never a silent switch to offline. Offline, the manifest's chain id (and
contract, when one is known) must match the profile, ``chain_id=`` (``--chain-id``) or the policy.
References go through ``registry.chain.resolve``: aliases, SemVer labels and ambiguous digests
are decided there, the same way for every command.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Iterable

from registry.errors import InputError, UnreachableError
from registry.verify.artifact import ArtifactBytes, Capture, check_bytes
from registry.verify.chain_checks import (
    check_not_revoked,
    check_publisher,
    check_signature,
)
from registry.verify.card_check import check_card
from registry.verify.provenance_check import check_provenance
from registry.verify.report import (
    CHECK_NAMES,
    Check,
    VerificationFailed,
    VerificationReport,
    fail,
    guarded,
    unexpected,
)
from registry.verify.rules import check_onnx, check_policy

if TYPE_CHECKING:
    import onnxruntime

    from registry.chain.reads import ChainReader
    from registry.chain.records import ReleaseRecord
    from registry.config import Settings
    from registry.content.base import ContentStore
    from registry.manifest import Manifest
    from registry.policy import Policy



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
    client: "ChainReader | None" = None,
    store: "ContentStore | None" = None,
    progress: Any = None,
    card: str | os.PathLike[str] | bytes | None = None,
    chain_id: int | None = None,
    file_progress: Any = None,
) -> VerificationReport:
    """Runs the nine checks and returns the report (never raises for a failed check).

    ``file``/``data`` give the artifact (else it is fetched from the store, block by block);
    ``manifest`` allows offline verification against ``trust``ed publishers (and is looked for
    beside ``file``); ``offline`` never touches an RPC; ``installed_version`` feeds the rollback rule;
    ``card`` gives the model card's bytes (else beside ``file``, else the store) when the release has
    one; ``chain_id`` pins the chain a manifest must be signed for (offline).
    """
    report, artifact = _run(ref, file=file, manifest=manifest, trust=trust, policy=policy, settings=settings, data=data,
                     provenance=provenance, offline=offline, installed_version=installed_version, client=client,
                     store=store, progress=progress, card=card, chain_id=chain_id, file_progress=file_progress)
    artifact.release()
    return report


def load_verified(ref: str, **kwargs: Any) -> "onnxruntime.InferenceSession":
    """Verifies, then builds an InferenceSession from the very bytes that were hashed.

    A single file is loaded from the verified in-memory buffer. A directory is loaded from memory
    when it fits protobuf's 2 GiB (the model bytes, with its external data handed to onnxruntime as
    in-memory files), else from the private copy written while hashing (a 0700 directory removed as
    soon as the session is built); never from the user's path. Raises ``VerificationFailed`` (with
    ``.report``) when any check fails; nothing is loaded then.
    """
    from registry.verify.loading import session_from_artifact

    session_options = kwargs.pop("session_options", None)
    providers = kwargs.pop("providers", None) or ["CPUExecutionProvider"]
    kwargs.setdefault("capture", Capture("load", _private_parent(kwargs.get("settings"))))
    report, artifact = _run(ref, **kwargs)
    try:
        if not report.ok or not artifact.ok or (artifact.data is None and artifact.tree is None):
            raise VerificationFailed(report)
        return session_from_artifact(artifact, session_options, providers)
    finally:
        artifact.release()


def _private_parent(settings: Any) -> str | None:
    """Where a large tree's private copy goes: the data dir (a real disk), not a RAM-backed /tmp."""
    try:
        from registry.config import load_settings

        home = (settings or load_settings()).home
        return str(home / "tmp")
    except Exception:  # no usable data dir: the system temp dir still works
        return None


def verify_bytes(ref: str, **kwargs: Any) -> tuple[VerificationReport, bytearray | None]:
    """The report and, only when it is ok, the verified bytes of a single-file release."""
    report, artifact = _run(ref, **kwargs)
    if artifact.tree is not None:
        artifact.release()
        return report, None
    data = bytearray(artifact.data) if report.ok and artifact.ok and artifact.data is not None else None
    artifact.release()
    return report, data


def verify_artifact(ref: str, **kwargs: Any) -> tuple[VerificationReport, ArtifactBytes]:
    """The report and what the hashing pass kept (``capture=Capture("stage", dir)`` for ``pull``).

    The caller owns the result: ``artifact.release()`` discards any staging directory left.
    """
    return _run(ref, **kwargs)


# --------------------------------------------------------------------------------------------
# The procedure
# --------------------------------------------------------------------------------------------


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
    client: "ChainReader | None" = None,
    store: "ContentStore | None" = None,
    progress: Any = None,
    card: str | os.PathLike[str] | bytes | None = None,
    chain_id: int | None = None,
    capture: Capture | None = None,
    file_progress: Any = None,
) -> tuple[VerificationReport, ArtifactBytes]:
    checks: list[Check] = []
    report = VerificationReport(ref=str(ref), checks=checks)
    artifact = ArtifactBytes()

    def skip_rest(reason: str) -> tuple[VerificationReport, ArtifactBytes]:
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
        offline = bool(offline or pol.offline)
        if offline:
            client = None  # offline never touches an RPC, even one the caller connected
        if offline and man is None:
            raise InputError("offline verification needs the release manifest (--manifest, or "
                             "NAME@VERSION.release.json beside --file)")
    except Exception as exc:  # bad input is a RegistryError; anything else still ends in the report
        checks.append(unexpected("resolve", exc))
        return skip_rest("resolve failed")

    _preload_onnx()  # its import overlaps the chain reads and the hashing, instead of following them

    # -- 1. resolve; 2.-4. chain facts; 5./6. sha256 and cid in one pass over the bytes ----------
    # The chain checks wait on the RPC (one round trip per ancestor, publisher and wallet call) while
    # the bytes are hashed on the other threads: on a remote node that is most of a small model's
    # verify. When a manifest names the bytes of a local file, hashing starts at once, before the
    # chain is even reached: the bytes are then judged against the record the chain returns, and
    # hashed again only in the (hostile) case where it names other bytes than the manifest.
    def hash_against(target: "ReleaseRecord") -> tuple[Check, Check]:
        try:
            return check_bytes(target, man, file, data, settings, store, artifact, progress, pol, capture,
                               file_progress)
        except Exception as exc:  # a bug or an OS error mid-read must still end in a report, never a traceback
            artifact.release()
            artifact.ok = False
            return unexpected("sha256", exc), Check("cid", "skip", "no bytes to hash")

    def chain_facts(resolved: _Resolved) -> list[Check]:
        record, reader = resolved.record, resolved.client
        return [guarded("not_revoked", lambda: check_not_revoked(record, reader)),
                guarded("publisher_authorised", lambda: check_publisher(record, reader, trusted)),
                guarded("signature", lambda: check_signature(record, man, reader, pol, settings, chain_id))]

    def resolve() -> _Resolved:
        return _resolve(ref, parsed, man, settings, trusted, client, offline)

    def resolve_then_facts() -> tuple[_Resolved, list[Check]]:
        resolved = resolve()
        return resolved, (chain_facts(resolved) if resolved.record is not None else [])

    from concurrent.futures import ThreadPoolExecutor

    early = (not offline and client is None and man is not None and (file is not None or data is not None)
             and _manifest_matches_ref(man, parsed))
    facts: list[Check] = []
    sha_check = cid_check = Check("sha256", "skip", "not reached")
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="chain-checks") as pool:
        if early:
            assert man is not None
            provisional = _record_from_manifest(man)
            side = pool.submit(resolve_then_facts)
            sha_check, cid_check = hash_against(provisional)
            resolved, facts = side.result()
            if resolved.record is not None and _names_bytes(resolved.record) != _names_bytes(provisional):
                artifact.release()
                artifact.ok = False
                sha_check, cid_check = hash_against(resolved.record)
        else:
            resolved = resolve()
            if resolved.record is not None:
                pending = pool.submit(chain_facts, resolved)
                sha_check, cid_check = hash_against(resolved.record)
                facts = pending.result()
    checks.append(resolved.check)
    if resolved.record is None:
        artifact.release()
        artifact.ok = False
        return skip_rest("resolve failed")
    record, client = resolved.record, resolved.client
    report.mode = resolved.mode
    report.release = record
    checks.extend(facts)
    checks.extend([sha_check, cid_check])

    # -- 7. provenance -------------------------------------------------------------------------
    prov_doc: dict[str, Any] | None = None
    try:
        prov_check, prov_doc = check_provenance(record, man, file, provenance, settings, store, artifact)
        if prov_check.status == "pass" and record.has_card:
            prov_check = check_card(prov_check, record, file, card, settings, store)
    except Exception as exc:
        prov_check = unexpected("provenance", exc)
    checks.append(prov_check)

    # -- 8. onnx -------------------------------------------------------------------------------
    if artifact.ok and artifact.tree is not None:
        from registry.verify.tree import check_tree_onnx

        tree = artifact.tree
        checks.append(guarded("onnx", lambda: check_tree_onnx(tree, pol)))
    elif artifact.ok and artifact.data is not None:
        verified = artifact.data
        checks.append(guarded("onnx", lambda: check_onnx(verified, pol)))
    else:
        checks.append(Check("onnx", "skip", "artifact bytes did not pass integrity checks; not parsed"))

    # -- 9. policy -----------------------------------------------------------------------------
    checks.append(guarded("policy", lambda: check_policy(record, client, pol, prov_doc, installed_version)))
    if any(c.status == "fail" for c in checks):
        artifact.release()  # nothing that failed any check is handed to a loader or left staged
        artifact.ok = False
    return report, artifact


@dataclass
class _Resolved:
    """Check 1's verdict, and when it passed the record the other checks judge against."""

    check: Check
    record: "ReleaseRecord | None" = None
    client: "ChainReader | None" = None
    mode: str = "online"


def _resolve(ref: str, parsed: Any, man: "Manifest | None", settings: "Settings", trusted: frozenset[str],
             client: "ChainReader | None", offline: bool) -> _Resolved:
    """Check 1: the release as the chain records it (or, offline, as the manifest states it)."""
    if not offline and client is None:
        # No fallback to the manifest: a chain that does not answer could be hiding a revocation.
        try:
            client = _connect(settings)
        except UnreachableError as exc:
            return _Resolved(fail("resolve", f"{exc} (not verified; --offline verifies from the manifest without "
                                             "revocation checks)", {"rpc": settings.profile.rpc_url or "local devnet"},
                                  error=UnreachableError))
        except Exception as exc:
            return _Resolved(unexpected("resolve", exc))
    if man is not None and not _manifest_matches_ref(man, parsed):
        return _Resolved(fail("resolve", f"manifest is for {man.ref}, not {ref}",
                              {"manifest": man.ref, "ref": str(ref)}, error=InputError))
    try:
        if client is not None:
            record = client.get_by_id(man.release_id) if man is not None else client.resolve(parsed, trusted)
            if man is not None and parsed.kind != "version":
                target = client.resolve(parsed, trusted)
                if target.id != record.id:
                    return _Resolved(fail("resolve", f"manifest is for {man.ref}, but {ref} is {target.ref}",
                                          {"manifest": man.ref, "resolved": target.ref}, error=InputError))
            return _Resolved(Check("resolve", "pass", f"{record.ref} found on chain {client.chain_id}",
                                   {"release_id": "0x" + record.id.hex(), "chain_id": client.chain_id,
                                    "contract": client.address, "publisher": record.publisher, "source": "chain"}),
                             record, client, "online")
        assert man is not None
        return _Resolved(Check("resolve", "pass", f"{man.ref} read from the manifest (offline)",
                               {"release_id": "0x" + man.release_id.hex(), "chain_id": man.chain_id,
                                "contract": man.contract, "publisher": man.publisher, "source": "manifest"}),
                         _record_from_manifest(man), None, "offline")
    except Exception as exc:
        return _Resolved(unexpected("resolve", exc))


def _names_bytes(record: "ReleaseRecord") -> tuple[bytes, bytes, int]:
    """What checks 5 and 6 judge the bytes against."""
    return record.artifact_sha256, record.artifact_cid, record.artifact_size


# --------------------------------------------------------------------------------------------
# Inputs
# --------------------------------------------------------------------------------------------


def _preload_onnx() -> None:
    """Imports onnx (its checker is check 8; about a quarter of a second) on a daemon thread.

    The hashing threads spend their time in hashlib with the GIL released, so the import runs
    beside them on an otherwise idle core; the ONNX check then finds the module loaded (or waits
    on the import lock for the rest of it). Nothing depends on this: a failed import here is
    simply retried, and reported, where the check imports onnx itself."""
    import sys
    import threading

    if "onnx.checker" in sys.modules:
        return

    def load() -> None:
        try:
            import onnx.checker  # noqa: F401
            import onnx.helper  # noqa: F401
        except Exception:  # noqa: BLE001 - the check imports onnx again and reports the failure
            pass

    threading.Thread(target=load, name="onnx-import", daemon=True).start()


def _trusted(trust: Iterable[str], pol: "Policy") -> frozenset[str]:
    from registry.chain.lean import is_address, to_checksum_address

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
    if parsed.kind in ("latest", "alias"):
        return man.release.name == parsed.name
    return man.release.artifact_sha256 == parsed.sha256


def _connect(settings: "Settings") -> "ChainReader":
    """The profile's registry, read-only and without web3 (retries and timeouts as the profile says)."""
    from registry.chain.reads import connect_reader

    return connect_reader(settings)


def _record_from_manifest(man: "Manifest") -> "ReleaseRecord":
    from registry.chain.records import ReleaseRecord

    rel = man.release
    return ReleaseRecord(
        id=rel.id, name=rel.name, version=rel.version, artifact_sha256=rel.artifact_sha256,
        artifact_cid=rel.artifact_cid, artifact_size=rel.artifact_size, provenance_sha256=rel.provenance_sha256,
        provenance_cid=rel.provenance_cid, parent=rel.parent, publisher=man.publisher, published_at=0,
        revoked_at=0, revocation_reason="", card_sha256=rel.card_sha256, card_cid=rel.card_cid,
    )

