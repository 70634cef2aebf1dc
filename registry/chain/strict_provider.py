"""A web3 HTTP provider that reads an RPC node's answers as hostile input.

web3's own ``HTTPProvider`` reads the whole body into memory, however large, with only a per-read
socket timeout (a node trickling one byte every few seconds never times out), and decodes it with
``json.loads``, whose C scanner recurses on the C stack: one deeply nested answer crashed the
process once py_ecc had raised the recursion limit. Here every answer is:

- read in chunks up to ``max_bytes`` and within an overall deadline (``registry.strictjson.read_capped``);
- parsed by ``registry.strictjson.parse_json_strict`` (depth, duplicate keys, NaN, UTF-8);
- checked to be JSON-RPC shaped (an object with ``result`` or an ``error`` object, or a list of
  them for a batch) before web3's formatters see it.

A malformed answer is a ``MalformedAnswer`` (a ``ChainError``, exit 6, and a ``ValueError`` so the
client's "does not answer like an Ethereum JSON-RPC node" check keeps catching it), never a
traceback or a crash; a body that is too slow is ``requests.Timeout``, which ``with_retries`` retries.
"""

from __future__ import annotations

from typing import Any

import requests
from web3 import HTTPProvider
from web3.types import RPCEndpoint, RPCResponse

from registry.errors import ChainError, UnreachableError
from registry.strictjson import parse_json_strict, read_capped

# eth_getLogs over a few thousand blocks is the largest answer we ask for; far below this.
MAX_RPC_RESPONSE_BYTES = 32 * 1024 * 1024
# JSON-RPC answers are a few levels deep (result -> log -> topics).
MAX_RPC_DEPTH = 32
# Methods whose result is a hex quantity or hex data, and methods whose result is an object (or
# null) or a list of objects: anything else in ``result`` would reach web3's formatters as a type
# they do not expect (an ``int()`` of a dict is a TypeError, i.e. a traceback).
HEX_RESULT = frozenset({"eth_chainId", "eth_blockNumber", "eth_getCode", "eth_call", "eth_gasPrice",
                        "eth_getTransactionCount", "eth_estimateGas", "eth_getBalance", "eth_sendRawTransaction",
                        "eth_maxPriorityFeePerGas", "net_version", "eth_getStorageAt"})
OBJECT_RESULT = frozenset({"eth_getBlockByNumber", "eth_getBlockByHash", "eth_getTransactionReceipt",
                           "eth_getTransactionByHash", "eth_feeHistory"})
LIST_RESULT = frozenset({"eth_getLogs", "eth_accounts"})
# The whole body must arrive within this many request timeouts.
DEADLINE_FACTOR = 3.0
CHUNK = 64 * 1024


class StrictHTTPProvider(HTTPProvider):
    """``HTTPProvider`` with bounded, strictly parsed answers and no hidden retries."""

    def __init__(self, endpoint_uri: str, timeout_s: float = 10.0,
                 max_bytes: int = MAX_RPC_RESPONSE_BYTES) -> None:
        super().__init__(endpoint_uri, request_kwargs={"timeout": timeout_s}, exception_retry_configuration=None)
        self._timeout_s = timeout_s
        self._max_bytes = max_bytes

    def _post(self, request_data: bytes) -> bytes:
        kwargs = dict(self.get_request_kwargs())
        kwargs["stream"] = True
        response = self._request_session_manager.get_response_from_post_request(
            self.endpoint_uri, data=request_data, **kwargs)
        with response:
            response.raise_for_status()
            # read1 returns what has arrived (iter_content would wait for a full chunk), so the
            # deadline is checked while a slow body trickles in, not only after it has ended
            chunks = iter(lambda: response.raw.read1(CHUNK, decode_content=True), b"")
            return read_capped(chunks, limit=self._max_bytes,
                               what=f"answer of RPC node {self.endpoint_uri}",
                               deadline_s=self._timeout_s * DEADLINE_FACTOR, error=MalformedAnswer,
                               timeout_error=_TimedOut)

    def _make_request(self, method: RPCEndpoint, request_data: bytes) -> bytes:
        try:
            return self._post(request_data)
        except _TimedOut as exc:
            raise requests.Timeout(str(exc)) from exc

    def make_request(self, method: RPCEndpoint, params: Any) -> RPCResponse:
        response = super().make_request(method, params)
        if isinstance(response, dict) and "result" in response and not _result_fits(method, response["result"]):
            raise MalformedAnswer(f"answer of RPC node {self.endpoint_uri} to {method} has a result of the wrong "
                                  f"type ({type(response['result']).__name__})")
        return response

    def make_batch_request(self, batch_requests: list[tuple[RPCEndpoint, Any]]) -> list[RPCResponse] | RPCResponse:
        from web3._utils.batching import sort_batch_response_by_response_ids

        raw = self._make_request(RPCEndpoint("batch"), self.encode_batch_rpc_request(batch_requests))
        response = self.decode_rpc_response(raw)
        if not isinstance(response, list):
            return response
        return sort_batch_response_by_response_ids(response)  # type: ignore[no-any-return]

    def decode_rpc_response(self, raw_response: bytes) -> RPCResponse:  # type: ignore[override]
        what = f"answer of RPC node {self.endpoint_uri}"
        value = parse_json_strict(raw_response, what=what, limit=self._max_bytes, max_depth=MAX_RPC_DEPTH,
                                  error=MalformedAnswer)
        items = value if isinstance(value, list) else [value]
        if not items or not all(_is_rpc_response(item) for item in items):
            raise MalformedAnswer(f"{what} is not a JSON-RPC response")
        return value  # type: ignore[no-any-return]


class MalformedAnswer(ChainError, ValueError):
    """The node answered something that is not a bounded, well-formed JSON-RPC response."""


class _TimedOut(UnreachableError):
    """The body did not arrive within the deadline (turned into requests.Timeout: retried)."""


def _result_fits(method: str, result: Any) -> bool:
    if method in HEX_RESULT:
        return isinstance(result, str) and (method == "net_version" or result.startswith("0x"))
    if method in OBJECT_RESULT:
        return result is None or isinstance(result, dict)
    if method in LIST_RESULT:
        return isinstance(result, list) and all(isinstance(item, (dict, str)) for item in result)
    return True


def _is_rpc_response(item: Any) -> bool:
    if not isinstance(item, dict):
        return False
    if "error" in item:
        error = item["error"]
        return isinstance(error, dict) and isinstance(error.get("code"), int) and isinstance(
            error.get("message", ""), str)
    return "result" in item
