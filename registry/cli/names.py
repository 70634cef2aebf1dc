"""Ownership commands: ``registry namespace``, ``registry name`` and ``registry alias``.

Who may publish what, and where movable pointers point: thin shells over ``RegistryClient``'s
namespace, publisher and alias methods. Library imports stay inside the commands so ``--help``
never imports web3.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Optional

import typer

from registry.cli._render import console, print_json
from registry.cli._signing import command_signer
from registry.cli.chain import AccountOpt, JsonOpt, ProfileOpt, _client, _done, _settings, _tx_json

if TYPE_CHECKING:
    from registry.chain.client import RegistryClient
    from registry.chain.records import ReleaseRecord

namespace_app = typer.Typer(
    help="Namespaces: the OWNER part of OWNER/MODEL, bound to one account. Claiming takes two transactions "
         "(commit, then reveal a block later) so nobody watching pending transactions can claim it first; "
         "`registry publish` claims your namespace itself when it is unclaimed. The owner owns every name "
         "under it: may always publish, adds publishers per name, sets aliases, revokes.",
    no_args_is_help=True)
name_app = typer.Typer(
    help="Model names (NAMESPACE/MODEL): who may publish them. A release counts only while its publisher "
         "may still publish the name: removing a publisher withdraws its releases from latest, aliases and "
         "feeds, and verify fails them (revoke withdraws one release for good).",
    no_args_is_help=True)
alias_app = typer.Typer(
    help="Aliases: movable pointers such as NAME@production that the namespace owner sets on chain. "
         "Re-pointing one is the rollback path that needs no new release. An alias never points at a "
         "revoked release; if its target is revoked later, NAME@ALIAS fails instead of resolving.",
    no_args_is_help=True)


# --------------------------------------------------------------------------------------------
# registry namespace claim|show|transfer|accept
# --------------------------------------------------------------------------------------------


@namespace_app.command("claim")
def namespace_claim(namespace: str, profile: Optional[str] = ProfileOpt, account: Optional[str] = AccountOpt,
                    json_output: bool = JsonOpt) -> None:
    """Claim an unclaimed NAMESPACE: commit, wait one block, reveal (one command; two transactions)."""
    from registry.release import validate_namespace

    validate_namespace(namespace)
    settings = _settings(profile)
    signer = command_signer(settings, account)
    client = _client(settings)
    say = (lambda _m: None) if json_output else (lambda m: console().print(m, markup=False, soft_wrap=True))
    result = client.claim_namespace(namespace, signer.account, on_wait=say)
    data = {"namespace": namespace, "action": "claim", "sender": signer.address, "tx": _tx_json(result)}
    _done(json_output, data, f"claimed namespace {namespace}: owner {signer.address}")


@namespace_app.command("show")
def namespace_show(namespace: str, profile: Optional[str] = ProfileOpt, json_output: bool = JsonOpt) -> None:
    """Owner and pending owner of NAMESPACE."""
    from registry.release import validate_namespace

    validate_namespace(namespace)
    owner, pending = _client(_settings(profile)).namespace_owner(namespace)
    data = {"namespace": namespace, "claimed": owner is not None, "owner": owner, "pending_owner": pending}
    _done(json_output, data, f"{namespace}: unclaimed" if owner is None else
          f"{namespace}\n  owner: {owner}\n  pending owner: {pending or '-'}")


@namespace_app.command("transfer")
def namespace_transfer(namespace: str, new_owner: str, profile: Optional[str] = ProfileOpt,
                       account: Optional[str] = AccountOpt, json_output: bool = JsonOpt) -> None:
    """Propose NEW_OWNER as owner of NAMESPACE (they must accept). Once they do, releases you signed as
    owner stop counting unless the new owner adds you as a publisher of those names (key rotation)."""
    settings = _settings(profile)
    signer = command_signer(settings, account)
    result = _client(settings).propose_namespace_owner(namespace, new_owner, signer.account)
    data = {"namespace": namespace, "action": "transfer", "sender": signer.address, "target": new_owner,
            "tx": _tx_json(result)}
    _done(json_output, data, f"proposed {new_owner} as owner of {namespace}; it takes effect when they run "
                             f"`registry namespace accept {namespace}`")


@namespace_app.command("accept")
def namespace_accept(namespace: str, profile: Optional[str] = ProfileOpt, account: Optional[str] = AccountOpt,
                     json_output: bool = JsonOpt) -> None:
    """Accept ownership of NAMESPACE proposed to you."""
    settings = _settings(profile)
    signer = command_signer(settings, account)
    result = _client(settings).accept_namespace_owner(namespace, signer.account)
    data = {"namespace": namespace, "action": "accept", "sender": signer.address, "tx": _tx_json(result)}
    _done(json_output, data, f"{signer.address} now owns namespace {namespace}")


# --------------------------------------------------------------------------------------------
# registry name show|add-publisher|remove-publisher
# --------------------------------------------------------------------------------------------


def _publisher_write(profile: str | None, account: str | None, json_output: bool, name: str, action: str,
                     target: str) -> None:
    from registry.release import validate_name

    validate_name(name)
    settings = _settings(profile)
    signer = command_signer(settings, account)
    client = _client(settings)
    if action == "add-publisher":
        result = client.add_publisher(name, target, signer.account)
        message = f"{target} may now publish {name}"
    else:
        result = client.remove_publisher(name, target, signer.account)
        message = f"{target} may no longer publish {name}; its releases of {name} no longer count"
    data = {"name": name, "action": action, "sender": signer.address, "target": target, "tx": _tx_json(result)}
    _done(json_output, data, message)


@name_app.command("add-publisher")
def name_add_publisher(name: str, address: str, profile: Optional[str] = ProfileOpt,
                       account: Optional[str] = AccountOpt, json_output: bool = JsonOpt) -> None:
    """Let ADDRESS publish releases of NAME (namespace owner only)."""
    _publisher_write(profile, account, json_output, name, "add-publisher", address)


@name_app.command("remove-publisher")
def name_remove_publisher(name: str, address: str, profile: Optional[str] = ProfileOpt,
                          account: Optional[str] = AccountOpt, json_output: bool = JsonOpt) -> None:
    """Stop ADDRESS from publishing NAME (namespace owner only). Its releases stop counting until it is
    added again: latest and aliases skip them, feeds refuse them, verify fails them."""
    _publisher_write(profile, account, json_output, name, "remove-publisher", address)


@name_app.command("show")
def name_show(name: str, profile: Optional[str] = ProfileOpt, json_output: bool = JsonOpt) -> None:
    """Owner (its namespace's), pending owner, publishers (replayed from events, re-checked on chain),
    release count."""
    from registry.release import validate_name

    validate_name(name)
    client = _client(_settings(profile))
    info = client.name_info(name, with_publishers=True)
    if json_output:
        print_json(info.to_json())
        return
    out = console()
    if not info.claimed:
        out.print(f"{name}: namespace {info.namespace} is unclaimed", markup=False)
        return
    publishers = ", ".join(info.publishers) if info.publishers is not None else "(not available from this node)"
    out.print(f"{name}\n  owner (namespace {info.namespace}): {info.owner}\n  pending owner: {info.pending_owner or '-'}\n"
              f"  publishers: {publishers}\n  releases: {info.release_count}", markup=False)


# --------------------------------------------------------------------------------------------
# registry alias set|rm|list
# --------------------------------------------------------------------------------------------


@alias_app.command("set")
def alias_set(
    name: str = typer.Argument(..., help="NAMESPACE/MODEL"),
    alias: str = typer.Argument(..., help="[a-z][a-z0-9-]{0,31}, not 'latest' (e.g. production)"),
    target: str = typer.Argument(..., help="The release: VERSION, NAME@VERSION or a 0x release id."),
    profile: Optional[str] = ProfileOpt,
    account: Optional[str] = AccountOpt,
    json_output: bool = JsonOpt,
) -> None:
    """Point NAME@ALIAS at a release of NAME (create it or move it; namespace owner only)."""
    from registry.release import validate_alias, validate_name

    validate_name(name)
    validate_alias(alias)
    settings = _settings(profile)
    signer = command_signer(settings, account)
    client = _client(settings)
    record = _alias_target(client, name, target)
    result = client.set_alias(name, alias, record.id, signer.account)
    data = {"name": name, "alias": alias, "ref": f"{name}@{alias}", "release": record.ref,
            "release_id": "0x" + record.id.hex(), "sender": signer.address, "tx": _tx_json(result)}
    _done(json_output, data, f"{name}@{alias} -> {record.ref}")


def _alias_target(client: "RegistryClient", name: str, target: str) -> "ReleaseRecord":
    from registry.errors import InputError
    from registry.release import parse_ref

    text = target.strip()
    if text.startswith("0x") and len(text) == 66:
        try:
            return client.get_by_id(bytes.fromhex(text[2:]))
        except ValueError as exc:
            raise InputError(f"invalid release id {target!r}") from exc
    ref = parse_ref(text if "@" in text else f"{name}@{text}")
    if ref.kind != "version":
        raise InputError(f"an alias points at a fixed release: give VERSION, NAME@VERSION or a release id, not {target!r}")
    return client.resolve(ref)


@alias_app.command("rm")
def alias_rm(name: str, alias: str, profile: Optional[str] = ProfileOpt, account: Optional[str] = AccountOpt,
             json_output: bool = JsonOpt) -> None:
    """Delete NAME@ALIAS (namespace owner only)."""
    from registry.release import validate_name

    validate_name(name)
    settings = _settings(profile)
    signer = command_signer(settings, account)
    result = _client(settings).remove_alias(name, alias, signer.account)
    data = {"name": name, "alias": alias, "sender": signer.address, "tx": _tx_json(result)}
    _done(json_output, data, f"removed {name}@{alias}")


@alias_app.command("list")
def alias_list(name: str, profile: Optional[str] = ProfileOpt, json_output: bool = JsonOpt) -> None:
    """Every alias of NAME, its target version, and whether it still resolves."""
    from registry.chain.views import alias_views
    from registry.release import validate_name

    validate_name(name)
    views = alias_views(_client(_settings(profile)), name)
    if json_output:
        print_json(views)
        return
    out = console()
    if not views:
        out.print(f"{name} has no aliases", markup=False)
    for item in views:
        state = "" if item["resolves"] else "  (does not resolve: target revoked or its publisher removed)"
        out.print(f"{item['ref']} -> {item['version']}  {item['release_id']}{state}", markup=False, soft_wrap=True)


def register(app: typer.Typer) -> None:
    """Adds the namespace, name and alias groups."""
    app.add_typer(namespace_app, name="namespace")
    app.add_typer(name_app, name="name")
    app.add_typer(alias_app, name="alias")
