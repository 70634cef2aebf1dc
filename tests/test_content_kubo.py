"""KuboStore against a local server that follows the Kubo RPC spec, honest and lying; plus a live node."""

from __future__ import annotations

import io
import os

import pytest

from registry.content.cids import parse_cid
from registry.content.kubo import KuboStore, add_params
from registry.content.local import LocalStore
from registry.content.unixfs import PROFILES, import_bytes
from registry.errors import IntegrityError, UnreachableError

from tests._content_fixtures import FakeKubo, RefusedPort


@pytest.fixture
def node(tmp_path):
    server = FakeKubo(tmp_path / "kubo-blocks")
    yield server
    server.close()


@pytest.fixture
def kubo(node):
    store = KuboStore(node.url, timeout=5.0, retries=2, backoff=0.01)
    yield store
    store.close()


@pytest.mark.parametrize("profile", sorted(PROFILES))
def test_put_sends_the_profile_parameters_and_round_trips(node, kubo, profile):
    data = os.urandom(262144 * 3 + 5)
    r = kubo.put_bytes(data, profile)
    assert r.cid == import_bytes(data, profile).cid
    assert node.add_params[-1]["cid-version"] == str(PROFILES[profile].cid_version)
    assert node.add_params[-1]["chunker"] == f"size-{PROFILES[profile].chunk_size}"
    assert node.add_params[-1]["raw-leaves"] == ("true" if PROFILES[profile].raw_leaves else "false")
    assert node.add_params[-1]["max-file-links"] == str(PROFILES[profile].max_links)
    assert kubo.has(r.cid)
    assert kubo.get_bytes(r.cid, max_size=len(data)) == data
    assert all(method == "POST" for method, _ in node.requests)


def test_put_file_with_progress(node, kubo, tmp_path):
    src = tmp_path / "m.bin"
    src.write_bytes(os.urandom(700_000))
    seen = []
    r = kubo.put_file(src, "kubo-v0", progress=seen.append)
    assert str(r.cid).startswith("Qm") and sum(seen) == 700_000
    dest = tmp_path / "out.bin"
    kubo.get_file(r.cid, dest)
    assert dest.read_bytes() == src.read_bytes()


def test_node_answering_another_cid_is_refused(node, kubo):
    node.mode = "wrong-cid"
    with pytest.raises(IntegrityError, match="refusing the node's CID"):
        kubo.put_bytes(b"model bytes", "kubo-v1")


def test_node_storing_other_bytes_is_refused(node, kubo):
    node.mode = "wrong-bytes-add"
    with pytest.raises(IntegrityError, match="refusing"):
        kubo.put_bytes(os.urandom(1000), "kubo-v1")


def test_node_returning_wrong_bytes_fails_the_get_and_leaves_nothing(node, kubo, tmp_path):
    data = os.urandom(262144 * 2 + 1)
    r = kubo.put_bytes(data)
    node.mode = "wrong-bytes"
    dest = tmp_path / "dl" / "model.onnx"
    dest.parent.mkdir()
    with pytest.raises(IntegrityError, match="do not match"):
        kubo.get_file(r.cid, dest)
    assert list(dest.parent.iterdir()) == []


def test_truncated_block_stream_is_an_error(node, kubo):
    r = kubo.put_bytes(os.urandom(5000))
    node.mode = "truncated"
    with pytest.raises((UnreachableError, IntegrityError)):
        kubo.get_bytes(r.cid)


def test_oversized_block_is_refused(node, kubo):
    r = kubo.put_bytes(os.urandom(5000))
    node.mode = "oversize-block"
    with pytest.raises(IntegrityError, match="exceeds"):
        kubo.get_block(r.cid)


def test_max_size_guards_the_download(node, kubo):
    r = kubo.put_bytes(os.urandom(262144 * 4))
    with pytest.raises(IntegrityError, match="more than the expected"):
        kubo.get_bytes(r.cid, max_size=1000)


def test_missing_block_and_has(node, kubo):
    cid = import_bytes(b"never added").cid
    assert not kubo.has(cid)
    with pytest.raises(UnreachableError, match="not found"):
        kubo.get_bytes(cid)


def test_node_down_is_unreachable_after_retries(tmp_path):
    with RefusedPort() as dead:
        store = KuboStore(dead.url, timeout=1.0, retries=2, backoff=0.01)
        with pytest.raises(UnreachableError, match="after 3 attempts"):
            store.version()


def test_503_is_retried_then_reported(node, kubo):
    node.mode = "down-503"
    with pytest.raises(UnreachableError, match="503"):
        kubo.version()
    assert len([r for r in node.requests if r[1] == "version"]) == 3


