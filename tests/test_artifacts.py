"""The committed contract artifacts (registry/chain/artifacts/*.json) are exactly what the sources build to.

The Python package deploys and talks to the contracts from these committed files, so a contract
edit that is not followed by ``make artifacts`` would ship stale bytecode or a stale ABI without
any other test noticing. Two checks:

* fast: against Hardhat's build in build/artifacts (``make test`` compiles before pytest), used
  only when that build demonstrably comes from the sources on disk (every source in its
  build-info equals the file on disk);
* authoritative (slow, ~20 s): a fresh compile with the solcjs in node_modules straight from the
  files on disk, imports resolved the way Hardhat resolves them, settings read from Hardhat's
  resolved config. solc's output, metadata hash included, is a pure function of the sources and
  settings: a fresh compile of only a contract's dependency set gives the same bytes as Hardhat's
  whole-project job, which is what makes an exact comparison meaningful.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
COMMITTED = ROOT / "registry" / "chain" / "artifacts"
BUILD = ROOT / "build" / "artifacts"
FIELDS = ("contractName", "sourceName", "abi", "bytecode", "deployedBytecode")

# Compiles the given entry sources with the solcjs Hardhat uses and prints solc's JSON output.
# Imports are read from disk: "@scope/..." from node_modules, everything else from the repo root.
FRESH_COMPILE_JS = r"""
const fs = require("fs");
const path = require("path");
const root = process.argv[2];
const entries = JSON.parse(process.argv[3]);
const hre = require(path.join(root, "node_modules", "hardhat"));
const solc = require(path.join(root, "node_modules", "solc"));
const compilers = hre.config.solidity.compilers;
if (compilers.length !== 1) throw new Error("expected exactly one solidity compiler in hardhat.config.js");
const settings = JSON.parse(JSON.stringify(compilers[0].settings));
settings.outputSelection = {};
for (const e of entries) settings.outputSelection[e.source] = { [e.name]: ["abi", "evm.bytecode.object", "evm.deployedBytecode.object"] };
const read = (p) => fs.readFileSync(p.startsWith("@") ? path.join(root, "node_modules", p) : path.join(root, p), "utf8");
const sources = {};
for (const e of entries) sources[e.source] = { content: read(e.source) };
const findImports = (p) => { try { return { contents: read(p) }; } catch (err) { return { error: String(err) }; } };
process.stdout.write(JSON.stringify({ version: solc.version(), configVersion: compilers[0].version,
  output: JSON.parse(solc.compile(JSON.stringify({ language: "Solidity", sources, settings }), { import: findImports })) }));
"""


def _export_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("export_artifacts", ROOT / "scripts" / "export_artifacts.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


EXPORT = _export_script()
CONTRACTS: tuple[str, ...] = tuple(EXPORT.CONTRACTS)
PRESENT = [n for n in CONTRACTS if (ROOT / "contracts" / f"{n}.sol").exists() or (COMMITTED / f"{n}.json").exists()]


def _committed(name: str) -> dict[str, Any]:
    return json.loads((COMMITTED / f"{name}.json").read_text())


def _strip_metadata(code: str) -> str:
    """Runtime/creation code without solc's trailing CBOR metadata (its length is the last 2 bytes)."""
    raw = bytes.fromhex(code.removeprefix("0x"))
    if len(raw) < 2:
        return raw.hex()
    n = int.from_bytes(raw[-2:], "big")
    return raw[: -(n + 2)].hex() if n + 2 <= len(raw) else raw.hex()


def _differences(name: str, committed: dict[str, Any], fresh: dict[str, Any]) -> list[str]:
    problems = []
    for field in FIELDS:
        if committed.get(field) == fresh.get(field):
            continue
        if field in ("bytecode", "deployedBytecode") and _strip_metadata(committed[field]) == _strip_metadata(fresh[field]):
            problems.append(f"{name}.{field}: only the metadata hash differs (a comment, NatSpec or an import changed)")
        else:
            problems.append(f"{name}.{field} differs from the build")
    return problems


def test_the_registry_contract_is_covered() -> None:
    assert "ModelRegistry" in PRESENT, "ModelRegistry must have a source and a committed artifact"


@pytest.mark.parametrize("name", PRESENT)
def test_every_source_has_a_committed_artifact_and_back(name: str) -> None:
    source = ROOT / "contracts" / f"{name}.sol"
    artifact = COMMITTED / f"{name}.json"
    assert source.exists(), f"{artifact.relative_to(ROOT)} is committed but contracts/{name}.sol is gone"
    assert artifact.exists(), f"contracts/{name}.sol has no committed artifact: run `make artifacts` and commit it"


