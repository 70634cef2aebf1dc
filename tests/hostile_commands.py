"""Hostile inputs for whole commands: the CLI run as a subprocess, as a device or node runs it.

Each ``CommandCase`` is an argv plus environment; the outcome is read from outside (exit code,
signal, time, ``Traceback`` on stderr), so a segfault or a hang in any layer counts. Files come in
every kind a user can name (FIFO, ``/dev/zero``, a directory, hostile content); network answers come
from ``HostileRPC``, a real HTTP server answering every JSON-RPC call with the case's body.

Other areas add theirs in ``command_cases`` (e.g. ``pull`` against a lying gateway).
"""

from __future__ import annotations

import http.server
import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.hostile import ROOT, Case, Result, json_cases, text_cases, toml_cases

CLI = [sys.executable, "-c", "from registry.cli import main; main()"]
# The shared cases worth a whole process each (the parsers see all of them in tests/test_hostile_parsers.py).
JSON_SUBSET = ("deep arrays", "deep in a value", "quadratic quotes", "NaN", "lone surrogate", "invalid UTF-8",
               "oversized", "duplicate keys", "wrong type: list", "empty")
TOML_SUBSET = ("deep inline arrays", "invalid UTF-8", "oversized", "huge integer", "unknown keys")
SOME_ADDRESS = "0x" + "11" * 20


@dataclass(frozen=True)
class CommandCase:
    name: str
    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)
    rpc_body: bytes | None = None  # what HostileRPC answers while this case runs
    must_reject: bool | None = True
    timeout_s: float = 90.0
    group: str = "files"


class HostileRPC:
    """An HTTP server that answers every POST with ``body`` (set per case)."""

    def __init__(self) -> None:
        self.body = b"{}"
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - stdlib name
                self.rfile.read(int(self.headers.get("content-length") or 0))
                body = owner.body
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                try:
                    self.wfile.write(body)
                except OSError:
                    pass

            def log_message(self, *args: Any) -> None:
                pass

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def _special_files(work: Path) -> dict[str, Path]:
    fifo = work / "input.fifo"
    if not fifo.exists():
        os.mkfifo(fifo)
    return {"FIFO": fifo, "/dev/zero": Path("/dev/zero"), "directory": work}


def _files(work: Path, stem: str, cases: list[Case], subset: tuple[str, ...]) -> dict[str, Path]:
    out = dict(_special_files(work))
    for case in cases:
        if case.name in subset:
            path = work / f"{stem}-{len(out)}"
            path.write_bytes(case.data)
            out[case.name] = path
    return out


