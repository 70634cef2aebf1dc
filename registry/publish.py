"""Publish: one pass over the model (SHA-256 + CID + blocks into the store), sign, anchor, manifest.

Order matters for safety. Content goes to the store first (a block store write is idempotent and
harmless if nothing ever points at it), the chain transaction is the single commit point, and the
manifest is written last, atomically. Re-running after an interruption at any step converges:
if the chain already has ``NAME@VERSION`` with the same artifact, provenance, parent and publisher,
the signed release is recovered from the publishing transaction's calldata and the manifest is
(re)written; if it has *different* content, publish refuses. So the same bytes and label always
give the same release, never a duplicate or a half record.

Names live in namespaces (``acme/digits`` is in ``acme``). When the signer's namespace is unclaimed,
publish claims it for the signer first (commit, wait a block, reveal: ``RegistryClient.claim_namespace``)
and says so through ``on_event``; a namespace owned by someone else needs its owner to add the signer
as a publisher of the name, which is checked before anything is sent. A model card (``card=``) is
pinned in the store like the provenance document, and its SHA-256 and CID are signed in the Release.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from registry.errors import ChainError, InputError, ProvenanceError, RevokedError, StorageError
from registry.interrupted import manifest_not_written

if TYPE_CHECKING:
    from eth_account.signers.local import LocalAccount

    from registry.chain.client import RegistryClient
    from registry.chain.records import ReleaseRecord
    from registry.config import Settings
    from registry.content.base import ContentStore
    from registry.content.unixfs import ImportResult
    from registry.manifest import Manifest

DEADLINE_S = 3600


@dataclass(frozen=True)
class PublishResult:
    manifest: "Manifest"
    manifest_path: Path
    record: "ReleaseRecord"
    artifact: "ImportResult"
    provenance_sha256: bytes
    provenance_generated: bool
    already_published: bool
    transaction: str | None
    namespace_claimed: bool = False
    artifact_path: Path | None = None  # what was hashed and stored (the tensor layout's tree, when one was written)

    def to_json(self) -> dict[str, Any]:
        card = self.manifest.release
        return {
            "path": str(self.artifact_path) if self.artifact_path is not None else None,
            "card_sha256": card.card_sha256.hex() if card.has_card else None,
            "card_cid": "0x" + card.card_cid.hex() if card.has_card else None,
            "namespace_claimed": self.namespace_claimed,
            "ref": self.record.ref,
            "release_id": "0x" + self.record.id.hex(),
            "publisher": self.record.publisher,
            "artifact": self.artifact.to_json(),
            "provenance_sha256": self.provenance_sha256.hex(),
            "provenance_generated": self.provenance_generated,
            "manifest": str(self.manifest_path),
            "already_published": self.already_published,
            "transaction": self.transaction,
            "chain_id": self.manifest.chain_id,
            "contract": self.manifest.contract,
        }


def publish_model(
    path: str | os.PathLike[str],
    name: str,
    version: str,
    provenance_path: str | os.PathLike[str] | None = None,
    parent: str | None = None,
    settings: "Settings | None" = None,
    *,
    signer: "LocalAccount | None" = None,
    sender: "LocalAccount | None" = None,
    client: "RegistryClient | None" = None,
    store: "ContentStore | None" = None,
    progress: Callable[[int], None] | None = None,
    manifest_dir: str | os.PathLike[str] | None = None,
    card: str | os.PathLike[str] | bytes | None = None,
    claim_namespace: bool = True,
    on_event: Callable[[str], None] | None = None,
    layout: str = "as-is",
    layout_dir: str | os.PathLike[str] | None = None,
) -> PublishResult:
    """Publishes ``path`` as ``name@version`` and writes the manifest beside it (or in ``manifest_dir``).

    ``card`` (a path or bytes) pins a model card and signs its digest; ``claim_namespace=False``
    refuses instead of claiming an unclaimed namespace; ``on_event`` hears about the claim.
    ``layout="tensors"`` first rewrites the model as ``registry.layout`` describes (into ``layout_dir``,
    default ``<stem>.tensors`` beside it) and publishes that tree; a provenance about the original
    model is carried over to the tree (``layout_publish.rebase_provenance``)."""
    from registry.config import load_settings
    from registry.content.cids import cid_bytes_v1
    from registry.content.stores import open_store
    from registry.keys import load_signer
    from registry.manifest import Manifest, filename, write_manifest
    from registry.release import Release, validate_name, validate_version

    from registry.content.tree import is_tree

    validate_name(name)
    validate_version(version)
    model = Path(path)
    source = None
    if layout != "as-is":
        from registry.layout_publish import layout_for_publish

        source, model = model, layout_for_publish(model, layout, layout_dir)
    tree = is_tree(model)
    if not tree and not model.is_file():
        raise InputError(f"cannot read {model}: not a file or a directory")
    settings = settings or load_settings()
    profile = settings.profile.cid_profile
    store = store or open_store(settings)

    # One pass stores the blocks and keeps the ONNX bytes; the same checks as verify run on those
    # very bytes before anything touches the chain (a release that could never verify burns no version).
    artifact, file_list_cid = prepublish(model, tree, store, profile, progress)
    if source is not None and provenance_path is not None:
        from registry.layout_publish import rebase_provenance

        provenance_path = rebase_provenance(provenance_path, source, artifact.sha256, model.name)
    prov_bytes, generated = _provenance_bytes(provenance_path, artifact.sha256, model.name)
    prov_result = store.put_bytes(prov_bytes, profile)
    card_result = store.put_bytes(_card_bytes(card), profile) if card is not None else None

    client = client or _connect(settings)
    signer = signer or load_signer(settings)
    parent_id = _parent_id(client, parent) if parent else b"\x00" * 32

    draft = Release(
        name=name,
        version=version,
        artifact_sha256=artifact.sha256,
        artifact_cid=cid_bytes_v1(artifact.cid),
        artifact_size=artifact.size,
        provenance_sha256=prov_result.sha256,
        provenance_cid=cid_bytes_v1(prov_result.cid),
        card_sha256=card_result.sha256 if card_result is not None else b"\x00" * 32,
        card_cid=cid_bytes_v1(card_result.cid) if card_result is not None else b"",
        parent=parent_id,
    )
    target = Path(manifest_dir) if manifest_dir is not None else model.resolve().parent
    manifest_path = target / filename(name, version)

    existing = _existing(client, name, version)
    already = existing is not None
    transaction: str | None = None
    claimed = False
    if existing is None:
        import time

        from registry.chain.nonces import publish_with_fresh_nonce

        claimed = _ensure_may_publish(client, name, signer, claim_namespace, on_event)
        deadline = max(int(time.time()), _chain_time(client)) + DEADLINE_S
        try:  # nonce read, signature and send under the publisher's lock (parallel publishes take turns)
            release, signature, record = publish_with_fresh_nonce(client, draft, deadline, signer, sender or signer)
        except ChainError as exc:
            if getattr(exc, "error_name", None) != "DuplicateVersion":
                raise
            existing = _existing(client, name, version)  # a concurrent or interrupted run got there first
            if existing is None:
                raise
            already = True
        else:
            transaction = _publishing_tx(client, record.id)
    if existing is not None:
        _require_same(existing, draft, signer.address)
        release, signature, transaction = _signed_from_chain(client, existing)
        record = existing

    manifest = Manifest(
        release=release,
        signature=signature,
        publisher=record.publisher,
        chain_id=client.chain_id,
        contract=client.address,
        cid_profile=artifact.profile,
        transaction=transaction,
        file_list_cid=file_list_cid,
    )
    # Pinned only once anchored: the blocks of a publish that failed are left for `registry gc`.
    _pin(store, artifact.cid)
    _pin(store, prov_result.cid)
    if card_result is not None:
        _pin(store, card_result.cid)
    try:
        write_manifest(manifest, manifest_path)
    except StorageError as exc:
        raise manifest_not_written(exc, record.ref, transaction, manifest_path) from exc
    return PublishResult(
        manifest=manifest,
        manifest_path=manifest_path,
        record=record,
        artifact=artifact,
        provenance_sha256=prov_result.sha256,
        provenance_generated=generated,
        already_published=already,
        transaction=transaction,
        namespace_claimed=claimed,
        artifact_path=model,
    )


def _card_bytes(card: Any) -> bytes:
    """The card's exact bytes (a regular file of at most MAX_CARD_BYTES, or given directly), parsed
    with the limits every reader applies (``registry.card``): a card the explorer or a verifier would
    refuse is never anchored."""
    from registry.card import parse_card, read_card

    if isinstance(card, (bytes, bytearray)):
        data = bytes(card)
        parse_card(data)
    else:
        data, _ = read_card(card)
    if not data:
        raise InputError("model card is empty")
    return data


def _ensure_may_publish(client: "RegistryClient", name: str, signer: "LocalAccount", claim: bool,
                        on_event: Callable[[str], None] | None) -> bool:
    """Claims the signer's unclaimed namespace (True when it did), or checks the signer may publish."""
    from registry.release import namespace_of

    namespace = namespace_of(name)
    owner, _ = client.namespace_owner(namespace)
    if owner is None:
        if not claim:
            raise ChainError(f"namespace {namespace!r} is unclaimed: claim it with `registry namespace claim {namespace}`")
        if on_event is not None:
            on_event(f"namespace {namespace!r} is unclaimed: claiming it for {signer.address} (commit, then reveal "
                     "one block later)")
        client.claim_namespace(namespace, signer, on_wait=on_event)
        if on_event is not None:
            on_event(f"claimed namespace {namespace!r} for {signer.address}")
        return True
    if not client.may_publish(name, signer.address):
        raise ChainError(f"{signer.address} may not publish {name}: namespace {namespace!r} belongs to {owner}, who can "
                         f"allow it with `registry name add-publisher {name} {signer.address}`")
    return False


