"""Garbage collection: what killed writers left behind, and blocks nothing needs any more.

Two kinds of garbage, two rules:

* **Temp files** (``.NAME.p<pid>.<random>.tmp`` / ``.part``): stale once the process named in the
  file name is gone, or the pid now belongs to a process that started after the file was last
  written. Files from before pids were recorded are stale after an hour. ``quick_sweep`` runs
  this at the start of every command over the data dir (never the block shards: it must stay
  cheap) and the directory the command writes into.
* **Blocks** of the local store: kept if reachable (through dag-pb links) from a pin or from a
  release on the profile's chain (artifact, provenance, card), or written or touched since the
  start of a live process that leased the store (it may be waiting for its pin or transaction,
  see ``LocalStore.writing``). The sweep holds the store's gc lock exclusively, so no put or pin
  runs while blocks are deleted. If the chain cannot be read, no block is deleted.
"""

from __future__ import annotations

import fcntl
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator

from registry import procinfo
from registry.fsutil import TEMP_SUFFIXES, writer_pid

if TYPE_CHECKING:
    from registry.chain.client import RegistryClient
    from registry.config import Settings
    from registry.content.local import LocalStore

LEGACY_GRACE_S = 3600.0
CLOCK_SLACK_S = 2.0
_LEGACY_TEMP = re.compile(r"^\..+\.[A-Za-z0-9_]{8}\.(?:tmp|part)$")


@dataclass(frozen=True)
class Removed:
    path: str
    size: int


@dataclass
class GcReport:
    dry_run: bool
    temp_files: list[Removed] = field(default_factory=list)
    blocks: list[Removed] = field(default_factory=list)
    kept_blocks: int = 0
    roots: int = 0
    skipped: list[str] = field(default_factory=list)

    @property
    def bytes_freed(self) -> int:
        return sum(r.size for r in self.temp_files) + sum(r.size for r in self.blocks)

    def to_json(self) -> dict[str, Any]:
        return {
            "dry_run": self.dry_run,
            "bytes_freed": self.bytes_freed,
            "temp_files": [r.path for r in self.temp_files],
            "temp_bytes": sum(r.size for r in self.temp_files),
            "blocks": len(self.blocks),
            "block_bytes": sum(r.size for r in self.blocks),
            "kept_blocks": self.kept_blocks,
            "roots": self.roots,
            "skipped": self.skipped,
        }


# --------------------------------------------------------------------------------------------
# Temp files
# --------------------------------------------------------------------------------------------


def is_stale_temp(path: Path, now: float | None = None) -> bool:
    """True for a temp file of ours whose writer is gone (see the module docstring)."""
    name = path.name
    if not name.startswith(".") or not name.endswith(TEMP_SUFFIXES):
        return False
    try:
        stat = path.lstat()
    except OSError:
        return False
    if not os.path.isfile(path) or os.path.islink(path):
        return False
    pid = writer_pid(name)
    if pid is None:
        if not _LEGACY_TEMP.match(name):
            return False  # not a name we write: never touch it
        return (now or time.time()) - stat.st_mtime > LEGACY_GRACE_S
    started = procinfo.started_at(pid)
    # alive and already running when the file was last written: that process may still be writing it
    return started is None or started > stat.st_mtime + CLOCK_SLACK_S


def stale_temp_files(folder: Path) -> Iterator[Path]:
    """Stale temp files directly in ``folder`` (not below it)."""
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return
    now = time.time()
    for entry in entries:
        if entry.name.startswith(".") and entry.name.endswith(TEMP_SUFFIXES):
            path = Path(entry.path)
            if is_stale_temp(path, now):
                yield path


def _remove(paths: Iterable[Path], dry_run: bool) -> list[Removed]:
    removed = []
    for path in paths:
        try:
            size = path.lstat().st_size
            if not dry_run:
                path.unlink()
        except OSError:
            continue
        removed.append(Removed(str(path), size))
    return removed


def _data_dir_folders(home: Path, with_shards: bool) -> list[Path]:
    """The data dir's folders temp files can appear in; the block shards only if asked."""
    folders = [home]
    try:
        children = [Path(e.path) for e in os.scandir(home) if e.is_dir(follow_symlinks=False)]
    except OSError:
        return folders
    for child in children:
        folders.append(child)
        if child.name == "blocks":
            folders.append(child / ".tmp")
            if with_shards:
                try:
                    folders += [Path(e.path) for e in os.scandir(child) if e.is_dir(follow_symlinks=False)
                                and len(e.name) == 2]
                except OSError:
                    pass
    return folders


def quick_sweep(home: Path | None, extra_dirs: Iterable[Path] = ()) -> int:
    """Removes stale temp files from the data dir ``home`` (block shards excepted; None: skip it)
    and ``extra_dirs``; returns the bytes freed. Cheap, silent, never fails the calling command."""
    try:
        if home is None or not home.is_dir():
            folders: list[Path] = []
        else:
            folders = _data_dir_folders(home, with_shards=False)
        freed = 0
        for folder in [*folders, *extra_dirs]:
            freed += sum(r.size for r in _remove(stale_temp_files(Path(folder)), dry_run=False))
        if home is not None and (home / "blocks").is_dir():
            _live_lease_start(home / "blocks", dry_run=False)  # drops the leases of dead writers
        return freed
    except Exception:  # housekeeping must never stand in the way of the command itself
        return 0