def test_slow_node_times_out(node):
    node.mode = "slow"
    store = KuboStore(node.url, timeout=0.3, retries=1, backoff=0.01)
    with pytest.raises(UnreachableError, match="timed out"):
        store.version()


def test_pin_and_wrong_pin_answer(node, kubo):
    r = kubo.put_bytes(os.urandom(3000))
    kubo.pin(r.cid)
    assert node.store.is_pinned(r.cid)
    node.mode = "wrong-pin"
    with pytest.raises(IntegrityError, match="did not confirm"):
        kubo.pin(r.cid)


def test_dag_import_of_our_car(node, kubo, tmp_path):
    local = LocalStore(tmp_path / "local")
    data = os.urandom(262144 * 3 + 7)
    r = local.put_bytes(data, "kubo-v0")
    car = tmp_path / "m.car"
    local.export_car_file(r.cid, car)
    assert kubo.import_car_file(car) == [r.cid]
    assert kubo.get_bytes(r.cid) == data
    assert node.store.is_pinned(r.cid)
    tampered = bytearray(car.read_bytes())
    tampered[-3] ^= 1
    before = len(node.requests)
    with pytest.raises(IntegrityError):
        kubo.import_car(io.BytesIO(bytes(tampered)))
    assert len(node.requests) == before  # refused locally, nothing sent


def test_block_put_checks_the_key(node, kubo):
    blocks = []
    r = import_bytes(os.urandom(262144 + 1), "kubo-v1", block_sink=lambda c, b: blocks.append((c, b)))
    for cid, block in blocks:
        kubo.put_block(cid, block)
    assert kubo.get_bytes(r.cid)


def test_get_method_is_not_kubo(node):
    import httpx

    assert httpx.get(node.url + "/api/v0/version").status_code == 405


def test_add_params_match_profiles():
    assert add_params(PROFILES["kubo-v0"])["cid-version"] == "0"
    assert add_params(PROFILES["unixfs-v1-2025"])["chunker"] == "size-1048576"


@pytest.mark.live
@pytest.mark.skipif(not os.environ.get("REGISTRY_IPFS_API"), reason="REGISTRY_IPFS_API not set")
@pytest.mark.parametrize("profile", ["kubo-v0", "kubo-v1"])
def test_live_node_gives_our_cids(profile):
    store = KuboStore(os.environ["REGISTRY_IPFS_API"], timeout=30.0)
    assert "Version" in store.version()
    data = os.urandom(262144 * 3 + 11)
    r = store.put_bytes(data, profile)  # raises unless the node's CID equals ours
    assert store.get_bytes(r.cid) == data
    assert parse_cid(str(r.cid)) == r.cid
    store.pin(r.cid)


def test_reads_stream_one_dag_export(node, kubo):
    data = os.urandom(262144 * 6 + 1)
    r = kubo.put_bytes(data, "kubo-v1")
    before = len(node.requests)
    assert kubo.get_bytes(r.cid) == data
    assert [c for _, c in node.requests[before:]] == ["dag/export"]


def test_dag_export_missing_a_block_is_refused(node, kubo):
    r = kubo.put_bytes(os.urandom(262144 * 3), "kubo-v1")
    node.mode = "incomplete"
    with pytest.raises(IntegrityError, match="incomplete CAR"):
        kubo.get_bytes(r.cid)


def test_repeated_leaves_come_once_in_dag_export(node, kubo):
    """go-car visits each block once; repeats are served from memory or fetched with block/get."""
    data = bytes(262144 * 30) + os.urandom(262144 * 20) + bytes(262144 * 10)
    r = kubo.put_bytes(data, "kubo-v0")
    before = len(node.requests)
    assert kubo.get_bytes(r.cid) == data
    assert [c for _, c in node.requests[before:]] == ["dag/export", "block/get"]


@pytest.mark.live
@pytest.mark.skipif(not os.environ.get("REGISTRY_IPFS_API"), reason="REGISTRY_IPFS_API not set")
def test_live_node_imports_our_car(tmp_path):
    local = LocalStore(tmp_path / "local", fsync=False)
    data = os.urandom(262144 * 2 + 3)
    r = local.put_bytes(data, "kubo-v0")
    car = tmp_path / "a.car"
    local.export_car_file(r.cid, car)
    store = KuboStore(os.environ["REGISTRY_IPFS_API"], timeout=30.0)
    assert store.import_car_file(car) == [r.cid]
    assert store.get_bytes(r.cid) == data
