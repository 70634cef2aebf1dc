"""Shared rendering for the CLI: JSON on stdout for machines, rich on stderr for people.

Progress bars appear only when stderr is a terminal and ``--json`` is off, so pipes, CI logs and
machine consumers stay quiet.

**Untrusted text.** Strings from the chain (names, versions, revocation reasons, feed
descriptions), from provenance documents, from stores and from error messages that quote them are
hostile: rich markup in them (``[bold green]VERIFIED[/]``) would be rendered as ours, and control
characters (newlines, ANSI escapes, carriage returns, bidi overrides) can forge or hide lines. The
rule, in one place:

- ``clean(value)`` for untrusted text inside a markup string: control characters made visible
  (``\x1b``, ``\n``), markup escaped. ``plain(value)`` for text printed with ``markup=False``.
- ``console()`` returns a ``SafeConsole``, whose ``print`` also strips terminal control characters
  (everything but newline and tab) from every string it is given: a missed ``clean`` can at worst
  show markup, never move the cursor or recolour the terminal.

JSON output needs nothing: ``json.dumps`` escapes control characters and markup means nothing there.
"""

from __future__ import annotations

import json
import re
import sys
from contextlib import contextmanager
from typing import Any, Callable, Iterator

from rich.console import Console
from rich.markup import escape

# C0 and C1 controls, DEL, and the invisible Unicode format characters that reorder or hide text.
_CONTROLS = re.compile("[\x00-\x1f\x7f-\x9f\u200b-\u200f\u2028\u2029\u202a-\u202e\u2060-\u2064"
                       "\u2066-\u2069\ufeff]")
_TERMINAL_CONTROLS = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def _visible(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def plain(value: Any, limit: int | None = 2000) -> str:
    """``value`` as one line of inert text: every control or format character shown escaped."""
    text = _CONTROLS.sub(_visible, str(value))
    if limit is not None and len(text) > limit:
        text = text[: limit - 1] + "…"
    return text


def clean(value: Any, limit: int | None = 2000) -> str:
    """``plain(value)`` with rich markup escaped: safe inside a markup string."""
    return escape(plain(value, limit))


class SafeConsole(Console):
    """A rich Console whose ``print`` never emits terminal control characters from its arguments."""

    def print(self, *objects: Any, **kwargs: Any) -> None:  # type: ignore[override]
        safe = tuple(_TERMINAL_CONTROLS.sub(_visible, o) if isinstance(o, str) else o for o in objects)
        super().print(*safe, **kwargs)


def console() -> Console:
    """Human output goes to stderr so stdout stays clean for ``--json`` and pipes."""
    return SafeConsole(stderr=True, soft_wrap=True)


def print_json(data: Any) -> None:
    """One JSON document on stdout; dataclasses and bytes are turned into plain JSON first."""
    print(json.dumps(data, indent=2, sort_keys=True, default=_jsonable))


def _jsonable(value: Any) -> Any:
    import dataclasses
    from pathlib import Path

    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    if isinstance(value, (bytes, bytearray)):
        return "0x" + bytes(value).hex()
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, (set, frozenset)):
        return sorted(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def wants_progress(json_output: bool) -> bool:
    return not json_output and sys.stderr.isatty()


@contextmanager
def progress(description: str, total: int | None, enabled: bool) -> Iterator[Callable[[int], None]]:
    """Yields ``advance(n)``; draws a rich progress bar only when ``enabled``."""
    if not enabled:
        yield lambda _n: None
        return
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    columns = [TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
               TimeRemainingColumn()]
    with Progress(*columns, console=console(), transient=True) as bar:
        task = bar.add_task(description, total=total)
        yield lambda n: bar.advance(task, n)
