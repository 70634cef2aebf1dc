"""Reads a UnixFS file back out of blocks, verifying each block before a byte of it is used.

Every store (local, Kubo, gateway) fetches blocks its own way and hands them to this walker,
which checks the block's hash against the CID that named it, checks that the sizes the parent
promised are the sizes the children deliver, and stops as soon as the file would grow past
``max_size``. A lying node can therefore make a download fail, never succeed with other bytes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterator

from multiformats import CID

from registry.content.cids import DAG_PB, RAW, fast_cid, parse_cid, verify_block
from registry.content.dagpb import T_FILE, T_RAW, decode_node, decode_unixfs
from registry.errors import IntegrityError

MAX_BLOCK_SIZE = 2 * 1024 * 1024  # the largest block the IPFS network exchanges (bitswap, gateways)
# A DAG that is cheap to send but expensive to walk (tiny or repeated leaves, zero-size links) is cut
# off: a walk visits at most this many blocks plus one per MIN_AVG_LEAF bytes the root declares.
MIN_AVG_LEAF = 128
BASE_VISITS = 64
# Without an expected size, a walk still stops here (every read has some bound).
DEFAULT_MAX_SIZE = 64 * 1024**3

Fetch = Callable[[CID], bytes]


@dataclass(frozen=True)
class WalkedBlock:
    """One verified block of a file's DAG, and the file bytes it carries (empty for inner nodes)."""

    cid: CID
    block: bytes
    data: memoryview


def checked_block(cid: CID, block: bytes) -> bytes:
    """The size cap and the hash check every fetched block passes before it is parsed."""
    if len(block) > MAX_BLOCK_SIZE:
        raise IntegrityError(f"block {cid} is {len(block)} bytes, over the {MAX_BLOCK_SIZE}-byte limit")
    verify_block(cid, block)
    return block


def max_visits(declared_size: int) -> int:
    return BASE_VISITS + 2 * (declared_size // MIN_AVG_LEAF)


def walk(root: CID | str | bytes, fetch: Fetch, max_size: int | None = None,
         first_block: bytes | None = None) -> Iterator[WalkedBlock]:
    """Depth-first, in file order: every block verified, sizes cross-checked, ``max_size`` enforced.

    ``first_block`` is the root's block when the caller already fetched (and verified) it. Links of
    size zero are refused (no importer writes them) and the number of blocks visited is bounded by
    the declared size, so a small hostile DAG cannot make the walk long.
    """
    root = parse_cid(root)
    limit = DEFAULT_MAX_SIZE if max_size is None else max_size
    produced = 0
    visits = 0
    budget = BASE_VISITS
    # (cid, file bytes the parent says this sub-DAG holds, or None for the root)
    stack: list[tuple[CID, int | None]] = [(root, None)]
    declared_total: int | None = None
    while stack:
        cid, expected = stack.pop()
        visits += 1
        if visits > budget:
            raise IntegrityError(f"{root}: the DAG needs more than {budget} blocks for {declared_total} bytes "
                                 "(tiny or repeated blocks); refused")
        raw = first_block if (first_block is not None and expected is None) else fetch(cid)
        block = checked_block(cid, raw)
        codec = cid.codec.code
        if codec == RAW:
            data = memoryview(block)
            size = len(block)
            children: list[tuple[CID, int]] = []
        elif codec == DAG_PB:
            node = decode_node(block)
            fs = decode_unixfs(node.data)
            if fs.type not in (T_FILE, T_RAW):
                raise IntegrityError(f"block {cid} is a UnixFS type {fs.type} node, not a file")
            if len(fs.blocksizes) != len(node.links):
                raise IntegrityError(f"block {cid}: {len(node.links)} links but {len(fs.blocksizes)} block sizes")
            size = len(fs.data) + sum(fs.blocksizes)
            if fs.filesize is not None and fs.filesize != size:
                raise IntegrityError(f"block {cid}: filesize {fs.filesize} disagrees with its parts ({size})")
            data = memoryview(fs.data)
            children = []
            for link, bs in zip(node.links, fs.blocksizes):
                if bs == 0:
                    raise IntegrityError(f"block {cid} has a link of size zero")
                try:
                    children.append((fast_cid(link.hash), bs))
                except Exception as exc:
                    raise IntegrityError(f"block {cid} links to a malformed CID") from exc
        else:
            raise IntegrityError(f"block {cid} has codec {cid.codec.name}; a file is raw or dag-pb")
        if expected is None:
            declared_total = size
            if size > limit:
                raise IntegrityError(f"{cid} holds {size} bytes, more than the expected {limit}")
            budget = max_visits(size)
        elif size != expected:
            raise IntegrityError(f"block {cid} holds {size} bytes where its parent promised {expected}")
        produced += len(data)
        if produced > limit:
            raise IntegrityError(f"{root} holds more than the expected {limit} bytes")
        stack.extend(reversed(children))
        yield WalkedBlock(cid, block, data)
    if produced != declared_total:
        raise IntegrityError(f"{root}: read {produced} bytes, the DAG declares {declared_total}")


def iter_file(root: CID | str | bytes, fetch: Fetch, max_size: int | None = None) -> Iterator[bytes]:
    """The file's bytes in order, each piece from a block that has already been verified."""
    for item in walk(root, fetch, max_size):
        if len(item.data):
            yield bytes(item.data) if item.cid.codec.code != RAW else item.block
