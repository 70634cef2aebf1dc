"""Sending a contract transaction: build, sign locally, send, wait for receipt and confirmations.

Keys never leave the process (no ``eth_sendTransaction`` on an unlocked node), so the same code
works against anvil, a testnet or an L2. A revert is decoded to the contract's named error either
at gas estimation (the usual case) or, if the transaction was mined and failed, by replaying it.
"""

from __future__ import annotations

import time
from typing import Any, Callable

from eth_account.signers.local import LocalAccount
from web3 import Web3
from web3.exceptions import ContractLogicError, TimeExhausted, Web3RPCError
from web3.types import TxReceipt

from registry.chain.errors import decode_revert
from registry.chain.rpc import with_retries
from registry.errors import ChainError

RECEIPT_TIMEOUT_S = 120.0
POLL_S = 0.2


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
    connection never produces a second transaction.
    """
    rpc_url = str(getattr(w3.provider, "endpoint_uri", "the RPC node"))

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

    try:
        tx = with_retries(prepare, rpc_url, retries)
    except ChainError as exc:
        hinted = _funds_hint(exc, account, tx_chain=None, w3=w3)
        if hinted is exc:
            raise
        raise hinted from exc
    signed = account.sign_transaction(tx)

    def send() -> bytes:
        try:
            return bytes(w3.eth.send_raw_transaction(signed.raw_transaction))
        except ContractLogicError as exc:
            raise revert_from(exc) from exc
        except Web3RPCError as exc:
            if "already known" in str(exc).lower():  # an earlier attempt got through
                return bytes(signed.hash)
            raise revert_from(exc) from exc

    try:
        tx_hash = with_retries(send, rpc_url, retries)
    except ChainError as exc:
        hinted = _funds_hint(exc, account, tx_chain=tx.get("chainId"), w3=w3)
        if hinted is exc:
            raise
        raise hinted from exc

    def receipt_of() -> TxReceipt:
        try:
            return w3.eth.wait_for_transaction_receipt(tx_hash, timeout=receipt_timeout_s, poll_latency=POLL_S)
        except TimeExhausted as exc:
            raise ChainError(f"transaction 0x{tx_hash.hex()} not mined within {receipt_timeout_s:.0f} s") from exc

    receipt = with_retries(receipt_of, rpc_url, retries)
    if receipt["status"] != 1:
        raise _replay_failure(w3, tx, receipt)
    with_retries(lambda: wait_confirmations(w3, receipt["blockNumber"], confirmations, receipt_timeout_s), rpc_url,
                 retries)
    return receipt


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
