"""CAR v1: the portable form of a DAG, so any artifact can go into a real node with ``ipfs dag import``.

Layout: ``varint(len(header)) header`` where the header is DAG-CBOR ``{"roots": [CID…], "version": 1}``,
then sections ``varint(len(cid) + len(block)) cid block``. The reader verifies every block against
its CID as it streams and refuses oversized sections, so a CAR from anywhere is safe to consume.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import BinaryIO, Iterable, Iterator

import dag_cbor
from multiformats import CID

from registry.content.cids import parse_cid, read_cid_prefix
from registry.content.dagpb import varint
from registry.content.reader import MAX_BLOCK_SIZE, checked_block
from registry.errors import IntegrityError

MAX_HEADER = 1 << 20
# a section is a CID (at most a few dozen bytes for sha2-256) plus one block
MAX_SECTION = MAX_BLOCK_SIZE + 128


def encode_header(roots: Iterable[CID]) -> bytes:
    from registry.content.cids import RawCID

    full = [r.full() if isinstance(r, RawCID) else parse_cid(r) for r in roots]
    header = dag_cbor.encode({"roots": [r.full() if isinstance(r, RawCID) else r for r in full], "version": 1})
    return varint(len(header)) + header


def encode_section(cid: CID, block: bytes) -> bytes:
    cid_bin = bytes(cid)
    return varint(len(cid_bin) + len(block)) + cid_bin + block


def write_car(out: BinaryIO, roots: Iterable[CID], blocks: Iterable[tuple[CID, bytes]]) -> int:
    """Writes a CAR v1 stream; returns the number of bytes written."""
    written = out.write(encode_header(roots))
    for cid, block in blocks:
        written += out.write(encode_section(cid, block))
    return written


def car_bytes(roots: Iterable[CID], blocks: Iterable[tuple[CID, bytes]]) -> bytes:
    import io

    buf = io.BytesIO()
    write_car(buf, roots, blocks)
    return buf.getvalue()


def _read_exact(stream: BinaryIO, n: int, what: str) -> bytes:
    out = bytearray()
    while len(out) < n:
        piece = stream.read(n - len(out))
        if not piece:
            raise IntegrityError(f"CAR truncated inside the {what} ({len(out)} of {n} bytes)")
        out += piece
    return bytes(out)


def _read_varint(stream: BinaryIO, what: str, allow_eof: bool = False) -> int | None:
    result = 0
    shift = 0
    first = True
    while True:
        b = stream.read(1)
        if not b:
            if first and allow_eof:
                return None
            raise IntegrityError(f"CAR truncated inside the {what} length")
        first = False
        result |= (b[0] & 0x7F) << shift
        if not b[0] & 0x80:
            return result
        shift += 7
        if shift > 63:
            raise IntegrityError(f"CAR {what} length is not a valid varint")


@dataclass
class CarReader:
    """Streams a CAR v1: ``roots`` after construction, then verified ``(cid, block)`` pairs."""

    stream: BinaryIO
    roots: list[CID]

    @classmethod
    def open(cls, stream: BinaryIO) -> "CarReader":
        n = _read_varint(stream, "header", allow_eof=True)
        if n is None:
            raise IntegrityError("empty CAR stream")
        if n == 0 or n > MAX_HEADER:
            raise IntegrityError(f"CAR header length {n} is out of range")
        raw = _read_exact(stream, n, "header")
        try:
            header = dag_cbor.decode(raw)
        except Exception as exc:
            raise IntegrityError(f"CAR header is not DAG-CBOR ({exc})") from exc
        if not isinstance(header, dict) or header.get("version") != 1:
            raise IntegrityError("not a CAR v1 (header version is not 1)")
        roots = header.get("roots")
        if not isinstance(roots, list) or not all(isinstance(r, CID) for r in roots):
            raise IntegrityError("CAR header roots are not a list of CIDs")
        return cls(stream, [parse_cid(bytes(r)) for r in roots])

    def __iter__(self) -> Iterator[tuple[CID, bytes]]:
        while True:
            n = _read_varint(self.stream, "section", allow_eof=True)
            if n is None:
                return
            if n == 0 or n > MAX_SECTION:
                raise IntegrityError(f"CAR section of {n} bytes is out of range (blocks are at most {MAX_BLOCK_SIZE})")
            section = _read_exact(self.stream, n, "section")
            cid, used = read_cid_prefix(section)
            block = section[used:]
            yield cid, checked_block(cid, block)


def read_car(stream: BinaryIO) -> tuple[list[CID], Iterator[tuple[CID, bytes]]]:
    reader = CarReader.open(stream)
    return reader.roots, iter(reader)
