"""``registry index``, ``registry serve``, ``registry diff`` and ``registry card``: the catalog side.

Thin shells: each parses, calls the library (registry.index, registry.explorer, registry.diff,
registry.card) and renders. Text from the chain, a store or a model file is printed without markup
and without control characters, since any of it may come from a hostile publisher.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Optional

import typer

from registry.cli._render import clean, console, plain, print_json

ProfileOpt = typer.Option(None, "--profile", "-p", help="Profile to use (default: REGISTRY_PROFILE or local).")
JsonOpt = typer.Option(False, "--json", help="Print JSON on stdout.")

card_app = typer.Typer(help="Model cards: Markdown with Hugging Face-style YAML front matter.", no_args_is_help=True)



def _human_bytes(n: int | None) -> str:
    if n is None:
        return "-"
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(size) < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"  # pragma: no cover


# --------------------------------------------------------------------------------------------
# registry index
# --------------------------------------------------------------------------------------------


def index(
    follow: bool = typer.Option(False, "--follow", help="Keep following new blocks until interrupted."),
    interval: float = typer.Option(2.0, "--interval", help="Seconds between polls with --follow."),
    reset: bool = typer.Option(False, "--reset", help="Forget the index and rebuild it from the deployment block."),
    from_block: Optional[int] = typer.Option(None, "--from-block", help="Start a new index here instead of the "
                                             "contract's deployment block."),
    no_content: bool = typer.Option(False, "--no-content", help="Events only: do not read op sets, tasks and "
                                    "cards from the content store."),
    profile: Optional[str] = ProfileOpt,
    json_output: bool = JsonOpt,
) -> None:
    """Follow ModelRegistry's events into an SQLite index in the data dir (namespaces and their owners,
    names, publishers, releases with their cards, revocations, attestations, aliases and their moves,
    children), past the profile's confirmation depth, undoing reorgs. The index serves lists, search
    and lineage to `registry serve`; it is never trusted for a verdict."""
    from registry.cli._render import progress, wants_progress
    from registry.config import load_settings
    from registry.index import update_index

    settings = load_settings(profile)
    first = True
    while True:
        with progress("indexing blocks", None, wants_progress(json_output) and first) as advance:
            seen = [0]

            def report(done: int, total: int) -> None:
                advance(done - seen[0])
                seen[0] = done

            result = update_index(settings, content=not no_content, reset=reset and first,
                                  start_block=from_block, progress=report)
        first = False
        if json_output:
            print_json(result.to_json())
        else:
            _render_index(result)
        if not follow:
            return
        time.sleep(max(0.2, interval))


def _render_index(result: Any) -> None:
    out = console()
    sync = result.sync
    if sync.reset_reason:
        out.print(f"started over: {plain(sync.reset_reason)}", markup=False)
    if sync.reorg is not None:
        out.print(f"reorg: blocks after {sync.reorg.fork_block} were replaced; undid {sync.reorg.undone_rows} rows",
                  markup=False)
    span = f"blocks {sync.from_block}-{sync.to_block}" if sync.from_block is not None else "no new blocks"
    out.print(f"indexed {span}: {sync.events} events, {sync.releases} releases ({sync.seconds:.2f} s)", markup=False)
    out.print(f"  head {sync.head}, index at {sync.to_block}, {sync.behind} behind "
              f"(confirmations {sync.head - sync.target})", markup=False)
    if result.content is not None:
        c = result.content
        note = f", {c.unavailable} not in the store (retried later)" if c.unavailable else ""
        out.print(f"  content: {c.artifacts} artifacts, {c.provenance} provenance documents, {c.cards} cards read"
                  f"{note}", markup=False)
    out.print(f"  {result.path}", markup=False)


# --------------------------------------------------------------------------------------------
# registry serve
# --------------------------------------------------------------------------------------------


def serve(
    host: str = typer.Option("127.0.0.1", "--host", help="Interface to listen on (loopback by default)."),
    port: int = typer.Option(8470, "--port", help="TCP port."),
    follow: bool = typer.Option(True, "--follow/--no-follow", help="Keep the index following the chain."),
    interval: float = typer.Option(2.0, "--interval", help="Seconds between index polls."),
    profile: Optional[str] = ProfileOpt,
) -> None:
    """Start the explorer: catalog, models, releases with a live verification report, lineage graphs
    and diffs, server-rendered (no JavaScript needed) with a JSON API under /api."""
    from registry.config import load_settings
    from registry.explorer.server import run

    settings = load_settings(profile)
    if host not in ("127.0.0.1", "localhost", "::1"):
        console().print(f"[yellow]warning:[/] listening on {clean(host)}: anyone who can reach it can browse "
                        "this registry (it is read-only)")
    run(settings, host=host, port=port, follow=follow, interval=interval)


# --------------------------------------------------------------------------------------------
# registry diff
# --------------------------------------------------------------------------------------------


def diff(
    a: str = typer.Argument(..., help="NAME@VERSION, NAME@latest, sha256:HEX or an ONNX file"),
    b: str = typer.Argument(..., help="NAME@VERSION, NAME@latest, sha256:HEX or an ONNX file"),
    profile: Optional[str] = ProfileOpt,
    json_output: bool = JsonOpt,
) -> None:
    """What changed between two releases: size, ops and opset, tensors added/removed/changed (with
    bytes), provenance steps and metric deltas. Bytes are checked against the chain before parsing."""
    from registry.config import load_settings
    from registry.diff import diff_refs

    result = diff_refs(a, b, load_settings(profile))
    if json_output:
        print_json(result)
        return
    render_diff(result)


def render_diff(d: dict[str, Any]) -> None:
    out = console()

    def line(text: str) -> None:
        out.print(text, markup=False, highlight=False, soft_wrap=True)

    for side in ("a", "b"):
        s = d[side]
        status = "  REVOKED: " + plain(s.get("revocation_reason") or "") if s.get("revoked") else ""
        line(f"{side.upper()}  {plain(s['label'])}  sha256:{s['sha256'][:16]}…{status}")
    if d["identical"]:
        line("identical bytes")
    size = d["size"]
    ratio = f" ({(size['ratio'] - 1) * 100:+.1f}%)" if size["ratio"] else ""
    line(f"size        {_human_bytes(size['a'])} -> {_human_bytes(size['b'])}{ratio}")
    op = d["opsets"]
    sets = ", ".join(f"{plain(c['domain'])} {c['a']} -> {c['b']}" for c in op["changed"]) or "unchanged"
    line(f"opsets      {sets}; IR {op['ir_version']['a']} -> {op['ir_version']['b']}")
    ops = d["ops"]
    parts = [f"+{plain(k)}x{v}" for k, v in ops["added"].items()] + [f"-{plain(k)}x{v}" for k, v in ops["removed"].items()]
    parts += [f"{plain(k)} {v['a']}->{v['b']}" for k, v in ops["changed"].items()]
    line(f"ops         {' '.join(parts) or 'unchanged'} (nodes {ops['nodes']['a']} -> {ops['nodes']['b']})")
    t = d["tensors"]
    c, by = t["counts"], t["bytes"]
    line(f"tensors     +{c['added']} ({_human_bytes(by['added'])})  -{c['removed']} ({_human_bytes(by['removed'])})  "
         f"~{c['changed']} changed ({by['changed_delta']:+d} B)  {c['unchanged']} unchanged; "
         f"initializers {_human_bytes(by['a'])} -> {_human_bytes(by['b'])}")
    for item in t["changed"][:20]:
        line(f"  ~ {plain(item['name'])}: {', '.join(item['changed'])}  {item['a']['dtype']}{item['a']['shape']} -> "
             f"{item['b']['dtype']}{item['b']['shape']}  {item['bytes_delta']:+d} B")
    for item in t["added"][:10]:
        line(f"  + {plain(item['name'])}: {item['dtype']}{item['shape']} {item['nbytes']} B")
    for item in t["removed"][:10]:
        line(f"  - {plain(item['name'])}: {item['dtype']}{item['shape']} {item['nbytes']} B")
    p = d["provenance"]
    names = lambda steps: ", ".join(plain(s["name"]) for s in steps) or "-"  # noqa: E731
    line(f"steps       A: {names(p['steps']['a'])}")
    line(f"            B: {names(p['steps']['b'])}")
    for m in p["metrics"]:
        delta = f" ({m['delta']:+.4g})" if m["delta"] is not None else ""
        line(f"metric      {plain(m['metric'])}: {_num(m['a'])} -> {_num(m['b'])}{delta}")


def _num(value: Any) -> str:
    return "-" if value is None else f"{value:.6g}" if isinstance(value, float) else str(value)


# --------------------------------------------------------------------------------------------
# registry card draft|check
# --------------------------------------------------------------------------------------------


@card_app.command("draft")
def card_draft(
    provenance: Path = typer.Option(..., "--provenance", help="The provenance statement (JSON) to draft from."),
    out: Path = typer.Option(Path("CARD.md"), "-o", "--out", help="Where to write the draft."),
    name: Optional[str] = typer.Option(None, "--name", help="owner/model, for the title."),
    version: Optional[str] = typer.Option(None, "--version", help="Version, for the title."),
    base_model: Optional[str] = typer.Option(None, "--base-model", help="Base model (NAME@VERSION or a Hub id); "
                                             "default: the provenance's base model reference."),
    license: Optional[str] = typer.Option(None, "--license", help="SPDX id or Hub license (default: other)."),
    report: Optional[Path] = typer.Option(None, "--report", help="A compression output dir: its *.png plots are "
                                          "pinned to the store and referenced from the card."),
    force: bool = typer.Option(False, "--force", help="Overwrite OUT if it exists."),
    profile: Optional[str] = ProfileOpt,
    json_output: bool = JsonOpt,
) -> None:
    """Write a model card draft from a provenance record (steps, metrics before/after, data digests,
    tools), for you to edit and then publish with `registry publish --card CARD.md`."""
    from registry.card import draft_card, write_draft
    from registry.errors import InputError
    from registry.provenance import load_provenance

    if out.exists() and not force:
        raise InputError(f"{out} exists (use --force to overwrite it)")
    doc = load_provenance(provenance)
    plots = _pin_plots(report, profile) if report is not None else []
    text = draft_card(doc, name=name, version=version, base_model=base_model, license=license, plots=plots)
    parsed = write_draft(out, text, force=force)
    if json_output:
        print_json({"path": str(out), "plots": plots, "card": parsed.to_json()})
        return
    console().print(f"wrote {plain(out)} ({len(text)} bytes, {len(plots)} plots): edit it, then publish with "
                    f"--card {plain(out)}", markup=False)


def _pin_plots(report: Path, profile: str | None) -> list[dict[str, str]]:
    from registry.config import load_settings
    from registry.content.stores import open_store
    from registry.errors import InputError

    if not report.is_dir():
        raise InputError(f"--report {report} is not a directory")
    store = open_store(load_settings(profile))
    plots = []
    for png in sorted(report.glob("*.png"))[:32]:
        if not png.is_file() or png.is_symlink():
            continue
        result = store.put_file(png)
        plots.append({"title": png.stem.replace("_", " "), "cid": result.to_json()["cid_v1"]})
    return plots


@card_app.command("check")
def card_check(
    path: Path = typer.Argument(..., help="The card (Markdown with YAML front matter)."),
    json_output: bool = JsonOpt,
) -> None:
    """Parse a card with the limits every reader applies and show the fields tools use."""
    from registry.card import load_card

    card = load_card(path)
    if json_output:
        print_json(card.to_json())
        return
    out = console()
    for label, value in (("title", card.title), ("license", card.license), ("pipeline_tag", card.pipeline_tag),
                         ("base_model", ", ".join(card.base_model) or None),
                         ("relation", card.base_model_relation), ("tags", ", ".join(card.tags) or None),
                         ("datasets", ", ".join(card.datasets) or None), ("language", ", ".join(card.language) or None)):
        out.print(f"{label:<13} {plain(value) if value else '-'}", markup=False)
    for r in card.results:
        out.print(f"result        {plain(r.metric_type)} = {plain(r.value)}"
                  f"{' on ' + plain(r.dataset_name) if r.dataset_name else ''}", markup=False)
    for warning in card.warnings:
        out.print(f"warning       {plain(warning)}", markup=False)


def register(app: typer.Typer) -> None:
    app.command("index")(index)
    app.command("serve")(serve)
    app.command("diff")(diff)
    app.add_typer(card_app, name="card")
