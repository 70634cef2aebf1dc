"""`make demo`: the whole story in a minute on a fresh machine, driven through the real CLI.

chain up -> train a PyTorch MLP on scikit-learn's bundled digits -> export ONNX -> publish with a
provenance record -> verify (all green) -> flip one byte in a copy and verify (integrity, exit 10)
-> verify against a dead RPC (exit 15: never silently offline), then --offline (manifest + trusted
publisher) -> pull to a device dir -> revoke -> verify (revoked, exit 12).

State lives in ``.registry-demo/`` in the repo (gitignored). Every run publishes a fresh version
(1.0.<unix time>), so re-running just adds a release; nothing needs cleaning up.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / ".registry-demo"
WORK = DEMO / "work"
NAME = "demo/digits-mlp"


def header(step: int, text: str) -> None:
    print(f"\n\033[1m== {step}. {text}\033[0m", flush=True)


def cli(*args: object, env: dict[str, str], expect: int = 0, show: bool = True) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-c", "from registry.cli import main; main()", *map(str, args)]
    print("$ registry " + " ".join(str(a) for a in args), flush=True)
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT)
    if show:
        sys.stdout.write(out.stdout)
        sys.stdout.write(out.stderr)
    if out.returncode != expect:
        print(f"\033[31mdemo: expected exit {expect}, got {out.returncode}\033[0m")
        sys.stdout.write(out.stdout + out.stderr)
        sys.exit(1)
    print(f"(exit {out.returncode}, as expected)", flush=True)
    return out


def demo_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("REGISTRY_")}
    env["REGISTRY_HOME"] = str(DEMO / "home")
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env.setdefault("PYTHONWARNINGS", "default")
    return env


def train_and_export(model_path: Path, provenance_path: Path) -> float:
    """A 64-64-10 MLP on the 8x8 digits, a few seconds of CPU; returns held-out accuracy."""
    import numpy as np
    import torch
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split
    from torch import nn

    from registry.provenance import statement, write_provenance

    torch.manual_seed(0)
    digits = load_digits()
    x = (digits.data / 16.0).astype(np.float32)
    y = digits.target.astype(np.int64)
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.25, random_state=0, stratify=y)
    model = nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10))
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    xt, yt = torch.from_numpy(x_train), torch.from_numpy(y_train)
    for _epoch in range(60):
        for i in range(0, len(xt), 128):
            opt.zero_grad()
            loss = nn.functional.cross_entropy(model(xt[i:i + 128]), yt[i:i + 128])
            loss.backward()
            opt.step()
    model.eval()
    with torch.no_grad():
        acc = float((model(torch.from_numpy(x_test)).argmax(1).numpy() == y_test).mean())
    try:
        from registry.compress.export import export_onnx

        data = export_onnx(model, x_test)
    except ImportError:  # the compress package is optional for the demo
        import io

        buf = io.BytesIO()
        torch.onnx.export(model, (torch.from_numpy(x_test[:1]),), buf, dynamo=False, opset_version=17,
                          input_names=["input"], output_names=["output"],
                          dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}})
        data = buf.getvalue()
    model_path.write_bytes(data)
    import onnx
    import sklearn

    digest = hashlib.sha256(data).hexdigest()
    doc = statement(digest, model_path.name, {
        "base_model": {"sha256": digest, "format": "onnx"},
        "recipe": {"kind": "train-only", "epochs": 60, "optimizer": "adam", "lr": 0.01},
        "steps": [{"name": "train", "params": {"epochs": 60, "hidden": 64},
                   "metrics_before": {}, "metrics_after": {"accuracy": acc}}],
        "data": {"evaluation_sha256": hashlib.sha256(x_test.tobytes() + y_test.tobytes()).hexdigest()},
        "tools": {"python": sys.version.split()[0], "torch": torch.__version__, "onnx": onnx.__version__,
                  "sklearn": sklearn.__version__},
        "seeds": {"torch": 0, "split": 0},
        "metrics": {"accuracy": acc},
    })
    write_provenance(doc, provenance_path)
    return acc


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> None:
    started = time.time()
    WORK.mkdir(parents=True, exist_ok=True)
    env = demo_env()
    version = f"1.0.{int(time.time())}"
    ref = f"{NAME}@{version}"

    header(1, "chain up (embedded anvil, ModelRegistry deployed once, state in .registry-demo/home)")
    os.environ.update({k: v for k, v in env.items() if k.startswith("REGISTRY_")})
    from registry.chain.devnet import ensure_running
    from registry.config import load_settings

    info = ensure_running(load_settings())
    print(f"rpc {info.rpc_url}  chain id {info.chain_id}  contract {info.contract}")

    header(2, "train a PyTorch MLP on scikit-learn's digits and export ONNX")
    model = WORK / "digits-mlp.onnx"
    provenance = WORK / "digits-mlp.provenance.json"
    acc = train_and_export(model, provenance)
    print(f"held-out accuracy {acc:.4f}; {model.relative_to(ROOT)} ({model.stat().st_size} bytes)")

    header(3, f"publish {ref}")
    published = json.loads(cli("publish", model, "--name", NAME, "--version", version, "--provenance", provenance,
                               "--json", env=env, show=False).stdout)
    for key in ("ref", "release_id", "publisher", "transaction", "manifest"):
        print(f"  {key:<11} {published[key]}")
    manifest = Path(published["manifest"])
    publisher = published["publisher"]

    header(4, "verify (all nine checks)")
    cli("verify", ref, "--file", model, env=env)

    header(5, "flip one byte in a copy and verify again (integrity -> exit 10)")
    tampered = WORK / "digits-mlp.tampered.onnx"
    data = bytearray(model.read_bytes())
    data[len(data) // 3] ^= 0x01
    tampered.write_bytes(data)
    cli("verify", ref, "--file", tampered, "--manifest", manifest, env=env, expect=10)

    header(6, "RPC down: never silently offline (exit 15); --offline verifies from manifest + trusted publisher")
    dead = dict(env, REGISTRY_RPC_URL=f"http://127.0.0.1:{closed_port()}", REGISTRY_CHAIN_ID=str(info.chain_id),
                REGISTRY_CONTRACT=info.contract, REGISTRY_CONFIRMATIONS="0")
    cli("verify", ref, "--file", model, "--manifest", manifest, "--trust", publisher, env=dead, expect=15)
    cli("verify", ref, "--file", model, "--manifest", manifest, "--trust", publisher, "--offline", env=dead)

    header(7, "pull to a device directory (verified before anything is written)")
    device = DEMO / "device"
    shutil.rmtree(device, ignore_errors=True)
    cli("pull", ref, "-o", device, env=env)

    header(8, "revoke the release, verify again (revoked -> exit 12)")
    from registry.chain.client import RegistryClient
    from registry.keys import load_signer
    from registry.release import release_id

    import warnings

    settings = load_settings()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        signer = load_signer(settings)
    client = RegistryClient.connect(settings)
    tx = client.revoke(release_id(NAME, version), "demo: found a bad calibration set", signer)
    print(f"revoked in tx {tx.tx_hash}")
    cli("verify", ref, "--file", model, env=env, expect=12)

    print(f"\n\033[1;32mdemo complete in {time.time() - started:.0f} s\033[0m")
    print(f"explore it: REGISTRY_HOME=.registry-demo/home .venv/bin/registry serve, then open "
          f"http://127.0.0.1:8470/models/{NAME}/{version}")


if __name__ == "__main__":
    main()
