"""Explorer and index figures (issue 12), each with a baseline measured in the same run.

On a throw-away anvil with a fresh ModelRegistry:

  index      10,000 releases over 500 names (parents, some revocations and attestations) indexed
             from scratch: time and SQLite size; baseline: the raw eth_getLogs of the same range.
  catch-up   100 new blocks (one release each) indexed incrementally: target < 1 s.
  search     catalog searches over those releases from 20 concurrent clients against
             `registry serve` (a separate process): p50 < 50 ms, p99 < 200 ms; baseline: the same
             clients fetching /api/status (the framework's floor on the same server). The server
             caches search results until the index commits, so the uncached SQL cost is printed too.
  release    a release page whose verification is cached (the chain facts are still re-read on
             every view): p50 < 100 ms.
  first      the first view of a release with a 100 MiB artifact (a full verification from the
             store) vs `registry verify REF` of the same release from a fresh CLI: <= 1.5x.
  gas        setAlias (a new alias and a move, the rollback path) and the extra gas a card's digest
             and CID add to a publish, measured by bench/gas.py's code on this anvil.

Usage: ``python bench/explorer.py [--releases 10000 --names 500 --artifact-mib 100 --clients 20]``
(``--quick`` runs a small version that proves the script works). Writes ``bench/out/explorer.json``.
Exit status is 0 even on a missed target: this is a report, not a test.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
OUT = ROOT / "bench" / "out"
DEV_MNEMONIC = "test test test test test test test test test test test junk"


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    k = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[k]


def tiny_onnx(seed: int) -> bytes:
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    ops = ["Relu", "Sigmoid", "Tanh", "Softmax"]
    w = numpy_helper.from_array(rng.standard_normal((16, 4)).astype(np.float32), "W")
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 16])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4])
    graph = helper.make_graph([helper.make_node("MatMul", ["x", "W"], ["h"]),
                               helper.make_node(ops[seed % len(ops)], ["h"], ["y"])], f"m{seed}", [x], [y], [w])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model.SerializeToString()


def big_onnx(size_mib: int) -> bytes:
    """Y = X + W with W a float32 vector of ``size_mib`` MiB (a real model onnx and onnxruntime accept)."""
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    n = size_mib * 1024 * 1024 // 4
    w = numpy_helper.from_array(np.arange(n, dtype=np.float32), "W")
    x = helper.make_tensor_value_info("X", TensorProto.FLOAT, [n])
    y = helper.make_tensor_value_info("Y", TensorProto.FLOAT, [n])
    graph = helper.make_graph([helper.make_node("Add", ["X", "W"], ["Y"])], "big", [x], [y], [w])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model.SerializeToString()


class Bench:
    def __init__(self, args: argparse.Namespace, tmp: Path) -> None:
        self.args = args
        self.tmp = tmp
        self.home = tmp / "home"
        self.results: dict[str, Any] = {"config": {k: v for k, v in vars(args).items()}}
        self.anvil: subprocess.Popen[bytes] | None = None

    # -- chain and data ----------------------------------------------------------------------------

    def start_chain(self) -> None:
        from eth_account import Account

        from registry.chain.devnet import free_port, spawn_anvil, wait_for_rpc
        from registry.chain.rpc import make_web3
        from registry.chain.tx import deploy_registry

        port = free_port()
        self.rpc_url = f"http://127.0.0.1:{port}"
        log = self.tmp / "anvil.log"
        self.anvil = spawn_anvil(port, None, log, detached=False,
                                 extra_args=("--silent", "--gas-limit", "1000000000", "--accounts", "4"))
        wait_for_rpc(self.rpc_url, self.anvil, log, timeout_s=30)
        Account.enable_unaudited_hdwallet_features()
        self.deployer = Account.from_mnemonic(DEV_MNEMONIC, account_path="m/44'/60'/0'/0/0")
        self.publisher = Account.from_key(hashlib.sha256(b"bench publisher").digest())
        self.w3 = make_web3(self.rpc_url, 60)
        self.contract_address = deploy_registry(self.w3, self.deployer)
        self.w3.provider.make_request("anvil_setBalance", [self.publisher.address, hex(10**24)])
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("REGISTRY_")}
        self.env.update(REGISTRY_HOME=str(self.home), REGISTRY_RPC_URL=self.rpc_url, REGISTRY_CHAIN_ID="31337",
                        REGISTRY_CONTRACT=self.contract_address,
                        # anvil mines on demand: a remote profile's default depth would hide the newest blocks
                        REGISTRY_CONFIRMATIONS="0",
                        REGISTRY_PRIVATE_KEY="0x" + bytes(self.publisher.key).hex())
        os.environ.update({k: v for k, v in self.env.items() if k.startswith("REGISTRY_")})
        from registry.chain.client import RegistryClient
        from registry.config import load_settings

        self.settings = load_settings()
        self.client = RegistryClient.at(self.rpc_url, self.contract_address, 31337, timeout_s=60)
        self.contract = self.client.contract
        self.submitter = self.w3.eth.accounts[1]
        self.nonce = 0

    def rpc(self, method: str, params: list[Any] | None = None) -> Any:
        answer = self.w3.provider.make_request(method, params or [])
        if "error" in answer:
            raise RuntimeError(f"{method}: {answer['error']}")
        return answer["result"]

    def pin_artifacts(self, count: int = 20) -> list[tuple[Any, Any]]:
        """``count`` real ONNX models and their provenance documents in the local store."""
        from registry.content.stores import open_store
        from registry.provenance import canonical_json, statement

        store = open_store(self.settings)
        pinned = []
        for seed in range(count):
            art = store.put_bytes(tiny_onnx(seed))
            doc = statement(art.sha256.hex(), "model.onnx", {
                "recipe": {"task": ["classification", "regression", "embedding"][seed % 3]},
                "steps": [{"name": "quantize", "params": {"mode": "dynamic"}, "metrics_before": {"accuracy": 0.9},
                           "metrics_after": {"accuracy": 0.89}}], "metrics": {"accuracy": 0.89}})
            prov = store.put_bytes(canonical_json(doc))
            pinned.append((art, prov))
        return pinned

    def publish_calls(self, releases: list[tuple[str, str, Any, Any, bytes]]) -> None:
        """Signs each release and sends the publish transactions in one JSON-RPC batch (anvil signs
        for its unlocked submitter account)."""
        from registry.content.cids import cid_bytes_v1
        from registry.release import Release, sign_release

        requests = []
        for name, version, art, prov, parent in releases:
            release = Release(name=name, version=version, artifact_sha256=art.sha256,
                              artifact_cid=cid_bytes_v1(art.cid), artifact_size=art.size,
                              provenance_sha256=prov.sha256, provenance_cid=cid_bytes_v1(prov.cid), parent=parent,
                              nonce=self.nonce, deadline=2**40)
            self.nonce += 1
            signature = sign_release(release, self.publisher, 31337, self.contract_address)
            data = self.contract.encode_abi("publish", args=[release.as_tuple(), self.publisher.address, signature])
            requests.append(("eth_sendTransaction", [{"from": self.submitter, "to": self.contract_address,
                                                      "data": data, "gas": hex(600_000)}]))
        for answer in self.w3.provider.make_batch_request(requests):
            if "error" in answer:
                raise RuntimeError(f"publish failed: {answer['error']}")

    def populate(self) -> None:
        from registry.release import release_id

        args = self.args
        pinned = self.pin_artifacts()
        names = [f"bench{i % 10}/model-{i:03d}" for i in range(args.names)]
        for namespace in sorted({n.split("/")[0] for n in names}):  # publishing needs a claimed namespace (D2)
            self.client.claim_namespace(namespace, self.publisher)
        counts = {n: 0 for n in names}
        last: dict[str, bytes] = {}
        self.rpc("evm_setAutomine", [False])
        started = time.perf_counter()
        batch: list[tuple[str, str, Any, Any, bytes]] = []
        ids: list[bytes] = []
        for i in range(args.releases):
            name = names[i % len(names)]
            version = f"1.{counts[name]}.0"
            counts[name] += 1
            art, prov = pinned[(i // len(names) + names.index(name)) % len(pinned)]
            batch.append((name, version, art, prov, last.get(name, b"\0" * 32)))
            last[name] = release_id(name, version)
            ids.append(last[name])
            if len(batch) == args.per_block:
                self.publish_calls(batch)
                self.rpc("evm_mine")
                batch = []
        if batch:
            self.publish_calls(batch)
            self.rpc("evm_mine")
        # 2% revoked, 5% attested (the index and the catalog must carry them)
        calls = []
        attester = self.w3.eth.accounts[2]
        nonces = {a: self.w3.eth.get_transaction_count(a, "pending") for a in (self.publisher.address, attester)}

        def call(sender: str, data: str, gas: int) -> None:
            calls.append(("eth_sendTransaction", [{"from": sender, "to": self.contract_address, "data": data,
                                                   "gas": hex(gas), "nonce": hex(nonces[sender])}]))
            nonces[sender] += 1

        for rid in ids[:: 50]:
            call(self.publisher.address, self.contract.encode_abi("revoke", args=[rid, "bench: revoked"]), 200_000)
        for rid in ids[:: 20]:
            call(attester, self.contract.encode_abi("attest", args=[rid, True, b"\x11" * 32]), 300_000)
        self.rpc("anvil_impersonateAccount", [self.publisher.address])
        for answer in self.w3.provider.make_batch_request(calls):
            if "error" in answer:
                raise RuntimeError(f"setup call failed: {answer['error']}")
        self.rpc("evm_mine")
        self.rpc("anvil_stopImpersonatingAccount", [self.publisher.address])
        self.rpc("evm_setAutomine", [True])
        count = self.client.release_count(names[0])
        self.names, self.pinned, self.last = names, pinned, last
        self.results["setup"] = {"releases": args.releases, "names": len(names), "blocks": self.client.block_number,
                                 "seconds": round(time.perf_counter() - started, 1),
                                 "releases_of_first_name": count}
        print(f"setup: {args.releases} releases over {len(names)} names in {self.client.block_number} blocks "
              f"({time.perf_counter() - started:.0f} s)", flush=True)

    # -- figures ---------------------------------------------------------------------------------

    def measure_index(self) -> None:
        from registry.index import index_path, update_index

        started = time.perf_counter()
        head = self.client.block_number
        logs = self.w3.eth.get_logs({"address": self.contract_address, "fromBlock": 0, "toBlock": head})
        raw_logs = time.perf_counter() - started
        started = time.perf_counter()
        update = update_index(self.settings, client=self.client)
        seconds = time.perf_counter() - started
        path = index_path(self.settings)
        size = sum(p.stat().st_size for p in path.parent.glob(path.name + "*"))
        self.results["index"] = {"seconds": round(seconds, 3), "events": update.sync.events,
                                 "releases": update.sync.releases, "sqlite_bytes": size,
                                 "baseline_get_logs_seconds": round(raw_logs, 3), "logs": len(logs),
                                 "ratio_to_get_logs": round(seconds / raw_logs, 1) if raw_logs else None}
        print(f"index: {update.sync.releases} releases, {update.sync.events} events in {seconds:.2f} s "
              f"(raw eth_getLogs {raw_logs:.2f} s, x{seconds / raw_logs:.1f}); SQLite {size / 2**20:.1f} MiB",
              flush=True)

        # 100 new blocks, one release each, then an incremental catch-up
        self.rpc("evm_setAutomine", [False])  # automine may pack concurrent transactions into one block
        for i in range(100):
            name = self.names[i]
            version = f"2.{i}.0"
            art, prov = self.pinned[i % len(self.pinned)]
            # no parent (the newest release of a name may have been revoked)
            self.publish_calls([(name, version, art, prov, b"\0" * 32)])
            self.rpc("evm_mine")
        self.rpc("evm_setAutomine", [True])
        deadline = time.monotonic() + 60
        while self.client.block_number < head + 100 and time.monotonic() < deadline:
            time.sleep(0.05)  # automine answers before the block is sealed under load
        first_new = head + 1
        started = time.perf_counter()
        self.w3.eth.get_logs({"address": self.contract_address, "fromBlock": first_new,
                              "toBlock": self.client.block_number})
        raw = time.perf_counter() - started
        started = time.perf_counter()
        update = update_index(self.settings, client=self.client)
        seconds = time.perf_counter() - started
        blocks = update.sync.to_block - update.sync.from_block + 1
        self.results["catch_up"] = {"blocks": blocks, "releases": update.sync.releases, "seconds": round(seconds, 3),
                                    "target_seconds": 1.0, "met": seconds < 1.0,
                                    "baseline_get_logs_seconds": round(raw, 4)}
        print(f"catch-up: {blocks} blocks, {update.sync.releases} releases in {seconds:.3f} s (target < 1 s: "
              f"{'met' if seconds < 1.0 else 'MISSED'}; raw eth_getLogs {raw:.3f} s)", flush=True)

    def start_server(self) -> None:
        from registry.chain.devnet import free_port

        port = free_port()
        self.base = f"http://127.0.0.1:{port}"
        self.server = subprocess.Popen([sys.executable, "-c", "from registry.cli import main; main()", "serve",
                                        "--port", str(port), "--no-follow"], env=self.env, cwd=ROOT,
                                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        import httpx

        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.get(self.base + "/static/style.css", timeout=2)
                return
            except httpx.TransportError:
                if time.monotonic() > deadline or self.server.poll() is not None:
                    raise RuntimeError("registry serve did not start: " + (self.server.stderr.read() or b"").decode())
                time.sleep(0.2)

    def stop_server(self) -> None:
        self.server.send_signal(signal.SIGINT)
        try:
            self.server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.server.kill()

    def load(self, paths: list[str], clients: int, by_kind: dict[str, list[float]] | None = None) -> list[float]:
        """``clients`` concurrent clients, each a thread with its own keep-alive connection, GET their
        share of ``paths``. The client is the standard library's http.client: the lightest one at
        hand, so the load generator (which shares the two cores with the server) inflates the
        figures as little as possible."""
        import http.client
        from urllib.parse import urlparse

        target = urlparse(self.base)
        latencies: list[float] = []
        errors: list[str] = []
        lock = threading.Lock()
        barrier = threading.Barrier(clients)

        def get(conn: http.client.HTTPConnection, path: str) -> int:
            conn.request("GET", path)
            response = conn.getresponse()
            response.read()
            return response.status

        def worker(mine: list[str]) -> None:
            conn = http.client.HTTPConnection(target.hostname, target.port, timeout=60)
            get(conn, "/static/style.css")
            barrier.wait()
            for path in mine:
                started = time.perf_counter()
                status = get(conn, path)
                elapsed = time.perf_counter() - started
                with lock:
                    if status != 200:
                        errors.append(f"{path}: {status}")
                    latencies.append(elapsed)
                    if by_kind is not None:
                        kind = path.split("?")[0] + "?" + "&".join(sorted(
                            p.split("=")[0] for p in path.partition("?")[2].split("&") if p))
                        by_kind.setdefault(kind, []).append(elapsed)
            conn.close()

        threads = [threading.Thread(target=worker, args=(paths[i::clients],)) for i in range(clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if errors:
            raise RuntimeError(f"{len(errors)} failed requests, e.g. {errors[0]}")
        return latencies

    def measure_search(self) -> None:
        args = self.args
        queries = []
        for i in range(args.requests):
            kind = i % 6
            if kind == 0:
                queries.append(f"/api/models?q=model-{i % args.names:03d}")
            elif kind == 1:
                queries.append(f"/api/models?publisher={self.publisher.address}&limit=50&offset={(i * 7) % 400}")
            elif kind == 2:
                queries.append(f"/api/models?op=MatMul,{['Relu', 'Tanh', 'Sigmoid', 'Softmax'][i % 4]}")
            elif kind == 3:
                queries.append("/api/models?task=classification&min_size=100&max_size=1MiB&sort=recent")
            elif kind == 4:
                queries.append(f"/?q=bench{i % 10}")
            else:
                queries.append("/api/models?sort=size&offset=100")
        self.load(queries[: args.clients * 6], args.clients)  # warm-up: every worker thread opens its connection
        floor = self.load(["/api/status"] * args.requests, args.clients)
        kinds: dict[str, list[float]] = {}
        search = self.load(queries, args.clients, kinds)
        p50, p99 = percentile(search, 50) * 1000, percentile(search, 99) * 1000
        f50, f99 = percentile(floor, 50) * 1000, percentile(floor, 99) * 1000
        met = p50 < 50 and p99 < 200
        self.results["search"] = {"requests": len(search), "clients": args.clients, "p50_ms": round(p50, 2),
                                  "p99_ms": round(p99, 2), "targets_ms": {"p50": 50, "p99": 200}, "met": met,
                                  "baseline_status_p50_ms": round(f50, 2), "baseline_status_p99_ms": round(f99, 2),
                                  "by_kind_p50_p99_ms": {k: [round(percentile(v, 50) * 1000, 1),
                                                             round(percentile(v, 99) * 1000, 1)]
                                                         for k, v in sorted(kinds.items())}}
        print(f"search: {len(search)} requests, {args.clients} clients: p50 {p50:.1f} ms, p99 {p99:.1f} ms "
              f"(targets 50/200: {'met' if met else 'MISSED'}; /api/status floor p50 {f50:.1f} ms, p99 {f99:.1f} ms)",
              flush=True)
        for kind, (k50, k99) in self.results["search"]["by_kind_p50_p99_ms"].items():
            print(f"  {kind:<48} p50 {k50:6.1f} ms  p99 {k99:6.1f} ms", flush=True)
        # The server caches search results until the index commits; this is the uncached SQL cost.
        from registry.explorer.pages import catalog_query
        from registry.index import connect, index_path
        from registry.index.queries import catalog

        conn = connect(index_path(self.settings), readonly=True)
        costs = []
        for path in queries:
            if not path.startswith("/api/models"):
                continue
            params = dict(p.split("=", 1) for p in path.partition("?")[2].split("&") if "=" in p)
            query = catalog_query(params, [params.get("op", "")])
            started = time.perf_counter()
            catalog(conn, query)
            costs.append(time.perf_counter() - started)
        conn.close()
        u50, u99 = percentile(costs, 50) * 1000, percentile(costs, 99) * 1000
        self.results["search"]["uncached_query_p50_ms"] = round(u50, 3)
        self.results["search"]["uncached_query_p99_ms"] = round(u99, 3)
        print(f"  uncached catalog query (SQL + rows, one client): p50 {u50:.2f} ms, p99 {u99:.2f} ms", flush=True)

    def measure_release_page(self) -> None:
        import httpx

        name = self.names[1]
        path = f"/models/{name}/1.0.0"
        with httpx.Client(base_url=self.base, timeout=120) as http:
            first = http.get(path)
            assert first.status_code == 200 and "VERIFIED" in first.text, first.text[:500]
            samples = []
            for _ in range(self.args.page_samples):
                started = time.perf_counter()
                response = http.get(path)
                samples.append(time.perf_counter() - started)
                assert response.status_code == 200
            floor = []
            for _ in range(self.args.page_samples):
                started = time.perf_counter()
                http.get("/static/style.css")
                floor.append(time.perf_counter() - started)
        p50 = percentile(samples, 50) * 1000
        self.results["release_page"] = {"p50_ms": round(p50, 2), "p99_ms": round(percentile(samples, 99) * 1000, 2),
                                        "target_p50_ms": 100, "met": p50 < 100,
                                        "baseline_static_p50_ms": round(percentile(floor, 50) * 1000, 2)}
        print(f"release page (cached verification, chain facts re-read): p50 {p50:.1f} ms (target < 100: "
              f"{'met' if p50 < 100 else 'MISSED'}; static floor {percentile(floor, 50) * 1000:.1f} ms)", flush=True)

    def measure_first_verification(self) -> None:
        import httpx

        from registry.publish import publish_model

        model = self.tmp / "big.onnx"
        model.write_bytes(big_onnx(self.args.artifact_mib))
        size = model.stat().st_size
        publish_model(model, "bench0/big", "1.0.0", settings=self.settings, signer=self.publisher, client=self.client)
        model.unlink()  # both verifications read the store, as the explorer does
        cli = [sys.executable, "-c", "from registry.cli import main; main()", "verify", "bench0/big@1.0.0", "--json"]
        started = time.perf_counter()
        done = subprocess.run(cli, env=self.env, cwd=ROOT, capture_output=True, text=True)
        cli_s = time.perf_counter() - started
        assert done.returncode == 0, done.stderr[-2000:]
        started = time.perf_counter()
        response = httpx.get(self.base + "/models/bench0/big/1.0.0", timeout=600)
        page_s = time.perf_counter() - started
        assert response.status_code == 200 and "VERIFIED" in response.text
        ratio = page_s / cli_s
        self.results["first_verification"] = {"artifact_bytes": size, "page_seconds": round(page_s, 3),
                                              "cli_seconds": round(cli_s, 3), "ratio": round(ratio, 3),
                                              "target_ratio": 1.5, "met": ratio <= 1.5}
        print(f"first verification of {size / 2**20:.0f} MiB: page {page_s:.2f} s vs CLI verify {cli_s:.2f} s "
              f"(x{ratio:.2f}, target <= 1.5: {'met' if ratio <= 1.5 else 'MISSED'})", flush=True)

    def measure_gas(self) -> None:
        """setAlias (new and moved) and the extra gas a card's digest and CID add to a publish, measured
        by bench/gas.py's own code (a fresh ModelRegistry on this anvil), so both reports agree."""
        from bench.gas import measure_registry

        _, figures, _ = measure_registry(self.w3)
        out = {key: figures[key] for key in ("set_alias_new", "set_alias_move", "publish_full",
                                             "publish_full_with_card", "card_extra")}
        self.results["gas"] = out
        print(f"gas: setAlias new {out['set_alias_new']:,}, move {out['set_alias_move']:,}; card digest + CID add "
              f"{out['card_extra']:,} to a publish ({out['publish_full']:,} -> {out['publish_full_with_card']:,}; "
              "bench/gas.py's measurement)", flush=True)

    def close(self) -> None:
        if self.anvil is not None:
            self.anvil.terminate()
            try:
                self.anvil.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.anvil.kill()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--releases", type=int, default=10_000)
    parser.add_argument("--names", type=int, default=500)
    parser.add_argument("--per-block", type=int, default=100)
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--page-samples", type=int, default=100)
    parser.add_argument("--artifact-mib", type=int, default=100)
    parser.add_argument("--quick", action="store_true", help="a small run that proves the script works")
    args = parser.parse_args()
    if args.quick:
        args.releases, args.names, args.requests, args.page_samples, args.artifact_mib = 600, 120, 300, 20, 8
    OUT.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="explorer-bench-") as tmp:
        bench = Bench(args, Path(tmp))
        try:
            bench.start_chain()
            bench.populate()
            bench.measure_index()
            bench.start_server()
            try:
                bench.measure_search()
                bench.measure_release_page()
                bench.measure_first_verification()
            finally:
                bench.stop_server()
            bench.measure_gas()
        finally:
            bench.close()
    r = bench.results
    (OUT / "explorer.json").write_text(json.dumps(r, indent=2) + "\n")
    misses = [k for k in ("catch_up", "search", "release_page", "first_verification") if not r.get(k, {}).get("met")]
    gas = r["gas"]
    print(f"summary: index {r['index']['releases']} releases in {r['index']['seconds']} s "
          f"({r['index']['sqlite_bytes'] / 2**20:.1f} MiB); catch-up {r['catch_up']['blocks']} blocks "
          f"({r['catch_up']['releases']} releases) {r['catch_up']['seconds']} s; "
          f"search p50/p99 {r['search']['p50_ms']}/{r['search']['p99_ms']} ms; release page p50 "
          f"{r['release_page']['p50_ms']} ms; first {r['first_verification']['artifact_bytes'] / 2**20:.0f} MiB "
          f"verification x{r['first_verification']['ratio']} of the CLI; setAlias new/move "
          f"{gas['set_alias_new'] / 1000:.1f}k/{gas['set_alias_move'] / 1000:.1f}k gas, card +{gas['card_extra'] / 1000:.1f}k; "
          + ("all targets met" if not misses else "MISSED: " + ", ".join(misses)), flush=True)


if __name__ == "__main__":
    main()
