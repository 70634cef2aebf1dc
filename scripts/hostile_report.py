"""Run the hostile-input suite and print the counts issue 10 asks for.

    .venv/bin/python scripts/hostile_report.py              # every parser and command
    .venv/bin/python scripts/hostile_report.py --generated 200 --no-commands
    .venv/bin/python scripts/hostile_report.py --json

Parsers (tests/hostile_targets.py) get their family's hand-made attacks, their own cases and
``--generated`` hypothesis inputs each, in a worker subprocess so a segfault or a hang is counted
against the input that caused it. Commands (tests/hostile_commands.py) run the real CLI as a
subprocess against special files, hostile content and a hostile RPC node. The last line is the
summary: inputs tried, tracebacks, segfaults, hangs, wrong accepts (target: zero of each). Every bug
is listed with its target, case and detail. Exit status 1 when any bug was found.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--generated", type=int, default=100, help="hypothesis inputs per parser (default 100)")
    parser.add_argument("--no-commands", action="store_true", help="parsers only (commands take minutes)")
    parser.add_argument("--only", action="append", default=[], help="run only targets whose name contains this")
    parser.add_argument("--json", action="store_true", help="print the counts as JSON")
    args = parser.parse_args()

    import tests.hostile_targets  # noqa: F401 - registers the parsers
    from tests.hostile import BUGS, OUTCOMES, TARGETS, Result, cases_for, generated, run_target

    started = time.monotonic()
    rows: dict[str, Counter[str]] = {}
    bugs: list[Result] = []
    for name in sorted(TARGETS):
        if args.only and not any(part in name for part in args.only):
            continue
        cases = cases_for(TARGETS[name]) + generated(TARGETS[name], args.generated)
        counts: Counter[str] = Counter()
        for result in run_target(name, cases):
            counts[result.outcome] += 1
            if result.outcome in BUGS:
                bugs.append(result)
        rows[name] = counts
        if not args.json:
            print(_row(name, counts, OUTCOMES), flush=True)
    if not args.no_commands:
        from tests.hostile_commands import HostileRPC, command_cases, run_command

        rpc = HostileRPC()
        try:
            with tempfile.TemporaryDirectory(prefix="hostile-commands-") as work:
                by_group: dict[str, Counter[str]] = {}
                for case in command_cases(Path(work), rpc):
                    if args.only and not any(part in case.name for part in args.only):
                        continue
                    result = run_command(case, rpc)
                    by_group.setdefault(f"command: {case.group}", Counter())[result.outcome] += 1
                    if result.outcome in BUGS:
                        bugs.append(result)
                for group, counts in sorted(by_group.items()):
                    rows[group] = counts
                    if not args.json:
                        print(_row(group, counts, OUTCOMES), flush=True)
        finally:
            rpc.stop()
    total: Counter[str] = Counter()
    for counts in rows.values():
        total.update(counts)
    inputs = sum(total[o] for o in OUTCOMES)
    summary = {"inputs": inputs, "accepted": total["accepted"], "refused": total["refused"],
               "tracebacks": total["traceback"], "segfaults": total["segfault"], "hangs": total["hang"],
               "wrong_accepts": total["wrong-accept"], "seconds": round(time.monotonic() - started, 1)}
    if args.json:
        print(json.dumps({"summary": summary, "targets": {k: dict(v) for k, v in rows.items()},
                          "bugs": [vars(b) for b in bugs]}, indent=2, sort_keys=True))
    else:
        for bug in bugs:
            print(f"BUG {bug.outcome}: {bug.target} / {bug.case}: {bug.detail}")
        print(f"hostile inputs: {inputs} tried, {summary['tracebacks']} tracebacks, {summary['segfaults']} segfaults, "
              f"{summary['hangs']} hangs, {summary['wrong_accepts']} wrong accepts "
              f"({summary['refused']} refused, {summary['accepted']} accepted; {summary['seconds']} s)")
    return 1 if bugs else 0


def _row(name: str, counts: Counter[str], outcomes: tuple[str, ...]) -> str:
    cells = "  ".join(f"{o} {counts[o]:>4}" for o in outcomes)
    return f"{name:<34} {sum(counts[o] for o in outcomes):>5} inputs  {cells}"


if __name__ == "__main__":
    raise SystemExit(main())
