"""LocalStore: verified round trips, CAR export/import, pins, and nothing half-written on failure."""

from __future__ import annotations

import io
import os

import pytest

from registry.config import load_settings
from registry.content.car import CarReader, car_bytes, encode_header, encode_section
from registry.content.cids import cid_bytes_v1, parse_cid, to_v1_text
from registry.content.stores import ContentStore, LocalStore, open_store
from registry.content.unixfs import import_bytes
from registry.errors import InputError, IntegrityError, UnreachableError


@pytest.fixture
def store(tmp_path):
    return LocalStore(tmp_path / "blocks")


SIZES = [0, 1, 262143, 262144, 262145, 174 * 262144 + 1]


@pytest.mark.parametrize("profile", ["kubo-v0", "kubo-v1", "unixfs-v1-2025"])
@pytest.mark.parametrize("size", SIZES)
def test_put_get_round_trip(store, profile, size):
    data = os.urandom(size)
    r = store.put_bytes(data, profile)
    assert r.cid == import_bytes(data, profile).cid
    assert store.has(r.cid)
    assert store.get_bytes(r.cid) == data
    assert store.get_bytes(r.cid, max_size=size) == data


def test_open_store_defaults_to_local(tmp_path, monkeypatch):
    monkeypatch.setenv("REGISTRY_HOME", str(tmp_path))
    monkeypatch.delenv("REGISTRY_IPFS_API", raising=False)
    monkeypatch.delenv("REGISTRY_PROFILE", raising=False)
    s = open_store(load_settings())
    assert isinstance(s, LocalStore) and isinstance(s, ContentStore)
    assert s.root == tmp_path / "blocks"


def test_open_store_rejects_unknown_kind(tmp_path, monkeypatch):
    from dataclasses import replace

    monkeypatch.setenv("REGISTRY_HOME", str(tmp_path))
    settings = load_settings()
    bad = replace(settings, profile=replace(settings.profile, store="ftp:x"))
    with pytest.raises(InputError, match="unknown content store"):
        open_store(bad)


def test_put_file_and_get_file(store, tmp_path):
    src = tmp_path / "model.onnx"
    src.write_bytes(os.urandom(600_000))
    r = store.put_file(src)
    dest = tmp_path / "out"
    dest.mkdir()
    n = store.get_file(r.cid, dest / "model.onnx", max_size=r.size)
    assert n == r.size and (dest / "model.onnx").read_bytes() == src.read_bytes()
    assert [p.name for p in dest.iterdir()] == ["model.onnx"]


def test_tampered_block_is_detected_and_nothing_is_written(store, tmp_path):
    data = os.urandom(262144 * 3)
    r = store.put_bytes(data, "kubo-v1")
    leaves = [p for p in store.root.rglob("bafk*")]
    assert len(leaves) == 3
    victim = sorted(leaves)[1]
    raw = bytearray(victim.read_bytes())
    raw[100] ^= 1
    victim.write_bytes(bytes(raw))
    dest = tmp_path / "dl" / "model.bin"
    dest.parent.mkdir()
    with pytest.raises(IntegrityError, match="do not match"):
        store.get_file(r.cid, dest)
    assert list(dest.parent.iterdir()) == []


def test_missing_block_is_unavailable_not_tampered(store, tmp_path):
    r = store.put_bytes(os.urandom(262144 * 2), "kubo-v1")
    next(store.root.rglob("bafk*")).unlink()
    with pytest.raises(UnreachableError, match="not in the local store"):
        store.get_bytes(r.cid)
    with pytest.raises(UnreachableError):
        store.pin(r.cid)
    assert not store.is_pinned(r.cid)


def test_max_size_stops_a_larger_artifact(store):
    r = store.put_bytes(os.urandom(1000), "kubo-v1")
    with pytest.raises(IntegrityError, match="more than the expected 999"):
        store.get_bytes(r.cid, max_size=999)
    big = store.put_bytes(os.urandom(262144 * 4), "kubo-v0")
    with pytest.raises(IntegrityError, match="more than the expected"):
        store.get_bytes(big.cid, max_size=262144 * 4 - 1)


def test_v0_and_v1_spellings_name_the_same_blocks(store):
    r = store.put_bytes(os.urandom(300_000), "kubo-v0")
    v1 = parse_cid(r.cid).set(version=1)
    assert store.has(v1) and store.get_bytes(v1) == store.get_bytes(r.cid)
    assert len(cid_bytes_v1(r.cid)) == 36


def test_pins_persist_and_are_atomic(store):
    r = store.put_bytes(b"hello", "kubo-v1")
    store.pin(r.cid)
    assert LocalStore(store.root).is_pinned(r.cid)
    assert store.pins() == [to_v1_text(r.cid)]
    store.unpin(r.cid)
    assert store.pins() == []
    assert not list(store.root.glob(".pins.*"))


def test_malformed_pin_file_is_an_input_error(store):
    store.root.mkdir(parents=True)
    (store.root / "pins.json").write_text("{not json")
    with pytest.raises(InputError, match="pin set"):
        store.pins()


