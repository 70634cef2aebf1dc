"""``registry delta`` and ``registry cache``: what an update costs a device, and the device's block cache.

Thin: resolves, calls ``registry.delta`` / ``registry.content.blockcache``, renders. The incremental
pull itself is ``registry pull`` (``--from``, ``--cache``), in ``cli/release.py``.
"""

from __future__ import annotations

from typing import Optional

import typer


cache_app = typer.Typer(help="The device's block cache (verified blocks of pulled releases, reused by updates).",
                        no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(cache_app, name="cache")
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


@cache_app.command("info", help="Where the block cache is, its bound, and what it holds.")
def cache_info(
    profile: Optional[str] = typer.Option(None, "--profile", help="Profile (default: local)."),
    json_output: bool = typer.Option(False, "--json", help="Print as JSON."),
) -> None:
    from registry.cli._render import print_json
    from registry.config import load_settings
    from registry.content.blockcache import BlockCache

    cache = BlockCache.for_settings(load_settings(profile))
    out = {"path": str(cache.root), "max_bytes": cache.max_bytes, "bytes": cache.total_bytes(),
           "blocks": cache.block_count(), "enabled": cache.enabled}
    if json_output:
        print_json(out)
        return
    print(f"path    {out['path']}")
    print(f"bound   {out['max_bytes']} bytes" + ("" if cache.enabled else " (disabled)"))
    print(f"holds   {out['bytes']} bytes in {out['blocks']} blocks")


@cache_app.command("clear", help="Remove every block from the cache (installed models are not touched).")
def cache_clear(
    profile: Optional[str] = typer.Option(None, "--profile", help="Profile (default: local)."),
    json_output: bool = typer.Option(False, "--json", help="Print as JSON."),
) -> None:
    from registry.cli._render import print_json
    from registry.config import load_settings
    from registry.content.blockcache import BlockCache

    freed = BlockCache.for_settings(load_settings(profile)).clear()
    if json_output:
        print_json({"freed_bytes": freed})
        return
    print(f"freed   {freed} bytes")
