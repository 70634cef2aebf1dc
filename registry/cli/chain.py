"""Chain commands: the local devnet and reading/revoking/attesting releases (namespaces, names and
aliases are in ``registry.cli.names``, profiles and keys in ``registry.cli.profiles``).

Library imports stay inside the command functions so ``registry --help`` never imports web3.
Every command that outputs data takes ``--json``; human output goes to stderr via rich.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

import typer

from registry.cli._render import clean, console, plain, print_json
from registry.cli._signing import command_signer

if TYPE_CHECKING:
    from registry.chain.client import RegistryClient
    from registry.chain.records import ReleaseRecord
    from registry.content.base import ContentStore
    from registry.config import Settings

ProfileOpt = typer.Option(None, "--profile", "-p", help="Profile to use (default: REGISTRY_PROFILE or local).")
JsonOpt = typer.Option(False, "--json", help="Print JSON on stdout.")
AccountOpt = typer.Option(None, "--account", "-a", help="Keystore address to sign with.")

chain_app = typer.Typer(help="The embedded local chain (anvil with persistent state).", no_args_is_help=True)


# --------------------------------------------------------------------------------------------
# Shared helpers
# --------------------------------------------------------------------------------------------


def _settings(profile: str | None) -> "Settings":
    from registry.config import load_settings

    return load_settings(profile)


def _client(settings: "Settings") -> "RegistryClient":
    from registry.chain.client import RegistryClient

    return RegistryClient.connect(settings)


def _tx_json(result: Any) -> dict[str, Any]:
    return result.to_json()


def _done(json_output: bool, data: dict[str, Any], message: str) -> None:
    if json_output:
        print_json(data)
    else:
        console().print(message, markup=False, soft_wrap=True, highlight=False)


# --------------------------------------------------------------------------------------------
# registry chain up|down|status
# --------------------------------------------------------------------------------------------


def _require_local(settings: "Settings") -> None:
    from registry.errors import InputError

    if not settings.profile.is_local:
        raise InputError(
            f"profile {settings.profile.name!r} points at {settings.profile.rpc_url}: "
            "`registry chain` manages only the embedded local chain"
        )


@chain_app.command("up")
def chain_up(
    profile: Optional[str] = ProfileOpt,
    json_output: bool = JsonOpt,
    reset: bool = typer.Option(False, "--reset", help="Set the saved state aside (kept under chain/damaged/) and "
                                                      "start a new, empty chain. Only for a state that cannot be "
                                                      "recovered: every release on the local chain is left behind."),
) -> None:
    """Start the local anvil (if not running) from its last good saved state, and deploy ModelRegistry (once).

    A damaged state file is set aside and the previous good snapshot is loaded; the note says so."""
    from registry.chain.devnet import ensure_running, reset as reset_state

    settings = _settings(profile)
    _require_local(settings)
    moved = [str(p) for p in reset_state(settings)] if reset else []
    info = ensure_running(settings)
    notes = ([f"set the old state aside: {', '.join(moved)}"] if moved else []) + ([info.note] if info.note else [])
    data = {
        "rpc_url": info.rpc_url,
        "chain_id": info.chain_id,
        "contract": info.contract,
        "started": info.started,
        "deployed": info.deployed,
        "note": "; ".join(notes) or None,
        "set_aside": moved,
    }
    if json_output:
        print_json(data)
        for note in notes:
            console().print(f"[yellow]{note}[/]", markup=True, soft_wrap=True)
        return
    out = console()
    for note in notes:
        out.print(note, style="yellow", markup=False, soft_wrap=True)
    state = "started" if info.started else "already running"
    out.print(f"local chain {state} at {info.rpc_url} (chain id {info.chain_id})")
    out.print(f"ModelRegistry {'deployed' if info.deployed else 'at'} {info.contract}")


@chain_app.command("down")
def chain_down(
    profile: Optional[str] = ProfileOpt,
    json_output: bool = JsonOpt,
    force: bool = typer.Option(False, "--force", help="Stop even if the state cannot be saved (disk full)."),
) -> None:
    """Save the local chain's state and stop its anvil (the next `up` starts from that state)."""
    from registry.chain.devnet import stop

    settings = _settings(profile)
    _require_local(settings)
    stopped = stop(settings, force=force)
    _done(json_output, {"stopped": stopped}, "local chain stopped" if stopped else "local chain was not running")


