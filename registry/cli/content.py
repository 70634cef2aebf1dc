"""``registry cid`` and ``registry ipfs …``: content addressing and storage from the shell.

``registry cid`` needs no store and no network: it is how a user checks, offline, the CID that a
release claims. ``ipfs put/get/pin/export-car/import-car`` act on the profile's store (local
blocks, a Kubo node, or a trustless gateway for reads); ``--store`` overrides it for one call.
The library is imported inside the commands so ``--help`` stays instant.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Optional

import typer

PROFILE_HELP = "UnixFS profile: kubo-v0 (plain `ipfs add`), kubo-v1 (--cid-version=1), unixfs-v1-2025 (IPIP-499)."
STORE_HELP = "Store for this call: local | kubo:<rpc url> | gateway:<url> (default: the profile's store)."

ipfs_app = typer.Typer(help="Put, get, pin and move content (CAR) in the configured IPFS store.",
                       no_args_is_help=True)


def register(app: typer.Typer) -> None:
    """Adds ``cid`` and the ``ipfs`` group to the top-level app."""
    app.command("cid", help="Compute the CID `ipfs add` (a file) or `ipfs add -r` (a directory) gives, and the "
                             "SHA-256 and size, offline, in one pass. For a directory the SHA-256 is that of its "
                             "canonical file list, as a release anchors it.")(cid)
    app.add_typer(ipfs_app, name="ipfs")


def _size_of(path: Path) -> Optional[int]:
    try:
        return path.stat().st_size if path.is_file() else None
    except OSError:
        return None


def _settings(profile: Optional[str], store: Optional[str]) -> Any:
    from dataclasses import replace

    from registry.config import load_settings

    settings = load_settings(profile)
    if store:
        settings = replace(settings, profile=replace(settings.profile, store=store))
    return settings


def _open(profile: Optional[str], store: Optional[str]) -> Any:
    from registry.content.stores import open_store

    return open_store(_settings(profile, store))


def cid(
    file: Path = typer.Argument(..., help="The file or directory to hash."),
    profile: str = typer.Option("kubo-v1", "--profile", help=PROFILE_HELP),
    json_output: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    from registry.cli._progress import byte_progress, tree_total
    from registry.cli._render import print_json, wants_progress
    from registry.content.tree import import_tree, is_tree
    from registry.content.unixfs import get_profile, import_file

    get_profile(profile)  # unknown profile: fail before reading anything
    tree = is_tree(file)
    with byte_progress(f"hashing {file.name}", tree_total(file), wants_progress(json_output)) as bars:
        result = (import_tree(file, profile, progress=bars.advance, file_progress=bars.file) if tree
                  else import_file(file, profile, progress=bars.advance))
    if json_output:
        print_json(result.to_json())
        return
    _print_result(result.to_json())


def _print_result(shown: dict[str, Any]) -> None:
    print(f"cid     {shown['cid']}")
    if shown["cid"] != shown["cid_v1"]:
        print(f"cid_v1  {shown['cid_v1']}")
    print(f"sha256  {shown['sha256']}" + ("  (canonical file list)" if shown.get("kind") == "directory" else ""))
    print(f"size    {shown['size']}")
    if shown.get("kind") == "directory":
        print(f"files   {len(shown['files'])}")
        if shown.get("ignored"):
            print(f"ignored {', '.join(shown['ignored'])} (hidden, as `ipfs add -r` leaves them out)")


@ipfs_app.command("put", help="Add a file or a directory (as `ipfs add -r`) to the store; the store's CID must "
                              "equal the one computed here.")
def put(
    file: Path = typer.Argument(..., help="The file or directory to add."),
    cid_profile: Optional[str] = typer.Option(None, "--cid-profile", help=PROFILE_HELP + " Default: the profile's."),
    store: Optional[str] = typer.Option(None, "--store", help=STORE_HELP),
    pin: bool = typer.Option(True, "--pin/--no-pin", help="Pin after adding."),
    profile: Optional[str] = typer.Option(None, "--profile", help="Registry profile (default: local)."),
    json_output: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    from registry.cli._render import console, print_json, wants_progress
    from registry.content.unixfs import get_profile

    from registry.content.stores import open_store

    from registry.cli._progress import byte_progress, tree_total
    from registry.content.tree import is_tree

    settings = _settings(profile, store)
    prof = get_profile(cid_profile or settings.profile.cid_profile).name
    target = open_store(settings)
    with byte_progress(f"adding {file.name}", tree_total(file), wants_progress(json_output)) as bars:
        result = (target.put_tree(file, prof, progress=bars.advance) if is_tree(file)
                  else target.put_file(file, prof, progress=bars.advance))
    if pin:
        target.pin(result.cid)
    out = dict(result.to_json(), pinned=pin, store=settings.profile.store)
    if json_output:
        print_json(out)
        return
    console().print(f"[green]added[/green] {file}")
    _print_result(out)


@ipfs_app.command("get", help="Download a CID (a file, or a directory tree), verifying every block; nothing is "
                              "left at -o on failure.")
def get(
    cid_text: str = typer.Argument(..., metavar="CID", help="The CID (Qm…, b…)."),
    output: Path = typer.Option(..., "-o", "--output", help="Destination file or directory (renamed into place "
                                                            "once complete)."),
    max_size: Optional[int] = typer.Option(None, "--max-size", help="Refuse content larger than this many bytes."),
    store: Optional[str] = typer.Option(None, "--store", help=STORE_HELP),
    profile: Optional[str] = typer.Option(None, "--profile", help="Registry profile (default: local)."),
    json_output: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    import hashlib

    from registry.cli._render import console, print_json, progress, wants_progress
    from registry.fsutil import atomic_write
    from registry.content.cids import display, parse_cid

    c = parse_cid(cid_text)
    target = _open(profile, store)
    if target.kind(c) == "directory":
        from registry.content.get import get_tree

        with progress(f"fetching {c}", max_size, wants_progress(json_output)) as advance:
            listing = get_tree(target, c, output, max_size, advance)
        out = {"cid": str(c), "cid_v1": display(c)["v1"], "path": str(output), "kind": "directory",
               "size": listing.total_size, "sha256": listing.sha256.hex(), "files": len(listing.entries)}
        if json_output:
            print_json(out)
            return
        console().print(f"[green]verified[/green] {c} -> {output}/ ({len(listing.entries)} files, "
                        f"{listing.total_size} bytes)")
        print(f"sha256  {out['sha256']}  (canonical file list)")
        return
    digest = hashlib.sha256()

    def hashed() -> Any:
        for piece in target.open(c, max_size):
            digest.update(piece)
            yield piece

    with progress(f"fetching {c}", max_size, wants_progress(json_output)) as advance:
        size = atomic_write(output, hashed(), progress=advance)
    out = {"cid": str(c), "cid_v1": display(c)["v1"], "path": str(output), "size": size, "sha256": digest.hexdigest()}
    if json_output:
        print_json(out)
        return
    console().print(f"[green]verified[/green] {c} -> {output} ({size} bytes)")
    print(f"sha256  {out['sha256']}")


@ipfs_app.command("pin", help="Pin a CID in the store, or at a remote pinning service with --service.")
def pin(
    cid_text: str = typer.Argument(..., metavar="CID", help="The CID to pin."),
    service: Optional[str] = typer.Option(None, "--service", help="Pinning Service API URL (token: REGISTRY_PINNING_TOKEN)."),
    name: Optional[str] = typer.Option(None, "--name", help="Pin name at the pinning service."),
    timeout: float = typer.Option(300.0, "--timeout", help="Seconds to wait for the service to report pinned."),
    store: Optional[str] = typer.Option(None, "--store", help=STORE_HELP),
    profile: Optional[str] = typer.Option(None, "--profile", help="Registry profile (default: local)."),
    json_output: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    from registry.cli._render import console, print_json
    from registry.content.cids import parse_cid

    c = parse_cid(cid_text)
    out: dict[str, Any] = {"cid": str(c)}
    if service:
        from registry.content.pinning import PinningService

        svc = PinningService(service, os.environ.get("REGISTRY_PINNING_TOKEN", ""))
        st = svc.pin(c, name=name, timeout=timeout)
        out.update(service=service, requestid=st.requestid, status=st.status)
    else:
        _open(profile, store).pin(c)
        out.update(status="pinned")
    if json_output:
        print_json(out)
        return
    console().print(f"[green]pinned[/green] {c}" + (f" at {service} (request {out['requestid']})" if service else ""))


@ipfs_app.command("export-car", help="Write a CID's whole DAG as a CAR v1 file (for `ipfs dag import`).")
def export_car(
    cid_text: str = typer.Argument(..., metavar="CID", help="The root CID."),
    output: Path = typer.Option(..., "-o", "--output", help="The .car file to write (atomically)."),
    store: Optional[str] = typer.Option(None, "--store", help=STORE_HELP),
    profile: Optional[str] = typer.Option(None, "--profile", help="Registry profile (default: local)."),
    json_output: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    from registry.cli._render import console, print_json
    from registry.content.cids import parse_cid

    c = parse_cid(cid_text)
    size = _open(profile, store).export_car_file(c, output)
    out = {"root": str(c), "path": str(output), "bytes": size}
    if json_output:
        print_json(out)
        return
    console().print(f"[green]exported[/green] {c} -> {output} ({size} bytes)")


@ipfs_app.command("import-car", help="Import a CAR v1 file into the store, verifying every block; pins its roots.")
def import_car(
    car: Path = typer.Argument(..., help="The .car file."),
    pin_roots: bool = typer.Option(True, "--pin/--no-pin", help="Pin the roots once every block is in."),
    store: Optional[str] = typer.Option(None, "--store", help=STORE_HELP),
    profile: Optional[str] = typer.Option(None, "--profile", help="Registry profile (default: local)."),
    json_output: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    from registry.cli._render import console, print_json

    target = _open(profile, store)
    roots = target.import_car_file(car, pin_roots)
    out = {"roots": [str(r) for r in roots], "pinned": pin_roots}
    if json_output:
        print_json(out)
        return
    for r in roots:
        console().print(f"[green]imported[/green] {r}")
