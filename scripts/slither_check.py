"""`make test`'s Slither gate: no finding above informational that the triage file does not explain.

Runs ``slither . --hardhat-ignore-compile`` (PyPI slither-analyzer in ``.venv-slither``, see
requirements-slither.txt) over Hardhat's build of contracts/, with OpenZeppelin (node_modules) and
the test mocks (contracts/test) filtered out, and compares its findings of impact Low, Medium and
High with ``contracts/slither-triage.txt`` (one ``DETECTOR Contract.function: why`` per line).
Exit 1 lists every unexplained finding and every triage line that matches nothing (a stale excuse
must be deleted, not kept); exit 0 prints one summary line.

Hardhat writes one build-info per compile job, and an incremental compile leaves older jobs' copies
of a source beside the new ones, which Slither reads as conflicting sources; when there is more
than one build-info the contracts are recompiled in one job first.
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

ROOT = Path(__file__).resolve().parent.parent
SLITHER = ROOT / ".venv-slither" / "bin" / "slither"
TRIAGE = ROOT / "contracts" / "slither-triage.txt"
BUILD_INFO = ROOT / "build" / "artifacts" / "build-info"
FILTER_PATHS = "node_modules|contracts/test"
GATED_IMPACTS = frozenset({"Low", "Medium", "High"})


@dataclass(frozen=True)
class Finding:
    check: str
    impact: str
    where: str  # Contract.function (or Contract.variable / the element's name)
    description: str

    @property
    def key(self) -> str:
        return f"{self.check} {self.where}"


def findings(report: dict[str, Any]) -> list[Finding]:
    """The gated findings of a ``slither --json`` report."""
    if not report.get("success", False):
        raise RuntimeError(f"slither failed: {report.get('error')}")
    out = []
    for result in report.get("results", {}).get("detectors", []):
        if result.get("impact") not in GATED_IMPACTS:
            continue
        out.append(Finding(result["check"], result["impact"], _where(result.get("elements", [])),
                           " ".join(str(result.get("description", "")).split())))
    return out


def _where(elements: list[dict[str, Any]]) -> str:
    if not elements:
        return "?"
    element = elements[0]
    fields = element.get("type_specific_fields", {})
    parent = fields.get("parent", {})
    if element.get("type") == "function":
        return f"{parent.get('name', '?')}.{element.get('name', '?')}"
    # A variable or a node: name it by its function and contract.
    owner = parent.get("type_specific_fields", {}).get("parent", {}).get("name")
    scope = parent.get("name", "?")
    return f"{owner}.{scope}" if owner else f"{scope}.{element.get('name', '?')}"


def triage(lines: Iterable[str]) -> dict[str, str]:
    """``DETECTOR Contract.function: why`` lines (comments and blanks skipped) -> key -> why."""
    entries: dict[str, str] = {}
    for number, raw in enumerate(lines, 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, why = line.partition(":")
        if not sep or not why.strip() or len(key.split()) != 2:
            raise ValueError(f"{TRIAGE.name}:{number}: expected 'DETECTOR Contract.function: why', got {line!r}")
        entries[key.strip()] = why.strip()
    return entries


def compare(found: list[Finding], accepted: dict[str, str]) -> tuple[list[Finding], list[str]]:
    """(findings nobody explained, triage keys that match no finding)."""
    keys = {f.key for f in found}
    return [f for f in found if f.key not in accepted], sorted(k for k in accepted if k not in keys)


def run_slither() -> dict[str, Any]:
    if len(list(BUILD_INFO.glob("*.json"))) != 1:
        subprocess.run(["npx", "hardhat", "compile", "--force", "--quiet"], cwd=ROOT, check=True)
    result = subprocess.run(
        [str(SLITHER), ".", "--hardhat-ignore-compile", "--hardhat-artifacts-directory", "build/artifacts",
         "--hardhat-cache-directory", "build/hardhat-cache", "--filter-paths", FILTER_PATHS,
         "--exclude-informational", "--exclude-optimization", "--json", "-"],
        cwd=ROOT, capture_output=True, text=True, timeout=900, check=False,
    )
    try:
        return dict(json.loads(result.stdout))
    except json.JSONDecodeError:
        raise RuntimeError(f"slither printed no JSON (exit {result.returncode}): {result.stderr[-2000:]}") from None


def main() -> int:
    if not SLITHER.exists():
        print(f"slither not installed at {SLITHER}: run `make test` (it creates .venv-slither)", file=sys.stderr)
        return 2
    found = findings(run_slither())
    unexplained, stale = compare(found, triage(TRIAGE.read_text(encoding="utf-8").splitlines()))
    for finding in unexplained:
        print(f"slither: unexplained {finding.impact} finding {finding.key}\n  {finding.description[:600]}",
              file=sys.stderr)
    for key in stale:
        print(f"slither: {TRIAGE.name} explains {key}, which slither no longer reports: delete the line",
              file=sys.stderr)
    if unexplained or stale:
        print(f"slither: {len(unexplained)} unexplained finding(s), {len(stale)} stale triage line(s) "
              f"(add a line 'DETECTOR Contract.function: why' to {TRIAGE.relative_to(ROOT)} only if it is safe)",
              file=sys.stderr)
        return 1
    print(f"slither: {len(found)} finding(s) above informational, all explained in {TRIAGE.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