# --------------------------------------------------------------------------------------------
# Blocks
# --------------------------------------------------------------------------------------------


def chain_roots(client: "RegistryClient") -> set[str]:
    """The CIDs every release on the client's registry anchors (artifact, provenance, card)."""
    from registry.chain.rpc import with_retries
    from registry.content.cids import to_v1_text

    logs = with_retries(lambda: client.contract.events.ReleasePublished().get_logs(from_block=0),
                        client.rpc_url, client.retries)
    roots: set[str] = set()
    for log in logs:
        record = client.get_by_id(bytes(log["args"]["releaseId"]))
        for cid in (record.artifact_cid, record.provenance_cid, getattr(record, "card_cid", b"")):
            if cid:
                try:
                    roots.add(to_v1_text(bytes(cid)))
                except Exception:
                    continue  # a malformed CID on chain anchors nothing here
    return roots


def _links(store: "LocalStore", key: str) -> list[str]:
    from registry.content.cids import parse_cid, to_v1_text
    from registry.content.codes import DAG_PB
    from registry.content.dagpb import decode_node

    try:
        cid = parse_cid(key)
        if cid.codec.code != DAG_PB:
            return []
        node = decode_node(store.block_path(cid).read_bytes())
        return [to_v1_text(parse_cid(link.hash)) for link in node.links]
    except Exception:
        return []  # missing or unreadable: nothing below it can be reached from here


def _reachable(store: "LocalStore", roots: set[str]) -> set[str]:
    seen: set[str] = set()
    todo = list(roots)
    while todo:
        key = todo.pop()
        if key in seen:
            continue
        seen.add(key)
        todo.extend(k for k in _links(store, key) if k not in seen)
    return seen


def _live_lease_start(store_root: Path, dry_run: bool) -> float | None:
    """The start time of the oldest live process that leased the store; stale leases go."""
    oldest: float | None = None
    folder = store_root / "writers"
    try:
        leases = list(os.scandir(folder))
    except OSError:
        return None
    for entry in leases:
        try:
            pid, ticks = (int(x) for x in entry.name.split("."))
        except ValueError:
            continue
        if procinfo.is_same_process(pid, ticks):
            started = procinfo.started_at(pid)
            if started is not None and (oldest is None or started < oldest):
                oldest = started
        elif not dry_run:
            Path(entry.path).unlink(missing_ok=True)
    return oldest


def _block_files(root: Path) -> Iterator[tuple[str, Path]]:
    try:
        shards = [Path(e.path) for e in os.scandir(root) if e.is_dir(follow_symlinks=False) and len(e.name) == 2]
    except OSError:
        return
    for shard in shards:
        try:
            entries = list(os.scandir(shard))
        except OSError:
            continue
        for entry in entries:
            if not entry.name.startswith(".") and entry.is_file(follow_symlinks=False):
                yield entry.name, Path(entry.path)


def sweep_blocks(store: "LocalStore", chain: set[str], dry_run: bool, report: GcReport) -> None:
    """Deletes unreachable, unleased blocks under the store's exclusive gc lock."""
    from registry.content.local import GC_LOCK

    if not store.root.is_dir():
        return
    with open(store.root / GC_LOCK, "a+b") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # waits for puts and pins in flight
        roots = set(chain) | set(store.pins())
        keep = _reachable(store, roots)
        protect_since = _live_lease_start(store.root, dry_run)
        garbage = []
        for name, path in _block_files(store.root):
            if name in keep:
                report.kept_blocks += 1
                continue
            try:
                mtime = path.stat().st_mtime
            except OSError:
                continue
            if protect_since is not None and mtime >= protect_since - CLOCK_SLACK_S:
                report.kept_blocks += 1  # a live command may still pin or anchor it
                continue
            garbage.append(path)
        report.roots = len(roots)
        report.blocks += _remove(garbage, dry_run)


# --------------------------------------------------------------------------------------------
# The whole pass
# --------------------------------------------------------------------------------------------


def collect_garbage(
    settings: "Settings",
    dry_run: bool = False,
    extra_dirs: Iterable[Path] = (),
    connect: Callable[["Settings"], "RegistryClient"] | None = None,
) -> GcReport:
    """``registry gc``: stale temp files everywhere in the data dir (and ``extra_dirs``), then
    unreachable blocks of the local store (if the profile uses one and its chain can be read)."""
    from registry.content.local import LocalStore
    from registry.content.stores import open_store
    from registry.errors import RegistryError

    report = GcReport(dry_run=dry_run)
    folders = _data_dir_folders(settings.home, with_shards=True) if settings.home.is_dir() else []
    for folder in [*folders, *extra_dirs]:
        report.temp_files += _remove(stale_temp_files(Path(folder)), dry_run)
    store = open_store(settings)
    if not isinstance(store, LocalStore):
        report.skipped.append(f"blocks: the profile's store is {settings.profile.store}, not the local one")
        return report
    if not store.root.is_dir():
        return report
    try:
        if connect is None:
            from registry.chain.client import RegistryClient

            connect = RegistryClient.connect
        roots = chain_roots(connect(settings))
    except RegistryError as exc:
        report.skipped.append(f"blocks: the chain could not be read, so no block was deleted ({exc})")
        return report
    sweep_blocks(store, roots, dry_run, report)
    return report
