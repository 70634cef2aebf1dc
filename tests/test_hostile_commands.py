"""Whole commands against hostile files and hostile RPC answers (tests/hostile_commands.py).

Run as subprocesses, exactly as a device or a node runs them: a deep JSON answer from the RPC once
segfaulted ``publish``; a FIFO as ``--policy`` hung ``verify``; ``/dev/zero`` read until memory ran out.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.hostile import BUGS
from tests.hostile_commands import HostileRPC, command_cases, run_command


@pytest.fixture(scope="module")
def rpc():
    server = HostileRPC()
    yield server
    server.stop()




@pytest.mark.parametrize("group", ["files", "references", "rpc"])
def test_every_command_refuses_hostile_input_cleanly(rpc: HostileRPC, tmp_path: Path, group: str) -> None:
    cases = [case for case in command_cases(tmp_path / "work", rpc) if case.group == group]
    assert len(cases) >= 10
    results = [run_command(case, rpc) for case in cases]
    bugs = [(r.case, r.outcome, r.detail) for r in results if r.outcome in BUGS]
    assert not bugs, bugs
