"""Fault injection against the real thing: a real anvil, the real CLI, SIGKILLs at random times and
at named points (``REGISTRY_FAULT``, see registry/faults.py).

What must hold, counted over the whole loop: no acknowledged (exit 0) release is ever lost, every
chain starts again, no release is published twice, no foreign node is adopted, and every publish
that did not finish is completed by running the command its error names.

The loop here makes 50 kills of anvil at random times in about a minute (the CLI runs in-process,
so a kill costs a restart, not a Python start-up); ``scripts/fault_campaign.py`` runs the same
campaign with one CLI process per command and as many kills as asked.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import random
import re
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from registry import procinfo
from registry.chain import devnet, durable, journal
from tests._verify_fixtures import tiny_onnx

ENTRY = "from registry.cli import main; main()"
NAME = "acme/faults"
KILLS = int(os.environ.get("REGISTRY_FAULT_KILLS", "50"))


# --------------------------------------------------------------------------------------------
# Helpers shared with scripts/fault_campaign.py
# --------------------------------------------------------------------------------------------


def kill_chain(chain_dir: Path) -> bool:
    """SIGKILLs the anvil node.json names, if it is still that very process; True if it was."""
    try:
        node = json.loads((chain_dir / "node.json").read_text())
        pid, ticks = int(node["pid"]), int(node["pid_start_ticks"])
    except (OSError, ValueError, KeyError):
        return False
    if not procinfo.is_same_process(pid, ticks):
        return False
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        return False
    deadline = time.monotonic() + 5
    while procinfo.is_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.005)
    return True


def run_inproc(args: list[str], env: dict[str, str] | None = None) -> tuple[int, str, str]:
    """The real CLI entry point, in this process (fast); returns (exit code, stdout, stderr)."""
    from registry.cli import main

    out, err = io.StringIO(), io.StringIO()
    saved_argv, saved_env = sys.argv, dict(os.environ)
    sys.argv = ["registry", *args]
    if env:
        os.environ.update(env)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                main()
                code = 0
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    finally:
        sys.argv = saved_argv
        os.environ.clear()
        os.environ.update(saved_env)
    return code, out.getvalue(), err.getvalue()


def rerun_command(stderr: str) -> list[str] | None:
    """The command an interrupted publish says to run, as argv (without the leading `registry`)."""
    import shlex

    match = re.search(r"run `(registry publish [^`]+)`", stderr)
    return shlex.split(match.group(1))[1:] if match else None


@dataclass
class Tally:
    kills: int = 0
    kills_in_command: int = 0
    kills_in_state_write: int = 0
    acknowledged: dict[str, str] = field(default_factory=dict)
    interrupted: int = 0
    completed_by_rerun: int = 0
    lost: list[str] = field(default_factory=list)
    duplicates: list[str] = field(default_factory=list)
    start_failures: list[str] = field(default_factory=list)
    foreign_adopted: int = 0
    foreign_offered: int = 0

    def summary(self) -> str:
        return (f"{self.kills} kills of anvil ({self.kills_in_command} during a command, {self.kills_in_state_write} "
                f"during a state write), {len(self.acknowledged)} acknowledged releases, {len(self.lost)} lost, "
                f"{len(self.duplicates)} duplicates, {len(self.start_failures)} chains that failed to start, "
                f"{self.foreign_adopted} of {self.foreign_offered} foreign nodes adopted, {self.interrupted} "
                f"interrupted publishes, {self.completed_by_rerun} completed by the command their error named")


def check_chain(settings, tally: Tally, full: bool = False) -> None:
    """Starts the chain (counting failures) and checks every acknowledged release is there, once:
    by release id (one paged call) after each command, with every artifact digest when ``full``."""
    from registry.chain.client import RegistryClient
    from registry.errors import ChainError
    from registry.release import release_id

    try:
        client = RegistryClient.connect(settings)
    except Exception as exc:  # counted, and the loop stops: a chain that cannot start is the worst outcome
        tally.start_failures.append(str(exc))
        return
    try:
        ids = client.release_ids(NAME)
    except ChainError:  # a name with no release yet
        ids = []
    tally.duplicates = sorted({i.hex() for i in ids if ids.count(i) > 1})
    present = set(ids)
    tally.lost = sorted(v for v in tally.acknowledged if release_id(NAME, v) not in present)
    if full:
        records = [client.get_by_id(i) for i in ids]
        digests = [r.artifact_sha256.hex() for r in records]
        tally.duplicates += sorted({d for d in digests if digests.count(d) > 1})
        on_chain = {r.version: r.artifact_sha256.hex() for r in records}
        tally.lost = sorted(v for v, sha in tally.acknowledged.items() if on_chain.get(v) != sha)


# --------------------------------------------------------------------------------------------
# The loop: 50 kills at random times
# --------------------------------------------------------------------------------------------


@pytest.fixture
def local_home(registry_home: Path, monkeypatch: pytest.MonkeyPatch):
    """The local profile on a remembered (not explicit) port, so a busy port falls back to a free one."""
    from registry.config import load_settings

    settings = load_settings()
    settings.chain_dir.mkdir(parents=True)
    (settings.chain_dir / "node.json").write_text(json.dumps({"port": devnet.free_port()}))
    yield settings
    devnet.stop(settings, force=True)


def test_fifty_random_kills_lose_no_acknowledged_release(local_home, tmp_path: Path, monkeypatch) -> None:
    seed = int(os.environ.get("REGISTRY_FAULT_SEED", random.randrange(1 << 30)))
    rng = random.Random(seed)
    monkeypatch.setattr(journal, "COMPACT_AFTER", 2)  # snapshots every few commands: kills land in them too
    tally = Tally()
    models = tmp_path / "models"
    models.mkdir()
    saving = threading.Event()  # set while the state is dumped and written (durable.save)
    real_save = durable.save

    def watched_save(*args, **kwargs):
        saving.set()
        try:
            return real_save(*args, **kwargs)
        finally:
            saving.clear()

    monkeypatch.setattr(durable, "save", watched_save)
    named = ["tx.after-receipt=kill-chain", "tx.after-send=kill-chain", "tx.before-send=kill-chain",
             "tx.after-save=kill-chain"]
    kills_since_squat = 0
    i = 0
    while tally.kills < KILLS and not tally.start_failures and i < 400:
        i += 1
        version = f"1.{i}.0"
        model = models / f"m{i}.onnx"
        model.write_bytes(tiny_onnx(1000 + i))
        sha = hashlib.sha256(model.read_bytes()).hexdigest()
        mode = rng.choice(["timer", "timer", "timer", "state-write", "state-write", "named"])
        fault = rng.choice(named) if mode == "named" else ""
        running = threading.Event()
        running.set()
        stop = threading.Event()

        def killer(mode: str = mode) -> None:
            if mode == "timer":
                stop.wait(rng.uniform(0.0, 0.5))  # during the publish, or just after it said "done"
            else:  # wait for a state write to begin, then strike inside it
                while not saving.is_set() and not stop.is_set():
                    time.sleep(0.0005)
                if stop.is_set():
                    return
                time.sleep(rng.uniform(0.0, 0.004))
            in_write = saving.is_set()
            if kill_chain(local_home.chain_dir):
                tally.kills += 1
                tally.kills_in_command += running.is_set()
                tally.kills_in_state_write += in_write

        if mode == "state-write":
            _external_block(local_home.chain_dir)  # a block the registry did not journal: the next command saves
        thread = threading.Thread(target=killer) if mode != "named" else None
        if thread:
            thread.start()
        alive_before = _anvil_alive(local_home.chain_dir)
        code, _out, err = run_inproc(["publish", str(model), "--name", NAME, "--version", version, "--json"],
                                     {"REGISTRY_FAULT": fault} if fault else None)
        running.clear()
        if thread:
            if mode == "state-write":
                stop.set()  # no state write in this command: no kill
            thread.join()
        elif alive_before and not _anvil_alive(local_home.chain_dir):
            tally.kills += 1  # the named point fired
            tally.kills_in_command += 1
        assert "Traceback" not in err, err
        squat = None
        if not _anvil_alive(local_home.chain_dir) and tally.kills - kills_since_squat >= 5:
            squat = _foreign_on_last_port(local_home.chain_dir, tmp_path)  # another program takes the port
            tally.foreign_offered += 1
            kills_since_squat = tally.kills
        try:
            if code == 0:
                tally.acknowledged[version] = sha
            else:
                tally.interrupted += 1
                again = rerun_command(err)
                assert again is not None or "run the command again" in err, err  # it says what to do
                for _attempt in range(3):
                    code, _out, err = run_inproc(again or ["publish", str(model), "--name", NAME, "--version",
                                                           version, "--json"])
                    if code == 0:
                        tally.acknowledged[version] = sha
                        tally.completed_by_rerun += 1
                        break
                assert code == 0, err
            check_chain(local_home, tally)
        finally:
            if squat is not None:
                tally.foreign_adopted += _foreign_was_used(squat)
                squat.kill()
                squat.wait()
        assert not tally.lost and not tally.duplicates, (tally.summary(), f"seed {seed}")
    check_chain(local_home, tally, full=True)
    print(f"\nfault injection (seed {seed}): {tally.summary()}")
    assert tally.kills >= KILLS, tally.summary()
    assert tally.kills_in_state_write >= 5 and tally.foreign_offered >= 5, tally.summary()
    assert (tally.lost, tally.duplicates, tally.start_failures, tally.foreign_adopted) == ([], [], [], 0), \
        (tally.summary(), f"seed {seed}")


def _external_block(chain_dir: Path) -> None:
    from registry.chain.rpc import make_web3

    if _anvil_alive(chain_dir):
        port = json.loads((chain_dir / "node.json").read_text())["port"]
        make_web3(f"http://127.0.0.1:{port}").provider.make_request("evm_mine", [])


def _anvil_alive(chain_dir: Path) -> bool:
    try:
        node = json.loads((chain_dir / "node.json").read_text())
        return procinfo.is_same_process(int(node["pid"]), int(node["pid_start_ticks"]))
    except (OSError, ValueError, KeyError):
        return False


def _foreign_on_last_port(chain_dir: Path, tmp_path: Path) -> subprocess.Popen[bytes]:
    port = json.loads((chain_dir / "node.json").read_text())["port"]
    log = tmp_path / "foreign.log"
    process = devnet.spawn_anvil(port, None, log, detached=False)
    devnet.wait_for_rpc(f"http://127.0.0.1:{port}", process, log)
    process.foreign_url = f"http://127.0.0.1:{port}"  # type: ignore[attr-defined]
    return process


def _foreign_was_used(process: subprocess.Popen[bytes]) -> bool:
    from registry.chain.rpc import make_web3

    try:
        return int(make_web3(process.foreign_url).eth.block_number) != 0  # type: ignore[attr-defined]
    except Exception:
        return False


# --------------------------------------------------------------------------------------------
# Named points with real process kills, and what the user is told
# --------------------------------------------------------------------------------------------


@pytest.fixture
def cli_env(registry_home: Path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("REGISTRY_")}
    env.update(REGISTRY_HOME=str(registry_home), REGISTRY_DEVNET_PORT=str(devnet.free_port()))
    yield env
    subprocess.run([sys.executable, "-c", ENTRY, "chain", "down", "--force"], env=env, capture_output=True,
                   timeout=120)


def cli(args: list[str], env: dict[str, str], fault: str | None = None) -> subprocess.CompletedProcess[str]:
    run_env = {**env, "REGISTRY_FAULT": fault} if fault else env
    return subprocess.run([sys.executable, "-c", ENTRY, *args], env=run_env, capture_output=True, text=True,
                          timeout=180)


def _error(result: subprocess.CompletedProcess[str]) -> str:
    lines = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert "Traceback" not in result.stderr and len(lines) == 1, result.stderr
    return lines[0]


@pytest.mark.parametrize("point,says", [
    ("tx.before-send", "before the transaction was sent: nothing changed on chain"),
    ("tx.after-send", "was sent: it may or may not have been mined"),
    ("tx.after-receipt", "was mined but before the local chain saved it: the restarted chain will not have it"),
])
def test_chain_death_mid_publish_says_what_happened_and_how_to_finish(cli_env, tmp_path: Path, point, says) -> None:
    model = tmp_path / "model.onnx"
    model.write_bytes(tiny_onnx(7))
    first = tmp_path / "first.onnx"
    first.write_bytes(tiny_onnx(17))
    # the chain, the contract and the name exist: the faulted publish sends exactly one transaction
    assert cli(["publish", str(first), "--name", NAME, "--version", "0.1.0"], cli_env).returncode == 0
    args = ["publish", str(model), "--name", NAME, "--version", "1.0.0"]
    failed = cli(args, cli_env, fault=f"{point}=kill-chain")
    line = _error(failed)
    assert failed.returncode == 15
    assert "the local chain (anvil, pid" in line and "died" in line and says in line
    assert f"run `registry publish {model} --name {NAME} --version 1.0.0`" in line
    assert "publishes once" in line
    again = cli(rerun_command(line) or [], cli_env)  # exactly the command it named
    assert again.returncode == 0, again.stderr
    history = json.loads(cli(["history", NAME, "--json"], cli_env).stdout)
    assert [r["version"] for r in history["releases"]] == ["0.1.0", "1.0.0"]


def test_a_journaled_publish_survives_the_chain_dying_before_the_command_ends(cli_env, tmp_path: Path) -> None:
    model = tmp_path / "model.onnx"
    model.write_bytes(tiny_onnx(8))
    first = tmp_path / "first.onnx"
    first.write_bytes(tiny_onnx(18))
    # the chain, the contract and the name exist: the faulted publish sends exactly one transaction
    assert cli(["publish", str(first), "--name", NAME, "--version", "1.0.0"], cli_env).returncode == 0
    args = ["publish", str(model), "--name", NAME, "--version", "2.0.0", "--json"]
    failed = cli(args, cli_env, fault="tx.after-save=kill-chain")
    assert failed.returncode == 15 and "the local chain stopped answering while publishing" in _error(failed)
    again = cli(args, cli_env)
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["already_published"] is True  # restored from the journal, not re-sent
    assert "note: restored " in again.stderr


def test_a_writer_killed_mid_snapshot_leaves_the_state_loadable(cli_env, tmp_path: Path, registry_home: Path) -> None:
    model = tmp_path / "model.onnx"
    model.write_bytes(tiny_onnx(9))
    assert cli(["publish", str(model), "--name", NAME, "--version", "3.0.0"], cli_env).returncode == 0
    down = cli(["chain", "down"], cli_env, fault="snapshot.mid-write=kill")  # the CLI itself dies
    assert down.returncode == -signal.SIGKILL
    chain_dir = registry_home / "chain"
    assert list(chain_dir.glob(".state.snapshot.p*.tmp"))  # its half-written temp file
    assert kill_chain(chain_dir)  # and now the chain dies too
    up = cli(["chain", "up"], cli_env)
    assert up.returncode == 0, up.stderr
    assert not list(chain_dir.glob(".state.snapshot.p*.tmp"))  # swept at the start of the command
    history = json.loads(cli(["history", NAME, "--json"], cli_env).stdout)
    assert [r["version"] for r in history["releases"]] == ["3.0.0"]


def test_chain_killed_during_its_state_dump(cli_env, tmp_path: Path, registry_home: Path) -> None:
    model = tmp_path / "model.onnx"
    model.write_bytes(tiny_onnx(10))
    assert cli(["publish", str(model), "--name", NAME, "--version", "4.0.0"], cli_env).returncode == 0
    down = cli(["chain", "down"], cli_env, fault="snapshot.before-dump=kill-chain-after:0.005")
    assert down.returncode == 0, down.stderr
    up = cli(["chain", "up"], cli_env)
    assert up.returncode == 0, up.stderr
    history = json.loads(cli(["history", NAME, "--json"], cli_env).stdout)
    assert [r["version"] for r in history["releases"]] == ["4.0.0"]
