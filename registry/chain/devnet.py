"""The embedded local chain: an anvil the tool starts itself, whose acknowledged state is never lost.

anvil runs detached (own session, log in ``<data dir>/chain/``) so it outlives the command that
started it. Its state lives in memory and is kept on disk by ``durable.py`` instead of anvil's
in-place ``--state`` rewrite: each transaction the registry sends is journaled before it is
acknowledged, snapshots are complete and atomic, and a start loads the last good snapshot and
replays the journal. A damaged snapshot is set aside and the previous one is loaded (the note
says so); if nothing loadable is left the start is refused rather than starting an empty chain
over the user's history.

**Only ever its own node.** ``node.json`` records the pid *and* start time of the anvil this devnet
launched, its port and a random fingerprint written into the chain's state. A node is used only
if that very process listens on that port and the chain holds that fingerprint; a pid recycled
by another program, or another node on the port, is never adopted.

The ModelRegistry is deployed once and its address remembered in ``deployment.json``; on a later
start the code at that address is checked and the contract is redeployed only if it is gone,
which ``DevnetInfo.note`` reports. Starting and stopping hold a file lock, so two commands starting
the chain at once end up with one anvil and one deployment.
"""

from __future__ import annotations

import os
import secrets
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from registry import faults, procinfo
from registry.chain import durable, journal, snapshots
from registry.chain.anvil import (  # noqa: F401  (re-exported: fixtures and benches import them from here)
    CHAIN_ID,
    HOST,
    LOG_MARKER,
    START_TIMEOUT_S,
    find_anvil,
    free_port,
    log_tail,
    port_is_free,
    spawn_anvil,
    wait_for_rpc,
)
from registry.chain.durable import ChainGone, Node, Paths, flocked, read_json, read_node, rpc, write_json, write_node
from registry.chain.snapshots import Snapshot
from registry.config import Settings
from registry.errors import ChainError, InputError, RegistryError, StorageError, UnreachableError

DEFAULT_PORT = 8545
STOP_TIMEOUT_S = 10.0
PORT_GRACE_S = 3.0  # how long an explicitly configured port may stay busy after a stop
# anvil's well-known dev account #0 (public knowledge: `anvil` prints it on every start).
DEV_KEY_0 = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"
# where the chain keeps this data dir's fingerprint (storage slot 0; no code, no balance)
FINGERPRINT_ADDRESS = "0xb899cC6E681D75F2461808fb06030Dd2FbD2708b"
ZERO_WORD = "0x" + "00" * 32


@dataclass(frozen=True)
class DevnetInfo:
    rpc_url: str
    chain_id: int
    contract: str
    started: bool = False
    deployed: bool = False
    note: str | None = None


@dataclass(frozen=True)
class DevnetStatus:
    running: bool
    rpc_url: str | None
    chain_id: int | None
    block_number: int | None
    contract: str | None
    contract_deployed: bool
    pid: int | None
    state_file: str
    log_file: str
    snapshot: Snapshot | None = None
    journaled: int = 0  # transactions saved in the journal since the snapshot
    saved_block: int | None = None  # every block up to here is on disk (snapshot + journal)

    def to_json(self) -> dict[str, Any]:
        return {
            "running": self.running,
            "rpc_url": self.rpc_url,
            "chain_id": self.chain_id,
            "block_number": self.block_number,
            "contract": self.contract,
            "contract_deployed": self.contract_deployed,
            "pid": self.pid,
            "state_file": self.state_file,
            "log_file": self.log_file,
            "snapshot": self.snapshot.to_json() if self.snapshot else None,
            "journaled": self.journaled,
            "saved_block": self.saved_block,
        }


# --------------------------------------------------------------------------------------------
# Ports
# --------------------------------------------------------------------------------------------


def _configured_port(paths: Paths) -> int:
    """REGISTRY_DEVNET_PORT, else the port used last time (stable URL), else 8545."""
    if os.environ.get("REGISTRY_DEVNET_PORT"):
        try:
            return int(os.environ["REGISTRY_DEVNET_PORT"])
        except ValueError as exc:
            raise InputError(f"bad REGISTRY_DEVNET_PORT: {exc}") from exc
    node = read_json(paths.node) or {}
    port = node.get("port")
    return int(port) if isinstance(port, int) else DEFAULT_PORT


