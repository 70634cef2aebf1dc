"""Under mutmut, run a mutant's tests cheapest first, so a killed mutant costs its quickest failing test.

mutmut 3 runs each mutant with ``pytest -x`` over the tests that call the mutated function, but it
passes them as a set, so their order is arbitrary: a mutant that the first fast unit test would kill
often pays for an anvil start and a deployment first. The mutation harness (``scripts/mutation.py``)
is the only caller that sets ``MUTANT_UNDER_TEST`` to a mutant's name; ordinary runs are untouched.

The cost estimate is mutmut's own: the call time each test took in its stats pass
(``mutmut-stats.json`` in the mutants directory, the working directory of the run), with every test
that needs the session's anvil after every test that does not (its start is setup time, which those
stats do not count). Order only changes how soon a failure is found, never which tests run.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

STATS_FILE = Path("mutmut-stats.json")
CHAIN_FIXTURE = "anvil"


def _durations() -> dict[str, float]:
    try:
        stats = json.loads(STATS_FILE.read_text())
        return {str(k): float(v) for k, v in stats["duration_by_test"].items()}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return {}


def order_for_mutant(items: list[Any]) -> None:
    """Sort ``items`` in place cheapest first when pytest runs a mutant; otherwise leave them."""
    if "__mutmut_" not in os.environ.get("MUTANT_UNDER_TEST", ""):
        return
    durations = _durations()
    items.sort(key=lambda item: (CHAIN_FIXTURE in item.fixturenames, durations.get(item.nodeid, 0.0)))
