"""Sending a contract transaction: build, sign locally, send, wait for receipt and confirmations.

Keys never leave the process (no ``eth_sendTransaction`` on an unlocked node), so the same code
works against anvil, a testnet or an L2. A revert is decoded to the contract's named error either
at gas estimation (the usual case) or, if the transaction was mined and failed, by replaying it.

A ``TxGuard`` registered for an RPC URL (``register_guard``) takes part in every send to it: it
serialises the sending key's nonces (``account_lock``), makes a mined transaction durable before
``send_call`` returns (the local devnet journals it: ``after_mined``), and words the error when
the node goes away mid-transaction (``interrupted``), saying whether it may have landed.
"""

from __future__ import annotations

import time
from contextlib import nullcontext
from typing import Any, Callable, ContextManager, Protocol

from eth_account.signers.local import LocalAccount
from web3 import Web3
from web3.exceptions import ContractLogicError, TransactionNotFound, Web3RPCError
from web3.types import TxReceipt

from registry import faults
from registry.chain.errors import decode_revert
from registry.chain.rpc import with_retries
from registry.errors import ChainError, RegistryError, UnreachableError

RECEIPT_TIMEOUT_S = 120.0
POLL_S = 0.2
TX_NONCE_RETRIES = 5
# what a node says when the account nonce we read was used by another transaction meanwhile
_TX_NONCE_RACE = ("nonce too low", "replacement transaction underpriced", "nonce has already been used")

PHASE_TEXT = {
    "before-send": "before the transaction was sent: nothing changed on chain",
    "sent": "after transaction {tx} was sent: it may or may not have been mined",
    "mined-unsaved": "after transaction {tx} was mined but before the local chain saved it: "
                     "the restarted chain will not have it",
}


class TransactionInterrupted(UnreachableError):
    """The node went away in the middle of a transaction. ``phase`` says how far it got:
    ``before-send`` (nothing sent), ``sent`` (may have landed), ``mined-unsaved`` (mined on a local
    chain that died before saving it: lost with it)."""

    def __init__(self, message: str, phase: str, tx_hash: str | None, chain_died: bool) -> None:
        super().__init__(message)
        self.phase = phase
        self.tx_hash = tx_hash
        self.chain_died = chain_died

    @property
    def may_have_landed(self) -> bool:
        return self.phase == "sent"


class TxGuard(Protocol):
    """What a deployment adds around each transaction (see the module docstring)."""

    def account_lock(self, address: str) -> ContextManager[None]: ...

    def after_mined(self, receipt: TxReceipt, raw: bytes) -> None: ...

    def interrupted(self, phase: str, tx_hash: str | None, cause: BaseException) -> RegistryError: ...


_guards: dict[str, TxGuard] = {}


def _key(rpc_url: str) -> str:
    return rpc_url.rstrip("/").lower()


def register_guard(rpc_url: str, guard: TxGuard) -> None:
    """Every later ``send_call`` to ``rpc_url`` in this process goes through ``guard``."""
    _guards[_key(rpc_url)] = guard


def guard_for(rpc_url: str) -> TxGuard | None:
    return _guards.get(_key(rpc_url))


def interrupted_error(rpc_url: str, phase: str, tx_hash: str | None, cause: BaseException) -> RegistryError:
    """The error for a node lost mid-transaction (the guard's wording when one is registered)."""
    guard = guard_for(rpc_url)
    if guard is not None:
        return guard.interrupted(phase, tx_hash, cause)
    what = PHASE_TEXT[phase].format(tx=tx_hash or "?")
    return TransactionInterrupted(f"the RPC node at {rpc_url} stopped answering {what} ({cause})", phase, tx_hash,
                                  chain_died=False)


def revert_from(exc: Exception) -> ChainError:
    """The named ChainError for a web3 revert exception (ContractLogicError or a raw RPC error)."""
    if isinstance(exc, ContractLogicError):
        return decode_revert(exc.data, message=exc.message)
    if isinstance(exc, Web3RPCError):
        rpc = exc.rpc_response or {}
        error = rpc.get("error", {}) if isinstance(rpc, dict) else {}
        message = str(error.get("message") or exc)
        data = error.get("data")
        if data is None and "revert" not in message.lower():  # not a revert: funds, nonce, gas limits…
            return ChainError(f"the node refused the transaction: {message}")
        return decode_revert(data, message=message)
    return ChainError(f"transaction failed: {exc}")


