"""The embedded local chain: an anvil the tool starts itself, with state that survives restarts.

anvil runs detached (own session, pidfile and log in ``<data dir>/chain/``) so it outlives the
command that started it. ``--state`` loads the previous state on start and dumps on exit;
``--state-interval 1`` also dumps every second, because a killed anvil dumps nothing. The
ModelRegistry is deployed once and its address remembered in ``deployment.json``; on a later start
the code at that address is checked (state restored?) and the contract is redeployed only if it
is gone, which ``DevnetInfo.note`` reports.

Everything here is guarded by a file lock, so two commands starting the chain at once end up
with one anvil and one deployment.
"""

from __future__ import annotations

import fcntl
import json
import os
import random
import signal
import socket
import subprocess
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from registry.config import Settings
from registry.errors import ChainError, InputError, UnreachableError
from registry.fsutil import atomic_write

CHAIN_ID = 31337
HOST = "127.0.0.1"
DEFAULT_PORT = 8545
LOG_MARKER = "--- registry: anvil start"
START_TIMEOUT_S = 15.0
STOP_TIMEOUT_S = 10.0
PORT_GRACE_S = 3.0  # how long an explicitly configured port may stay busy after a stop
# anvil's well-known dev account #0 (public knowledge: `anvil` prints it on every start).
DEV_KEY_0 = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"


@dataclass(frozen=True)
class DevnetInfo:
    rpc_url: str
    chain_id: int
    contract: str
    started: bool = False
    deployed: bool = False
    note: str | None = None


@dataclass(frozen=True)
class DevnetStatus:
    running: bool
    rpc_url: str | None
    chain_id: int | None
    block_number: int | None
    contract: str | None
    contract_deployed: bool
    pid: int | None
    state_file: str
    log_file: str

    def to_json(self) -> dict[str, Any]:
        return {
            "running": self.running,
            "rpc_url": self.rpc_url,
            "chain_id": self.chain_id,
            "block_number": self.block_number,
            "contract": self.contract,
            "contract_deployed": self.contract_deployed,
            "pid": self.pid,
            "state_file": self.state_file,
            "log_file": self.log_file,
        }


@dataclass(frozen=True)
class _Paths:
    root: Path

    @property
    def state(self) -> Path:
        return self.root / "anvil-state.json"

    @property
    def pidfile(self) -> Path:
        return self.root / "anvil.pid"

    @property
    def log(self) -> Path:
        return self.root / "anvil.log"

    @property
    def node(self) -> Path:
        return self.root / "node.json"

    @property
    def deployment(self) -> Path:
        return self.root / "deployment.json"

    @property
    def lock(self) -> Path:
        return self.root / "devnet.lock"


# --------------------------------------------------------------------------------------------
# Finding and spawning anvil (also used by the test fixtures)
# --------------------------------------------------------------------------------------------


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


def spawn_anvil(
    port: int,
    state: Path | None,
    log: Path,
    binary: Path | None = None,
    detached: bool = True,
    extra_args: tuple[str, ...] = (),
) -> subprocess.Popen[bytes]:
    """Starts anvil on 127.0.0.1:``port``; ``state`` enables load/dump (plus a dump every second)."""
    args = [str(binary or find_anvil()), "--host", HOST, "--port", str(port), "--chain-id", str(CHAIN_ID)]
    if state is not None:
        args += ["--state", str(state), "--state-interval", "1"]
    args += list(extra_args)
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        out.write(f"{LOG_MARKER} {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())} port {port}\n".encode())
        out.flush()
        return subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=detached,
            close_fds=True,
        )


def wait_for_rpc(rpc_url: str, process: subprocess.Popen[bytes] | None, log: Path, timeout_s: float = START_TIMEOUT_S) -> None:
    """Blocks until the node answers ``eth_chainId``; ChainError with the log tail if anvil dies."""
    from registry.chain.rpc import rpc_answers

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise ChainError(f"anvil exited with code {process.returncode}: {_log_tail(log)}")
        if rpc_answers(rpc_url, timeout_s=1.0) is not None:
            return
        time.sleep(0.05)
    raise UnreachableError(f"anvil did not answer at {rpc_url} within {timeout_s:.0f} s (log: {log})")


