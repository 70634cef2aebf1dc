"""What an oracle node must remember across restarts, written atomically.

The feed contract already refuses a second answer from a node in one round; the state file makes
the node not even try (no wasted gas, no error noise after a restart) and lets it resume following
the registry's events from the block it had reached instead of from genesis. Writes go to a temp
file in the same directory, are fsynced and renamed over the old file, so a crash leaves either the
old state or the new one, never half of each.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

from registry.errors import InputError
from registry.fsutil import atomic_write

SCHEMA = "registry.oracle-state/v1"
MAX_STATE_BYTES = 64 * 1024


@dataclass(frozen=True)
class NodeState:
    """One node's progress on one feed. Hex strings, so the file is readable by an operator."""

    feed: str = ""
    model: str = ""
    last_block: int = -1
    active_release: str | None = None
    active_version: str | None = None
    active_sha256: str | None = None
    last_submitted_round: int = 0
    last_submission_tx: str | None = None
    last_submission_at: float | None = None

    def evolve(self, **changes: Any) -> "NodeState":
        return replace(self, **changes)


def load_state(path: Path, feed: str, model: str) -> NodeState:
    """The saved state for this feed and model; a fresh one if there is none.

    A state file written for another feed or model is refused: silently reusing its round counter
    would skip rounds on the new feed.
    """
    from registry.fsutil import read_small_file
    from registry.strictjson import parse_json_strict

    if not path.exists():
        return NodeState(feed=feed, model=model)
    try:
        raw = parse_json_strict(read_small_file(path, limit=MAX_STATE_BYTES, what="oracle state"),
                                what=f"oracle state {path}", limit=MAX_STATE_BYTES)
    except InputError as exc:
        raise InputError(f"{exc}; move it away to start fresh") from exc
    if not isinstance(raw, dict) or raw.get("schema") != SCHEMA or not isinstance(raw.get("state"), dict):
        raise InputError(f"oracle state {path} is not a {SCHEMA} document; move it away to start fresh")
    known = {f.name for f in fields(NodeState)}
    body = {k: v for k, v in raw["state"].items() if k in known}
    try:
        state = NodeState(**body)
    except TypeError as exc:  # pragma: no cover - filtered above
        raise InputError(f"oracle state {path}: {exc}") from exc
    if not isinstance(state.last_submitted_round, int) or not isinstance(state.last_block, int):
        raise InputError(f"oracle state {path} has non-integer counters")
    wrong = [f.name for f in fields(NodeState) if not _fits(getattr(state, f.name), f.name)]
    if wrong:
        raise InputError(f"oracle state {path}: fields of the wrong type: {', '.join(wrong)}")
    if state.feed.lower() != feed.lower() or state.model != model:
        raise InputError(
            f"oracle state {path} belongs to feed {state.feed} / model {state.model!r}, "
            f"not {feed} / {model!r}; use another --state-dir"
        )
    return state


def _fits(value: Any, name: str) -> bool:
    """The JSON type each field must have (a hand-edited or planted file must not crash the node)."""
    if name in ("feed", "model"):
        return isinstance(value, str)
    if name in ("last_block", "last_submitted_round"):
        return isinstance(value, int) and not isinstance(value, bool)
    if name == "last_submission_at":
        return value is None or (isinstance(value, (int, float)) and not isinstance(value, bool))
    return value is None or isinstance(value, str)


def save_state(path: Path, state: NodeState) -> None:
    """Atomically replaces the state file (temp file + fsync + rename + directory fsync)."""
    atomic_write(path, json.dumps({"schema": SCHEMA, "state": asdict(state)}, indent=1, sort_keys=True).encode())
