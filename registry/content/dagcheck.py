"""Is every block of a DAG here and intact? One visit per distinct block, whatever the DAG claims.

Pinning and importing a CAR only need to know that the whole DAG is present and well-formed, not
to stream its bytes, so this walk fetches and verifies each *distinct* block once (a DAG that
repeats one block a million times costs one visit), checks file sizes edge by edge from a memo of
sub-DAG sizes, refuses links of size zero, and stops at a block budget. That is what keeps
``import-car`` fast on a hostile CAR that declares petabytes of repeated zeros.
"""

from __future__ import annotations

from typing import Iterator

from multiformats import CID

from registry.content.cids import DAG_PB, RAW, parse_cid, to_v1_text
from registry.content.dagpb import T_DIRECTORY, T_FILE, T_HAMT_SHARD, T_RAW, decode_node, decode_unixfs
from registry.content.reader import Fetch, checked_block
from registry.errors import IntegrityError

MAX_DAG_BLOCKS = 4_000_000
MAX_DAG_EDGES = 16_000_000


def iter_dag(root: CID | str | bytes, fetch: Fetch, max_blocks: int = MAX_DAG_BLOCKS) -> Iterator[tuple[CID, bytes]]:
    """Every distinct block under ``root``, verified, depth-first in link order (the CAR order)."""
    root = parse_cid(root)
    seen: set[str] = set()
    # file sizes: cid key -> bytes of file data below it (files only)
    sizes: dict[str, int] = {}
    edges = 0
    # (cid, expected file size from the parent or None, parent is a file node)
    stack: list[tuple[CID, int | None]] = [(root, None)]
    while stack:
        cid, expected = stack.pop()
        key = to_v1_text(cid)
        if key in seen:
            _expect(sizes, key, expected, cid)
            continue
        seen.add(key)
        if len(seen) > max_blocks:
            raise IntegrityError(f"{root}: more than {max_blocks} distinct blocks; refused")
        block = checked_block(cid, fetch(cid))
        yield cid, block
        if cid.codec.code == RAW:
            sizes[key] = len(block)
            _expect(sizes, key, expected, cid)
            continue
        if cid.codec.code != DAG_PB:
            raise IntegrityError(f"block {cid} has codec {cid.codec.name}; expected raw or dag-pb")
        node = decode_node(block)
        fs = decode_unixfs(node.data)
        children: list[tuple[CID, int | None]] = []
        if fs.type in (T_FILE, T_RAW):
            if len(fs.blocksizes) != len(node.links):
                raise IntegrityError(f"block {cid}: {len(node.links)} links but {len(fs.blocksizes)} block sizes")
            size = len(fs.data) + sum(fs.blocksizes)
            if fs.filesize is not None and fs.filesize != size:
                raise IntegrityError(f"block {cid}: filesize {fs.filesize} disagrees with its parts ({size})")
            sizes[key] = size
            _expect(sizes, key, expected, cid)
            for link, bs in zip(node.links, fs.blocksizes):
                if bs == 0:
                    raise IntegrityError(f"block {cid} has a link of size zero")
                children.append((_parse(link.hash, cid), bs))
        elif fs.type in (T_DIRECTORY, T_HAMT_SHARD):
            if expected is not None:
                raise IntegrityError(f"block {cid} is a directory inside a file")
            children = [(_parse(link.hash, cid), None) for link in node.links]
        else:
            raise IntegrityError(f"block {cid} is a UnixFS type {fs.type} node; refused")
        edges += len(children)
        if edges > MAX_DAG_EDGES:
            raise IntegrityError(f"{root}: more than {MAX_DAG_EDGES} links; refused")
        stack.extend(reversed(children))


def _expect(sizes: dict[str, int], key: str, expected: int | None, cid: CID) -> None:
    if expected is not None and key in sizes and sizes[key] != expected:
        raise IntegrityError(f"block {cid} holds {sizes[key]} bytes where its parent promised {expected}")


def _parse(raw: bytes, parent: CID) -> CID:
    from registry.content.cids import fast_cid

    try:
        return fast_cid(raw)  # type: ignore[return-value]
    except Exception as exc:
        raise IntegrityError(f"block {parent} links to a malformed CID") from exc


def check_dag(root: CID | str | bytes, fetch: Fetch, max_blocks: int = MAX_DAG_BLOCKS) -> int:
    """Verifies the whole DAG (see the module docstring); returns the number of distinct blocks."""
    return sum(1 for _ in iter_dag(root, fetch, max_blocks))
