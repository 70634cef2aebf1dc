"""Turns a revert's raw data into the contract's custom error, by name and arguments.

web3 reports a custom error as an opaque selector plus ABI-encoded arguments; users need
``DuplicateVersion(0x…)``. Selectors are computed from the ABI at run time, so a new error in
the contract is decoded without code changes here.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from registry.errors import ChainError

# eth_abi, eth_utils and the artifact are imported where they are used: the lean read path
# (registry.chain.lean) raises ContractRevert without paying for them.

_ERROR_STRING = bytes.fromhex("08c379a0")  # Error(string)
_PANIC = bytes.fromhex("4e487b71")  # Panic(uint256)


class ContractRevert(ChainError):
    """A decoded revert. ``error_name`` is the custom error (or ``Error``/``Panic``), ``args`` its values."""

    def __init__(self, contract: str, error_name: str, args: tuple[Any, ...] = (), hint: str | None = None) -> None:
        self.contract = contract
        self.error_name = error_name
        self.error_args = args
        rendered = ", ".join(_render(a) for a in args)
        message = f"{contract} reverted: {error_name}({rendered})"
        super().__init__(f"{message}: {hint}" if hint else message)

    def with_hint(self, hint: str) -> "ContractRevert":
        """The same revert with a human explanation appended (e.g. which NAME@VERSION was missing)."""
        return ContractRevert(self.contract, self.error_name, self.error_args, hint)


def _render(value: Any) -> str:
    if isinstance(value, (bytes, bytearray)):
        return "0x" + bytes(value).hex()
    if isinstance(value, str):
        return value if value.startswith("0x") and len(value) == 42 else repr(value)
    return str(value)


def _type_string(param: dict[str, Any]) -> str:
    if param["type"].startswith("tuple"):
        inner = ",".join(_type_string(c) for c in param["components"])
        return f"({inner}){param['type'][5:]}"
    return str(param["type"])


@lru_cache(maxsize=4)
def error_selectors(contract: str = "ModelRegistry") -> dict[bytes, tuple[str, tuple[str, ...]]]:
    """selector -> (error name, argument types), from the ABI's ``error`` entries."""
    from eth_utils import keccak

    from registry.chain.artifacts import load_artifact

    table: dict[bytes, tuple[str, tuple[str, ...]]] = {}
    for entry in load_artifact(contract).abi:
        if entry.get("type") != "error":
            continue
        types = tuple(_type_string(p) for p in entry.get("inputs", []))
        signature = f"{entry['name']}({','.join(types)})"
        table[keccak(text=signature)[:4]] = (entry["name"], types)
    return table


def _as_bytes(data: Any) -> bytes | None:
    if isinstance(data, dict):
        data = data.get("data")
    if isinstance(data, (bytes, bytearray)):
        return bytes(data)
    if isinstance(data, str):
        text = data[2:] if data.startswith("0x") else data
        try:
            return bytes.fromhex(text)
        except ValueError:
            return None
    return None


def decode_revert(data: Any, contract: str = "ModelRegistry", message: str | None = None) -> ChainError:
    """The ChainError for this revert data (hex string, bytes, or a JSON-RPC error dict)."""
    from eth_abi import decode

    raw = _as_bytes(data)
    if raw is None or len(raw) < 4:
        detail = message or "no reason given"
        return ContractRevert(contract, "Revert", (detail,)) if raw is not None else ChainError(
            f"{contract} reverted: {detail}"
        )
    selector, payload = raw[:4], raw[4:]
    try:
        if selector == _ERROR_STRING:
            return ContractRevert(contract, "Error", tuple(decode(["string"], payload)))
        if selector == _PANIC:
            return ContractRevert(contract, "Panic", tuple(decode(["uint256"], payload)))
        known = error_selectors(contract).get(selector)
        if known is not None:
            name, types = known
            return ContractRevert(contract, name, tuple(decode(list(types), payload)))
    except Exception:  # malformed payload: fall through to the raw selector
        pass
    return ContractRevert(contract, "UnknownError", ("0x" + raw.hex(),))
