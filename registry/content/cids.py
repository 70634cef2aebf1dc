"""CIDs in the three shapes the registry meets them: text (``Qm…``/``b…``), binary, and on chain.

The chain stores every CID as 36 bytes of binary CIDv1 (sha2-256), so a ``kubo-v0`` CID is turned
into its CIDv1 dag-pb twin before it is anchored; both name the same block. Parsing and base
encodings come from the ``multiformats`` package, never from hand-rolled code.
"""

from __future__ import annotations

import hashlib

from multiformats import CID, multihash

from registry.errors import InputError, IntegrityError

from registry.content.codes import CODECS, DAG_CBOR, DAG_PB, RAW, SHA2_256, V0_PREFIX, V1_PREFIX, cid_binary

CID_V1_LEN = 36
_V1_PREFIX = V1_PREFIX
_V0_PREFIX = V0_PREFIX

__all__ = [
    "CID",
    "RAW",
    "DAG_PB",
    "DAG_CBOR",
    "parse_cid",
    "cid_from_bytes",
    "cid_bytes_v1",
    "cid_binary",
    "make_cid",
    "cid_object",
    "display",
    "to_v1_text",
    "verify_block",
    "read_cid_prefix",
]


class _Code:
    __slots__ = ("code", "name")

    def __init__(self, code: int, name: str) -> None:
        self.code = code
        self.name = name


_SHA2_256 = _Code(SHA2_256, "sha2-256")
_CODES = {code: _Code(code, name) for code, name in CODECS.items()}


class RawCID:
    """A sha2-256 CID held as its binary form, for the DAG walkers' hot path.

    ``multiformats`` validates types at run time on every CID it builds or encodes (a third of a
    millisecond each here), which would dominate walking a large file's thousands of blocks. The
    walkers only need the codec, the digest and a store key, so links become ``RawCID``s after a
    cheap shape check; anything else (text, other bases) goes through ``multiformats`` lazily.
    """

    __slots__ = ("_b", "_full")

    def __init__(self, binary: bytes) -> None:
        self._b = binary
        self._full: CID | None = None

    @property
    def version(self) -> int:
        return 0 if len(self._b) == 34 else 1

    @property
    def codec(self) -> _Code:
        return _CODES[DAG_PB] if len(self._b) == 34 else _CODES[self._b[1]]

    @property
    def hashfun(self) -> _Code:
        return _SHA2_256

    @property
    def raw_digest(self) -> bytes:
        return self._b[-32:]

    def __bytes__(self) -> bytes:
        return self._b

    def full(self) -> CID:
        if self._full is None:
            self._full = cid_object(self._b)
        return self._full

    def __str__(self) -> str:
        return str(self.full())

    def __repr__(self) -> str:
        return f"RawCID({self})"

    def __eq__(self, other: object) -> bool:
        if isinstance(other, (RawCID, CID)):
            return bytes(other) == self._b
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self._b)

    def set(self, **kwargs: object) -> CID:
        return self.full().set(**kwargs)  # type: ignore[arg-type]

    def encode(self, *args: object) -> str:
        return self.full().encode(*args)  # type: ignore[arg-type]


def fast_cid(binary: bytes) -> "RawCID | CID":
    """A link's CID: a ``RawCID`` when it is a plain sha2-256 CID of a known codec, else fully parsed."""
    b = bytes(binary)
    if len(b) == 34 and b[0] == SHA2_256 and b[1] == 0x20:
        return RawCID(b)
    if len(b) == 36 and b[0] == 0x01 and b[1] in CODECS and b[2] == SHA2_256 and b[3] == 0x20:
        return RawCID(b)
    return cid_from_bytes(b)


def _v1_binary(cid: "CID | RawCID") -> bytes | None:
    b = bytes(cid)
    if len(b) == 34 and b[0] == SHA2_256 and b[1] == 0x20:
        return V1_PREFIX[DAG_PB] + b[2:]
    if len(b) == 36 and b[0] == 0x01 and b[1] in CODECS and b[2] == SHA2_256 and b[3] == 0x20:
        return b
    return None


def make_cid(version: int, codec: int, digest: bytes) -> CID:
    """A sha2-256 CID from a raw 32-byte digest (v0 is always dag-pb, base58btc)."""
    mh = multihash.wrap(digest, "sha2-256")
    if version == 0:
        if codec != DAG_PB:
            raise ValueError("CIDv0 is dag-pb only")
        return CID("base58btc", 0, "dag-pb", mh)
    return CID("base32", 1, CODECS[codec], mh)


def cid_object(binary: bytes) -> CID:
    """A CID object from trusted binary (our own importer), spelled as Kubo prints it."""
    cid = CID.decode(binary)
    return cid if cid.version == 0 else cid.set(base="base32")


