"""Incremental pull: a device holding v1 fetches only what v2 changed, from any store, and verifies all of v2.

Bad input from the issue: a store that answers a new CID with the old version's block, a cache
tampered with on disk, a full cache, an update interrupted half-way (the old release keeps working and
the next pull resumes from the blocks it verified), a damaged local copy given with ``--from``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pytest

from registry.content.blockcache import BlockCache
from registry.content.tree import import_tree
from registry.content.unixfs import import_file
from registry.errors import InputError
from registry.verify import VerificationFailed

from tests._content_fixtures import FakeGateway, FakeKubo
from tests._update_fixtures import run_model, write_mlp

NAME = "acme/mlp"
V1, V2 = f"{NAME}@1.0.0", f"{NAME}@1.1.0"
# what v2 changes: the last layer (its 400 KiB weight file and its group of biases)
CHANGED_FILES = ("tensors/layer.3.weight.bin", "groups/layer.3.bin")
# directory nodes, file root nodes and the provenance document: what a pull fetches besides changed data
OVERHEAD = 16 * 1024


@dataclass
class Releases:
    deployed: Any
    settings: Any
    v1_tree: Path
    v2_tree: Path
    changed_bytes: int
    total_bytes: int


@pytest.fixture
def releases(deployed: Any, tmp_path: Path) -> Releases:
    from registry.config import load_settings
    from registry.publish import publish_model

    settings = load_settings()
    v1 = write_mlp(tmp_path / "src" / "mlp-v1.onnx", seed=1)
    v2 = write_mlp(tmp_path / "src" / "mlp-v2.onnx", seed=1, last_seed=7)
    r1 = publish_model(v1, NAME, "1.0.0", settings=settings, signer=deployed.publisher, client=deployed.client,
                       layout="tensors")
    r2 = publish_model(v2, NAME, "1.1.0", parent=V1, settings=settings, signer=deployed.publisher,
                       client=deployed.client, layout="tensors")
    changed = sum((r2.artifact_path / p).stat().st_size for p in CHANGED_FILES)
    return Releases(deployed, settings, r1.artifact_path, r2.artifact_path, changed, r2.artifact.size)


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _pull(rel: Releases, ref: str, dest: Path, **kwargs: Any) -> Any:
    from registry.update import pull_update

    return pull_update(ref, dest, settings=rel.settings, client=rel.deployed.client, **kwargs)


@pytest.fixture(params=["local", "kubo", "gateway"])
def store_kind(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def remote(store_kind: str, releases: Releases) -> Iterator[tuple[Any, Any]]:
    """(store to pull from, fake server or None) over the blocks publish stored."""
    if store_kind == "local":
        from registry.content.local import LocalStore

        yield LocalStore(releases.settings.blocks_dir), None
        return
    blocks = releases.settings.blocks_dir
    if store_kind == "kubo":
        from registry.content.kubo import KuboStore

        fake = FakeKubo(blocks)
        store = KuboStore(fake.url, retries=1, backoff=0.01)
    else:
        from registry.content.gateway import GatewayStore

        fake = FakeGateway(blocks)
        store = GatewayStore(fake.url, retries=1, backoff=0.01)
    try:
        yield store, fake
    finally:
        store.close()
        fake.close()


def test_update_fetches_only_what_changed_and_verifies_everything(releases, remote, tmp_path):
    store, fake = remote
    cache = BlockCache(tmp_path / "cache", 64 << 20)
    dest = tmp_path / "device"
    first = _pull(releases, V1, dest, store=store, cache=cache)
    assert first.report.ok and first.transfer.reused_bytes == 0
    assert first.transfer.network_bytes >= releases.total_bytes
    served_before = fake.bytes_served if fake else 0
    second = _pull(releases, V2, dest, store=store, cache=cache)
    assert second.report.ok
    statuses = {c.name: c.status for c in second.report.checks}
    assert all(statuses[n] == "pass" for n in ("resolve", "not_revoked", "publisher_authorised", "signature",
                                               "sha256", "cid", "provenance", "onnx")), statuses
    t = second.transfer
    assert t.base == V1 and t.streamed_bytes < OVERHEAD  # block by block (the new provenance may stream)
    assert releases.changed_bytes <= t.network_bytes <= releases.changed_bytes + OVERHEAD
    assert t.reused_bytes >= releases.total_bytes - releases.changed_bytes
    if fake is not None:  # measured at the server: what really crossed the wire
        assert fake.bytes_served - served_before <= releases.changed_bytes + OVERHEAD
    assert _files(second.model_path) == _files(releases.v2_tree)
    assert np.array_equal(run_model(second.model_path / "model.onnx"), run_model(releases.v2_tree / "model.onnx"))
    assert _files(first.model_path) == _files(releases.v1_tree)  # the old release is still there, intact
    assert second.to_json()["transfer"]["network_bytes"] == t.network_bytes


def test_a_device_without_v1_pulls_everything(releases, tmp_path):
    fresh = _pull(releases, V2, tmp_path / "fresh", cache=BlockCache(tmp_path / "c", 64 << 20))
    assert fresh.transfer.base is None and fresh.transfer.reused_bytes == 0
    assert fresh.transfer.network_bytes >= releases.total_bytes


def test_from_an_installed_release_without_a_cache_and_a_damaged_copy(releases, tmp_path):
    dest = tmp_path / "device"
    _pull(releases, V1, dest, cache=False)
    installed = dest / "acme+mlp@1.0.0"
    damaged = installed / "tensors" / "layer.0.weight.bin"
    data = bytearray(damaged.read_bytes())
    data[1000] ^= 0xFF
    damaged.write_bytes(data)
    result = _pull(releases, V2, dest, cache=False, base=V1)
    assert result.report.ok
    t = result.transfer
    assert t.local_copy["damaged"] == ["tensors/layer.0.weight.bin"]
    size = damaged.stat().st_size
    assert releases.changed_bytes + size <= t.network_bytes <= releases.changed_bytes + size + OVERHEAD
    assert t.disk_bytes >= releases.total_bytes - releases.changed_bytes - size
    assert _files(result.model_path) == _files(releases.v2_tree)  # the damage never reached v2
    with pytest.raises(InputError, match="not installed"):
        _pull(releases, V2, dest, cache=False, base=f"{NAME}@0.9.0")


def test_a_tampered_cache_is_detected_and_refetched(releases, tmp_path):
    cache = BlockCache(tmp_path / "cache", 64 << 20)
    dest = tmp_path / "device"
    _pull(releases, V1, dest, cache=cache)
    blocks = sorted(p for p in (tmp_path / "cache").rglob("b*") if p.is_file() and p.stat().st_size > 100_000)
    assert blocks
    for path in blocks:  # bit rot (or an attacker) in every large block of v1
        data = bytearray(path.read_bytes())
        data[7] ^= 0x01
        path.write_bytes(data)
    shared = {c for c, _b in _leaves(releases.v2_tree / "tensors/layer.0.weight.bin")
              + _leaves(releases.v2_tree / "tensors/layer.1.weight.bin")
              + _leaves(releases.v2_tree / "tensors/layer.2.weight.bin")}
    tampered_shared = [p for p in blocks if p.name in shared]
    assert len(tampered_shared) == 6  # the blocks of the three unchanged weights (v1's last layer is not needed)
    result = _pull(releases, V2, dest, cache=cache)
    assert result.report.ok
    assert result.transfer.cache["rejected"] == 6
    refetched = sum(p.stat().st_size for p in tampered_shared)
    assert releases.changed_bytes + refetched <= result.transfer.network_bytes
    assert result.transfer.network_bytes <= releases.changed_bytes + refetched + OVERHEAD
    assert _files(result.model_path) == _files(releases.v2_tree)


def test_a_full_cache_stays_within_its_bound(releases, tmp_path):
    bound = 300_000  # smaller than one release: pulls still work, the cache evicts
    cache = BlockCache(tmp_path / "cache", bound)
    dest = tmp_path / "device"
    _pull(releases, V1, dest, cache=cache)
    result = _pull(releases, V2, dest, cache=cache)
    assert result.report.ok and _files(result.model_path) == _files(releases.v2_tree)
    assert BlockCache(tmp_path / "cache", bound).total_bytes() <= bound
    assert result.transfer.cache["evicted"] > 0


def _leaves(path: Path) -> list[tuple[str, bytes]]:
    out: list[tuple[str, bytes]] = []
    import_file(path, "kubo-v1", block_sink=lambda c, b: out.append((str(c), b)) if c.codec.name == "raw" else None)
    return out


def test_a_store_answering_with_the_old_block_for_a_new_cid(releases, tmp_path):
    from registry.content.cids import to_v1_text
    from registry.content.gateway import GatewayStore

    fake = FakeGateway(releases.settings.blocks_dir)
    store = GatewayStore(fake.url, retries=0, backoff=0.01)
    try:
        cache = BlockCache(tmp_path / "cache", 64 << 20)
        dest = tmp_path / "device"
        _pull(releases, V1, dest, store=store, cache=cache)
        rel = "tensors/layer.3.weight.bin"
        old, new = _leaves(releases.v1_tree / rel), _leaves(releases.v2_tree / rel)
        fake.substitute = {to_v1_text(n[0]): o[1] for n, o in zip(new, old)}
        with pytest.raises(VerificationFailed) as info:
            _pull(releases, V2, dest, store=store, cache=cache)
        assert info.value.exit_code == 10
        assert sorted(p.name for p in dest.iterdir() if "1.1.0" in p.name) == []
        assert not [p for p in dest.iterdir() if p.name.startswith(".")]
        assert not any(cache.contains(cid) for cid, _ in new)  # nothing that failed its hash was kept
        assert np.isfinite(run_model(dest / "acme+mlp@1.0.0" / "model.onnx")).all()  # v1 still works
        fake.substitute = {}
        assert _pull(releases, V2, dest, store=store, cache=cache).report.ok
    finally:
        store.close()
        fake.close()


def test_an_interrupted_update_keeps_v1_and_resumes(releases, tmp_path):
    from registry.content.gateway import GatewayStore

    fake = FakeGateway(releases.settings.blocks_dir)
    store = GatewayStore(fake.url, retries=0, backoff=0.01)
    try:
        cache = BlockCache(tmp_path / "cache", 64 << 20)
        dest = tmp_path / "device"
        _pull(releases, V1, dest, store=store, cache=cache)
        before = _files(dest / "acme+mlp@1.0.0")
        fake.fail_after = fake.blocks_served + 3  # the link drops three blocks into the update
        with pytest.raises(VerificationFailed) as info:
            _pull(releases, V2, dest, store=store, cache=cache)
        assert info.value.exit_code == 15
        assert _files(dest / "acme+mlp@1.0.0") == before
        assert np.isfinite(run_model(dest / "acme+mlp@1.0.0" / "model.onnx")).all()
        assert not [p for p in dest.iterdir() if "1.1.0" in p.name or p.name.startswith(".")]
        changed_leaves = _leaves(releases.v2_tree / "tensors/layer.3.weight.bin")
        kept = sum(len(b) for c, b in changed_leaves if cache.contains(c))
        fake.fail_after = None
        result = _pull(releases, V2, dest, store=store, cache=cache)
        assert result.report.ok and _files(result.model_path) == _files(releases.v2_tree)
        assert result.transfer.cache_bytes >= releases.total_bytes - releases.changed_bytes + kept
        assert result.transfer.network_bytes <= releases.changed_bytes - kept + OVERHEAD
    finally:
        store.close()
        fake.close()


def test_single_file_layout_reuses_aligned_chunks_only(deployed, tmp_path):
    """Without the tensor layout, reuse depends on luck: a value-only change keeps the chunks before and after
    it, a graph change shifts every tensor and the device fetches (almost) everything."""
    from registry.config import load_settings
    from registry.publish import publish_model

    settings = load_settings()
    files = {v: write_mlp(tmp_path / f"{v}.onnx", seed=1, **kw) for v, kw in
             (("1.0.0", {}), ("1.1.0", {"last_seed": 7}), ("1.2.0", {"last_seed": 7, "extra_node": True}))}
    for version, path in files.items():
        publish_model(path, "acme/single", version, settings=settings, signer=deployed.publisher,
                      client=deployed.client)
    cache = BlockCache(tmp_path / "cache", 64 << 20)
    dest = tmp_path / "device"
    pulls = {}
    for version in files:
        pulls[version] = _pull(Releases(deployed, settings, tmp_path, tmp_path, 0, 0), f"acme/single@{version}", dest,
                               cache=cache)
        assert pulls[version].report.ok
        assert pulls[version].model_path.read_bytes() == files[version].read_bytes()
    size = files["1.1.0"].stat().st_size
    assert pulls["1.1.0"].transfer.network_bytes < 0.5 * size
    assert pulls["1.2.0"].transfer.network_bytes > 0.9 * size
    # the delta of single files: the same tensors, and the transfer the pulls measured
    from registry.delta import delta_refs

    for version in ("1.1.0", "1.2.0"):
        delta = delta_refs(f"acme/single@{version}", "acme/single@1.0.0", settings, client=deployed.client)
        assert delta.kind == "file"
        assert [r["name"] for r in delta.tensors["changed"]] == ["layer.3.bias", "layer.3.weight"]
        network = pulls[version].transfer.network_bytes
        assert delta.transfer["fetch_bytes"] <= network <= delta.transfer["fetch_bytes"] + 4096


def test_cli_pull_reports_network_and_reused_bytes(releases, tmp_path, monkeypatch, capsys):
    from tests.test_content_cli import run

    dest = tmp_path / "device"
    monkeypatch.setenv("REGISTRY_BLOCK_CACHE_MAX", "64M")
    code, out, err = run(monkeypatch, capsys, "pull", V1, "-o", str(dest), "--cache", "--json")
    assert code == 0, err
    code, out, err = run(monkeypatch, capsys, "pull", V2, "-o", str(dest), "--cache", "--json")
    assert code == 0, err
    doc = json.loads(out)
    assert doc["transfer"]["base"] == V1
    assert doc["transfer"]["network_bytes"] <= releases.changed_bytes + OVERHEAD
    assert doc["transfer"]["reused_bytes"] >= releases.total_bytes - releases.changed_bytes
    assert (releases.settings.home / "cache" / "blocks").is_dir()  # its own directory, not the store's
    code, out, err = run(monkeypatch, capsys, "pull", V2, "-o", str(tmp_path / "d2"), "--from", V1)
    assert code == 3 and "not installed" in err
    code, out, err = run(monkeypatch, capsys, "pull", V2, "-o", str(dest), "--cache", "--cache-max", "lots")
    assert code == 3 and "not a size" in err
    code, out, err = run(monkeypatch, capsys, "pull", V2, "-o", str(dest), "--from", V1, "--no-cache")
    assert code == 0, err
    assert "network" in err and "reused" in err and "from acme/mlp@1.0.0" in err  # human output is on stderr
    code, out, err = run(monkeypatch, capsys, "cache", "info", "--json")
    info = json.loads(out)
    assert info["bytes"] >= releases.total_bytes and info["blocks"] > 10 and info["max_bytes"] == 64 << 20
    code, out, err = run(monkeypatch, capsys, "cache", "clear", "--json")
    assert code == 0 and json.loads(out)["freed_bytes"] == info["bytes"]
    assert json.loads(run(monkeypatch, capsys, "cache", "info", "--json")[1])["bytes"] == 0
    assert _files(dest / "acme+mlp@1.1.0") == _files(releases.v2_tree)  # installed models are not the cache


def test_delta_lists_changed_tensors_and_the_update_size_before_pulling(releases, tmp_path, monkeypatch, capsys):
    from registry.content.gateway import GatewayStore
    from registry.delta import delta_refs

    fake = FakeGateway(releases.settings.blocks_dir)
    store = GatewayStore(fake.url, retries=0)
    try:
        delta = delta_refs(V2, settings=releases.settings, client=releases.deployed.client, store=store)
        read = fake.bytes_served
    finally:
        store.close()
        fake.close()
    assert delta.base == V1 and delta.kind == "directory"
    t = delta.tensors
    assert [r["name"] for r in t["changed"]] == ["layer.3.bias", "layer.3.weight"]
    assert t["bytes"]["changed"] == 320 * 4 + 320 * 320 * 4
    assert t["counts"]["unchanged"] == 6 and t["counts"]["added"] == t["counts"]["removed"] == 0
    assert sorted(f["path"] for f in delta.files["changed"]) == sorted(CHANGED_FILES)
    x = delta.transfer
    assert releases.changed_bytes <= x["fetch_bytes"] <= releases.changed_bytes + OVERHEAD
    assert x["total_bytes"] >= releases.total_bytes
    assert read < 0.1 * releases.total_bytes  # the graph, the groups and inner nodes only
    # the pull then fetches what the delta said, plus the provenance document
    pulled = _pull(releases, V1, tmp_path / "d", cache=BlockCache(tmp_path / "c", 64 << 20))
    pulled = _pull(releases, V2, tmp_path / "d", cache=BlockCache(tmp_path / "c", 64 << 20))
    assert x["fetch_bytes"] <= pulled.transfer.network_bytes <= x["fetch_bytes"] + 4096
    from tests.test_content_cli import run

    code, out, err = run(monkeypatch, capsys, "delta", V2)
    assert code == 0, err
    assert "layer.3.weight" in err and "2 changed" in err
    code, out, err = run(monkeypatch, capsys, "delta", V1)
    assert code == 3 and "no parent" in err


def test_diff_of_directory_releases_names_the_changed_tensors(releases):
    from registry.diff import diff_refs

    doc = diff_refs(V1, V2, releases.settings, client=releases.deployed.client)
    assert [c["name"] for c in doc["tensors"]["changed"]] == ["layer.3.bias", "layer.3.weight"]
    assert doc["tensors"]["counts"]["unchanged"] == 6
    assert import_tree(releases.v2_tree, "kubo-v1").sha256.hex() == doc["b"]["sha256"]


def test_a_first_pull_cut_short_resumes_from_what_it_verified(releases, tmp_path):
    """No v1 on the device: the first pull streams one CAR and keeps blocks as they pass; when the
    stream breaks, the next pull asks only for the blocks it still lacks, one by one."""
    from registry.content.gateway import GatewayStore

    fake = FakeGateway(releases.settings.blocks_dir)
    store = GatewayStore(fake.url, retries=0, backoff=0.01)
    try:
        cache = BlockCache(tmp_path / "cache", 64 << 20)
        fake.mode = "truncated"  # promises the whole CAR, sends half, hangs up
        with pytest.raises(VerificationFailed) as info:
            _pull(releases, V2, tmp_path / "device", store=store, cache=cache)
        assert info.value.exit_code == 15
        assert not (tmp_path / "device").exists() or not list((tmp_path / "device").iterdir())
        kept = cache.total_bytes()
        assert 0 < kept < releases.total_bytes
        fake.mode = "honest"
        result = _pull(releases, V2, tmp_path / "device", store=store, cache=cache)
        assert result.report.ok and result.transfer.streamed_bytes < OVERHEAD
        assert result.transfer.cache_bytes >= kept - 4096
        assert result.transfer.network_bytes <= releases.total_bytes - kept + OVERHEAD
    finally:
        store.close()
        fake.close()


def test_from_an_installed_copy_with_kubo_v0_leaves(deployed, tmp_path, monkeypatch):
    """kubo-v0 wraps every chunk in a dag-pb leaf: the old copy's blocks are rebuilt with that wrapping."""
    monkeypatch.setenv("REGISTRY_CID_PROFILE", "kubo-v0")
    from registry.config import load_settings
    from registry.publish import publish_model

    settings = load_settings()
    v1 = write_mlp(tmp_path / "src" / "a.onnx", seed=1)
    v2 = write_mlp(tmp_path / "src" / "b.onnx", seed=1, last_seed=3)
    publish_model(v1, NAME, "1.0.0", settings=settings, signer=deployed.publisher, client=deployed.client,
                  layout="tensors")
    r2 = publish_model(v2, NAME, "1.1.0", settings=settings, signer=deployed.publisher, client=deployed.client,
                       layout="tensors")
    assert r2.artifact.profile == "kubo-v0"
    rel = Releases(deployed, settings, tmp_path, r2.artifact_path, 0, r2.artifact.size)
    dest = tmp_path / "device"
    _pull(rel, V1, dest, cache=False)
    result = _pull(rel, V2, dest, cache=False, base=V1)
    assert result.report.ok and _files(result.model_path) == _files(r2.artifact_path)
    changed = sum((r2.artifact_path / p).stat().st_size for p in CHANGED_FILES)
    assert result.transfer.disk_bytes >= r2.artifact.size - changed
    assert result.transfer.network_bytes <= changed + OVERHEAD


def test_range_digests_stream_any_chunking():
    import hashlib
    import random

    from registry.delta import range_digests

    data = bytes(random.Random(1).getrandbits(8) for _ in range(10_000))
    ranges = [("a", 0, 100), ("b", 64, 5000), ("c", 9_000, 1_000), ("empty", 500, 0), ("d", 4_096, 4_096)]
    want = {n: "sha256:" + hashlib.sha256(data[o:o + k]).hexdigest() for n, o, k in ranges}
    for piece in (1, 7, 4096, 10_000):
        chunks = [data[i:i + piece] for i in range(0, len(data), piece)]
        assert range_digests(iter(chunks), ranges) == want
