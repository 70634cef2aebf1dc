"""Progress for long byte work: one bar for the total and one for the current file of a tree.

Drawn only on a terminal and never with ``--json`` (``enabled``); otherwise both callbacks are
no-ops, so pipes and machine consumers stay quiet.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable, Iterator


@dataclass
class Bars:
    advance: Callable[[int], None]
    file: Callable[[str, int], None]


@contextmanager
def byte_progress(description: str, total: int | None, enabled: bool) -> Iterator[Bars]:
    """``advance(n)`` moves both bars; ``file(path, size)`` starts the per-file bar for a new file."""
    if not enabled:
        yield Bars(lambda _n: None, lambda _p, _s: None)
        return
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn, TransferSpeedColumn

    from registry.cli._render import console

    columns = [TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
               TimeRemainingColumn()]
    with Progress(*columns, console=console(), transient=True) as bar:
        whole = bar.add_task(description, total=total)
        current: list[int] = []

        def advance(n: int) -> None:
            bar.advance(whole, n)
            if current:
                bar.advance(current[0], n)

        def file(path: str, size: int) -> None:
            from rich.markup import escape

            shown = escape(path if len(path) < 60 else "…" + path[-59:])
            if current:
                bar.update(current[0], description=f"  {shown}", total=size or None, completed=0)
            else:
                current.append(bar.add_task(f"  {shown}", total=size or None))
            bar.refresh()  # every file is shown at least once, however fast it goes by

        yield Bars(advance, file)


def tree_total(path: object) -> int | None:
    """The bytes a local file or tree holds (for the total bar), or None when unknown."""
    from pathlib import Path

    from registry.content.tree import is_tree, scan_tree

    p = Path(str(path))
    try:
        if is_tree(p):
            return scan_tree(p).total_size
        return p.stat().st_size if p.is_file() else None
    except Exception:  # the command itself reports a bad path; the bar just has no total
        return None
