"""What durability of the embedded chain costs a publish, measured against today's publish.

Two local chains with the same history of ``--releases`` releases (1,000 by default), side by side:

* **durable**: the devnet as it is now: every mined transaction journaled and fsynced before the
  publish returns (registry/chain/durable.py), a full snapshot now and then;
* **today**: anvil started the way the devnet started it before, ``--state FILE --state-interval 1``
  (anvil rewrites its whole state file in place every second; a publish waits for nothing).

The same ``publish_model`` call (a small real ONNX model, so the chain part dominates and the ratio
is the worst case) runs ``--samples`` times on each, interleaved; while one chain is measured the
other anvil is paused (SIGSTOP) so neither's background work lands in the other's figure. Then the
full snapshot at that history is timed (dump + atomic write + fsync) and its size printed; the
devnet takes one every ``journal.COMPACT_AFTER`` transactions, so its share per publish is
reported amortised too.

Run: ``.venv/bin/python bench/durability.py [--releases 1000] [--samples 20] [--json]``
Target (issue 14): at most 15% added to a publish at 1,000 releases.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import os
import signal
import statistics
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

TARGET = 0.15
SEED_NAME = "bench/history"
NAME = "bench/durable"


def _tiny_onnx(seed: int) -> bytes:
    from tests._verify_fixtures import tiny_onnx

    return tiny_onnx(seed)


def _seed(client: Any, account: Any, count: int) -> None:
    """``count`` real releases, sent back to back (pipelined, one block each), then waited for."""
    from registry.chain.tx import wait_receipt
    from registry.content.cids import cid_bytes_v1
    from registry.content.unixfs import import_bytes
    from registry.release import Release

    w3 = client.w3
    namespace = SEED_NAME.split("/")[0]
    if client.namespace_owner(namespace)[0] is None:  # names live under a namespace claimed by commit-reveal
        client.claim_namespace(namespace, account)
    tx_nonce = w3.eth.get_transaction_count(account.address, "pending")
    release_nonce = client.next_nonce(account.address)
    fee = int(w3.eth.get_block("latest")["baseFeePerGas"]) * 4 + 10**9
    deadline = int(time.time()) + 24 * 3600
    last = b""
    for i in range(count):
        artifact = import_bytes(f"model {i}".encode() * 50)
        provenance = import_bytes(f"provenance {i}".encode() * 20)
        release = Release(name=SEED_NAME, version=f"0.{i // 1000}.{i % 1000}", artifact_sha256=artifact.sha256,
                          artifact_cid=cid_bytes_v1(artifact.cid), artifact_size=artifact.size,
                          provenance_sha256=provenance.sha256, provenance_cid=cid_bytes_v1(provenance.cid),
                          parent=b"\x00" * 32, nonce=release_nonce + i, deadline=deadline)
        call = client.contract.functions.publish(release.as_tuple(), account.address, client.sign(release, account))
        tx = call.build_transaction({"from": account.address, "nonce": tx_nonce + i, "gas": 900_000,
                                     "maxFeePerGas": fee, "maxPriorityFeePerGas": 10**9, "chainId": 31337})
        last = bytes(w3.eth.send_raw_transaction(account.sign_transaction(tx).raw_transaction))
    receipt = wait_receipt(w3, last, 600)
    if receipt["status"] != 1 or client.release_count(SEED_NAME) != count:
        raise SystemExit("bench: seeding the history failed")


@contextmanager
def _paused(pid: int) -> Iterator[None]:
    os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(pid, signal.SIGCONT)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--releases", type=int, default=1000, help="history on each chain (default 1000)")
    parser.add_argument("--samples", type=int, default=20, help="publishes measured per chain (default 20)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()

    from eth_account import Account

    from registry.chain import devnet, durable, journal
    from registry.chain.client import RegistryClient
    from registry.chain.tx import guard_for, register_guard
    from registry.config import load_settings
    from registry.content.local import LocalStore
    from registry.publish import publish_model

    work = Path(tempfile.mkdtemp(prefix="bench-durability-"))
    for key in [k for k in os.environ if k.startswith("REGISTRY_")]:
        del os.environ[key]
    os.environ["REGISTRY_HOME"] = str(work / "durable")
    os.environ["REGISTRY_DEVNET_PORT"] = str(devnet.free_port())
    settings = load_settings()
    account = Account.from_key(devnet.DEV_KEY_0)
    today_process = None
    try:
        t0 = time.perf_counter()
        durable_client = RegistryClient.connect(settings)
        _seed(durable_client, account, args.releases)
        # Save the history (pipelined, so not journaled) and restart from it, as after any restart of the
        # devnet: both chains then hold the same history the same way (loaded from a state file).
        devnet.stop(settings)
        devnet.ensure_running(settings)
        durable_client = RegistryClient.connect(settings)
        seed_s = time.perf_counter() - t0
        paths = durable.Paths(settings.chain_dir)
        node = durable.read_node(paths)
        assert node is not None

        # today's chain: the same state, anvil's own --state file rewritten every second
        raw = durable.rpc(durable_client.rpc_url, "anvil_dumpState", [], timeout_s=120)
        state_file = work / "today" / "anvil-state.json"
        state_file.parent.mkdir(parents=True)
        state_file.write_bytes(gzip.decompress(bytes.fromhex(raw[2:])))
        port = devnet.free_port()
        today_process = devnet.spawn_anvil(port, state_file, work / "today" / "anvil.log", detached=False)
        today_url = f"http://127.0.0.1:{port}"
        devnet.wait_for_rpc(today_url, today_process, work / "today" / "anvil.log", timeout_s=60)
        today_client = RegistryClient.at(today_url, durable_client.address, 31337)
        register_guard(today_url, _NoGuard())  # today's send_call: no lock, no journal
        today_store = LocalStore(work / "today" / "blocks")
        durable_store = LocalStore(settings.blocks_dir)

        models = work / "models"
        models.mkdir()
        guard = guard_for(durable_client.rpc_url)
        timings: dict[str, list[float]] = {"durable": [], "today": [], "durable-off": []}
        order = list(timings)
        for i in range(args.samples + 1):  # the first round warms caches and is not counted
            for which in order[i % 3:] + order[:i % 3]:
                model = models / f"{which}-{i}.onnx"
                model.write_bytes(_tiny_onnx(100 + 3 * i + order.index(which)))
                if which == "today":
                    client, store, other = today_client, today_store, node.pid
                else:  # "durable-off": the same durable chain with the journal and key lock switched off
                    client, store, other = durable_client, durable_store, today_process.pid
                    register_guard(durable_client.rpc_url, guard if which == "durable" else _NoGuard())
                with _paused(other):
                    started = time.perf_counter()
                    publish_model(model, NAME, f"1.{order.index(which)}.{i}", settings=settings, signer=account,
                                  client=client, store=store)
                    elapsed = time.perf_counter() - started
                if i:
                    timings[which].append(elapsed)
        register_guard(durable_client.rpc_url, guard)
        devnet.ensure_running(settings)  # saves the blocks published with the journal off

        with _paused(today_process.pid):
            saves = []
            for _ in range(5):
                started = time.perf_counter()
                snapshot = durable.save(paths, node)
                saves.append(time.perf_counter() - started)
        state_json = len(gzip.decompress(bytes.fromhex(
            durable.rpc(durable_client.rpc_url, "anvil_dumpState", [], timeout_s=120)[2:])))
    finally:
        if today_process is not None:
            today_process.kill()
            today_process.wait()
        devnet.stop(load_settings(), force=True)

    durable_ms = statistics.median(timings["durable"]) * 1000
    today_ms = statistics.median(timings["today"]) * 1000
    off_ms = statistics.median(timings["durable-off"]) * 1000
    journal_added = (durable_ms - off_ms) / off_ms
    save_ms = statistics.median(saves) * 1000
    amortised_ms = save_ms / journal.COMPACT_AFTER
    added = (durable_ms - today_ms) / today_ms
    added_with_snapshots = (durable_ms + amortised_ms - today_ms) / today_ms
    met = added_with_snapshots <= TARGET
    result = {
        "releases": args.releases,
        "samples": args.samples,
        "publish_today_median_ms": round(today_ms, 1),
        "publish_durable_median_ms": round(durable_ms, 1),
        "added_fraction": round(added, 4),
        "publish_same_chain_journal_off_median_ms": round(off_ms, 1),
        "journal_added_fraction_same_chain": round(journal_added, 4),
        "snapshot_bytes": snapshot.size,
        "snapshot_state_json_bytes": state_json,
        "snapshot_write_median_ms": round(save_ms, 1),
        "snapshot_every_transactions": journal.COMPACT_AFTER,
        "snapshot_amortised_ms_per_publish": round(amortised_ms, 2),
        "added_fraction_with_snapshots": round(added_with_snapshots, 4),
        "target_fraction": TARGET,
        "target_met": met,
        "seed_seconds": round(seed_s, 1),
        "digest": hashlib.sha256(json.dumps(timings, sort_keys=True).encode()).hexdigest()[:12],
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(f"durability of the local chain at {args.releases} releases (median of {args.samples} publishes each, "
          f"interleaved; history seeded in {seed_s:.0f} s)")
    print(f"  publish, today's devnet (anvil --state-interval 1)       {today_ms:8.1f} ms")
    print(f"  publish, durable devnet (journal + fsync + key lock)     {durable_ms:8.1f} ms   {added:+.1%}")
    print(f"  publish, same durable chain, journal and lock off        {off_ms:8.1f} ms   "
          f"(the journal alone: {journal_added:+.1%})")
    print(f"  full snapshot: {snapshot.size / 1e6:.2f} MB on disk ({state_json / 1e6:.1f} MB of state JSON), "
          f"written in {save_ms:.0f} ms (dump + atomic write + fsync, median of 5)")
    print(f"  one snapshot every {journal.COMPACT_AFTER} transactions: {amortised_ms:.1f} ms per publish amortised "
          f"-> {added_with_snapshots:+.1%} in all")
    verdict = "met" if met else "MISSED"
    print(f"summary: durable publish adds {added_with_snapshots:+.1%} to today's at {args.releases} releases "
          f"({durable_ms:.0f} vs {today_ms:.0f} ms; the journal alone {journal_added:+.1%} on the same chain; "
          f"snapshot {snapshot.size / 1e6:.1f} MB in {save_ms:.0f} ms every {journal.COMPACT_AFTER} transactions); "
          f"target <= {TARGET:.0%}: {verdict}")
    return 0


class _NoGuard:
    """Today's transaction path on the comparison chain: no key lock, nothing journaled."""

    def account_lock(self, address: str) -> Any:
        from contextlib import nullcontext

        return nullcontext()

    def after_mined(self, receipt: Any, raw: bytes) -> None:
        return None

    def interrupted(self, phase: str, tx_hash: str | None, cause: BaseException | None) -> Any:
        from registry.chain.tx import interrupted_error

        return interrupted_error("today", phase, tx_hash, cause or Exception())


if __name__ == "__main__":
    sys.exit(main())
