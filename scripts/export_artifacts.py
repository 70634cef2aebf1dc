"""Copies ABI + bytecode of the deployable contracts from Hardhat's build into the Python package.

The package ships these files so that a device or CI can deploy and talk to the contracts without
Node. ``tests/test_artifacts.py`` fails when they drift from a fresh compile; run ``make artifacts``
after changing a contract.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BUILD = ROOT / "build" / "artifacts" / "contracts"
OUT = ROOT / "registry" / "chain" / "artifacts"
CONTRACTS = ("ModelRegistry", "PredictionFeed")


def exported(name: str) -> dict[str, object] | None:
    """The committed form of one contract's artifact, or None if it is not compiled."""
    path = BUILD / f"{name}.sol" / f"{name}.json"
    if not path.exists():
        return None
    art = json.loads(path.read_text())
    return {
        "contractName": art["contractName"],
        "sourceName": art["sourceName"],
        "abi": art["abi"],
        "bytecode": art["bytecode"],
        "deployedBytecode": art["deployedBytecode"],
    }


def main() -> int:
    OUT.mkdir(parents=True, exist_ok=True)
    for name in CONTRACTS:
        data = exported(name)
        if data is None:
            print(f"skip {name}: not compiled", file=sys.stderr)
            continue
        (OUT / f"{name}.json").write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
        print(f"wrote {OUT.relative_to(ROOT)}/{name}.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
