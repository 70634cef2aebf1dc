"""A lean read path to the registry contract, for a device's cold start: JSON-RPC ``eth_call`` without web3.

web3.py takes over a second to import; a device that only verifies needs a handful of views. This
module calls them straight over JSON-RPC (``http.client``), with every function's selector and
argument/return types taken from the committed ABI (``registry/chain/artifacts/ModelRegistry.json``),
never hard-coded, so a contract change reaches it with the artifacts. The ABI codec covers the types
the views use (uint/int, bool, address, bytesN, bytes, string, tuples, dynamic arrays) and decodes
strictly: offsets and lengths must lie inside the answer. Publish and the oracle keep web3.py.

Answers are read as hostile input, under the limits ``strict_provider.StrictHTTPProvider`` applies
to web3 (same numbers): at most ``MAX_ANSWER`` bytes, all of them within ``DEADLINE_FACTOR`` request
timeouts (a node trickling one byte at a time is cut off), parsed by ``registry.strictjson`` (depth,
duplicate keys, NaN, UTF-8), JSON-RPC shaped, with a result of the type the method returns.
Transient failures (connection refused or reset, timeouts, HTTP 5xx/429) are retried with the same
backoff as ``registry.chain.rpc.with_retries`` and end in ``UnreachableError``; a revert becomes the
same ``ContractRevert`` (custom error by name, decoded arguments) web3's path raises.
"""

from __future__ import annotations

import http.client
import json
import re
import time
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Callable
from urllib.parse import urlsplit

from registry.errors import ChainError, InputError, UnreachableError

# The limits of registry.chain.strict_provider (tests check that they agree).
MAX_ANSWER = 32 * 1024 * 1024
MAX_DEPTH = 32
DEADLINE_FACTOR = 3.0
CHUNK = 64 * 1024
# registry.chain.rpc's backoff
BACKOFF_START_S = 0.25
BACKOFF_MAX_S = 4.0
CONTRACT = "ModelRegistry"
_ADDRESS = re.compile(r"(0x)?[0-9a-fA-F]{40}")


def keccak(data: bytes) -> bytes:
    from eth_hash.auto import keccak as _keccak

    return _keccak(data)


def checksum(address: bytes | str) -> str:
    """EIP-55 spelling of a 20-byte address."""
    hexed = (address.hex() if isinstance(address, bytes) else address.lower().removeprefix("0x"))
    digest = keccak(hexed.encode()).hex()
    return "0x" + "".join(c.upper() if int(d, 16) >= 8 else c for c, d in zip(hexed, digest))


def is_address(value: Any) -> bool:
    """``eth_utils.is_address`` without importing it: 40 hex digits (0x optional) or 20 raw bytes."""
    if isinstance(value, str):
        return _ADDRESS.fullmatch(value) is not None
    return isinstance(value, (bytes, bytearray)) and len(value) == 20


def to_checksum_address(value: Any) -> str:
    """``eth_utils.to_checksum_address`` without importing it (ValueError for anything else)."""
    if not is_address(value):
        raise ValueError(f"unknown format {str(value)[:60]!r}, expected a 20-byte address")
    return checksum(bytes(value) if isinstance(value, (bytes, bytearray)) else value.lower())


def require_address(value: str, what: str = "address") -> str:
    """An address argument, checksummed; InputError for anything else (both clients' argument check)."""
    if not isinstance(value, str) or not is_address(value):
        raise InputError(f"invalid {what} {value!r}: expected a 0x-prefixed 20-byte hex address")
    return to_checksum_address(value)


def require_bytes32(value: bytes, what: str) -> bytes:
    if not isinstance(value, (bytes, bytearray)) or len(value) != 32:
        raise InputError(f"{what} must be 32 bytes")
    return bytes(value)


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


def _word(data: bytes | memoryview, pos: int) -> int:
    if pos < 0 or pos + 32 > len(data):
        raise ChainError("ABI answer truncated")
    return int.from_bytes(data[pos:pos + 32], "big")


