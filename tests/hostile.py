"""The hostile-input harness: every parser and command that takes a file or a network answer, fed
hand-made attacks and generated garbage, with every outcome counted.

An input to a **target** (a parser, or a command run as a subprocess) ends in exactly one outcome:

``accepted``        the target returned (a command exited 0);
``refused``         it raised a ``RegistryError`` (a command: non-zero exit, one ``error:`` line or a report);
``traceback``       anything else escaped (a command: ``Traceback`` on stderr) - a bug;
``segfault``        the process died by a signal - a bug;
``hang``            no outcome within the time limit - a bug;
``wrong-accept``    accepted, but the case is marked ``must_reject`` - a bug.

Parsers run in a worker subprocess (``python -m tests.hostile worker TARGET``) that takes inputs
one by one over stdin, so a segfault or a hang is observed from outside, pinned to the input that
caused it, and the worker is restarted for the rest. ``tests/test_hostile_*.py`` assert zero bugs;
``scripts/hostile_report.py`` prints the counts.

**Adding a parser** (other areas: do this for yours): in ``tests/hostile_targets.py`` write a
function ``(data: bytes) -> object`` that parses ``data`` the way your code reads it (write it to a
temp file first if your code takes a path) and register it with ``@target(name, family)``, where
``family`` picks the shared hand-made cases (``json``, ``toml``, ``onnx``, ``text``, ``bytes``); add
your own with ``cases=[Case(...)]`` and a generator with ``strategy=``. Nothing else to touch.
"""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

ROOT = Path(__file__).resolve().parent.parent
BUGS = ("traceback", "segfault", "hang", "wrong-accept")
OUTCOMES = ("accepted", "refused", *BUGS)


@dataclass(frozen=True)
class Case:
    """One input. ``must_reject``: accepting it is a bug (hand-made attacks); None: either is fine."""

    name: str
    data: bytes
    must_reject: bool | None = True


@dataclass
class Target:
    name: str
    family: str
    parse: Callable[[bytes], Any]
    cases: list[Case] = field(default_factory=list)
    strategy: Callable[[], Any] | None = None  # -> hypothesis strategy of bytes
    timeout_s: float = 20.0
    may_accept: frozenset[str] = frozenset()  # shared cases that are valid input for this target




TARGETS: dict[str, Target] = {}


def target(name: str, family: str, *, cases: Iterable[Case] = (), strategy: Callable[[], Any] | None = None,
           timeout_s: float = 20.0, may_accept: Iterable[str] = ()) -> Callable[[Callable[[bytes], Any]], Callable[[bytes], Any]]:
    """Registers a parser under ``name`` with the shared cases of ``family`` plus ``cases``;
    ``may_accept`` names shared cases that are valid input for this parser."""

    def register(fn: Callable[[bytes], Any]) -> Callable[[bytes], Any]:
        TARGETS[name] = Target(name, family, fn, list(cases), strategy, timeout_s, frozenset(may_accept))
        return fn

    return register


# --------------------------------------------------------------------------------------------
# Shared hand-made cases per family
# --------------------------------------------------------------------------------------------


def _random_bytes(n: int, seed: int = 10) -> bytes:
    import random

    return random.Random(seed).randbytes(n)


def json_cases() -> list[Case]:
    """What a hostile node, store, file or client sends instead of a JSON document."""
    deep = 200_000
    return [
        Case("empty", b""),
        Case("whitespace", b"  \n\t "),
        Case("deep arrays", b"[" * deep + b"]" * deep),
        Case("deep objects", b'{"a":' * deep + b"1" + b"}" * deep),
        Case("deep unclosed", b"[" * deep),
        Case("deep in a value", b'{"jsonrpc":"2.0","id":1,"result":' + b"[" * deep + b"]" * deep + b"}"),
        Case("quadratic quotes", b'"' + b'\\"' * 200_000),
        Case("unterminated string", b'{"a": "' + b"x" * 100_000),
        Case("NaN", b'{"a": NaN}'),
        Case("Infinity", b'{"a": Infinity}'),
        Case("-Infinity", b"[-Infinity]"),
        Case("float overflow", b'{"a": 1e999}'),
        Case("huge integer", b'{"a": ' + b"9" * 5000 + b"}"),
        Case("lone surrogate", b'{"a": "\\ud800"}'),
        Case("invalid UTF-8", b'{"a": "\xff\xfe"}'),
        Case("UTF-16 with BOM", '{"a": 1}'.encode("utf-16")),
        Case("duplicate keys", b'{"a": 1, "a": 2}'),
        Case("NUL bytes", b'{"a": 1}\x00\x00'),
        Case("trailing garbage", b'{"a": 1} {"b": 2}'),
        Case("oversized", b'{"a": "' + b"x" * (40 * 1024 * 1024) + b'"}'),
        Case("many keys", b"{" + b",".join(b'"k%d":%d' % (i, i) for i in range(100_000)) + b"}"),
        Case("wrong type: list", b"[1, 2, 3]"),
        Case("wrong type: string", b'"hello"'),
        Case("wrong type: number", b"42"),
        Case("null", b"null"),
    ]


