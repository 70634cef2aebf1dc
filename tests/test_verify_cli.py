"""The CLI as a device runs it: subprocesses, exit codes per failure class, offline mode, pull."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

from tests._verify_fixtures import published, tiny_onnx  # noqa: F401

REGISTRY = [sys.executable, "-m", "registry.cli"]


def _run(*args, env=None):
    cmd = [sys.executable, "-c", "from registry.cli import main; main()", *map(str, args)]
    return subprocess.run(cmd, capture_output=True, text=True, env=env or os.environ.copy(), timeout=120)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_cli_publish_verify_tamper_revoke(deployed, tmp_path):
    model = tmp_path / "m.onnx"
    model.write_bytes(tiny_onnx(5))
    out = _run("publish", model, "--name", "acme/cli", "--version", "2.0.0", "--json")
    assert out.returncode == 0, out.stderr
    info = json.loads(out.stdout)
    manifest = Path(info["manifest"])
    assert manifest.name == "acme+cli@2.0.0.release.json" and manifest.is_file()

    ok = _run("verify", "acme/cli@2.0.0", "--file", model, "--json")
    assert ok.returncode == 0, ok.stdout + ok.stderr
    report = json.loads(ok.stdout)
    assert [c["status"] for c in report["checks"]][:8] == ["pass"] * 8

    bad = tmp_path / "bad.onnx"
    data = bytearray(model.read_bytes())
    data[10] ^= 0x80
    bad.write_bytes(data)
    tampered = _run("verify", "acme/cli@2.0.0", "--file", bad, "--manifest", manifest)
    assert tampered.returncode == 10
    assert "sha256" in tampered.stderr and "REJECTED" in tampered.stderr

    # The RPC is a closed port: a manifest beside the file never turns that into a silent offline pass.
    env = os.environ.copy()
    env["REGISTRY_RPC_URL"] = f"http://127.0.0.1:{_closed_port()}"
    down = _run("verify", "acme/cli@2.0.0", "--file", model, "--manifest", manifest, "--trust",
                deployed.publisher.address, "--json", env=env)
    assert down.returncode == 15, down.stdout + down.stderr
    rep = json.loads(down.stdout)
    assert rep["checks"][0]["name"] == "resolve" and rep["checks"][0]["status"] == "fail"
    assert all(c["status"] == "skip" for c in rep["checks"][1:]) and not rep["ok"]
    # Only an explicit --offline verifies from the manifest and a trusted publisher.
    off = _run("verify", "acme/cli@2.0.0", "--file", model, "--manifest", manifest, "--trust",
               deployed.publisher.address, "--offline", "--json", env=env)
    assert off.returncode == 0, off.stdout + off.stderr
    rep = json.loads(off.stdout)
    assert rep["mode"] == "offline"
    assert {c["name"]: c["status"] for c in rep["checks"]}["not_revoked"] == "skip"
    untrusted = _run("verify", "acme/cli@2.0.0", "--file", model, "--manifest", manifest, "--offline", "--json",
                     env=env)
    assert untrusted.returncode == 11
    # offline = true in a policy file is the other explicit way.
    policy = tmp_path / "offline.toml"
    policy.write_text(f'offline = true\ntrusted_publishers = ["{deployed.publisher.address}"]\n')
    by_policy = _run("verify", "acme/cli@2.0.0", "--file", model, "--manifest", manifest, "--policy", policy,
                     "--json", env=env)
    assert by_policy.returncode == 0, by_policy.stdout + by_policy.stderr
    assert json.loads(by_policy.stdout)["mode"] == "offline"

    deployed.client.revoke(bytes.fromhex(info["release_id"][2:]), "bad calibration data", deployed.publisher)
    revoked = _run("verify", "acme/cli@2.0.0", "--file", model, "--json")
    assert revoked.returncode == 12
    check = {c["name"]: c for c in json.loads(revoked.stdout)["checks"]}["not_revoked"]
    assert check["evidence"]["reason"] == "bad calibration data"


def test_cli_pull_installs_only_verified(published, tmp_path):
    dest = tmp_path / "device"
    ok = _run("pull", published.ref, "-o", dest, "--json")
    assert ok.returncode == 0, ok.stdout + ok.stderr
    files = sorted(p.name for p in dest.iterdir())
    assert files == ["acme+tiny@1.0.0.onnx", "acme+tiny@1.0.0.provenance.json", "acme+tiny@1.0.0.release.json"]
    assert (dest / "acme+tiny@1.0.0.onnx").read_bytes() == published.model.read_bytes()
    again = _run("verify", published.ref, "--file", dest / "acme+tiny@1.0.0.onnx", "--offline", "--trust",
                 published.deployed.publisher.address, "--json")
    assert again.returncode == 0, again.stdout


def test_cli_unknown_release_and_bad_ref(deployed):
    missing = _run("verify", "acme/none@1.0.0", "--json")
    assert missing.returncode == 6
    bad = _run("verify", "not a ref", "--json")
    assert bad.returncode == 3
    assert "Traceback" not in bad.stderr


def test_verify_help_and_import_do_not_import_torch():
    code = ("import sys, time; t=time.perf_counter(); import registry.verify; dt=time.perf_counter()-t; "
            "assert 'torch' not in sys.modules; assert 'web3' not in sys.modules; print(dt)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    helped = subprocess.run([sys.executable, "-c",
                             "import sys\nfrom registry.cli import app\ntry:\n    app(['verify','--help'])\n"
                             "except SystemExit:\n    pass\nassert 'torch' not in sys.modules, 'torch imported'"],
                            capture_output=True, text=True, timeout=60)
    assert helped.returncode == 0, helped.stderr
