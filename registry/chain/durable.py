"""Keeping the local chain's acknowledged state on disk: journal, snapshots, replay.

anvil keeps its chain in memory. What a command acknowledges must survive anvil being killed at
any instant, so:

* every transaction this process sends to the devnet goes through ``DevnetGuard`` (a
  ``registry.chain.tx.TxGuard``): once mined, it is appended to the journal and fsynced
  (``journal.py``) before ``send_call`` returns;
* a snapshot of the whole state (``anvil_dumpState``, written atomically by ``snapshots.py``) is
  taken when the journal grows long, when the chain moved without the registry (a block it did
  not journal), on ``chain down`` and after every start; it lets the journal be cut short;
* a start loads the last good snapshot and sends the journaled transactions it lacks again, at
  their original timestamps (``replay``).

Lock order, outermost first: ``devnet.lock`` (start/stop), ``journal.lock``, ``snapshot.lock``.
"""

from __future__ import annotations

import fcntl
import json
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ContextManager, Iterator

from registry import faults, procinfo
from registry.chain import journal, snapshots
from registry.chain.anvil import CHAIN_ID, HOST
from registry.chain.snapshots import Snapshot
from registry.errors import ChainError, RegistryError, StorageError, UnreachableError
from registry.fsutil import atomic_write

DUMP_TIMEOUT_S = 120.0
REPLAY_RECEIPT_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class Paths:
    """The files of one data dir's local chain (``<data dir>/chain``)."""

    root: Path

    @property
    def state(self) -> Path:
        return self.root / snapshots.CURRENT

    @property
    def pidfile(self) -> Path:
        return self.root / "anvil.pid"

    @property
    def log(self) -> Path:
        return self.root / "anvil.log"

    @property
    def node(self) -> Path:
        return self.root / "node.json"

    @property
    def deployment(self) -> Path:
        return self.root / "deployment.json"

    @property
    def lock(self) -> Path:
        return self.root / "devnet.lock"

    @property
    def snapshot_lock(self) -> Path:
        return self.root / "snapshot.lock"

    @property
    def account_locks(self) -> Path:
        return self.root.parent / "locks"


@dataclass(frozen=True)
class Node:
    """The anvil this devnet launched: pid + start time name the process, the fingerprint the chain."""

    pid: int
    ticks: int
    port: int
    fingerprint: str | None

    @property
    def instance(self) -> str:
        return f"{self.pid}:{self.ticks}"

    @property
    def rpc_url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def alive(self) -> bool:
        return procinfo.is_same_process(self.pid, self.ticks)


class ChainGone(Exception):
    """The node that mined a transaction died (or was replaced) before it was journaled."""


# --------------------------------------------------------------------------------------------
# Small helpers
# --------------------------------------------------------------------------------------------


@contextmanager
def flocked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def write_json(path: Path, data: dict[str, Any]) -> None:
    atomic_write(path, (json.dumps(data, indent=2, sort_keys=True) + "\n").encode(), where="data dir")


_sessions: dict[str, Any] = {}


def rpc(rpc_url: str, method: str, params: list[Any], timeout_s: float = 5.0) -> Any:
    """One raw JSON-RPC call (kept-alive connection per node); UnreachableError if the node does not
    answer, ChainError on an error."""
    import requests

    session = _sessions.get(rpc_url)
    if session is None:
        session = _sessions[rpc_url] = requests.Session()
    try:
        response = session.post(rpc_url, json={"jsonrpc": "2.0", "id": 1, "method": method, "params": params},
                                timeout=timeout_s)
        body = response.json()
    except (requests.RequestException, ValueError) as exc:
        raise UnreachableError(f"the local chain at {rpc_url} did not answer {method}") from exc
    if not isinstance(body, dict) or "error" in body:
        raise ChainError(f"the local chain refused {method}: {body.get('error') if isinstance(body, dict) else body}")
    return body.get("result")


def block_number(node: Node) -> int:
    return int(str(rpc(node.rpc_url, "eth_blockNumber", [])), 16)


def read_node(paths: Paths) -> Node | None:
    data = read_json(paths.node) or {}
    try:
        pid, ticks, port = int(data["pid"]), int(data["pid_start_ticks"]), int(data["port"])
    except (KeyError, TypeError, ValueError):
        return None
    fingerprint = data.get("fingerprint") if isinstance(data.get("fingerprint"), str) else None
    return Node(pid, ticks, port, fingerprint)


def write_node(paths: Paths, node: Node) -> None:
    write_json(paths.node, {"pid": node.pid, "pid_start_ticks": node.ticks, "port": node.port,
                            "rpc_url": node.rpc_url, "chain_id": CHAIN_ID, "fingerprint": node.fingerprint,
                            "started_at": time.time()})
    atomic_write(paths.pidfile, f"{node.pid}\n".encode(), where="data dir")


def _receipt(node: Node, tx_hash: str) -> dict[str, Any] | None:
    result = rpc(node.rpc_url, "eth_getTransactionReceipt", [tx_hash])
    return result if isinstance(result, dict) else None