def _log_tail(log: Path, lines: int = 3) -> str:
    """The last lines anvil wrote in its latest run (the log is kept across runs)."""
    try:
        text = log.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return "(no log)"
    latest = text.rsplit(LOG_MARKER, 1)[-1].splitlines()[1:]
    return " | ".join(line.strip() for line in latest[-lines:] if line.strip()) or "(no output)"


# --------------------------------------------------------------------------------------------
# The managed devnet
# --------------------------------------------------------------------------------------------


@contextmanager
def _locked(paths: _Paths) -> Iterator[None]:
    paths.root.mkdir(parents=True, exist_ok=True)
    with open(paths.lock, "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _write_json(path: Path, data: dict[str, Any]) -> None:
    atomic_write(path, (json.dumps(data, indent=2, sort_keys=True) + "\n").encode())


def _pid_alive_anvil(pid: int) -> bool:
    """True if ``pid`` is a live anvil process (not a recycled pid of something else)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return False
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    if ") Z" in stat:  # a zombie is dead
        return False
    return any(part.endswith(b"anvil") for part in cmdline[:2])


def _running_pid(paths: _Paths) -> int | None:
    try:
        pid = int(paths.pidfile.read_text().strip())
    except (OSError, ValueError):
        return None
    return pid if _pid_alive_anvil(pid) else None


def _rpc_url(port: int) -> str:
    return f"http://{HOST}:{port}"


def _configured_port(paths: _Paths) -> int:
    """REGISTRY_DEVNET_PORT, else the port used last time (stable URL), else 8545."""
    if os.environ.get("REGISTRY_DEVNET_PORT"):
        try:
            return int(os.environ["REGISTRY_DEVNET_PORT"])
        except ValueError as exc:
            raise InputError(f"bad REGISTRY_DEVNET_PORT: {exc}") from exc
    node = _read_json(paths.node) or {}
    port = node.get("port")
    return int(port) if isinstance(port, int) else DEFAULT_PORT


def _wait_for_free_port(port: int, grace_s: float) -> bool:
    """A node that was just stopped may hold its port for a moment while the kernel tears it down."""
    deadline = time.monotonic() + grace_s
    while not port_is_free(port):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.1)
    return True


def _start(paths: _Paths) -> int:
    port = _configured_port(paths)
    explicit = bool(os.environ.get("REGISTRY_DEVNET_PORT"))
    if not _wait_for_free_port(port, PORT_GRACE_S if explicit else 0.0):
        if explicit:
            raise InputError(f"port {port} (REGISTRY_DEVNET_PORT) is busy")
        port = free_port()
    binary = find_anvil()
    process = spawn_anvil(port, paths.state, paths.log, binary=binary, detached=True)
    paths.pidfile.write_text(f"{process.pid}\n")
    try:
        wait_for_rpc(_rpc_url(port), process, paths.log)
    except Exception:
        _terminate(process.pid)
        paths.pidfile.unlink(missing_ok=True)
        raise
    _write_json(paths.node, {"port": port, "rpc_url": _rpc_url(port), "chain_id": CHAIN_ID, "pid": process.pid})
    return port


def _ensure_deployed(rpc_url: str, paths: _Paths) -> tuple[str, bool, str | None]:
    """Reuses the remembered deployment if its code is still there and the contract has not been
    rebuilt since; otherwise deploys (and says why in the note)."""
    from eth_account import Account
    from eth_utils import keccak

    from registry.chain.artifacts import load_artifact
    from registry.chain.rpc import make_web3, with_retries
    from registry.chain.tx import deploy_registry

    w3 = make_web3(rpc_url)
    artifact_hash = load_artifact().code_hash
    previous = _read_json(paths.deployment)
    note = None
    if previous and isinstance(previous.get("address"), str):
        address = previous["address"]
        code = with_retries(lambda: bytes(w3.eth.get_code(address)), rpc_url)
        if not code:
            note = f"no ModelRegistry at {address} any more (chain state was lost); deployed a new one"
        elif previous.get("code_hash") not in (None, "0x" + keccak(code).hex()):
            note = f"the code at {address} is not the ModelRegistry deployed there; deployed a new one"
        elif previous.get("artifact_hash") not in (None, artifact_hash):
            note = f"ModelRegistry was rebuilt since {address} was deployed; deployed the new build"
        else:
            return address, False, None
    address = deploy_registry(w3, Account.from_key(DEV_KEY_0))
    code = with_retries(lambda: bytes(w3.eth.get_code(address)), rpc_url)
    _write_json(
        paths.deployment,
        {
            "address": address,
            "chain_id": CHAIN_ID,
            "code_hash": "0x" + keccak(code).hex(),
            "artifact_hash": artifact_hash,
            "block": int(w3.eth.block_number),
            "previous_address": previous.get("address") if previous else None,
        },
    )
    return address, True, note


def ensure_running(settings: Settings) -> DevnetInfo:
    """Starts anvil if needed and deploys the registry once; idempotent and safe to race."""
    paths = _Paths(settings.chain_dir)
    with _locked(paths):
        started = False
        pid = _running_pid(paths)
        node = _read_json(paths.node) or {}
        if pid is None:
            port = _start(paths)
            started = True
        else:
            port = int(node.get("port", DEFAULT_PORT))
            wait_for_rpc(_rpc_url(port), None, paths.log, timeout_s=5.0)
        address, deployed, note = _ensure_deployed(_rpc_url(port), paths)
        return DevnetInfo(
            rpc_url=_rpc_url(port), chain_id=CHAIN_ID, contract=address, started=started, deployed=deployed, note=note
        )


def _terminate(pid: int, timeout_s: float = STOP_TIMEOUT_S) -> bool:
    """SIGTERM (anvil dumps its state on the way out), wait, SIGKILL as a last resort."""
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return True
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not _pid_alive_anvil(pid):
            _reap(pid)
            return True
        time.sleep(0.05)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    _reap(pid)
    return False


def _reap(pid: int) -> None:
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def stop(settings: Settings) -> bool:
    """Stops the devnet gracefully; False if it was not running."""
    paths = _Paths(settings.chain_dir)
    with _locked(paths):
        pid = _running_pid(paths)
        if pid is None:
            paths.pidfile.unlink(missing_ok=True)
            return False
        _terminate(pid)
        paths.pidfile.unlink(missing_ok=True)
        return True


def status(settings: Settings) -> DevnetStatus:
    """What is running and deployed, without starting anything."""
    from registry.chain.rpc import make_web3

    paths = _Paths(settings.chain_dir)
    pid = _running_pid(paths)
    node = _read_json(paths.node) or {}
    deployment = _read_json(paths.deployment) or {}
    rpc_url = node.get("rpc_url") if isinstance(node.get("rpc_url"), str) else None
    contract = deployment.get("address") if isinstance(deployment.get("address"), str) else None
    chain_id = block = None
    has_code = False
    if pid is not None and rpc_url:
        try:
            w3 = make_web3(rpc_url, timeout_s=2.0)
            chain_id = int(w3.eth.chain_id)
            block = int(w3.eth.block_number)
            has_code = bool(contract) and bool(w3.eth.get_code(contract))
        except Exception:
            pass
    return DevnetStatus(
        running=pid is not None and chain_id is not None,
        rpc_url=rpc_url,
        chain_id=chain_id,
        block_number=block,
        contract=contract,
        contract_deployed=has_code,
        pid=pid,
        state_file=str(paths.state),
        log_file=str(paths.log),
    )