def prepublish(model: Path, tree: bool, store: "ContentStore", profile: str,
               progress: Callable[[int], None] | None) -> tuple[Any, bytes | None]:
    """Stores the artifact (file or tree) and runs verify's size and ONNX checks on the bytes stored.

    Returns the import result and, for a tree, the binary CID of its pinned canonical file list.
    """
    from registry.content.cids import cid_bytes_v1
    from registry.content.sinks import MemorySink
    from registry.errors import PolicyError
    from registry.onnx_checks import check_onnx
    from registry.verify.artifact import DEFAULT_MAX_ARTIFACT_SIZE, MAX_SINGLE_FILE
    from registry.verify.tree import VerifiedTree, check_tree_onnx, is_onnx

    policy = _default_policy()
    if tree:
        sink = MemorySink(is_onnx)
        result = store.put_tree(model, profile, progress, sink=sink)
        if result.size > DEFAULT_MAX_ARTIFACT_SIZE:
            raise PolicyError(f"{model} holds {result.size} bytes, over the {DEFAULT_MAX_ARTIFACT_SIZE}-byte cap "
                              "a verifier applies by default")
        check = check_tree_onnx(VerifiedTree(result.files, sink, result, [p for p in result.files.paths
                                                                             if is_onnx(p)]), policy)
        if check.status == "fail":
            raise PolicyError(f"{model} would never verify: {check.detail}")
        listing = store.put_bytes(result.files.encode(), profile)
        _pin(store, listing.cid)
        return result, cid_bytes_v1(listing.cid)
    size = model.stat().st_size
    if size == 0:
        raise InputError(f"{model} is empty")
    if size > MAX_SINGLE_FILE:
        raise PolicyError(f"{model} is {size} bytes; a single ONNX file cannot exceed {MAX_SINGLE_FILE} "
                          "(protobuf's limit): publish the model as a directory with external data")
    result = store.put_file(model, profile, progress)
    # the check reads the file again and proves, by its digest, that it saw the bytes that were stored
    data = model.read_bytes()
    if hashlib.sha256(data).digest() != result.sha256:
        raise InputError(f"{model} changed while it was being published; try again")
    try:
        check_onnx(data, policy)
    except PolicyError as exc:
        raise PolicyError(f"{model} would never verify: {exc}") from exc
    return result, None


