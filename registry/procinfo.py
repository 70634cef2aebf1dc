"""What the kernel says about a process: alive, when it started, which ports it listens on.

Pids are recycled, so "pid 1234 is alive" proves nothing about *which* program it is. A pid paired
with its start time (``/proc/<pid>/stat`` field 22) names one process for the life of the machine;
the devnet stores that pair for the anvil it launched, and gc compares it with a temp file's age.
Linux only (``/proc``); elsewhere every answer is "unknown", which callers treat as "not ours".
"""

from __future__ import annotations

import os
from pathlib import Path

_PROC = Path("/proc")
_LISTEN = "0A"  # TCP_LISTEN in /proc/net/tcp


def start_ticks(pid: int) -> int | None:
    """The process's start time in clock ticks since boot, or None if it is gone or a zombie."""
    try:
        stat = (_PROC / str(pid) / "stat").read_text()
    except (OSError, ValueError):
        return None
    # the command name (field 2) may hold spaces and parentheses: split after its closing ')'
    fields = stat[stat.rfind(")") + 2:].split()
    if not fields or fields[0] in ("Z", "X"):
        return None
    try:
        return int(fields[19])
    except (IndexError, ValueError):
        return None


def _boot_time() -> float | None:
    try:
        for line in (_PROC / "stat").read_text().splitlines():
            if line.startswith("btime "):
                return float(line.split()[1])
    except (OSError, ValueError):
        return None
    return None


def started_at(pid: int) -> float | None:
    """When the process started, in seconds since the epoch (None if gone or unknown)."""
    ticks = start_ticks(pid)
    boot = _boot_time()
    if ticks is None or boot is None:
        return None
    return boot + ticks / os.sysconf("SC_CLK_TCK")


def is_alive(pid: int) -> bool:
    """Running (not a zombie). Signal 0 is not enough: a zombie still answers it."""
    return start_ticks(pid) is not None


def is_same_process(pid: int, ticks: int | None) -> bool:
    """True if ``pid`` is alive and is the very process that had start time ``ticks``."""
    return ticks is not None and start_ticks(pid) == ticks


def executable_name(pid: int) -> str | None:
    """The base name of argv[0] (``anvil``), or None."""
    try:
        argv0 = (_PROC / str(pid) / "cmdline").read_bytes().split(b"\0")[0]
    except OSError:
        return None
    return os.path.basename(argv0.decode("utf-8", "replace")) or None


def _listening_inodes(port: int) -> set[str]:
    inodes: set[str] = set()
    for table in ("tcp", "tcp6"):
        try:
            lines = (_PROC / "net" / table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            parts = line.split()
            if len(parts) < 10 or parts[3] != _LISTEN:
                continue
            try:
                local_port = int(parts[1].rsplit(":", 1)[1], 16)
            except (IndexError, ValueError):
                continue
            if local_port == port:
                inodes.add(parts[9])
    return inodes


def listens_on(pid: int, port: int) -> bool:
    """True if process ``pid`` holds a listening TCP socket on ``port`` (any address)."""
    inodes = _listening_inodes(port)
    if not inodes:
        return False
    wanted = {f"socket:[{inode}]" for inode in inodes}
    try:
        fds = list((_PROC / str(pid) / "fd").iterdir())
    except OSError:
        return False
    for fd in fds:
        try:
            if os.readlink(fd) in wanted:
                return True
        except OSError:
            continue
    return False