def send_call(
    w3: Web3,
    account: LocalAccount,
    build: Callable[[dict[str, Any]], dict[str, Any]],
    confirmations: int = 0,
    receipt_timeout_s: float = RECEIPT_TIMEOUT_S,
    retries: int = 3,
) -> TxReceipt:
    """``build(params)`` returns the transaction dict (e.g. ``fn.build_transaction(params)``).

    Each step retries on its own: building (nonce, gas estimate) and polling for the receipt are
    read-only, and re-sending the same signed bytes is idempotent (same hash), so a flaky
    connection never produces a second transaction. The sender's nonce is read and used under
    the guard's account lock; a nonce taken meanwhile by a writer the lock cannot see is retried
    with a fresh one (after checking that our own transaction did not land). Returns once the
    receipt is in and, on the local devnet, the chain's state holding it is on disk.
    """
    rpc_url = str(getattr(w3.provider, "endpoint_uri", "the RPC node"))
    guard = guard_for(rpc_url)
    with guard.account_lock(account.address) if guard is not None else nullcontext():
        tx, tx_hash, raw = _sign_and_send(w3, account, build, rpc_url, retries)
        faults.point("tx.after-send")

        def receipt_of() -> TxReceipt:
            return wait_receipt(w3, tx_hash, receipt_timeout_s)

        try:
            receipt = with_retries(receipt_of, rpc_url, retries)
        except UnreachableError as exc:
            raise interrupted_error(rpc_url, "sent", "0x" + tx_hash.hex(), exc) from exc
        faults.point("tx.after-receipt")
        if guard is not None:  # a reverted transaction still used its nonce: it is saved too
            guard.after_mined(receipt, raw)
        faults.point("tx.after-save")
        if receipt["status"] != 1:
            raise _replay_failure(w3, tx, receipt)
        try:
            with_retries(lambda: wait_confirmations(w3, receipt["blockNumber"], confirmations, receipt_timeout_s),
                         rpc_url, retries)
        except UnreachableError as exc:
            raise interrupted_error(rpc_url, "sent", "0x" + tx_hash.hex(), exc) from exc
    return receipt


def _sign_and_send(
    w3: Web3, account: LocalAccount, build: Callable[[dict[str, Any]], dict[str, Any]], rpc_url: str, retries: int
) -> tuple[dict[str, Any], bytes, bytes]:
    """Builds, signs and sends; on a nonce race, retries with a fresh nonce. Returns (tx, hash, raw)."""

    def prepare() -> dict[str, Any]:
        params: dict[str, Any] = {
            "from": account.address,
            "nonce": w3.eth.get_transaction_count(account.address, "pending"),
            "chainId": w3.eth.chain_id,
        }
        try:
            return build(params)
        except (ContractLogicError, Web3RPCError) as exc:
            raise revert_from(exc) from exc

    for attempt in range(1, TX_NONCE_RETRIES + 1):
        try:
            tx = with_retries(prepare, rpc_url, retries)
        except UnreachableError as exc:
            raise interrupted_error(rpc_url, "before-send", None, exc) from exc
        except ChainError as exc:
            hinted = _hinted(exc, account, None, w3)
            if hinted is exc:
                raise
            raise hinted from exc
        signed = account.sign_transaction(tx)

        delivered: list[bool] = []  # per attempt: could the node have received it?

        def send() -> bytes:
            try:
                return bytes(w3.eth.send_raw_transaction(signed.raw_transaction))
            except ContractLogicError as exc:
                raise revert_from(exc) from exc
            except Web3RPCError as exc:
                if "already known" in str(exc).lower():  # an earlier attempt got through
                    return bytes(signed.hash)
                raise revert_from(exc) from exc
            except Exception as exc:
                delivered.append(not _refused(exc))
                raise

        faults.point("tx.before-send")
        raw = bytes(signed.raw_transaction)
        try:
            return tx, with_retries(send, rpc_url, retries), raw
        except UnreachableError as exc:
            phase = "sent" if any(delivered) else "before-send"  # refused every time: never sent
            raise interrupted_error(rpc_url, phase, "0x" + bytes(signed.hash).hex(), exc) from exc
        except ChainError as exc:
            if any(m in str(exc).lower() for m in _TX_NONCE_RACE) and attempt < TX_NONCE_RETRIES:
                if _landed(w3, bytes(signed.hash)):  # our own earlier attempt used the nonce
                    return tx, bytes(signed.hash), raw
                time.sleep(0.05 * attempt)
                continue
            hinted = _hinted(exc, account, tx.get("chainId"), w3)
            if hinted is exc:
                raise
            raise hinted from exc
    raise AssertionError("unreachable")  # pragma: no cover


