"""``registry publish``, ``registry verify``, ``registry pull``: thin shells over the library.

The library is imported inside each command so ``registry verify --help`` costs nothing and a
device never imports torch. Verify prints every check with its status and evidence; its exit code
is the class of the first failing check.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, List, Optional

import typer

EXIT_CODES_HELP = (
    "Exit codes: 0 verified; 3 bad input (reference, manifest, policy file); 6 chain refused "
    "(unknown release, wrong chain); 10 integrity (SHA-256, CID or size); 11 signature or publisher "
    "authorisation; 12 revoked (release or an ancestor); 13 provenance; 14 format/policy (ONNX, policy "
    "rules); 15 unreachable (RPC, store)."
)
_STYLE = {"pass": "green", "fail": "bold red", "skip": "yellow"}


def register(app: typer.Typer) -> None:
    """Adds publish, verify and pull to the top-level app."""
    app.command("publish", help="Store, sign and anchor a model; writes NAME@VERSION.release.json beside it. "
                "Claims your namespace (the OWNER of OWNER/MODEL) first when it is unclaimed.")(publish)
    app.command("verify", help="Run the nine verification checks on a release. " + EXIT_CODES_HELP)(verify)
    app.command("pull", help="Download, verify and only then install a model in DIR. " + EXIT_CODES_HELP)(pull)


def publish(
    model: Path = typer.Argument(..., help="The ONNX model file."),
    name: str = typer.Option(..., "--name", help="owner/model"),
    version: str = typer.Option(..., "--version", help="SemVer version, unique per name."),
    provenance: Optional[Path] = typer.Option(None, "--provenance", help="Provenance statement (JSON)."),
    parent: Optional[str] = typer.Option(None, "--parent", help="Parent release NAME@VERSION."),
    card: Optional[Path] = typer.Option(None, "--card", help="Model card (Markdown with YAML front matter): "
                                        "pinned in the store, its SHA-256 and CID signed in the release. If "
                                        "the file does not exist, a draft is written there from the provenance "
                                        "(steps, metrics before/after) and nothing is published: edit it, then "
                                        "run the same command again."),
    profile: Optional[str] = typer.Option(None, "--profile", help="Profile (default: local)."),
    account: Optional[str] = typer.Option(None, "--account", "-a", help="Keystore address to sign with."),
    json_output: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    from registry.cli._render import console, print_json, progress, wants_progress
    from registry.cli._signing import command_signer
    from registry.config import load_settings
    from registry.publish import publish_model

    if card is not None and not card.exists():
        _draft_card(card, model, name, version, provenance)
    settings = load_settings(profile)
    signer = command_signer(settings, account)
    size = model.stat().st_size if model.is_file() else None
    say = (lambda _m: None) if json_output else (lambda m: console().print(m, markup=False, soft_wrap=True))
    with progress(f"hashing {model.name}", size, wants_progress(json_output)) as advance:
        result = publish_model(model, name, version, provenance_path=provenance, parent=parent, settings=settings,
                               signer=signer.account, progress=advance, card=card, on_event=say)
    if json_output:
        print_json(result.to_json())
        return
    out = console()
    verb = "already published" if result.already_published else "published"
    out.print(f"[green]{verb}[/green] {result.record.ref}  id 0x{result.record.id.hex()}")
    out.print(f"  sha256    {result.artifact.sha256.hex()}  ({result.artifact.size} bytes)")
    out.print(f"  cid       {result.artifact.to_json()['cid_v1']}  ({result.artifact.profile})")
    out.print(f"  publisher {result.record.publisher}")
    if result.record.has_card:
        out.print(f"  card      sha256 {result.record.card_sha256.hex()}")
    if result.transaction:
        out.print(f"  tx        {result.transaction}")
    if result.provenance_generated:
        out.print("  [yellow]no --provenance given: anchored a minimal statement without compression steps[/yellow]")
    out.print(f"  manifest  {result.manifest_path}")


def _draft_card(card: Path, model: Path, name: str, version: str, provenance: Optional[Path]) -> None:
    """``publish --card PATH`` with no file at PATH: write the draft there and stop (exit 3) so the
    publisher edits it before anything is signed; the same command then publishes it."""
    from registry.card import draft_for_release
    from registry.errors import InputError
    from registry.release import validate_name, validate_version

    validate_name(name)
    validate_version(version)
    draft_for_release(card, model, name, version, provenance)
    source = f"the provenance in {provenance}" if provenance else "the artifact (no --provenance given)"
    raise InputError(f"nothing published: {card} did not exist, so a model card draft was written there from "
                     f"{source}; edit it (license, intended use, limitations), then run the same command again")


def verify(
    ref: str = typer.Argument(..., help="NAME@VERSION, NAME@latest, NAME@ALIAS or sha256:HEX (refused when the "
                              "bytes belong to several names, unless --trust narrows it to one)"),
    file: Optional[Path] = typer.Option(None, "--file", help="Verify this local file (else fetch from the store)."),
    manifest: Optional[Path] = typer.Option(None, "--manifest", help="Release manifest (enables offline mode)."),
    trust: Optional[List[str]] = typer.Option(None, "--trust", help="Trusted publisher address (repeatable)."),
    policy: Optional[Path] = typer.Option(None, "--policy", help="Policy file (TOML)."),
    provenance: Optional[Path] = typer.Option(None, "--provenance", help="Provenance document (else store)."),
    offline: bool = typer.Option(False, "--offline", help="Never contact an RPC (needs --manifest and --trust; "
                                 "revocation is not checked). Without it an unreachable RPC fails with exit 15."),
    chain_id: Optional[int] = typer.Option(None, "--chain-id", help="Chain id the manifest must be signed for "
                                           "(offline; else the profile's or the policy's)."),
    card: Optional[Path] = typer.Option(None, "--card", help="The release's model card (else found beside --file "
                                        "or fetched from the store)."),
    installed: Optional[str] = typer.Option(None, "--installed", help="Installed version (for the rollback rule)."),
    profile: Optional[str] = typer.Option(None, "--profile", help="Profile (default: local)."),
    json_output: bool = typer.Option(False, "--json", help="Print the report as JSON."),
) -> None:
    from registry.cli._render import print_json, progress, wants_progress
    from registry.config import load_settings
    from registry.verify import verify as run_verify

    settings = load_settings(profile)
    with progress("verifying", None, wants_progress(json_output)) as advance:
        report = run_verify(ref, file=file, manifest=manifest, trust=tuple(trust or ()), policy=policy,
                            provenance=provenance, offline=offline, installed_version=installed, settings=settings,
                            progress=advance, card=card, chain_id=chain_id)
    if json_output:
        print_json(report.to_json())
    else:
        render_report(report)
    raise typer.Exit(report.exit_code)


def pull(
    ref: str = typer.Argument(..., help="NAME@VERSION, NAME@latest, NAME@ALIAS or sha256:HEX (refused when the "
                              "bytes belong to several names, unless --trust narrows it to one)"),
    out_dir: Path = typer.Option(..., "-o", "--out", help="Destination directory."),
    manifest: Optional[Path] = typer.Option(None, "--manifest", help="Release manifest."),
    trust: Optional[List[str]] = typer.Option(None, "--trust", help="Trusted publisher address (repeatable)."),
    policy: Optional[Path] = typer.Option(None, "--policy", help="Policy file (TOML)."),
    profile: Optional[str] = typer.Option(None, "--profile", help="Profile (default: local)."),
    json_output: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    from registry.cli._render import console, print_json
    from registry.config import load_settings
    from registry.pull import pull as run_pull
    from registry.verify import VerificationFailed

    settings = load_settings(profile)
    try:
        result = run_pull(ref, out_dir, manifest=manifest, trust=tuple(trust or ()), policy=policy, settings=settings)
    except VerificationFailed as failed:
        if json_output:
            print_json({"error": str(failed), "exit_code": failed.exit_code, "report": failed.report.to_json()})
        else:
            render_report(failed.report)
            console().print(f"[bold red]nothing was written to {out_dir}[/bold red]")
        raise typer.Exit(failed.exit_code)
    if json_output:
        print_json(result.to_json())
        return
    render_report(result.report)
    out = console()
    out.print(f"[green]installed[/green] {result.model_path}")
    out.print(f"  manifest   {result.manifest_path}")
    out.print(f"  provenance {result.provenance_path}")


def render_report(report: Any) -> None:
    """One line per check (status, name, detail), the key evidence under a failure, then a verdict."""
    from registry.cli._render import console

    out = console()
    out.print(f"[bold]{report.ref}[/bold] ({report.mode})")
    for check in report.checks:
        style = _STYLE[check.status]
        out.print(f"  [{style}]{check.status.upper():4}[/{style}] {check.name:<21} {check.detail}", highlight=False, soft_wrap=True)
        if check.status == "fail":
            for key in ("expected", "actual", "expected_size", "actual_size", "recovered", "publisher", "reason",
                        "revoked_ancestor", "subject_sha256", "expected_sha256", "actual_sha256"):
                if key in check.evidence:
                    out.print(f"         {key}: {check.evidence[key]}", highlight=False, soft_wrap=True)
    for note in report.notes:
        out.print(f"  [yellow]note[/yellow] {note}", highlight=False, soft_wrap=True)
    if report.ok:
        out.print("[bold green]VERIFIED[/bold green]")
    else:
        out.print(f"[bold red]REJECTED[/bold red] (exit {report.exit_code})")
