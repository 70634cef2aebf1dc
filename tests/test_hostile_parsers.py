"""The hostile-input suite over every registered parser (tests/hostile_targets.py).

Hand-made attacks run in a worker subprocess, so a segfault or a hang is seen and pinned to its
input; generated inputs (hypothesis) run in process. Zero tracebacks, segfaults, hangs and wrong
accepts is the bar (issue 10); ``scripts/hostile_report.py`` prints the counts.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings

import tests.hostile_targets  # noqa: F401 - registers the targets
from tests.hostile import BUGS, FAMILY_STRATEGIES, TARGETS, cases_for, classify, run_target, Case


@pytest.mark.parametrize("name", sorted(TARGETS))
def test_hand_made_attacks_end_in_a_clean_refusal(name: str) -> None:
    results = list(run_target(name, cases_for(TARGETS[name])))
    bugs = [(r.case, r.outcome, r.detail) for r in results if r.outcome in BUGS]
    assert not bugs, bugs
    assert results


@pytest.mark.parametrize("name", sorted(TARGETS))
def test_generated_inputs_never_escape(name: str) -> None:
    t = TARGETS[name]
    strategy = t.strategy() if t.strategy is not None else FAMILY_STRATEGIES[t.family]()

    @settings(max_examples=60, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(strategy)
    def run(data: bytes) -> None:
        outcome, detail = classify(t, Case("generated", data, must_reject=None))
        assert outcome not in BUGS, (outcome, detail, data[:200])

    run()


def test_the_harness_sees_segfaults_hangs_and_bugs(monkeypatch: pytest.MonkeyPatch) -> None:
    """The counts mean something only if a crash, a hang and a bug are observed as such."""
    import importlib

    import tests.hostile_targets as targets
    from tests.hostile import run_target

    monkeypatch.setenv("REGISTRY_HOSTILE_SELFTEST", "1")
    importlib.reload(targets)
    cases = [Case("segfault", b"segfault"), Case("fine", b"fine", must_reject=None), Case("hang", b"hang"),
             Case("bug", b"bug"), Case("accepted but hostile", b"x")]
    outcomes = [r.outcome for r in run_target("harness self-test", cases)]
    assert outcomes == ["segfault", "accepted", "hang", "traceback", "wrong-accept"]
