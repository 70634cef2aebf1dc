"""Untrusted text (revocation reasons, chain names, provenance fields) is printed inert (issue 10).

A revocation reason with rich markup and control characters once forged green ``PASS`` and
``VERIFIED`` lines in a report that exited 12.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys

from tests._verify_fixtures import published  # noqa: F401

FORGED = ("key leaked\n  [bold green]PASS[/bold green] not_revoked          release is active\n"
          "[bold green]VERIFIED[/bold green]\x1b[2K\x1b[1A\r\x1b]0;owned\x07\u202egnp.exe")
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _run(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-c", "from registry.cli import main; main()", *args]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)


def _coloured_env() -> dict[str, str]:
    env = os.environ.copy()
    env.update(FORCE_COLOR="1", TERM="xterm-256color", COLUMNS="200")
    env.pop("NO_COLOR", None)
    return env


def _assert_inert(stderr: str) -> None:
    lines = [ANSI.sub("", line) for line in stderr.splitlines()]
    assert not any(line.strip().startswith("VERIFIED") for line in lines), stderr
    assert not any(line.strip().startswith("PASS not_revoked") for line in lines), stderr
    for control in ("\x1b]0;", "\x1b[2K", "\x1b[1A", "\r", "\x07", "\u202e"):
        assert control not in stderr, (control, stderr)
    assert "[bold green]VERIFIED" in "\n".join(lines)  # shown as the text it is


def test_forged_revocation_reason_cannot_forge_report_lines(published):
    dep = published.deployed
    record = dep.client.resolve(published.ref)
    dep.client.revoke(record.id, FORGED, dep.publisher)
    env = _coloured_env()
    out = _run("verify", published.ref, env=env)
    assert out.returncode == 12, out.stderr
    assert "REJECTED" in ANSI.sub("", out.stderr)
    _assert_inert(out.stderr)
    shown = _run("show", published.ref, env=env)
    assert shown.returncode == 0, shown.stderr
    _assert_inert(shown.stderr)
    history = _run("history", published.name, env=env)
    assert history.returncode == 0, history.stderr
    for control in ("\x1b]0;", "\x1b[2K", "\r", "\x07", "\u202e"):
        assert control not in history.stderr


def test_clean_and_plain_make_text_inert():
    from registry.cli._render import clean, plain

    assert "\n" not in plain("a\nb") and "\\x0a" in plain("a\nb")
    assert clean("[bold]x[/bold]") == "\\[bold]x\\[/bold]"
    assert "\x1b" not in clean("\x1b[31mred") and "\u202e" not in plain("\u202eabc")


def test_console_backstop_strips_terminal_controls(capsys):
    from registry.cli._render import console

    console().print("ok \x1b]0;title\x07 \x1b[2K\rline")
    err = capsys.readouterr().err
    assert "\x1b]0;" not in err and "\x07" not in err and "\r" not in err


def test_error_line_is_one_inert_line(tmp_path):
    """Error messages quote untrusted text (a file name here); the CLI prints one inert line."""
    bad = tmp_path / "evil\n[bold green]VERIFIED\x1b[2K.toml"
    bad.write_text("nonsense = [")
    env = _coloured_env()
    out = _run("verify", "acme/x@1.0.0", "--policy", str(bad), "--offline", env=env)
    assert out.returncode != 0
    assert "\x1b[2K" not in out.stderr
    assert not any(ANSI.sub("", line).strip().startswith("VERIFIED") for line in out.stderr.splitlines())
