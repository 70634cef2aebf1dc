"""Shared helpers for the content tests: the vector stream, a cheap deterministic byte stream, vectors."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Iterator

import numpy as np

VECTORS = Path("/work/shared/vectors/unixfs-cids.tsv")
REPO = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Vector:
    file: str
    size: int
    content: str
    kubo_v0: str
    kubo_v1: str


def load_vectors() -> list[Vector]:
    rows = VECTORS.read_text(encoding="utf-8").splitlines()[1:]
    out = []
    for row in rows:
        f, size, content, v0, v1 = row.split("\t")
        out.append(Vector(f, int(size), content, v0, v1))
    return out


def gen_stream(size: int, seed: bytes = b"", piece: int = 1 << 20) -> Iterator[bytes]:
    """gen.py's stream (SHA-256 of seed + 8-byte big-endian counter), cut into ``piece``-byte parts."""
    return rechunk(_gen_blocks(size, seed), piece)


def _gen_blocks(size: int, seed: bytes) -> Iterator[bytes]:
    counter = 0
    left = size
    sha = hashlib.sha256
    per = 32768  # digests per block: 1 MiB
    while left > 0:
        out = b"".join(sha(seed + i.to_bytes(8, "big")).digest() for i in range(counter, counter + per))
        counter += per
        yield out[:left]
        left -= len(out)


def rechunk(blocks: Iterator[bytes], piece: int) -> Iterator[bytes]:
    buf = bytearray()
    for b in blocks:
        buf += b
        while len(buf) >= piece:
            yield bytes(buf[:piece])
            del buf[:piece]
    if buf:
        yield bytes(buf)


def vector_bytes(v: Vector) -> bytes:
    if v.content.startswith("gen:"):
        return b"".join(gen_stream(v.size, v.content[4:].encode()))
    if v.content == "zeros":
        return bytes(v.size)
    assert v.content.startswith("literal:")
    return v.content[len("literal:"):].replace("\\n", "\n").encode()


@lru_cache(maxsize=1)
def xorshift_pool() -> np.ndarray:
    """64 KiB of xorshift32 output (seed 2463534242): the pool the JS helper builds too."""
    x = 2463534242
    out = np.empty(16384, dtype=np.uint32)
    for i in range(16384):
        x ^= (x << 13) & 0xFFFFFFFF
        x ^= x >> 17
        x ^= (x << 5) & 0xFFFFFFFF
        out[i] = x
    return out


def fast_stream(size: int, piece_blocks: int = 64) -> Iterator[bytes]:
    """Cheap, non-repeating test bytes: 64 KiB block k = pool XOR (k * 0x9E3779B1), little-endian u32.

    scripts/js/unixfs-cid.mjs generates the same stream, so sizes up to GiBs cross-check fast.
    """
    pool = xorshift_pool()
    block = 65536
    k = 0
    left = size
    while left > 0:
        nblocks = min(piece_blocks, (left + block - 1) // block)
        keys = (np.arange(k, k + nblocks, dtype=np.uint64) * np.uint64(0x9E3779B1)) & np.uint64(0xFFFFFFFF)
        arr = pool[None, :] ^ keys.astype(np.uint32)[:, None]
        raw = arr.astype("<u4").tobytes()
        n = min(len(raw), left)
        yield raw[:n]
        left -= n
        k += nblocks