def _default_policy() -> Any:
    from registry.policy import Policy

    return Policy()


def _connect(settings: "Settings") -> "RegistryClient":
    from registry.chain.client import RegistryClient

    return RegistryClient.connect(settings)


def _pin(store: "ContentStore", cid: Any) -> None:
    pin = getattr(store, "pin", None)
    if pin is not None:
        pin(cid)


def _provenance_bytes(provenance_path: Any, artifact_sha256: bytes, artifact_name: str) -> tuple[bytes, bool]:
    """The canonical provenance bytes to store and anchor; a minimal statement when none is given."""
    from registry import __version__
    from registry.provenance import canonical_json, load_provenance, statement, subject_sha256

    if provenance_path is None:
        doc = statement(artifact_sha256.hex(), artifact_name, {
            "note": "published without a compression record",
            "tools": {"registry": __version__},
        })
        return canonical_json(doc), True
    doc = load_provenance(provenance_path)
    subject = subject_sha256(doc)
    if subject != artifact_sha256.hex():
        raise ProvenanceError(
            f"provenance {Path(provenance_path).name} is about sha256:{subject[:16]}…, "
            f"not this artifact (sha256:{artifact_sha256.hex()[:16]}…)"
        )
    return canonical_json(doc), False


def _parent_id(client: "RegistryClient", parent: str) -> bytes:
    from registry.release import parse_ref

    text = parent.strip()
    if text.startswith("0x") and len(text) == 66:
        try:
            record = client.get_by_id(bytes.fromhex(text[2:]))
        except ValueError as exc:
            raise InputError(f"invalid parent id {parent!r}") from exc
    else:
        ref = parse_ref(text)
        if ref.kind != "version":
            raise InputError(f"--parent must be NAME@VERSION or a release id, not {parent!r}")
        record = client.resolve(ref)
    if record.revoked:
        raise RevokedError(f"parent {record.ref} is revoked: {record.revocation_reason or '(no reason given)'}")
    return record.id


