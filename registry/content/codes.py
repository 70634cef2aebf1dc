"""Multicodec numbers and the binary CID prefix, free of heavy imports.

The importer builds link hashes on its hot path and must not wait for ``multiformats`` to load
(a quarter of a second on a small device); it only needs these bytes. ``cids`` turns them into
``multiformats.CID`` objects at the edges.
"""

from __future__ import annotations

RAW = 0x55
DAG_PB = 0x70
DAG_CBOR = 0x71
SHA2_256 = 0x12
CODECS = {RAW: "raw", DAG_PB: "dag-pb", DAG_CBOR: "dag-cbor"}
V1_PREFIX = {code: bytes([0x01, code, SHA2_256, 0x20]) for code in CODECS}
V0_PREFIX = bytes([SHA2_256, 0x20])


def cid_binary(version: int, codec: int, digest: bytes) -> bytes:
    """Binary sha2-256 CID (v0: the bare multihash, dag-pb only; v1: version, codec, multihash)."""
    if version == 0:
        if codec != DAG_PB:
            raise ValueError("CIDv0 is dag-pb only")
        return V0_PREFIX + digest
    return V1_PREFIX[codec] + digest
