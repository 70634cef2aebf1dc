"""Our CAR v1 against an independent implementation (@ipld/car): each reads what the other writes."""

from __future__ import annotations

import json
import os
import shutil
import subprocess

import pytest

from registry.content.cids import parse_cid
from registry.content.local import LocalStore
from registry.content.unixfs import import_bytes

from tests._content_fixtures import REPO

SCRIPT = REPO / "scripts" / "js" / "car-check.mjs"
pytestmark = pytest.mark.skipif(
    shutil.which("node") is None or not (REPO / "node_modules" / "@ipld" / "car").is_dir(),
    reason="node or node_modules/@ipld/car missing",
)


def node(*args: str) -> str:
    return subprocess.run(["node", str(SCRIPT), *args], cwd=REPO, check=True, capture_output=True, text=True).stdout


@pytest.mark.parametrize("profile", ["kubo-v0", "kubo-v1"])
def test_ipld_car_reads_our_car(tmp_path, profile):
    store = LocalStore(tmp_path / "s", fsync=False)
    r = store.put_bytes(os.urandom(262144 * 4 + 99), profile)
    car = tmp_path / "ours.car"
    store.export_car_file(r.cid, car)
    doc = json.loads(node("read", str(car)))
    assert doc["ok"] and doc["roots"] == [str(r.cid)]
    assert len(doc["blocks"]) == 6 and doc["blocks"][0] == str(r.cid)


@pytest.mark.parametrize("profile", ["kubo-v0", "kubo-v1"])
def test_we_read_ipld_car_output(tmp_path, profile):
    data = os.urandom(262144 * 3 + 5)
    src = tmp_path / "f.bin"
    src.write_bytes(data)
    car = tmp_path / "theirs.car"
    root = parse_cid(node("write", str(src), str(car), profile).strip())
    assert root == import_bytes(data, profile).cid
    store = LocalStore(tmp_path / "s", fsync=False)
    assert store.import_car_file(car) == [root]
    assert store.get_bytes(root) == data


def test_ipld_car_rejects_a_tampered_car_too(tmp_path):
    store = LocalStore(tmp_path / "s", fsync=False)
    r = store.put_bytes(os.urandom(300_000), "kubo-v1")
    car = tmp_path / "t.car"
    store.export_car_file(r.cid, car)
    raw = bytearray(car.read_bytes())
    raw[-1] ^= 1
    car.write_bytes(bytes(raw))
    with pytest.raises(subprocess.CalledProcessError):
        node("read", str(car))


# --------------------------------------------------------------------------------------------
# Reading a CAR from anywhere: every malformed length, header and section is refused by name
# --------------------------------------------------------------------------------------------


class _Trickle:
    """A stream that hands out at most ``step`` bytes per read, as a socket does."""

    def __init__(self, data: bytes, step: int = 3) -> None:
        self.data, self.pos, self.step = data, 0, step

    def read(self, n: int = -1) -> bytes:
        n = self.step if n < 0 else min(n, self.step)
        out = self.data[self.pos:self.pos + n]
        self.pos += len(out)
        return out


def _car(payload: bytes = b"hello car") -> tuple[bytes, object]:
    from registry.content.car import car_bytes

    blocks: list = []
    result = import_bytes(payload, "kubo-v1", block_sink=lambda c, b: blocks.append((c, bytes(b))))
    return car_bytes([result.cid], blocks), result


def test_a_car_read_in_small_pieces_gives_its_roots_and_verified_blocks():
    from registry.content.car import read_car

    data, result = _car()
    roots, blocks = read_car(_Trickle(data))
    assert [str(r) for r in roots] == [str(result.cid)]
    assert [bytes(b) for _c, b in blocks] == [b"hello car"]


