"""GatewayStore against a local trustless gateway: verified CAR streaming, and every way a gateway can lie."""

from __future__ import annotations

import hashlib
import io
import os

import pytest

from registry.content.car import CarReader
from registry.content.gateway import GatewayStore
from registry.content.unixfs import import_bytes
from registry.errors import InputError, IntegrityError, UnreachableError

from tests._content_fixtures import FakeGateway, RefusedPort


@pytest.fixture
def gw(tmp_path):
    server = FakeGateway(tmp_path / "gw-blocks")
    yield server
    server.close()


@pytest.fixture
def store(gw):
    s = GatewayStore(gw.url, timeout=5.0, retries=1, backoff=0.01)
    yield s
    s.close()


@pytest.mark.parametrize("profile", ["kubo-v0", "kubo-v1", "unixfs-v1-2025"])
@pytest.mark.parametrize("size", [0, 10, 262144 * 3 + 1])
def test_round_trip_through_car(gw, store, profile, size):
    data = os.urandom(size)
    r = gw.store.put_bytes(data, profile)
    assert store.has(r.cid)
    assert store.get_bytes(r.cid, max_size=size) == data
    assert hashlib.sha256(store.get_block(r.cid)).digest() == bytes(r.cid.raw_digest)
    assert any("format=car" in path for _, path in gw.requests)


def test_export_car_from_gateway(gw, store):
    data = os.urandom(262144 * 2 + 3)
    r = gw.store.put_bytes(data, "kubo-v1")
    buf = io.BytesIO()
    store.export_car(r.cid, buf)
    buf.seek(0)
    reader = CarReader.open(buf)
    assert reader.roots == [r.cid] and len(list(reader)) == 4


@pytest.mark.parametrize("mode,match", [
    ("wrong-bytes", "do not match"),
    ("incomplete", "incomplete CAR"),
    ("truncated", "truncated|broke"),
    ("oversize-block", "out of range"),
    ("wrong-root", "roots"),
    ("html", "trustless"),
])
def test_lying_gateway_is_refused_and_nothing_is_written(gw, store, tmp_path, mode, match):
    data = os.urandom(262144 * 3 + 9)
    r = gw.store.put_bytes(data, "kubo-v1")
    gw.mode = mode
    dest = tmp_path / "dl" / "model.onnx"
    dest.parent.mkdir()
    with pytest.raises((IntegrityError, UnreachableError), match=match):
        store.get_file(r.cid, dest)
    assert list(dest.parent.iterdir()) == []


def test_out_of_order_blocks_are_buffered(gw, store):
    data = os.urandom(262144 * 5)
    r = gw.store.put_bytes(data, "kubo-v0")
    gw.mode = "reordered"
    assert store.get_bytes(r.cid) == data


def test_wrong_raw_block_is_refused(gw, store):
    r = gw.store.put_bytes(b"hello world\n", "kubo-v1")
    gw.mode = "wrong-bytes"
    with pytest.raises(IntegrityError, match="do not match"):
        store.get_block(r.cid)


def test_missing_content(gw, store):
    cid = import_bytes(b"nobody has this").cid
    assert not store.has(cid)
    with pytest.raises(UnreachableError, match="does not have it"):
        store.get_bytes(cid)


def test_max_size(gw, store):
    r = gw.store.put_bytes(os.urandom(262144 * 2), "kubo-v1")
    with pytest.raises(IntegrityError, match="more than the expected"):
        store.get_bytes(r.cid, max_size=262144)


def test_gateway_is_read_only(store, tmp_path):
    with pytest.raises(InputError, match="read-only"):
        store.put_bytes(b"x")
    with pytest.raises(InputError, match="read-only"):
        store.pin(import_bytes(b"x").cid)


def test_gateway_down(tmp_path):
    with RefusedPort() as dead:
        store = GatewayStore(dead.url, timeout=1.0, retries=1, backoff=0.01)
        with pytest.raises(UnreachableError, match="after 2 attempts"):
            store.get_bytes(import_bytes(b"x").cid)


@pytest.mark.parametrize("mode", ["honest", "no-dups"])
@pytest.mark.parametrize("profile", ["kubo-v0", "kubo-v1"])
def test_files_with_identical_chunks_with_and_without_duplicate_blocks(gw, store, mode, profile):
    """A zero-padded region repeats one leaf many times: dups=y streams it again, dups=n sends it once."""
    # 20 distinct chunks between the zero runs push the zero leaf out of the dups=n memory: re-fetched raw
    data = bytes(262144 * 40) + os.urandom(262144 * 20) + bytes(262144 * 30)
    r = gw.store.put_bytes(data, profile)
    gw.mode = mode
    assert store.get_bytes(r.cid) == data
    raw_fetches = [p for _, p in gw.requests if "format=raw" in p]
    assert len(raw_fetches) == (1 if mode == "no-dups" else 0)