def _static_size(item: dict[str, Any]) -> int:
    if item["type"] == "tuple":
        return sum(_static_size(c) for c in item["components"])
    return 32


def decode_tuple(components: list[dict[str, Any]], data: bytes | memoryview) -> tuple[Any, ...]:
    """A tuple's values from its encoding (``data`` starts at the tuple's first head word)."""
    data = memoryview(data)  # slices below are views: nested offsets never copy the answer
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


def _decode_dynamic(item: dict[str, Any], data: memoryview) -> Any:
    t = item["type"]
    if t in ("bytes", "string"):
        length = _word(data, 0)
        if 32 + length > len(data):
            raise ChainError("ABI bytes longer than the answer")
        raw = bytes(data[32:32 + length])
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


def _decode_static(item: dict[str, Any], data: memoryview, pos: int) -> Any:
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
        raw = bytes(data[pos:pos + 32])
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

    def decode_input(self, calldata: bytes) -> tuple[Any, ...]:
        """The arguments of a call to this function (its transaction's input)."""
        if bytes(calldata[:4]) != self.selector:
            raise ChainError(f"calldata is not a call to {self.signature}")
        return decode_tuple(self.inputs, memoryview(calldata)[4:])


@lru_cache(maxsize=4)
def artifact_json(name: str = "ModelRegistry") -> dict[str, Any]:
    """The committed artifact (ABI and bytecode), read once per process."""
    from importlib import resources

    raw = json.loads(resources.files("registry.chain").joinpath("artifacts", f"{name}.json").read_text("utf-8"))
    return raw  # type: ignore[no-any-return]


@lru_cache(maxsize=4)
def functions(name: str = "ModelRegistry") -> dict[str, Function]:
    """The contract's functions from the committed ABI (overloads: the first one wins)."""
    raw = artifact_json(name)
    out: dict[str, Function] = {}
    for item in raw["abi"]:
        if item.get("type") == "function" and item["name"] not in out:
            out[item["name"]] = Function(item["name"], item.get("inputs", []), item.get("outputs", []))
    return out


# ---------------------------------------------------------------------------------------------
# Reverts


@lru_cache(maxsize=4)
def errors(name: str = "ModelRegistry") -> dict[bytes, tuple[str, list[dict[str, Any]]]]:
    """selector -> (custom error name, its inputs), from the ABI."""
    out: dict[bytes, tuple[str, list[dict[str, Any]]]] = {}
    for item in artifact_json(name)["abi"]:
        if item.get("type") == "error":
            inputs = item.get("inputs", [])
            sig = f"{item['name']}({','.join(canonical_type(i) for i in inputs)})"
            out[keccak(sig.encode())[:4]] = (str(item["name"]), inputs)
    return out


_STANDARD_ERRORS = {bytes.fromhex("08c379a0"): ("Error", [{"type": "string"}]),
                    bytes.fromhex("4e487b71"): ("Panic", [{"type": "uint256"}])}


def revert_error(message: str, data: Any) -> ChainError:
    """What ``registry.chain.errors.decode_revert`` makes of a JSON-RPC error, without eth_abi."""
    from registry.chain.errors import ContractRevert

    raw = None
    if isinstance(data, str) and re.fullmatch(r"(0x)?(?:[0-9a-fA-F]{2})*", data):
        raw = bytes.fromhex(data.removeprefix("0x"))
    if raw is None:
        if "revert" not in message.lower():
            return ChainError(f"the node refused the call: {message}")
        return ChainError(f"{CONTRACT} reverted: {message}")
    if len(raw) < 4:
        return ContractRevert(CONTRACT, "Revert", (message,))
    selector = raw[:4]
    known = _STANDARD_ERRORS.get(selector) or errors().get(selector)
    if known is not None:
        try:
            return ContractRevert(CONTRACT, known[0], decode_tuple(known[1], raw[4:]))
        except ChainError:  # malformed payload: reported by its selector
            pass
    return ContractRevert(CONTRACT, "UnknownError", ("0x" + raw.hex(),))


