"""UnixFS directories as ``ipfs add -r`` builds them: basic directory nodes, and HAMT shards past a threshold.

A directory is a dag-pb node whose links name its entries (sorted by name bytes, as go-merkledag
encodes them) and whose Data is UnixFS ``{Type: Directory}``. Each link's ``Tsize`` is the whole
sub-DAG's size (the child's block plus its own links' Tsizes). When the directory would grow past
a threshold, Kubo switches it to a HAMT (``hamt.py``). Profiles differ only in how the size is
estimated and compared (see ``Profile.hamt_estimate``):

``links-bytes``  sum of ``len(name) + len(cid)`` over the links, switched at ``>=`` 256 KiB: what
                 Kubo (boxo up to 2025, including the Kubo 0.22 the tests run) does for plain
                 ``ipfs add -r`` and ``--cid-version=1`` (profiles kubo-v0 and kubo-v1).
``block-bytes``  the exact size of the encoded basic directory block, switched at ``>`` 256 KiB:
                 IPIP-499's ``unixfs-v1-2025``.

Blocks are handed to a sink in the order they are finished (children before parents), so a store
can keep them and a CAR can be written from them.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Iterable

from registry.content.codes import DAG_PB, cid_binary
from registry.content.dagpb import varint

if TYPE_CHECKING:
    from registry.content.unixfs import Profile

HAMT_THRESHOLD = 256 * 1024
DIRECTORY_DATA = b"\x08\x01"  # UnixFS Data {Type: Directory}

RawSink = Callable[[bytes, bytes], None]  # (binary cid, block)


@dataclass(frozen=True)
class DirLink:
    """One entry of a directory: its name, the binary CID of its root, and the sub-DAG's total size."""

    name: str
    cid: bytes
    tsize: int


def encode_link(cid: bytes, name: bytes, tsize: int) -> bytes:
    """PBLink{Hash, Name, Tsize} inside PBNode field 2."""
    body = b"\x0a" + varint(len(cid)) + cid + b"\x12" + varint(len(name)) + name + b"\x18" + varint(tsize)
    return b"\x12" + varint(len(body)) + body


def encode_pbnode(links: Iterable[tuple[bytes, bytes, int]], data: bytes) -> bytes:
    """dag-pb: links (already in their final order) then Data."""
    parts = [encode_link(c, n, t) for c, n, t in links]
    parts.append(b"\x0a" + varint(len(data)) + data)
    return b"".join(parts)


def basic_directory_block(links: list[DirLink]) -> bytes:
    ordered = sorted(((link.cid, link.name.encode("utf-8"), link.tsize) for link in links), key=lambda t: t[1])
    return encode_pbnode(ordered, DIRECTORY_DATA)


def estimated_size(links: list[DirLink], profile: "Profile") -> int:
    """The size the profile compares with the HAMT threshold."""
    if profile.hamt_estimate == "block-bytes":
        return len(basic_directory_block(links))
    return sum(len(link.name.encode("utf-8")) + len(link.cid) for link in links)


def is_sharded(links: list[DirLink], profile: "Profile") -> bool:
    size = estimated_size(links, profile)
    return size >= HAMT_THRESHOLD if profile.hamt_inclusive else size > HAMT_THRESHOLD


def directory_cid(block: bytes, profile: "Profile") -> bytes:
    return cid_binary(profile.cid_version, DAG_PB, hashlib.sha256(block).digest())


def build_directory(links: list[DirLink], profile: "Profile", sink: RawSink | None = None) -> DirLink:
    """The directory node(s) for ``links``; returns the link a parent would hold (name left empty)."""
    if is_sharded(links, profile):
        from registry.content.hamt import build_shard

        return build_shard(links, profile, sink)
    block = basic_directory_block(links)
    cid = directory_cid(block, profile)
    if sink is not None:
        sink(cid, block)
    return DirLink("", cid, len(block) + sum(link.tsize for link in links))


def build_tree(files: Iterable[tuple[str, bytes, int]], profile: "Profile", sink: RawSink | None = None) -> DirLink:
    """The root directory of a tree given every file as (relative path, file root CID, Tsize)."""
    root: dict[str, object] = {}
    for path, cid, tsize in files:
        node = root
        *dirs, name = path.split("/")
        for part in dirs:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ValueError(f"{path}: {part} is a file")
            node = child
        if name in node:
            raise ValueError(f"{path} appears twice")
        node[name] = DirLink(name, cid, tsize)

    def close(node: dict[str, object]) -> DirLink:
        links = []
        for name, child in node.items():
            if isinstance(child, dict):
                built = close(child)
                links.append(DirLink(name, built.cid, built.tsize))
            else:
                assert isinstance(child, DirLink)
                links.append(child)
        return build_directory(links, profile, sink)

    return close(root)
