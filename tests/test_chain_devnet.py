"""The embedded devnet: idempotent start, acknowledged state on disk before a command returns,
recovery from damaged state files, and never a node it did not start."""

from __future__ import annotations

import gzip
import json
import os
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest

from registry import procinfo
from registry.chain import anvil as anvil_mod
from registry.chain import devnet, snapshots
from registry.chain.client import RegistryClient
from registry.config import load_settings
from registry.errors import InputError, StorageError, UnreachableError


@pytest.fixture
def local(registry_home: Path, monkeypatch: pytest.MonkeyPatch):
    """Settings for the local profile in a tmp home, on a free port; the devnet is stopped afterwards."""
    monkeypatch.setenv("REGISTRY_DEVNET_PORT", str(devnet.free_port()))
    settings = load_settings()
    yield settings
    devnet.stop(settings, force=True)


def _pid(settings) -> int:
    return int(json.loads((settings.chain_dir / "node.json").read_text())["pid"])


def _kill_chain(settings) -> None:
    pid = _pid(settings)
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while procinfo.is_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.02)


def _mark(settings, sender, label: str) -> str:
    """A state change through the registry's transaction path (journaled like any write): a small
    transfer to an address derived from ``label``, so the check does not depend on the contract's API."""
    from eth_utils import keccak, to_checksum_address

    from registry.chain.tx import send_call

    to = to_checksum_address(keccak(text=label)[:20])
    client = RegistryClient.connect(settings)
    send_call(client.w3, sender, lambda p: {**p, "to": to, "value": 10**15, "gas": 21000,
                                            "maxFeePerGas": 10**10, "maxPriorityFeePerGas": 10**9})
    return to


def _marked(settings, label: str) -> bool:
    from eth_utils import keccak, to_checksum_address

    client = RegistryClient.connect(settings)
    return int(client.w3.eth.get_balance(to_checksum_address(keccak(text=label)[:20]))) > 0


@pytest.fixture
def foreign_anvil(tmp_path: Path):
    """An anvil this data dir did not start (another program's node), on its own port."""
    port = devnet.free_port()
    log = tmp_path / "foreign.log"
    process = devnet.spawn_anvil(port, None, log, detached=False)
    url = f"http://127.0.0.1:{port}"
    devnet.wait_for_rpc(url, process, log)
    yield process, port, url
    process.kill()
    process.wait()


def _block_number(url: str) -> int:
    from registry.chain.rpc import make_web3

    return int(make_web3(url).eth.block_number)


def test_status_before_anything(local) -> None:
    info = devnet.status(local)
    assert not info.running and info.contract is None and info.pid is None and info.snapshot is None
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
    # the deployment is saved already: snapshot + journal cover the chain's head
    assert status.snapshot is not None and status.saved_block == status.block_number


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
    _mark(local, dev_accounts[1], "acme/persist")
    assert devnet.stop(local) is True
    assert not devnet.status(local).running
    again = devnet.ensure_running(local)
    assert again.started and not again.deployed and again.note is None
    assert again.contract == info.contract
    assert _marked(local, "acme/persist")


def test_an_acknowledged_change_survives_a_kill_right_after_it(local, dev_accounts) -> None:
    """No waiting for a dump interval: once the write returned, a SIGKILL cannot lose it."""
    devnet.ensure_running(local)
    for i in range(3):
        _mark(local, dev_accounts[2], f"acme/killed{i}")
        _kill_chain(local)  # immediately: no grace for a periodic dump
        again = devnet.ensure_running(local)
        assert again.started and not again.deployed
        assert again.note is not None and again.note.startswith("restored ") and "COULD NOT" not in again.note
        assert all(_marked(local, f"acme/killed{j}") for j in range(i + 1))


def test_a_chain_killed_while_it_is_restored_keeps_its_journal(local, dev_accounts, monkeypatch) -> None:
    devnet.ensure_running(local)
    for i in range(3):
        _mark(local, dev_accounts[6], f"acme/replay{i}")
    _kill_chain(local)
    journal_before = (local.chain_dir / "journal.jsonl").read_bytes()
    monkeypatch.setenv("REGISTRY_FAULT", "replay.entry=kill-chain")
    with pytest.raises(UnreachableError):
        devnet.ensure_running(local)  # dies while the journal is sent again
    assert (local.chain_dir / "journal.jsonl").read_bytes() == journal_before  # nothing dropped
    monkeypatch.delenv("REGISTRY_FAULT")
    again = devnet.ensure_running(local)
    assert again.note is not None and "COULD NOT" not in again.note
    assert all(_marked(local, f"acme/replay{i}") for i in range(3))


