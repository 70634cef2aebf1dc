"""`registry oracle ...` end to end in subprocesses, against anvil and the real pipeline."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests._oracle_fixtures import NAME, onnx_models, publish, series, write_series  # noqa: F401


def cli(*args: str, env: dict[str, str] | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    code = "import sys; from registry.cli import main; sys.argv[0] = 'registry'; main()"
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})})


def test_help_lists_commands_without_heavy_imports() -> None:
    result = cli("oracle", "--help")
    assert result.returncode == 0 and "run" in result.stdout and "feed" in result.stdout
    probe = subprocess.run(
        [sys.executable, "-c", "import sys; from registry.cli import app; "
         "print(any(m in sys.modules for m in ('torch', 'web3', 'onnxruntime')))"],
        capture_output=True, text=True, timeout=60)
    assert probe.stdout.strip() == "False"


def test_deploy_run_one_round_and_status(deployed: Any, onnx_models: dict[int, Path], tmp_path: Path) -> None:
    v1 = publish(deployed, onnx_models[1], "1.0.0")
    node = deployed.accounts[1]
    deployed_feed = cli("oracle", "feed", "deploy", "--model", NAME, "--node", node.address, "--approve",
                        f"{NAME}@latest", "--description", "test feed", "--json")
    assert deployed_feed.returncode == 0, deployed_feed.stderr
    info = json.loads(deployed_feed.stdout)
    assert info["approved_release"] == "0x" + v1.id.hex() and info["nodes"] == [node.address]
    feed = info["address"]

    inputs = write_series(tmp_path / "inputs.json", series())
    env = {"ORACLE_NODE_KEY": "0x" + bytes(node.key).hex()}
    ran = cli("oracle", "run", "--model", NAME, "--feed", feed, "--input", str(inputs), "--interval", "0.2",
              "--port", "0", "--rounds", "1", "--key-env", "ORACLE_NODE_KEY", "--state-dir", str(tmp_path / "st"),
              "--json", env=env)
    assert ran.returncode == 0, ran.stderr
    lines = [json.loads(line) for line in ran.stdout.splitlines() if line.strip()]
    kinds = [line["event"] for line in lines]
    assert "swapped" in kinds and "submitted" in kinds and kinds[-1] == "stopped"
    assert lines[-1]["health"]["active"]["release_id"] == "0x" + v1.id.hex()
    assert _key_not_printed(ran, env["ORACLE_NODE_KEY"])

    status = cli("oracle", "feed", "status", feed, "--json")
    assert status.returncode == 0, status.stderr
    data = json.loads(status.stdout)
    assert data["latest"]["round_id"] == 1
    assert data["latest"]["release_id"] == "0x" + v1.id.hex()
    assert data["latest_model_ref"] == f"{NAME}@1.0.0"


def _key_not_printed(result: subprocess.CompletedProcess[str], key: str) -> bool:
    return key[2:] not in result.stdout and key[2:] not in result.stderr


def test_bad_arguments_fail_with_one_line(deployed: Any, tmp_path: Path) -> None:
    bad_feed = cli("oracle", "feed", "status", "0x1234")
    assert bad_feed.returncode == 3 and bad_feed.stderr.startswith("error: invalid feed address")
    no_code = cli("oracle", "feed", "status", "0x" + "11" * 20)
    assert no_code.returncode == 6 and "no contract" in no_code.stderr
    missing_key = cli("oracle", "run", "--model", NAME, "--feed", deployed.address, "--input", "x.json",
                      "--key-env", "NOPE_NOT_SET")
    assert missing_key.returncode == 4 and "NOPE_NOT_SET" in missing_key.stderr
    not_enough_nodes = cli("oracle", "feed", "deploy", "--model", NAME, "--quorum", "2")
    assert not_enough_nodes.returncode == 3
