"""``make mutation``: mutmut 3 over the trust core, one module at a time, against the tests that cover it.

Why one mutmut project per module: tests/mutation_map.toml names, for each module, the test files
that cover it, and mutmut's stats pass (which test calls which function) then runs only those files
once; each mutant runs only the tests among them that call its function, stopping at the first
failure, cheapest first (tests/_mutation_order.py: those without the session anvil, then by time). Each module keeps its cache in build/mutation/<module>/ (mutmut's own per-function hashes):
a re-run mutates only functions whose source changed. mutmut keeps a verdict when only the *tests*
change, so this script adds one rule: when a module's test files (or the shared fixtures) changed
since its last run, its surviving mutants are tested again. Killed verdicts stay (a test change that
un-kills a mutant would be a weakened test; ``--fresh`` starts from nothing).

Equivalent mutants (no input can tell them from the original) are listed in
tests/mutation_equivalent.txt, one per line: ``module | mutant id | mutated line | why``. An entry
whose mutated line no longer matches the mutant with that id is reported as stale and not counted.

The score is killed / (tried - equivalent); a timeout counts as killed (the tests noticed), a mutant
that no mapped test reaches ("no tests") counts as surviving. Prints a per-module table and the
surviving mutants with their diffs; also writes build/mutation/report.txt.

Run it through ``make mutation`` (its own venv, ``nice -n 19``); ``MUTATION_MODULES`` picks modules
(paths from the map, comma-separated; default or ``all``: every module in the map).
``MUTATION_REPORT_ONLY=1`` (``--report-only``) runs nothing and prints the table from the cache as it
stands, e.g. while a long module is still being re-tested in another process.
"""

from __future__ import annotations

import argparse
import ast
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MAP = ROOT / "tests" / "mutation_map.toml"
EQUIVALENT = ROOT / "tests" / "mutation_equivalent.txt"
WORK = ROOT / "build" / "mutation"
MUTMUT = Path(sys.executable).with_name("mutmut")
# Helpers every mapped test file may import: a change to one re-tests survivors too.
SHARED_TEST_FILES = ("tests/conftest.py", "tests/_*.py", "tests/hostile*.py")
KILLED = {"killed", "timeout"}


@dataclass
class ModuleResult:
    module: str
    statuses: dict[str, str] = field(default_factory=dict)
    equivalent: set[str] = field(default_factory=set)
    seconds: float = 0.0

    @property
    def tried(self) -> int:
        return sum(1 for s in self.statuses.values() if s not in ("skipped", "not checked"))

    @property
    def killed(self) -> int:
        return sum(1 for name, s in self.statuses.items() if s in KILLED and name not in self.equivalent)

    @property
    def survivors(self) -> list[str]:
        return sorted(name for name, s in self.statuses.items()
                      if s not in KILLED and s not in ("skipped", "not checked") and name not in self.equivalent)

    @property
    def score(self) -> float:
        counted = self.tried - len(self.equivalent)
        return 100.0 * self.killed / counted if counted else 100.0


def slug(module: str) -> str:
    return module.removesuffix(".py").replace("/", ".")


def load_map() -> tuple[dict[str, dict], dict]:
    with MAP.open("rb") as handle:
        data = tomllib.load(handle)
    return data["modules"], data.get("settings", {})


def pick_modules(mapping: dict[str, dict], wanted: str) -> list[str]:
    if not wanted or wanted == "all":
        return list(mapping)
    chosen = [w.strip() for w in wanted.split(",") if w.strip()]
    unknown = [w for w in chosen if w not in mapping]
    if unknown:
        sys.exit(f"mutation: not in {MAP.relative_to(ROOT)}: {', '.join(unknown)}")
    return chosen


