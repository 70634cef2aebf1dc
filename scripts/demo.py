"""`make demo`: the whole story in a few minutes on a fresh machine, driven through the real CLI.

chain up -> train a PyTorch MLP on scikit-learn's bundled digits -> `registry compress` it
(structured pruning, static INT8, FGSM robustness, a report with plots and a provenance record)
-> publish the compressed ONNX with that provenance, and pin the report and plots it lists
-> verify (all green) -> flip one byte in a copy and verify (integrity, exit 10) -> verify against
a dead RPC (exit 15: never silently offline), then --offline (manifest + trusted publisher) -> pull
to a device dir -> revoke -> verify (revoked, exit 12).

State lives in ``.registry-demo/`` in the repo (gitignored). Every run publishes a fresh version
(1.0.<unix time>), so re-running just adds a release; nothing needs cleaning up.
"""

from __future__ import annotations

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


def compress(env: dict[str, str]) -> tuple[Path, Path, dict]:
    """Trains the example MLP, then compresses it with `registry compress`; returns (model, provenance, summary)."""
    data = WORK / "digits"
    cli("digits-example", data, "--models", "mlp", "--epochs", "30", env=env, show=False)
    out = WORK / "compressed"
    summary = json.loads(cli(
        "compress", "--model", "registry.compress.zoo:digits_mlp", "--weights", data / "mlp.pt",
        "--finetune-data", data / "finetune.npz", "--calib-data", data / "calibration.npz",
        "--eval-data", data / "evaluation.npz", "--structured", "0.5", "--epochs", "6", "--quantize", "static",
        "--max-drop", "2.0", "--attack", "fgsm", "--epsilon", "0.1", "--latency-runs", "30",
        "--out", out, "--force", "--json", env=env, show=False).stdout)
    return out / "model.onnx", out / "provenance.json", summary


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

    header(2, "train a PyTorch MLP on scikit-learn's digits, then `registry compress` it")
    model, provenance, summary = compress(env)
    base, final = summary["baseline"], summary["metrics"]
    print(f"FP32 ONNX {base['size_bytes']} bytes, accuracy {base['accuracy'] * 100:.2f}%  ->  {summary['variant']} "
          f"{final['size_bytes']} bytes ({base['size_bytes'] / final['size_bytes']:.1f}x smaller), accuracy "
          f"{final['accuracy'] * 100:.2f}% (target {'met' if summary['target']['met'] else 'missed'})")
    rob = final.get("robustness")
    if rob:
        print(f"FGSM eps {rob['epsilon']:g}: accuracy under attack {rob['accuracy_under_attack'] * 100:.1f}%, "
              f"attack success {rob['attack_success_rate'] * 100:.1f}%")
    print(f"report {(model.parent / 'report.md').relative_to(ROOT)}")

    header(3, f"publish {ref} (the compressed model + its provenance) and pin the report it lists")
    published = json.loads(cli("publish", model, "--name", NAME, "--version", version, "--provenance", provenance,
                               "--json", env=env, show=False).stdout)
    for key in ("ref", "release_id", "publisher", "transaction", "manifest"):
        print(f"  {key:<11} {published[key]}")
    manifest = Path(published["manifest"])
    publisher = published["publisher"]
    listed = json.loads(provenance.read_text())["predicate"]["report"]
    for entry in listed:
        pinned = json.loads(cli("ipfs", "put", model.parent / entry["path"], "--json", env=env, show=False).stdout)
        if pinned["sha256"] != entry["sha256"]:
            print(f"\033[31mdemo: {entry['path']} does not match its digest in the provenance\033[0m")
            sys.exit(1)
        print(f"  pinned {entry['path']:<22} {pinned['cid']}  (sha256 bound by the signed provenance)")

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
