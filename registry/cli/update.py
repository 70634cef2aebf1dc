"""``registry delta``: what a release changed against its parent, and what updating to it costs a device.

Thin: resolves, calls ``registry.delta``, renders. The incremental pull itself is ``registry pull``
(``--from``, ``--cache``), in ``cli/release.py``.
"""

from __future__ import annotations

from typing import Optional

import typer


def register(app: typer.Typer) -> None:
    app.command("delta", help="Which tensors a release changed against its parent (or --base), their bytes, and "
                              "how many bytes a device holding the parent fetches to update: read from the two "
                              "DAGs' directory and inner nodes and the graphs, every block verified, before "
                              "anything is pulled.")(delta)


def delta(
    ref: str = typer.Argument(..., help="The release: NAME@VERSION, NAME@latest, NAME@ALIAS or sha256:HEX."),
    base: Optional[str] = typer.Option(None, "--base", help="Compare with this release instead of the parent."),
    profile: Optional[str] = typer.Option(None, "--profile", help="Profile (default: local)."),
    json_output: bool = typer.Option(False, "--json", help="Print the delta as JSON."),
) -> None:
    from registry.cli._render import console, plain, print_json
    from registry.config import load_settings
    from registry.delta import delta_refs, render_delta

    result = delta_refs(ref, base, load_settings(profile))
    if json_output:
        print_json(result.to_json())
        return
    out = console()
    for line in render_delta(result):
        out.print(plain(line), highlight=False, soft_wrap=True, markup=False)
