"""A lean read path to the registry contract, for a device's cold start: JSON-RPC ``eth_call`` without web3.

web3.py takes over a second to import; a device that only verifies needs a handful of views. This
module calls them straight over JSON-RPC (``http.client``), with every function's selector and
argument/return types taken from the committed ABI (``registry/chain/artifacts/ModelRegistry.json``),
never hard-coded, so a contract change reaches it with the artifacts. The ABI codec covers the types
the views use (uint/int, bool, address, bytesN, bytes, string, tuples, dynamic arrays) and decodes
strictly: offsets and lengths must lie inside the answer. Answers are parsed with the strict JSON
parser (size and depth limits). Publish and the oracle keep web3.py.
"""

from __future__ import annotations

import http.client
import json
import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any
from urllib.parse import urlsplit

from registry.errors import ChainError, InputError, UnreachableError

MAX_ANSWER = 4 * 1024 * 1024


def keccak(data: bytes) -> bytes:
    from eth_hash.auto import keccak as _keccak

    return _keccak(data)


def checksum(address: bytes | str) -> str:
    """EIP-55 spelling of a 20-byte address."""
    hexed = (address.hex() if isinstance(address, bytes) else address.lower().removeprefix("0x"))
    digest = keccak(hexed.encode()).hex()
    return "0x" + "".join(c.upper() if int(d, 16) >= 8 else c for c, d in zip(hexed, digest))


# ---------------------------------------------------------------------------------------------
# ABI codec (the subset the registry's views use)


def canonical_type(item: dict[str, Any]) -> str:
    t = item["type"]
    if t.startswith("tuple"):
        return "(" + ",".join(canonical_type(c) for c in item["components"]) + ")" + t[len("tuple"):]
    return t


def _is_dynamic(item: dict[str, Any]) -> bool:
    t = item["type"]
    if t in ("bytes", "string") or t.endswith("[]"):
        return True
    if t == "tuple":
        return any(_is_dynamic(c) for c in item["components"])
    return False


def _word(data: bytes, pos: int) -> int:
    if pos < 0 or pos + 32 > len(data):
        raise ChainError("ABI answer truncated")
    return int.from_bytes(data[pos:pos + 32], "big")


def _static_size(item: dict[str, Any]) -> int:
    if item["type"] == "tuple":
        return sum(_static_size(c) for c in item["components"])
    return 32


def decode_tuple(components: list[dict[str, Any]], data: bytes) -> tuple[Any, ...]:
    """A tuple's values from its encoding (``data`` starts at the tuple's first head word)."""
    out: list[Any] = []
    head = 0
    for comp in components:
        if _is_dynamic(comp):
            offset = _word(data, head)
            if offset > len(data):
                raise ChainError("ABI offset past the end of the answer")
            out.append(_decode_dynamic(comp, data[offset:]))
            head += 32
        else:
            out.append(_decode_static(comp, data, head))
            head += _static_size(comp)
    return tuple(out)


def _decode_dynamic(item: dict[str, Any], data: bytes) -> Any:
    t = item["type"]
    if t in ("bytes", "string"):
        length = _word(data, 0)
        if 32 + length > len(data):
            raise ChainError("ABI bytes longer than the answer")
        raw = data[32:32 + length]
        if t == "bytes":
            return raw
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ChainError("ABI string is not UTF-8") from exc
    if t.endswith("[]"):
        count = _word(data, 0)
        inner = dict(item, type=t[:-2])
        if count * (32 if _is_dynamic(inner) else _static_size(inner)) > len(data) - 32:
            raise ChainError("ABI array longer than the answer")
        return list(decode_tuple([inner] * count, data[32:]))
    if t == "tuple":
        return decode_tuple(item["components"], data)
    raise ChainError(f"ABI type {t} is not supported by the lean reader")


