"""The local chain's write-ahead journal: each transaction the registry sends, on disk before it is
acknowledged.

A full snapshot of anvil's state costs about 0.1 s at 1,000 releases and grows with history, too
much to pay on every publish. Instead, once a transaction is mined, the exact signed bytes, the
block it went into and that block's timestamp are appended here as one line and fsynced (a
fraction of a millisecond). On a start, the snapshot is loaded and every journaled transaction it
does not hold is sent again with its original timestamp; anvil derives everything else (base fee,
prevrandao, hashes) from the parent block, so the same bytes on the same parent give the same
block. A snapshot now and then (``devnet`` decides when) keeps the journal short.

Each line carries a checksum. A torn last line is an append that never returned (never
acknowledged) and is ignored; a damaged line elsewhere is reported.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterator

from registry.fsutil import atomic_write, fsync_dir, storage_error

JOURNAL = "journal.jsonl"
LOCK = "journal.lock"
COMPACT_AFTER = 64  # journaled transactions after which the next command takes a snapshot
MAX_LINE = 1 << 20


@dataclass(frozen=True)
class Entry:
    """One mined transaction: enough to send it again, in order, at its original time."""

    block: int
    index: int
    timestamp: int
    tx_hash: str
    raw: str
    status: int

    def _body(self) -> str:
        return json.dumps(asdict(self), sort_keys=True, separators=(",", ":"))

    def to_line(self) -> bytes:
        body = self._body()
        return (json.dumps({"entry": json.loads(body), "sum": _sum(body)}, separators=(",", ":")) + "\n").encode()

    @classmethod
    def from_line(cls, line: bytes) -> "Entry":
        data = json.loads(line)
        entry = cls(**data["entry"])
        if _sum(entry._body()) != data["sum"]:
            raise ValueError("checksum mismatch")
        return entry


def _sum(body: str) -> str:
    return hashlib.sha256(body.encode()).hexdigest()[:16]


@contextmanager
def locked(directory: Path) -> Iterator[None]:
    """Appends, replays and rewrites of the journal take turns under this lock."""
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / LOCK, "a+b") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def append(directory: Path, entry: Entry) -> None:
    """Appends and fsyncs one entry (the caller holds ``locked``). On a full disk the file is cut
    back to where it was, so a half line never sits before a later complete one."""
    path = directory / JOURNAL
    line = entry.to_line()
    created = not path.exists()
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    except OSError as exc:
        raise storage_error(exc, "data dir", directory) from exc
    try:
        size = os.fstat(fd).st_size
        try:
            written = os.write(fd, line)
            if written != len(line):
                raise OSError(28, "No space left on device")
            os.fsync(fd)
        except OSError as exc:
            try:
                os.ftruncate(fd, size)
                os.fsync(fd)
            except OSError:
                pass
            raise storage_error(exc, "data dir", directory) from exc
    finally:
        os.close(fd)
    if created:
        fsync_dir(directory)


def read(directory: Path) -> tuple[list[Entry], list[str]]:
    """Every complete entry in chain order, and what was wrong with the lines that were not."""
    path = directory / JOURNAL
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return [], []
    except OSError as exc:
        return [], [f"cannot read {path.name} ({exc.strerror or exc})"]
    lines = data.split(b"\n")
    torn_tail = lines.pop()  # b"" when the file ends with a newline; else an append that never returned
    entries: list[Entry] = []
    problems: list[str] = []
    for number, line in enumerate(lines, 1):
        if len(line) > MAX_LINE:
            problems.append(f"{path.name} line {number} is too long")
            continue
        try:
            entries.append(Entry.from_line(line))
        except (ValueError, KeyError, TypeError) as exc:
            problems.append(f"{path.name} line {number} is damaged ({exc})")
    del torn_tail
    entries.sort(key=lambda e: (e.block, e.index))
    return entries, problems


def rewrite(directory: Path, keep: list[Entry]) -> None:
    """Replaces the journal with ``keep`` (atomically; the caller holds ``locked``)."""
    atomic_write(directory / JOURNAL, b"".join(e.to_line() for e in keep), where="data dir")


def durable_head(entries: list[Entry], snapshot_block: int) -> int:
    """The highest block up to which every block is in the snapshot or journaled."""
    head = snapshot_block
    for block in sorted({e.block for e in entries if e.block > snapshot_block}):
        if block != head + 1:
            break
        head = block
    return head
