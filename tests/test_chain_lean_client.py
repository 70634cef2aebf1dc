"""The verifier's chain reads without web3: LeanClient answers as RegistryClient does (same records,
same errors, same reference rules), survives hostile RPC answers under strict_provider's limits, and
a fresh process's online verify imports neither web3, eth-account, py_ecc nor torch."""

from __future__ import annotations

import http.server
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Iterator

import pytest

from registry.chain.errors import ContractRevert
from registry.chain.lean import LeanRpc
from registry.chain.lean_client import LeanClient
from registry.chain.reads import ChainReader, confirmations, signed_from_chain
from registry.errors import ChainError, RevokedError, UnreachableError

from tests._verify_fixtures import publish_tiny

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("web3", "eth_account", "py_ecc", "eth_abi", "torch")


def _lean(deployed: Any) -> LeanClient:
    return LeanClient.at(deployed.rpc_url, deployed.address, deployed.chain_id, timeout_s=5.0, retries=1)


def test_both_clients_are_chain_readers(deployed) -> None:
    assert isinstance(_lean(deployed), ChainReader)
    assert isinstance(deployed.client, ChainReader)


def test_lean_reads_equal_registry_client_reads(deployed, tmp_path) -> None:
    pub = publish_tiny(deployed, tmp_path)
    child = publish_tiny(deployed, tmp_path, version="1.1.0", seed=1, parent=pub.ref)
    web3_client, lean = deployed.client, _lean(deployed)
    rec = child.result.record
    deployed.client.set_alias(rec.name, "prod", rec.id, deployed.publisher)
    deployed.client.attest(rec.id, True, b"\x07" * 32, deployed.accounts[3])
    assert lean.chain_id == web3_client.chain_id and lean.address == web3_client.address
    for ref in (pub.ref, child.ref, f"{rec.name}@latest", f"{rec.name}@prod", "sha256:" + rec.artifact_sha256.hex()):
        assert lean.resolve(ref) == web3_client.resolve(ref), ref
    assert lean.get_by_id(rec.parent) == web3_client.get_by_id(rec.parent)
    assert lean.may_publish(rec.name, rec.publisher) is web3_client.may_publish(rec.name, rec.publisher) is True
    assert lean.may_publish(rec.name, deployed.accounts[5].address) is False
    assert lean.is_valid(rec.id) is web3_client.is_valid(rec.id) is True
    attester = deployed.accounts[3].address
    assert lean.attestation_of(rec.id, attester) == web3_client.attestation_of(rec.id, attester) is not None
    assert lean.attestation_of(rec.id, deployed.accounts[4].address) is None
    assert lean.digest_ids(rec.artifact_sha256, 5) == web3_client.digest_ids(rec.artifact_sha256, 5)
    assert lean.published_in(rec.id) == web3_client.published_in(rec.id) is not None
    assert lean.block_number == web3_client.block_number
    assert confirmations(lean, rec) == confirmations(web3_client, rec) >= 0
    assert lean.get_code(deployed.address) == web3_client.get_code(deployed.address) != b""
    assert lean.get_code(deployed.accounts[6].address) == b""
    signed = signed_from_chain(lean, rec)
    assert signed == signed_from_chain(web3_client, rec)
    man = child.result.manifest
    assert (signed[0], signed[1]) == (man.release, man.signature)


def test_lean_errors_are_registry_client_errors(deployed, tmp_path) -> None:
    pub = publish_tiny(deployed, tmp_path)
    rec = pub.result.record
    lean = _lean(deployed)
    with pytest.raises(ContractRevert) as ours:
        lean.get(rec.name, "9.9.9")
    with pytest.raises(ContractRevert) as theirs:
        deployed.client.get(rec.name, "9.9.9")
    assert ours.value.error_name == theirs.value.error_name == "UnknownRelease"
    assert str(ours.value) == str(theirs.value) and "no release acme/tiny@9.9.9" in str(ours.value)
    with pytest.raises(ContractRevert, match="no alias"):
        lean.resolve_alias(rec.name, "nope")
    deployed.client.set_alias(rec.name, "prod", rec.id, deployed.publisher)
    deployed.client.revoke(rec.id, "bad weights", deployed.publisher)
    with pytest.raises(RevokedError, match="bad weights"):
        lean.resolve(f"{rec.name}@prod")
    with pytest.raises(RevokedError):
        lean.resolve("sha256:" + rec.artifact_sha256.hex())
    with pytest.raises(ChainError, match="wrong chain"):
        LeanClient.at(deployed.rpc_url, deployed.address, chain_id=1)
    with pytest.raises(ChainError, match="no contract"):
        LeanClient.at(deployed.rpc_url, deployed.accounts[7].address)


