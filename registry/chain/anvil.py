"""Finding and launching an anvil process (the devnet and the test fixtures both use these).

Only process plumbing lives here: where the binary is, which ports are free, how to start one and
wait until it answers. Deciding *which* node is ours and keeping its state is ``devnet.py``'s job.
"""

from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from registry.errors import ChainError, InputError, UnreachableError

CHAIN_ID = 31337
HOST = "127.0.0.1"
LOG_MARKER = "--- registry: anvil start"
START_TIMEOUT_S = 15.0


def find_anvil(env: dict[str, str] | None = None) -> Path:
    """``REGISTRY_ANVIL``, else ``node_modules/.bin/anvil`` beside the package or the cwd."""
    env = dict(os.environ) if env is None else env
    if env.get("REGISTRY_ANVIL"):
        path = Path(env["REGISTRY_ANVIL"]).expanduser()
        if path.is_file() and os.access(path, os.X_OK):
            return path
        raise InputError(f"REGISTRY_ANVIL={path} is not an executable file")
    package_root = Path(__file__).resolve().parents[2]
    for base in (package_root, Path.cwd()):
        candidate = base / "node_modules" / ".bin" / "anvil"
        if candidate.exists() and os.access(candidate, os.X_OK):
            return candidate
    raise InputError(
        "anvil not found (looked in node_modules/.bin beside the package and the current directory): "
        "run `make install`, or set REGISTRY_ANVIL to the anvil binary"
    )


def _ephemeral_low() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def free_port() -> int:
    """A free port below the kernel's ephemeral range.

    A port the kernel hands out for ``bind(0)`` can be handed out again, moments later, as the
    source port of any outgoing connection; a node restarted on "its" port would then find it
    taken. Ports below the ephemeral range are only ever taken by an explicit bind."""
    rng = random.Random()
    high = max(_ephemeral_low() - 1, 20001)
    for _ in range(64):
        port = rng.randint(20000, high)
        if port_is_free(port):
            return port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # anvil (tokio) binds with SO_REUSEADDR, so a port in TIME_WAIT after a restart is usable.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((HOST, port))
        except OSError:
            return False
        return True


def _die_with_parent() -> Callable[[], None] | None:
    """For an attached anvil: a pre-exec hook so it gets SIGTERM when its parent dies.

    Tests, benchmarks and scripts start attached anvils and stop them in a ``finally``; a parent
    killed outright (a mutation-testing timeout, an OOM kill) never runs it, and the anvil would
    keep its port and memory. Linux only (elsewhere the ``finally`` is the only stop). ``prctl`` is
    looked up here, in the parent, so the forked child only makes the one system call.
    """
    if sys.platform != "linux":
        return None
    import ctypes

    prctl = ctypes.CDLL(None, use_errno=True).prctl
    pr_set_pdeathsig = 1
    return lambda: prctl(pr_set_pdeathsig, signal.SIGTERM)


def spawn_anvil(
    port: int,
    state: Path | None,
    log: Path,
    binary: Path | None = None,
    detached: bool = True,
    extra_args: tuple[str, ...] = (),
    load_state: bytes | None = None,
) -> subprocess.Popen[bytes]:
    """Starts anvil on 127.0.0.1:``port``.

    ``load_state`` (anvil state JSON) is handed to ``--load-state`` through a pipe, so starting from
    a snapshot needs no disk space. ``state`` is anvil's own ``--state`` file with a dump every
    second: it rewrites that file in place, so a kill can tear it; the devnet does not use it.
    """
    args = [str(binary or find_anvil()), "--host", HOST, "--port", str(port), "--chain-id", str(CHAIN_ID)]
    if state is not None:
        args += ["--state", str(state), "--state-interval", "1"]
    if load_state is not None:
        args += ["--load-state", "/dev/stdin"]
    args += list(extra_args)
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        out.write(f"{LOG_MARKER} {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())} port {port}\n".encode())
        out.flush()
        process = subprocess.Popen(
            args,
            stdin=subprocess.PIPE if load_state is not None else subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=detached,
            close_fds=True,
            preexec_fn=None if detached else _die_with_parent(),  # noqa: PLW1509 (one syscall)
        )
    if load_state is not None:
        assert process.stdin is not None
        try:
            process.stdin.write(load_state)
        except BrokenPipeError:  # anvil exited early; wait_for_rpc reports its log
            pass
        finally:
            try:
                process.stdin.close()
            except BrokenPipeError:
                pass
    return process


def wait_for_rpc(rpc_url: str, process: subprocess.Popen[bytes] | None, log: Path,
                 timeout_s: float = START_TIMEOUT_S) -> None:
    """Blocks until the node answers ``eth_chainId``; ChainError with the log tail if anvil dies."""
    from registry.chain.rpc import rpc_answers

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise ChainError(f"anvil exited with code {process.returncode}: {log_tail(log)}")
        if rpc_answers(rpc_url, timeout_s=1.0) is not None:
            return
        time.sleep(0.05)
    raise UnreachableError(f"anvil did not answer at {rpc_url} within {timeout_s:.0f} s (log: {log})")


def log_tail(log: Path, lines: int = 3) -> str:
    """The last lines anvil wrote in its latest run (the log is kept across runs)."""
    try:
        text = log.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return "(no log)"
    latest = text.rsplit(LOG_MARKER, 1)[-1].splitlines()[1:]
    return " | ".join(line.strip() for line in latest[-lines:] if line.strip()) or "(no output)"
