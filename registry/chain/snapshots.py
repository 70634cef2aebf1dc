"""The local chain's state on disk: complete snapshots, written atomically, with a last good copy.

anvil's own ``--state`` rewrites its JSON file in place (truncate, then write), so a kill or a full
disk during that rewrite leaves a file anvil can never load again. Here the state is taken from the
running node (``anvil_dumpState``: gzip-compressed JSON) and written as one self-checking file:

    {"format": "registry.anvil-snapshot/v1", "block": N, "sha256": …, "size": …, …}\\n<gzip bytes>

through a temp file, fsync and rename. Before the rename the current snapshot is hard-linked to
``state.snapshot.prev``, so at every instant ``state.snapshot`` is a complete snapshot and the
previous one is kept. On start, ``recover`` takes the newest snapshot that checks out (header,
size, SHA-256, gzip CRC, JSON), moves a damaged one aside instead of deleting it, and refuses to
start an empty chain over files it cannot read.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

from registry.errors import StorageError
from registry.fsutil import atomic_write, fsync_dir, temp_prefix

FORMAT = "registry.anvil-snapshot/v1"
CURRENT = "state.snapshot"
PREVIOUS = "state.snapshot.prev"
LEGACY = "anvil-state.json"  # what `anvil --state` wrote before snapshots existed
DAMAGED_DIR = "damaged"
MAX_HEADER = 4096
WRITE_CHUNK = 1 << 20


class DamagedSnapshot(Exception):
    """A state file that cannot be loaded; the message says why (truncated, wrong digest…)."""


class StateDamagedError(StorageError):
    """Every state file of the local chain is damaged: starting would silently drop the history."""


@dataclass(frozen=True)
class Snapshot:
    """The header of one snapshot file: which block it covers and which node instance it came from."""

    path: Path
    block: int
    size: int
    sha256: str
    saved_at: float
    instance: str | None = None
    fingerprint: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "block": self.block,
            "size": self.size,
            "sha256": self.sha256,
            "saved_at": self.saved_at,
            "saved_at_iso": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.saved_at)),
        }


@dataclass(frozen=True)
class Recovery:
    """What a start should load, and what was done to get there (said to the user)."""

    state_json: bytes | None
    source: Path | None
    block: int | None
    notes: list[str] = field(default_factory=list)
    legacy: bool = False


# --------------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------------


def write(directory: Path, payload: bytes, *, block: int, instance: str | None, fingerprint: str | None,
          fault: Callable[[str], None] | None = None) -> Snapshot:
    """Writes ``payload`` (anvil_dumpState's gzip bytes) as the new current snapshot.

    The caller holds the snapshot lock. ``fault`` is called at named points (fault injection).
    Raises StorageError (disk full…) with the current snapshot untouched.
    """
    saved_at = time.time()
    digest = hashlib.sha256(payload).hexdigest()
    header: dict[str, Any] = {"format": FORMAT, "block": block, "size": len(payload), "sha256": digest,
                              "saved_at": saved_at, "instance": instance, "fingerprint": fingerprint}
    header["check"] = _header_check(header)
    current = directory / CURRENT
    _keep_previous(directory, current)

    def chunks() -> Iterator[bytes]:
        yield (json.dumps(header, sort_keys=True) + "\n").encode()
        view = memoryview(payload)
        half = len(view) // 2
        for start in range(0, len(view), WRITE_CHUNK):
            if fault is not None and start <= half < start + WRITE_CHUNK:
                fault("snapshot.mid-write")
            yield bytes(view[start:start + WRITE_CHUNK])

    atomic_write(current, chunks(), where="data dir")
    return Snapshot(current, block, len(payload), digest, saved_at, instance, fingerprint)


def _keep_previous(directory: Path, current: Path) -> None:
    """Hard-links the current snapshot as the previous one (atomically, via a temp name)."""
    if not current.exists():
        return
    previous = directory / PREVIOUS
    try:
        if previous.exists() and os.path.samefile(current, previous):
            return  # already kept (a write after the last link never finished)
    except OSError:
        pass
    link = directory / f"{temp_prefix(PREVIOUS)}link.tmp"
    try:
        link.unlink(missing_ok=True)
        try:
            os.link(current, link)
        except OSError:  # no hard links here: a copy is slower but as safe
            atomic_write(link, current.read_bytes(), where="data dir")
        os.replace(link, previous)
        link.unlink(missing_ok=True)  # rename() between two links of one file leaves both in place
    except OSError as exc:
        link.unlink(missing_ok=True)
        from registry.fsutil import storage_error

        raise storage_error(exc, "data dir", directory) from exc
    fsync_dir(directory)


# --------------------------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------------------------


def read_header(path: Path) -> Snapshot:
    """The header only (cheap: one short line); DamagedSnapshot if it is not one of ours."""
    try:
        with open(path, "rb") as handle:
            line = handle.readline(MAX_HEADER)
    except OSError as exc:
        raise DamagedSnapshot(f"cannot read it ({exc.strerror or exc})") from exc
    return _parse_header(path, line)


def _parse_header(path: Path, line: bytes) -> Snapshot:
    if not line.endswith(b"\n"):
        raise DamagedSnapshot("no complete header line")
    try:
        header = json.loads(line)
    except ValueError as exc:
        raise DamagedSnapshot("its header is not JSON") from exc
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise DamagedSnapshot(f"not a {FORMAT} file")
    if header.get("check") != _header_check(header):
        raise DamagedSnapshot("its header was altered")
    try:
        block, size, digest = int(header["block"]), int(header["size"]), str(header["sha256"])
        saved_at = float(header["saved_at"])
    except (KeyError, TypeError, ValueError) as exc:
        raise DamagedSnapshot("its header lacks block, size, sha256 or saved_at") from exc
    instance = header.get("instance") if isinstance(header.get("instance"), str) else None
    fingerprint = header.get("fingerprint") if isinstance(header.get("fingerprint"), str) else None
    return Snapshot(path, block, size, digest, saved_at, instance, fingerprint)


def _header_check(header: dict[str, Any]) -> str:
    fields = {k: v for k, v in header.items() if k != "check"}
    return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:16]


def load(path: Path) -> tuple[Snapshot | None, bytes]:
    """The plain state JSON of a snapshot (or of a legacy anvil state file), fully checked."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise DamagedSnapshot(f"cannot read it ({exc.strerror or exc})") from exc
    if path.name == LEGACY:
        _check_state_json(data)
        return None, data
    newline = data.find(b"\n", 0, MAX_HEADER)
    if newline < 0:
        raise DamagedSnapshot("no complete header line")
    header = _parse_header(path, data[:newline + 1])
    payload = memoryview(data)[newline + 1:]
    if len(payload) != header.size:
        raise DamagedSnapshot(f"truncated: {len(payload)} of {header.size} bytes")
    if hashlib.sha256(payload).hexdigest() != header.sha256:
        raise DamagedSnapshot("its SHA-256 does not match its header")
    try:
        state = gzip.decompress(payload)
    except (OSError, EOFError, zlib.error) as exc:
        raise DamagedSnapshot(f"its gzip data is corrupt ({exc})") from exc
    _check_state_json(state)
    return header, state


def _check_state_json(data: bytes) -> None:
    try:
        state = json.loads(data)
    except ValueError as exc:
        raise DamagedSnapshot(f"not complete JSON ({exc.msg} at byte {exc.pos})") from exc
    if not isinstance(state, dict) or not isinstance(state.get("accounts"), dict):
        raise DamagedSnapshot("not an anvil state (no accounts)")


def current(directory: Path) -> Snapshot | None:
    """The current snapshot's header, or None if there is none or it is damaged."""
    try:
        return read_header(directory / CURRENT)
    except DamagedSnapshot:
        return None


# --------------------------------------------------------------------------------------------
# Recovering
# --------------------------------------------------------------------------------------------


def recover(directory: Path) -> Recovery:
    """The state a start should load: the current snapshot, else the last good one, else a legacy
    anvil state file, else nothing (a new chain). Damaged files are moved to ``damaged/``, never
    deleted; if every existing file is damaged, StateDamagedError (never an empty chain silently)."""
    candidates = [directory / CURRENT, directory / PREVIOUS, directory / LEGACY]
    damaged: list[tuple[Path, str]] = []
    for path in candidates:
        if not path.exists():
            continue
        try:
            header, state = load(path)
        except DamagedSnapshot as exc:
            damaged.append((path, str(exc)))
            continue
        notes = []
        lost = _newest_block(damaged)
        for bad, reason in damaged:
            kept = set_aside(bad)
            notes.append(f"the local chain's state file {bad.name} was damaged ({reason}); kept it as {kept}")
        if damaged:
            what = f"block {header.block}, saved {_when(header.saved_at)}" if header else "anvil's own state file"
            notes.append(f"recovered the local chain from {path.name} ({what})")
            if header is not None and lost is not None and lost > header.block:
                notes.append(f"blocks {header.block + 1}..{lost} of the damaged snapshot could not be recovered")
        return Recovery(state, path, header.block if header else None, notes, legacy=header is None)
    if damaged:
        listing = "; ".join(f"{p.name}: {reason}" for p, reason in damaged)
        raise StateDamagedError(
            f"the local chain's state in {directory} is damaged ({listing}) and no good snapshot is left; "
            "refusing to start an empty chain over it. Run `registry chain up --reset` to set these files "
            "aside and start a new, empty chain"
        )
    return Recovery(None, None, None)


def _newest_block(damaged: list[tuple[Path, str]]) -> int | None:
    blocks = []
    for path, _reason in damaged:
        try:
            blocks.append(read_header(path).block)
        except DamagedSnapshot:
            continue
    return max(blocks) if blocks else None


def _when(timestamp: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(timestamp))


def set_aside(path: Path) -> Path:
    """Moves a state file into ``damaged/`` under a unique, dated name; returns where it went."""
    folder = path.parent / DAMAGED_DIR
    folder.mkdir(exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    target = folder / f"{path.name}.{stamp}"
    n = 1
    while target.exists():
        n += 1
        target = folder / f"{path.name}.{stamp}.{n}"
    os.replace(path, target)
    fsync_dir(path.parent)
    return target


def reset(directory: Path) -> list[Path]:
    """Sets every state file aside (for `chain up --reset`); returns where they went."""
    moved = []
    for name in (CURRENT, PREVIOUS, LEGACY):
        path = directory / name
        if path.exists():
            moved.append(set_aside(path))
    return moved
