"""The embedded devnet: idempotent start, state across restarts and kills, redeploy when state is lost."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from pathlib import Path

import pytest

from registry.chain import devnet
from registry.chain.client import RegistryClient
from registry.config import load_settings
from registry.errors import InputError


@pytest.fixture
def local(registry_home: Path, monkeypatch: pytest.MonkeyPatch):
    """Settings for the local profile in a tmp home, on a free port; the devnet is stopped afterwards."""
    monkeypatch.setenv("REGISTRY_DEVNET_PORT", str(devnet.free_port()))
    settings = load_settings()
    yield settings
    devnet.stop(settings)


def test_status_before_anything(local) -> None:
    info = devnet.status(local)
    assert not info.running and info.contract is None and info.pid is None
    assert devnet.stop(local) is False


def test_up_is_idempotent_and_deploys_once(local) -> None:
    first = devnet.ensure_running(local)
    assert first.started and first.deployed and first.chain_id == 31337
    second = devnet.ensure_running(local)
    assert not second.started and not second.deployed
    assert (second.rpc_url, second.contract) == (first.rpc_url, first.contract)
    status = devnet.status(local)
    assert status.running and status.contract_deployed and status.contract == first.contract
    assert status.block_number is not None and status.block_number >= 1
    deployment = json.loads((local.chain_dir / "deployment.json").read_text())
    assert deployment["address"] == first.contract and deployment["chain_id"] == 31337
    assert deployment["code_hash"].startswith("0x") and len(deployment["code_hash"]) == 66
    client = RegistryClient.connect(local)
    from eth_utils import keccak

    assert deployment["code_hash"] == "0x" + keccak(bytes(client.w3.eth.get_code(first.contract))).hex()
    assert Path(status.state_file).parent == local.chain_dir


def test_concurrent_up_starts_one_chain(local) -> None:
    results: list[devnet.DevnetInfo] = []
    errors: list[BaseException] = []

    def up() -> None:
        try:
            results.append(devnet.ensure_running(local))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=up) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert sum(r.started for r in results) == 1 and sum(r.deployed for r in results) == 1
    assert len({r.contract for r in results}) == 1


def test_state_survives_down_and_up(local, dev_accounts) -> None:
    info = devnet.ensure_running(local)
    client = RegistryClient.connect(local)
    client.claim_namespace("acme", dev_accounts[1])
    assert devnet.stop(local) is True
    assert not devnet.status(local).running
    again = devnet.ensure_running(local)
    assert again.started and not again.deployed and again.note is None
    assert again.contract == info.contract
    assert RegistryClient.connect(local).name_owner("acme/persist")[0] == dev_accounts[1].address


def test_state_survives_a_kill(local, dev_accounts) -> None:
    devnet.ensure_running(local)
    RegistryClient.connect(local).claim_namespace("acme", dev_accounts[2])
    time.sleep(2.2)  # --state-interval 1: the periodic dump has happened
    pid = int((local.chain_dir / "anvil.pid").read_text())
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while devnet.status(local).running and time.monotonic() < deadline:
        time.sleep(0.05)
    again = devnet.ensure_running(local)
    assert again.started and not again.deployed
    assert RegistryClient.connect(local).name_owner("acme/killed")[0] == dev_accounts[2].address


def test_lost_state_redeploys_and_says_so(local) -> None:
    first = devnet.ensure_running(local)
    devnet.stop(local)
    (local.chain_dir / "anvil-state.json").unlink()
    again = devnet.ensure_running(local)
    assert again.deployed and again.note is not None and "deployed a new one" in again.note
    assert first.contract in again.note
    assert devnet.status(local).contract_deployed


def test_stale_pidfile_is_ignored(local) -> None:
    local.chain_dir.mkdir(parents=True, exist_ok=True)
    (local.chain_dir / "anvil.pid").write_text(f"{os.getpid()}\n")  # alive, but not anvil
    info = devnet.ensure_running(local)
    assert info.started
    assert int((local.chain_dir / "anvil.pid").read_text()) != os.getpid()


def test_busy_default_port_falls_back(registry_home, monkeypatch) -> None:
    import socket

    blocker = socket.socket()
    blocker.bind(("127.0.0.1", 0))
    blocker.listen(1)
    busy = blocker.getsockname()[1]
    settings = load_settings()
    settings.chain_dir.mkdir(parents=True)
    (settings.chain_dir / "node.json").write_text(json.dumps({"port": busy}))  # last used port now busy
    try:
        info = devnet.ensure_running(settings)
        assert not info.rpc_url.endswith(f":{busy}")
        saved = json.loads((settings.chain_dir / "node.json").read_text())
        assert info.rpc_url.endswith(f":{saved['port']}")
    finally:
        devnet.stop(settings)
        blocker.close()


def test_explicit_busy_port_is_an_error(registry_home, monkeypatch) -> None:
    import socket

    blocker = socket.socket()
    blocker.bind(("127.0.0.1", 0))
    blocker.listen(1)
    monkeypatch.setenv("REGISTRY_DEVNET_PORT", str(blocker.getsockname()[1]))
    try:
        with pytest.raises(InputError, match="is busy"):
            devnet.ensure_running(load_settings())
    finally:
        blocker.close()


def test_missing_anvil_says_make_install(local, monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("REGISTRY_ANVIL", str(tmp_path / "nope" / "anvil"))
    with pytest.raises(InputError, match="not an executable"):
        devnet.ensure_running(local)
    monkeypatch.delenv("REGISTRY_ANVIL")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(devnet, "__file__", str(tmp_path / "registry" / "chain" / "devnet.py"))
    with pytest.raises(InputError, match="make install"):
        devnet.find_anvil()


def test_rebuilt_contract_is_redeployed(local) -> None:
    first = devnet.ensure_running(local)
    path = local.chain_dir / "deployment.json"
    deployment = json.loads(path.read_text())
    path.write_text(json.dumps({**deployment, "artifact_hash": "0x" + "ab" * 32}))
    again = devnet.ensure_running(local)
    assert again.deployed and again.contract != first.contract
    assert again.note is not None and "rebuilt" in again.note
    assert json.loads(path.read_text())["previous_address"] == first.contract


def test_corrupt_state_is_reported_and_kept(local) -> None:
    from registry.errors import ChainError

    local.chain_dir.mkdir(parents=True, exist_ok=True)
    state = local.chain_dir / "anvil-state.json"
    state.write_text('{"garbage": tru')
    (local.chain_dir / "anvil.log").write_text("old run: all fine\n")
    with pytest.raises(ChainError, match="anvil exited with code") as info:
        devnet.ensure_running(local)
    assert "anvil-state.json" in str(info.value) and "old run" not in str(info.value)
    assert state.read_text() == '{"garbage": tru'  # the user's state is never thrown away
    assert not devnet.status(local).running
