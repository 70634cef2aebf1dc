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