def wait_receipt(w3: Web3, tx_hash: bytes, timeout_s: float = RECEIPT_TIMEOUT_S) -> TxReceipt:
    """Polls for the receipt, first every few milliseconds (an automining devnet answers at once),
    then backing off to POLL_S (a public chain takes seconds; no need to hammer its RPC)."""
    deadline = time.monotonic() + timeout_s
    delay = 0.005
    while True:
        try:
            return w3.eth.get_transaction_receipt(tx_hash)
        except TransactionNotFound:
            pass
        if time.monotonic() > deadline:
            raise ChainError(f"transaction 0x{tx_hash.hex()} not mined within {timeout_s:.0f} s")
        time.sleep(delay)
        delay = min(delay * 2, POLL_S)


def _refused(exc: BaseException) -> bool:
    """The connection was refused: the request never reached a node."""
    text = f"{exc!r} {exc}"
    return "Connection refused" in text or "NewConnectionError" in text or isinstance(exc, ConnectionRefusedError)


def _landed(w3: Web3, tx_hash: bytes) -> bool:
    try:
        return w3.eth.get_transaction(tx_hash) is not None
    except Exception:
        return False


def _hinted(exc: ChainError, account: LocalAccount, tx_chain: Any, w3: Web3) -> ChainError:
    hinted = _funds_hint(exc, account, tx_chain=tx_chain, w3=w3)
    if hinted is exc and any(m in str(exc).lower() for m in _TX_NONCE_RACE):
        return ChainError(f"another program keeps taking the transaction nonces of {account.address} "
                          f"({TX_NONCE_RETRIES} attempts): let it finish, then run the command again")
    return hinted


def _funds_hint(exc: ChainError, account: LocalAccount, tx_chain: Any, w3: Web3) -> ChainError:
    """'Insufficient funds' from the node, said in the user's terms; other errors unchanged."""
    if "insufficient funds" not in str(exc).lower():
        return exc
    chain = tx_chain if tx_chain is not None else w3.eth.chain_id
    return ChainError(f"{account.address} has too little ETH to pay for gas on chain {chain}")


def _replay_failure(w3: Web3, tx: dict[str, Any], receipt: TxReceipt) -> ChainError:
    call = {k: tx[k] for k in ("from", "to", "data", "value") if k in tx}
    try:
        w3.eth.call(call, block_identifier=receipt["blockNumber"] - 1)
    except (ContractLogicError, Web3RPCError) as exc:
        return revert_from(exc)
    except Exception:
        pass
    return ChainError(f"transaction 0x{bytes(receipt['transactionHash']).hex()} failed (out of gas?)")


def wait_confirmations(w3: Web3, block_number: int, confirmations: int, timeout_s: float = RECEIPT_TIMEOUT_S) -> None:
    """Returns once ``confirmations`` blocks sit on top of ``block_number``."""
    if confirmations <= 0:
        return
    target = block_number + confirmations
    deadline = time.monotonic() + timeout_s
    while w3.eth.block_number < target:
        if time.monotonic() > deadline:
            raise ChainError(f"block {block_number} did not reach {confirmations} confirmations within {timeout_s:.0f} s")
        time.sleep(POLL_S)


def deploy_registry(w3: Web3, account: LocalAccount, confirmations: int = 0) -> str:
    """Deploys a fresh ModelRegistry from the packaged artifact; returns its checksummed address."""
    from registry.chain.artifacts import load_artifact

    artifact = load_artifact()
    factory = w3.eth.contract(abi=artifact.abi, bytecode=artifact.bytecode)
    receipt = send_call(w3, account, lambda p: factory.constructor().build_transaction(p), confirmations)
    address = receipt["contractAddress"]
    if not address:
        raise ChainError("deployment receipt has no contract address")
    return Web3.to_checksum_address(address)
