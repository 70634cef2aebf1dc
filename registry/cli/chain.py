"""Chain commands: the local devnet, profiles, keys, and reading/revoking/attesting releases
(namespaces, names and aliases are in ``registry.cli.names``).

Library imports stay inside the command functions so ``registry --help`` never imports web3.
Every command that outputs data takes ``--json``; human output goes to stderr via rich.
"""

from __future__ import annotations

import sys
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
profile_app = typer.Typer(help="Deployments: RPC URL, chain id, contract address, confirmations.",
                          no_args_is_help=True)
key_app = typer.Typer(help="Encrypted signing keys (eth-account keystores).", no_args_is_help=True)


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
# registry profile add|list|show
# --------------------------------------------------------------------------------------------


@profile_app.command("add")
def profile_add(
    name: str = typer.Argument(..., help="Profile name."),
    rpc_url: str = typer.Option(..., "--rpc-url", help="JSON-RPC URL (http:// or https://)."),
    chain_id: int = typer.Option(..., "--chain-id", help="Chain id the node must report."),
    contract: Optional[str] = typer.Option(None, "--contract", help="ModelRegistry address."),
    confirmations: Optional[int] = typer.Option(
        None, "--confirmations", min=0,
        help="Blocks to wait on top of each transaction before trusting it; the receipt is then fetched again, "
             "so a transaction a reorganisation dropped is reported. Default for a remote profile: "
             "12 (the customary safe depth on Ethereum; use 64 or more for finality on mainnet, 0 only for a "
             "dev chain that mines on demand)."),
    store: str = typer.Option("local", "--store", help="local | kubo:<url> | gateway:<url>"),
    timeout: float = typer.Option(10.0, "--timeout", min=0.1, help="RPC timeout in seconds."),
    retries: int = typer.Option(3, "--retries", min=0, help="RPC retries (exponential backoff)."),
    json_output: bool = JsonOpt,
) -> None:
    """Add or replace a profile for an EVM chain reachable by RPC."""
    from eth_utils import is_address, to_checksum_address

    from registry.config import DEFAULT_REMOTE_CONFIRMATIONS, LOCAL, Profile, data_dir, write_profile
    from registry.errors import InputError

    if name == LOCAL:
        raise InputError("'local' is the built-in embedded chain; choose another profile name")
    if not name or not all(c.isalnum() or c in "-_." for c in name):
        raise InputError(f"invalid profile name {name!r}: use letters, digits, '-', '_' or '.'")
    if not rpc_url.startswith(("http://", "https://")):
        raise InputError(f"invalid RPC URL {rpc_url!r}: expected http:// or https://")
    if chain_id <= 0:
        raise InputError(f"invalid chain id {chain_id}")
    if contract is not None:
        if not is_address(contract):
            raise InputError(f"invalid contract address {contract!r}")
        contract = to_checksum_address(contract)
    profile = Profile(name=name, rpc_url=rpc_url, chain_id=chain_id, contract=contract,
                      confirmations=DEFAULT_REMOTE_CONFIRMATIONS if confirmations is None else confirmations,
                      store=store, timeout_s=timeout, retries=retries)
    write_profile(data_dir(), profile)
    _done(json_output, _profile_json(profile), f"profile {name!r} saved")


def _profile_json(profile: Any) -> dict[str, Any]:
    import dataclasses

    return {**dataclasses.asdict(profile), "is_local": profile.is_local}


@profile_app.command("list")
def profile_list(json_output: bool = JsonOpt) -> None:
    """All profiles (the built-in local one included)."""
    from rich.table import Table

    from registry.config import data_dir, read_profiles

    profiles = read_profiles(data_dir())
    if json_output:
        print_json([_profile_json(p) for _, p in sorted(profiles.items())])
        return
    table = Table("profile", "rpc", "chain id", "contract", "confirmations")
    for name, p in sorted(profiles.items()):
        table.add_row(name, p.rpc_url or "(embedded anvil)", str(p.chain_id or 31337 if p.is_local else p.chain_id),
                      p.contract or ("(deployed on start)" if p.is_local else "-"), str(p.confirmations))
    console().print(table)