def unsaved_message(paths: Paths, what: str) -> str:
    return (f"{what}; the running local chain still has it, but it is not on disk yet: free space in "
            f"{paths.root.parent}, then run `registry chain up` to save it")


# --------------------------------------------------------------------------------------------
# Snapshots and the journal
# --------------------------------------------------------------------------------------------


def save(paths: Paths, node: Node) -> Snapshot:
    """Dumps the node's whole state into a new snapshot, then cuts the journal short (keeping
    what the previous snapshot lacks, so a damaged current snapshot loses nothing journaled).
    ChainGone if ``node`` is not the running node any more."""
    with flocked(paths.snapshot_lock):
        live = read_node(paths)
        if live is None or live.instance != node.instance or not node.alive():
            raise ChainGone()
        faults.point("snapshot.before-dump")
        try:
            block = block_number(node)
            raw = rpc(node.rpc_url, "anvil_dumpState", [], timeout_s=DUMP_TIMEOUT_S)
        except UnreachableError:
            if not node.alive():
                raise ChainGone() from None
            raise
        if not isinstance(raw, str) or not raw.startswith("0x"):
            raise ChainError("the local chain returned a malformed state dump")
        snapshot = snapshots.write(paths.root, bytes.fromhex(raw[2:]), block=block, instance=node.instance,
                                   fingerprint=node.fingerprint, fault=faults.point)
    compact(paths)
    return snapshot


def compact(paths: Paths) -> None:
    """Drops journal entries that both the current and the previous snapshot hold."""
    try:
        floor = snapshots.read_header(paths.root / snapshots.PREVIOUS).block
    except snapshots.DamagedSnapshot:
        return
    with journal.locked(paths.root):
        entries, problems = journal.read(paths.root)
        keep = [e for e in entries if e.block > floor]
        if len(keep) != len(entries) and not problems:
            journal.rewrite(paths.root, keep)


def pending(paths: Paths) -> tuple[Snapshot | None, list[journal.Entry]]:
    """The current snapshot and the journal entries it does not hold."""
    current = snapshots.current(paths.root)
    entries, _problems = journal.read(paths.root)
    floor = current.block if current is not None else -1
    return current, [e for e in entries if e.block > floor]


def catch_up(paths: Paths, node: Node) -> str | None:
    """Takes a snapshot if the chain holds blocks that are neither in the snapshot nor journaled
    (a change made by another tool) or if the journal has grown long. This is housekeeping for
    the command that connects: a full disk is a note for the user, not a failure of the command
    (what the registry acknowledged is journaled already). Returns that note, if any."""
    current, entries = pending(paths)
    try:
        head = block_number(node)
    except (RegistryError, ValueError):
        return None
    floor = current.block if current is not None else -1
    if current is not None and head <= journal.durable_head(entries, floor) and len(entries) <= journal.COMPACT_AFTER:
        return None
    try:
        save(paths, node)
    except ChainGone:
        raise UnreachableError(f"the local chain (anvil, pid {node.pid}) died while it was being saved; "
                               "run the command again to restart it from its last saved state") from None
    except StorageError as exc:
        unsaved = head - journal.durable_head(entries, floor)
        if unsaved <= 0:
            return f"could not take a snapshot of the local chain ({exc}); its journal keeps growing until it can"
        return unsaved_message(paths, f"{exc}: {unsaved} block{'s' if unsaved != 1 else ''} of the local chain "
                                      "could not be saved")
    return None


def replay(paths: Paths, node: Node, loaded_block: int | None) -> list[str]:
    """Sends the journaled transactions the loaded state lacks, in chain order, each at its original
    timestamp. Returns notes for the user (what was restored, and loudly, what could not be)."""
    restored, failed = 0, []
    with journal.locked(paths.root):
        entries, problems = journal.read(paths.root)
        todo = [e for e in entries if loaded_block is None or e.block > loaded_block]
        if todo:
            # anvil's clock restarts at "now"; wind it back to the loaded head so the original
            # timestamps can be set again (they precede now), and forward once the replay is done
            # (on an empty chain the genesis block is newer than the journal: go back to its start)
            head = rpc(node.rpc_url, "eth_getBlockByNumber", ["latest", False])
            rpc(node.rpc_url, "evm_setTime", [min(int(str(head["timestamp"]), 16), todo[0].timestamp)])
        for entry in todo:
            if _receipt(node, entry.tx_hash) is not None:
                continue  # already in the loaded state
            faults.point("replay.entry")
            try:
                rpc(node.rpc_url, "evm_setNextBlockTimestamp", [entry.timestamp])
                rpc(node.rpc_url, "eth_sendRawTransaction", [entry.raw])
                receipt = _wait_receipt(node, entry.tx_hash)
            except UnreachableError:
                raise  # the node died while being restored: the journal stays as it is for the next start
            except RegistryError as exc:  # the node refused it: that one cannot be restored
                failed.append(f"{entry.tx_hash} ({exc})")
                continue
            if int(str(receipt.get("status", "0x0")), 16) != entry.status:
                failed.append(f"{entry.tx_hash} (its outcome changed on replay)")
                continue
            restored += 1
        if todo:
            head = rpc(node.rpc_url, "eth_getBlockByNumber", ["latest", False])
            rpc(node.rpc_url, "evm_setTime", [max(int(time.time()), int(str(head["timestamp"]), 16))])
        if failed or problems:  # keep the journal as it was for the user; go on without what failed
            snapshots.set_aside(paths.root / journal.JOURNAL)
            lost = {f.split(" ", 1)[0] for f in failed}
            journal.rewrite(paths.root, [e for e in entries if e.tx_hash not in lost])
    notes = []
    if restored:
        notes.append(f"restored {restored} transaction{'s' if restored != 1 else ''} saved after the last "
                     "snapshot from the local chain's journal")
    if problems:
        notes.append("; ".join(problems))
    if failed:
        notes.append(f"COULD NOT RESTORE {len(failed)} acknowledged transaction{'s' if len(failed) != 1 else ''} "
                     f"from the journal: {', '.join(failed)}; the journal was kept in {paths.root / 'damaged'}")
    return notes