def _someone_listens(port: int) -> bool:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(1.0)
        return sock.connect_ex((HOST, port)) == 0


def _wait_for_free_port(port: int, grace_s: float) -> bool:
    """A node that was just stopped may hold its port for a moment while the kernel tears it down."""
    deadline = time.monotonic() + grace_s
    while not port_is_free(port):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.1)
    return True


# --------------------------------------------------------------------------------------------
# Is it ours?
# --------------------------------------------------------------------------------------------


def _fingerprint_of(rpc_url: str) -> str | None:
    """The fingerprint word in the chain's state (None if the node does not answer like ours)."""
    try:
        if int(str(rpc(rpc_url, "eth_chainId", [], timeout_s=2.0)), 16) != CHAIN_ID:
            return None
        word = rpc(rpc_url, "eth_getStorageAt", [FINGERPRINT_ADDRESS, "0x0", "latest"], timeout_s=5.0)
    except (RegistryError, ValueError):
        return None
    return str(word) if isinstance(word, str) else None


def _owned(paths: Paths) -> tuple[Node | None, str | None]:
    """The running node this data dir launched, proven three ways, else None (and why, if an
    anvil of ours had to be stopped). Never touches a process it cannot prove it started."""
    node = read_node(paths)
    if node is None or not node.alive():
        return None, None  # never started, dead, or the pid now belongs to someone else
    if node.fingerprint is None:
        problem = "its start was interrupted"
    elif not procinfo.listens_on(node.pid, node.port):
        problem = f"it no longer listens on port {node.port}"
    elif _fingerprint_of(node.rpc_url) != node.fingerprint:
        problem = "its chain does not carry this data dir's fingerprint"
    else:
        return node, None
    _terminate(node.pid, node.ticks)
    return None, f"stopped the local anvil (pid {node.pid}): {problem}; restarted it from the saved state"


# --------------------------------------------------------------------------------------------
# Starting
# --------------------------------------------------------------------------------------------


def _start(paths: Paths) -> tuple[Node, list[str]]:
    recovery = snapshots.recover(paths.root)
    explicit = bool(os.environ.get("REGISTRY_DEVNET_PORT"))
    port = _configured_port(paths)
    binary = find_anvil()
    if not _wait_for_free_port(port, PORT_GRACE_S if explicit else 0.0):
        if explicit:
            raise InputError(f"port {port} (REGISTRY_DEVNET_PORT) is busy")
        port = free_port()
    for _attempt in range(3):
        node = _launch(paths, port, binary, recovery)
        if node is not None:
            break
        if explicit:
            raise InputError(f"port {port} (REGISTRY_DEVNET_PORT) is taken by another program")
        port = free_port()
    else:
        raise ChainError(f"another program kept taking the port the local chain was started on (log: {paths.log})")
    fingerprint = _fingerprint_of(node.rpc_url)
    if fingerprint in (None, ZERO_WORD):  # a new chain, or one from before fingerprints: mark it ours
        fingerprint = "0x" + secrets.token_hex(32)
        rpc(node.rpc_url, "anvil_setStorageAt", [FINGERPRINT_ADDRESS, "0x0", fingerprint])
    node = Node(node.pid, node.ticks, node.port, fingerprint)
    faults.set_chain_pid(node.pid)
    notes = recovery.notes + durable.replay(paths, node, recovery.block)
    current = snapshots.current(paths.root)
    saved = True
    if notes or recovery.legacy or current is None or durable.block_number(node) > current.block:
        try:
            durable.save(paths, node)  # a current snapshot that checks out and holds all of the above
        except StorageError as exc:  # the journal still holds what was replayed: a note, not a failure
            notes.append(f"could not take a snapshot of the local chain after starting it ({exc})")
            saved = False
        except ChainGone:
            raise UnreachableError(f"the local chain (anvil, pid {node.pid}) died while it was being started; "
                                   "run the command again to restart it from its last saved state") from None
    # Only now is the start complete: until node.json carries the fingerprint, the next command
    # treats this anvil as a start that was cut off (stops it and starts again, replay included).
    write_node(paths, node)
    durable.attach(paths, node)
    if saved and recovery.legacy and recovery.source is not None:
        os.replace(recovery.source, recovery.source.with_name(recovery.source.name + ".imported"))
    return node, notes


