"""HAMT-sharded UnixFS directories, byte for byte as go-unixfs/boxo builds them (fanout 256).

Each entry name is hashed with murmur3-x64-64 (the first 64 bits of MurmurHash3 x64/128, seed 0,
big-endian, as ``spaolacci/murmur3``'s ``Sum64``); level ``d`` of the trie uses byte ``d`` of that
hash as the bucket. A bucket with one entry holds a link named ``"%02X" % bucket + name``; a bucket
where several entries collide holds a link named ``"%02X" % bucket`` to a child shard built the same
way one level down. The result depends only on the set of entries (never on insertion order),
which is what lets two importers agree. Shard Data is UnixFS ``{Type: HAMTShard, Data: bitfield,
hashType: 0x22, fanout: 256}`` where the bitfield is the big-endian integer with bit ``i`` set for
each occupied bucket, leading zero bytes trimmed (go-bitfield's ``Bytes()``).

The reader side (``read_shard``) decodes and checks one shard node for the DAG walker.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import TYPE_CHECKING

from registry.content.codes import DAG_PB, cid_binary
from registry.content.dagpb import T_HAMT_SHARD, varint
from registry.content.dirs import DirLink, RawSink, encode_pbnode
from registry.errors import IntegrityError

if TYPE_CHECKING:
    from registry.content.dagpb import PBNode, UnixFSData
    from registry.content.unixfs import Profile

FANOUT = 256
MURMUR3_X64_64 = 0x22
MAX_LEVELS = 8  # 64 hash bits, 8 per level


def hash_name(name: str) -> bytes:
    """murmur3-x64-64 of the UTF-8 name, as the 8 big-endian bytes the trie consumes in order."""
    import mmh3

    h1 = mmh3.hash64(name.encode("utf-8"), seed=0, x64arch=True)[0]
    return (h1 & 0xFFFFFFFFFFFFFFFF).to_bytes(8, "big")


def shard_data(buckets: list[int]) -> bytes:
    bits = 0
    for bucket in buckets:
        bits |= 1 << bucket
    bitfield = bits.to_bytes((bits.bit_length() + 7) // 8, "big")
    return (b"\x08\x05\x12" + varint(len(bitfield)) + bitfield + b"\x28" + varint(MURMUR3_X64_64)
            + b"\x30" + varint(FANOUT))


def build_shard(links: list[DirLink], profile: "Profile", sink: RawSink | None = None) -> DirLink:
    """The root shard of a HAMT directory holding ``links``."""
    hashed = [(hash_name(link.name), link) for link in links]
    return _build(hashed, 0, profile, sink)


def _build(entries: list[tuple[bytes, DirLink]], level: int, profile: "Profile", sink: RawSink | None) -> DirLink:
    if level >= MAX_LEVELS:
        raise IntegrityError("sharded directory too deep (murmur3 collision on all 64 bits)")
    buckets: dict[int, list[tuple[bytes, DirLink]]] = {}
    for h, link in entries:
        buckets.setdefault(h[level], []).append((h, link))
    out: list[tuple[bytes, bytes, int]] = []
    for bucket in sorted(buckets):
        members = buckets[bucket]
        prefix = b"%02X" % bucket
        if len(members) == 1:
            link = members[0][1]
            out.append((link.cid, prefix + link.name.encode("utf-8"), link.tsize))
        else:
            child = _build(members, level + 1, profile, sink)
            out.append((child.cid, prefix, child.tsize))
    block = encode_pbnode(out, shard_data(sorted(buckets)))
    cid = cid_binary(profile.cid_version, DAG_PB, hashlib.sha256(block).digest())
    if sink is not None:
        sink(cid, block)
    return DirLink("", cid, len(block) + sum(t for _c, _n, t in out))


@dataclass(frozen=True)
class ShardLink:
    """One link of a decoded shard: either an entry (``name`` set) or a child shard (``name`` None)."""

    bucket: int
    name: str | None
    cid: bytes
    tsize: int | None


def read_shard(node: "PBNode", fs: "UnixFSData", where: str) -> list[ShardLink]:
    """The links of one HAMT shard node, with their bucket prefixes checked and stripped."""
    if fs.type != T_HAMT_SHARD:
        raise IntegrityError(f"{where}: not a HAMT shard")
    if fs.fanout != FANOUT or fs.hash_type != MURMUR3_X64_64:
        raise IntegrityError(f"{where}: HAMT shard with fanout {fs.fanout} and hash {fs.hash_type}; "
                             f"only fanout {FANOUT} with murmur3-x64-64 is read")
    out: list[ShardLink] = []
    seen: set[int] = set()
    for link in node.links:
        name = link.name or ""
        prefix = name[:2]
        if len(prefix) != 2 or prefix != prefix.upper():
            raise IntegrityError(f"{where}: HAMT link name {name[:40]!r} has no bucket prefix")
        try:
            bucket = int(prefix, 16)
        except ValueError:
            raise IntegrityError(f"{where}: HAMT link name {name[:40]!r} has no bucket prefix") from None
        if bucket in seen:
            raise IntegrityError(f"{where}: HAMT bucket {prefix} used twice")
        seen.add(bucket)
        out.append(ShardLink(bucket, name[2:] if len(name) > 2 else None, link.hash, link.tsize))
    return out