def test_a_journaled_transaction_is_replayed_into_the_same_block(local, dev_accounts) -> None:
    """Same signed bytes, same parent, same timestamp: the very same block, hash included."""
    devnet.ensure_running(local)
    devnet.stop(local)  # the snapshot holds the deployment: the replay starts after block 1
    info = devnet.ensure_running(local)
    client = RegistryClient.connect(local)
    _mark(local, dev_accounts[4], "acme/replayed")
    head = client.w3.eth.get_block("latest")
    _kill_chain(local)
    again = devnet.ensure_running(local)
    assert again.rpc_url == info.rpc_url
    replayed = RegistryClient.connect(local).w3.eth.get_block(head["number"])
    assert replayed["hash"] == head["hash"] and replayed["timestamp"] == head["timestamp"]


def test_snapshot_file_is_complete_and_keeps_the_previous_one(local, dev_accounts) -> None:
    devnet.ensure_running(local)
    first = snapshots.read_header(local.chain_dir / snapshots.CURRENT)
    _mark(local, dev_accounts[1], "acme/snap")
    assert devnet.status(local).journaled >= 1  # journaled, not snapshotted, per transaction
    devnet.stop(local)  # a snapshot of the head, so the next start replays nothing
    current = snapshots.read_header(local.chain_dir / snapshots.CURRENT)
    previous = snapshots.read_header(local.chain_dir / snapshots.PREVIOUS)
    assert current.block > first.block and previous.sha256 == first.sha256
    header, state = snapshots.load(local.chain_dir / snapshots.CURRENT)
    assert header is not None and json.loads(state)["accounts"]
    assert not list(local.chain_dir.glob(".*.tmp"))  # no temp file left behind
    again = devnet.ensure_running(local)
    assert again.note is None  # nothing to replay after a clean stop