@pytest.mark.parametrize("name", PRESENT)
def test_committed_artifact_is_in_export_format(name: str) -> None:
    """Only the fields the package needs, in the stable layout export_artifacts.py writes (so a
    rebuild with no contract change gives no diff)."""
    path = COMMITTED / f"{name}.json"
    data = json.loads(path.read_text())
    assert sorted(data) == sorted(FIELDS)
    assert data["contractName"] == name
    assert data["sourceName"] == f"contracts/{name}.sol"
    for field in ("bytecode", "deployedBytecode"):
        code = data[field]
        assert code.startswith("0x") and len(code) > 2 and len(code) % 2 == 0
        bytes.fromhex(code[2:])
    assert path.read_text() == json.dumps(data, indent=1, sort_keys=True) + "\n"


def _build_is_current(name: str) -> tuple[dict[str, Any] | None, str]:
    """Hardhat's exported artifact for `name` if build/ comes from the sources on disk, else a reason."""
    exported = EXPORT.exported(name)
    dbg = BUILD / "contracts" / f"{name}.sol" / f"{name}.dbg.json"
    if exported is None or not dbg.exists():
        return None, f"{name} is not in build/artifacts (run `npx hardhat compile`)"
    build_info = json.loads((dbg.parent / json.loads(dbg.read_text())["buildInfo"]).resolve().read_text())
    for source, entry in build_info["input"]["sources"].items():
        disk = ROOT / "node_modules" / source if source.startswith("@") else ROOT / source
        if not disk.exists() or disk.read_text() != entry["content"]:
            return None, f"build/artifacts is stale for {source}"
    return exported, ""


@pytest.mark.parametrize("name", PRESENT)
def test_committed_artifact_matches_hardhat_build(name: str) -> None:
    exported, why = _build_is_current(name)
    if exported is None:
        pytest.skip(why + "; the fresh solcjs test still checks the committed artifact")
    problems = _differences(name, _committed(name), exported)
    assert not problems, "; ".join(problems) + ": run `make artifacts` and commit registry/chain/artifacts/"


@pytest.mark.slow
def test_fresh_solcjs_compile_matches_committed_artifacts(tmp_path: Path) -> None:
    node = shutil.which("node")
    assert node is not None, "node is needed to compile the contracts"
    script = tmp_path / "fresh_compile.js"
    script.write_text(FRESH_COMPILE_JS)
    names = [n for n in PRESENT if (COMMITTED / f"{n}.json").exists() and (ROOT / "contracts" / f"{n}.sol").exists()]
    entries = [{"source": f"contracts/{n}.sol", "name": n} for n in names]
    run = subprocess.run(
        [node, str(script), str(ROOT), json.dumps(entries)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    result = json.loads(run.stdout)
    assert result["version"].startswith(result["configVersion"] + "+"), (result["version"], result["configVersion"])
    output = result["output"]
    errors = [e["formattedMessage"] for e in output.get("errors", []) if e["severity"] == "error"]
    assert not errors, "\n".join(errors)
    problems = []
    for n in names:
        built = output["contracts"][f"contracts/{n}.sol"][n]
        fresh = {
            "contractName": n,
            "sourceName": f"contracts/{n}.sol",
            "abi": built["abi"],
            "bytecode": "0x" + built["evm"]["bytecode"]["object"],
            "deployedBytecode": "0x" + built["evm"]["deployedBytecode"]["object"],
        }
        problems += _differences(n, _committed(n), fresh)
    assert not problems, "; ".join(problems) + ": run `make artifacts` and commit registry/chain/artifacts/"


def test_comparison_notices_a_changed_byte() -> None:
    """The checks above compare exactly: one flipped byte, in code or in the metadata, is caught."""
    art = _committed("ModelRegistry")
    code = art["deployedBytecode"]
    flipped_body = {**art, "deployedBytecode": code[:10] + ("0" if code[10] != "0" else "1") + code[11:]}
    assert _differences("ModelRegistry", art, flipped_body) == ["ModelRegistry.deployedBytecode differs from the build"]
    flipped_meta = {**art, "deployedBytecode": code[:-20] + ("0" if code[-20] != "0" else "1") + code[-19:]}
    assert "only the metadata hash differs" in _differences("ModelRegistry", art, flipped_meta)[0]
    fewer = {**art, "abi": art["abi"][:-1]}
    assert _differences("ModelRegistry", art, fewer) == ["ModelRegistry.abi differs from the build"]
