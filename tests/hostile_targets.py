"""Every parser that takes a file or a network answer, registered with the hostile-input harness.

One function per parser: it reads ``data`` exactly the way the registry reads that input (through a
temp file when the code takes a path) and raises a ``RegistryError`` to refuse. See
``tests/hostile.py`` for how to add yours.
"""

from __future__ import annotations

import tempfile
from functools import lru_cache
from pathlib import Path
from typing import Any

from tests.hostile import Case, target


@lru_cache(maxsize=1)
def _scratch() -> Path:
    return Path(tempfile.mkdtemp(prefix="hostile-"))


def _as_file(data: bytes, name: str) -> Path:
    path = _scratch() / name
    path.write_bytes(data)
    return path


@target("strict JSON", "json", may_accept={"many keys"})
def strict_json(data: bytes) -> Any:
    from registry.strictjson import parse_json_strict

    value = parse_json_strict(data, what="input")
    if not isinstance(value, dict):  # the hand-made cases are hostile as documents; plain values are fine
        from registry.errors import InputError

        raise InputError("not an object")
    return value


@target("manifest file", "json")
def manifest(data: bytes) -> Any:
    from registry.manifest import load_manifest

    return load_manifest(_as_file(data, "acme+m@1.0.0.release.json"))


@target("provenance document", "json")
def provenance(data: bytes) -> Any:
    from registry.provenance import load_provenance

    return load_provenance(data)


@target("policy file", "toml")
def policy(data: bytes) -> Any:
    from registry.policy import load_policy

    return load_policy(_as_file(data, "policy.toml"))


@target("profiles file", "toml", cases=[Case("profile not a table", b"[profiles]\nx = 1\n")],
        may_accept={"unknown keys", "wrong types", "nan"})  # top-level keys other than [profiles] are not read
def profiles(data: bytes) -> Any:
    from registry.config import read_profiles

    home = _scratch() / "home"
    home.mkdir(exist_ok=True)
    (home / "profiles.toml").write_bytes(data)
    return read_profiles(home)


@target("recipe file", "toml", cases=[Case("unknown step", b'[[steps]]\nkind = "rm -rf"\n')])
def recipe(data: bytes) -> Any:
    from registry.compress.recipe import load_recipe

    return load_recipe(_as_file(data, "recipe.toml"))


@target("ONNX model", "onnx", timeout_s=60.0)
def onnx_model(data: bytes) -> Any:
    from registry.onnx_checks import check_onnx

    return check_onnx(data)


@target("tensor layout (ONNX model)", "onnx", timeout_s=60.0, may_accept={
    # the layout rewrites where tensors live and evaluates nothing: these are valid input for it
    "allocation bomb: ConstantOfShape constant", "allocation bomb: Expand constant", "allocation bomb: Tile constant",
    "allocation bomb: Range constant", "allocation bomb: Pad constant", "allocation bomb: ConstantOfShape from data",
    "allocation bomb: Expand of a scaled shape", "custom domain op"})
def tensor_layout(data: bytes) -> Any:
    from registry.layout import write_tensor_layout

    folder = _scratch() / "layout"
    folder.mkdir(exist_ok=True)
    (folder / "model.onnx").write_bytes(data)
    return write_tensor_layout(folder / "model.onnx", _scratch() / "layout-out", replace=True)


@target("reference", "text")
def reference(data: bytes) -> Any:
    from registry.release import parse_ref

    return parse_ref(data.decode("utf-8", "surrogateescape"))  # how argv arrives


@target("RPC answer", "json", cases=[
    Case("result and error missing", b'{"jsonrpc": "2.0", "id": 1}'),
    Case("error not an object", b'{"jsonrpc": "2.0", "id": 1, "error": "boom"}'),
    Case("error code not an int", b'{"jsonrpc": "2.0", "id": 1, "error": {"code": "x", "message": "m"}}'),
    Case("empty batch", b"[]"),
])
def rpc_answer(data: bytes) -> Any:
    from registry.chain.strict_provider import StrictHTTPProvider

    return StrictHTTPProvider("http://127.0.0.1:1").decode_rpc_response(data)


@target("oracle input (JSON file)", "json", may_accept={"wrong type: list"})
def oracle_input_json(data: bytes) -> Any:
    from registry.oracle.inputs import FileSource

    return FileSource(_as_file(data, "input.json")).read(3)


@target("oracle input (CSV file)", "bytes", cases=[
    Case("NaN row", b"value\n1\nnan\n3\n"),
    Case("inf row", b"1\n2\ninf\n"),
    Case("text where numbers should be", b"a,b\nx,y\nz,w\nq,r\n"),
    Case("too few values", b"1\n2\n"),
    Case("huge line", b"1" * (9 * 1024 * 1024)),
])
def oracle_input_csv(data: bytes) -> Any:
    from registry.oracle.inputs import FileSource

    return FileSource(_as_file(data, "input.csv")).read(3)


