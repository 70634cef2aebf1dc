"""Node state on disk: atomic replace, refusal to reuse another feed's state, corrupt files."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from registry.errors import InputError, StorageError
from registry.oracle.state import NodeState, load_state, save_state

FEED = "0x" + "ab" * 20


def test_fresh_then_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "s" / "oracle-state.json"
    state = load_state(path, FEED, "acme/m")
    assert state.last_submitted_round == 0 and state.last_block == -1
    saved = state.evolve(last_block=42, last_submitted_round=7, active_release="0x" + "01" * 32)
    save_state(path, saved)
    assert load_state(path, FEED.upper().replace("0X", "0x"), "acme/m") == saved
    assert [p.name for p in path.parent.iterdir()] == ["oracle-state.json"]  # no temp files left


def test_write_is_atomic_when_interrupted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "oracle-state.json"
    save_state(path, NodeState(feed=FEED, model="acme/m", last_submitted_round=3))

    def boom(*_args: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(StorageError):  # a write the machine refused: one line, exit 16, never a raw OSError
        save_state(path, NodeState(feed=FEED, model="acme/m", last_submitted_round=4))
    monkeypatch.undo()
    assert load_state(path, FEED, "acme/m").last_submitted_round == 3
    assert [p.name for p in tmp_path.iterdir()] == ["oracle-state.json"]


def test_state_of_another_feed_or_model_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "oracle-state.json"
    save_state(path, NodeState(feed=FEED, model="acme/m", last_submitted_round=3))
    with pytest.raises(InputError, match="belongs to feed"):
        load_state(path, "0x" + "cd" * 20, "acme/m")
    with pytest.raises(InputError, match="belongs to feed"):
        load_state(path, FEED, "acme/other")


@pytest.mark.parametrize(
    "content",
    [b"", b"{", b"[]", b'{"schema": "nope", "state": {}}', b'{"schema": "registry.oracle-state/v1"}',
     json.dumps({"schema": "registry.oracle-state/v1", "state": {"feed": FEED, "model": "acme/m",
                                                                 "last_submitted_round": "7"}}).encode()],
)
def test_corrupt_state_is_a_clear_error(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "oracle-state.json"
    path.write_bytes(content)
    with pytest.raises(InputError, match="oracle state"):
        load_state(path, FEED, "acme/m")