def _decode_static(item: dict[str, Any], data: bytes, pos: int) -> Any:
    t = item["type"]
    if t == "tuple":
        return decode_tuple(item["components"], data[pos:pos + _static_size(item)])
    word = _word(data, pos)
    if t == "address":
        if word >> 160:
            raise ChainError("ABI address has dirty high bits")
        return checksum(word.to_bytes(20, "big"))
    if t == "bool":
        if word > 1:
            raise ChainError("ABI bool is neither 0 nor 1")
        return bool(word)
    if m := re.fullmatch(r"uint(\d+)", t):
        if word >> int(m.group(1)):
            raise ChainError(f"ABI {t} out of range")
        return word
    if m := re.fullmatch(r"int(\d+)", t):
        bits = int(m.group(1))
        value = word - (1 << 256) if word >> 255 else word
        if not -(1 << (bits - 1)) <= value < (1 << (bits - 1)):
            raise ChainError(f"ABI {t} out of range")
        return value
    if m := re.fullmatch(r"bytes(\d+)", t):
        n = int(m.group(1))
        raw = data[pos:pos + 32]
        if any(raw[n:]):
            raise ChainError(f"ABI {t} has dirty padding")
        return raw[:n]
    raise ChainError(f"ABI type {t} is not supported by the lean reader")


def encode_args(inputs: list[dict[str, Any]], args: tuple[Any, ...]) -> bytes:
    """Encodes simple arguments (address, bool, uintN, bytesN, string, bytes)."""
    heads: list[bytes] = []
    tails: list[bytes] = []
    offset = 32 * len(inputs)
    for item, value in zip(inputs, args, strict=True):
        t = item["type"]
        if t in ("string", "bytes"):
            raw = value.encode("utf-8") if t == "string" else bytes(value)
            heads.append((offset + sum(len(x) for x in tails)).to_bytes(32, "big"))
            tails.append(len(raw).to_bytes(32, "big") + raw + b"\x00" * (-len(raw) % 32))
        elif t == "address":
            heads.append(bytes.fromhex(str(value).removeprefix("0x")).rjust(32, b"\x00"))
        elif t == "bool":
            heads.append(int(bool(value)).to_bytes(32, "big"))
        elif t.startswith("uint"):
            heads.append(int(value).to_bytes(32, "big"))
        elif re.fullmatch(r"bytes\d+", t):
            heads.append(bytes(value).ljust(32, b"\x00"))
        else:
            raise InputError(f"the lean reader cannot encode {t}")
    return b"".join(heads) + b"".join(tails)


@dataclass(frozen=True)
class Function:
    name: str
    inputs: list[dict[str, Any]]
    outputs: list[dict[str, Any]]

    @property
    def signature(self) -> str:
        return f"{self.name}({','.join(canonical_type(i) for i in self.inputs)})"

    @property
    def selector(self) -> bytes:
        return keccak(self.signature.encode())[:4]

    def encode(self, *args: Any) -> bytes:
        return self.selector + encode_args(self.inputs, args)

    def decode(self, data: bytes) -> Any:
        values = decode_tuple(self.outputs, data)
        return values[0] if len(values) == 1 else values


@lru_cache(maxsize=4)
def functions(name: str = "ModelRegistry") -> dict[str, Function]:
    """The contract's functions from the committed ABI (overloads: the first one wins)."""
    from importlib import resources

    raw = json.loads(resources.files("registry.chain").joinpath("artifacts", f"{name}.json").read_text("utf-8"))
    out: dict[str, Function] = {}
    for item in raw["abi"]:
        if item.get("type") == "function" and item["name"] not in out:
            out[item["name"]] = Function(item["name"], item.get("inputs", []), item.get("outputs", []))
    return out


# ---------------------------------------------------------------------------------------------
# JSON-RPC


