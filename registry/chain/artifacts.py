"""The compiled ModelRegistry (ABI + bytecode) shipped with the package.

Read from ``artifacts/ModelRegistry.json`` at run time, never copied into code, so a contract
rebuild (``make artifacts``) reaches Python without edits.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any


@dataclass(frozen=True)
class Artifact:
    abi: list[dict[str, Any]]
    bytecode: bytes
    deployed_bytecode: bytes

    @property
    def code_hash(self) -> str:
        """keccak256 of the runtime code: what an on-chain ``extcodehash`` of a deployment gives."""
        from registry.chain.lean import keccak

        return "0x" + keccak(self.deployed_bytecode).hex()


def _hex(text: str) -> bytes:
    return bytes.fromhex(text[2:] if text.startswith("0x") else text)


@lru_cache(maxsize=4)
def load_artifact(name: str = "ModelRegistry") -> Artifact:
    raw = json.loads(resources.files("registry.chain").joinpath("artifacts", f"{name}.json").read_text("utf-8"))
    return Artifact(abi=raw["abi"], bytecode=_hex(raw["bytecode"]), deployed_bytecode=_hex(raw["deployedBytecode"]))