def test_damaged_snapshot_recovers_from_the_last_good_one_and_the_journal(local, dev_accounts) -> None:
    first = devnet.ensure_running(local)
    _mark(local, dev_accounts[1], "acme/early")
    _mark(local, dev_accounts[1], "acme/late")
    devnet.stop(local)
    good = snapshots.read_header(local.chain_dir / snapshots.PREVIOUS)
    current = local.chain_dir / snapshots.CURRENT
    damaged = current.read_bytes()[: current.stat().st_size // 2]  # torn in the middle
    current.write_bytes(damaged)
    info = devnet.ensure_running(local)
    assert info.started and info.contract == first.contract and not info.deployed
    assert info.note is not None
    assert "state.snapshot was damaged (truncated" in info.note and f"block {good.block}" in info.note
    assert "restored " in info.note and "COULD NOT" not in info.note  # the journal still had the rest
    kept = list((local.chain_dir / "damaged").iterdir())
    assert len(kept) == 1 and kept[0].read_bytes() == damaged  # never deleted
    assert _marked(local, "acme/early")
    assert _marked(local, "acme/late")


def test_damaged_snapshot_without_a_journal_says_what_was_lost(local, dev_accounts) -> None:
    devnet.ensure_running(local)
    _mark(local, dev_accounts[1], "acme/gone")
    devnet.stop(local)
    good = snapshots.read_header(local.chain_dir / snapshots.PREVIOUS)
    lost = snapshots.read_header(local.chain_dir / snapshots.CURRENT)
    current = local.chain_dir / snapshots.CURRENT
    current.write_bytes(current.read_bytes()[:-100])
    (local.chain_dir / "journal.jsonl").unlink()
    info = devnet.ensure_running(local)
    assert info.note is not None and f"blocks {good.block + 1}..{lost.block}" in info.note
    assert "could not be recovered" in info.note  # said, not silent
    assert not _marked(local, "acme/gone")


def test_every_state_file_damaged_refuses_to_start_empty(local) -> None:
    devnet.ensure_running(local)
    devnet.stop(local)
    for name in (snapshots.CURRENT, snapshots.PREVIOUS):
        path = local.chain_dir / name
        path.write_bytes(path.read_bytes()[:-7])
    with pytest.raises(StorageError, match="refusing to start an empty chain") as info:
        devnet.ensure_running(local)
    assert info.value.exit_code == 16 and "chain up --reset" in str(info.value)
    assert not devnet.status(local).running
    assert (local.chain_dir / snapshots.CURRENT).exists()  # nothing was thrown away
    moved = devnet.reset(local)
    assert len(moved) == 3 and all(p.parent.name == "damaged" for p in moved)  # two snapshots + journal
    fresh = devnet.ensure_running(local)
    assert fresh.deployed and "chain state was lost" in (fresh.note or "")


def test_reset_refuses_while_running(local) -> None:
    devnet.ensure_running(local)
    with pytest.raises(InputError, match="running"):
        devnet.reset(local)


def test_a_legacy_anvil_state_file_is_imported(local, dev_accounts) -> None:
    first = devnet.ensure_running(local)
    _mark(local, dev_accounts[3], "acme/legacy")
    devnet.stop(local)
    _, state = snapshots.load(local.chain_dir / snapshots.CURRENT)
    for name in (snapshots.CURRENT, snapshots.PREVIOUS):
        (local.chain_dir / name).unlink()
    (local.chain_dir / snapshots.LEGACY).write_bytes(state)  # what `anvil --state` used to leave
    info = devnet.ensure_running(local)
    assert info.started and not info.deployed and info.contract == first.contract
    assert _marked(local, "acme/legacy")
    assert (local.chain_dir / snapshots.CURRENT).exists()
    assert (local.chain_dir / (snapshots.LEGACY + ".imported")).exists()


def test_snapshots_gone_but_journal_kept_restores_the_history(local, dev_accounts) -> None:
    first = devnet.ensure_running(local)
    _mark(local, dev_accounts[5], "acme/journaled")
    _kill_chain(local)
    for name in (snapshots.CURRENT, snapshots.PREVIOUS):
        (local.chain_dir / name).unlink(missing_ok=True)
    again = devnet.ensure_running(local)  # an empty chain, then every journaled transaction again
    assert not again.deployed and again.contract == first.contract, again.note
    assert again.note is not None and "restored 2 transactions" in again.note
    assert _marked(local, "acme/journaled")


def test_lost_state_redeploys_and_says_so(local) -> None:
    first = devnet.ensure_running(local)
    devnet.stop(local)
    for name in (snapshots.CURRENT, snapshots.PREVIOUS, "journal.jsonl"):
        (local.chain_dir / name).unlink()
    again = devnet.ensure_running(local)
    assert again.deployed and again.note is not None and "deployed a new one" in again.note
    assert first.contract in again.note
    assert devnet.status(local).contract_deployed


def test_stale_pid_of_another_process_is_ignored_and_not_killed(local) -> None:
    sleeper = subprocess.Popen(["sleep", "60"])
    try:
        local.chain_dir.mkdir(parents=True, exist_ok=True)
        (local.chain_dir / "node.json").write_text(json.dumps({  # a pid recycled by another program
            "pid": sleeper.pid, "pid_start_ticks": 1, "port": 1, "fingerprint": "0x" + "11" * 32}))
        info = devnet.ensure_running(local)
        assert info.started
        assert _pid(local) != sleeper.pid and sleeper.poll() is None  # never touched
    finally:
        sleeper.kill()
        sleeper.wait()


def test_a_recycled_pid_now_running_another_anvil_is_not_adopted(local, foreign_anvil) -> None:
    """node.json names a pid and port; the pid was recycled and is now another program's anvil,
    listening on that very port. Same pid, same port, but not the process we started."""
    process, port, url = foreign_anvil
    before = _block_number(url)
    local.chain_dir.mkdir(parents=True, exist_ok=True)
    (local.chain_dir / "node.json").write_text(json.dumps({
        "pid": process.pid, "pid_start_ticks": procinfo.start_ticks(process.pid) - 1, "port": port,
        "fingerprint": "0x" + "22" * 32}))
    os.environ.pop("REGISTRY_DEVNET_PORT")
    info = devnet.ensure_running(local)
    assert info.rpc_url != url and info.started and _pid(local) != process.pid
    assert process.poll() is None  # not ours: never stopped
    assert _block_number(url) == before  # and never deployed to


def test_an_interrupted_first_start_never_adopts_the_default_port_holder(local, foreign_anvil) -> None:
    """The bug from the issue: `chain up` killed after spawning, before it recorded the node; the next
    `chain up` found the pid alive and talked to whatever answered on 127.0.0.1:8545."""
    _process, port, url = foreign_anvil
    before = _block_number(url)
    # our own anvil, spawned, recorded without a fingerprint (the start was cut off there)
    own_port = devnet.free_port()
    own = devnet.spawn_anvil(own_port, None, local.chain_dir / "anvil.log", detached=True)
    devnet.wait_for_rpc(f"http://127.0.0.1:{own_port}", own, local.chain_dir / "anvil.log")
    (local.chain_dir / "node.json").write_text(json.dumps({
        "pid": own.pid, "pid_start_ticks": procinfo.start_ticks(own.pid), "port": port}))  # wrong port too
    os.environ.pop("REGISTRY_DEVNET_PORT")
    info = devnet.ensure_running(local)
    assert info.rpc_url != url and info.note is not None and "interrupted" in info.note
    assert own.wait(timeout=10) is not None  # the half-started anvil was ours: stopped
    assert _block_number(url) == before  # nothing deployed on the foreign node


def test_another_program_answering_on_our_port_is_detected(local, foreign_anvil, monkeypatch) -> None:
    """Port looked free, but another node answers there by the time anvil binds: not adopted."""
    _process, port, url = foreign_anvil
    before = _block_number(url)
    local.chain_dir.mkdir(parents=True, exist_ok=True)
    (local.chain_dir / "node.json").write_text(json.dumps({"port": port}))
    os.environ.pop("REGISTRY_DEVNET_PORT")
    real = devnet.port_is_free
    monkeypatch.setattr(devnet, "port_is_free", lambda p: True if p == port else real(p))
    info = devnet.ensure_running(local)
    assert info.rpc_url != url
    assert _block_number(url) == before


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
    monkeypatch.setattr(anvil_mod, "__file__", str(tmp_path / "registry" / "chain" / "anvil.py"))
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


def test_a_change_made_outside_the_registry_is_saved_by_the_next_command(local) -> None:
    info = devnet.ensure_running(local)
    saved = devnet.status(local).snapshot
    assert saved is not None
    from registry.chain.rpc import make_web3

    w3 = make_web3(info.rpc_url)
    w3.provider.make_request("evm_mine", [])  # e.g. `cast rpc evm_mine`: not journaled
    devnet.ensure_running(local)
    after = devnet.status(local).snapshot
    assert after is not None and after.block == w3.eth.block_number > saved.block


def test_unloadable_state_names_the_file(local) -> None:
    devnet.ensure_running(local)
    devnet.stop(local)
    # complete, checksummed, valid JSON with accounts: but not a state anvil accepts
    payload = gzip.compress(json.dumps({"accounts": {"not-an-address": {}}}).encode())
    for name in (snapshots.CURRENT, snapshots.PREVIOUS):
        (local.chain_dir / name).unlink()
    snapshots.write(local.chain_dir, payload, block=1, instance=None, fingerprint=None)
    with pytest.raises(Exception, match="anvil could not start from .*state.snapshot"):
        devnet.ensure_running(local)
    assert (local.chain_dir / snapshots.CURRENT).exists()


def test_a_long_running_process_keeps_the_journal_short(local, dev_accounts, monkeypatch) -> None:
    """An oracle node connects once and sends for hours: it takes the snapshots itself."""
    from registry.chain import journal
    from registry.chain.tx import send_call

    monkeypatch.setattr(journal, "COMPACT_AFTER", 3)
    client = RegistryClient.connect(local)  # one connection, no command start after it
    first = devnet.status(local).snapshot
    for i in range(12):
        send_call(client.w3, dev_accounts[7], lambda p: {**p, "to": dev_accounts[8].address, "value": 1,
                                                          "gas": 21000, "maxFeePerGas": 10**10,
                                                          "maxPriorityFeePerGas": 10**9})
    status = devnet.status(local)
    assert status.snapshot is not None and first is not None and status.snapshot.block > first.block + 6
    assert status.journaled <= 2 * 3 and status.saved_block == status.block_number
