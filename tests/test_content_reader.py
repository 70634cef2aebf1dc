"""The verified DAG walk against hostile DAGs: every lie about sizes, types or bytes must be refused."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given, settings, strategies as st

from registry.content.cids import DAG_PB, RAW, make_cid
from registry.content.dagpb import decode_node, decode_unixfs, encode_node, unixfs_file_data
from registry.content.reader import MAX_BLOCK_SIZE, iter_file
from registry.errors import IntegrityError


def put(blocks: dict, codec: int, block: bytes):
    cid = make_cid(1, codec, hashlib.sha256(block).digest())
    blocks[str(cid)] = block
    return cid


def fetcher(blocks: dict):
    def fetch(cid):
        try:
            return blocks[str(cid)]
        except KeyError:
            raise IntegrityError(f"missing {cid}") from None
    return fetch


def file_node(blocks, children, sizes, filesize=None, data_override=None):
    data = data_override if data_override is not None else unixfs_file_data(
        sum(sizes) if filesize is None else filesize, sizes)
    links = [(bytes(c), 10) for c in children]
    return put(blocks, DAG_PB, encode_node(links, data))


def test_honest_two_level_dag():
    blocks: dict = {}
    leaves = [put(blocks, RAW, bytes([i]) * 100) for i in range(3)]
    root = file_node(blocks, leaves, [100, 100, 100])
    assert b"".join(iter_file(root, fetcher(blocks))) == b"".join(bytes([i]) * 100 for i in range(3))


def test_child_bigger_than_promised():
    blocks: dict = {}
    leaves = [put(blocks, RAW, b"a" * 100), put(blocks, RAW, b"b" * 101)]
    root = file_node(blocks, leaves, [100, 100])
    with pytest.raises(IntegrityError, match="promised 100"):
        b"".join(iter_file(root, fetcher(blocks)))


def test_filesize_disagrees_with_parts():
    blocks: dict = {}
    leaves = [put(blocks, RAW, b"a" * 100)]
    root = file_node(blocks, leaves, [100], filesize=50)
    with pytest.raises(IntegrityError, match="filesize 50"):
        list(iter_file(root, fetcher(blocks)))


def test_links_without_blocksizes():
    blocks: dict = {}
    leaves = [put(blocks, RAW, b"a" * 100)]
    root = file_node(blocks, leaves, [], data_override=b"\x08\x02\x18\x64")
    with pytest.raises(IntegrityError, match="block sizes"):
        list(iter_file(root, fetcher(blocks)))


def test_directory_is_not_a_file():
    blocks: dict = {}
    root = put(blocks, DAG_PB, encode_node([], b"\x08\x01"))
    with pytest.raises(IntegrityError, match="not a file"):
        list(iter_file(root, fetcher(blocks)))


def test_dag_cbor_root_is_not_a_file():
    import dag_cbor

    blocks: dict = {}
    root = put(blocks, 0x71, dag_cbor.encode({"a": 1}))
    with pytest.raises(IntegrityError, match="codec dag-cbor"):
        list(iter_file(root, fetcher(blocks)))


def test_block_swapped_under_a_cid():
    blocks: dict = {}
    leaf = put(blocks, RAW, b"good")
    root = file_node(blocks, [leaf], [4])
    blocks[str(leaf)] = b"evil"
    with pytest.raises(IntegrityError, match="do not match"):
        list(iter_file(root, fetcher(blocks)))


def test_oversized_block_refused_before_hashing():
    blocks: dict = {}
    root = put(blocks, RAW, bytes(MAX_BLOCK_SIZE + 1))
    with pytest.raises(IntegrityError, match="over the"):
        list(iter_file(root, fetcher(blocks)))


def test_max_size_stops_before_fetching_children():
    blocks: dict = {}
    leaves = [put(blocks, RAW, b"x" * 1000) for _ in range(2)]
    root = file_node(blocks, leaves, [1000, 1000])
    fetched = []

    def fetch(cid):
        fetched.append(cid)
        return blocks[str(cid)]

    with pytest.raises(IntegrityError, match="more than the expected 1500"):
        list(iter_file(root, fetch, max_size=1500))
    assert len(fetched) == 1  # only the root


def test_strict_dag_pb_decoding():
    good = encode_node([(bytes(make_cid(1, RAW, bytes(32))), 5)], b"\x08\x02")
    assert decode_node(good).links[0].tsize == 5
    with pytest.raises(IntegrityError, match="link after data"):
        decode_node(b"\x0a\x00" + good)  # Data before Links
    with pytest.raises(IntegrityError):
        decode_node(good[:-1])
    with pytest.raises(IntegrityError, match="unexpected field"):
        decode_node(b"\x18\x01")


@given(st.binary(max_size=300))
@settings(max_examples=300)
def test_random_bytes_only_ever_raise_integrity_errors(data):
    for fn in (decode_node, lambda d: decode_unixfs(d)):
        try:
            fn(data)
        except IntegrityError:
            pass