@target("oracle state file", "json", cases=[
    Case("feed of the wrong type", b'{"schema": "registry.oracle-state/v1", "state": {"feed": 5, "model": "acme/m"}}'),
    Case("counters of the wrong type", b'{"schema": "registry.oracle-state/v1", "state": {"feed": "0x' + b"11" * 20
         + b'", "model": "acme/m", "last_block": "x", "last_submitted_round": 1.5}}'),
    Case("another feed", b'{"schema": "registry.oracle-state/v1", "state": {"feed": "0xabc", "model": "acme/m"}}'),
])
def oracle_state(data: bytes) -> Any:
    from registry.oracle.state import load_state

    return load_state(_as_file(data, "oracle-state.json"), "0x" + "11" * 20, "acme/m")


@target("keystore file", "json")
def keystore(data: bytes) -> Any:
    from registry.keys import KeyInfo, unlock

    return unlock(KeyInfo(address="0x" + "11" * 20, path=_as_file(data, "key.json")), "pw")


# --------------------------------------------------------------------------------------------
# The oracle node's HTTP server: request bodies and raw requests over a socket
# --------------------------------------------------------------------------------------------


@lru_cache(maxsize=1)
def _node_server() -> Any:
    from registry.errors import InputError
    from registry.oracle.server import Handlers, NodeServer

    def predict(payload: Any) -> dict[str, Any]:
        if not isinstance(payload, dict) or not isinstance(payload.get("inputs"), list):
            raise InputError('body must be a JSON object with "inputs"')
        return {"predictions": [0.0]}

    return NodeServer(Handlers(health=lambda: {"status": "serving"}, predict=predict, log=lambda _m: None), 0,
                      request_timeout_s=2.0).start()


def _alive(url: str) -> None:
    import httpx

    if httpx.get(url + "/health", timeout=10).status_code != 200:
        raise RuntimeError("the node's HTTP server stopped answering /health")


@target("oracle HTTP body", "json", timeout_s=30.0)
def oracle_http_body(data: bytes) -> Any:
    import httpx

    from registry.errors import InputError

    server = _node_server()
    try:
        answer = httpx.post(server.url + "/predict", content=data, timeout=20)
    except httpx.TransportError as exc:  # the server hung up on an oversized body: a refusal, if it lives
        _alive(server.url)
        raise InputError(f"connection closed by the server ({type(exc).__name__})") from exc
    _alive(server.url)
    if answer.status_code >= 500:
        raise RuntimeError(f"HTTP {answer.status_code}: {answer.text[:200]}")
    if answer.status_code != 200:
        raise InputError(f"HTTP {answer.status_code}")
    return answer.json()


def _raw_cases() -> list[Case]:
    return [
        Case("half-sent headers", b"POST /predict HTTP/1.1\r\nHost: x\r\n"),
        Case("body shorter than declared", b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{}"),
        Case("huge header", b"GET /health HTTP/1.1\r\nX: " + b"a" * 100_000 + b"\r\n\r\n"),
        Case("many headers", b"GET /health HTTP/1.1\r\n" + b"X: y\r\n" * 20_000 + b"\r\n"),
        Case("bad request line", b"\x00\x01\x02 / HTTP/9.9\r\n\r\n"),
        Case("negative length", b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n"),
        Case("chunked garbage", b"POST /predict HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"),
        Case("huge chunk", b"POST /predict HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                           b"ffffffffff\r\nabc"),
        Case("smuggling", b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked"
                          b"\r\n\r\n0\r\n\r\nGET /health HTTP/1.1\r\n\r\n"),
        Case("path traversal", b"GET /../../etc/passwd HTTP/1.1\r\nHost: x\r\n\r\n"),
    ]


@target("oracle HTTP raw request", "bytes", cases=_raw_cases(), timeout_s=30.0)
def oracle_http_raw(data: bytes) -> Any:
    import socket

    from registry.errors import InputError

    server = _node_server()
    host, port = server.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=15) as sock:
        try:
            sock.sendall(data)
            sock.shutdown(socket.SHUT_WR)
            reply = sock.recv(65536)
        except OSError:
            reply = b""
    _alive(server.url)
    status = reply.split(b" ", 2)[1:2]
    if status and status[0].startswith(b"5"):
        raise RuntimeError(f"server error: {reply[:200]!r}")
    if not (status and status[0] == b"200"):
        raise InputError(f"refused: {reply[:60]!r}")
    return reply


# --------------------------------------------------------------------------------------------
# The harness checking itself: a crash, a hang and a bug must be counted as such
# --------------------------------------------------------------------------------------------

if __import__("os").environ.get("REGISTRY_HOSTILE_SELFTEST"):

    @target("harness self-test", "bytes", timeout_s=1.0)
    def _self_test(data: bytes) -> Any:
        import ctypes
        import time

        if data == b"segfault":
            ctypes.string_at(0)
        if data == b"hang":
            time.sleep(3600)
        if data == b"bug":
            raise ValueError("a bug")
        return data
