"""Streaming UnixFS importer: file bytes -> the CID Kubo would print, plus SHA-256 and size, in one pass.

Verification never takes a CID from a remote node on trust, so the registry must compute it
itself, bit-for-bit as Kubo does. Profiles (all balanced layout, fixed-size chunks, sha2-256):

``kubo-v0``         plain ``ipfs add``: CIDv0, 256 KiB chunks, dag-pb leaves, 174 links per node
``kubo-v1``         ``ipfs add --cid-version=1``: CIDv1, raw leaves, otherwise the same
``unixfs-v1-2025``  IPIP-499: CIDv1, raw leaves, 1 MiB chunks, 1024 links per node

Directories (``ipfs add -r``) are built by ``dirs.py``/``hamt.py`` and ``tree.py`` with the same profile.

Memory stays bounded (two read buffers plus one open link list per tree level) whatever the file
size. The whole-file SHA-256 and the per-chunk leaf hashes are both SHA-256 work; ``hashlib``
releases the GIL on large buffers, so a worker thread hashes the leaves while the main thread
reads and feeds the whole-file digest: on two cores this costs little more than ``sha256sum``.

The balanced layout is built bottom-up: a level that reaches ``max_links`` entries becomes one
node on the level above. At the end, every level below the highest non-empty one is closed even
when it holds a single entry, which is exactly the shape go-unixfs's balanced builder produces.
"""

from __future__ import annotations

import hashlib
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from os import PathLike
from typing import TYPE_CHECKING, Callable, Iterable, Iterator, Protocol

from registry.content.codes import DAG_PB, RAW, cid_binary
from registry.content.dagpb import encode_node, leaf_wrapping, unixfs_file_data
from registry.errors import InputError

if TYPE_CHECKING:
    from multiformats import CID

BlockSink = Callable[["CID", bytes], None]
Progress = Callable[[int], None]

# Read this much per step: large enough that hashlib drops the GIL for long stretches and the
# per-step Python overhead vanishes, small enough to keep the peak RSS tiny.
READ_BATCH = 8 * 1024 * 1024


@dataclass(frozen=True)
class Profile:
    """The import parameters that decide a file's CID."""

    name: str
    cid_version: int
    raw_leaves: bool
    chunk_size: int
    max_links: int
    # directories (``dirs.py``): how the HAMT threshold is estimated, and whether reaching it shards
    hamt_estimate: str = "links-bytes"
    hamt_inclusive: bool = True


PROFILES: dict[str, Profile] = {
    "kubo-v0": Profile("kubo-v0", 0, False, 262144, 174),
    "kubo-v1": Profile("kubo-v1", 1, True, 262144, 174),
    "unixfs-v1-2025": Profile("unixfs-v1-2025", 1, True, 1048576, 1024, "block-bytes", False),
}
DEFAULT_PROFILE = "kubo-v1"


def get_profile(profile: str | Profile) -> Profile:
    """A profile by name; InputError naming the known ones otherwise."""
    if isinstance(profile, Profile):
        return profile
    try:
        return PROFILES[profile]
    except (KeyError, TypeError):
        raise InputError(f"unknown CID profile {profile!r} (known: {', '.join(PROFILES)})") from None


@dataclass(frozen=True)
class ImportResult:
    """What one pass over the bytes yields: the root CID, the whole-file SHA-256 and the byte count."""

    cid: "CID"
    sha256: bytes
    size: int
    profile: str = DEFAULT_PROFILE
    dag_size: int = 0  # the whole DAG's bytes (the Tsize a parent directory's link records)

    def to_json(self) -> dict[str, object]:
        from registry.content.cids import display

        shown = display(self.cid)
        return {"cid": str(self.cid), "cid_v1": shown["v1"], "cid_v0": shown["v0"],
                "sha256": self.sha256.hex(), "size": self.size, "profile": self.profile}


class _Readable(Protocol):
    def readinto(self, buffer: memoryview, /) -> int | None: ...


def cid_object(binary: bytes) -> "CID":
    # multiformats loads slowly; the importer touches it only for the result and for block sinks
    from registry.content.cids import cid_object as make

    return make(binary)


def _preload_cids() -> None:
    import registry.content.cids  # noqa: F401


# (binary cid, Tsize = bytes of the whole sub-DAG, file bytes below it)
_Entry = tuple[bytes, int, int]