def toml_cases() -> list[Case]:
    deep = 100_000
    return [
        Case("empty", b"", must_reject=None),
        Case("deep inline arrays", b"a = " + b"[" * deep + b"]" * deep),
        Case("deep inline tables", b"a = " + b"{b = " * 5000 + b"1" + b"}" * 5000),
        Case("invalid UTF-8", b'a = "\xff"'),
        Case("unterminated string", b'a = "' + b"x" * 100_000),
        Case("oversized", b"# " + b"x" * (8 * 1024 * 1024)),
        Case("NUL bytes", b"a = 1\x00"),
        Case("unknown keys", b"evil = true\n"),
        Case("wrong types", b"min_confirmations = -1\nmax_artifact_size = \"big\"\n"),
        Case("huge integer", b"min_confirmations = " + b"9" * 5000),
        Case("nan", b"min_accuracy = nan\n"),
    ]


def onnx_cases() -> list[Case]:
    from tests.hostile_models import hostile_models

    return [Case(name, data) for name, data in hostile_models().items()] + [
        Case("empty", b""),
        Case("random", _random_bytes(4096)),
        Case("varint overflow", b"\x08" + b"\xff" * 20),
        Case("huge declared length", b"\x3a\xff\xff\xff\xff\x0f"),
        Case("nested length bomb", b"\x3a\x05\x0a\x03\x0a\x01\x0a" * 1000),
    ]


def text_cases() -> list[Case]:
    return [
        Case("empty", b""),
        Case("huge SemVer numbers", b"acme/m@" + b"9" * 5000 + b".0.0"),
        Case("very long", b"acme/" + b"m" * 1_000_000 + b"@1.0.0"),
        Case("control characters", b"acme/m\x1b[31m@1.0.0"),
        Case("newline", b"acme/m@1.0.0\n[bold green]VERIFIED"),
        Case("unicode confusable", "acme/m\u0430@1.0.0".encode()),
        Case("bidi override", "acme/m@1.0.0\u202e".encode()),
        Case("NUL", b"acme/m\x00@1.0.0"),
        Case("path traversal", b"../../etc/passwd@1.0.0"),
        Case("digest too long", b"sha256:" + b"ab" * 5000),
        Case("digest non-hex", b"sha256:" + b"zz" * 32),
        Case("invalid UTF-8", b"acme/m@\xff"),
    ]


def bytes_cases() -> list[Case]:
    return [Case("empty", b""), Case("random", _random_bytes(4096)), Case("zeros", bytes(1 << 20)),
            Case("oversized", b"x" * (40 * 1024 * 1024))]


FAMILIES: dict[str, Callable[[], list[Case]]] = {
    "json": json_cases, "toml": toml_cases, "onnx": onnx_cases, "text": text_cases, "bytes": bytes_cases,
}


def cases_for(t: Target) -> list[Case]:
    shared = [Case(c.name, c.data, None) if c.name in t.may_accept else c for c in FAMILIES[t.family]()]
    return shared + t.cases


def generated(t: Target, n: int) -> list[Case]:
    """``n`` generated inputs from the target's strategy (or its family's), the same on every run."""
    from hypothesis import HealthCheck, given, settings

    if n <= 0:
        return []
    strategy = t.strategy() if t.strategy is not None else FAMILY_STRATEGIES[t.family]()
    drawn: list[bytes] = []

    @settings(max_examples=n, database=None, derandomize=True, deadline=None,
              suppress_health_check=list(HealthCheck))
    @given(strategy)
    def collect(value: bytes) -> None:
        drawn.append(value)

    collect()
    return [Case(f"generated #{i}", data, must_reject=None) for i, data in enumerate(drawn[:n])]


def _json_strategy() -> Any:
    from hypothesis import strategies as st

    scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20)
    values = st.recursive(scalars, lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=8), kids,
                                                                                            max_size=4), max_leaves=30)
    documents = values.map(lambda v: json.dumps(v).encode())
    mutated = st.tuples(documents, st.integers(0, 64), st.binary(max_size=8)).map(
        lambda t: t[0][: t[1]] + t[2] + t[0][t[1]:])
    return documents | mutated | st.binary(max_size=200)


def _toml_strategy() -> Any:
    from hypothesis import strategies as st

    keys = st.sampled_from(["trusted_publishers", "min_confirmations", "max_artifact_size", "allowed_ops", "opset",
                            "min_accuracy", "refuse_rollback", "chain_id", "contract", "steps", "seed", "x"])
    values = st.sampled_from(["1", "-1", "true", "\"x\"", "[1, 2]", "[]", "1e999", "nan", "{a = 1}", "[[1]]",
                              "\"0x" + "11" * 20 + "\"", "0.5"])
    lines = st.lists(st.tuples(keys, values).map(lambda kv: f"{kv[0]} = {kv[1]}"), max_size=6)
    return lines.map(lambda ls: "\n".join(ls).encode()) | st.binary(max_size=200)


