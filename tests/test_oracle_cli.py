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
    from tests._oracle_fixtures import funded_node

    v1 = publish(deployed, onnx_models[1], "1.0.0")
    node = funded_node(deployed)
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


class _Background:
    """``registry oracle run`` in a subprocess whose JSON event lines are collected as they come."""

    def __init__(self, *args: str, env: dict[str, str]) -> None:
        import threading

        code = "import sys; from registry.cli import main; sys.argv[0] = 'registry'; main()"
        self.process = subprocess.Popen([sys.executable, "-c", code, *args], stdout=subprocess.PIPE,
                                        stderr=subprocess.PIPE, text=True, env={**os.environ, **env})
        self.events: list[dict[str, Any]] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            if line.strip():
                self.events.append(json.loads(line))

    def kinds(self) -> list[str]:
        return [e["event"] for e in self.events if "event" in e]

    def finish(self, timeout: float) -> tuple[int, str]:
        try:
            code = self.process.wait(timeout)
        finally:
            if self.process.poll() is None:
                self.process.kill()
                self.process.wait()
        self._reader.join(5)
        assert self.process.stderr is not None
        return code, self.process.stderr.read()


def _node_run_args(feed: str, inputs: Path, tmp_path: Path) -> list[str]:
    return ["oracle", "run", "--model", NAME, "--feed", feed, "--input", str(inputs), "--interval", "0.2",
            "--poll", "0.2", "--port", "0", "--rounds", "1", "--key-env", "ORACLE_NODE_KEY", "--state-dir",
            str(tmp_path / "st"), "--json"]


def test_run_waits_out_an_rpc_that_is_down_at_start(deployed: Any, onnx_models: dict[int, Path],
                                                      tmp_path: Path) -> None:
    import time

    from tests._oracle_fixtures import TcpProxy, deploy_feed, wait_for

    from tests._oracle_fixtures import funded_node

    v1 = publish(deployed, onnx_models[1], "1.0.0")
    node = funded_node(deployed)
    feed = deploy_feed(deployed, [node], quorum=1, approve=v1.id)
    inputs = write_series(tmp_path / "inputs.json", series())
    proxy = TcpProxy(deployed.rpc_url)
    proxy.down()
    env = {"ORACLE_NODE_KEY": "0x" + bytes(node.key).hex(), "REGISTRY_RPC_URL": proxy.url}
    try:
        running = _Background(*_node_run_args(feed.address, inputs, tmp_path), env=env)
        try:
            wait_for(lambda: running.kinds().count("rpc-unreachable") >= 2, timeout=20, what="retries")
        finally:
            if running.process.poll() is not None:
                running.finish(1)
        assert running.process.poll() is None  # still waiting, not exited with 15
        first = running.events[0]
        assert first["event"] == "rpc-unreachable" and first["level"] == "warning" and first["retry_in_s"] == 0.5
        time.sleep(0.3)
        proxy.up()
        code, stderr = running.finish(timeout=40)
    finally:
        proxy.down()
    assert code == 0, stderr
    kinds = running.kinds()
    assert "rpc-reachable" in kinds and "swapped" in kinds and "submitted" in kinds and kinds[-1] == "stopped"
    assert kinds.index("rpc-reachable") < kinds.index("swapped")
    latest = feed.latest()
    assert latest is not None and latest.round_id == 1 and latest.release_id == v1.id


def test_run_stopped_while_the_rpc_is_down_exits_15_with_one_line(deployed: Any, tmp_path: Path) -> None:
    import signal

    from tests._oracle_fixtures import TcpProxy, wait_for

    inputs = write_series(tmp_path / "inputs.json", series())
    proxy = TcpProxy(deployed.rpc_url)
    proxy.down()
    from tests._oracle_fixtures import funded_node

    env = {"ORACLE_NODE_KEY": "0x" + bytes(funded_node(deployed).key).hex(), "REGISTRY_RPC_URL": proxy.url}
    running = _Background(*_node_run_args(deployed.address, inputs, tmp_path), env=env)
    try:
        wait_for(lambda: "rpc-unreachable" in running.kinds() or running.process.poll() is not None, timeout=20,
                 what="first retry")
        assert running.process.poll() is None
        running.process.send_signal(signal.SIGTERM)
        code, stderr = running.finish(timeout=15)
    finally:
        proxy.down()
    assert code == 15
    assert stderr.startswith("error: stopped before the RPC node") and stderr.count("\n") == 1
    assert running.kinds() and set(running.kinds()) == {"rpc-unreachable"}  # then --json's error line only
    assert running.events[-1]["exit_code"] == 15 and running.events[-1]["kind"] == "UnreachableError"


def test_run_fails_fast_on_a_wrong_chain_or_a_feed_without_code(deployed: Any, tmp_path: Path) -> None:
    inputs = write_series(tmp_path / "inputs.json", series())
    from tests._oracle_fixtures import funded_node

    key = {"ORACLE_NODE_KEY": "0x" + bytes(funded_node(deployed).key).hex()}
    wrong_chain = cli(*_node_run_args(deployed.address, inputs, tmp_path), env={**key, "REGISTRY_CHAIN_ID": "1"},
                      timeout=30)
    assert wrong_chain.returncode == 6 and wrong_chain.stderr.startswith("error: wrong chain")
    no_feed = cli(*_node_run_args("0x" + "11" * 20, inputs, tmp_path), env=key, timeout=30)
    assert no_feed.returncode == 6 and "no contract" in no_feed.stderr
    for result in (wrong_chain, no_feed):
        assert "rpc-unreachable" not in result.stdout and result.stderr.count("\n") == 1


def test_owner_adds_a_node_and_approves_a_new_release(deployed: Any, onnx_models: dict[int, Path]) -> None:
    publish(deployed, onnx_models[1], "1.0.0")
    first, second = deployed.accounts[1], deployed.accounts[2]
    made = cli("oracle", "feed", "deploy", "--model", NAME, "--node", first.address, "--approve", f"{NAME}@1.0.0",
               "--json")
    assert made.returncode == 0, made.stderr
    feed = json.loads(made.stdout)["address"]

    added = cli("oracle", "feed", "add-node", feed, second.address, "--json")
    assert added.returncode == 0, added.stderr
    assert json.loads(added.stdout)["node"] == second.address

    v2 = publish(deployed, onnx_models[2], "1.1.0")
    approved = cli("oracle", "feed", "approve", feed, f"{NAME}@latest", "--json")
    assert approved.returncode == 0, approved.stderr
    assert json.loads(approved.stdout)["approved"] == f"{NAME}@1.1.0"

    status = json.loads(cli("oracle", "feed", "status", feed, "--json").stdout)
    assert status["approved_release"] == "0x" + v2.id.hex() and status["approved_ref"] == f"{NAME}@1.1.0"
    assert set(status["nodes"]) == {first.address, second.address}

    again = cli("oracle", "feed", "add-node", feed, second.address)
    assert again.returncode == 6 and again.stderr.count("\n") == 1  # a named revert, one line