class _BalancedTree:
    """Open link lists, one per level; closes full levels into parent nodes as it goes."""

    def __init__(self, profile: Profile, sink: BlockSink | None) -> None:
        self._p = profile
        self._sink = sink
        self._levels: list[list[_Entry]] = [[]]

    def add(self, entry: _Entry, level: int = 0) -> None:
        while True:
            if level == len(self._levels):
                self._levels.append([])
            links = self._levels[level]
            links.append(entry)
            if len(links) < self._p.max_links:
                return
            self._levels[level] = []
            entry = self._close(links)
            level += 1

    def _close(self, links: list[_Entry]) -> _Entry:
        sizes = [e[2] for e in links]
        filesize = sum(sizes)
        block = encode_node([(e[0], e[1]) for e in links], unixfs_file_data(filesize, sizes))
        cid_bytes = cid_binary(self._p.cid_version, DAG_PB, hashlib.sha256(block).digest())
        if self._sink is not None:
            self._sink(cid_object(cid_bytes), block)
        return cid_bytes, len(block) + sum(e[1] for e in links), filesize

    def finish(self) -> _Entry:
        top = max(i for i, links in enumerate(self._levels) if links)
        for level in range(top):
            if self._levels[level]:
                links, self._levels[level] = self._levels[level], []
                self.add(self._close(links), level + 1)
        # closing lower levels may have filled (and closed) the top level, creating a new one
        while True:
            top = max(i for i, links in enumerate(self._levels) if links)
            links = self._levels[top]
            if len(links) == 1 and all(not lv for lv in self._levels[:top]):
                return links[0]
            self._levels[top] = []
            self.add(self._close(links), top + 1)


def _hash_leaves(view: memoryview, profile: Profile) -> list[tuple[bytes, int]]:
    """Leaf digests of one read batch (runs on the worker thread; hashlib drops the GIL)."""
    out = []
    size = profile.chunk_size
    sha = hashlib.sha256
    for start in range(0, len(view), size):
        chunk = view[start:start + size]
        if profile.raw_leaves:
            out.append((sha(chunk).digest(), len(chunk)))
        else:
            head, tail = leaf_wrapping(len(chunk))
            h = sha(head)
            h.update(chunk)
            h.update(tail)
            out.append((h.digest(), len(chunk)))
    return out


def _leaf_entry(profile: Profile, digest: bytes, chunk: memoryview, sink: BlockSink | None) -> _Entry:
    n = len(chunk)
    if profile.raw_leaves:
        cid_bytes = cid_binary(profile.cid_version, RAW, digest)
        if sink is not None:
            sink(cid_object(cid_bytes), bytes(chunk))
        return cid_bytes, n, n
    head, tail = leaf_wrapping(n)
    cid_bytes = cid_binary(profile.cid_version, DAG_PB, digest)
    if sink is not None:
        sink(cid_object(cid_bytes), b"".join((head, chunk, tail)))
    return cid_bytes, len(head) + n + len(tail), n


def _fill(reader: _Readable, buf: memoryview) -> int:
    """Fills ``buf`` unless the stream ends first (pipes and sockets return short reads)."""
    got = 0
    while got < len(buf):
        n = reader.readinto(buf[got:])
        if not n:
            break
        got += n
    return got


def batch_size(profile: str | Profile) -> int:
    """How many bytes one step of the importer takes: whole chunks, about ``READ_BATCH``."""
    p = get_profile(profile)
    return p.chunk_size * max(1, READ_BATCH // p.chunk_size)


def read_batches(reader: _Readable, batch: int) -> Iterator[memoryview]:
    """``reader``'s bytes in views of ``batch`` bytes (the last one shorter), through three reused
    buffers. A view stays valid until the second next one is asked for, which is how long the importer
    needs it (its worker hashes the leaves of one batch while this thread hashes the next one whole).

    Past the first full batch, the next batch is read on a helper thread while the current one is
    hashed: the copy out of the page cache then no longer adds to the whole-file digest's thread,
    which is the longer of the two hashing threads."""
    buffers = [memoryview(bytearray(batch)) for _ in range(3)]
    n = _fill(reader, buffers[0])
    if n < batch:
        if n:
            yield buffers[0][:n]
        return
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="unixfs-read") as ahead:
        pending = ahead.submit(_fill, reader, buffers[1])
        yield buffers[0]
        index = 1
        while True:
            n = pending.result()
            current = buffers[index % 3]
            if n < batch:
                if n:
                    yield current[:n]
                return
            # the buffer two batches back is free again: the consumer has asked for this one
            pending = ahead.submit(_fill, reader, buffers[(index + 1) % 3])
            yield current
            index += 1


def import_stream(reader: _Readable, profile: str | Profile = DEFAULT_PROFILE,
                  progress: Progress | None = None, block_sink: BlockSink | None = None,
                  pool: ThreadPoolExecutor | None = None) -> ImportResult:
    """One pass over a binary stream: CID (as ``profile``), SHA-256 and size.

    ``pool`` (one worker) hashes the leaves; a tree import passes one pool for all its files.
    """
    return import_batches(read_batches(reader, batch_size(profile)), profile, progress, block_sink, pool)


