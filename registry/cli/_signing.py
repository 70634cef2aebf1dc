"""Choosing the signing key for a command, the one place the CLI talks to a person about keys.

The library (``registry.keys.resolve_signer``) picks the key and says when it is anvil's public dev
key; here a keystore password is prompted for on a terminal and that warning is shown, once, on
stderr, so ``--json`` output stays clean.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

import typer

from registry.cli._render import console

if TYPE_CHECKING:
    from registry.config import Settings
    from registry.keys import Signer


def prompt_password(label: str) -> str:
    if not sys.stdin.isatty():
        from registry.errors import KeyAccessError

        raise KeyAccessError(f"{label}: no terminal to prompt on; set REGISTRY_KEYSTORE_PASSWORD")
    return str(typer.prompt(label.capitalize(), hide_input=True))


def command_signer(settings: "Settings", account: str | None = None) -> "Signer":
    """The key a command signs with; warns loudly when it is the public anvil dev key."""
    from registry.keys import resolve_signer

    signer = resolve_signer(settings, account, prompt=prompt_password)
    if signer.warning:
        console().print(f"[bold red]WARNING:[/] {signer.warning}", soft_wrap=True)
    return signer
