"""Named fault points for the fault-injection suite: off unless ``REGISTRY_FAULT`` is set.

``REGISTRY_FAULT="tx.after-receipt=kill-chain,snapshot.mid-write=kill"`` makes the process act
when it reaches a point:

``kill``        SIGKILL this process (a crash: no cleanup, no atexit, no finally)
``kill-chain``  SIGKILL the local anvil this process talks to (a node crash)
``kill-chain-after:S``  the same, S seconds later, from a timer (lands inside the next step)
``sleep:S``     wait S seconds (widens a window for a kill by timing)

Points: ``tx.before-send``, ``tx.after-send`` (sent, no receipt yet), ``tx.after-receipt`` (mined,
not yet journaled), ``tx.after-save`` (journaled), ``snapshot.before-dump`` (before
``anvil_dumpState``), ``snapshot.mid-write`` (half the snapshot file written), ``replay.entry``
(before each journaled transaction is sent again on a start). Reading one environment variable is all a point costs when unset.
"""

from __future__ import annotations

import os
import signal
import time

ENV = "REGISTRY_FAULT"
_chain_pid: int | None = None


def set_chain_pid(pid: int | None) -> None:
    """The devnet tells this module which anvil ``kill-chain`` means."""
    global _chain_pid
    _chain_pid = pid


def point(name: str) -> None:
    spec = os.environ.get(ENV)
    if not spec:
        return
    for item in spec.split(","):
        where, _, action = item.strip().partition("=")
        if where != name:
            continue
        if action == "kill":
            os.kill(os.getpid(), signal.SIGKILL)
        elif action == "kill-chain" and _chain_pid is not None:
            _kill(_chain_pid)
        elif action.startswith("kill-chain-after:") and _chain_pid is not None:
            import threading

            timer = threading.Timer(float(action.split(":", 1)[1]), _kill, (_chain_pid,))
            timer.daemon = True
            timer.start()
        elif action.startswith("sleep:"):
            time.sleep(float(action.split(":", 1)[1]))


def _kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    _wait_gone(pid)


def _wait_gone(pid: int, timeout_s: float = 5.0) -> None:
    """Until every thread of ``pid`` has exited. The leader turns zombie first while its other
    threads still hold the process's files (anvil's listening socket among them), so waiting for
    the leader alone let a "dead" node accept one more connection now and then."""
    deadline = time.monotonic() + timeout_s
    while _any_thread_running(pid) and time.monotonic() < deadline:
        time.sleep(0.01)


def _any_thread_running(pid: int) -> bool:
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return False
    for tid in tasks:
        try:
            with open(f"/proc/{pid}/task/{tid}/stat", "rb") as handle:
                state = handle.read().rsplit(b")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if state not in (b"Z", b"X"):
            return True
    return False
