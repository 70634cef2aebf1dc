"""registry.strictjson, registry.recursion and the strict web3 provider (issue 10: nothing segfaults)."""

from __future__ import annotations

import http.server
import subprocess
import sys
import threading
import time

import pytest

from registry.errors import InputError
from registry.strictjson import nesting_depth, parse_json_strict, read_capped


def test_depth_is_refused_before_the_c_parser_sees_it() -> None:
    with pytest.raises(InputError, match="nested deeper than 64"):
        parse_json_strict(b"[" * 65 + b"]" * 65, what="doc")
    assert parse_json_strict(b"[" * 64 + b"]" * 64, what="doc") is not None
    assert nesting_depth('"[[[[" [1]') == 1  # brackets inside strings do not count


def test_depth_scan_is_linear_on_unterminated_escaped_quotes() -> None:
    """'"' + '\\"' * n made the old pre-scan quadratic: 40k repeats took 20 s, 4 MiB would take hours."""
    data = b'"' + b'\\"' * 1_000_000
    started = time.monotonic()
    with pytest.raises(InputError):
        parse_json_strict(data, what="doc")
    assert time.monotonic() - started < 5.0


@pytest.mark.parametrize("data, message", [
    (b'{"a": NaN}', "not finite"),
    (b'{"a": 1e999}', "overflows"),
    (b'{"a": 1, "a": 2}', "duplicate key"),
    (b'{"a": "\\ud800"}', "surrogate"),
    (b'{"\\udfff": 1}', "surrogate"),
    (b"\xff", "not UTF-8"),
    (b"x" * 100, "larger than 10"),
])
def test_what_a_careful_reader_refuses(data: bytes, message: str) -> None:
    with pytest.raises(InputError, match=message):
        parse_json_strict(data, what="doc", limit=10 if message.startswith("larger") else 1 << 20)


def test_read_capped_stops_at_the_limit_and_the_deadline() -> None:
    def endless():
        while True:
            yield b"x" * 1000

    with pytest.raises(InputError, match="larger than 5000"):
        read_capped(endless(), limit=5000, what="body")

    def trickle():
        for _ in range(100):
            time.sleep(0.05)
            yield b"x"

    with pytest.raises(InputError, match="within 0.2 s"):
        read_capped(trickle(), limit=1000, what="body", deadline_s=0.2)


def test_py_ecc_no_longer_leaves_a_recursion_limit_that_overflows_the_c_stack() -> None:
    """Importing eth_account (py_ecc) set the limit to 100000: json.loads of '[' * 10**6 then segfaulted."""
    code = ("import registry, json, sys\n"
            "import eth_account\n"
            "from registry.chain.client import RegistryClient\n"
            "assert sys.getrecursionlimit() < 10000, sys.getrecursionlimit()\n"
            "try:\n    json.loads('[' * 1000000)\nexcept RecursionError:\n    print('RecursionError')\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, (out.returncode, out.stderr[-500:])
    assert out.stdout.strip() == "RecursionError"


def test_limit_raised_before_registry_was_imported_is_repaired() -> None:
    code = "import eth_account, sys\nimport registry\nprint(sys.getrecursionlimit())"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and int(out.stdout) < 10000


class _Node:
    """A JSON-RPC endpoint whose answers a test controls (body, or a slow trickle)."""

    def __init__(self, body: bytes = b"", trickle_s: float = 0.0) -> None:
        node = self
        self.body, self.trickle_s = body, trickle_s

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                self.rfile.read(int(self.headers.get("content-length") or 0))
                self.send_response(200)
                self.send_header("content-length", str(len(node.body)))
                self.end_headers()
                try:
                    if node.trickle_s:
                        for byte in node.body:
                            self.wfile.write(bytes([byte]))
                            self.wfile.flush()
                            time.sleep(node.trickle_s)
                    else:
                        self.wfile.write(node.body)
                except OSError:
                    pass

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.mark.parametrize("body, message", [
    (b'{"jsonrpc":"2.0","id":0,"result":' + b"[" * 100_000 + b"]" * 100_000 + b"}", "nested deeper"),
    (b'{"jsonrpc":"2.0","id":0}', "not a JSON-RPC response"),
    (b'{"jsonrpc":"2.0","id":0,"result":{"x":1}}', "wrong type"),
    (b'{"jsonrpc":"2.0","id":0,"result":"0x1","result":"0x2"}', "duplicate key"),
])
def test_provider_refuses_malformed_answers(body: bytes, message: str) -> None:
    from registry.chain.rpc import make_web3
    from registry.chain.strict_provider import MalformedAnswer

    node = _Node(body)
    try:
        with pytest.raises(MalformedAnswer, match=message):
            make_web3(node.url, timeout_s=2).eth.chain_id
    finally:
        node.close()


def test_provider_caps_the_answer_size_and_time() -> None:
    from registry.chain.strict_provider import MalformedAnswer, StrictHTTPProvider
    from web3 import Web3

    node = _Node(b'{"jsonrpc":"2.0","id":0,"result":"0x' + b"0" * 10_000 + b'"}')
    try:
        with pytest.raises(MalformedAnswer, match="larger than 1000"):
            Web3(StrictHTTPProvider(node.url, 2, max_bytes=1000)).eth.chain_id
        node.body, node.trickle_s = b'{"jsonrpc":"2.0","id":0,"result":"0x1"}', 0.1
        import requests

        started = time.monotonic()
        with pytest.raises(requests.Timeout):
            Web3(StrictHTTPProvider(node.url, 0.5)).eth.chain_id  # deadline 1.5 s; the body needs 4 s
        assert time.monotonic() - started < 3.5
    finally:
        node.close()
