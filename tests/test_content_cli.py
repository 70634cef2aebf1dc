"""``registry cid`` and ``registry ipfs …`` end to end through the real entry point (exit codes, JSON, atomicity)."""

from __future__ import annotations

import json
import os
import sys

import pytest

from registry.content.unixfs import import_bytes

from tests._content_fixtures import FakeGateway, FakePinning, RefusedPort, load_vectors, vector_bytes


def run(monkeypatch, capsys, *args: str) -> tuple[int, str, str]:
    from registry.cli import main

    monkeypatch.setattr(sys, "argv", ["registry", *args])
    code = 0
    try:
        main()
    except SystemExit as exc:
        code = int(exc.code or 0)
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture(autouse=True)
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("REGISTRY_HOME", str(tmp_path / "home"))
    for var in ("REGISTRY_IPFS_API", "REGISTRY_PROFILE", "REGISTRY_CID_PROFILE"):
        monkeypatch.delenv(var, raising=False)
    return tmp_path / "home"


@pytest.mark.parametrize("profile,column", [("kubo-v0", "kubo_v0"), ("kubo-v1", "kubo_v1")])
def test_cid_matches_the_vectors(monkeypatch, capsys, tmp_path, profile, column):
    for vector in [v for v in load_vectors() if v.size < 2_000_000]:
        path = tmp_path / vector.file
        path.write_bytes(vector_bytes(vector))
        code, out, _ = run(monkeypatch, capsys, "cid", str(path), "--profile", profile, "--json")
        assert code == 0
        doc = json.loads(out)
        assert doc["cid"] == getattr(vector, column)
        assert doc["size"] == vector.size


def test_cid_human_output(monkeypatch, capsys, tmp_path):
    path = tmp_path / "hello.txt"
    path.write_bytes(b"hello world\n")
    code, out, _ = run(monkeypatch, capsys, "cid", str(path), "--profile", "kubo-v0")
    assert code == 0
    assert "QmT78zSuBmuS4z925WZfrqQ1qHaJ56DQaTfyMUF7F8ff5o" in out
    assert "a948904f2f0f479b8f8197694b30184b0d2ed1c1cd2a1ec0fb85d299a192a447" in out and "size    12" in out


@pytest.mark.parametrize("args,code,message", [
    (["cid", "{missing}"], 3, "cannot read"),
    (["cid", "{file}", "--profile", "kubo-v7"], 3, "unknown CID profile"),
    (["ipfs", "get", "Qmnotacid", "-o", "{out}"], 3, "not a CID"),
    (["ipfs", "put", "{file}", "--store", "carrier-pigeon"], 3, "unknown content store"),
])
def test_bad_input_is_one_line_and_exit_3(monkeypatch, capsys, tmp_path, args, code, message):
    f = tmp_path / "f.bin"
    f.write_bytes(b"x")
    args = [a.format(missing=tmp_path / "nope", file=f, out=tmp_path / "o") for a in args]
    got, out, err = run(monkeypatch, capsys, *args)
    assert got == code
    assert err.startswith("error: ") and message in err and err.count("\n") == 1


def test_put_get_pin_export_import_local(monkeypatch, capsys, tmp_path, home):
    src = tmp_path / "model.onnx"
    data = os.urandom(600_000)
    src.write_bytes(data)
    code, out, _ = run(monkeypatch, capsys, "ipfs", "put", str(src), "--json", "--cid-profile", "kubo-v0")
    assert code == 0
    put = json.loads(out)
    assert put["cid"] == str(import_bytes(data, "kubo-v0").cid) and put["pinned"]
    dest = tmp_path / "dl.onnx"
    code, out, _ = run(monkeypatch, capsys, "ipfs", "get", put["cid"], "-o", str(dest), "--json")
    assert code == 0 and dest.read_bytes() == data and json.loads(out)["sha256"] == put["sha256"]
    car = tmp_path / "m.car"
    code, out, _ = run(monkeypatch, capsys, "ipfs", "export-car", put["cid"], "-o", str(car), "--json")
    assert code == 0 and car.stat().st_size > len(data)
    monkeypatch.setenv("REGISTRY_HOME", str(tmp_path / "other-home"))
    code, out, _ = run(monkeypatch, capsys, "ipfs", "import-car", str(car), "--json")
    assert code == 0 and json.loads(out)["roots"] == [put["cid"]]
    code, _, _ = run(monkeypatch, capsys, "ipfs", "pin", put["cid"])
    assert code == 0


def test_failed_get_leaves_nothing_at_the_path(monkeypatch, capsys, tmp_path, home):
    src = tmp_path / "m.bin"
    src.write_bytes(os.urandom(262144 * 2 + 1))
    code, out, _ = run(monkeypatch, capsys, "ipfs", "put", str(src), "--json")
    cid = json.loads(out)["cid"]
    for leaf in (home / "blocks").rglob("bafk*"):
        leaf.write_bytes(b"tampered")
        break
    outdir = tmp_path / "out"
    outdir.mkdir()
    code, _, err = run(monkeypatch, capsys, "ipfs", "get", cid, "-o", str(outdir / "m.bin"))
    assert code == 10 and "do not match" in err
    assert list(outdir.iterdir()) == []
    code, _, err = run(monkeypatch, capsys, "ipfs", "get", cid, "-o", str(outdir / "m.bin"), "--max-size", "100")
    assert code == 10 and "more than the expected 100" in err
    assert list(outdir.iterdir()) == []


def test_get_from_a_lying_gateway(monkeypatch, capsys, tmp_path):
    gw = FakeGateway(tmp_path / "gw")
    try:
        r = gw.store.put_bytes(os.urandom(300_000), "kubo-v1")
        dest = tmp_path / "x.bin"
        code, _, _ = run(monkeypatch, capsys, "ipfs", "get", str(r.cid), "-o", str(dest), "--store", f"gateway:{gw.url}")
        assert code == 0 and dest.stat().st_size == 300_000
        gw.mode = "wrong-bytes"
        dest2 = tmp_path / "y.bin"
        code, _, err = run(monkeypatch, capsys, "ipfs", "get", str(r.cid), "-o", str(dest2), "--store", f"gateway:{gw.url}")
        assert code == 10 and not dest2.exists()
    finally:
        gw.close()


def test_node_down_is_exit_15(monkeypatch, capsys, tmp_path):
    f = tmp_path / "f.bin"
    f.write_bytes(b"abc")
    (tmp_path / "home").mkdir(parents=True, exist_ok=True)
    with RefusedPort() as dead:
        (tmp_path / "home" / "profiles.toml").write_text(
            f'[profiles.dead]\nstore = "kubo:{dead.url}"\ntimeout_s = 0.5\nretries = 1\n')
        code, _, err = run(monkeypatch, capsys, "ipfs", "put", str(f), "--profile", "dead")
    assert code == 15 and "after 2 attempts" in err


def test_pin_at_a_pinning_service(monkeypatch, capsys):
    svc = FakePinning()
    try:
        cid = str(import_bytes(b"m").cid)
        monkeypatch.setenv("REGISTRY_PINNING_TOKEN", FakePinning.TOKEN)
        code, out, _ = run(monkeypatch, capsys, "ipfs", "pin", cid, "--service", svc.url, "--json")
        assert code == 0 and json.loads(out)["status"] == "pinned"
        monkeypatch.setenv("REGISTRY_PINNING_TOKEN", "nope")
        code, _, err = run(monkeypatch, capsys, "ipfs", "pin", cid, "--service", svc.url)
        assert code == 4 and "nope" not in err
    finally:
        svc.close()
