"""The oracle node: follow a model's releases, verify, hot-swap, predict, submit, serve.

Safety rule: a prediction is only ever computed by a model that passed the full verification
procedure (``registry.verify.load_verified``) and is still active on chain, and it is submitted
with that model's release id, which the feed checks against its approved release.

- Follow: every poll reads the registry's ReleasePublished/ReleaseRevoked logs for the model's
  name key since the last block seen, and re-checks that the active release is still active. On
  any change the node walks the releases newest first and serves the first that is not revoked
  and verifies. A release that fails verification for a lasting reason (tampered bytes, bad
  signature, policy) is remembered and never retried; one that failed for a passing reason (store
  or RPC unreachable) is retried next poll.
- Hot swap: the new model is verified and its session built off to the side; the swap is one
  reference assignment under a lock. A failed verification leaves the old model serving.
- Revocation: the active model is dropped within one poll; the node falls back to the newest
  still-valid release or, if none, stops submitting and says so at error level.
- Lineage: every poll, and again right before each submission, the node asks the registry's
  ``lineageValid`` (``RegistryClient.lineage_ok``): the very rule PredictionFeed applies to a
  submission, so node and feed never disagree. A revoked ancestor (in this name or another), a
  publisher who may no longer publish the name, or a lineage deeper than the contract's bound drops
  the model like its own revocation; only then are the parents walked, to name the cause. An RPC
  error is an outage: no submission until the check succeeds again.
- Outages: RPC and input failures back off exponentially (capped) and the loop resumes; the feed's
  ``hasSubmitted`` is asked before every submission, so a retry or a restart never answers a
  round twice. Progress (last block, last round) is saved atomically after each step. An RPC
  that is down before the node exists is waited for by ``registry.oracle.startup``.
"""

from __future__ import annotations

import collections
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Deque

from registry.chain.errors import ContractRevert
from registry.chain.rpc import with_retries
from registry.errors import (
    ChainError,
    InputError,
    IntegrityError,
    ProvenanceError,
    RegistryError,
    SignatureError,
    UnreachableError,
)
from registry.oracle.feed import FeedClient, to_fixed
from registry.oracle.inputs import InputSource
from registry.oracle.model import ServedModel
from registry.oracle.server import Handlers, NodeServer, Unavailable
from registry.oracle.state import NodeState, load_state, save_state

if TYPE_CHECKING:
    from eth_account.signers.local import LocalAccount

    from registry.chain.client import RegistryClient
    from registry.chain.records import ReleaseRecord
    from registry.config import Settings
    from registry.policy import Policy

# Verification failures with these exit codes are transient (retry next poll).
TRANSIENT_EXIT_CODES = frozenset({UnreachableError.exit_code})
# These are facts about immutable chain data and bytes (digest, signature, provenance): final for
# this process (a restart verifies again, in case the store was repaired). Anything else (a policy
# rule, e.g. attestations still missing) is retried after NodeConfig.retry_refused_s.
FINAL_EXIT_CODES = frozenset({IntegrityError.exit_code, SignatureError.exit_code, ProvenanceError.exit_code})
# Widest block range asked of eth_getLogs at once (public RPCs cap it).
MAX_LOG_RANGE = 5000
# Feed reverts meaning "someone else already moved this round on": not an error of this node.
BENIGN_REVERTS = frozenset({"AlreadySubmitted", "WrongRound"})
MAX_BATCH = 4096

EventSink = Callable[[dict[str, Any]], None]
Verifier = Callable[["ReleaseRecord", "str | None"], ServedModel]


@dataclass(frozen=True)
class NodeConfig:
    model: str
    interval_s: float = 60.0
    poll_s: float = 5.0
    max_backoff_s: float = 30.0
    state_dir: Path = Path(".")
    policy: "Policy | str | Path | None" = None
    trust: tuple[str, ...] = ()
    retry_refused_s: float = 60.0

    @property
    def state_path(self) -> Path:
        return self.state_dir / "oracle-state.json"


@dataclass(frozen=True)
class Submission:
    round_id: int
    answer: int
    value: float
    release_id: bytes
    artifact_sha256: bytes
    tx_hash: str
    at: float

    def to_json(self) -> dict[str, Any]:
        return {
            "round": self.round_id,
            "answer": str(self.answer),
            "value": self.value,
            "release_id": "0x" + self.release_id.hex(),
            "artifact_sha256": self.artifact_sha256.hex(),
            "tx": self.tx_hash,
            "at": self.at,
        }