def _launch(paths: Paths, port: int, binary: Path, recovery: snapshots.Recovery) -> Node | None:
    """Spawns anvil on ``port`` and waits until *that process* listens there and answers; None if
    another program holds the port (our anvil could not bind, or is stopped again)."""
    from registry.chain.rpc import rpc_answers

    process = spawn_anvil(port, None, paths.log, binary=binary, detached=True, load_state=recovery.state_json)
    ticks = procinfo.start_ticks(process.pid) or 0
    node = Node(process.pid, ticks, port, None)
    # a large state takes anvil a while to parse before it listens
    timeout_s = START_TIMEOUT_S + len(recovery.state_json or b"") / 1e6
    deadline = time.monotonic() + timeout_s
    try:
        write_node(paths, node)  # from now on an interrupted start is recognised (no fingerprint yet)
        while not (procinfo.listens_on(process.pid, port) and rpc_answers(node.rpc_url, timeout_s=1.0)):
            if process.poll() is not None:
                if _someone_listens(port):
                    return None  # another program took the port between our check and anvil's bind
                if process.returncode < 0:  # killed by a signal: not a problem with the state it loads
                    raise UnreachableError(f"the local chain (anvil) was killed while it was starting "
                                           f"(signal {-process.returncode}); run the command again")
                where = f" from {recovery.source}" if recovery.source is not None else ""
                raise ChainError(f"anvil could not start{where}: it exited with code {process.returncode}: "
                                 f"{log_tail(paths.log)}")
            if time.monotonic() > deadline:
                raise UnreachableError(f"anvil did not answer at {node.rpc_url} within {timeout_s:.0f} s "
                                       f"(log: {paths.log})")
            time.sleep(0.05)
    except BaseException:
        _terminate(process.pid, ticks)
        paths.pidfile.unlink(missing_ok=True)
        raise
    return node


def _ensure_deployed(rpc_url: str, paths: Paths) -> tuple[str, bool, str | None]:
    """Reuses the remembered deployment if its code is still there and the contract has not been
    rebuilt since; otherwise deploys (and says why in the note)."""
    from eth_account import Account
    from eth_utils import keccak

    from registry.chain.artifacts import load_artifact
    from registry.chain.rpc import make_web3, with_retries
    from registry.chain.tx import deploy_registry

    w3 = make_web3(rpc_url)
    artifact_hash = load_artifact().code_hash
    previous = read_json(paths.deployment)
    note = None
    if previous and isinstance(previous.get("address"), str):
        address = previous["address"]
        code = with_retries(lambda: bytes(w3.eth.get_code(address)), rpc_url)
        if not code:
            note = f"no ModelRegistry at {address} any more (chain state was lost); deployed a new one"
        elif previous.get("code_hash") not in (None, "0x" + keccak(code).hex()):
            note = f"the code at {address} is not the ModelRegistry deployed there; deployed a new one"
        elif previous.get("artifact_hash") not in (None, artifact_hash):
            note = f"ModelRegistry was rebuilt since {address} was deployed; deployed the new build"
        else:
            return address, False, None
    address = deploy_registry(w3, Account.from_key(DEV_KEY_0))
    code = with_retries(lambda: bytes(w3.eth.get_code(address)), rpc_url)
    write_json(
        paths.deployment,
        {
            "address": address,
            "chain_id": CHAIN_ID,
            "code_hash": "0x" + keccak(code).hex(),
            "artifact_hash": artifact_hash,
            "block": int(w3.eth.block_number),
            "previous_address": previous.get("address") if previous else None,
        },
    )
    return address, True, note


