"""The public API: every re-exported name resolves, and a device-side import stays light."""

from __future__ import annotations

import subprocess
import sys

import registry


def test_every_public_name_resolves() -> None:
    missing = [name for name in registry.__all__ if getattr(registry, name, None) is None]
    assert missing == []


def test_unknown_attribute_is_an_attribute_error() -> None:
    try:
        registry.no_such_thing  # noqa: B018
    except AttributeError as exc:
        assert "no_such_thing" in str(exc)
    else:
        raise AssertionError("expected AttributeError")


def test_device_side_api_does_not_import_torch() -> None:
    """A device has no torch: importing the verify/pull/content API must not pull it in."""
    code = (
        "import sys, registry\n"
        "for n in ('verify', 'load_verified', 'pull', 'open_store', 'import_file', 'RegistryClient', 'Release'):\n"
        "    getattr(registry, n)\n"
        "print('torch' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
