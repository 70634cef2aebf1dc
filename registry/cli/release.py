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
    "rules); 15 unreachable (RPC, store); 16 local storage full or not writable (pull target, data dir)."
)
_STYLE = {"pass": "green", "fail": "bold red", "skip": "yellow"}


def register(app: typer.Typer) -> None:
    """Adds publish, verify and pull to the top-level app."""
    app.command("publish", help="Store, sign and anchor a model (an ONNX file, or a directory: model.onnx with its "
                                "external data, tokenizer, config); writes NAME@VERSION.release.json beside it. "
                                "The same ONNX and size checks as verify run first: a model that could never "
                                "verify is refused before any transaction. Claims your namespace (the OWNER of "
                                "OWNER/MODEL) first when it is unclaimed. Re-running it after an interruption "
                                "completes the publish and never publishes twice. "
                                + EXIT_CODES_HELP.replace("0 verified", "0 published"))(publish)
    app.command("verify", help="Run the nine verification checks on a release. " + EXIT_CODES_HELP)(verify)
    app.command("pull", help="Download, verify and only then install a model in DIR. With the block cache or --from, "
                             "only the blocks the device lacks are fetched; the whole release is verified either "
                             "way. " + EXIT_CODES_HELP)(pull)


def publish(
    model: Path = typer.Argument(..., help="The ONNX model file, or a directory holding model.onnx and its files."),
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
    layout: str = typer.Option("as-is", "--layout", help="as-is: publish MODEL as given. tensors: first rewrite it "
                               "as model.onnx plus one file per large tensor and small tensors grouped per layer, "
                               "so a later version that changes a few tensors shares every other block with this "
                               "one (devices then fetch only what changed). The tree is written to --layout-dir."),
    layout_dir: Optional[Path] = typer.Option(None, "--layout-dir", help="Where --layout tensors writes the tree "
                                              "(default: <model stem>.tensors beside MODEL; an identical tree "
                                              "there is reused, a different one refused)."),
    json_output: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    from registry.cli._render import console, print_json, wants_progress
    from registry.cli._signing import command_signer
    from registry.config import load_settings
    from registry.publish import publish_model

    from registry.cli._progress import byte_progress, tree_total
    from registry.errors import RegistryError
    from registry.gc import quick_sweep
    from registry.interrupted import publish_interrupted

    if card is not None and not card.exists():
        _draft_card(card, model, name, version, provenance)
    settings = load_settings(profile)
    signer = command_signer(settings, account)
    say = (lambda _m: None) if json_output else (lambda m: console().print(m, markup=False, soft_wrap=True))
    quick_sweep(None, [model.parent])  # temp files of a killed earlier run beside the model
    try:
        with byte_progress(f"hashing {model.name}", tree_total(model), wants_progress(json_output)) as bars:
            result = publish_model(model, name, version, provenance_path=provenance, parent=parent,
                                   settings=settings, signer=signer.account, progress=bars.advance, card=card,
                                   on_event=say, layout=layout, layout_dir=layout_dir)
    except RegistryError as exc:  # a chain that went away mid-publish: say how to complete it
        hinted = publish_interrupted(exc, f"{name}@{version}", settings.profile.is_local)
        if hinted is exc:
            raise
        raise hinted from exc
    if json_output:
        print_json(result.to_json())
        return
    from registry.cli._render import clean

    out = console()
    verb = "already published" if result.already_published else "published"
    out.print(f"[green]{verb}[/green] {clean(result.record.ref)}  id 0x{result.record.id.hex()}")
    kind = getattr(result.artifact, "kind", "file")
    files = f", {len(result.artifact.files.entries)} files" if kind == "directory" else ""
    out.print(f"  sha256    {result.artifact.sha256.hex()}  ({result.artifact.size} bytes{files})")
    out.print(f"  cid       {result.artifact.to_json()['cid_v1']}  ({result.artifact.profile})")
    if layout != "as-is":
        out.print(f"  layout    {clean(result.artifact_path)}  ({layout})")
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
    file: Optional[Path] = typer.Option(None, "--file", help="Verify this local file or directory (else fetch "
                                                             "from the store)."),
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
    from registry.cli._render import print_json, wants_progress
    from registry.config import load_settings
    from registry.verify import verify as run_verify

    from registry.cli._progress import byte_progress, tree_total

    from registry.fsutil import require_file_or_tree

    if file is not None:
        require_file_or_tree(file, what="--file")
    settings = load_settings(profile)
    total = tree_total(file) if file is not None else None
    with byte_progress("verifying", total, wants_progress(json_output)) as bars:
        report = run_verify(ref, file=file, manifest=manifest, trust=tuple(trust or ()), policy=policy,
                            provenance=provenance, offline=offline, installed_version=installed, settings=settings,
                            progress=bars.advance, file_progress=bars.file, card=card, chain_id=chain_id)
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
    base: Optional[str] = typer.Option(None, "--from", help="NAME@VERSION installed in DIR to update from: its "
                                       "files and cached blocks are reused, only what changed is fetched (the "
                                       "default is the newest installed release of the same name when the block "
                                       "cache is on). Every byte is still verified; a damaged copy is refetched."),
    cache: Optional[bool] = typer.Option(None, "--cache/--no-cache", help="Keep verified blocks in the device's "
                                         "block cache and reuse them (default: on for Kubo and gateway stores, off "
                                         "for the local store, whose blocks are already on this disk)."),
    cache_max: Optional[str] = typer.Option(None, "--cache-max", help="Bound of the block cache, e.g. 512M or 4G "
                                            "(default: REGISTRY_BLOCK_CACHE_MAX, else 2G); least recently used "
                                            "blocks are evicted past it."),
    profile: Optional[str] = typer.Option(None, "--profile", help="Profile (default: local)."),
    json_output: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    from registry.cli._progress import byte_progress
    from registry.cli._render import console, print_json, wants_progress
    from registry.config import load_settings
    from registry.update import pull_update
    from registry.verify import VerificationFailed

    from registry.gc import quick_sweep

    settings = load_settings(profile)
    quick_sweep(None, [out_dir])  # .part files of a killed earlier pull
    bound = None
    if cache_max is not None:
        from registry.content.blockcache import parse_size

        bound = parse_size(cache_max)
    try:
        with byte_progress(f"pulling {ref}", None, wants_progress(json_output)) as bars:
            result = pull_update(ref, out_dir, base=base, cache=cache, cache_max=bound, manifest=manifest,
                                 trust=tuple(trust or ()), policy=policy, settings=settings, progress=bars.advance,
                                 file_progress=bars.file)
    except VerificationFailed as failed:
        if json_output:
            print_json({"error": str(failed), "exit_code": failed.exit_code, "report": failed.report.to_json()})
        else:
            from registry.cli._render import clean

            render_report(failed.report)
            console().print(f"[bold red]nothing was written to {clean(out_dir)}[/bold red]")
        raise typer.Exit(failed.exit_code)
    if json_output:
        print_json(result.to_json())
        return
    from registry.cli._render import clean

    render_report(result.report)
    out = console()
    out.print(f"[green]installed[/green] {clean(result.model_path)}" + ("/" if result.kind == "directory" else ""))
    out.print(f"  manifest   {clean(result.manifest_path)}")
    out.print(f"  provenance {clean(result.provenance_path)}")
    if result.files_path is not None:
        out.print(f"  file list  {clean(result.files_path)}")
    if result.transfer is not None:
        from registry.update import describe_transfer

        for line in describe_transfer(result.transfer):
            out.print(f"  {clean(line)}", highlight=False, soft_wrap=True)


def render_report(report: Any) -> None:
    """One line per check (status, name, detail), the key evidence under a failure, then a verdict.

    Details, evidence and notes quote the chain and provenance (a revocation reason, a name), so
    they go through ``clean``: no markup, no control characters, one line each."""
    from registry.cli._render import clean, console

    out = console()
    out.print(f"[bold]{clean(report.ref)}[/bold] ({clean(report.mode)})")
    for check in report.checks:
        style = _STYLE[check.status]
        out.print(f"  [{style}]{check.status.upper():4}[/{style}] {check.name:<21} {clean(check.detail)}",
                  highlight=False, soft_wrap=True)
        if check.status == "fail":
            for key in ("expected", "actual", "expected_size", "actual_size", "recovered", "publisher", "reason",
                        "revoked_ancestor", "subject_sha256", "expected_sha256", "actual_sha256"):
                if key in check.evidence:
                    out.print(f"         {key}: {clean(check.evidence[key])}", highlight=False, soft_wrap=True)
    for note in report.notes:
        out.print(f"  [yellow]note[/yellow] {clean(note)}", highlight=False, soft_wrap=True)
    if report.ok:
        out.print("[bold green]VERIFIED[/bold green]")
    else:
        out.print(f"[bold red]REJECTED[/bold red] (exit {report.exit_code})")
