"""The oracle node: follow a model's releases, verify, hot-swap, predict, submit, serve.

Safety rule: a prediction is only ever computed by a model that passed the full verification
procedure (``registry.verify.load_verified``) and is still active on chain, and it is submitted
with that model's release id, which the feed checks against its approved release.

- Follow, verify, hot-swap (``registry.oracle.follow.ReleaseFollower``): every poll reads the
  name's ReleasePublished/ReleaseRevoked logs and serves the newest release that is not revoked and
  verifies; the swap is one reference assignment, a failed verification leaves the old model serving.
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
from registry.errors import ChainError, InputError, RegistryError, UnreachableError
from registry.oracle.feed import FeedClient, to_fixed
from registry.oracle.follow import ReleaseFollower, Verifier
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

# Feed reverts meaning "someone else already moved this round on": not an error of this node.
BENIGN_REVERTS = frozenset({"AlreadySubmitted", "WrongRound"})
MAX_BATCH = 4096

EventSink = Callable[[dict[str, Any]], None]


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
    submissions: int = 0
    skipped_rounds: int = 0
    errors: int = 0
    recent: Deque[dict[str, Any]] = field(default_factory=lambda: collections.deque(maxlen=50))


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
        self.config = config
        self.registry = registry
        self.feed = feed
        self.signer = signer
        self.source = source
        self.settings = settings
        self._on_event = on_event
        self._clock = clock
        self._lock = threading.Lock()
        self._state = load_state(config.state_path, feed.address, config.model)
        self._counters = _Counters()
        self._last_submission: Submission | None = None
        self._last_error: dict[str, Any] | None = None
        self._synced_for: bytes | None = None
        self.follower = ReleaseFollower(config, registry, emit=self._emit, save=self._save,
                                        last_block=lambda: self.state.last_block, clock=clock,
                                        settings=settings, verifier=verifier)

    def poll_chain(self) -> None:
        """One follow step (``ReleaseFollower.poll``): new logs, the active release's status, and a
        re-selection if needed."""
        self.follower.poll()

    def lineage_problem(self, record: "ReleaseRecord") -> str | None:
        """Why ``record`` may not be served because of its lineage, or None (``ReleaseFollower``)."""
        return self.follower.lineage_problem(record)

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
        return self.follower.active

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
                "last_poll": self.follower.last_poll,
                "refused": self.follower.refused(),
                "counters": {"swaps": self.follower.swaps, "submissions": counters.submissions,
                             "skipped_rounds": counters.skipped_rounds, "errors": counters.errors,
                             "polls": self.follower.polls},
                "recent": list(counters.recent)[-10:],
            }

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
        if not self.follower.recheck_lineage():  # an ancestor revoked since the last poll: do not answer
            self._skip(f"{model.release.ref} is no longer servable (revoked lineage)", level="error")
            return None
        try:
            tx_hash = self.feed.submit(open_round.round_id, answer, model.release_id, self.signer)
        except ContractRevert as exc:
            if exc.error_name in BENIGN_REVERTS:
                self._emit("info", "round-moved", f"round {open_round.round_id} moved on before this answer: {exc}")
                return None
            if exc.error_name == "ReleaseNotActive":
                self.follower.reselect()
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
