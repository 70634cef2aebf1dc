"""Trusting a transaction only once it is buried: wait for confirmations, then look again.

A receipt says a transaction was mined in some block; a reorganisation can still drop that block.
So after the wait the receipt is fetched again: gone means the transaction is not on chain (the
caller is told, never left believing a release was anchored), and a receipt in another block (the
transaction was re-mined) restarts the count from that block. On the embedded chain, which mines
on demand and never reorganises, confirmations are 0 and this returns at once.
"""

from __future__ import annotations

from typing import Any

from web3 import Web3

from registry.chain.rpc import with_retries
from registry.chain.tx import RECEIPT_TIMEOUT_S, wait_confirmations
from registry.errors import ChainError

# How long to wait, per confirmation, on top of the receipt timeout (12 s blocks, with slack).
CONFIRMATION_WAIT_S = 30.0
# How often a transaction that a reorganisation moved to another block is followed again.
MAX_REORG_FOLLOWS = 3


def confirm_receipt(w3: Web3, receipt: Any, confirmations: int, rpc_url: str, retries: int = 3) -> Any:
    """The transaction's receipt once ``confirmations`` blocks sit on it, as fetched after the wait."""
    if confirmations <= 0:
        return receipt
    tx_hash = bytes(receipt["transactionHash"])
    timeout = RECEIPT_TIMEOUT_S + confirmations * CONFIRMATION_WAIT_S
    for _ in range(MAX_REORG_FOLLOWS):
        block = int(receipt["blockNumber"])
        with_retries(lambda: wait_confirmations(w3, block, confirmations, timeout), rpc_url, retries)
        again = with_retries(lambda: _receipt_or_none(w3, tx_hash), rpc_url, retries)
        if again is None:
            raise ChainError(f"transaction 0x{tx_hash.hex()} was dropped by a chain reorganisation after "
                             f"{confirmations} confirmations: it is not on chain; run the command again")
        if int(again["status"]) != 1:
            raise ChainError(f"transaction 0x{tx_hash.hex()} failed when a reorganisation re-mined it")
        if bytes(again["blockHash"]) == bytes(receipt["blockHash"]):
            return again
        receipt = again  # re-mined in another block: count confirmations from there
    raise ChainError(f"transaction 0x{tx_hash.hex()} kept moving between blocks; not confirmed")


def _receipt_or_none(w3: Web3, tx_hash: bytes) -> Any:
    from web3.exceptions import TransactionNotFound

    try:
        return w3.eth.get_transaction_receipt(tx_hash)
    except TransactionNotFound:
        return None
