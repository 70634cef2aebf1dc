"""``registry gc``: reclaim what killed commands and failed publishes left in the data dir."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer


def register(app: typer.Typer) -> None:
    app.command("gc", help=(
        "Remove stale temp files (.tmp/.part of writers that are gone) and blocks of the local store "
        "that no pin and no release on the profile's chain needs. Blocks a running command may still "
        "pin or anchor are kept; if the chain cannot be read no block is deleted."))(gc)


def _size(n: int) -> str:
    value = float(n)
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{int(value)} bytes" if unit == "bytes" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} bytes"  # pragma: no cover


def gc(
    dry_run: bool = typer.Option(False, "--dry-run", help="Only say what would be removed."),
    dirs: Optional[List[Path]] = typer.Option(None, "--dir", help="Also sweep stale temp files here (a pull "
                                                                  "target, a model directory); repeatable."),
    profile: Optional[str] = typer.Option(None, "--profile", help="Profile (default: local)."),
    json_output: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
) -> None:
    from registry.cli._render import console, print_json
    from registry.config import load_settings
    from registry.gc import collect_garbage

    settings = load_settings(profile)
    report = collect_garbage(settings, dry_run=dry_run, extra_dirs=tuple(dirs or ()))
    if json_output:
        print_json(report.to_json())
        return
    out = console()
    verb = "would remove" if dry_run else "removed"
    temp_bytes = sum(r.size for r in report.temp_files)
    block_bytes = sum(r.size for r in report.blocks)
    out.print(f"{verb} {len(report.temp_files)} stale temp files ({_size(temp_bytes)}) and "
              f"{len(report.blocks)} unreachable blocks ({_size(block_bytes)}); kept {report.kept_blocks} blocks "
              f"reachable from {report.roots} roots", markup=False, soft_wrap=True, highlight=False)
    for reason in report.skipped:
        out.print(f"skipped {reason}", markup=False, soft_wrap=True, highlight=False)
    freed = "would free" if dry_run else "freed"
    out.print(f"{freed} {_size(report.bytes_freed)}", markup=False, highlight=False)