@pytest.mark.parametrize("profile", ["kubo-v0", "kubo-v1"])
def test_car_export_import_round_trip(store, tmp_path, profile):
    data = os.urandom(262144 * 5 + 3)
    r = store.put_bytes(data, profile)
    car = tmp_path / "a.car"
    store.export_car_file(r.cid, car)
    other = LocalStore(tmp_path / "other")
    assert other.import_car_file(car) == [r.cid]
    assert other.get_bytes(r.cid) == data
    assert other.is_pinned(r.cid)
    with open(car, "rb") as f:
        reader = CarReader.open(f)
        blocks = list(reader)
    assert reader.roots == [r.cid]
    assert len(blocks) == 7 and blocks[0][0] == r.cid  # root first, then 6 leaves in order


def test_car_reader_refuses_tampered_truncated_and_oversized(store):
    data = os.urandom(262144 * 2)
    r = store.put_bytes(data, "kubo-v1")
    buf = io.BytesIO()
    store.export_car(r.cid, buf)
    good = buf.getvalue()
    tampered = bytearray(good)
    tampered[-10] ^= 0xFF
    with pytest.raises(IntegrityError, match="do not match"):
        LocalStore(store.root.parent / "t1").import_car(io.BytesIO(bytes(tampered)))
    with pytest.raises(IntegrityError, match="truncated"):
        LocalStore(store.root.parent / "t2").import_car(io.BytesIO(good[:-5]))
    big = encode_header([r.cid]) + b"\xff\xff\xff\x7f"
    with pytest.raises(IntegrityError, match="out of range"):
        LocalStore(store.root.parent / "t3").import_car(io.BytesIO(big))
    with pytest.raises(IntegrityError, match="CAR"):
        LocalStore(store.root.parent / "t4").import_car(io.BytesIO(b"\x05garbage"))
    with pytest.raises(IntegrityError, match="empty CAR"):
        LocalStore(store.root.parent / "t5").import_car(io.BytesIO(b""))


def test_incomplete_car_import_does_not_pin(store, tmp_path):
    data = os.urandom(262144 * 3)
    blocks = []
    r = import_bytes(data, "kubo-v1", block_sink=lambda c, b: blocks.append((c, b)))
    car = car_bytes([r.cid], blocks[:-2] + blocks[-1:])  # one leaf missing
    with pytest.raises(IntegrityError):
        store.import_car(io.BytesIO(car))
    assert not store.is_pinned(r.cid)
    # every block present but one: a section with the wrong CID for its bytes
    cid0, b0 = blocks[0]
    forged = encode_header([r.cid]) + encode_section(cid0, b0 + b"!")
    with pytest.raises(IntegrityError):
        LocalStore(tmp_path / "x").import_car(io.BytesIO(forged))


def test_putting_again_repairs_a_damaged_block(store):
    data = os.urandom(262144 * 2)
    r = store.put_bytes(data, "kubo-v1")
    victim = next(store.root.rglob("bafk*"))
    victim.write_bytes(b"\x00" * victim.stat().st_size)
    with pytest.raises(IntegrityError):
        store.get_bytes(r.cid)
    store.put_bytes(data, "kubo-v1")
    assert store.get_bytes(r.cid) == data


@pytest.mark.parametrize("spec", ["kubo:http://127.0.0.1:5001/", "gateway:https://gw.example/", " local "])
def test_open_store_builds_what_the_profile_names_with_its_limits(tmp_path, monkeypatch, spec):
    from dataclasses import replace

    monkeypatch.setenv("REGISTRY_HOME", str(tmp_path))
    settings = load_settings()
    profile = replace(settings.profile, store=spec, cid_profile="kubo-v0", timeout_s=2.5, retries=7)
    store = open_store(replace(settings, profile=profile))
    try:
        if spec.strip() == "local":
            assert isinstance(store, LocalStore) and store.profile == "kubo-v0" and store.root == tmp_path / "blocks"
            return
        assert (store.policy.timeout_s, store.policy.retries) == (2.5, 7)
        if spec.startswith("kubo"):
            assert type(store).__name__ == "KuboStore" and store.api_url == "http://127.0.0.1:5001"
            assert store.profile == "kubo-v0"
        else:
            assert type(store).__name__ == "GatewayStore" and store.url == "https://gw.example"
    finally:
        close = getattr(store, "close", None)
        if close is not None:
            close()


@pytest.mark.parametrize("spec", ["kubo:", "gateway:", "kubo", "Local"])
def test_a_store_spec_without_its_url_is_refused_naming_the_profile(tmp_path, monkeypatch, spec):
    from dataclasses import replace

    monkeypatch.setenv("REGISTRY_HOME", str(tmp_path))
    settings = load_settings()
    bad = replace(settings, profile=replace(settings.profile, store=spec))
    with pytest.raises(InputError, match=rf"unknown content store {spec!r} in profile 'local'"):
        open_store(bad)


def test_the_http_back_ends_load_on_first_use():
    import registry.content.stores as stores

    assert stores.KuboStore.__name__ == "KuboStore" and stores.GatewayStore.__name__ == "GatewayStore"
    assert stores.PinningService.__name__ == "PinningService"
    with pytest.raises(AttributeError):
        stores.NotAStore  # noqa: B018
