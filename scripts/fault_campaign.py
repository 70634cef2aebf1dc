"""The long fault-injection campaign: one real CLI process per command, SIGKILLs of anvil at random
times and at named points, SIGKILLs of the CLI itself mid-transaction and mid-snapshot, other
programs squatting the port a dead anvil freed.

    .venv/bin/python scripts/fault_campaign.py --kills 60 [--seed N] [--keep DIR]

Prints one line per incident and a summary; exits 1 if any acknowledged release was lost, any
release is on chain twice, any chain failed to start or any foreign node was used. The in-CI
version of this loop is tests/test_fault_injection.py (in-process CLI, 50 kills).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from registry.chain import devnet  # noqa: E402
from tests._verify_fixtures import tiny_onnx  # noqa: E402
from tests.test_fault_injection import NAME, Tally, kill_chain, rerun_command  # noqa: E402

ENTRY = "from registry.cli import main; main()"
ANVIL_POINTS = ["tx.before-send=kill-chain", "tx.after-send=kill-chain", "tx.after-receipt=kill-chain",
                "tx.after-save=kill-chain", "snapshot.before-dump=kill-chain-after:0.005",
                "snapshot.mid-write=kill-chain"]
CLI_POINTS = ["tx.after-send=kill", "tx.after-receipt=kill", "tx.after-save=kill", "snapshot.mid-write=kill"]


def cli(args: list[str], env: dict[str, str], fault: str = "") -> subprocess.Popen[str]:
    run_env = {**env, "REGISTRY_FAULT": fault} if fault else env
    return subprocess.Popen([sys.executable, "-c", ENTRY, *args], env=run_env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def finish(proc: subprocess.Popen[str]) -> tuple[int, str, str]:
    out, err = proc.communicate(timeout=300)
    return proc.returncode, out, err


def anvil_alive(chain_dir: Path) -> bool:
    from registry import procinfo

    try:
        node = json.loads((chain_dir / "node.json").read_text())
        return procinfo.is_same_process(int(node["pid"]), int(node["pid_start_ticks"]))
    except (OSError, ValueError, KeyError):
        return False


def squat(chain_dir: Path, work: Path) -> tuple[subprocess.Popen[bytes], str] | None:
    try:
        port = json.loads((chain_dir / "node.json").read_text())["port"]
    except (OSError, ValueError, KeyError):
        return None
    log = work / "foreign.log"
    process = devnet.spawn_anvil(port, None, log, detached=False)
    url = f"http://127.0.0.1:{port}"
    try:
        devnet.wait_for_rpc(url, process, log)
    except Exception:
        process.kill()
        process.wait()
        return None
    return process, url


def foreign_used(url: str) -> bool:
    from registry.chain.rpc import make_web3

    try:
        return int(make_web3(url).eth.block_number) != 0
    except Exception:
        return False


def verify(env: dict[str, str], tally: Tally) -> None:
    code, out, err = finish(cli(["history", NAME, "--json"], env))
    if code != 0:
        if "unclaimed" in err or "UnknownName" in err:
            out = json.dumps({"releases": []})
        else:
            tally.start_failures.append(err.strip().splitlines()[-1] if err.strip() else f"exit {code}")
            return
    releases = json.loads(out).get("releases", [])
    versions = [r["version"] for r in releases]
    digests = [r["artifact_sha256"].removeprefix("0x") for r in releases]
    tally.duplicates = sorted({v for v in versions if versions.count(v) > 1} |
                              {d for d in digests if digests.count(d) > 1})
    on_chain = dict(zip(versions, digests))
    tally.lost = sorted(v for v, sha in tally.acknowledged.items() if on_chain.get(v) != sha)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kills", type=int, default=60, help="kills of anvil to reach (default 60)")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--keep", type=Path, default=None, help="work in this directory and keep it")
    args = parser.parse_args()
    seed = args.seed if args.seed is not None else random.randrange(1 << 30)
    rng = random.Random(seed)
    work = args.keep or Path(tempfile.mkdtemp(prefix="fault-campaign-"))
    home = work / "home"
    (home / "chain").mkdir(parents=True, exist_ok=True)
    (home / "chain" / "node.json").write_text(json.dumps({"port": devnet.free_port()}))
    env = {k: v for k, v in os.environ.items() if not k.startswith("REGISTRY_")}
    env["REGISTRY_HOME"] = str(home)
    chain_dir = home / "chain"
    tally = Tally()
    cli_kills = 0
    started = time.monotonic()
    print(f"fault campaign: seed {seed}, data dir {home}")
    try:
        i = 0
        while tally.kills < args.kills and not tally.start_failures and i < 20 * args.kills:
            i += 1
            version = f"1.{i}.0"
            model = work / f"m{i}.onnx"
            model.write_bytes(tiny_onnx(5000 + i))
            sha = hashlib.sha256(model.read_bytes()).hexdigest()
            publish = ["publish", str(model), "--name", NAME, "--version", version, "--json"]
            mode = rng.choice(["timer", "timer", "anvil-point", "cli-point", "down"])
            fault = rng.choice(ANVIL_POINTS) if mode == "anvil-point" else \
                rng.choice(CLI_POINTS) if mode == "cli-point" else ""
            alive = anvil_alive(chain_dir)
            if mode == "down":  # a state write of its own: stop the chain, killed mid-snapshot
                code, _out, err = finish(cli(["chain", "down"], env, rng.choice(
                    ["snapshot.before-dump=kill-chain-after:0.003", "snapshot.mid-write=kill-chain",
                     "snapshot.mid-write=kill"])))
                if code == -9:
                    cli_kills += 1
                if alive and not anvil_alive(chain_dir):
                    tally.kills += 1
                    tally.kills_in_state_write += 1
                    tally.kills_in_command += 1
                verify(env, tally)
                continue
            proc = cli(publish, env, fault)
            if mode == "timer":
                time.sleep(rng.uniform(0.5, 3.0))  # start-up, the publish itself, or just after exit 0
                if kill_chain(chain_dir):
                    tally.kills += 1
                    tally.kills_in_command += proc.poll() is None
            code, _out, err = finish(proc)
            if mode == "anvil-point" and alive and not anvil_alive(chain_dir):
                tally.kills += 1
                tally.kills_in_command += 1
                tally.kills_in_state_write += fault.startswith("snapshot.")
            if code == -9:
                cli_kills += 1
            if "Traceback" in err:
                print(f"  TRACEBACK in {version}:\n{err}")
                return 1
            squatter = None
            if not anvil_alive(chain_dir) and tally.kills and tally.kills % 5 == 0:
                squatter = squat(chain_dir, work)
                tally.foreign_offered += squatter is not None
            if code == 0:
                tally.acknowledged[version] = sha
            else:
                tally.interrupted += 1
                again = rerun_command(err) or publish[:-1]
                print(f"  {version}: {fault or mode} -> exit {code}; re-running `registry {shlex.join(again)}`")
                for _attempt in range(3):
                    code, _out, err = finish(cli(again, env))
                    if code == 0:
                        tally.acknowledged[version] = sha
                        tally.completed_by_rerun += 1
                        break
                if code != 0:
                    print(f"  {version}: re-run failed: {err.strip()}")
                    tally.start_failures.append(err.strip())
            verify(env, tally)
            if squatter is not None:
                process, url = squatter
                tally.foreign_adopted += foreign_used(url)
                process.kill()
                process.wait()
            if tally.lost or tally.duplicates:
                break
    finally:
        finish(cli(["chain", "down", "--force"], env))
    minutes = (time.monotonic() - started) / 60
    print(f"fault campaign (seed {seed}, {minutes:.1f} min): {tally.summary()}; {cli_kills} CLI processes killed "
          f"mid-command")
    bad = tally.lost or tally.duplicates or tally.start_failures or tally.foreign_adopted
    if bad:
        print(f"FAILED: lost {tally.lost}, duplicates {tally.duplicates}, start failures {tally.start_failures}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
