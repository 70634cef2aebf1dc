"""The oracle part of `make demo`: a verified forecaster feeding a Chainlink-compatible contract.

train a weekly CO2 forecaster on statsmodels' bundled Mauna Loa series -> compress it with the
pipeline (prune + int8) -> publish it with its provenance -> deploy a PredictionFeed on the local
anvil that approves that release and authorises one node -> run the oracle node for one round (it
verifies the release before loading a byte, predicts the last week of the series from the 52 before
it, and submits) -> read latestRoundData back through the plain AggregatorV3Interface ABI, plus the
model that produced the round.

State lives in ``.registry-demo/`` (like scripts/demo.py); the trained model is cached there, so a
second run skips training (``--rebuild`` forces it). Every run publishes a fresh version.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / ".registry-demo"
WORK = DEMO / "oracle"
NAME = "demo/co2-forecaster"
# anvil's well-known dev account #1 (public; the local chain funds it). Used as the node's key here
# only because this demo runs on the local anvil; a real node uses its own keystore or --key-env.
DEV_KEY_1 = "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d"
AGGREGATOR_V3_ABI = [
    {"type": "function", "name": "decimals", "stateMutability": "view", "inputs": [],
     "outputs": [{"name": "", "type": "uint8"}]},
    {"type": "function", "name": "description", "stateMutability": "view", "inputs": [],
     "outputs": [{"name": "", "type": "string"}]},
    {"type": "function", "name": "latestRoundData", "stateMutability": "view", "inputs": [],
     "outputs": [{"name": "roundId", "type": "uint80"}, {"name": "answer", "type": "int256"},
                 {"name": "startedAt", "type": "uint256"}, {"name": "updatedAt", "type": "uint256"},
                 {"name": "answeredInRound", "type": "uint80"}]},
]


def header(step: str, text: str) -> None:
    print(f"\n\033[1m== {step}. {text}\033[0m", flush=True)


def demo_env() -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("REGISTRY_HOME", str(DEMO / "home"))
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def cli(*args: object, env: dict[str, str], capture_json: bool = False) -> str:
    print("$ registry " + " ".join(str(a) for a in args), flush=True)
    cmd = [sys.executable, "-c", "from registry.cli import main; main()", *map(str, args)]
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT)
    if not capture_json:
        sys.stdout.write(out.stdout)
    sys.stdout.write(out.stderr)
    if out.returncode != 0:
        print(f"\033[31mdemo: command failed with exit {out.returncode}\033[0m")
        sys.stdout.write(out.stdout)
        sys.exit(1)
    return out.stdout


def build(rebuild: bool) -> dict[str, object]:
    summary_path = WORK / "forecaster.json"
    if summary_path.exists() and not rebuild:
        summary = json.loads(summary_path.read_text())
        if Path(str(summary["onnx_path"])).exists():
            print(f"(reusing the forecaster trained earlier: {summary_path}; --rebuild to retrain)")
            return summary
    from registry.examples.forecast_release import build_release

    started = time.monotonic()
    built = build_release(WORK)
    print(f"trained + compressed in {time.monotonic() - started:.0f} s")
    return built.to_json()


def write_input(path: Path) -> tuple[float, str]:
    """The 52 weeks before the series' last week; returns the last week's actual value and date."""
    import statsmodels.api as sm

    frame = sm.datasets.co2.load_pandas().data["co2"].interpolate().bfill()
    history = frame.iloc[-53:-1]
    lines = ["date,co2"] + [f"{idx.date()},{value:.2f}" for idx, value in history.items()]
    path.write_text("\n".join(lines) + "\n")
    return float(frame.iloc[-1]), str(frame.index[-1].date())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rebuild", action="store_true", help="retrain the forecaster even if cached")
    args = parser.parse_args()
    env = demo_env()
    os.environ.update({k: v for k, v in env.items() if k == "REGISTRY_HOME"})
    WORK.mkdir(parents=True, exist_ok=True)

    header("O1", "Train a weekly CO2 forecaster (statsmodels' bundled Mauna Loa series) and compress it")
    summary = build(args.rebuild)
    print(f"  held-out MAE {summary['mae_ppm']} ppm after compression (PyTorch {summary['torch_mae_ppm']}, "
          f"naive 'same as last week' {summary['naive_mae_ppm']}); {summary['base_size']} -> {summary['size']} bytes")

    header("O2", "Publish it with the pipeline's provenance")
    version = f"1.0.{int(time.time())}"
    published = json.loads(cli("publish", summary["onnx_path"], "--name", NAME, "--version", version,
                               "--provenance", summary["provenance_path"], "--json", env=env, capture_json=True))
    print(f"  {published['ref']}  id {published['release_id']}  sha256 {published['artifact']['sha256']}")

    header("O3", "Deploy a PredictionFeed that approves this release and authorises one node")
    from eth_account import Account

    node = Account.from_key(DEV_KEY_1)
    feed = json.loads(cli("oracle", "feed", "deploy", "--model", NAME, "--node", node.address, "--approve",
                          f"{NAME}@{version}", "--description", "Mauna Loa CO2 (ppm), next week", "--json",
                          env=env, capture_json=True))
    print(f"  feed {feed['address']}  approves {feed['approved_release']}  node {node.address}")

    header("O4", "Run the oracle node for one round (verify -> load -> predict -> submit)")
    actual, date = write_input(WORK / "co2-latest.csv")
    node_env = {**env, "ORACLE_NODE_KEY": DEV_KEY_1}
    cli("oracle", "run", "--model", NAME, "--feed", feed["address"], "--input", WORK / "co2-latest.csv",
        "--interval", "1", "--poll", "0.5", "--port", "0", "--rounds", "1", "--key-env", "ORACLE_NODE_KEY",
        "--state-dir", WORK / f"node-state-{version}", env=node_env)

    header("O5", "Read it back like any Chainlink consumer (AggregatorV3Interface), and the model behind it")
    cli("oracle", "feed", "status", feed["address"], env=env)
    from web3 import Web3

    status = json.loads(cli("oracle", "feed", "status", feed["address"], "--json", env=env, capture_json=True))
    rpc = _rpc_url(env)
    aggregator = Web3(Web3.HTTPProvider(rpc)).eth.contract(address=feed["address"], abi=AGGREGATOR_V3_ABI)
    round_id, answer, _started, updated, answered = aggregator.functions.latestRoundData().call()
    decimals = aggregator.functions.decimals().call()
    value = answer / 10**decimals
    print(f"  latestRoundData: roundId {round_id}, answer {answer} ({value:.4f} ppm at {decimals} decimals), "
          f"updatedAt {updated}, answeredInRound {answered}")
    print(f"  roundModel: {status['latest_model_ref']}  sha256 {status['latest']['artifact_sha256']}")
    print(f"  forecast for the week of {date}: {value:.2f} ppm; measured {actual:.2f} ppm "
          f"(error {value - actual:+.2f} ppm)")
    if status["latest"]["release_id"] != published["release_id"]:
        print("\033[31mdemo: the round does not name the published release\033[0m")
        return 1
    print("\n\033[32moracle demo complete: one round, bound to the verified release that produced it\033[0m")
    return 0


def _rpc_url(env: dict[str, str]) -> str:
    from registry.chain.devnet import status
    from registry.config import load_settings

    if env.get("REGISTRY_RPC_URL"):
        return env["REGISTRY_RPC_URL"]
    info = status(load_settings(env=env))
    if not info.rpc_url:
        raise SystemExit("demo: local chain is not running")
    return info.rpc_url


if __name__ == "__main__":
    sys.exit(main())
