"""The device's block cache: verified blocks only, bounded, least recently used out, never trusted."""

from __future__ import annotations

import hashlib
import os
import time

import pytest

from registry.content.blockcache import BlockCache, configured_max, parse_size
from registry.content.cids import make_cid
from registry.errors import InputError


def _block(i: int, size: int = 1000) -> tuple[object, bytes]:
    data = (i.to_bytes(4, "big") * (size // 4 + 1))[:size]
    return make_cid(1, 0x55, hashlib.sha256(data).digest()), data


def test_put_get_and_verification_on_read(tmp_path):
    cache = BlockCache(tmp_path / "c", 1 << 20)
    cid, data = _block(1)
    assert cache.get(cid) is None
    assert cache.put(cid, data)
    assert cache.get(cid) == data
    assert cache.stats.hits == 1 and cache.stats.puts == 1
    assert oct(os.stat(tmp_path / "c").st_mode & 0o777) == "0o700"


def test_a_tampered_block_is_deleted_and_reported(tmp_path):
    cache = BlockCache(tmp_path / "c", 1 << 20)
    cid, data = _block(2)
    cache.put(cid, data)
    path = cache.path(cid)
    path.write_bytes(data[:-1] + b"\x00")
    assert cache.get(cid) is None
    assert not path.exists() and cache.stats.rejected == 1
    # a truncated one, an oversized one, and a link planted under the name: never served
    cache.put(cid, data)
    path.write_bytes(data[:10])
    assert cache.get(cid) is None and not path.exists()
    target = tmp_path / "elsewhere"
    target.write_bytes(data)
    path.symlink_to(target)
    assert cache.get(cid) is None and not os.path.lexists(path) and target.read_bytes() == data
    assert cache.stats.rejected == 3


def test_bound_and_least_recently_used_eviction(tmp_path):
    cache = BlockCache(tmp_path / "c", 10_000)
    blocks = [_block(i, 3000) for i in range(3)]
    for cid, data in blocks:
        cache.put(cid, data)
        time.sleep(0.01)
    assert cache.total_bytes() == 9000
    time.sleep(0.01)
    assert cache.get(blocks[0][0]) == blocks[0][1]  # now the most recently used
    cid, data = _block(9, 3000)
    cache.put(cid, data)  # 12000 > 10000: evict down to 9000, oldest first
    assert cache.total_bytes() <= 10_000
    assert cache.get(blocks[1][0]) is None  # the least recently used went first
    assert cache.get(blocks[0][0]) is not None and cache.get(cid) is not None
    assert cache.stats.evicted >= 1
    # a fresh process counts what is on disk
    assert BlockCache(tmp_path / "c", 10_000).total_bytes() == cache.total_bytes()


def test_a_block_larger_than_the_bound_is_not_kept_and_zero_disables(tmp_path):
    cid, data = _block(3, 5000)
    assert not BlockCache(tmp_path / "a", 4000).put(cid, data)
    off = BlockCache(tmp_path / "b", 0)
    assert not off.enabled and not off.put(cid, data) and off.get(cid) is None
    assert not (tmp_path / "b").exists()


def test_an_unwritable_cache_never_fails_the_caller(tmp_path):
    folder = tmp_path / "c"
    folder.write_bytes(b"not a directory")  # every write fails
    cache = BlockCache(folder, 1 << 20)
    cid, data = _block(4)
    assert cache.put(cid, data) is False
    assert cache.stats.write_errors == 1 and cache.get(cid) is None


def test_sizes_and_the_environment_bound(monkeypatch):
    assert parse_size("1048576") == 1 << 20
    assert parse_size("512M") == 512 << 20 and parse_size("2GiB") == 2 << 30 and parse_size("3k") == 3072
    for bad in ("", "-1", "1.5G", "lots", "1" * 30):
        with pytest.raises(InputError):
            parse_size(bad)
    assert configured_max({"REGISTRY_BLOCK_CACHE_MAX": "64M"}) == 64 << 20
    assert configured_max({}) == 2 << 30


def test_a_shard_replaced_by_a_link_is_never_followed(tmp_path):
    cache = BlockCache(tmp_path / "c", 1 << 20)
    cid, data = _block(5)
    cache.put(cid, data)
    shard = cache.path(cid).parent
    outside = tmp_path / "outside"
    outside.mkdir()
    victim = outside / cache.path(cid).name
    victim.write_bytes(b"not the block")  # would be deleted as "altered" if the link were followed
    import shutil

    shutil.rmtree(shard)
    shard.symlink_to(outside)
    assert cache.get(cid) is None
    assert victim.read_bytes() == b"not the block" and not shard.is_symlink()
    assert cache.put(cid, data) and cache.get(cid) == data
    assert victim.read_bytes() == b"not the block"


def test_the_cache_directory_can_be_moved(tmp_path, monkeypatch):
    from registry.config import load_settings
    from registry.content.blockcache import cache_dir

    monkeypatch.setenv("REGISTRY_HOME", str(tmp_path / "home"))
    assert cache_dir(load_settings()) == tmp_path / "home" / "cache" / "blocks"
    monkeypatch.setenv("REGISTRY_BLOCK_CACHE_DIR", str(tmp_path / "elsewhere"))
    assert cache_dir(load_settings()) == tmp_path / "elsewhere"
