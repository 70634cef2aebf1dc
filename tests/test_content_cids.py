"""CID parsing, the 36-byte on-chain form, and both display spellings."""

from __future__ import annotations

import pytest
from hypothesis import given, strategies as st

from registry.content.cids import (cid_bytes_v1, cid_from_bytes, display, make_cid, parse_cid, read_cid_prefix,
                                   to_v1_text, verify_block, DAG_PB, RAW)
from registry.errors import InputError, IntegrityError

V0 = "QmT78zSuBmuS4z925WZfrqQ1qHaJ56DQaTfyMUF7F8ff5o"
V1_RAW = "bafkreifjjcie6lypi6ny7amxnfftagclbuxndqonfipmb64f2km2devei4"


def test_v0_becomes_its_v1_dag_pb_twin_on_chain():
    b = cid_bytes_v1(V0)
    assert len(b) == 36 and b[:4] == bytes([0x01, 0x70, 0x12, 0x20])
    assert b[4:] == bytes(parse_cid(V0).raw_digest)
    back = cid_from_bytes(b)
    assert str(back).startswith("bafy") and display(back)["v0"] == V0
    assert display(V0) == {"v1": str(back), "v0": V0}


def test_raw_cid_has_no_v0_spelling():
    assert display(V1_RAW) == {"v1": V1_RAW, "v0": None}
    assert cid_bytes_v1(V1_RAW)[:4] == bytes([0x01, 0x55, 0x12, 0x20])


@pytest.mark.parametrize("bad", ["", "   ", "Qm", "bafy!!!", "hello", "zzzzzzzz", "/ipfs/"])
def test_garbage_text_is_an_input_error(bad):
    with pytest.raises(InputError, match="not a CID"):
        parse_cid(bad)


def test_binary_forms():
    assert parse_cid(bytes(parse_cid(V1_RAW))) == parse_cid(V1_RAW)
    with pytest.raises(InputError):
        cid_from_bytes(bytes(parse_cid(V1_RAW)) + b"\x00")  # trailing bytes
    with pytest.raises(InputError):
        cid_from_bytes(b"\x01\x55\x12")


def test_non_sha256_cids_are_refused_for_the_chain():
    ident = parse_cid("bafkqaaa")  # identity multihash, empty
    with pytest.raises(InputError, match="sha2-256"):
        cid_bytes_v1(ident)
    with pytest.raises(IntegrityError, match="not accepted"):
        verify_block(ident, b"")


def test_ipfs_path_prefix_is_accepted():
    assert parse_cid("/ipfs/" + V0) == parse_cid(V0)


@given(st.binary(min_size=32, max_size=32), st.sampled_from([RAW, DAG_PB]))
def test_make_parse_round_trip(digest, codec):
    c = make_cid(1, codec, digest)
    assert parse_cid(str(c)) == c
    assert cid_from_bytes(cid_bytes_v1(c)) == c
    assert to_v1_text(c) == str(c)
    parsed, used = read_cid_prefix(bytes(c) + b"tail")
    assert parsed == c and used == 36


@given(st.binary(max_size=60))
def test_random_bytes_never_crash(data):
    try:
        parse_cid(data)
    except InputError:
        pass
