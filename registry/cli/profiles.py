"""Profiles and keys: ``registry profile add|list|show`` (where a deployment is) and
``registry key new|import|list`` (what signs for it).

Library imports stay inside the command functions so ``registry --help`` never imports web3.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Optional

import typer

from registry.cli._render import console, print_json
from registry.cli.chain import JsonOpt, ProfileOpt, _done, _settings

profile_app = typer.Typer(help="Deployments: RPC URL, chain id, contract address, confirmations.",
                          no_args_is_help=True)
key_app = typer.Typer(help="Encrypted signing keys (eth-account keystores).", no_args_is_help=True)


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


def register(app: typer.Typer) -> None:
    """Adds the profile and key groups."""
    app.add_typer(profile_app, name="profile")
    app.add_typer(key_app, name="key")