# ---------------------------------------------------------------------------------------------
# JSON-RPC

# what each method the lean reader sends must answer (anything else is a malformed answer)
_HEX_RESULT = frozenset({"eth_chainId", "eth_blockNumber", "eth_getCode", "eth_call"})
_LIST_RESULT = frozenset({"eth_getLogs"})
_OBJECT_RESULT = frozenset({"eth_getTransactionByHash"})


class _Transient(Exception):
    """A failure worth another attempt; ``short`` says what it was. ``connection`` marks a failure of
    the connection itself, which on a kept-alive connection usually means the node closed it while idle."""

    def __init__(self, short: str, connection: bool = False) -> None:
        super().__init__(short)
        self.short = short
        self.connection = connection


class LeanRpc:
    """JSON-RPC over one keep-alive ``http.client`` connection: bounded, strictly parsed, retried."""

    def __init__(self, url: str, timeout: float = 10.0, retries: int = 3,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise InputError(f"not an http(s) RPC URL: {url[:80]!r}")
        self.url = url
        self._parts = parts
        self._timeout = timeout
        self._retries = retries
        self._sleep = sleep
        self._conn: http.client.HTTPConnection | None = None
        self._id = 0

    def _connection(self) -> http.client.HTTPConnection:
        if self._conn is None:
            cls = http.client.HTTPSConnection if self._parts.scheme == "https" else http.client.HTTPConnection
            self._conn = cls(self._parts.hostname, self._parts.port, timeout=self._timeout)  # type: ignore[arg-type]
        return self._conn

    def request(self, method: str, params: list[Any]) -> Any:
        """The ``result`` of one call; UnreachableError once the retries are spent, ChainError on a
        malformed answer or an error answer (a revert as ContractRevert)."""
        self._id += 1
        body = json.dumps({"jsonrpc": "2.0", "id": self._id, "method": method, "params": params}).encode()
        attempts = max(1, self._retries + 1)
        delay = BACKOFF_START_S
        attempt = 1
        while True:
            reused = self._conn is not None
            try:
                raw = self._post(body, method)
                break
            except _Transient as exc:
                if reused and exc.connection:
                    continue  # the node closed an idle keep-alive connection: reconnect at once
                if attempt == attempts:
                    raise UnreachableError(f"RPC node at {self.url} did not answer after {attempts} attempts "
                                           f"({exc.short})") from exc
                attempt += 1
                self._sleep(delay)
                delay = min(delay * 2, BACKOFF_MAX_S)
        return self._result(method, raw)

    def _post(self, body: bytes, method: str) -> bytes:
        from registry.strictjson import read_capped

        conn = self._connection()
        try:
            conn.request("POST", self._parts.path or "/", body, {"Content-Type": "application/json"})
            resp = conn.getresponse()
            if resp.status != 200:
                self.close()
                if resp.status >= 500 or resp.status == 429:
                    raise _Transient(f"HTTP {resp.status}")
                raise UnreachableError(f"RPC endpoint {self.url} refused the request (HTTP {resp.status}): "
                                       "is the URL right?")
            # read1 returns what has arrived, so the deadline is checked while a slow body trickles in
            raw = read_capped(iter(lambda: resp.read1(CHUNK), b""), limit=MAX_ANSWER,
                              what=f"answer of RPC node {self.url}", deadline_s=self._timeout * DEADLINE_FACTOR,
                              error=ChainError, timeout_error=_TooSlow)
            if resp.length == 0:
                resp.read()  # marks the response done, so the connection can carry the next request
            if resp.will_close or not resp.isclosed():
                self.close()
            return raw
        except _TooSlow as exc:
            self.close()
            raise _Transient("timed out") from exc
        except TimeoutError as exc:
            self.close()
            raise _Transient("timed out") from exc
        except (OSError, http.client.HTTPException) as exc:
            self.close()
            raise _Transient("connection refused or reset" if isinstance(exc, OSError) else type(exc).__name__,
                             connection=True) from exc
        except BaseException:
            self.close()
            raise

    def _result(self, method: str, raw: bytes) -> Any:
        from registry.strictjson import parse_json_strict

        what = f"answer of RPC node {self.url} to {method}"
        answer = parse_json_strict(raw, what=what, limit=MAX_ANSWER, max_depth=MAX_DEPTH, error=ChainError)
        if not isinstance(answer, dict):
            raise ChainError(f"{what} is not a JSON-RPC response")
        if "error" in answer:
            error = answer["error"]
            if not (isinstance(error, dict) and isinstance(error.get("code"), int)
                    and isinstance(error.get("message", ""), str)):
                raise ChainError(f"{what} is not a JSON-RPC response")
            raise revert_error(str(error.get("message", ""))[:200], error.get("data"))
        if "result" not in answer:
            raise ChainError(f"{what} is not a JSON-RPC response")
        result = answer["result"]
        if method in _HEX_RESULT and not (isinstance(result, str) and re.fullmatch(r"0x[0-9a-fA-F]*", result)):
            raise ChainError(f"{what} is not hex ({type(result).__name__})")
        if method in _LIST_RESULT and not (isinstance(result, list) and all(isinstance(i, dict) for i in result)):
            raise ChainError(f"{what} is not a list of objects")
        if method in _OBJECT_RESULT and not (result is None or isinstance(result, dict)):
            raise ChainError(f"{what} is not an object")
        return result

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


class _TooSlow(UnreachableError):
    """The body did not arrive within the deadline (retried like a timeout)."""


def quantity(text: str, what: str) -> int:
    """A JSON-RPC quantity (``0x``-prefixed hex, at most 64 bits here)."""
    if not re.fullmatch(r"0x[0-9a-fA-F]{1,16}", text):
        raise ChainError(f"{what} answered something that is not a quantity")
    return int(text, 16)


def hex_data(text: str, what: str) -> bytes:
    if not re.fullmatch(r"0x(?:[0-9a-fA-F]{2})*", text):
        raise ChainError(f"{what} answered something that is not hex data")
    return bytes.fromhex(text[2:])


class LeanRegistry:
    """The registry's views by name, ABI-driven: ``call("getRelease", release_id)``."""

    def __init__(self, rpc_url: str, address: str, timeout: float = 10.0, retries: int = 3) -> None:
        self.rpc = LeanRpc(rpc_url, timeout, retries)
        self.address = checksum(address)
        self._functions = functions()

    def chain_id(self) -> int:
        return quantity(self.rpc.request("eth_chainId", []), "eth_chainId")

    def code(self, address: str | None = None) -> bytes:
        return hex_data(self.rpc.request("eth_getCode", [address or self.address, "latest"]), "eth_getCode")

    def code_size(self) -> int:
        return len(self.code())

    def eth_call(self, to: str, data: bytes) -> bytes:
        return hex_data(self.rpc.request("eth_call", [{"to": to, "data": "0x" + data.hex()}, "latest"]), "eth_call")

    def call(self, name: str, *args: Any) -> Any:
        fn = self._functions.get(name)
        if fn is None:
            raise ChainError(f"the contract ABI has no function {name}")
        return fn.decode(self.eth_call(self.address, fn.encode(*args)))

    def revert_selector(self, exc: ChainError) -> bytes | None:
        from registry.chain.errors import ContractRevert

        if isinstance(exc, ContractRevert):
            for selector, (name, _inputs) in errors().items():
                if name == exc.error_name:
                    return selector
        return None

    def error_name(self, exc: ChainError) -> str | None:
        """The custom error's name (from the ABI) a reverted call carried, if any."""
        name = getattr(exc, "error_name", None)
        return name if isinstance(name, str) and name in {n for n, _ in errors().values()} else None