@chain_app.command("status")
def chain_status(profile: Optional[str] = ProfileOpt, json_output: bool = JsonOpt) -> None:
    """Is the local chain running? RPC URL, chain id, block number, contract."""
    from registry.chain.devnet import status

    settings = _settings(profile)
    _require_local(settings)
    info = status(settings)
    if json_output:
        print_json(info.to_json())
        return
    out = console()
    if not info.running:
        out.print("local chain: [bold]not running[/] (start it with `registry chain up`)")
        if info.contract:
            out.print(f"last deployment: ModelRegistry at {info.contract}")
        _print_snapshot(info)
        return
    out.print(f"local chain: [bold green]running[/] at {info.rpc_url} (pid {info.pid})")
    out.print(f"chain id {info.chain_id}, block {info.block_number}")
    deployed = "" if info.contract_deployed else " [red](no code there!)[/]"
    out.print(f"ModelRegistry at {info.contract}{deployed}")
    _print_snapshot(info)


def _print_snapshot(info: Any) -> None:
    out = console()
    snap = info.snapshot
    if snap is None:
        out.print(f"saved state: none yet ({info.state_file})", markup=False)
        return
    behind = ""
    if info.block_number is not None and info.saved_block is not None and info.block_number > info.saved_block:
        behind = f"; {info.block_number - info.saved_block} blocks not saved yet (the next command saves them)"
    journaled = f" + {info.journaled} journaled transactions (through block {info.saved_block})" \
        if info.journaled else ""
    out.print(f"saved state: snapshot of block {snap.block} ({snap.size} bytes, {snap.to_json()['saved_at_iso']})"
              f"{journaled}{behind}", markup=False, soft_wrap=True)


# --------------------------------------------------------------------------------------------
# registry show|history|revoke|attest
# --------------------------------------------------------------------------------------------


def render_release(data: dict[str, Any]) -> None:
    """Human rendering of ``registry.chain.views.release_view`` output; extra sections are shown
    generically, so other areas can add keys (e.g. provenance) without touching this function."""
    out = console()
    status = "[bold red]REVOKED[/]" if data["revoked"] else "[bold green]active[/]"
    out.print(f"[bold]{clean(data['ref'])}[/]  {status}", soft_wrap=True)
    if data["revoked"]:
        out.print(f"  revoked at {data['revoked_at_iso']}: {plain(data['revocation_reason'])}", soft_wrap=True,
                  markup=False)
    rows = [
        ("id", data["id"]),
        ("publisher", data["publisher"]),
        ("published", data["published_at_iso"]),
        ("parent", data["parent_ref"] or "-"),
        ("artifact sha256", data["artifact_sha256"]),
        ("artifact size", f"{data['artifact_size']} bytes"),
        ("artifact cid", data["artifact_cid"]["v1"] or data["artifact_cid"]["hex"]),
        ("provenance sha256", data["provenance_sha256"]),
        ("provenance cid", data["provenance_cid"]["v1"] or data["provenance_cid"]["hex"]),
    ]
    if data["artifact_cid"].get("v0"):
        rows.insert(7, ("artifact cid v0", data["artifact_cid"]["v0"]))
    if data.get("card_sha256"):
        card_cid = data.get("card_cid") or {}
        rows += [("card sha256", data["card_sha256"]), ("card cid", card_cid.get("v1") or card_cid.get("hex"))]
    for label, value in rows:
        out.print(f"  {label:<18} {plain(value)}", soft_wrap=True, markup=False)
    attestations = data.get("attestations", [])
    out.print(f"  attestations       {len(attestations) or 'none'}", soft_wrap=True)
    for a in attestations:
        verdict = "[green]pass[/]" if a["passed"] else "[red]fail[/]"
        out.print(f"    {a['attester']} {verdict} at {a['attested_at_iso']}, report sha256 {a['report_sha256']}",
                  soft_wrap=True)
    known = {"id", "name", "version", "ref", "artifact_sha256", "artifact_cid", "artifact_size", "provenance_sha256",
             "provenance_cid", "parent", "parent_ref", "publisher", "published_at", "published_at_iso", "revoked",
             "revoked_at", "revoked_at_iso", "revocation_reason", "attestations", "chain", "provenance", "card_sha256",
             "card_cid"}
    provenance = data.get("provenance")
    if provenance:
        colour = "green" if provenance["status"] == "bound" else "red"
        out.print(f"  provenance         [{colour}]{provenance['status']}[/]", soft_wrap=True)
        for line in provenance["lines"]:
            out.print(f"    {plain(line)}", soft_wrap=True, markup=False)
    for key, value in data.items():
        if key not in known:
            out.print(f"  {plain(key)}: {plain(value)}", soft_wrap=True, markup=False)