@dataclass
class _Counters:
    swaps: int = 0
    submissions: int = 0
    skipped_rounds: int = 0
    errors: int = 0
    polls: int = 0
    recent: Deque[dict[str, Any]] = field(default_factory=lambda: collections.deque(maxlen=50))


def _event_topics(client: "RegistryClient") -> tuple[str, str]:
    from eth_utils import event_abi_to_log_topic

    by_name = {e["name"]: e for e in client.contract.abi if e.get("type") == "event"}
    published = "0x" + event_abi_to_log_topic(by_name["ReleasePublished"]).hex()
    revoked = "0x" + event_abi_to_log_topic(by_name["ReleaseRevoked"]).hex()
    return published, revoked


class OracleNode:
    """One node serving one model to one feed. Drive it with ``run()`` or step with
    ``poll_chain()`` / ``submit_once()`` (tests and the demo do)."""

    def __init__(
        self,
        config: NodeConfig,
        registry: "RegistryClient",
        feed: FeedClient,
        signer: "LocalAccount",
        source: InputSource,
        settings: "Settings | None" = None,
        verifier: Verifier | None = None,
        on_event: EventSink | None = None,
        clock: Callable[[], float] = time.time,
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
        self.feed = feed
        self.signer = signer
        self.source = source
        self.settings = settings
        self._verifier = verifier or self._verify_release
        self._on_event = on_event
        self._clock = clock
        self._lock = threading.Lock()
        self._model: ServedModel | None = None
        self._name_key = "0x" + name_key(self._model_name).hex()
        self._topics = _event_topics(registry)
        self._state = load_state(config.state_path, feed.address, config.model)
        # release id -> (reason, retry at (None: not in this process))
        self._refused: dict[bytes, tuple[str, float | None]] = {}
        self._reported_no_model = False
        self._counters = _Counters()
        self._last_submission: Submission | None = None
        self._last_error: dict[str, Any] | None = None
        self._last_poll: dict[str, Any] | None = None
        self._needs_select = True
        self._synced_for: bytes | None = None

    # ----------------------------------------------------------------------------------------
    # Reporting
    # ----------------------------------------------------------------------------------------

    def _emit(self, level: str, event: str, message: str, **fields: Any) -> None:
        record = {"at": self._clock(), "level": level, "event": event, "message": message, **fields}
        with self._lock:
            self._counters.recent.append(record)
            if level == "error":
                self._counters.errors += 1
                self._last_error = {"at": record["at"], "event": event, "message": message}
        if self._on_event is not None:
            self._on_event(record)

    @property
    def active(self) -> ServedModel | None:
        """The model serving right now (one reference read: callers keep using what they got)."""
        with self._lock:
            return self._model

    @property
    def state(self) -> NodeState:
        with self._lock:
            return self._state

    def _save(self, **changes: Any) -> None:
        with self._lock:
            self._state = self._state.evolve(**changes)
            state = self._state
        save_state(self.config.state_path, state)

    def health(self) -> dict[str, Any]:
        model = self.active
        with self._lock:
            counters = self._counters
            return {
                "status": "serving" if model is not None else "no-model",
                "model": self.config.model,
                "feed": self.feed.address,
                "node": self.signer.address,
                "active": model.describe() if model is not None else None,
                "last_submission": self._last_submission.to_json() if self._last_submission else (
                    {"round": self._state.last_submitted_round, "tx": self._state.last_submission_tx,
                     "at": self._state.last_submission_at} if self._state.last_submission_tx else None),
                "last_error": self._last_error,
                "last_poll": self._last_poll,
                "refused": {"0x" + k.hex(): reason for k, (reason, _) in self._refused.items()},
                "counters": {"swaps": counters.swaps, "submissions": counters.submissions,
                             "skipped_rounds": counters.skipped_rounds, "errors": counters.errors,
                             "polls": counters.polls},
                "recent": list(counters.recent)[-10:],
            }

    # ----------------------------------------------------------------------------------------
    # Follow, verify, hot-swap
    # ----------------------------------------------------------------------------------------

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

    def poll_chain(self) -> None:
        """One follow step: new logs, the active release's status, and a re-selection if needed."""
        w3 = self.registry.w3
        head = int(self._chain_read(lambda: w3.eth.block_number))
        # First run: the release list is read from the contract anyway, so no scan from genesis.
        start = self._state.last_block + 1 if self._state.last_block >= 0 else head + 1
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
            self._counters.polls += 1
            self._last_poll = {"at": self._clock(), "block": head}
        for rid in published:
            self._emit("info", "release-published", f"new release 0x{rid.hex()[:12]}… on chain", release_id="0x" + rid.hex())
        for rid in revoked:
            self._emit("warning", "release-revoked", f"release 0x{rid.hex()[:12]}… revoked on chain",
                       release_id="0x" + rid.hex())
        model = self.active
        if model is not None and (model.release_id in revoked or not self.registry.is_active(model.release_id)):
            self._unload(model, "revoked on chain")
        self._recheck_lineage()
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

    def _recheck_lineage(self) -> bool:
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
            self._counters.swaps += 1
        self._reported_no_model = False
        before = f" (was {previous.release.ref})" if previous is not None else ""
        self._emit("info", "swapped", f"serving {candidate.release.ref}{before}, sha256 {candidate.artifact_sha256.hex()}",
                   release_id="0x" + candidate.release_id.hex())
        self._save(active_release="0x" + candidate.release_id.hex(), active_version=candidate.release.version,
                   active_sha256=candidate.artifact_sha256.hex())

    # ----------------------------------------------------------------------------------------
    # Predict and submit
    # ----------------------------------------------------------------------------------------

    def predict_payload(self, payload: Any) -> dict[str, Any]:
        """``POST /predict``: ``{"inputs": [[...], ...]}`` or ``{"inputs": [...]}`` -> predictions
        plus the release that made them (taken from the same model reference)."""
        model = self.active
        if model is None:
            raise Unavailable("no verified model is loaded")
        import numpy as np

        if not isinstance(payload, dict) or "inputs" not in payload:
            raise InputError('body must be a JSON object with "inputs"')
        rows = payload["inputs"]
        if not isinstance(rows, list) or not rows:
            raise InputError('"inputs" must be a non-empty list')
        if not isinstance(rows[0], list):
            rows = [rows]
        if len(rows) > MAX_BATCH:
            raise InputError(f"at most {MAX_BATCH} rows per request")
        for i, row in enumerate(rows):
            if not isinstance(row, list) or any(isinstance(v, bool) or not isinstance(v, (int, float)) for v in row):
                raise InputError(f"row {i} is not a list of numbers")
        values = model.predict(np.asarray(rows, dtype=np.float32))
        return {
            "predictions": [float(v) for v in values],
            "release_id": "0x" + model.release_id.hex(),
            "version": model.release.version,
            "artifact_sha256": model.artifact_sha256.hex(),
        }

    def _skip(self, reason: str, level: str = "warning") -> None:
        with self._lock:
            self._counters.skipped_rounds += 1
        self._emit(level, "round-skipped", f"round skipped: {reason}")

    def submit_once(self) -> Submission | None:
        """One round attempt. Returns the submission, or None when skipped (reason logged).

        Raises UnreachableError when the RPC or the input source is down, so ``run`` backs off.
        """
        model = self.active
        if model is None:
            self._skip("no verified model loaded", level="error")
            return None
        try:
            window = self.source.read(model.window)
            value = float(model.predict(window)[0])
        except InputError as exc:
            self._skip(f"input from {self.source.description} rejected: {exc}")
            return None
        except UnreachableError as exc:
            self._skip(f"input source down: {exc}", level="error")
            raise
        answer = to_fixed(value, self.feed.decimals)
        open_round = self.feed.open_round()
        if self.feed.has_submitted(open_round.round_id, self.signer.address):
            self._emit("info", "waiting", f"round {open_round.round_id} already answered by this node; waiting for quorum")
            return None
        if self._state.last_submitted_round == open_round.round_id:
            self._emit("warning", "resubmit", f"round {open_round.round_id} was reset on chain; answering again")
        approved = self.feed.approved_release()
        if approved != model.release_id and self._sync_approval(model):
            approved = self.feed.approved_release()
        if approved != model.release_id:
            self._skip(f"feed approves release 0x{approved.hex()}, this node serves {model.release.ref} "
                       f"(0x{model.release_id.hex()}); the feed owner must approve it")
            return None
        if not self._recheck_lineage():  # an ancestor revoked since the last poll: do not answer
            self._skip(f"{model.release.ref} is no longer servable (revoked lineage)", level="error")
            return None
        try:
            tx_hash = self.feed.submit(open_round.round_id, answer, model.release_id, self.signer)
        except ContractRevert as exc:
            if exc.error_name in BENIGN_REVERTS:
                self._emit("info", "round-moved", f"round {open_round.round_id} moved on before this answer: {exc}")
                return None
            if exc.error_name == "ReleaseNotActive":
                self._needs_select = True
            self._skip(f"feed refused the answer: {exc}", level="error")
            return None
        submission = Submission(open_round.round_id, answer, value, model.release_id, model.artifact_sha256, tx_hash,
                                self._clock())
        with self._lock:
            self._last_submission = submission
            self._counters.submissions += 1
        self._save(last_submitted_round=submission.round_id, last_submission_tx=tx_hash,
                   last_submission_at=submission.at)
        self._emit("info", "submitted", f"round {submission.round_id}: {value:.6g} from {model.release.ref} ({tx_hash})",
                   round=submission.round_id, value=value, tx=tx_hash)
        return submission

    def _sync_approval(self, model: ServedModel) -> bool:
        """In the feed's follow-latest mode anyone may sync its approval; do it once per release."""
        if self._synced_for == model.release_id or not self.feed.follow_latest():
            return False
        try:
            self.feed.sync_approved_release(self.signer)
        except UnreachableError:
            raise  # an outage: try again after the backoff
        except ChainError as exc:
            self._synced_for = model.release_id
            self._emit("warning", "sync-failed", f"could not sync the feed's approval: {exc}")
            return False
        self._synced_for = model.release_id
        self._emit("info", "synced", "feed approval synced to the registry's latest release")
        return True

    # ----------------------------------------------------------------------------------------
    # The loop
    # ----------------------------------------------------------------------------------------

    def serve(self, port: int = 0) -> NodeServer:
        """The local HTTP server (registry.oracle.server); each failed request is one warning event."""
        def log(message: str) -> None:
            self._emit("warning", "http", message)

        return NodeServer(Handlers(health=self.health, predict=self.predict_payload, log=log), port).start()

    def run(self, stop: threading.Event, rounds: int | None = None) -> None:
        """Polls and submits until ``stop`` is set (or ``rounds`` submissions were made)."""
        now = self._clock()
        last = self._state.last_submission_at
        interval = self.config.interval_s
        # after a restart, keep the cadence: the next round is due one interval after the last one
        next_submit = now if last is None else min(max(now, last + interval), now + interval)
        next_poll = now
        backoff = 0.0
        made = 0
        while not stop.is_set():
            now = self._clock()
            try:
                if now >= next_poll:
                    self.poll_chain()
                    next_poll = self._clock() + self.config.poll_s
                if now >= next_submit:
                    result = self.submit_once()
                    next_submit = self._clock() + self.config.interval_s
                    if result is not None:
                        made += 1
                        if rounds is not None and made >= rounds:
                            return
                if backoff:
                    self._emit("info", "recovered", "RPC and input reachable again; resuming")
                backoff = 0.0
            except UnreachableError as exc:
                backoff = min(max(backoff * 2, self.config.poll_s), self.config.max_backoff_s)
                self._emit("error", "outage", f"{exc}; retrying in {backoff:.2f} s")
                stop.wait(backoff)
                continue
            except Exception as exc:  # a node must outlive any one failed step; say what it was
                backoff = min(max(backoff * 2, self.config.poll_s), self.config.max_backoff_s)
                kind = "step-failed" if isinstance(exc, RegistryError) else "unexpected"
                self._emit("error", kind, f"{type(exc).__name__}: {exc}; retrying in {backoff:.2f} s")
                stop.wait(backoff)
                continue
            stop.wait(max(0.0, min(next_poll, next_submit) - self._clock()))
