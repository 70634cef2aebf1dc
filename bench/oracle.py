"""Oracle figures on a local anvil: publish-to-serving latency, and /predict throughput.

1. Latency from a publish transaction being mined to the node serving the new, verified model.
   The node polls the registry every ``--poll`` seconds; the figure splits into detection (poll
   delay) and verify + load (the full verification procedure, then an onnxruntime session from
   the verified bytes). Baseline measured in the same run: building an InferenceSession straight
   from the same bytes on disk, with no verification at all.
2. Predictions per second at batch 1: ``POST /predict`` on the node (one stdlib http.client
   keep-alive connection, one request at a time, JSON encode/decode included), the node's onnxruntime session called in-process, and the same network in PyTorch
   eager (``torch.no_grad()``, in-process loop). The served artifact is the fp32 export of exactly
   that PyTorch module, so the comparison is the same model.

Run: ``.venv/bin/python bench/oracle.py [--publishes 5] [--requests 2000] [--poll 0.05] [--json]``
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

NAME = "bench/co2-forecaster"
DEV_MNEMONIC = "test test test test test test test test test test test junk"


def _accounts(n: int) -> list[Any]:
    from eth_account import Account

    Account.enable_unaudited_hdwallet_features()
    return [Account.from_mnemonic(DEV_MNEMONIC, account_path=f"m/44'/60'/0'/0/{i}") for i in range(n)]


def _variants(model: Any, out: Path, count: int) -> list[Path]:
    """``count`` exports of the trained network with distinct bytes (drift nudged by 1e-6 ppm each)."""
    import torch

    from registry.examples.forecast import export_onnx

    paths = []
    base = float(model.drift)
    for i in range(count):
        with torch.no_grad():
            model.drift.fill_(base + i * 1e-6)
        paths.append(export_onnx(model, out / f"forecaster-{i}.onnx"))
    with torch.no_grad():
        model.drift.fill_(base)
    return paths


def _rate(fn: Any, n: int) -> float:
    for _ in range(min(100, n)):
        fn()
    started = time.perf_counter()
    for _ in range(n):
        fn()
    return n / (time.perf_counter() - started)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--publishes", type=int, default=5)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--poll", type=float, default=0.05)
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="bench-oracle-"))
    for key in [k for k in os.environ if k.startswith("REGISTRY_")]:
        del os.environ[key]
    os.environ["REGISTRY_HOME"] = str(tmp / "home")

    import numpy as np
    import onnxruntime as ort
    import torch

    from registry.chain.client import RegistryClient
    from registry.chain.devnet import free_port, spawn_anvil, wait_for_rpc
    from registry.chain.rpc import make_web3
    from registry.chain.tx import deploy_registry
    from registry.config import load_settings
    from registry.examples.forecast import recent_window, train_forecaster
    from registry.oracle.feed import FeedClient
    from registry.oracle.inputs import FileSource
    from registry.oracle.node import NodeConfig, OracleNode
    from registry.publish import publish_model

    port = free_port()
    anvil = spawn_anvil(port, None, tmp / "anvil.log", detached=False)
    rpc = f"http://127.0.0.1:{port}"
    try:
        wait_for_rpc(rpc, anvil, tmp / "anvil.log")
        owner, node_account = _accounts(2)
        contract = deploy_registry(make_web3(rpc), owner)
        os.environ.update({"REGISTRY_RPC_URL": rpc, "REGISTRY_CHAIN_ID": "31337", "REGISTRY_CONTRACT": contract,
                           "REGISTRY_CONFIRMATIONS": "0"})
        settings = load_settings()
        publisher_client = RegistryClient.at(rpc, contract, 31337)

        trained = train_forecaster(epochs=args.epochs)
        model = trained.model.eval()
        paths = _variants(model, tmp, args.publishes + 1)

        mined_at: list[float] = []
        send = publisher_client.w3.eth.send_raw_transaction

        def timed_send(raw: Any) -> Any:  # anvil automines: the tx is mined when this returns
            result = send(raw)
            mined_at.append(time.time())
            return result

        publisher_client.w3.eth.send_raw_transaction = timed_send  # type: ignore[method-assign]

        def publish(i: int) -> Any:
            return publish_model(paths[i], NAME, f"1.0.{i}", settings=settings, client=publisher_client,
                                 signer=owner, manifest_dir=tmp / "manifests").record

        first = publish(0)
        feed = FeedClient.deploy(rpc, owner, contract, NAME, "bench", 8, 1)
        feed.add_node(node_account.address, owner)
        feed.set_approved_release(first.id, owner)
        (tmp / "inputs.json").write_text(json.dumps({"values": [float(v) for v in recent_window()]}))

        events: list[dict[str, Any]] = []
        node = OracleNode(
            NodeConfig(model=NAME, interval_s=3600.0, poll_s=args.poll, state_dir=tmp / "node"),
            registry=RegistryClient.at(rpc, contract, 31337),
            feed=FeedClient.at(rpc, feed.address),
            signer=node_account,
            source=FileSource(tmp / "inputs.json"),
            settings=settings,
            on_event=events.append,
        )
        stop = threading.Event()
        loop = threading.Thread(target=node.run, args=(stop,), daemon=True)
        loop.start()
        server = node.serve(0)
        try:
            _wait(lambda: node.active is not None and node.active.release_id == first.id, 60)

            # -- 1. publish -> serving ---------------------------------------------------------
            totals, detect, verify_load = [], [], []
            for i in range(1, args.publishes + 1):
                record = publish(i)
                rid = "0x" + record.id.hex()
                _wait(lambda: any(e["event"] == "swapped" and e.get("release_id") == rid for e in list(events)), 60)
                mined = mined_at[-1]
                seen = next(e["at"] for e in events if e["event"] == "release-published" and e["release_id"] == rid)
                swapped = next(e["at"] for e in events if e["event"] == "swapped" and e["release_id"] == rid)
                totals.append(swapped - mined)
                detect.append(seen - mined)
                verify_load.append(swapped - seen)
            artifact_bytes = paths[0].stat().st_size
            raw_load = []
            for path in paths:
                started = time.perf_counter()
                ort.InferenceSession(path.read_bytes(), providers=["CPUExecutionProvider"])
                raw_load.append(time.perf_counter() - started)

            # -- 2. predictions per second at batch 1 ------------------------------------------
            import http.client

            window = recent_window()
            body = json.dumps({"inputs": [float(v) for v in window]})
            served = node.active
            assert served is not None
            host, port_s = server.url.rsplit("/", 1)[1].split(":")
            conn = http.client.HTTPConnection(host, int(port_s), timeout=10)

            def predict() -> dict[str, Any]:
                conn.request("POST", "/predict", body=body, headers={"Content-Type": "application/json"})
                response = conn.getresponse()
                data = response.read()
                if response.status != 200:
                    raise SystemExit(f"bench: /predict answered {response.status}: {data[:200]!r}")
                return json.loads(data)

            check = predict()
            http_rate = _rate(predict, args.requests)
            conn.close()
            x_np = window[None, :].astype(np.float32)
            ort_rate = _rate(lambda: served.session.run(None, {served.input_name: x_np}), args.requests * 5)
            x_t = torch.from_numpy(x_np)
            with torch.no_grad():
                torch_out = float(model(x_t)[0, 0])
                torch_rate = _rate(lambda: model(x_t), args.requests * 5)
        finally:
            stop.set()
            loop.join(timeout=10)
            server.stop()
    finally:
        anvil.terminate()
        anvil.wait(timeout=10)
        shutil.rmtree(tmp, ignore_errors=True)

    med = statistics.median
    result = {
        "publishes": args.publishes,
        "poll_s": args.poll,
        "latency_s": {"median": med(totals), "min": min(totals), "max": max(totals),
                      "detect_median": med(detect), "verify_load_median": med(verify_load)},
        "baseline_raw_session_s": med(raw_load),
        "verify_overhead_ratio": med(verify_load) / med(raw_load),
        "predict_per_s": {"http_predict": http_rate, "onnxruntime_in_process": ort_rate, "torch_eager": torch_rate},
        "http_vs_torch": http_rate / torch_rate,
        "ort_vs_torch": ort_rate / torch_rate,
        "same_answer": abs(check["predictions"][0] - torch_out) < 1e-3,
        "artifact_bytes": artifact_bytes,
        "threads": {"torch": torch.get_num_threads(), "cpus": os.cpu_count()},
    }
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        lat = result["latency_s"]
        rates = result["predict_per_s"]
        print(f"publish tx mined -> node serving the verified model (local anvil, poll {args.poll} s, "
              f"{args.publishes} publishes, {result['artifact_bytes']} B model)")
        print(f"  total       median {lat['median'] * 1000:7.1f} ms   min {lat['min'] * 1000:.1f}   "
              f"max {lat['max'] * 1000:.1f}")
        print(f"  detection   median {lat['detect_median'] * 1000:7.1f} ms   (event poll)")
        print(f"  verify+load median {lat['verify_load_median'] * 1000:7.1f} ms   vs unverified "
              f"InferenceSession {result['baseline_raw_session_s'] * 1000:.1f} ms "
              f"(x{result['verify_overhead_ratio']:.1f})")
        print(f"predictions per second at batch 1 ({args.requests} HTTP requests; answers agree: "
              f"{result['same_answer']})")
        print(f"  POST /predict (HTTP/1.1 keep-alive){rates['http_predict']:9.0f}/s   "
              f"x{result['http_vs_torch']:.2f} of PyTorch eager")
        print(f"  onnxruntime in-process            {rates['onnxruntime_in_process']:9.0f}/s   "
              f"x{result['ort_vs_torch']:.2f} of PyTorch eager")
        print(f"  PyTorch eager in-process          {rates['torch_eager']:9.0f}/s")
        print(f"summary: new release served {lat['median'] * 1000:.0f} ms (median) after its publish tx; "
              f"/predict {rates['http_predict']:.0f}/s vs PyTorch eager {rates['torch_eager']:.0f}/s "
              f"(x{result['http_vs_torch']:.2f}), onnxruntime in-process x{result['ort_vs_torch']:.2f}")
    return 0


def _wait(predicate: Any, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.005)
    raise SystemExit("bench: timed out waiting for the node")


if __name__ == "__main__":
    sys.exit(main())