@pytest.mark.parametrize("mutate,why", [
    (lambda d: b"", "empty CAR stream"),
    (lambda d: b"\x00", "header length 0 is out of range"),
    (lambda d: b"\x81\x80\x40", "header length 1048577 is out of range"),
    (lambda d: b"\x80", "truncated inside the header length"),
    (lambda d: b"\xff" * 10 + b"\x01", "header length is not a valid varint"),
    (lambda d: d[:5], "truncated inside the header"),
    (lambda d: b"\x01\xa0", "not a CAR v1"),
    (lambda d: d[:-1], "truncated inside the section"),
    (lambda d: d + b"\x00", "section of 0 bytes is out of range"),
    (lambda d: d + b"\x80", "truncated inside the section length"),
])
def test_a_malformed_car_is_refused_saying_where(mutate, why):
    from registry.content.car import read_car
    from registry.errors import IntegrityError

    data, _ = _car()
    with pytest.raises(IntegrityError, match=why):
        roots, blocks = read_car(_Trickle(mutate(data), step=1000))
        list(blocks)


def test_sections_and_headers_at_their_limits():
    from registry.content.car import MAX_HEADER, MAX_SECTION, read_car
    from registry.content.dagpb import varint
    from registry.errors import IntegrityError

    data, _ = _car()
    header_len = data[0]
    header, body = data[1:1 + header_len], data[1 + header_len:]
    too_big = varint(MAX_SECTION + 1)
    with pytest.raises(IntegrityError, match=f"section of {MAX_SECTION + 1} bytes is out of range"):
        list(read_car(_Trickle(data + too_big, step=1 << 20))[1])
    # a header of exactly MAX_HEADER bytes is read (and then judged on its content)
    with pytest.raises(IntegrityError, match="not DAG-CBOR|not a CAR v1|truncated"):
        read_car(_Trickle(varint(MAX_HEADER) + header + bytes(MAX_HEADER - len(header)), step=1 << 20))
    assert body


def test_a_car_written_from_walker_cids_reads_back_and_counts_its_bytes():
    import io

    from registry.content.car import read_car, write_car
    from registry.content.cids import RawCID

    data, result = _car(b"walked")
    roots, blocks = read_car(io.BytesIO(data))
    blocks = list(blocks)
    out = io.BytesIO()
    written = write_car(out, [RawCID(bytes(result.cid))], [(c, b) for c, b in blocks])
    assert written == len(out.getvalue()) == len(data) and out.getvalue() == data


def test_a_header_whose_roots_are_not_a_list_is_refused():
    import dag_cbor

    from registry.content.car import read_car
    from registry.content.dagpb import varint
    from registry.errors import IntegrityError

    for roots in (5, "bafy", None):
        header = dag_cbor.encode({"roots": roots, "version": 1})
        with pytest.raises(IntegrityError, match="roots are not a list of CIDs"):
            read_car(_Trickle(varint(len(header)) + header))


def test_a_section_of_exactly_the_largest_size_is_read_then_judged_by_its_block():
    from registry.content.car import MAX_SECTION, read_car
    from registry.content.dagpb import varint
    from registry.errors import IntegrityError

    data, result = _car()
    cid = bytes(result.cid)
    section = varint(MAX_SECTION) + cid + bytes(MAX_SECTION - len(cid))
    with pytest.raises(IntegrityError) as info:
        list(read_car(_Trickle(data + section, step=1 << 20))[1])
    assert "out of range" not in str(info.value)


def test_a_header_length_padded_to_ten_varint_bytes_is_read_as_kubo_reads_it():
    """go-car (Kubo's ``dag import``) reads lengths with ``binary.ReadUvarint``: up to 10 bytes, padding
    included. A CAR whose header length is padded to 10 bytes is the same CAR; 11 bytes is refused."""
    from registry.content.car import read_car
    from registry.errors import IntegrityError

    data, result = _car()
    header_len = data[0]
    padded = bytes([0x80 | header_len]) + b"\x80" * 8 + b"\x00" + data[1:]
    roots, blocks = read_car(_Trickle(padded))
    assert [str(r) for r in roots] == [str(result.cid)]
    assert [bytes(b) for _c, b in blocks] == [b"hello car"]
    too_long = bytes([0x80 | header_len]) + b"\x80" * 9 + b"\x00" + data[1:]
    with pytest.raises(IntegrityError, match="header length is not a valid varint"):
        read_car(_Trickle(too_long))
