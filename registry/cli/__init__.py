"""The ``registry`` command: a thin shell that parses, calls the library and renders.

Each area registers its commands from its own module. Command modules import the library lazily,
inside the command functions, so ``registry verify --help`` on a device never imports torch (or
web3) just to print help.
"""

from __future__ import annotations

import json
import sys

import typer

from registry.cli import chain, compress, content, explorer, maintenance, names, oms, oracle, profiles, release, update
from registry.errors import RegistryError

app = typer.Typer(
    name="registry",
    help=(
        "Compress ML models, publish them to IPFS + an EVM chain with signed provenance, "
        "and verify them before anything loads them."
    ),
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)



def _print_version(value: bool) -> None:
    if value:
        from registry import __version__

        print(f"registry {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_print_version, is_eager=True, help="Print the version."),
) -> None:
    """Exit codes: 0 ok; 2 usage; 3 bad input; 4 key; 6 chain refused; 7 compression target missed;
    10 integrity; 11 signature/authorisation; 12 revoked; 13 provenance; 14 format/policy; 15 unreachable;
    16 local storage full or not writable (data dir, block store, pull target, manifest directory)."""
    from registry.config import data_dir
    from registry.gc import quick_sweep

    quick_sweep(data_dir())  # leftovers of killed commands; cheap, never fails the command


for _area in (chain, profiles, names, content, release, compress, oracle, oms, explorer, maintenance, update):
    _area.register(app)


def main() -> None:
    """Console entry point: turns every ``RegistryError`` into one line and its exit code."""
    try:
        app()
    except RegistryError as exc:
        from registry.cli._render import plain

        if "--json" in sys.argv[1:]:
            print(json.dumps({"error": str(exc), "kind": type(exc).__name__, "exit_code": exc.exit_code}))
        print(f"error: {plain(exc)}", file=sys.stderr)  # messages quote untrusted text: one inert line
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
    except OSError as exc:  # the machine, not a bug: one line and a code, never a traceback
        from registry.fsutil import os_error

        error = os_error(exc)
        if "--json" in sys.argv[1:]:
            print(json.dumps({"error": str(error), "kind": type(error).__name__, "exit_code": error.exit_code}))
        print(f"error: {error}", file=sys.stderr)
        sys.exit(error.exit_code)
