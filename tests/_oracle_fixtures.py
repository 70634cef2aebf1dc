"""Shared helpers for the oracle tests: tiny forecasters, publishing, a feed, a node.

Models here are untrained forecasters with a small window (built in milliseconds, distinct bytes
per seed) so the suite stays fast; the trained example has its own slow test.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest

NAME = "acme/co2-forecaster"
WINDOW = 8


def build_onnx(path: Path, seed: int, window: int = WINDOW) -> Path:
    import torch

    from registry.examples.forecast import build_model, export_onnx

    torch.manual_seed(seed)
    model = build_model(window=window, hidden=4, drift=0.0, std=1.0).eval()
    return export_onnx(model, path, window)


@pytest.fixture(scope="session")
def onnx_models(tmp_path_factory: pytest.TempPathFactory) -> dict[int, Path]:
    """Three distinct small forecasters (seeds 1..3), built once per worker."""
    root = tmp_path_factory.mktemp("oracle-models")
    return {seed: build_onnx(root / f"forecaster-{seed}.onnx", seed) for seed in (1, 2, 3)}


def publish(deployed: Any, path: Path, version: str, name: str = NAME) -> Any:
    """Publishes through the real pipeline (store + sign + anchor); returns the ReleaseRecord."""
    from registry.publish import publish_model

    result = publish_model(path, name, version, settings=deployed.settings(), client=deployed.client,
                           signer=deployed.publisher, manifest_dir=path.parent / f"manifests-{version}")
    return result.record


def tamper_store(deployed: Any, record: Any) -> None:
    """Flips a byte of the artifact's block(s) in the local store: the bytes no longer match."""
    from registry.content.cids import cid_from_bytes
    from registry.content.local import LocalStore

    store = LocalStore(deployed.settings().blocks_dir)
    path = store.block_path(cid_from_bytes(record.artifact_cid))
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def write_series(path: Path, values: Any) -> Path:
    path.write_text(json.dumps({"values": [float(v) for v in values]}))
    return path


@dataclass
class Setup:
    deployed: Any
    feed: Any
    owner: Any
    nodes: list[Any]
    input_path: Path
    tmp: Path


def deploy_feed(deployed: Any, nodes: list[Any], quorum: int = 1, approve: bytes | None = None) -> Any:
    from registry.oracle.feed import FeedClient

    owner = deployed.accounts[0]
    feed = FeedClient.deploy(deployed.rpc_url, owner, deployed.address, NAME, "CO2 ppm next week", 8, quorum,
                             retries=1)
    for node in nodes:
        feed.add_node(node.address, owner)
    if approve is not None:
        feed.set_approved_release(approve, owner)
    return feed


def make_node(setup: Setup, signer: Any, state_dir: Path, events: list[dict[str, Any]] | None = None,
              source: Any = None, rpc_url: str | None = None, **config: Any) -> Any:
    """A node on the setup's feed; ``rpc_url`` (e.g. a TcpProxy) replaces anvil's URL for all its calls."""
    from registry.chain.client import RegistryClient
    from registry.oracle.feed import FeedClient
    from registry.oracle.inputs import FileSource
    from registry.oracle.node import NodeConfig, OracleNode

    options = {"interval_s": 0.2, "poll_s": 0.1, "max_backoff_s": 0.5}
    options.update(config)
    url = rpc_url or setup.deployed.rpc_url
    registry = RegistryClient.at(url, setup.deployed.address, 31337, timeout_s=2.0, retries=1)
    feed = FeedClient.at(url, setup.feed.address, retries=1, timeout_s=2.0)
    return OracleNode(
        NodeConfig(model=NAME, state_dir=state_dir, **options),
        registry=registry,
        feed=feed,
        signer=signer,
        source=source or FileSource(setup.input_path),
        settings=setup.deployed.settings(),
        on_event=(events.append if events is not None else None),
    )


def wait_for(predicate: Callable[[], bool], timeout: float = 20.0, what: str = "condition") -> None:
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


class Running:
    """Runs a node's loop in a thread for the duration of a with-block."""

    def __init__(self, node: Any) -> None:
        self.node = node
        self.stop = threading.Event()
        self.thread = threading.Thread(target=node.run, args=(self.stop,), daemon=True)

    def __enter__(self) -> "Running":
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop.set()
        self.thread.join(timeout=10)
        assert not self.thread.is_alive(), "node loop did not stop"


def series(n: int = 64, start: float = 350.0) -> np.ndarray:
    return (start + 0.05 * np.arange(n) + np.sin(np.arange(n) / 4.0)).astype(np.float32)


class TcpProxy:
    """A TCP forwarder in front of anvil that a test can take down and bring back on the same port:
    a real connection-refused outage, not a mock."""

    def __init__(self, target_url: str) -> None:
        import socket
        from urllib.parse import urlparse

        parsed = urlparse(target_url)
        self._target = (parsed.hostname or "127.0.0.1", int(parsed.port or 80))
        probe = socket.socket()
        probe.bind(("127.0.0.1", 0))
        self.port = probe.getsockname()[1]
        probe.close()
        self._listener: Any = None
        self._conns: list[Any] = []
        self._lock = threading.Lock()
        self.up()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def up(self) -> None:
        import socket

        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def down(self) -> None:
        import socket

        with self._lock:
            listener, self._listener = self._listener, None
            conns, self._conns = self._conns, []
        if listener is not None:
            try:
                listener.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            listener.close()
        for conn in conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            conn.close()

    def _accept(self, listener: Any) -> None:
        import socket

        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self._target, timeout=5)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._conns.extend([client, upstream])
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(src: Any, dst: Any) -> None:
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (src, dst):
                try:
                    sock.close()
                except OSError:
                    pass


def funded_node(deployed: Any) -> Any:
    """A fresh node key with 10 ETH: anvil's well-known keys are refused off the local chain
    (``--key-env`` included), and the test profile points at an RPC URL, so it is not local."""
    from eth_account import Account

    account = Account.create()
    w3 = deployed.client.w3
    funder = deployed.accounts[0]
    tx = {"to": account.address, "value": 10 * 10**18, "gas": 21000, "gasPrice": w3.eth.gas_price,
          "nonce": w3.eth.get_transaction_count(funder.address), "chainId": w3.eth.chain_id}
    w3.eth.wait_for_transaction_receipt(w3.eth.send_raw_transaction(funder.sign_transaction(tx).raw_transaction))
    return account