def command_cases(work: Path, rpc: HostileRPC) -> list[CommandCase]:
    """Every command that takes a file or a network answer, with the inputs that once broke one."""
    work.mkdir(parents=True, exist_ok=True)
    home = work / "home"
    home.mkdir(exist_ok=True)
    base_env = {"REGISTRY_HOME": str(home)}
    remote = {**base_env, "REGISTRY_RPC_URL": rpc.url, "REGISTRY_CHAIN_ID": "31337", "REGISTRY_CONTRACT": SOME_ADDRESS,
              "REGISTRY_PRIVATE_KEY": "0x" + "42" * 32}
    offline = ["verify", "acme/m@1.0.0", "--offline", "--trust", SOME_ADDRESS]
    cases: list[CommandCase] = []
    empty_manifest = work / "empty.json"
    empty_manifest.write_text("{}")
    for label, path in _files(work, "manifest", json_cases(), JSON_SUBSET).items():
        cases.append(CommandCase(f"verify --manifest {label}", [*offline, "--manifest", str(path)], base_env))
    for label, path in _files(work, "policy", toml_cases(), TOML_SUBSET).items():
        cases.append(CommandCase(f"verify --policy {label}",
                                 [*offline, "--manifest", str(empty_manifest), "--policy", str(path)], base_env))
    release = _offline_release(work, home)
    for label, path in _files(work, "provenance", json_cases(), JSON_SUBSET).items():
        cases.append(CommandCase(f"verify --provenance {label}",
                                 ["verify", release["ref"], "--offline", "--trust", release["publisher"], "--file",
                                  release["file"], "--manifest", release["manifest"], "--provenance", str(path)],
                                 base_env))
    for label, path in _special_files(work).items():
        # the artifact itself: a FIFO once hung `verify --file` while it hashed (the manifest was fine)
        cases.append(CommandCase(f"verify --file {label}",
                                 ["verify", release["ref"], "--offline", "--trust", release["publisher"], "--file",
                                  str(path), "--manifest", release["manifest"]], base_env))
        cases.append(CommandCase(f"cid {label}", ["cid", str(path), "--json"], base_env))
        cases.append(CommandCase(f"publish {label}", ["publish", str(path), "--name", "acme/m", "--version", "1.0.0"],
                                 base_env))
        cases.append(CommandCase(f"attest --report {label}",
                                 ["attest", "acme/m@1.0.0", "--pass", "--report", str(path)], base_env))
        cases.append(CommandCase(f"compress --recipe {label}", ["compress", "--recipe", str(path), "-o",
                                                                str(work / "out")], base_env))
    for case in text_cases():
        if b"\x00" in case.data or len(case.data) > 100_000:
            continue  # argv cannot carry a NUL byte, nor one argument over 128 KiB
        ref = os.fsdecode(case.data)
        cases.append(CommandCase(f"verify REF {case.name}", ["verify", ref, "--offline", "--trust", SOME_ADDRESS,
                                                              "--manifest", str(empty_manifest)], base_env,
                                 group="references"))
    rpc_answers = [c for c in json_cases() if c.name in JSON_SUBSET] + [
        Case("wrong chain id type", b'{"jsonrpc":"2.0","id":1,"result":{"a":[1]}}'),
        Case("result not hex", b'{"jsonrpc":"2.0","id":1,"result":"0xzz"}'),
        Case("error object", b'{"jsonrpc":"2.0","id":1,"error":{"code":-32000,"message":"[bold green]VERIFIED"}}'),
    ]
    for case in rpc_answers:
        cases.append(CommandCase(f"show, RPC answers {case.name}", ["show", "acme/m@1.0.0"], remote, case.data,
                                 group="rpc"))
    for case in rpc_answers[:3]:
        model = work / "model.onnx"
        if not model.exists():
            from tests._verify_fixtures import tiny_onnx

            model.write_bytes(tiny_onnx())
        cases.append(CommandCase(f"publish, RPC answers {case.name}",
                                 ["publish", str(model), "--name", "acme/m", "--version", "1.0.0"], remote, case.data,
                                 group="rpc"))
        cases.append(CommandCase(f"verify, RPC answers {case.name}", ["verify", "acme/m@1.0.0"], remote, case.data,
                                 group="rpc"))
    return cases


def _offline_release(work: Path, home: Path) -> dict[str, str]:
    """A valid offline release on disk, so a command gets as far as reading the provenance."""
    from registry.manifest import write_manifest
    from tests._verify_fixtures import offline_release

    release = offline_release(home)
    model = work / "release.onnx"
    model.write_bytes(release.data)
    manifest = write_manifest(release.manifest, work / "release.json")
    return {"ref": release.ref, "publisher": release.publisher.address, "file": str(model),
            "manifest": str(manifest)}


def run_command(case: CommandCase, rpc: HostileRPC | None = None) -> Result:
    if case.rpc_body is not None and rpc is not None:
        rpc.body = case.rpc_body
    env = {k: v for k, v in os.environ.items() if not k.startswith("REGISTRY_")}
    env.update(case.env)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    started = time.monotonic()
    try:
        done = subprocess.run([*CLI, *case.argv], capture_output=True, env=env, timeout=case.timeout_s,
                              stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        return Result("command", case.name, "hang", f"no exit within {case.timeout_s:g} s")
    err = done.stderr.decode("utf-8", "replace")
    took = f"{time.monotonic() - started:.1f} s"
    if done.returncode < 0:
        return Result("command", case.name, "segfault", f"killed by signal {-done.returncode} after {took}")
    if "Traceback (most recent call last)" in err:
        return Result("command", case.name, "traceback", err.strip().splitlines()[-1][:200])
    if done.returncode == 0:
        return Result("command", case.name, "wrong-accept" if case.must_reject else "accepted", took)
    return Result("command", case.name, "refused", f"exit {done.returncode}: {err.strip().splitlines()[-1][:160] if err.strip() else ''}")