def _wait_receipt(node: Node, tx_hash: str) -> dict[str, Any]:
    deadline = time.monotonic() + REPLAY_RECEIPT_TIMEOUT_S
    while True:
        receipt = _receipt(node, tx_hash)
        if receipt is not None:
            return receipt
        if not node.alive():
            raise UnreachableError(f"the local chain (anvil, pid {node.pid}) died while it was being restored")
        if time.monotonic() > deadline:
            raise ChainError("not mined on replay")
        time.sleep(0.01)


# --------------------------------------------------------------------------------------------
# The guard every transaction to the devnet goes through
# --------------------------------------------------------------------------------------------


class DevnetGuard:
    """Serialises each key's nonces, journals each mined transaction before it is acknowledged,
    and words the error when the chain dies mid-transaction (see ``registry.chain.tx.TxGuard``)."""

    def __init__(self, paths: Paths, node: Node) -> None:
        self.paths = paths
        self.node = node
        self.appended = 0

    def account_lock(self, address: str) -> ContextManager[None]:
        from registry.chain.nonces import account_lock

        return account_lock(self.paths.account_locks, address)

    def after_mined(self, receipt: Any, raw: bytes) -> None:
        tx_hash = "0x" + bytes(receipt["transactionHash"]).hex()
        try:
            block = rpc(self.node.rpc_url, "eth_getBlockByNumber", [hex(int(receipt["blockNumber"])), False])
            if not isinstance(block, dict) or block.get("hash", "").lower() != "0x" + bytes(receipt["blockHash"]).hex():
                raise ChainGone()  # that block is not on the node answering now
            entry = journal.Entry(block=int(receipt["blockNumber"]), index=int(receipt["transactionIndex"]),
                                  timestamp=int(str(block["timestamp"]), 16), tx_hash=tx_hash, raw="0x" + raw.hex(),
                                  status=int(receipt["status"]))
            with journal.locked(self.paths.root):
                live = read_node(self.paths)
                if live is None or live.instance != self.node.instance or not self.node.alive():
                    # Another command restarted the chain since this process connected. The block
                    # check above proved the node answering now mined this very transaction.
                    if live is None or not live.alive() or live.fingerprint != self.node.fingerprint:
                        raise ChainGone()
                    self.node = live
                    attach(self.paths, live)
                journal.append(self.paths.root, entry)
            self.appended += 1
        except (ChainGone, UnreachableError):
            raise self.interrupted("mined-unsaved", tx_hash, None) from None
        except StorageError as exc:
            raise StorageError(unsaved_message(self.paths, f"{exc} while saving transaction {tx_hash}")) from exc
        if self.appended % journal.COMPACT_AFTER == 0:  # a long-running process (an oracle node) keeps
            try:  # the journal short too; the transaction is saved already, so a failure here is harmless
                catch_up(self.paths, self.node)
            except RegistryError:
                pass

    def interrupted(self, phase: str, tx_hash: str | None, cause: BaseException | None) -> RegistryError:
        from registry.chain.tx import PHASE_TEXT, TransactionInterrupted

        died = not self.node.alive()
        state = "died" if died else "stopped answering"
        message = f"the local chain (anvil, pid {self.node.pid}) {state} {PHASE_TEXT[phase].format(tx=tx_hash)}"
        if died:
            message += "; the next command restarts it from its last saved state"
        return TransactionInterrupted(message, phase, tx_hash, chain_died=died)


def attach(paths: Paths, node: Node) -> None:
    """Routes this process's transactions to ``node`` through its guard."""
    from registry.chain.tx import register_guard

    register_guard(node.rpc_url, DevnetGuard(paths, node))
    faults.set_chain_pid(node.pid)
