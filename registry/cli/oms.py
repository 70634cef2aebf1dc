"""``registry export-oms``: a release's verified files as an OpenSSF model-signing (Sigstore) bundle."""

from __future__ import annotations

import os
from pathlib import Path
from typing import List, Optional

import typer


def register(app: typer.Typer) -> None:
    app.command("export-oms", help=(
        "Verify a release, then write an OpenSSF model-signing bundle (Sigstore bundle, DSSE, in-toto, "
        "model_signing v1.0 predicate) for its files, signed with a P-256 key (`registry key new --curve p256`). "
        "Check it with `model_signing verify key --signature model.sig --public_key KEY.pub DIR`; attest its "
        "digest on chain with `registry attest REF --pass --report model.sig`."))(export_oms)


def export_oms(
    ref: str = typer.Argument(..., help="NAME@VERSION, NAME@latest or sha256:HEX"),
    output: Path = typer.Option(..., "-o", "--output", help="The bundle to write (e.g. model.sig)."),
    key: Path = typer.Option(..., "--key", help="P-256 private key (PEM); password from REGISTRY_KEYSTORE_PASSWORD."),
    file: Optional[Path] = typer.Option(None, "--file", help="The local file or directory (else fetch from the store)."),
    manifest: Optional[Path] = typer.Option(None, "--manifest", help="Release manifest (enables offline mode)."),
    trust: Optional[List[str]] = typer.Option(None, "--trust", help="Trusted publisher address (repeatable)."),
    offline: bool = typer.Option(False, "--offline", help="Never contact an RPC (needs --manifest and --trust)."),
    profile: Optional[str] = typer.Option(None, "--profile", help="Profile (default: local)."),
    json_output: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    from registry.cli._render import console, print_json
    from registry.cli.release import render_report
    from registry.config import load_settings
    from registry.keys import PASSWORD_ENV
    from registry.oms import export_oms as run_export
    from registry.verify import VerificationFailed

    settings = load_settings(profile)
    try:
        result = run_export(ref, output, key, os.environ.get(PASSWORD_ENV), file=file, manifest=manifest,
                            trust=tuple(trust or ()), offline=offline, settings=settings)
    except VerificationFailed as failed:
        if json_output:
            print_json({"error": str(failed), "exit_code": failed.exit_code, "report": failed.report.to_json()})
        else:
            render_report(failed.report)
            console().print("[bold red]nothing was signed[/bold red]")
        raise typer.Exit(failed.exit_code)
    if json_output:
        print_json(result.to_json())
        return
    out = console()
    out.print(f"[green]signed[/green] {result.ref} ({result.files} files) -> {result.path}")
    out.print(f"  sha256  {result.sha256.hex()}")
    out.print(f"  attest  {result.to_json()['attest']}")