def ensure_running(settings: Settings) -> DevnetInfo:
    """Starts anvil if needed (from the last good snapshot) and deploys the registry once;
    idempotent and safe to race. Transactions this process sends to it afterwards are saved
    before they are acknowledged."""
    paths = Paths(settings.chain_dir)
    with flocked(paths.lock):
        node, stop_note = _owned(paths)
        notes = [stop_note] if stop_note else []
        started = node is None
        if node is None:
            node, recovered = _start(paths)
            notes += recovered
        else:
            durable.attach(paths, node)
        address, deployed, deploy_note = _ensure_deployed(node.rpc_url, paths)
        if deploy_note:
            notes.append(deploy_note)
        housekeeping = durable.catch_up(paths, node)
        if housekeeping:
            notes.append(housekeeping)
        return DevnetInfo(rpc_url=node.rpc_url, chain_id=CHAIN_ID, contract=address, started=started,
                          deployed=deployed, note="; ".join(notes) or None)


# --------------------------------------------------------------------------------------------
# Stopping, resetting, status
# --------------------------------------------------------------------------------------------


def _terminate(pid: int, ticks: int | None = None, timeout_s: float = STOP_TIMEOUT_S) -> bool:
    """SIGTERM, wait, SIGKILL as a last resort; only if ``pid`` is still the process we started."""
    if ticks is not None and not procinfo.is_same_process(pid, ticks):
        return True
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return True
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not procinfo.is_alive(pid):
            _reap(pid)
            return True
        time.sleep(0.05)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    _reap(pid)
    return False


def _reap(pid: int) -> None:
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def stop(settings: Settings, force: bool = False) -> bool:
    """Saves the state and stops the devnet; False if it was not running. If the state cannot be
    saved (disk full) the chain is left running, unless ``force``."""
    paths = Paths(settings.chain_dir)
    with flocked(paths.lock):
        node = read_node(paths)
        if node is None or not node.alive():
            paths.pidfile.unlink(missing_ok=True)
            return False
        if node.fingerprint is not None and procinfo.listens_on(node.pid, node.port):
            try:  # a snapshot of the head, so the next start replays nothing
                current = snapshots.current(paths.root)
                if current is None or durable.block_number(node) > current.block:
                    durable.save(paths, node)
            except ChainGone:
                pass
            except StorageError as exc:
                if not force:
                    raise StorageError(f"{exc}; the local chain was left running (`registry chain down --force` "
                                       "stops it anyway, losing what is not saved)") from exc
            except RegistryError:
                pass  # not answering: everything acknowledged is saved already
        _terminate(node.pid, node.ticks)
        paths.pidfile.unlink(missing_ok=True)
        return True


def reset(settings: Settings) -> list[Path]:
    """Sets the saved state aside (never deletes it) so the next start is an empty chain."""
    paths = Paths(settings.chain_dir)
    with flocked(paths.lock):
        node = read_node(paths)
        if node is not None and node.alive():
            raise InputError("the local chain is running: stop it first with `registry chain down`")
        if not paths.root.exists():
            return []
        moved = snapshots.reset(paths.root)
        if (paths.root / journal.JOURNAL).exists():
            moved.append(snapshots.set_aside(paths.root / journal.JOURNAL))
        return moved


def status(settings: Settings) -> DevnetStatus:
    """What is running and deployed, without starting anything."""
    from registry.chain.rpc import make_web3

    paths = Paths(settings.chain_dir)
    node = read_node(paths)
    alive = node is not None and node.alive()
    deployment = read_json(paths.deployment) or {}
    rpc_url = node.rpc_url if node is not None else None
    contract = deployment.get("address") if isinstance(deployment.get("address"), str) else None
    chain_id = block = None
    has_code = False
    if alive and rpc_url and node is not None and _fingerprint_of(rpc_url) == node.fingerprint:
        try:
            w3 = make_web3(rpc_url, timeout_s=2.0)
            chain_id = int(w3.eth.chain_id)
            block = int(w3.eth.block_number)
            has_code = bool(contract) and bool(w3.eth.get_code(contract))
        except Exception:
            pass
    current, entries = durable.pending(paths)
    return DevnetStatus(
        running=alive and chain_id is not None,
        rpc_url=rpc_url,
        chain_id=chain_id,
        block_number=block,
        contract=contract,
        contract_deployed=has_code,
        pid=node.pid if alive and node is not None else None,
        state_file=str(paths.state),
        log_file=str(paths.log),
        snapshot=current,
        journaled=len(entries),
        saved_block=journal.durable_head(entries, current.block) if current is not None else None,
    )