def show_data(
    client: "RegistryClient", ref: str, store: "ContentStore | None" = None
) -> dict[str, Any] | list[dict[str, Any]]:
    """What `registry show REF` prints: one release view, or a list for a digest reference.

    With a store, each view also carries the provenance document, fetched and checked against the
    digest on chain (``registry.provenance.provenance_section``)."""
    from registry.chain.views import release_view
    from registry.errors import ChainError
    from registry.release import parse_ref

    def view(record: "ReleaseRecord") -> dict[str, Any]:
        data = release_view(client, record)
        if store is not None:
            from registry.provenance import provenance_section

            data["provenance"] = provenance_section(store, record)
        return data

    parsed = parse_ref(ref)
    if parsed.kind == "digest":
        # Showing is not trusting: every release with these bytes is listed (the newest, bounded),
        # revoked ones and other names included, so an auditor sees any ambiguity.
        from registry.chain.resolve import MAX_DIGEST_RELEASES

        assert parsed.sha256 is not None
        matches = client.by_digest(parsed.sha256, limit=MAX_DIGEST_RELEASES)
        if not matches:
            raise ChainError(f"no release has artifact sha256:{parsed.sha256.hex()}")
        return [view(m) for m in matches]
    return view(client.resolve(parsed))


def show(
    ref: str = typer.Argument(..., help="NAME@VERSION, NAME@latest, NAME@ALIAS or sha256:HEX"),
    profile: Optional[str] = ProfileOpt,
    json_output: bool = JsonOpt,
) -> None:
    """A release as recorded on chain: digests, CIDs, publisher, parent, revocation, attestations,
    and its provenance document checked against the chain."""
    from registry.content.stores import open_store
    from registry.release import parse_ref

    parse_ref(ref)  # bad syntax fails before any chain is started
    settings = _settings(profile)
    data = show_data(_client(settings), ref, open_store(settings))
    if json_output:
        print_json(data)
        return
    for item in data if isinstance(data, list) else [data]:
        render_release(item)


