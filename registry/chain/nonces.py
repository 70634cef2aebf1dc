"""One key, one nonce at a time: commands that sign with the same key take turns.

Two nonces race when commands run in parallel from one key: the account's transaction nonce (the
node says "nonce too low") and the publisher's release nonce inside the signed Release (the
contract reverts ``InvalidAccountNonce``). Both are read, used, and only advance once the
transaction is mined, so the read-to-mined stretch is held under a lock per key and per data dir:
an ``fcntl`` lock (other processes) that is reentrant within a process (other threads wait, the
same thread may nest, e.g. publish around the send inside it). Races the lock cannot see (another
data dir or machine using the key) are retried with a fresh nonce instead.
"""

from __future__ import annotations

import dataclasses
import fcntl
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, ContextManager, Iterator

if TYPE_CHECKING:
    from eth_account.signers.local import LocalAccount

    from registry.chain.client import RegistryClient
    from registry.chain.records import ReleaseRecord
    from registry.errors import RegistryError
    from registry.release import Release

NONCE_RETRIES = 5
# what nodes say when a nonce was used by a transaction we did not wait for
NONCE_RACE_MARKERS = ("nonce too low", "invalidaccountnonce", "replacement transaction underpriced",
                      "nonce has already been used", "already known")


@dataclasses.dataclass
class _Held:
    lock: threading.RLock
    depth: int = 0
    handle: IO[bytes] | None = None


_registry_guard = threading.Lock()
_held: dict[str, _Held] = {}


def lock_path(lock_dir: Path, address: str) -> Path:
    return lock_dir / f"{address.lower()}.lock"


@contextmanager
def account_lock(lock_dir: Path, address: str) -> Iterator[None]:
    """Holds the lock of ``address`` in ``lock_dir`` (a data dir's ``locks/``) until the block ends."""
    path = lock_path(lock_dir, address)
    key = str(path)
    with _registry_guard:
        held = _held.setdefault(key, _Held(threading.RLock()))
    with held.lock:
        if held.depth == 0:
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                handle = open(path, "ab")
            except OSError as exc:
                from registry.fsutil import storage_error

                raise storage_error(exc, "data dir", lock_dir) from exc
            try:
                fcntl.flock(handle, fcntl.LOCK_EX)
            except BaseException:
                handle.close()
                raise
            held.handle = handle
        held.depth += 1
        try:
            yield
        finally:
            held.depth -= 1
            if held.depth == 0 and held.handle is not None:
                fcntl.flock(held.handle, fcntl.LOCK_UN)
                held.handle.close()
                held.handle = None


def is_nonce_race(exc: BaseException) -> bool:
    """True for the errors a node or the contract gives when a nonce was taken under our feet."""
    if getattr(exc, "error_name", None) == "InvalidAccountNonce":
        return True
    text = str(exc).lower()
    return any(marker in text for marker in NONCE_RACE_MARKERS)


def publish_with_fresh_nonce(
    client: "RegistryClient", draft: "Release", deadline: int, signer: "LocalAccount", sender: "LocalAccount"
) -> tuple["Release", bytes, "ReleaseRecord"]:
    """Reads the publisher's release nonce, signs and publishes, holding the publisher's lock from
    the read until the transaction is mined; retries with a fresh nonce if another writer the lock
    cannot see took it. Returns the signed release, its signature and the record on chain."""
    from registry.chain.tx import guard_for

    guard = guard_for(client.rpc_url)
    for attempt in range(1, NONCE_RETRIES + 1):
        with guard.account_lock(signer.address) if guard is not None else _nothing():
            release = dataclasses.replace(draft, nonce=client.next_nonce(signer.address), deadline=deadline)
            signature = client.sign(release, signer)
            try:
                return release, signature, client.publish(release, signature, signer.address, sender)
            except Exception as exc:
                if attempt < NONCE_RETRIES and getattr(exc, "error_name", None) == "InvalidAccountNonce":
                    continue
                raise
    raise AssertionError("unreachable")  # pragma: no cover


@contextmanager
def _nothing() -> Iterator[None]:
    yield



class KeyLockGuard:
    """The guard for a chain the registry does not run (testnet, L2, a foreign anvil): it only
    serialises each key's nonces within the data dir; the chain's durability is its own."""

    def __init__(self, lock_dir: Path) -> None:
        self.lock_dir = lock_dir

    def account_lock(self, address: str) -> "ContextManager[None]":
        return account_lock(self.lock_dir, address)

    def after_mined(self, receipt: Any, raw: bytes) -> None:
        return None

    def interrupted(self, phase: str, tx_hash: str | None, cause: BaseException | None) -> "RegistryError":
        from registry.chain.tx import PHASE_TEXT, TransactionInterrupted

        what = PHASE_TEXT[phase].format(tx=tx_hash)
        return TransactionInterrupted(f"the RPC node stopped answering {what} ({cause})", phase, tx_hash,
                                      chain_died=False)