def _existing(client: "RegistryClient", name: str, version: str) -> "ReleaseRecord | None":
    from registry.release import release_id

    try:
        return client.get_by_id(release_id(name, version))
    except ChainError as exc:
        if getattr(exc, "error_name", None) == "UnknownRelease":
            return None
        raise


def _require_same(existing: "ReleaseRecord", draft: Any, publisher: str) -> None:
    fields = ("artifact_sha256", "artifact_cid", "artifact_size", "provenance_sha256", "provenance_cid", "card_sha256",
              "card_cid", "parent")
    differing = [f for f in fields if getattr(existing, f) != getattr(draft, f)]
    if differing:
        raise ChainError(
            f"{existing.ref} is already published with different content ({', '.join(differing)} differ; "
            f"on chain sha256:{existing.artifact_sha256.hex()[:16]}…): pick a new version"
        )
    if existing.publisher != publisher:
        raise ChainError(f"{existing.ref} is already published by {existing.publisher}, not {publisher}")


def _chain_time(client: "RegistryClient") -> int:
    try:
        return int(client.w3.eth.get_block("latest")["timestamp"])
    except Exception:  # the deadline only needs a lower bound; local time is that when the node is shy
        return 0


def _publish_log(client: "RegistryClient", release_id: bytes) -> Any:
    from registry.chain.rpc import with_retries

    def read() -> Any:
        logs = client.contract.events.ReleasePublished().get_logs(
            from_block=0, argument_filters={"releaseId": release_id})
        return logs[-1] if logs else None

    return with_retries(read, client.rpc_url, client.retries)


def _publishing_tx(client: "RegistryClient", release_id: bytes) -> str | None:
    log = _publish_log(client, release_id)
    return "0x" + bytes(log["transactionHash"]).hex() if log is not None else None


def _signed_from_chain(client: "RegistryClient", record: "ReleaseRecord") -> tuple[Any, bytes, str]:
    """The exact signed Release and signature, read back from the publishing transaction's calldata
    (``registry.chain.reads.signed_from_chain``), so an interrupted publish can rebuild its manifest."""
    from registry.chain.reads import signed_from_chain

    return signed_from_chain(client, record)
