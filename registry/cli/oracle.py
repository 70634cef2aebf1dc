"""``registry oracle run`` and ``registry oracle feed deploy|status|approve|add-node``.

The node runs in the foreground until SIGINT/SIGTERM, logging every step (swaps, refusals,
submissions, skipped rounds, outages) as one line on stderr, or as JSON lines on stdout with
``--json``. An RPC that is down at start-up is waited for, not fatal (registry.oracle.startup);
a wrong chain, address or key still fails at once. Library imports stay inside the commands so
``registry oracle --help`` is instant.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, List, Optional

import typer

_LEVEL_STYLE = {"info": "green", "warning": "yellow", "error": "bold red"}


def register(app: typer.Typer) -> None:
    """Adds the ``oracle`` group (and its ``feed`` subgroup) to the top-level app."""
    oracle = typer.Typer(help="Serve verified models' predictions to PredictionFeed contracts.", no_args_is_help=True)
    feed = typer.Typer(help="Deploy and inspect PredictionFeed contracts.", no_args_is_help=True)
    oracle.command("run", help="Follow NAME@latest, verify and hot-swap releases, submit predictions, serve "
                               "GET /health and POST /predict on 127.0.0.1.")(run)
    feed.command("deploy", help="Deploy a PredictionFeed for a model of this profile's registry.")(feed_deploy)
    feed.command("status", help="Show a feed: approved release, nodes, quorum, latest round and its model.")(
        feed_status)
    feed.command("approve", help="Approve a release (NAME@VERSION or NAME@latest) for a feed (owner only).")(
        feed_approve)
    feed.command("add-node", help="Authorise a node address on a feed (owner only).")(feed_add_node)
    oracle.add_typer(feed, name="feed")
    app.add_typer(oracle, name="oracle")


def _clean(value: Any) -> str:
    from registry.cli._render import clean

    return clean(value)


def _console() -> Any:
    """stderr console that never re-wraps long lines (addresses and digests must stay whole)."""
    from registry.cli._render import console

    out = console()
    out.soft_wrap = True
    return out


def _signer(settings: Any, account: Optional[str], key_env: Optional[str]) -> Any:
    """``--key-env NAME`` reads a private key from that variable (never printed); else load_signer."""
    if key_env:
        from registry.keys import signer_from_env_var

        # the same rules as every key: never echoed, anvil's public keys refused off the local chain
        signer = signer_from_env_var(settings, key_env)
        if signer.warning:
            _console().print(f"[bold red]WARNING:[/] {signer.warning}", soft_wrap=True)
        return signer.account
    from registry.cli._signing import command_signer

    return command_signer(settings, account).account


def _feed_client(registry: Any, address: str, settings: Any) -> Any:
    from registry.oracle.feed import FeedClient

    profile = settings.profile
    return FeedClient.at(registry.rpc_url, address, profile.confirmations, profile.timeout_s, profile.retries)


def _open_feed(profile: Optional[str], address: str) -> tuple[Any, Any, Any]:
    """Settings, the registry client and the feed client that every ``oracle feed`` command needs."""
    from registry.chain.client import RegistryClient
    from registry.config import load_settings

    settings = load_settings(profile)
    registry = RegistryClient.connect(settings)
    return settings, registry, _feed_client(registry, address, settings)


def run(
    model: str = typer.Option(..., "--model", help="What to follow: NAME (its newest release that verifies) or "
                                                    "NAME@ALIAS (the release the alias points at, re-read every poll)."),
    feed: str = typer.Option(..., "--feed", help="PredictionFeed address."),
    input_source: str = typer.Option(..., "--input", help="CSV/JSON file or http(s) URL returning JSON numbers."),
    interval: float = typer.Option(60.0, "--interval", min=0.05, help="Seconds between rounds."),
    poll: Optional[float] = typer.Option(None, "--poll", min=0.05, help="Seconds between registry polls "
                                                                          "(default: min(interval, 5))."),
    policy: Optional[Path] = typer.Option(None, "--policy", help="Verification policy (TOML)."),
    trust: Optional[List[str]] = typer.Option(None, "--trust", help="Trusted publisher address (repeatable)."),
    port: int = typer.Option(8787, "--port", min=0, max=65535, help="Local HTTP port on 127.0.0.1 (0: any)."),
    state_dir: Optional[Path] = typer.Option(None, "--state-dir", help="Where node state lives "
                                                                       "(default: <data dir>/oracle/<feed>-<node>)."),
    rounds: Optional[int] = typer.Option(None, "--rounds", min=1, help="Stop after this many submissions."),
    account: Optional[str] = typer.Option(None, "--account", help="Keystore account of the node."),
    key_env: Optional[str] = typer.Option(None, "--key-env", help="Env var holding the node's private key."),
    profile: Optional[str] = typer.Option(None, "--profile", help="Profile (default: local)."),
    json_output: bool = typer.Option(False, "--json", help="Log events as JSON lines on stdout."),
) -> None:
    import json
    import signal
    import threading

    from registry.config import load_settings
    from registry.oracle.inputs import open_source
    from registry.oracle.node import NodeConfig, OracleNode
    from registry.oracle.startup import Backoff, connect_clients

    settings = load_settings(profile)
    # a bad key or input fails before any wait for the RPC
    signer = _signer(settings, account, key_env)
    source = open_source(input_source)
    out = _console()

    def log(event: dict[str, Any]) -> None:
        if json_output:
            print(json.dumps(event, sort_keys=True, default=str), flush=True)
            return
        from registry.cli._render import clean

        style = _LEVEL_STYLE.get(event["level"], "white")
        out.print(f"[{style}]{event['level']:7}[/{style}] {clean(event['event'])}: {clean(event['message'])}",
                  highlight=False)

    # installed before connecting: a stop while the RPC is down ends the wait (exit 15, one line)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    poll_s = poll if poll is not None else min(interval, 5.0)
    registry, feed_client = connect_clients(settings, feed, stop, on_event=log, backoff=Backoff.for_poll(poll_s))
    directory = state_dir or settings.home / "oracle" / f"{feed_client.address.lower()}-{signer.address.lower()}"
    config = NodeConfig(model=model, interval_s=interval, poll_s=poll_s,
                        state_dir=directory, policy=policy, trust=tuple(trust or ()))
    node = OracleNode(config, registry, feed_client, signer, source, settings=settings,
                      on_event=log)
    server = node.serve(port)
    if not json_output:
        out.print(f"oracle node {signer.address} -> feed {feed_client.address} for {model}; "
                  f"http {server.url}/health ; state {directory}")
    try:
        node.run(stop, rounds=rounds)
    finally:
        server.stop()
    if json_output:
        print(json.dumps({"event": "stopped", "health": node.health()}, sort_keys=True, default=str), flush=True)


def feed_deploy(
    model: str = typer.Option(..., "--model", help="owner/model whose releases the feed accepts."),
    description: str = typer.Option("", "--description", help="Human description (Chainlink description())."),
    decimals: int = typer.Option(8, "--decimals", min=0, max=36, help="Fixed-point decimals of answers."),
    quorum: int = typer.Option(1, "--quorum", min=1, max=31,
                               help="Answers that close a round: odd (2f+1 tolerates f lying nodes)."),
    node: Optional[List[str]] = typer.Option(None, "--node", help="Node address to authorise (repeatable)."),
    approve: Optional[str] = typer.Option(None, "--approve", help="Release to approve (NAME@VERSION|NAME@latest)."),
    follow_latest: bool = typer.Option(False, "--follow-latest", help="Let anyone sync approval to NAME@latest."),
    account: Optional[str] = typer.Option(None, "--account", help="Keystore account (becomes the owner)."),
    profile: Optional[str] = typer.Option(None, "--profile", help="Profile (default: local)."),
    json_output: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    from registry.chain.client import RegistryClient
    from registry.cli._render import print_json
    from registry.config import load_settings
    from registry.errors import InputError
    from registry.oracle.feed import FeedClient

    settings = load_settings(profile)
    registry = RegistryClient.connect(settings)
    owner = _signer(settings, account, None)
    release = registry.resolve(approve) if approve else None
    if release is not None and release.name != model:
        raise InputError(f"--approve {approve} is a release of {release.name}, not {model}")
    if quorum % 2 == 0:
        raise InputError(f"quorum must be odd (2f+1 answers tolerate f liars), not {quorum}")
    if len(node or []) < quorum:
        raise InputError(f"quorum {quorum} needs at least {quorum} --node addresses")
    prof = settings.profile
    client = FeedClient.deploy(registry.rpc_url, owner, registry.address, model, description or f"{model} forecast",
                               decimals, 1, prof.confirmations, prof.timeout_s, prof.retries)
    for address in node or []:
        client.add_node(address, owner)
    if quorum != 1:
        client.set_quorum(quorum, owner)
    if release is not None:
        client.set_approved_release(release.id, owner)
    if follow_latest:
        client.set_follow_latest(True, owner)
    status = client.status()
    if json_output:
        print_json(status.to_json())
        return
    _console().print(f"[green]deployed[/green] PredictionFeed {client.address} for {model} "
                    f"(quorum {status.quorum}, {len(status.nodes)} node(s), approved "
                    f"{_clean(release.ref) if release else 'none yet'})")


def feed_status(
    address: str = typer.Argument(..., help="PredictionFeed address."),
    profile: Optional[str] = typer.Option(None, "--profile", help="Profile (default: local)."),
    json_output: bool = typer.Option(False, "--json", help="Print the status as JSON."),
) -> None:
    from registry.cli._render import print_json
    from registry.errors import RegistryError

    _settings, registry, feed_client = _open_feed(profile, address)
    status = feed_client.status()
    data = status.to_json()
    for key, rid in (("approved", status.approved_release),
                     ("latest_model", status.latest.release_id if status.latest else None)):
        if rid and any(rid):
            try:
                data[key + "_ref"] = registry.get_by_id(rid).ref
            except RegistryError:
                data[key + "_ref"] = None
    if json_output:
        print_json(data)
        return
    from registry.cli._render import clean

    out = _console()  # description, names and refs come from the chain: clean() them
    out.print(f"PredictionFeed {status.address}  ({clean(status.description)}, {status.decimals} decimals)")
    out.print(f"  model     {clean(status.model_name)}; approved {clean(data.get('approved_ref') or 'none')} "
              f"({data['approved_release']})")
    out.print(f"  nodes     {', '.join(status.nodes) or 'none'}; quorum {status.quorum}; "
              f"follow-latest {status.follow_latest}")
    out.print(f"  open      round {status.open_round.round_id} with {status.open_round.submissions} answer(s)")
    if status.latest is None:
        out.print("  latest    no round closed yet")
    else:
        latest = data["latest"]
        out.print(f"  latest    round {latest['round_id']}: {latest['value']} (answer {latest['answer']}) from "
                  f"{clean(data.get('latest_model_ref'))} sha256 {latest['artifact_sha256']}")


def feed_approve(
    address: str = typer.Argument(..., help="PredictionFeed address."),
    ref: str = typer.Argument(..., help="NAME@VERSION or NAME@latest."),
    account: Optional[str] = typer.Option(None, "--account", help="Keystore account of the feed owner."),
    profile: Optional[str] = typer.Option(None, "--profile", help="Profile (default: local)."),
    json_output: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    from registry.cli._render import print_json

    settings, registry, feed_client = _open_feed(profile, address)
    release = registry.resolve(ref)
    tx = feed_client.set_approved_release(release.id, _signer(settings, account, None))
    if json_output:
        print_json({"feed": address, "approved": release.ref, "release_id": "0x" + release.id.hex(), "tx": tx})
        return
    from registry.cli._render import clean

    _console().print(f"[green]approved[/green] {clean(release.ref)} on {address} ({tx})")


def feed_add_node(
    address: str = typer.Argument(..., help="PredictionFeed address."),
    node: str = typer.Argument(..., help="Node address to authorise."),
    account: Optional[str] = typer.Option(None, "--account", help="Keystore account of the feed owner."),
    profile: Optional[str] = typer.Option(None, "--profile", help="Profile (default: local)."),
    json_output: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    from registry.cli._render import print_json

    settings, _registry, feed_client = _open_feed(profile, address)
    tx = feed_client.add_node(node, _signer(settings, account, None))
    if json_output:
        print_json({"feed": address, "node": node, "tx": tx})
        return
    _console().print(f"[green]authorised[/green] node {node} on {address} ({tx})")
