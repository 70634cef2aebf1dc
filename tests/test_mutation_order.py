"""The mutation harness's test order: cheapest first under a mutant, untouched otherwise."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from _mutation_order import order_for_mutant


@dataclass
class _Item:
    nodeid: str
    fixturenames: list[str] = field(default_factory=list)


def _items() -> list[_Item]:
    return [
        _Item("tests/t.py::slow_chain", ["anvil", "deployed"]),
        _Item("tests/t.py::slow"),
        _Item("tests/t.py::fast_chain", ["anvil"]),
        _Item("tests/t.py::fast"),
        _Item("tests/t.py::unmeasured"),
    ]


@pytest.fixture
def stats_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    durations = {"tests/t.py::slow_chain": 2.0, "tests/t.py::slow": 1.0, "tests/t.py::fast_chain": 0.1, "tests/t.py::fast": 0.01}
    (tmp_path / "mutmut-stats.json").write_text(json.dumps({"duration_by_test": durations}))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_a_mutant_runs_tests_without_a_chain_first_then_by_measured_time(stats_dir, monkeypatch):
    monkeypatch.setenv("MUTANT_UNDER_TEST", "registry.policy.x__int__mutmut_3")
    items = _items()
    order_for_mutant(items)
    assert [i.nodeid.split("::")[1] for i in items] == ["unmeasured", "fast", "slow", "fast_chain", "slow_chain"]


@pytest.mark.parametrize("mutant", [None, "", "stats", "fail"])
def test_ordinary_stats_and_forced_fail_runs_keep_pytest_order(stats_dir, monkeypatch, mutant):
    if mutant is None:
        monkeypatch.delenv("MUTANT_UNDER_TEST", raising=False)
    else:
        monkeypatch.setenv("MUTANT_UNDER_TEST", mutant)
    items = _items()
    order_for_mutant(items)
    assert [i.nodeid for i in items] == [i.nodeid for i in _items()]


@pytest.mark.parametrize("stats", [None, "not json", "[]", '{"duration_by_test": {"tests/t.py::fast": "x"}}'])
def test_missing_or_damaged_stats_still_put_chain_tests_last(tmp_path, monkeypatch, stats):
    if stats is not None:
        (tmp_path / "mutmut-stats.json").write_text(stats)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MUTANT_UNDER_TEST", "registry.policy.x__int__mutmut_3")
    items = _items()
    order_for_mutant(items)
    assert [i.nodeid.split("::")[1] for i in items] == ["slow", "fast", "unmeasured", "slow_chain", "fast_chain"]
