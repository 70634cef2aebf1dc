"""Which release an oracle node serves: follow the chain, verify, hot-swap, drop a revoked lineage.

The follower owns the served model reference and everything that decides it; the node
(``registry.oracle.node``) owns rounds, submissions, reporting and the loop, and asks the follower
for ``active`` right before it predicts.

- Follow: every poll reads the registry's ReleasePublished/ReleaseRevoked logs for the model's
  name key since the last block seen, and re-checks that the active release is still active. On
  any change the follower walks the releases newest first and serves the first that is not revoked
  and verifies. A release that fails verification for a lasting reason (tampered bytes, bad
  signature, provenance) is remembered and never retried in this process; a policy refusal is
  retried after ``NodeConfig.retry_refused_s``; one that failed for a passing reason (store or RPC
  unreachable) is retried next poll.
- Hot swap: the new model is verified and its session built off to the side; the swap is one
  reference assignment under a lock. A failed verification leaves the old model serving.
- Lineage: the registry's ``lineageValid`` decides (the rule PredictionFeed applies to a
  submission, so node and feed never disagree); only after a refusal are the parents walked, to
  name the cause.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from registry.chain.rpc import with_retries
from registry.errors import (
    InputError,
    IntegrityError,
    ProvenanceError,
    RegistryError,
    SignatureError,
    UnreachableError,
)
from registry.oracle.model import ServedModel

if TYPE_CHECKING:
    from registry.chain.client import RegistryClient
    from registry.chain.records import ReleaseRecord
    from registry.config import Settings
    from registry.oracle.node import NodeConfig

# Verification failures with these exit codes are transient (retry next poll).
TRANSIENT_EXIT_CODES = frozenset({UnreachableError.exit_code})
# These are facts about immutable chain data and bytes (digest, signature, provenance): final for
# this process (a restart verifies again, in case the store was repaired). Anything else (a policy
# rule, e.g. attestations still missing) is retried after NodeConfig.retry_refused_s.
FINAL_EXIT_CODES = frozenset({IntegrityError.exit_code, SignatureError.exit_code, ProvenanceError.exit_code})
# Widest block range asked of eth_getLogs at once (public RPCs cap it).
MAX_LOG_RANGE = 5000

Emit = Callable[..., None]
Verifier = Callable[["ReleaseRecord", "str | None"], ServedModel]


def _event_topics(client: "RegistryClient") -> tuple[str, str]:
    from eth_utils import event_abi_to_log_topic

    by_name = {e["name"]: e for e in client.contract.abi if e.get("type") == "event"}
    published = "0x" + event_abi_to_log_topic(by_name["ReleasePublished"]).hex()
    revoked = "0x" + event_abi_to_log_topic(by_name["ReleaseRevoked"]).hex()
    return published, revoked


class ReleaseFollower:
    """Serves the newest release of a name (or an alias's target) that verifies and still counts.

    ``emit(level, event, message, **fields)`` reports; ``save(**changes)`` persists the node's state
    (``last_block``, ``active_*``); ``last_block()`` reads it back.
    """

    def __init__(
        self,
        config: "NodeConfig",
        registry: "RegistryClient",
        emit: Emit,
        save: Callable[..., None],
        last_block: Callable[[], int],
        clock: Callable[[], float],
        settings: "Settings | None" = None,
        verifier: Verifier | None = None,
    ) -> None:
        from registry.release import name_key, parse_ref, validate_name

        # What to follow: NAME (or NAME@latest), the newest release that verifies, or NAME@ALIAS, the
        # release the alias points at, re-resolved on every poll (moving the alias moves the node).
        if "@" in config.model:
            ref = parse_ref(config.model)
            if ref.kind not in ("latest", "alias") or ref.name is None:
                raise InputError(f"the node follows NAME, NAME@latest or NAME@ALIAS, not {config.model!r}")
            self._model_name, self._alias = ref.name, ref.alias
        else:
            self._model_name, self._alias = validate_name(config.model), None
        self.config = config
        self.registry = registry
        self.settings = settings
        self._emit = emit
        self._save = save
        self._last_block = last_block
        self._clock = clock
        self._verifier = verifier or self._verify_release
        self._lock = threading.Lock()
        self._model: ServedModel | None = None
        self._name_key = "0x" + name_key(self._model_name).hex()
        self._topics = _event_topics(registry)
        # release id -> (reason, retry at (None: not in this process))
        self._refused: dict[bytes, tuple[str, float | None]] = {}
        self._reported_no_model = False
        self._needs_select = True
        self.swaps = 0
        self.polls = 0
        self.last_poll: dict[str, Any] | None = None

    @property
    def active(self) -> ServedModel | None:
        """The model serving right now (one reference read: callers keep using what they got)."""
        with self._lock:
            return self._model

    def refused(self) -> dict[str, str]:
        """Refused release ids (0x hex) and why, for the node's health report."""
        return {"0x" + k.hex(): reason for k, (reason, _) in list(self._refused.items())}

    def reselect(self) -> None:
        """Asks for a fresh selection at the next poll (e.g. the feed said the release is not active)."""
        self._needs_select = True

    def _verify_release(self, record: "ReleaseRecord", installed_version: str | None) -> ServedModel:
        """The full verification procedure on the very bytes that are then loaded."""
        from registry.verify import load_verified

        session = load_verified(
            record.ref,
            client=self.registry,
            policy=self.config.policy,
            trust=self.config.trust,
            settings=self.settings,
            installed_version=installed_version,
        )
        return ServedModel.wrap(session, record)

    def _chain_read(self, fn: Callable[[], Any]) -> Any:
        return with_retries(fn, self.registry.rpc_url, self.registry.retries)

    def poll(self) -> None:
        """One follow step: new logs, the active release's status, and a re-selection if needed."""
        w3 = self.registry.w3
        head = int(self._chain_read(lambda: w3.eth.block_number))
        # First run: the release list is read from the contract anyway, so no scan from genesis.
        start = self._last_block() + 1 if self._last_block() >= 0 else head + 1
        published: list[bytes] = []
        revoked: list[bytes] = []
        while start <= head:
            end = min(head, start + MAX_LOG_RANGE - 1)
            logs = self._chain_read(lambda: w3.eth.get_logs({
                "address": self.registry.address,
                "fromBlock": start,
                "toBlock": end,
                "topics": [list(self._topics), None, self._name_key],
            }))
            for log in logs:
                topic0 = "0x" + bytes(log["topics"][0]).hex()
                release_id = bytes(log["topics"][1])
                (published if topic0 == self._topics[0] else revoked).append(release_id)
            start = end + 1
        with self._lock:
            self.polls += 1
            self.last_poll = {"at": self._clock(), "block": head}
        for rid in published:
            self._emit("info", "release-published", f"new release 0x{rid.hex()[:12]}… on chain", release_id="0x" + rid.hex())
        for rid in revoked:
            self._emit("warning", "release-revoked", f"release 0x{rid.hex()[:12]}… revoked on chain",
                       release_id="0x" + rid.hex())
        model = self.active
        if model is not None and (model.release_id in revoked or not self.registry.is_active(model.release_id)):
            self._unload(model, "revoked on chain")
        self.recheck_lineage()
        now = self._clock()
        retry_due = any(retry is not None and retry <= now for _, retry in self._refused.values())
        if published or revoked or retry_due or self._needs_select or self.active is None:
            self._select()
        self._save(last_block=head)

    def lineage_problem(self, record: "ReleaseRecord") -> str | None:
        """Why ``record`` may not be served because of its lineage, or None. RPC failures raise.

        The contract decides (one ``lineageValid`` call, what the feed will accept); the walk that
        follows a refusal only names the cause for the log."""
        if self.registry.lineage_ok(record.id):
            return None
        from registry.verify.chain_checks import MAX_PARENT_DEPTH

        current = record
        for _ in range(MAX_PARENT_DEPTH):
            if not current.has_parent:
                break
            parent = self.registry.get_by_id(current.parent)
            if parent.revoked:
                return (f"ancestor {parent.ref} was revoked: "
                        f"{(parent.revocation_reason or '(no reason given)')[:200]}")
            current = parent
        else:
            if current.has_parent:
                return f"lineage is deeper than {MAX_PARENT_DEPTH} releases: refused (fail closed)"
        return (f"{record.ref} no longer counts on chain: revoked, or its publisher may no longer publish "
                f"{record.name} (lineageValid is false)")

    def recheck_lineage(self) -> bool:
        """Unloads the active model if an ancestor was revoked; True when a model is still serving."""
        model = self.active
        if model is None:
            return False
        problem = self.lineage_problem(model.release)
        if problem is None:
            return True
        self._refused[model.release_id] = (problem, None)  # revocation is final on chain
        self._unload(model, problem)
        self._needs_select = True
        return False

    def _unload(self, model: ServedModel, reason: str) -> None:
        with self._lock:
            if self._model is model:
                self._model = None
        self._emit("error", "unloaded", f"{model.release.ref} unloaded: {reason}", release_id="0x" + model.release_id.hex())
        self._save(active_release=None, active_version=None, active_sha256=None)

    def _select(self) -> None:
        """Serve the newest release that is not revoked and verifies; keep the current one otherwise."""
        ids = self._candidate_ids()
        current = self.active
        transient = False
        for release_id in reversed(ids):
            if current is not None and release_id == current.release_id:
                break  # nothing newer is acceptable: keep serving
            refusal = self._refused.get(release_id)
            if refusal is not None and (refusal[1] is None or refusal[1] > self._clock()):
                continue
            record = self.registry.get_by_id(release_id)
            if record.revoked:
                continue
            problem = self.lineage_problem(record)
            if problem is not None:
                if release_id not in self._refused:
                    self._emit("error", "refused", f"{record.ref} refused: {problem}",
                               release_id="0x" + release_id.hex())
                self._refused[release_id] = (problem, None)
                continue
            installed = current.release.version if current is not None else None
            try:
                candidate = self._verifier(record, installed)
            except RegistryError as exc:
                report = getattr(exc, "report", None)
                reason = report.summary() if report is not None else str(exc)
                if exc.exit_code in TRANSIENT_EXIT_CODES:
                    transient = True
                    self._emit("error", "verify-retry", f"{record.ref} could not be verified yet: {reason}",
                               release_id="0x" + release_id.hex())
                    continue
                final = exc.exit_code in FINAL_EXIT_CODES
                self._refused[release_id] = (reason, None if final else self._clock() + self.config.retry_refused_s)
                self._emit("error", "refused", f"{record.ref} refused: {reason}" + (
                    f"; {current.release.ref} keeps serving" if current is not None else ""),
                           release_id="0x" + release_id.hex())
                continue
            self._swap(candidate, current)
            break
        self._needs_select = transient or self._alias is not None  # an alias may move without a release event
        if self.active is None and not self._reported_no_model:
            self._reported_no_model = True
            self._emit("error", "no-model", f"no verified, unrevoked release of {self.config.model}: not submitting")

    def _candidate_ids(self) -> list[bytes]:
        """Release ids to consider, oldest first: every release of the name, or the alias's target.

        An alias that no longer resolves (removed, its target revoked or its publisher removed)
        gives none, and the model it pointed at stops serving."""
        if self._alias is None:
            return self.registry.release_ids(self._model_name)
        try:
            target = self.registry.resolve_alias(self._model_name, self._alias)
        except UnreachableError:
            raise
        except RegistryError as exc:
            current = self.active
            if current is not None:
                self._unload(current, f"{self.config.model} no longer resolves: {exc}")
            return []
        current = self.active
        if current is not None and current.release_id != target.id:
            self._emit("info", "alias-moved", f"{self.config.model} now points at {target.ref}",
                       release_id="0x" + target.id.hex())
        return [target.id]

    def _swap(self, candidate: ServedModel, previous: ServedModel | None) -> None:
        with self._lock:
            self._model = candidate
            self.swaps += 1
        self._reported_no_model = False
        before = f" (was {previous.release.ref})" if previous is not None else ""
        self._emit("info", "swapped", f"serving {candidate.release.ref}{before}, sha256 {candidate.artifact_sha256.hex()}",
                   release_id="0x" + candidate.release_id.hex())
        self._save(active_release="0x" + candidate.release_id.hex(), active_version=candidate.release.version,
                   active_sha256=candidate.artifact_sha256.hex())