def test_limits_are_strict_providers() -> None:
    from registry.chain import lean, strict_provider

    assert lean.MAX_ANSWER == strict_provider.MAX_RPC_RESPONSE_BYTES
    assert lean.MAX_DEPTH == strict_provider.MAX_RPC_DEPTH
    assert lean.DEADLINE_FACTOR == strict_provider.DEADLINE_FACTOR


# ---------------------------------------------------------------------------------------------
# Hostile answers


class _Server:
    """Answers every POST with ``status`` and ``body`` (sent in ``pieces`` with ``delay`` between)."""

    def __init__(self) -> None:
        self.status, self.body, self.pieces, self.delay = 200, b"{}", 1, 0.0
        self.hits = 0
        self.peers: set[Any] = set()
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:  # noqa: N802 - stdlib name
                owner.hits += 1
                owner.peers.add(self.client_address)
                self.rfile.read(int(self.headers.get("content-length") or 0))
                body = owner.body
                self.send_response(owner.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                step = max(1, len(body) // owner.pieces)
                try:
                    for i in range(0, len(body), step):
                        self.wfile.write(body[i:i + step])
                        self.wfile.flush()
                        time.sleep(owner.delay)
                except OSError:
                    pass

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"


@pytest.fixture
def server() -> Iterator[_Server]:
    s = _Server()
    yield s
    s.server.shutdown()
    s.server.server_close()


@pytest.mark.parametrize("body, match", [
    (b"[" * 5000 + b"]" * 5000, "nested deeper"),
    (b'{"jsonrpc":"2.0","id":1,"result":"0x1","result":"0x2"}', "duplicate key"),
    (b'{"jsonrpc":"2.0","id":1,"result":NaN}', "not finite"),
    (b"<html>busy</html>", "malformed JSON"),
    (b'{"jsonrpc":"2.0","id":1}', "not a JSON-RPC response"),
    (b'{"jsonrpc":"2.0","id":1,"error":"boom"}', "not a JSON-RPC response"),
    (b'{"jsonrpc":"2.0","id":1,"result":{"a":[1]}}', "not hex"),
    (b'{"jsonrpc":"2.0","id":1,"result":"0xzz"}', "not hex"),
    (b'{"jsonrpc":"2.0","id":1,"error":{"code":-32000,"message":"nope"}}', "refused the call: nope"),
])
def test_malformed_answers_are_chain_errors(server: _Server, body: bytes, match: str) -> None:
    server.body = body
    with pytest.raises(ChainError, match=match):
        LeanRpc(server.url, timeout=2.0, retries=0).request("eth_chainId", [])


def test_oversized_answer_is_refused_at_the_limit(server: _Server, monkeypatch) -> None:
    from registry.chain import lean

    monkeypatch.setattr(lean, "MAX_ANSWER", 4096)
    server.body = b'{"jsonrpc":"2.0","id":1,"result":"0x' + b"00" * 4096 + b'"}'
    with pytest.raises(ChainError, match="larger than 4096 bytes"):
        LeanRpc(server.url, timeout=2.0, retries=0).request("eth_call", [])


def test_trickling_answer_hits_the_deadline(server: _Server) -> None:
    server.body = b'{"jsonrpc":"2.0","id":1,"result":"0x7a69"}'
    server.pieces, server.delay = 40, 0.1  # ~4 s in all, each piece well inside the socket timeout
    started = time.monotonic()
    with pytest.raises(UnreachableError, match="did not answer after 1 attempts \\(timed out\\)"):
        LeanRpc(server.url, timeout=0.5, retries=0).request("eth_chainId", [])
    assert time.monotonic() - started < 3.0


def test_server_errors_are_retried_then_unreachable(server: _Server) -> None:
    server.status, server.body = 503, b"busy"
    slept: list[float] = []
    with pytest.raises(UnreachableError, match="after 3 attempts \\(HTTP 503\\)"):
        LeanRpc(server.url, timeout=2.0, retries=2, sleep=slept.append).request("eth_chainId", [])
    assert slept == [0.25, 0.5] and server.hits == 3
    server.status, server.hits = 404, 0
    with pytest.raises(UnreachableError, match="refused the request \\(HTTP 404\\)"):
        LeanRpc(server.url, timeout=2.0, retries=2, sleep=slept.append).request("eth_chainId", [])
    assert server.hits == 1


def test_keep_alive_connection_is_reused_without_backoff(server: _Server) -> None:
    """Regression: a response read with read1 was never marked done, so every second request failed on
    the kept-alive connection and waited out a retry backoff (0.75 s per verify)."""
    server.body = b'{"jsonrpc":"2.0","id":1,"result":"0x7a69"}'
    slept: list[float] = []
    rpc = LeanRpc(server.url, timeout=5.0, retries=3, sleep=slept.append)
    for _ in range(5):
        assert rpc.request("eth_chainId", []) == "0x7a69"
    assert slept == [] and len(server.peers) == 1 and server.hits == 5


def test_revert_data_decodes_to_the_custom_error(server: _Server) -> None:
    from registry.chain.lean import errors, functions

    selector = next(s for s, (name, _) in errors().items() if name == "UnknownRelease")
    data = "0x" + selector.hex() + "11" * 32
    server.body = json.dumps({"jsonrpc": "2.0", "id": 1, "error": {"code": 3, "message": "execution reverted",
                                                                    "data": data}}).encode()
    rpc_call = functions()["getRelease"]
    with pytest.raises(ContractRevert) as info:
        LeanRpc(server.url, timeout=2.0, retries=0).request("eth_call", [{"data": rpc_call.encode(b"\x11" * 32).hex()}])
    assert info.value.error_name == "UnknownRelease" and info.value.error_args == (b"\x11" * 32,)


# ---------------------------------------------------------------------------------------------
# Cold start


def _heavy_after(code: str, env: dict[str, str]) -> list[str]:
    probe = code + f"; import sys; print(sorted(m for m in {HEAVY!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env, cwd=ROOT)
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout.strip().splitlines()[-1].replace("'", '"'))


def test_fresh_process_online_verify_imports_nothing_heavy(deployed, tmp_path) -> None:
    pub = publish_tiny(deployed, tmp_path)
    code = (f"import registry.verify; r = registry.verify.verify({pub.ref!r}, file={str(pub.model)!r}, "
            f"manifest={str(pub.manifest_path)!r}); assert r.ok and r.mode == 'online', r.to_json()")
    assert _heavy_after(code, dict(os.environ)) == []


def test_local_devnet_is_read_without_web3_and_rebuilt_deployments_are_noticed(registry_home, monkeypatch) -> None:
    from registry.chain import devnet
    from registry.chain.lean_client import _running_devnet
    from registry.config import load_settings

    monkeypatch.setenv("REGISTRY_DEVNET_PORT", str(devnet.free_port()))
    settings = load_settings()
    try:
        assert _running_devnet(settings) is None  # nothing runs yet: ensure_running has work to do
        info = devnet.ensure_running(settings)
        assert _running_devnet(settings) == devnet.DevnetInfo(info.rpc_url, info.chain_id, info.contract)
        code = "from registry.chain.reads import connect_reader; from registry.config import load_settings; " \
               "c = connect_reader(load_settings()); assert c.chain_id == 31337"
        assert _heavy_after(code, dict(os.environ)) == []
        path = settings.chain_dir / "deployment.json"
        deployment = json.loads(path.read_text())
        path.write_text(json.dumps({**deployment, "artifact_hash": "0x" + "ab" * 32}))
        assert _running_devnet(settings) is None  # a rebuilt contract: ensure_running redeploys
        assert LeanClient.connect(settings).address != info.contract
    finally:
        devnet.stop(settings)
