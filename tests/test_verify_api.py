"""The Python API as a device uses it: no torch anywhere, ``registry.verify(...)`` callable, typed failure."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from registry.manifest import write_manifest

from tests._verify_fixtures import offline_release


def test_full_verify_and_load_of_a_small_model_never_import_torch(tmp_path):
    rel = offline_release(tmp_path)
    model = tmp_path / "model.onnx"
    model.write_bytes(rel.data)
    manifest = write_manifest(rel.manifest, tmp_path / "m.release.json")
    prov = tmp_path / "prov.json"
    prov.write_bytes(rel.provenance)
    code = f"""
import sys
import registry
import registry.verify
report = registry.verify({rel.ref!r}, file={str(model)!r}, manifest={str(manifest)!r},
                         trust=[{rel.publisher.address!r}], offline=True, provenance={str(prov)!r})
assert report.ok, report.to_json()
session = registry.verify.load_verified({rel.ref!r}, file={str(model)!r}, manifest={str(manifest)!r},
                                        trust=[{rel.publisher.address!r}], offline=True, provenance={str(prov)!r})
assert session is not None
bad = [m for m in ("torch", "web3", "sklearn") if m in sys.modules]
assert not bad, bad
print("ok")
"""
    env = {"REGISTRY_HOME": str(tmp_path / "home"), "PATH": "/usr/bin:/bin"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120,
                         cwd=Path(__file__).resolve().parents[1])
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


def test_report_json_shape(tmp_path):
    rel = offline_release(tmp_path)
    doc = rel.verify().to_json()
    assert doc["ok"] is True and doc["exit_code"] == 0 and doc["mode"] == "offline"
    assert [c["name"] for c in doc["checks"]] == ["resolve", "not_revoked", "publisher_authorised", "signature",
                                                  "sha256", "cid", "provenance", "onnx", "policy"]
    assert all(set(c) >= {"name", "status", "detail", "evidence"} for c in doc["checks"])
    import json

    json.dumps(doc)  # fully serialisable


def test_exit_code_is_the_first_failing_check(tmp_path):
    from eth_account import Account

    rel = offline_release(tmp_path, b"not onnx")
    report = rel.verify(trust=[Account.create().address], provenance=b"{}")
    failing = [c.name for c in report.checks if c.status == "fail"]
    assert failing[0] == "publisher_authorised" and "provenance" in failing and "onnx" in failing
    assert report.exit_code == 11
