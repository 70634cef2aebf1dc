"""Incremental pull: a device that holds v1 fetches only the blocks v2 does not share, and verifies all of v2.

``pull_update`` is ``pull`` (``registry.pull``) with a different source of verified blocks: the store
is wrapped in a ``CachingStore`` that serves what it can from the device's block cache and from the
old release installed on disk, and asks the store for the rest. The verification itself is the
unchanged procedure (resolve, revocation, authorisation, signature, every file's SHA-256, the tree's
file list, the CID, provenance, ONNX, policy), over every byte of the new release, and the install
is the unchanged staging-then-rename: an update that fails or is interrupted leaves the old release
as it was, and the blocks it had verified stay in the cache for the next attempt.

Which old release: the one named by ``base`` (``pull --from NAME@1.0.0``, which must be installed in
the destination), else the newest release of the same name installed there. Its files are used
when it was named explicitly, or when the cache does not hold its root (it was installed before the
cache existed, or evicted since); otherwise the cache is expected to hold its blocks.

When the cache is used: by default whenever the store is remote (Kubo, gateway); the embedded local
store already keeps blocks on this disk, so there the cache is off unless asked for. ``cache=False``
and an old release named by ``base`` still reuse the files on disk.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from registry.errors import InputError, RegistryError

if TYPE_CHECKING:
    from registry.content.blockcache import BlockCache
    from registry.content.cached import CachingStore
    from registry.content.seed import LocalCopy
    from registry.manifest import Manifest
    from registry.pull import PullResult

# blocks requested ahead of the walk from a remote store (each at most 2 MiB in flight); REGISTRY_PULL_PREFETCH
# overrides it (0: one request at a time)
REMOTE_PREFETCH = 8


@dataclass(frozen=True)
class Installed:
    """A release installed in a destination by ``pull``: its manifest and where its bytes are."""

    ref: str
    manifest: "Manifest"
    path: Path
    files_path: Path | None

    @property
    def is_tree(self) -> bool:
        return self.path.is_dir()


def find_installed(dest: str | os.PathLike[str], ref: str) -> Installed:
    """``NAME@VERSION`` as installed in ``dest`` (InputError saying why when it is not)."""
    from registry.manifest import filename, load_manifest
    from registry.pull import base_name, model_filename
    from registry.release import parse_ref

    parsed = parse_ref(ref)
    if parsed.kind != "version":
        raise InputError(f"--from needs NAME@VERSION of a release installed in {dest}, not {ref!r}")
    folder = Path(dest)
    manifest_path = folder / filename(parsed.name, parsed.version)
    if not manifest_path.is_file():
        raise InputError(f"{ref} is not installed in {folder} (no {manifest_path.name}): nothing to update from")
    manifest = load_manifest(manifest_path)
    tree = folder / base_name(parsed.name, parsed.version)
    single = folder / model_filename(parsed.name, parsed.version)
    if tree.is_dir() and not tree.is_symlink():
        files = folder / f"{base_name(parsed.name, parsed.version)}.files.json"
        return Installed(ref, manifest, tree, files if files.is_file() else None)
    if single.is_file() and not single.is_symlink():
        return Installed(ref, manifest, single, None)
    raise InputError(f"{ref} has a manifest in {folder} but its model is missing")


def local_copy(installed: Installed) -> "LocalCopy":
    """The installed release's files as a source of blocks, checked against its own digests."""
    from registry.content.seed import LocalCopy

    expected = None
    if installed.files_path is not None:
        from registry.content.filelist import MAX_LIST_BYTES, parse_file_list
        from registry.fsutil import read_small_file

        try:
            raw = read_small_file(installed.files_path, limit=MAX_LIST_BYTES, what="file list")
            import hashlib

            if hashlib.sha256(raw).digest() == installed.manifest.release.artifact_sha256:
                expected = parse_file_list(raw)
        except RegistryError:
            expected = None  # unreadable: blocks are still only used when they hash to their CID
    sha = None if installed.is_tree else installed.manifest.release.artifact_sha256
    return LocalCopy(installed.path, installed.manifest.cid_profile, expected, sha, installed.ref)


def default_cache(store: Any, settings: Any, cache: "BlockCache | bool | None",
                  max_bytes: int | None = None) -> "BlockCache | None":
    """The cache a pull uses: given, on (True), off (False), or by default on for remote stores only."""
    from registry.content.blockcache import BlockCache
    from registry.content.local import LocalStore

    if isinstance(cache, BlockCache):
        return cache
    if cache is None:
        cache = not isinstance(store, LocalStore)
    if not cache:
        return None
    made = BlockCache.for_settings(settings, max_bytes)
    return made if made.enabled else None


