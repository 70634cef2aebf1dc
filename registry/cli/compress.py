"""CLI commands for this area (filled in by its issue). Import the library lazily inside commands."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Adds this area's commands to the top-level app."""