def import_batches(batches: Iterable[memoryview], profile: str | Profile = DEFAULT_PROFILE,
                   progress: Progress | None = None, block_sink: BlockSink | None = None,
                   pool: ThreadPoolExecutor | None = None,
                   keep: Callable[[memoryview], None] | None = None) -> ImportResult:
    """The importer over ready views of the bytes (``read_batches``, or slices of memory that stays put).

    Every view but the last must be a whole number of chunks long. ``keep`` (e.g. a write into a
    staging file) receives each view on the worker thread, after its leaves are hashed: the two
    threads then carry about the same load (whole-file SHA-256 and reading here, leaves and the copy
    there). Nothing is copied to hash: both digests read the views themselves.
    """
    p = get_profile(profile)
    if pool is None:
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="unixfs-leaves") as own:
            # load multiformats on the worker while the first batch is read, instead of after the last
            own.submit(_preload_cids)
            return _import(batches, p, progress, block_sink, own, keep)
    return _import(batches, p, progress, block_sink, pool, keep)


def _leaf_job(view: memoryview, profile: Profile,
              keep: Callable[[memoryview], None] | None) -> list[tuple[bytes, int]]:
    out = _hash_leaves(view, profile)
    if keep is not None:
        keep(view)
    return out


def _import(batches: Iterable[memoryview], p: Profile, progress: Progress | None, block_sink: BlockSink | None,
            pool: ThreadPoolExecutor, keep: Callable[[memoryview], None] | None = None) -> ImportResult:
    whole = hashlib.sha256()
    tree = _BalancedTree(p, block_sink)
    total = 0

    def consume(job: tuple[Future[list[tuple[bytes, int]]], memoryview]) -> None:
        future, view = job
        offset = 0
        for digest, n in future.result():
            tree.add(_leaf_entry(p, digest, view[offset:offset + n], block_sink))
            offset += n

    pending: tuple[Future[list[tuple[bytes, int]]], memoryview] | None = None
    try:
        for view in batches:
            n = len(view)
            if not n:
                continue
            if total % p.chunk_size:
                raise ValueError("only the last batch may end inside a chunk")
            job = (pool.submit(_leaf_job, view, p, keep), view)
            whole.update(view)
            if pending is not None:
                consume(pending)
            pending = job
            total += n
            if progress is not None:
                progress(n)
        if pending is not None:
            consume(pending)
            pending = None
    finally:
        if pending is not None:  # a failed read: let the worker finish before the buffers go away
            pending[0].cancel() or pending[0].exception()
    if total == 0:
        empty = memoryview(b"")
        tree.add(_leaf_entry(p, _empty_leaf_digest(p), empty, block_sink))
    root = tree.finish()
    return ImportResult(cid_object(root[0]), whole.digest(), total, p.name, root[1])


def _empty_leaf_digest(p: Profile) -> bytes:
    if p.raw_leaves:
        return hashlib.sha256(b"").digest()
    head, tail = leaf_wrapping(0)
    return hashlib.sha256(head + tail).digest()


def import_file(path: str | PathLike[str], profile: str | Profile = DEFAULT_PROFILE,
                progress: Progress | None = None, block_sink: BlockSink | None = None) -> ImportResult:
    """CID, SHA-256 and size of a file in one pass; InputError when it cannot be read."""
    from registry.fsutil import open_regular

    p = get_profile(profile)
    # a regular file only: a FIFO would block the read forever, a device (/dev/zero) never ends
    with open_regular(path, what="file", buffered=False) as f:
        try:
            return import_stream(f, p, progress, block_sink)
        except OSError as exc:
            raise InputError(f"cannot read {path}: {exc.strerror or exc}") from exc


class IterReader:
    """Turns an iterable of byte strings into a ``readinto`` stream (generated data, HTTP bodies)."""

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self._it = iter(chunks)
        self._rest = memoryview(b"")

    def readinto(self, buf: memoryview) -> int:
        while not self._rest:
            try:
                self._rest = memoryview(next(self._it)).cast("B")
            except StopIteration:
                return 0
        n = min(len(buf), len(self._rest))
        buf[:n] = self._rest[:n]
        self._rest = self._rest[n:]
        return n


def import_bytes(data: bytes | bytearray | memoryview, profile: str | Profile = DEFAULT_PROFILE,
                 block_sink: BlockSink | None = None) -> ImportResult:
    """Same as ``import_file`` for bytes already in memory (hashed in place, never copied)."""
    view = memoryview(data).cast("B")
    step = batch_size(profile)
    return import_batches((view[i:i + step] for i in range(0, len(view), step)), profile, None, block_sink)


def import_chunks(chunks: Iterable[bytes], profile: str | Profile = DEFAULT_PROFILE,
                  block_sink: BlockSink | None = None) -> ImportResult:
    """Same as ``import_file`` for a stream of byte strings of any sizes."""
    return import_stream(IterReader(chunks), profile, None, block_sink)
