"""The Slither gate in `make test` (scripts/slither_check.py): unexplained findings and stale excuses fail."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _gate() -> ModuleType:
    spec = importlib.util.spec_from_file_location("slither_check", ROOT / "scripts" / "slither_check.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve annotations through sys.modules
    spec.loader.exec_module(module)
    return module


GATE = _gate()


def _result(check: str, impact: str, contract: str, function: str) -> dict:
    return {"check": check, "impact": impact, "description": f"{contract}.{function} does something",
            "elements": [{"type": "function", "name": function,
                          "type_specific_fields": {"parent": {"type": "contract", "name": contract}}}]}


def _variable(check: str, contract: str, function: str, variable: str) -> dict:
    parent = {"type": "function", "name": function,
              "type_specific_fields": {"parent": {"type": "contract", "name": contract}}}
    return {"check": check, "impact": "Medium", "description": "x",
            "elements": [{"type": "variable", "name": variable, "type_specific_fields": {"parent": parent}}]}


REPORT = {"success": True, "error": None, "results": {"detectors": [
    _result("timestamp", "Low", "ModelRegistry", "publish"),
    _result("reentrancy-eth", "High", "PredictionFeed", "submit"),
    _variable("uninitialized-local", "ModelRegistry", "publish", "cardCodec"),
    _result("naming-convention", "Informational", "ModelRegistry", "x"),
]}}


def test_findings_keep_low_and_above_named_by_contract_and_function() -> None:
    keys = [f.key for f in GATE.findings(REPORT)]
    assert keys == ["timestamp ModelRegistry.publish", "reentrancy-eth PredictionFeed.submit",
                    "uninitialized-local ModelRegistry.publish"]


def test_unexplained_findings_and_stale_lines_are_reported() -> None:
    accepted = GATE.triage(["# comment", "", "timestamp ModelRegistry.publish: a deadline",
                            "timestamp Gone.away: no longer reported"])
    unexplained, stale = GATE.compare(GATE.findings(REPORT), accepted)
    assert [f.key for f in unexplained] == ["reentrancy-eth PredictionFeed.submit",
                                            "uninitialized-local ModelRegistry.publish"]
    assert stale == ["timestamp Gone.away"]


@pytest.mark.parametrize("line", ["timestamp ModelRegistry.publish", "timestamp: why", "timestamp A.b c: why",
                                  "timestamp A.b:   "])
def test_triage_lines_need_a_detector_a_place_and_a_reason(line: str) -> None:
    with pytest.raises(ValueError):
        GATE.triage([line])


def test_committed_triage_file_parses_and_explains_every_line() -> None:
    entries = GATE.triage(GATE.TRIAGE.read_text(encoding="utf-8").splitlines())
    assert entries and all(len(why) > 20 for why in entries.values())


def test_a_failed_slither_run_is_not_a_clean_report() -> None:
    with pytest.raises(RuntimeError, match="slither failed"):
        GATE.findings({"success": False, "error": "compilation failed"})