def history(
    name: str = typer.Argument(..., help="owner/model"),
    profile: Optional[str] = ProfileOpt,
    json_output: bool = JsonOpt,
) -> None:
    """Every release of NAME in publish order, with parent lineage; revoked ones marked."""
    from registry.chain.views import history_view
    from registry.release import validate_name

    validate_name(name)
    data = history_view(_client(_settings(profile)), name)
    if json_output:
        print_json(data)
        return
    from rich.table import Table

    out = console()
    if data["owner"] is None:
        out.print(f"{name}: unclaimed, no releases")
        return
    out.print(f"[bold]{name}[/]  owner {data['owner']}  latest {clean(data['latest'] or '-')}", soft_wrap=True)
    if not data["releases"]:
        out.print("no releases yet")
        return
    escape = clean  # versions, reasons and parents come from the chain: no markup, no controls
    table = Table("version", "published (UTC)", "publisher", "parent", "sha256", "status")
    for r in data["releases"]:
        reason = escape(r["revocation_reason"] or "")
        status = f"[red]REVOKED[/] ({reason})" if r["revoked"] else ("[green]latest[/]" if r["latest"] else "active")
        parent = r["parent_ref"] or "-"
        if parent.startswith(name + "@"):
            parent = parent[len(name):]  # same name: "@1.0.0" is enough
        table.add_row(escape(r["version"]), (r["published_at_iso"] or "")[:16].replace("T", " "),
                      r["publisher"][:6] + "…" + r["publisher"][-4:], escape(parent), r["artifact_sha256"][:10] + "…",
                      status)
    out.print(table)


def revoke(
    ref: str = typer.Argument(..., help="NAME@VERSION (or NAME@latest, NAME@ALIAS, sha256:HEX)"),
    reason: str = typer.Option(..., "--reason", help="Why; stored on chain and shown to every verifier."),
    profile: Optional[str] = ProfileOpt,
    account: Optional[str] = AccountOpt,
    json_output: bool = JsonOpt,
) -> None:
    """Revoke a release (its publisher or the name's owner). It stays readable, marked revoked."""
    from registry.errors import InputError
    from registry.release import parse_ref

    parse_ref(ref)
    if not reason.strip():
        raise InputError("--reason must not be empty")
    settings = _settings(profile)
    signer = command_signer(settings, account)
    client = _client(settings)
    record = client.resolve(ref)
    result = client.revoke(record.id, reason, signer.account)
    data = {"ref": record.ref, "id": "0x" + record.id.hex(), "reason": reason, "sender": signer.address,
            "tx": _tx_json(result)}
    _done(json_output, data, f"revoked {record.ref}: {reason}")


def attest(
    ref: str = typer.Argument(..., help="NAME@VERSION (or NAME@latest, NAME@ALIAS, sha256:HEX)"),
    passed: Optional[bool] = typer.Option(None, "--pass/--fail", help="Your verdict."),
    report: Path = typer.Option(..., "--report", help="Your report file; its SHA-256 goes on chain."),
    profile: Optional[str] = ProfileOpt,
    account: Optional[str] = AccountOpt,
    json_output: bool = JsonOpt,
) -> None:
    """Record your verdict on a release, bound to the SHA-256 of your report."""
    import hashlib

    from registry.errors import InputError
    from registry.release import parse_ref

    parse_ref(ref)
    if passed is None:
        raise InputError("give a verdict: --pass or --fail")
    from registry.fsutil import open_regular

    try:
        digest = hashlib.sha256()
        with open_regular(report, what="report") as handle:  # a FIFO or a device is refused, not read
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
    except OSError as exc:
        raise InputError(f"cannot read report {report}: {exc.strerror or exc}") from exc
    settings = _settings(profile)
    signer = command_signer(settings, account)
    client = _client(settings)
    record = client.resolve(ref)
    result = client.attest(record.id, passed, digest.digest(), signer.account)
    data = {"ref": record.ref, "id": "0x" + record.id.hex(), "passed": passed, "report_sha256": digest.hexdigest(),
            "attester": signer.address, "tx": _tx_json(result)}
    _done(json_output, data, f"attested {record.ref}: {'pass' if passed else 'fail'} (report {digest.hexdigest()})")


def register(app: typer.Typer) -> None:
    """Adds the chain group and show/history/revoke/attest (profiles and keys: ``registry.cli.profiles``)."""
    app.add_typer(chain_app, name="chain")
    app.command("show")(show)
    app.command("history")(history)
    app.command("revoke")(revoke)
    app.command("attest")(attest)