def tests_fingerprint(tests: list[str]) -> str:
    digest = hashlib.sha256()
    files = {ROOT / t for t in tests}
    for pattern in SHARED_TEST_FILES:
        files.update(ROOT.glob(pattern))
    for path in sorted(files):
        digest.update(str(path.relative_to(ROOT)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def function_names(source: Path) -> str:
    """The module's functions and methods by qualified name, one per line (what mutmut mutates)."""
    names: list[str] = []

    def walk(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                names.append(prefix + child.name)
            elif isinstance(child, ast.ClassDef):
                walk(child, f"{prefix}{child.name}.")

    walk(ast.parse(source.read_text()), "")
    return "".join(f"{name}\n" for name in sorted(names))


def prepare(module: str, tests: list[str], settings: dict, fresh: bool) -> Path:
    """A mutmut project for one module: links to the package and tests, and its own setup.cfg."""
    work = WORK / slug(module)
    if fresh and work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True, exist_ok=True)
    for name in ("registry", "tests", "pyproject.toml"):
        _link(work / name, ROOT / name)
    from importlib.metadata import version

    # What decides which mutants exist and how they are numbered: a change drops the module's cache.
    core = (
        f"# written by scripts/mutation.py for mutmut {version('mutmut')}\n"
        "[mutmut]\n"
        "source_paths = registry\n"
        f"only_mutate = {module}\n"
        "do_not_mutate_patterns =\n" + "".join(f"    {p}\n" for p in settings.get("do_not_mutate_patterns", []))
    )
    # What only decides how they are tested: mutmut itself re-tests what such a change can affect
    # (every verdict for another test list, the timeouts for another timeout).
    config = core + (
        "pytest_add_cli_args_test_selection =\n" + "".join(f"    {t}\n" for t in tests)
        + "pytest_add_cli_args =\n    -p\n    no:cacheprovider\n    -p\n    no:xdist\n"
        # Test-file changes are handled here (survivors re-tested); git sees the whole repo.
        "use_git_change_detection = false\n"
        "on_dependency_change = ignore\n"
        # A mutant that loops forever is a kill; mutmut's default waits 30x the tests' time for it.
        f"timeout_multiplier = {settings.get('timeout_multiplier', 3.0)}\n"
    )
    cfg, core_file = work / "setup.cfg", work / "config.core"
    if not core_file.exists() or core_file.read_text() != core:
        # Mutant ids are numbered within a function: other patterns renumber them, so no cached
        # verdict can be trusted after such a change.
        shutil.rmtree(work / "mutants", ignore_errors=True)
        (work / "tests.sha256").unlink(missing_ok=True)
        core_file.write_text(core)
    if not cfg.exists() or cfg.read_text() != config:
        cfg.write_text(config)
    # mutmut learns which tests call which function only from the tests that ran in its stats pass,
    # and re-runs that pass only for changed tests: a function added or renamed since would be tried
    # against no test (or a stale few) and its mutants "survive". A new set of functions drops the
    # stats, so the next run collects them again from every mapped test.
    functions, functions_file = function_names(ROOT / module), work / "functions.txt"
    if not functions_file.exists() or functions_file.read_text() != functions:
        (work / "mutants" / "mutmut-stats.json").unlink(missing_ok=True)
        functions_file.write_text(functions)
    # Tests find node_modules (npm tools) and scripts/js (the reference CAR/UnixFS checks) beside the
    # package they import, which is mutants/registry.
    (work / "mutants").mkdir(exist_ok=True)
    for name in ("node_modules", "scripts"):
        _link(work / "mutants" / name, ROOT / name)
    return work


def _link(link: Path, target: Path) -> None:
    """``link`` pointing at ``target`` (a cache copied from another checkout would test that checkout)."""
    if link.is_symlink() and os.readlink(link) == str(target):
        return
    if link.is_symlink():
        link.unlink()
    link.symlink_to(target)


def mutmut(work: Path, *args: str, log: Path | None = None) -> str:
    env = dict(os.environ)
    env.setdefault("REGISTRY_ANVIL", str(ROOT / "node_modules" / ".bin" / "anvil"))
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    if log is None:
        done = subprocess.run([str(MUTMUT), *args], cwd=work, env=env, capture_output=True, text=True)
        if done.returncode != 0:
            raise SystemExit(f"mutation: mutmut {' '.join(args)} failed in {work}:\n{done.stdout}\n{done.stderr}")
        return done.stdout
    with log.open("a") as out:
        out.write(f"\n$ mutmut {' '.join(args)}\n")
        out.flush()
        code = subprocess.call([str(MUTMUT), *args], cwd=work, env=env, stdout=out, stderr=subprocess.STDOUT)
    if code != 0:
        tail = "".join(log.read_text(errors="replace").splitlines(keepends=True)[-30:])
        raise SystemExit(f"mutation: mutmut {' '.join(args)} exited {code} in {work}; last lines of {log}:\n{tail}")
    return ""


def durations(work: Path) -> dict[str, float]:
    """How long each mutant's last test run took, from mutmut's per-file records (a new run, a new value)."""
    found: dict[str, float] = {}
    for meta in (work / "mutants").rglob("*.meta"):
        try:
            found.update(json.loads(meta.read_text()).get("durations_by_key") or {})
        except (OSError, ValueError, AttributeError):
            continue
    return found


def statuses(work: Path) -> dict[str, str]:
    out = mutmut(work, "results", "--all", "true")
    found: dict[str, str] = {}
    for line in out.splitlines():
        name, sep, status = line.strip().rpartition(": ")
        if sep and name:
            found[name] = status
    return found


def run_module(module: str, tests: list[str], settings: dict, jobs: int, fresh: bool) -> ModuleResult:
    started = time.monotonic()
    work = prepare(module, tests, settings, fresh)
    log = work / "run.log"
    log.write_text("")
    stamp = work / "tests.sha256"
    fingerprint = tests_fingerprint(tests)
    # No stamp beside cached verdicts: the last run stopped before writing it, after its tests changed.
    before = durations(work)
    tests_changed = stamp.read_text() != fingerprint if stamp.exists() else bool(before)
    mutmut(work, "run", "--max-children", str(jobs), log=log)
    if tests_changed:
        # mutmut re-tests every mutant itself when its test list changed; only verdicts this run did
        # not renew are stale.
        after = durations(work)
        stale = [n for n, s in statuses(work).items()
                 if s not in KILLED and s not in ("skipped",) and after.get(n) == before.get(n)]
        for start in range(0, len(stale), 200):  # keep argv short
            mutmut(work, "run", "--max-children", str(jobs), *stale[start:start + 200], log=log)
    stamp.write_text(fingerprint)
    result = ModuleResult(module, statuses(work), seconds=time.monotonic() - started)
    return result


@dataclass
class Equivalent:
    module: str
    mutant: str
    line: str
    why: str


def load_equivalents() -> list[Equivalent]:
    if not EQUIVALENT.exists():
        return []
    entries = []
    for number, raw in enumerate(EQUIVALENT.read_text().splitlines(), 1):
        if not raw.strip() or raw.lstrip().startswith("#"):
            continue
        # The mutated line may itself hold " | " (a type union); the reason never does.
        head = raw.split(" | ", 2)
        parts = [p.strip() for p in head[:2] + (head[2].rsplit(" | ", 1) if len(head) == 3 else [])]
        if len(parts) != 4 or not all(parts):
            sys.exit(f"mutation: {EQUIVALENT.name}:{number}: expected 'module | mutant id | mutated line | why'")
        entries.append(Equivalent(*parts))
    return entries


# One interpreter prints every diff asked for (``mutmut show`` costs a start-up per mutant).
_DIFFS = """
import sys
from mutmut.__main__ import find_mutant, get_diff_for_mutant
for name in sys.argv[1:]:
    print("\\x00" + name)
    print(get_diff_for_mutant(name, path=find_mutant(name).path))
"""


def diffs(work: Path, mutants: list[str]) -> dict[str, str]:
    """Each mutant's diff against the original source, as ``mutmut show`` prints it."""
    found: dict[str, str] = {}
    for start in range(0, len(mutants), 200):  # keep argv short
        done = subprocess.run([sys.executable, "-c", _DIFFS, *mutants[start:start + 200]], cwd=work,
                              capture_output=True, text=True)
        if done.returncode != 0:
            raise SystemExit(f"mutation: cannot show mutants in {work}:\n{done.stderr[-2000:]}")
        for block in done.stdout.split("\x00")[1:]:
            name, _, diff = block.partition("\n")
            found[name] = diff
    return found


def mutated_lines(diff: str) -> list[str]:
    return [line[1:].strip() for line in diff.splitlines() if line.startswith("+") and not line.startswith("+++")]


def apply_equivalents(result: ModuleResult, entries: list[Equivalent], problems: list[str]) -> None:
    work = WORK / slug(result.module)
    mine = [e for e in entries if e.module == result.module]
    shown = diffs(work, [e.mutant for e in mine if e.mutant in result.statuses])
    for entry in mine:
        if entry.mutant not in result.statuses:
            problems.append(f"{entry.module}: equivalent {entry.mutant} no longer exists (stale entry)")
            continue
        if entry.line not in mutated_lines(shown.get(entry.mutant, "")):
            problems.append(f"{entry.module}: equivalent {entry.mutant} now mutates something else (stale entry)")
            continue
        if result.statuses[entry.mutant] in KILLED:
            problems.append(f"{entry.module}: {entry.mutant} is listed as equivalent but a test kills it")
            continue
        result.equivalent.add(entry.mutant)


def table(results: list[ModuleResult]) -> str:
    head = f"{'module':<32} {'killed':>6} {'tried':>6} {'equiv':>6} {'survived':>8} {'score':>7} {'time':>7}"
    lines = [head, "-" * len(head)]
    for r in results:
        lines.append(f"{r.module:<32} {r.killed:>6} {r.tried:>6} {len(r.equivalent):>6} {len(r.survivors):>8} "
                     f"{r.score:>6.1f}% {r.seconds:>6.0f}s")
    return "\n".join(lines)


def survivors_report(results: list[ModuleResult]) -> str:
    out: list[str] = []
    for r in results:
        shown = diffs(WORK / slug(r.module), r.survivors)
        for name in r.survivors:
            out.append(f"--- {name} ({r.statuses[name]})")
            out.extend(line for line in shown[name].splitlines() if line.startswith(("-", "+", "@")))
    return "\n".join(out)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("modules", nargs="*", help="module paths from the map (default: MUTATION_MODULES or all)")
    parser.add_argument("--jobs", type=int, default=int(os.environ.get("MUTATION_JOBS", "2")))
    parser.add_argument("--report-only", action="store_true", default=os.environ.get("MUTATION_REPORT_ONLY") == "1",
                        help="run nothing: the table and the survivors from the cache as it stands")
    parser.add_argument("--fresh", action="store_true", default=os.environ.get("MUTATION_FRESH") == "1",
                        help="drop the cache first")
    args = parser.parse_args()
    if not MUTMUT.exists():
        sys.exit(f"mutation: {MUTMUT} not found; run it through `make mutation`")
    mapping, settings = load_map()
    modules = pick_modules(mapping, ",".join(args.modules) or os.environ.get("MUTATION_MODULES", ""))
    entries = load_equivalents()
    problems: list[str] = []
    results: list[ModuleResult] = []
    started = time.monotonic()
    for module in modules:
        print(f"mutation: {module} against {', '.join(mapping[module]['tests'])}", flush=True)
        if args.report_only:
            work = WORK / slug(module)
            if not (work / "mutants").is_dir():
                print(f"  not run yet ({work.relative_to(ROOT)} has no results)", flush=True)
                continue
            result = ModuleResult(module, statuses(work))
        else:
            result = run_module(module, mapping[module]["tests"], settings, args.jobs, args.fresh)
        apply_equivalents(result, entries, problems)
        results.append(result)
        print(f"  {result.killed} killed of {result.tried} tried, {len(result.equivalent)} equivalent, "
              f"{len(result.survivors)} surviving ({result.score:.1f}%) in {result.seconds:.0f}s", flush=True)
    report = "\n\n".join(filter(None, [
        table(results),
        f"wall time {time.monotonic() - started:.0f}s",
        "\n".join(problems),
        "Surviving mutants:\n" + survivors_report(results) if any(r.survivors for r in results) else "No surviving mutants.",
    ]))
    WORK.mkdir(parents=True, exist_ok=True)
    (WORK / "report.txt").write_text(report + "\n")
    print()
    print(report)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