def _onnx_strategy() -> Any:
    from hypothesis import strategies as st

    from tests._verify_fixtures import tiny_onnx

    base = tiny_onnx()
    flips = st.lists(st.tuples(st.integers(0, len(base) - 1), st.integers(0, 255)), min_size=1, max_size=8)

    def mutate(changes: list[tuple[int, int]]) -> bytes:
        data = bytearray(base)
        for offset, value in changes:
            data[offset] = value
        return bytes(data)

    return flips.map(mutate) | st.binary(max_size=500) | st.integers(0, len(base)).map(lambda n: base[:n])


def _text_strategy() -> Any:
    from hypothesis import strategies as st

    return st.text(max_size=80).map(str.encode) | st.binary(max_size=80)


FAMILY_STRATEGIES: dict[str, Callable[[], Any]] = {
    "json": _json_strategy, "toml": _toml_strategy, "onnx": _onnx_strategy, "text": _text_strategy,
    "bytes": lambda: __import__("hypothesis.strategies", fromlist=["binary"]).binary(max_size=500),
}


# --------------------------------------------------------------------------------------------
# Running inputs: in process (for tests) and in a worker subprocess (segfaults and hangs observable)
# --------------------------------------------------------------------------------------------


def classify(t: Target, case: Case) -> tuple[str, str]:
    """(outcome, detail) of one input, in this process."""
    from registry.errors import RegistryError

    try:
        t.parse(case.data)
    except RegistryError as exc:
        return "refused", str(exc)[:200]
    except Exception as exc:  # noqa: BLE001 - anything else is the bug we count
        return "traceback", f"{type(exc).__name__}: {str(exc)[:200]}"
    if case.must_reject:
        return "wrong-accept", "accepted a hostile input"
    return "accepted", ""


def _worker(name: str) -> None:
    """``python -m tests.hostile worker NAME``: frames in on stdin, one JSON line out per frame."""
    import tests.hostile as harness  # not __main__: the module the targets register with
    import tests.hostile_targets  # noqa: F401 - registers the targets

    t = harness.TARGETS[name]
    stdin, stdout = sys.stdin.buffer, sys.stdout
    while True:
        header = stdin.read(5)
        if len(header) < 5:
            return
        size, flag = struct.unpack(">IB", header)
        data = stdin.read(size)
        must = {0: False, 1: True, 2: None}[flag]
        outcome, detail = harness.classify(t, harness.Case("", data, must))
        stdout.write(json.dumps({"outcome": outcome, "detail": detail}) + "\n")
        stdout.flush()


@dataclass
class Result:
    target: str
    case: str
    outcome: str
    detail: str = ""


class WorkerPool:
    """One worker process per target, restarted after a crash or a hang."""

    def __init__(self, name: str, timeout_s: float) -> None:
        self.name, self.timeout_s = name, timeout_s
        self.process: subprocess.Popen[bytes] | None = None

    def _start(self) -> subprocess.Popen[bytes]:
        env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
        return subprocess.Popen([sys.executable, "-m", "tests.hostile", "worker", self.name], cwd=ROOT, env=env,
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)

    def run(self, case: Case) -> Result:
        import selectors

        if self.process is None or self.process.poll() is not None:
            self.process = self._start()
        proc = self.process
        assert proc.stdin is not None and proc.stdout is not None
        flag = {False: 0, True: 1, None: 2}[case.must_reject]
        try:
            proc.stdin.write(struct.pack(">IB", len(case.data), flag) + case.data)
            proc.stdin.flush()
        except BrokenPipeError:
            pass
        selector = selectors.DefaultSelector()
        selector.register(proc.stdout, selectors.EVENT_READ)
        ready = selector.select(timeout=self.timeout_s + 10.0)  # + start-up and import time
        selector.close()
        if not ready:
            self.stop()
            return Result(self.name, case.name, "hang", f"no answer within {self.timeout_s + 10:g} s")
        line = proc.stdout.readline()
        if not line:
            code = proc.wait(timeout=5)
            self.process = None
            kind = "segfault" if code < 0 else "traceback"
            return Result(self.name, case.name, kind, f"worker died with code {code}")
        answer = json.loads(line)
        return Result(self.name, case.name, answer["outcome"], answer["detail"])

    def stop(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None


def run_target(name: str, cases: list[Case]) -> Iterator[Result]:
    t = TARGETS[name]
    pool = WorkerPool(name, t.timeout_s)
    try:
        for case in cases:
            yield pool.run(case)
    finally:
        pool.stop()


def tally(results: Iterable[Result]) -> Counter[str]:
    counts: Counter[str] = Counter()
    for result in results:
        counts[result.outcome] += 1
        counts["inputs"] += 1
    return counts


if __name__ == "__main__":  # pragma: no cover - the worker entry point
    if len(sys.argv) == 3 and sys.argv[1] == "worker":
        _worker(sys.argv[2])
    else:
        raise SystemExit("usage: python -m tests.hostile worker TARGET")