def parse_cid(value: "str | bytes | bytearray | memoryview | CID | RawCID") -> CID:
    """Any CID the user can type or a contract can return; InputError on anything else."""
    if isinstance(value, (CID, RawCID)):
        return value  # type: ignore[return-value]
    try:
        if isinstance(value, (bytes, bytearray, memoryview)):
            return cid_from_bytes(bytes(value))
        text = value.strip()
        if text.startswith("/ipfs/"):
            text = text[len("/ipfs/"):]
        if not text:
            raise ValueError("empty")
        cid = CID.decode(text)
        return cid if cid.version == 0 else cid.set(base="base32")
    except InputError:
        raise
    except Exception as exc:  # multiformats raises several unrelated types on garbage
        shown = value if isinstance(value, str) else "0x" + bytes(value).hex()
        raise InputError(f"not a CID: {shown[:80]!r} ({exc})") from exc


def cid_from_bytes(data: bytes) -> CID:
    """Binary CID (v0 multihash form or v1), the exact length and nothing after it."""
    try:
        cid = CID.decode(bytes(data))
    except Exception as exc:
        raise InputError(f"not a binary CID: 0x{bytes(data).hex()[:96]} ({exc})") from exc
    if bytes(cid) != bytes(data):
        raise InputError(f"not a canonical binary CID: 0x{bytes(data).hex()[:96]}")
    return cid if cid.version == 0 else cid.set(base="base32")


def cid_bytes_v1(cid: CID | str | bytes) -> bytes:
    """The 36-byte binary CIDv1 stored on chain; a v0 CID becomes its v1 dag-pb twin."""
    cid = parse_cid(cid)
    if cid.hashfun.code != SHA2_256 or len(cid.raw_digest) != 32:
        raise InputError(f"CID {cid} does not use sha2-256; the registry stores only sha2-256 CIDs")
    if cid.codec.code not in CODECS:
        raise InputError(f"CID {cid} has codec {cid.codec.name}; expected raw, dag-pb or dag-cbor")
    return _V1_PREFIX[cid.codec.code] + bytes(cid.raw_digest)


def to_v1_text(cid: CID | str | bytes) -> str:
    """Base32 CIDv1 text (``bafy…``/``bafk…``): one spelling per block, used as the store key."""
    if isinstance(cid, (CID, RawCID)):
        v1 = _v1_binary(cid)
        if v1 is not None:
            import base64

            return "b" + base64.b32encode(v1).decode("ascii").lower().rstrip("=")
    cid = parse_cid(cid)
    return cid.set(version=1).encode("base32") if cid.version == 0 else cid.encode("base32")


def display(cid: CID | str | bytes) -> dict[str, str | None]:
    """Both spellings a user may search for: base32 v1 always, ``Qm…`` when dag-pb/sha2-256."""
    cid = parse_cid(cid)
    v0: str | None = None
    if cid.codec.code == DAG_PB and cid.hashfun.code == SHA2_256 and len(cid.raw_digest) == 32:
        v0 = str(cid.set(version=0, base="base58btc")) if cid.version == 1 else str(cid)
    return {"v1": to_v1_text(cid), "v0": v0}


def verify_block(cid: CID, data: bytes | memoryview) -> None:
    """The block's hash must be the CID's digest; only sha2-256 is accepted (identity hashes are refused)."""
    v1 = _v1_binary(cid)
    if v1 is not None:  # the common case, without multiformats' slow digest accessors
        if hashlib.sha256(data).digest() != v1[4:]:
            raise IntegrityError(f"block {cid}: bytes do not match the CID")
        return
    if cid.hashfun.code != SHA2_256:
        raise IntegrityError(f"block {cid}: hash function {cid.hashfun.name} is not accepted (sha2-256 only)")
    if hashlib.sha256(data).digest() != bytes(cid.raw_digest):
        raise IntegrityError(f"block {cid}: bytes do not match the CID")


def read_cid_prefix(buf: bytes | memoryview, offset: int = 0) -> tuple[CID, int]:
    """Parses a binary CID at ``offset`` (CAR sections, dag-pb links) and returns it with its length."""
    from multiformats import varint

    mv = memoryview(buf)
    try:
        if len(mv) - offset >= 2 and mv[offset] == SHA2_256 and mv[offset + 1] == 0x20:
            end = offset + 34
        else:
            pos = offset
            for _ in range(3):  # version, codec, hash function code
                _, n, _ = varint.decode_raw(mv[pos:pos + 10])
                pos += n
            length, n, _ = varint.decode_raw(mv[pos:pos + 10])
            end = pos + n + length
        if end > len(mv):
            raise ValueError("truncated")
        raw = bytes(mv[offset:end])
        return fast_cid(raw), end - offset  # type: ignore[return-value]
    except InputError as exc:
        raise IntegrityError(f"malformed CID in data: {exc}") from exc
    except Exception as exc:
        raise IntegrityError(f"malformed CID in data ({exc})") from exc