def caching_store(store: Any, cache: "BlockCache | None", base: Installed | None, explicit: bool) -> "CachingStore":
    from registry.content.cached import CachingStore
    from registry.content.cids import cid_from_bytes
    from registry.content.local import LocalStore

    copies = []
    if base is not None:
        root = cid_from_bytes(base.manifest.release.artifact_cid)
        if explicit or cache is None or not cache.contains(root):
            copies.append(local_copy(base))
    prefetch = 0 if isinstance(store, LocalStore) else _prefetch()
    caching = CachingStore(store, cache, copies, prefetch=prefetch, stream_when_cold=base is None)
    caching.stats.base = base.ref if base is not None else None
    return caching


def _prefetch() -> int:
    raw = os.environ.get("REGISTRY_PULL_PREFETCH", "")
    if raw.isdigit() and len(raw) < 4:
        return min(int(raw), 64)
    return REMOTE_PREFETCH


def pull_update(ref: str, dest: str | os.PathLike[str], *, base: str | None = None,
                cache: "BlockCache | bool | None" = None, cache_max: int | None = None,
                **verify_kwargs: Any) -> "PullResult":
    """``pull`` that reuses what the device has (see the module docstring); ``result.transfer`` says how much.

    Without a cache and without ``base`` this is exactly ``pull`` (``transfer`` is then None).
    """
    from registry.config import load_settings
    from registry.content.stores import open_store
    from registry.pull import installed_version, pull
    from registry.release import parse_ref

    settings = verify_kwargs.get("settings") or load_settings()
    verify_kwargs["settings"] = settings
    store = verify_kwargs.get("store") or open_store(settings)
    chosen_cache = default_cache(store, settings, cache, cache_max)
    installed = None
    if base is not None:
        installed = find_installed(dest, base)
    elif chosen_cache is not None:
        name = parse_ref(ref).name
        version = installed_version(Path(dest), name) if name is not None else None
        if version is not None:
            try:
                installed = find_installed(dest, f"{name}@{version}")
            except InputError:
                installed = None  # a half-removed install: nothing to reuse, the pull is a full one
    if chosen_cache is None and installed is None:
        return pull(ref, dest, **verify_kwargs)
    with caching_store(store, chosen_cache, installed, base is not None) as caching:
        verify_kwargs["store"] = caching
        result = pull(ref, dest, **verify_kwargs)
        return replace(result, transfer=caching.report())


def describe_transfer(stats: Any) -> list[str]:
    """Plain lines for a pull's report: what came over the network, what was reused, what was refused."""
    lines = [f"network    {_size(stats.network_bytes)} ({stats.network_blocks} blocks)"
             + (f", {_size(stats.streamed_bytes)} of it streamed in one request: nothing to reuse there"
                if stats.streamed_bytes else "")]
    reused = f"reused     {_size(stats.reused_bytes)} (cache {_size(stats.cache_bytes)}, files on disk " \
             f"{_size(stats.disk_bytes)})"
    if stats.base:
        reused += f" from {stats.base}"
    lines.append(reused)
    total = stats.total_bytes
    if total:
        lines.append(f"           {100 * stats.network_bytes / total:.1f}% of the release's blocks were fetched")
    cache = stats.cache or {}
    if cache.get("rejected"):
        lines.append(f"cache      {cache['rejected']} altered block(s) found in the cache: deleted and fetched again")
    if cache.get("evicted"):
        lines.append(f"cache      {cache['evicted']} block(s) ({_size(cache['evicted_bytes'])}) evicted to stay "
                     "within the bound")
    if cache.get("write_errors"):
        lines.append(f"cache      {cache['write_errors']} block(s) could not be cached (disk full or not writable)")
    copy = stats.local_copy or {}
    if copy.get("damaged"):
        lines.append(f"local copy {', '.join(copy['damaged'][:5])} differ(s) from {stats.base}: not used, fetched again")
    if copy.get("rejected"):
        lines.append(f"local copy {copy['rejected']} block(s) changed on disk since indexing: fetched again")
    if copy.get("unreadable"):
        lines.append(f"local copy unreadable ({copy['unreadable']}): not used")
    return lines


def _size(n: int) -> str:
    for unit, scale in (("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if n >= scale:
            return f"{n / scale:.2f} {unit} ({n} B)"
    return f"{n} B"