class LeanRpc:
    """``eth_call``/``eth_chainId`` over one keep-alive HTTP connection, with timeouts and strict parsing."""

    def __init__(self, url: str, timeout: float = 10.0) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise InputError(f"not an http(s) RPC URL: {url[:80]!r}")
        self.url = url
        self._parts = parts
        self._timeout = timeout
        self._conn: http.client.HTTPConnection | None = None
        self._id = 0

    def _connection(self) -> http.client.HTTPConnection:
        if self._conn is None:
            cls = http.client.HTTPSConnection if self._parts.scheme == "https" else http.client.HTTPConnection
            self._conn = cls(self._parts.hostname, self._parts.port, timeout=self._timeout)  # type: ignore[arg-type]
        return self._conn

    def request(self, method: str, params: list[Any]) -> Any:
        from registry.provenance import parse_json_strict

        self._id += 1
        body = json.dumps({"jsonrpc": "2.0", "id": self._id, "method": method, "params": params}).encode()
        path = self._parts.path or "/"
        for attempt in (0, 1):
            conn = self._connection()
            try:
                conn.request("POST", path, body, {"Content-Type": "application/json"})
                resp = conn.getresponse()
                raw = resp.read(MAX_ANSWER + 1)
                break
            except (OSError, http.client.HTTPException) as exc:
                conn.close()
                self._conn = None
                if attempt:
                    raise UnreachableError(f"RPC {self.url} did not answer {method}: {exc}") from exc
        if len(raw) > MAX_ANSWER:
            raise ChainError(f"RPC {method}: answer larger than {MAX_ANSWER} bytes")
        if resp.status != 200:
            raise UnreachableError(f"RPC {self.url} answered HTTP {resp.status} to {method}")
        answer = parse_json_strict(raw, what=f"RPC answer to {method}", limit=MAX_ANSWER, error=ChainError)
        if not isinstance(answer, dict):
            raise ChainError(f"RPC {method}: not a JSON-RPC answer")
        if answer.get("error") is not None:
            error = answer["error"]
            message = error.get("message") if isinstance(error, dict) else str(error)
            data = error.get("data") if isinstance(error, dict) else None
            raise _CallReverted(str(message)[:200], data if isinstance(data, str) else None)
        return answer.get("result")

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


class _CallReverted(ChainError):
    def __init__(self, message: str, data: str | None) -> None:
        super().__init__(f"call reverted: {message}")
        self.data = data


class LeanRegistry:
    """The registry's views by name, ABI-driven: ``call("getRelease", release_id)``."""

    def __init__(self, rpc_url: str, address: str, timeout: float = 10.0) -> None:
        self.rpc = LeanRpc(rpc_url, timeout)
        self.address = checksum(address)
        self._functions = functions()

    def chain_id(self) -> int:
        result = self.rpc.request("eth_chainId", [])
        if not isinstance(result, str) or not re.fullmatch(r"0x[0-9a-fA-F]{1,16}", result):
            raise ChainError("eth_chainId answered something that is not a quantity")
        return int(result, 16)

    def code_size(self) -> int:
        result = self.rpc.request("eth_getCode", [self.address, "latest"])
        if not isinstance(result, str) or not re.fullmatch(r"0x(?:[0-9a-fA-F]{2})*", result):
            raise ChainError("eth_getCode answered something that is not hex")
        return (len(result) - 2) // 2

    def call(self, name: str, *args: Any) -> Any:
        fn = self._functions.get(name)
        if fn is None:
            raise ChainError(f"the contract ABI has no function {name}")
        result = self.rpc.request("eth_call", [{"to": self.address, "data": "0x" + fn.encode(*args).hex()}, "latest"])
        if not isinstance(result, str) or not re.fullmatch(r"0x(?:[0-9a-fA-F]{2})*", result):
            raise ChainError(f"eth_call {name} answered something that is not hex")
        return fn.decode(bytes.fromhex(result[2:]))

    def revert_selector(self, exc: ChainError) -> bytes | None:
        data = getattr(exc, "data", None)
        if isinstance(data, str) and re.fullmatch(r"0x[0-9a-fA-F]{8,}", data):
            return bytes.fromhex(data[2:10])
        return None

    def error_name(self, exc: ChainError) -> str | None:
        """The custom error's name (from the ABI) a reverted call carried, if any."""
        selector = self.revert_selector(exc)
        if selector is None:
            return None
        from importlib import resources

        raw = json.loads(resources.files("registry.chain").joinpath("artifacts", "ModelRegistry.json")
                         .read_text("utf-8"))
        for item in raw["abi"]:
            if item.get("type") == "error":
                sig = f"{item['name']}({','.join(canonical_type(i) for i in item.get('inputs', []))})"
                if keccak(sig.encode())[:4] == selector:
                    return str(item["name"])
        return None