@profile_app.command("show")
def profile_show(
    name: Optional[str] = typer.Argument(None, help="Profile (default: the active one)."),
    json_output: bool = JsonOpt,
) -> None:
    """One profile as resolved (environment overrides applied)."""
    settings = _settings(name)
    data = _profile_json(settings.profile)
    if settings.profile.is_local:
        from registry.chain.devnet import status

        info = status(settings)
        data["devnet"] = info.to_json()
    if json_output:
        print_json(data)
        return
    out = console()
    for key, value in data.items():
        if key != "devnet":
            out.print(f"{key}: {value}")
    if "devnet" in data:
        d = data["devnet"]
        out.print(f"devnet: {'running at ' + str(d['rpc_url']) if d['running'] else 'not running'}; "
                  f"contract {d['contract'] or '(not deployed yet)'}")


# --------------------------------------------------------------------------------------------
# registry key new|import|list
# --------------------------------------------------------------------------------------------


def _new_password() -> str:
    import os

    from registry.keys import PASSWORD_ENV

    if os.environ.get(PASSWORD_ENV):
        return os.environ[PASSWORD_ENV]
    if not sys.stdin.isatty():
        from registry.errors import InputError

        raise InputError(f"no terminal to prompt for a password: set {PASSWORD_ENV}")
    return str(typer.prompt("New keystore password", hide_input=True, confirmation_prompt=True))


@key_app.command("new")
def key_new(profile: Optional[str] = ProfileOpt, json_output: bool = JsonOpt,
            curve: str = typer.Option("secp256k1", "--curve", help="secp256k1 (an Ethereum account, the default) or "
                                      "p256 (a PEM key for OpenSSF model signing: `registry export-oms`)."),
            output: Optional[Path] = typer.Option(None, "-o", "--output", help="p256 only: where to write the "
                                                  "private key (KEY.pem; KEY.pub is written beside it).")) -> None:
    """Create a random key, encrypted with a password (scrypt keystore, mode 0600)."""
    from registry.keys import new_key

    if curve.lower() in ("p256", "p-256", "secp256r1"):
        from registry.oms import new_p256_key

        settings = _settings(profile)
        target = output or settings.keystore_dir / f"oms-p256-{len(list(settings.keystore_dir.glob('oms-p256-*.pem')))}.pem"
        files = new_p256_key(target, _new_password())
        _done(json_output, files.to_json(), f"new P-256 key {files.private}\npublic key: {files.public}")
        return
    if curve.lower() != "secp256k1":
        from registry.errors import InputError

        raise InputError(f"unknown curve {curve!r} (secp256k1 or p256)")
    settings = _settings(profile)
    info = new_key(settings, _new_password())
    _done(json_output, info.to_json(), f"new key {info.address}\nkeystore: {info.path}")


@key_app.command("import")
def key_import(profile: Optional[str] = ProfileOpt, json_output: bool = JsonOpt) -> None:
    """Import a hex private key read from stdin (or a hidden prompt); never pass it as an argument."""
    from registry.errors import InputError
    from registry.keys import import_key

    settings = _settings(profile)
    if sys.stdin.isatty():
        secret = str(typer.prompt("Private key (hex)", hide_input=True))
    else:
        secret = sys.stdin.readline().strip()
    if not secret:
        raise InputError("no private key given on stdin")
    info = import_key(settings, secret, _new_password())
    _done(json_output, info.to_json(), f"imported key {info.address}\nkeystore: {info.path}")


@key_app.command("list")
def key_list(profile: Optional[str] = ProfileOpt, json_output: bool = JsonOpt) -> None:
    """Keys in the keystore directory."""
    from registry.keys import list_keys

    settings = _settings(profile)
    keys = list_keys(settings)
    if json_output:
        print_json([k.to_json() for k in keys])
        return
    out = console()
    if not keys:
        out.print(f"no keys in {settings.keystore_dir} (create one with `registry key new`)")
    for key in keys:
        out.print(f"{key.address}  {key.path}")


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
    """Adds the chain, profile and key groups and show/history/revoke/attest."""
    app.add_typer(chain_app, name="chain")
    app.add_typer(profile_app, name="profile")
    app.add_typer(key_app, name="key")
    app.command("show")(show)
    app.command("history")(history)
    app.command("revoke")(revoke)
    app.command("attest")(attest)
