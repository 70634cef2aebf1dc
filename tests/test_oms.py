"""OpenSSF model signing interop: the real ``model_signing verify key`` accepts what ``registry export-oms`` writes,
and refuses it when one byte of the tree changes; the bundle's digest can be attested on chain."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests._tree_fixtures import onnx_with_external_data
from tests.test_content_cli import run

pytest.importorskip("model_signing")


def model_signing_verify(sig: Path, pub: Path, model: Path) -> subprocess.CompletedProcess[str]:
    cli = Path(sys.executable).parent / "model_signing"
    return subprocess.run([str(cli), "verify", "key", "--signature", str(sig), "--public_key", str(pub), str(model)],
                          capture_output=True, text=True, timeout=300)


def test_export_oms_verifies_with_model_signing_and_is_attestable(deployed, tmp_path, monkeypatch, capsys):
    from registry.publish import publish_model

    folder = tmp_path / "model"
    onnx_with_external_data(folder, n=50_000, extra={"tokenizer/vocab.txt": b"a\nb\n", "config.json": b"{}"})
    pub = publish_model(folder, "acme/oms", "1.0.0", signer=deployed.publisher, client=deployed.client)
    monkeypatch.setenv("REGISTRY_KEYSTORE_PASSWORD", "correct horse")
    key = tmp_path / "keys" / "oms.pem"
    code, out, err = run(monkeypatch, capsys, "key", "new", "--curve", "p256", "-o", str(key), "--json")
    assert code == 0, err
    assert key.exists() and key.with_suffix(".pub").exists()
    assert oct(key.stat().st_mode & 0o777) == "0o600"
    assert b"ENCRYPTED" in key.read_bytes()

    sig = tmp_path / "model.sig"
    code, out, err = run(monkeypatch, capsys, "export-oms", pub.record.ref, "-o", str(sig), "--key", str(key),
                         "--file", str(folder), "--json")
    assert code == 0, err
    doc = json.loads(out)
    assert doc["files"] == 4 and doc["sha256"] == hashlib.sha256(sig.read_bytes()).hexdigest()

    ok = model_signing_verify(sig, key.with_suffix(".pub"), folder)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "succeeded" in (ok.stdout + ok.stderr).lower()

    # the same bundle on a pulled copy, and a refusal when one byte changes
    copy = tmp_path / "copy"
    shutil.copytree(folder, copy)
    assert model_signing_verify(sig, key.with_suffix(".pub"), copy).returncode == 0
    data = bytearray((copy / "model.onnx.data").read_bytes())
    data[100] ^= 1
    (copy / "model.onnx.data").write_bytes(bytes(data))
    assert model_signing_verify(sig, key.with_suffix(".pub"), copy).returncode != 0

    # the bundle's digest goes on chain as an attestation report
    code, out, err = run(monkeypatch, capsys, "attest", pub.record.ref, "--pass", "--report", str(sig), "--json")
    assert code == 0, err
    attestations = deployed.client.attestations(pub.record.id)
    assert [a.report_sha256 for a in attestations if a.passed] == [hashlib.sha256(sig.read_bytes()).digest()]
    assert json.loads(out)["report_sha256"] == hashlib.sha256(sig.read_bytes()).hexdigest()


def test_export_oms_refuses_a_secp256k1_key_and_an_unverified_release(deployed, tmp_path, monkeypatch, capsys):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    from registry.publish import publish_model

    folder = tmp_path / "model"
    onnx_with_external_data(folder)
    pub = publish_model(folder, "acme/oms", "1.0.0", signer=deployed.publisher, client=deployed.client)
    k1 = tmp_path / "k1.pem"
    k1.write_bytes(ec.generate_private_key(ec.SECP256K1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    code, _, err = run(monkeypatch, capsys, "export-oms", pub.record.ref, "-o", str(tmp_path / "x.sig"),
                       "--key", str(k1), "--file", str(folder))
    assert code == 4 and "P-256" in err
    monkeypatch.delenv("REGISTRY_KEYSTORE_PASSWORD", raising=False)
    key = tmp_path / "p256.pem"
    from registry.oms import new_p256_key

    new_p256_key(key, None)
    (folder / "config.json").write_text("{}")  # not part of the release: verification fails, nothing is signed
    code, _, _ = run(monkeypatch, capsys, "export-oms", pub.record.ref, "-o", str(tmp_path / "y.sig"),
                     "--key", str(key), "--file", str(folder))
    assert code == 10
    assert not (tmp_path / "y.sig").exists()
    assert not os.path.exists(tmp_path / "x.sig")
