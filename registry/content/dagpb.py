"""The two tiny protobuf messages behind a UnixFS file: dag-pb ``PBNode`` and UnixFS ``Data``.

Written by hand because the CID depends on every byte: dag-pb's canonical form puts ``Links``
(field 2) before ``Data`` (field 1), each link carries an *empty* ``Name`` (Kubo writes it, and
leaving it out changes the CID), and UnixFS ``blocksizes`` are written unpacked, one tag per
value, as go-unixfs and js-ipfs-unixfs do. The decoder is strict (canonical field order, no
unknown fields, no trailing bytes) because it reads blocks that come from untrusted nodes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from registry.errors import IntegrityError

# UnixFS Data.Type values
T_RAW = 0
T_DIRECTORY = 1
T_FILE = 2
T_METADATA = 3
T_SYMLINK = 4
T_HAMT_SHARD = 5


def varint(n: int) -> bytes:
    """Unsigned LEB128, as protobuf and multiformats use it."""
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _bytes_field(tag: int, payload: bytes) -> bytes:
    return bytes([tag]) + varint(len(payload)) + payload


def encode_link(cid_bytes: bytes, tsize: int) -> bytes:
    """PBLink{Hash, Name: "", Tsize}."""
    body = _bytes_field(0x0A, cid_bytes) + b"\x12\x00" + b"\x18" + varint(tsize)
    return _bytes_field(0x12, body)


def encode_node(links: list[tuple[bytes, int]], data: bytes | None) -> bytes:
    """PBNode with Links before Data (dag-pb canonical form)."""
    parts = [encode_link(c, t) for c, t in links]
    if data is not None:
        parts.append(_bytes_field(0x0A, data))
    return b"".join(parts)


def unixfs_file_data(filesize: int, blocksizes: list[int]) -> bytes:
    """UnixFS Data of an inner file node: Type=File, filesize, one blocksizes entry per link."""
    return b"\x08\x02\x18" + varint(filesize) + b"".join(b"\x20" + varint(s) for s in blocksizes)


def leaf_wrapping(size: int) -> tuple[bytes, bytes]:
    """Bytes before and after a chunk in a dag-pb leaf (Type=File, Data=chunk, filesize).

    Returned separately so the leaf can be hashed as head + chunk + tail without copying the chunk.
    An empty chunk has no Data field (go-unixfs leaves it unset), only ``filesize = 0``.
    """
    if size == 0:
        inner_head = b"\x08\x02"
    else:
        inner_head = b"\x08\x02\x12" + varint(size)
    inner_tail = b"\x18" + varint(size)
    inner_len = len(inner_head) + size + len(inner_tail)
    return b"\x0a" + varint(inner_len) + inner_head, inner_tail


# ---------------------------------------------------------------------------------------------
# decoding (strict)


@dataclass(frozen=True)
class PBLink:
    hash: bytes
    name: str | None
    tsize: int | None


@dataclass(frozen=True)
class PBNode:
    links: list[PBLink]
    data: bytes | None


@dataclass(frozen=True)
class UnixFSData:
    type: int
    data: bytes = b""
    filesize: int | None = None
    blocksizes: list[int] = field(default_factory=list)
    hash_type: int | None = None
    fanout: int | None = None


def _read_varint(buf: memoryview, pos: int) -> tuple[int, int]:
    result = 0
    shift = 0
    while True:
        if pos >= len(buf):
            raise IntegrityError("malformed dag-pb: truncated varint")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise IntegrityError("malformed dag-pb: varint too long")


def _read_bytes(buf: memoryview, pos: int) -> tuple[memoryview, int]:
    n, pos = _read_varint(buf, pos)
    if pos + n > len(buf):
        raise IntegrityError("malformed dag-pb: field runs past the end of the block")
    return buf[pos:pos + n], pos + n


def _decode_link(buf: memoryview) -> PBLink:
    pos = 0
    h: bytes | None = None
    name: str | None = None
    tsize: int | None = None
    last = 0
    while pos < len(buf):
        key, pos = _read_varint(buf, pos)
        num, wire = key >> 3, key & 7
        if num <= last:
            raise IntegrityError("malformed dag-pb: link fields out of order or repeated")
        last = num
        if num == 1 and wire == 2:
            v, pos = _read_bytes(buf, pos)
            h = bytes(v)
        elif num == 2 and wire == 2:
            v, pos = _read_bytes(buf, pos)
            try:
                name = bytes(v).decode("utf-8")
            except UnicodeDecodeError as exc:
                raise IntegrityError("malformed dag-pb: link name is not UTF-8") from exc
        elif num == 3 and wire == 0:
            tsize, pos = _read_varint(buf, pos)
        else:
            raise IntegrityError(f"malformed dag-pb: unexpected link field {num}/{wire}")
    if h is None:
        raise IntegrityError("malformed dag-pb: link without a hash")
    return PBLink(h, name, tsize)


def decode_node(block: bytes | memoryview) -> PBNode:
    """Strict dag-pb decode: links (field 2) first, then at most one Data (field 1), nothing else."""
    buf = memoryview(block)
    pos = 0
    links: list[PBLink] = []
    data: bytes | None = None
    while pos < len(buf):
        key, pos = _read_varint(buf, pos)
        num, wire = key >> 3, key & 7
        if wire != 2 or num not in (1, 2):
            raise IntegrityError(f"malformed dag-pb: unexpected field {num}/{wire}")
        v, pos = _read_bytes(buf, pos)
        if num == 2:
            if data is not None:
                raise IntegrityError("malformed dag-pb: link after data")
            links.append(_decode_link(v))
        else:
            if data is not None:
                raise IntegrityError("malformed dag-pb: repeated data field")
            data = bytes(v)
    return PBNode(links, data)


def decode_unixfs(data: bytes | None) -> UnixFSData:
    """UnixFS Data message; unknown fields (mode, mtime …) are skipped, types are checked."""
    if data is None:
        raise IntegrityError("dag-pb node has no UnixFS data")
    buf = memoryview(data)
    pos = 0
    typ: int | None = None
    payload = b""
    filesize: int | None = None
    blocksizes: list[int] = []
    hash_type: int | None = None
    fanout: int | None = None
    while pos < len(buf):
        key, pos = _read_varint(buf, pos)
        num, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _read_varint(buf, pos)
            if num == 1:
                typ = value
            elif num == 3:
                filesize = value
            elif num == 4:
                blocksizes.append(value)
            elif num == 5:
                hash_type = value
            elif num == 6:
                fanout = value
        elif wire == 2:
            v, pos = _read_bytes(buf, pos)
            if num == 2:
                payload = bytes(v)
            elif num == 4:  # packed blocksizes
                p = 0
                while p < len(v):
                    value, p = _read_varint(v, p)
                    blocksizes.append(value)
        elif wire == 1:
            pos += 8
        elif wire == 5:
            pos += 4
        else:
            raise IntegrityError(f"malformed UnixFS data: wire type {wire}")
        if pos > len(buf):
            raise IntegrityError("malformed UnixFS data: truncated")
    if typ is None:
        raise IntegrityError("malformed UnixFS data: no type")
    return UnixFSData(typ, payload, filesize, blocksizes, hash_type, fanout)
